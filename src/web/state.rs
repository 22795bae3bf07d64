//! [`AppState`]: everything a handler may need, cloned cheaply into each request.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::WebConfig;
use crate::connections::ConnectionTable;
use crate::db::{Db, DbError};
use crate::load::Controls;
use crate::metrics::Metrics;
use crate::shop::catalog::{Catalog, Snapshot};
use crate::shop::checkout::Checkout;
use crate::web::health::Health;
use crate::web::page_cache::PageCache;

/// The shared state. Cloning it is one reference-count increment: the router clones it into
/// every request (the handler and each layer that holds it), so that matters at tens of
/// thousands of requests per second. Fields are reached through `Deref` (`state.db`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares.
#[derive(Debug)]
pub struct Shared {
    pub db: Db,
    pub health: Health,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<Metrics>,
    pub controls: Arc<Controls>,
    /// The catalog every page and catalog API answer is built from.
    pub catalog: Arc<Catalog>,
    /// Placing orders (see [`Checkout`]).
    pub checkout: Checkout,
    /// Rendered pages shared by visitors with an empty cart.
    pub pages: Arc<PageCache>,
    /// Every open connection, shop and admin port alike (see [`crate::connections`]).
    pub connections: Arc<ConnectionTable>,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
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
        let catalog = Catalog::new(config.catalog_refresh);
        AppState(Arc::new(Shared {
            checkout: Checkout::new(db.clone(), catalog.clone(), metrics.clone()),
            db,
            health: Health::default(),
            pages: Arc::new(PageCache::new(config.page_cache_ttl, catalog.clone())),
            catalog,
            config: Arc::new(config),
            metrics,
            controls,
            connections: Arc::default(),
        }))
    }

    /// The catalog to answer this request from (see [`Catalog::snapshot`]).
    pub async fn catalog(&self) -> Result<Arc<Snapshot>, DbError> {
        self.catalog.snapshot(&self.db).await
    }
}
