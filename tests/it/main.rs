//! The integration suite: one binary that drives the real router (in process, with `oneshot`)
//! and, where it matters, a real listener or the real binary. Tests that touch storage run twice,
//! on SQLite and on PostgreSQL (see [`support::db_tests`]).

mod fake_insights;
mod support;

mod api_errors;
mod cart;
mod catalog;
mod checkout;
mod connections;
mod docs;
mod faults;
mod forms;
mod hostile;
mod live_metrics;
mod load;
mod loadgen;
mod manifests;
mod metrics;
mod openapi;
mod page_cache;
mod probes;
mod promql;
mod readme;
mod rehearsal;
mod reliability;
mod replicas;
mod scripts;
mod shutdown;
mod start_errors;
mod telemetry;
