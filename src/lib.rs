//! # Doorbuster
//!
//! A Black Friday storefront that is at once a shop a person can browse, a load target that reports
//! what it is doing, and a Kubernetes sample workload. One binary, three roles chosen by
//! subcommand (`serve`, `migrate`, `loadgen`; see [`cli`]).
//!
//! ## Layout
//!
//! A request enters at [`server`] (listener, drain on SIGTERM), passes the layer stack and route
//! table in [`web`], reaches a handler in [`web::pages`] (HTML) or [`web::api`] (JSON), which uses
//! the shop rules in [`shop::cart`] and [`shop::checkout`] and the SQL in [`db`]. Failures travel as one
//! [`error::AppError`], rendered as a page or a problem document.
//!
//! - [`cli`] / [`config`]: the command line and every setting, with defaults, in one place.
//! - [`server`]: start-up (connect, migrate, seed), `serve(listener, state, …)`, the drain sequence.
//! - [`connections`]: the accept loop and the limits on every connection (header-read and idle
//!   timeouts, making room when file descriptors run out, answering what is queued at shutdown).
//! - [`state`]: the one `AppState` handed to every handler.
//! - [`web`]: the route table and middleware; [`web::pages`] renders askama templates from
//!   `templates/`, and [`web::page_cache`] keeps the rendered pages every visitor with an empty
//!   cart shares, until stock moves; [`web::confirmation`] shows an order, from the database or,
//!   right after checkout on another replica with its own store, from the shopper's receipt
//!   cookie; [`web::origin`] refuses form posts that another site makes a
//!   browser send and tells whether the shopper is on HTTPS; [`web::api`] is the JSON API and its
//!   OpenAPI document; [`web::assets`] and [`web::art`] serve the stylesheet, script and
//!   generated product art from inside the binary.
//! - [`health`]: `/healthz` (alive) and `/readyz` (database answers, not draining, not switched
//!   off by the operator).
//! - [`load`]: load-target knobs (CPU work, latency, injected errors per route group) and the
//!   in-flight bound; [`web::control`] changes them at run time from the admin port.
//! - [`shop::cart`]: the cookie-held cart, validated on every read.
//! - [`shop::checkout`]: validation and normalisation of orders, shared by the form and the API.
//! - [`db`]: SQLite or PostgreSQL behind one handle; all SQL lives here ([`db::catalog`],
//!   [`db::orders`], [`db::seed`]); migrations per dialect in `migrations/`.
//! - [`error`]: the one error type and its two renderings.
//! - [`shop::money`]: formatting integer cents for people.
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
pub mod health;
pub mod load;
pub mod loadgen;
pub mod metrics;
pub mod rehearsal;
pub mod sampling;
pub mod server;
pub mod shop;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod web;
