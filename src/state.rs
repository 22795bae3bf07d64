//! [`AppState`]: everything a handler may need, cloned cheaply into each request.

use std::sync::Arc;

use crate::config::WebConfig;
use crate::db::Db;
use crate::health::Health;
use crate::load::Controls;
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub health: Health,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<Metrics>,
    pub controls: Arc<Controls>,
}

impl AppState {
    /// State with metrics exported through Prometheus only.
    pub fn new(db: Db, config: WebConfig) -> Self {
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name("doorbuster")
            .build();
        Self::with_metrics(db, config, Metrics::prometheus_only(resource))
    }

    pub fn with_metrics(db: Db, config: WebConfig, metrics: Arc<Metrics>) -> Self {
        Self::with_controls(db, config, metrics, Controls::off())
    }

    pub fn with_controls(
        db: Db,
        config: WebConfig,
        metrics: Arc<Metrics>,
        controls: Arc<Controls>,
    ) -> Self {
        metrics.observe_in_flight(controls.clone());
        AppState {
            db,
            health: Health::default(),
            config: Arc::new(config),
            metrics,
            controls,
        }
    }
}
