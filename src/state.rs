//! [`AppState`]: everything a handler may need, cloned cheaply into each request.

use std::sync::Arc;

use crate::config::WebConfig;
use crate::db::Db;
use crate::health::Health;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub health: Health,
    pub config: Arc<WebConfig>,
}

impl AppState {
    pub fn new(db: Db, config: WebConfig) -> Self {
        AppState {
            db,
            health: Health::default(),
            config: Arc::new(config),
        }
    }
}
