//! Every setting the binary reads, in one place: each is a flag and an environment variable, with
//! its default and meaning documented here (and mirrored in the README's table, which a test keeps
//! in step). Standard variables keep their standard names (`PORT`, `DATABASE_URL`, `RUST_LOG`).
//! Secrets are never printed: `hide_env_values` keeps them out of `--help`, and [`DbOptions`]'s
//! `Debug` redacts the password.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::db::DbOptions;

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
}

impl DatabaseArgs {
    pub fn options(&self) -> DbOptions {
        DbOptions {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections.max(1),
            acquire_timeout: self.db_acquire_timeout,
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
        }
    }
}

/// Settings of `doorbuster migrate`.
#[derive(Args, Clone, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Also put every product's stock back to its seeded level (to rerun a sell-out demo).
    #[arg(long)]
    pub restock: bool,
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
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
        }
    }
}
