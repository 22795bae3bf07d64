//! # Doorbuster
//!
//! A Black Friday storefront that is at once a shop a person can browse, a load target that reports
//! what it is doing, and a Kubernetes sample workload. One binary, three roles chosen by
//! subcommand (`serve`, `migrate`, `loadgen`; see [`cli`]).
//!
//! ## Layout
//!
//! Three layers, each importing only the ones below it:
//!
//! 1. **[`web`]** translates HTTP: a request enters at [`server`] (listener, drain on SIGTERM),
//!    passes the layer stack and route table in [`web`], and reaches a handler in
//!    [`web::pages`] (HTML) or [`web::api`] (JSON), which only turns the request into a call on
//!    the shop and the answer back into a page or a JSON document.
//! 2. **[`shop`]** is the core: the nouns and rules ([`shop::catalog`], [`shop::order`],
//!    [`shop::cart`], [`shop::money`]: no HTTP, no SQL in them) and the two use cases:
//!    [`shop::catalog::Catalog`], the catalog held in memory that every page and catalog API
//!    answer is built from, and [`shop::checkout::Checkout`], which validates an order, places
//!    it, counts it and moves the catalog's stock.
//! 3. **[`db`]** holds all SQL: SQLite or PostgreSQL behind one handle, with small statement
//!    functions the use cases call ([`db::catalog`], [`db::orders`], [`db::seed`]); migrations
//!    per dialect in `migrations/`.
//!
//! Failures travel as one [`error::AppError`]; `web` renders it as a page or a problem document.
//!
//! - [`cli`] / [`config`]: the command line and every setting, with defaults, in one place.
//! - [`server`]: start-up (connect, migrate, seed), `serve(listener, state, …)`, the drain sequence.
//! - [`connections`]: the accept loop and the limits on every connection (header-read and idle
//!   timeouts, making room when file descriptors run out, answering what is queued at shutdown).
//! - [`web`]: the route table and middleware; [`web::state`] is the one `AppState` handed to
//!   every handler; [`web::pages`] renders askama templates from `templates/` (split by what they
//!   show: catalog, cart, checkout, errors; escaped by [`web::pages::escape`], which
//!   `askama.toml` names), and [`web::page_cache`] keeps the rendered pages every
//!   visitor with an empty cart shares, until the catalog changes; [`web::confirmation`] shows an
//!   order, from the database or, right after checkout on another replica with its own store,
//!   from the shopper's receipt cookie; [`web::origin`] refuses form posts that another site
//!   makes a browser send and tells whether the shopper is on HTTPS; [`web::api`] is the JSON API
//!   and its OpenAPI document (the product listing written from a JSON projection of the catalog
//!   snapshot, `web::api::products_json`); [`web::assets`] and [`web::art`] serve the stylesheet, script and
//!   generated product art from inside the binary; [`web::health`]: `/healthz` (alive) and
//!   `/readyz` (database answers, not draining, not switched off by the operator).
//! - [`load`]: load-target knobs (CPU work, latency, injected errors per route group) and the
//!   in-flight bound; [`web::control`] changes them at run time from the admin port.
//! - [`error`]: the one error type; its renderings live in `web`.
//! - [`telemetry`]: logs, traces and metrics exporters (Application Insights with Live Metrics,
//!   OTLP); [`metrics`]: the instruments, and Prometheus text for the admin port;
//!   [`web::observe`]: the per-request span, metrics and synthetic-traffic tag; [`sampling`]:
//!   which requests are traced, decided before any span is built; [`cgroup`]: the container's
//!   CPU limit, which Live Metrics' CPU figure is reported against.
//! - [`loadgen`]: the load generator (`doorbuster loadgen`): shopper journeys, load shapes,
//!   statistics and the report; separate from the shop, it only speaks HTTP to a target.
//! - [`rehearsal`]: `doorbuster rehearse`, the AKS demo's surge predicted from the rendered
//!   overlay, the guide's cluster and a measured per-pod capacity, through the HPA's algorithm.
//! - [`tls`]: the one place outbound HTTP clients are built, on rustls with ring (no C build).

pub mod cgroup;
pub mod cli;
pub mod config;
pub mod connections;
pub mod db;
pub mod error;
pub mod load;
pub mod loadgen;
pub mod metrics;
pub mod rehearsal;
pub mod sampling;
pub mod server;
pub mod shop;
pub mod telemetry;
pub mod tls;
pub mod web;
