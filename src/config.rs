//! Every setting the binary reads, in one place: each is a flag and an environment variable, with
//! its default and meaning documented here (and mirrored in the README's table, which a test keeps
//! in step). Standard variables keep their standard names (`PORT`, `DATABASE_URL`, `RUST_LOG`).
//! Secrets are never printed: `hide_env_values` keeps them out of `--help`, and [`DbOptions`]'s
//! `Debug` redacts the password.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::db::DbOptions;
use crate::load::{Cpu, Fraction, Knobs, LatencyRange, PerGroup};

/// Where the data lives.
#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://FILE` (created if missing), `sqlite::memory:`, or
    /// `postgres://USER:PASSWORD@HOST/DB` for a store shared by every replica.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://doorbuster.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Most pooled database connections per process (SQLite: readers; one writer is added).
    #[arg(long, env = "DOORBUSTER_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection before it is answered 503.
    #[arg(long, env = "DOORBUSTER_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// Longest one database call (a query, or a checkout's whole transaction) may take before it
    /// is abandoned and answered 503; also PostgreSQL's `statement_timeout`. A checkout abandoned
    /// after its COMMIT was sent is answered with the `outcome-unknown` problem.
    #[arg(long, env = "DOORBUSTER_DB_STATEMENT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,

    /// Size in MiB the SQLite write-ahead log is kept under: the writer truncates it once it
    /// passes half of this. `0` leaves it unbounded (only for comparisons).
    #[arg(long, env = "DOORBUSTER_SQLITE_WAL_MAX_MB", default_value_t = 64)]
    pub sqlite_wal_max_mb: u64,
}

impl DatabaseArgs {
    pub fn options(&self) -> DbOptions {
        DbOptions {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections.max(1),
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
            sqlite_wal_max: self.sqlite_wal_max_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// Settings of `doorbuster serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address to listen on.
    #[arg(long, env = "DOORBUSTER_HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub host: IpAddr,

    /// Port for the shop (pages and API).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Do not apply migrations and seed the catalog at start (use when a `doorbuster migrate`
    /// job owns the schema).
    #[arg(long, env = "DOORBUSTER_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,

    /// After SIGTERM or Ctrl-C: how long to keep serving while reporting not-ready, so load
    /// balancers stop sending traffic before the listener closes.
    #[arg(long, env = "DOORBUSTER_DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// Longest a request may take before it is answered 503.
    #[arg(long, env = "DOORBUSTER_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "DOORBUSTER_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Longest a client may take to send a request head (request line and headers). A new
    /// connection must have sent its first complete head this long after it is accepted, or it is
    /// closed: silent and dribbling clients cannot hold connections (or file descriptors).
    #[arg(long, env = "DOORBUSTER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Longest a client may take to send a request body; beyond it the answer is 408. Bodies are
    /// read whole before a request counts against the in-flight bound, so slow senders cannot
    /// hold the shop's capacity.
    #[arg(long, env = "DOORBUSTER_BODY_READ_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// How long a keep-alive connection (HTTP/1 or HTTP/2) may sit with no request before it is
    /// closed. Longer than the 60 s a proxy such as ingress-nginx keeps idle upstream connections,
    /// so the proxy, not the shop, closes them first; shorter than Azure Load Balancer's 4 minutes.
    #[arg(long, env = "DOORBUSTER_IDLE_TIMEOUT", default_value = "75s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// How long a rendered home, product or department page is reused for visitors with an
    /// empty cart (orders placed by this replica refresh it at once); `0s` renders every request.
    #[arg(long, env = "DOORBUSTER_PAGE_CACHE_TTL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub page_cache_ttl: Duration,

    /// How old the in-memory catalog may get before it is read again from the database, which is
    /// how another replica's sales (on shared PostgreSQL) or an operator's restock reach this
    /// replica's pages. This replica's own sales show at once.
    #[arg(long, env = "DOORBUSTER_CATALOG_REFRESH", default_value = "1s", value_parser = humantime::parse_duration)]
    pub catalog_refresh: Duration,

    /// Port of the admin listener (Prometheus `/metrics`), kept off the public Service.
    #[arg(long, env = "DOORBUSTER_ADMIN_PORT", default_value_t = 9090)]
    pub admin_port: u16,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(flatten)]
    pub load: LoadArgs,
}

/// Load-target controls at start (all off by default); see [`crate::load`]. Each takes one value
/// for every route group or `GROUP=VALUE,…` with groups `pages`, `api`, `checkout`.
#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    /// CPU time burnt per request, e.g. `2ms` or `pages=2ms,checkout=10ms`.
    #[arg(long, env = "DOORBUSTER_CPU_WORK", default_value = "", value_parser = |s: &str| s.parse::<PerGroup<Cpu>>())]
    pub cpu_work: PerGroup<Cpu>,

    /// Added latency per request: fixed (`100ms`) or uniform in a range (`50ms..150ms`).
    #[arg(long, env = "DOORBUSTER_LATENCY", default_value = "", value_parser = |s: &str| s.parse::<PerGroup<LatencyRange>>())]
    pub latency: PerGroup<LatencyRange>,

    /// Fraction of requests answered with an injected 500 or 503, e.g. `0.05`.
    #[arg(long, env = "DOORBUSTER_ERROR_RATE", default_value = "", value_parser = |s: &str| s.parse::<PerGroup<Fraction>>())]
    pub error_rate: PerGroup<Fraction>,

    /// Most requests in flight before new ones are answered 503 at once (default: 256 per CPU).
    #[arg(long, env = "DOORBUSTER_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,

    /// Bearer token for the runtime control API on the admin port; without it, changes are refused.
    #[arg(long, env = "DOORBUSTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
}

impl LoadArgs {
    pub fn knobs(&self) -> Result<Knobs, String> {
        Knobs::from_settings(
            &self.cpu_work.map(|c| c.0),
            &self.latency,
            &self.error_rate.map(|f| f.0),
        )
    }
}

/// A secret setting: usable, but never shown by `Debug` or in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Ok(Secret(text.to_owned()))
    }
}

/// Where telemetry goes. Each exporter is switched on by its standard variable; none is required.
#[derive(Args, Clone)]
pub struct TelemetryArgs {
    /// Application Insights connection string: turns on traces (requests, dependencies,
    /// exceptions), metrics and Live Metrics.
    #[arg(
        long,
        env = "APPLICATIONINSIGHTS_CONNECTION_STRING",
        hide_env_values = true
    )]
    pub applicationinsights_connection_string: Option<String>,

    /// OTLP/HTTP collector base URL (e.g. `http://otel-collector:4318`): turns on OTLP traces
    /// and metrics.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// Service name: the cloud role name in Application Insights.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "doorbuster")]
    pub otel_service_name: String,

    /// Milliseconds between metric exports to Application Insights and OTLP (Prometheus is
    /// scraped instead).
    #[arg(long, env = "OTEL_METRIC_EXPORT_INTERVAL", default_value_t = 60_000)]
    pub otel_metric_export_interval: u64,

    /// Share of traces exported (0 to 1), whole traces chosen by id. Metrics and Live Metrics
    /// always see every request; lower this under heavy load to bound the exporting cost.
    #[arg(long, env = "DOORBUSTER_TRACE_EXPORT_RATIO", default_value_t = 1.0)]
    pub trace_export_ratio: f64,

    /// This replica's name (the downward API's pod name): the role instance in Application
    /// Insights, so Live Metrics counts one server per pod. Defaults to the hostname.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// The node this replica runs on (downward API), to tell VM nodes from the virtual node.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
}

impl std::fmt::Debug for TelemetryArgs {
    // The connection string carries the instrumentation key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryArgs")
            .field(
                "applicationinsights_connection_string",
                &self
                    .applicationinsights_connection_string
                    .as_ref()
                    .map(|_| "***"),
            )
            .field(
                "otel_exporter_otlp_endpoint",
                &self.otel_exporter_otlp_endpoint,
            )
            .field("otel_service_name", &self.otel_service_name)
            .field(
                "otel_metric_export_interval",
                &self.otel_metric_export_interval,
            )
            .field("pod_name", &self.pod_name)
            .field("node_name", &self.node_name)
            .finish()
    }
}

impl TelemetryArgs {
    /// The instance name: `POD_NAME`, else the hostname, else "unknown".
    pub fn instance(&self) -> String {
        self.pod_name
            .clone()
            .filter(|name| !name.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

impl ServeArgs {
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The settings the router needs.
    pub fn web(&self) -> WebConfig {
        WebConfig {
            request_timeout: self.request_timeout,
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: self.body_read_timeout,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            page_cache_ttl: self.page_cache_ttl,
            catalog_refresh: self.catalog_refresh,
            admin_token: self.load.admin_token.clone().filter(|t| !t.0.is_empty()),
            instance: self.telemetry.instance(),
            node: self.telemetry.node_name.clone().filter(|n| !n.is_empty()),
        }
    }
}

/// Settings of `doorbuster migrate`.
#[derive(Args, Clone, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Also put every product's stock back to its seeded level (to rerun a sell-out demo).
    #[arg(long, conflicts_with = "restock_to")]
    pub restock: bool,

    /// Also put every product's stock at UNITS instead of its seeded level, e.g. so a long load
    /// test or benchmark never sells out.
    #[arg(long, value_name = "UNITS")]
    pub restock_to: Option<u32>,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors (the container default).
    Json,
}

/// Router settings, separate from [`ServeArgs`] so tests can build a router without a CLI.
#[derive(Clone, Debug)]
pub struct WebConfig {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request's body before it is answered 408.
    pub body_read_timeout: Duration,
    /// Longest a client may take to send a request's head before the connection is closed, so a
    /// crowd dribbling headers, or just connecting and saying nothing, cannot hold every
    /// connection. For a new connection it counts from the moment it is accepted; between
    /// keep-alive requests, from the first byte of the next head.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request in flight before it is closed.
    pub idle_timeout: Duration,
    /// How long a shared rendered page is reused; zero turns the page cache off (see
    /// [`crate::web::page_cache`]).
    pub page_cache_ttl: Duration,
    /// How old the in-memory catalog may get before it is read again (see
    /// [`crate::shop::catalog::Catalog`]).
    pub catalog_refresh: Duration,
    /// Token for the admin control API; `None` refuses every change.
    pub admin_token: Option<Secret>,
    /// This replica's name and node, shown in the footer so load spreading is visible.
    pub instance: String,
    pub node: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            body_read_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            page_cache_ttl: Duration::from_secs(1),
            catalog_refresh: Duration::from_secs(1),
            admin_token: None,
            instance: "local".to_owned(),
            node: None,
        }
    }
}
