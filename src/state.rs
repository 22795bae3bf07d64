//! [`AppState`]: everything a handler may need, cloned cheaply into each request.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::WebConfig;
use crate::connections::ConnectionTable;
use crate::db::Db;
use crate::health::Health;
use crate::load::Controls;
use crate::metrics::Metrics;
use crate::shop::checkout::{CheckoutError, Placed};
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
        AppState(Arc::new(Shared {
            db,
            health: Health::default(),
            pages: Arc::new(PageCache::new(config.page_cache_ttl)),
            config: Arc::new(config),
            metrics,
            controls,
            connections: Arc::default(),
        }))
    }

    /// Records what a checkout did: the shop's metrics, and, when stock moved (an order placed
    /// here, or one refused because stock ran out elsewhere), out-of-date cached pages.
    pub fn record_checkout(&self, outcome: &Result<Placed, CheckoutError>) {
        self.metrics.record_checkout(outcome);
        if matches!(
            outcome,
            Ok(Placed::New(_)) | Err(CheckoutError::OutOfStock(_))
        ) {
            self.pages.catalog_changed();
        }
    }
}
