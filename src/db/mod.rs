//! Storage: one [`Db`] handle over either an embedded SQLite file (the default) or a shared
//! PostgreSQL server, chosen by the URL.
//!
//! All SQL in the service lives under this module. Each statement is written once and runs on both
//! engines: the dialects agree on `$n` placeholders, `RETURNING` and `ON CONFLICT`, and the
//! [`with_reader!`]/[`with_writer!`] macros expand one body for each concrete pool. Concrete pools
//! (rather than sqlx's `Any` driver) are used because `Any` cannot decode SQLite booleans or
//! timestamps. Schema differences live in `migrations/sqlite` and `migrations/postgres`.
//!
//! SQLite gets two pools over the same file: many readers (WAL lets them run alongside a writer) and
//! a single writer, so that concurrent checkouts queue inside the process instead of failing with
//! "database is locked". The writer never checkpoints the WAL into the database file itself: a
//! checkpoint every [`CHECKPOINT_INTERVAL`] on a reader connection does it, so the one writer is
//! not held up for the 8 to 15 ms a checkpoint takes every few hundred orders.

pub mod catalog;
pub mod orders;
pub mod seed;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Expands `$body` once per engine with `$pool` bound to a pool that may serve reads.
macro_rules! with_reader {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(store) => {
                let $pool = &store.reader;
                $body
            }
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Expands `$body` once per engine with `$pool` bound to the pool that takes writes.
macro_rules! with_writer {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(store) => {
                let $pool = &store.writer;
                $body
            }
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use {with_reader, with_writer};

/// Runs a database call with no current tracing span.
///
/// sqlx's SQLite worker thread keeps the span that was current when a command was sent, and can
/// hold it (entered) long after the query returns. Were that the request's span, the request
/// would stay open and its telemetry would be late or lost. The `#[tracing::instrument]` span of
/// each `db` function still times the call; only the worker no longer sees it.
///
/// In a request that is not traced there is no such span, so the call is timed here for Live
/// Metrics' dependency rate instead (see [`crate::sampling`]).
///
/// The call goes on the heap: sqlx's futures for both engines make it several kilobytes, which
/// every enclosing future (handler, layers) would otherwise hold inline and copy each time it is
/// moved. Callgrind counted 166,000 instructions of `memcpy` per checkout before this.
pub(crate) fn detached<T, E, F>(call: F) -> impl Future<Output = Result<T, E>>
where
    F: Future<Output = Result<T, E>>,
{
    use tracing::Instrument as _;
    let call = Box::pin(call);
    async move {
        let untraced = crate::sampling::untraced_dependency();
        let result = call.instrument(tracing::Span::none()).await;
        if let Some(dependency) = untraced {
            dependency.finish(result.is_err());
        }
        result
    }
}

/// How to reach the database; built from the configuration.
#[derive(Clone)]
pub struct DbOptions {
    /// `sqlite://path`, `sqlite::memory:` or `postgres://…`.
    pub url: String,
    /// Upper bound on pooled connections (readers for SQLite; all connections for PostgreSQL).
    pub max_connections: u32,
    /// How long a request waits for a connection before the service answers 503.
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for DbOptions {
    // The URL may carry a password: never print it whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// How often the WAL of a SQLite file is checkpointed into the database file.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// The SQLite pools: see the module documentation for why there are two.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// Stops the checkpoint task when the last handle on the store is dropped.
    _checkpoints: Option<Arc<DropGuard>>,
}

/// Checkpoints the WAL every [`CHECKPOINT_INTERVAL`] through `reader`, without waiting for the
/// writer or readers (`PASSIVE`, what SQLite's automatic checkpoint does too), until `stop`.
fn spawn_checkpoints(reader: SqlitePool, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if reader.is_closed() {
                return;
            }
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&reader)
                .await
            {
                tracing::warn!(%error, "WAL checkpoint failed; retrying in {CHECKPOINT_INTERVAL:?}");
            }
        }
    });
}

/// A handle on the store; cheap to clone (pools are reference counted).
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteStore),
    Postgres(PgPool),
}

/// Which engine a [`Db`] talks to, for logs and the `/readyz` body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgresql",
        }
    }
}

/// A failure talking to the database, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or is overloaded right now; retrying later may work (503).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or a broken schema (500).
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            DbError::Unavailable(error)
        } else {
            DbError::Other(error)
        }
    }
}

/// Errors that mean "not now" rather than "never": connection loss, pool exhaustion, a busy SQLite
/// file, PostgreSQL shutting down or out of connections.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        // A connection cut during its handshake (the TLS negotiation answered by a closing socket)
        // surfaces as a protocol error: the database is unreachable, not the request wrong.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6) and their extended codes.
            // PostgreSQL: class 08 (connection), 53 (insufficient resources), 57P (operator
            // intervention: shutdown, crash recovery), 40001/40P01 (serialization, deadlock).
            matches!(code, "5" | "6" | "261" | "517" | "262")
                || code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
        }
        _ => false,
    }
}

/// The name of the constraint a database error violated, if any: code matches on the names given
/// in the migrations.
pub(crate) fn violated_constraint(error: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    if let Some(name) = db.constraint() {
        return Some(name.to_owned());
    }
    // SQLite reports no constraint name for UNIQUE failures, only "UNIQUE constraint failed:
    // table.column"; map the columns back to the names the migrations give them.
    let message = db.message();
    if message.contains("orders.idempotency_key") {
        return Some("orders_idempotency_key_key".to_owned());
    }
    if message.contains("orders.id") {
        return Some("orders_pkey".to_owned());
    }
    None
}

impl Db {
    /// Opens pools for the URL (creating a SQLite file if missing). Does not touch the schema.
    pub async fn connect(options: &DbOptions) -> Result<Db, DbError> {
        let url = options.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)?.application_name("doorbuster");
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                // A connection that died with a restarted server is found and replaced on checkout.
                .test_before_acquire(true)
                .connect_lazy_with(connect);
            // Fail fast at start with a clear error rather than on the first request.
            sqlx::query("SELECT 1").execute(&pool).await?;
            return Ok(Db::Postgres(pool));
        }
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable against process crashes in WAL mode; only an OS crash can lose the
            // last transactions. That is the trade every embedded default makes.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let store = if in_memory {
            // Every connection to `:memory:` is its own database: keep exactly one, forever.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            SqliteStore {
                reader: pool.clone(),
                writer: pool,
                // One connection, so SQLite's own automatic checkpoint stays on.
                _checkpoints: None,
            }
        } else {
            // One after the other: opened at once, the second can find the file locked while the
            // first sets it up (WAL), before any busy timeout applies.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect.clone().pragma("wal_autocheckpoint", "0"))
                .await?;
            let reader = SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            let stop = CancellationToken::new();
            spawn_checkpoints(reader.clone(), stop.clone());
            SqliteStore {
                reader,
                writer,
                _checkpoints: Some(Arc::new(stop.drop_guard())),
            }
        };
        Ok(Db::Sqlite(store))
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Applies the embedded migrations for this engine. Safe to run from several processes at
    /// once on PostgreSQL (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), DbError> {
        let result = match self {
            Db::Sqlite(store) => sqlx::migrate!("migrations/sqlite").run(&store.writer).await,
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        };
        result.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(error) => DbError::from(error),
            other => DbError::Other(sqlx::Error::Migrate(Box::new(other))),
        })
    }

    /// A cheap round trip, used by `/readyz`.
    #[tracing::instrument(level = "debug", skip_all, fields(otel.name = "SELECT 1", otel.kind = "client", db.system.name = self.engine().as_str()))]
    pub async fn ping(&self) -> Result<(), DbError> {
        with_reader!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(store) => {
                store.reader.close().await;
                store.writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Hides the password in a database URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer leaves checkpoints to the background task, which does move the WAL into the
    /// database file: 5 MB written is more than SQLite's automatic checkpoint would let pile up
    /// (1,000 pages), yet only the task can have put it in the file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_in_the_background_not_by_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        let db = Db::connect(&DbOptions {
            url: format!("sqlite://{}", path.display()),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let Db::Sqlite(store) = &db else {
            unreachable!("a sqlite:// URL opens SQLite")
        };
        let (autocheckpoint,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(autocheckpoint, 0, "the writer must not checkpoint");

        sqlx::query("CREATE TABLE filler (data BLOB)")
            .execute(&store.writer)
            .await
            .unwrap();
        for _ in 0..50 {
            sqlx::query("INSERT INTO filler VALUES (randomblob(100000))")
                .execute(&store.writer)
                .await
                .unwrap();
        }
        let file_size = || std::fs::metadata(&path).unwrap().len();
        let deadline = std::time::Instant::now() + 10 * CHECKPOINT_INTERVAL;
        while file_size() < 5_000_000 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            file_size() >= 5_000_000,
            "the WAL was not checkpointed: the database file holds {} bytes",
            file_size()
        );
        db.close().await;
    }

    #[test]
    fn redact_url_hides_password_only() {
        assert_eq!(
            redact_url("postgres://shop:s3cret@db:5432/doorbuster"),
            "postgres://shop:***@db:5432/doorbuster"
        );
        assert_eq!(
            redact_url("postgres://shop@db/doorbuster"),
            "postgres://shop@db/doorbuster"
        );
        assert_eq!(
            redact_url("sqlite://doorbuster.db"),
            "sqlite://doorbuster.db"
        );
        assert_eq!(redact_url("postgres://a:b:c@h/d"), "postgres://a:***@h/d");
    }
}
