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
//! a single writer (migrations, the seed, restocking), so that writes queue inside the process
//! instead of failing with "database is locked". Orders on a SQLite file do not go through sqlx
//! at all: one thread owns a connection and writes them in groups ([`sqlite_writer`], which says
//! why). One task checkpoints the WAL: passively on a reader (not holding up the writer) every
//! [`CHECKPOINT_INTERVAL`] and whenever the WAL has grown by [`CHECKPOINT_EVERY_BYTES`]; a passive
//! checkpoint cannot shrink the WAL while readers keep reading, so once it passes half of
//! [`DbOptions::sqlite_wal_max`] (or half of what a smaller volume leaves it) the task has the
//! writer thread truncate it, between two groups (a checkout surge grew it past a gigabyte
//! before). The passive checkpoints leave that truncation little to copy, so it holds the writer
//! only briefly.
//!
//! Every call goes through [`Db::call`], which bounds it by the statement timeout and tells
//! [`status::StoreStatus`] how it went; `/readyz` asks [`Db::readiness`]. A connection whose write
//! failed is closed, never reused: after a failed COMMIT, SQLite and sqlx can disagree on whether
//! a transaction is open, and every later "commit" then went nowhere.

/// A row struct and its `sqlx::FromRow` for both engines, each field read from the column of
/// its name: what `#[derive(sqlx::FromRow)]` does, without sqlx's proc macros (which compile
/// SQLite, the PostgreSQL driver and a TLS stack a second time, for the build host).
macro_rules! row_struct {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        struct $name {
            $($field: $ty),*
        }

        impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for $name {
            fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok($name { $($field: row.try_get(stringify!($field))?),* })
            }
        }

        impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for $name {
            fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok($name { $($field: row.try_get(stringify!($field))?),* })
            }
        }
    };
}

pub mod catalog;
mod migrations;
pub mod orders;
pub mod seed;
pub(crate) mod sqlite_writer;
pub mod status;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _, PgPool, SqlitePool};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use sqlite_writer::{SqliteWriter, WriterSettings};
use status::{FaultKind, StoreStatus};

/// Expands `$body` once per engine with `$pool` bound to a pool that may serve reads.
macro_rules! with_reader {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.store {
            $crate::db::Store::Sqlite(store) => {
                let $pool = &store.reader;
                $body
            }
            $crate::db::Store::Postgres($pool) => $body,
        }
    };
}

/// Expands `$body` once per engine with `$pool` bound to the pool that takes writes.
macro_rules! with_writer {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.store {
            $crate::db::Store::Sqlite(store) => {
                let $pool = &store.writer;
                $body
            }
            $crate::db::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use {with_reader, with_writer};

/// How to reach the database; built from the configuration.
#[derive(Clone)]
pub struct DbOptions {
    /// `sqlite://path`, `sqlite::memory:` or `postgres://…`.
    pub url: String,
    /// Upper bound on pooled connections (readers for SQLite; all connections for PostgreSQL).
    pub max_connections: u32,
    /// How long a request waits for a connection before the service answers 503.
    pub acquire_timeout: Duration,
    /// Longest one database call (a query, or a checkout's whole transaction) may take before it
    /// is abandoned with a 503; also PostgreSQL's own `statement_timeout`.
    pub statement_timeout: Duration,
    /// The size the SQLite WAL is kept under (bytes): the writer truncates it once it passes
    /// half of this. Zero leaves the WAL unbounded (for benchmarks comparing the two).
    pub sqlite_wal_max: u64,
}

impl DbOptions {
    /// Options for `url` with the defaults `doorbuster serve` uses.
    pub fn new(url: impl Into<String>) -> DbOptions {
        DbOptions {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
            sqlite_wal_max: DEFAULT_SQLITE_WAL_MAX,
        }
    }
}

impl std::fmt::Debug for DbOptions {
    // The URL may carry a password: never print it whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("sqlite_wal_max", &self.sqlite_wal_max)
            .finish()
    }
}

/// How often the WAL of a SQLite file is checkpointed into the database file, at the least.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// WAL growth that brings the next passive checkpoint forward: a surge writes tens of megabytes a
/// second, and what the passive checkpoints leave is what the writer's truncation must copy
/// while every checkout waits.
pub const CHECKPOINT_EVERY_BYTES: u64 = 4 * 1024 * 1024;

/// The default bound on the SQLite WAL: a quarter of the 256 MiB volume the manifests give `/data`.
pub const DEFAULT_SQLITE_WAL_MAX: u64 = 64 * 1024 * 1024;

/// How long `/readyz` waits for a probe of the database before calling it down.
pub const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A store that committed a write this recently is up, and one whose calls met a fault this
/// recently is down: readiness does not probe either.
const RECENT_WRITE: Duration = Duration::from_secs(2);

/// The SQLite pools: see the module documentation for why there are two.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// The thread that writes orders (and the write probe, and the WAL truncation), for stores
    /// that have a file: see [`sqlite_writer`]. An in-memory database is its one sqlx connection,
    /// so its orders go through `writer`.
    orders: Option<Arc<SqliteWriter>>,
    /// The file, for stores that have one (not `:memory:`).
    file: Option<Arc<SqliteFile>>,
    /// Stops the checkpoint task when the last handle on the store is dropped.
    _checkpoints: Option<Arc<DropGuard>>,
}

/// The database file the shop opened, to notice it being deleted or replaced underneath, and its
/// WAL, to keep that bounded.
#[derive(Debug)]
pub(crate) struct SqliteFile {
    path: PathBuf,
    wal: PathBuf,
    /// Device and inode at open: a path that no longer leads to them is a file deleted, moved
    /// away or replaced, whose writes would be lost.
    identity: (u64, u64),
    /// Half the configured WAL bound (zero: unbounded).
    wal_truncate_at: u64,
    /// The WAL size beyond which the writer truncates it now (zero: never): half the bound, or
    /// on a volume too small for that, half of what the WAL could grow into (see
    /// [`SqliteFile::refresh_mark`]).
    truncate_mark: AtomicU64,
    /// Set when a write failed for want of space: the next checkpoint truncates, whatever the
    /// WAL's size.
    shrink: AtomicBool,
    /// The WAL size when a checkpoint was last asked for, and how to ask the checkpoint task
    /// for one.
    checkpoint_asked_at: AtomicU64,
    checkpoint_now: Notify,
    /// Woken after every checkpoint, for writes waiting for the WAL to have room (see
    /// [`SqliteFile::over_limit`]).
    room: Notify,
}

impl SqliteFile {
    fn open(path: &Path, wal_max: u64) -> std::io::Result<SqliteFile> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(SqliteFile {
            path: path.to_owned(),
            wal: PathBuf::from(wal),
            identity: file_identity(path)?,
            wal_truncate_at: wal_max / 2,
            truncate_mark: AtomicU64::new(wal_max / 2),
            shrink: AtomicBool::new(false),
            checkpoint_asked_at: AtomicU64::new(0),
            checkpoint_now: Notify::new(),
            room: Notify::new(),
        })
    }

    /// `Err` with the reason when the path no longer leads to the file the shop opened.
    fn check(&self) -> Result<(), DbError> {
        match file_identity(&self.path) {
            Ok(identity) if identity == self.identity => Ok(()),
            Ok(_) => Err(DbError::FileGone(format!(
                "the database file {} was replaced by another file: restart the shop to open it",
                self.path.display()
            ))),
            Err(error) => Err(DbError::FileGone(format!(
                "the database file {} is gone ({error}): orders cannot be saved. Put the file \
                 back, or restart the shop to start a new, empty one",
                self.path.display()
            ))),
        }
    }

    fn wal_len(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }

    /// Whether the WAL has reached its configured bound: then writes wait for the checkpoint
    /// task to truncate it. Checkpoints alone cannot hold the bound: on a slow disk or a starved
    /// core a checkpoint took 9 s while the writer kept appending, and the WAL passed half a
    /// gigabyte. (On a volume too small for the bound, the earlier truncation mark and the
    /// disk-full handling keep it in check: waiting for room there would only turn "disk full"
    /// into a timeout.)
    fn over_limit(&self) -> bool {
        self.wal_truncate_at > 0
            && self.wal_len() >= wal_write_limit(self.wal_truncate_at.saturating_mul(2))
    }

    /// Waits until the WAL is under its bound. The caller's deadline bounds the wait: a write
    /// that cannot get room in time is a 503, never a WAL past its bound.
    async fn wait_for_room(&self) {
        loop {
            let woken = self.room.notified();
            if !self.over_limit() {
                return;
            }
            self.checkpoint_now.notify_one();
            woken.await;
        }
    }

    /// Sets the truncation mark from the space the volume has left: on a volume smaller than the
    /// bound, a WAL allowed to reach the bound would fill it by itself, and a full volume cannot
    /// be checkpointed (copying the WAL into the database file needs room to grow it). So the WAL
    /// is truncated at half of what it could grow into, the free space plus what it already
    /// holds. Called at open and after every passive checkpoint.
    fn refresh_mark(&self) {
        if self.wal_truncate_at == 0 {
            return;
        }
        let wal = self.wal_len();
        let mark = match free_space(&self.path) {
            Some(free) => self.wal_truncate_at.min((free + wal) / 2),
            None => self.wal_truncate_at,
        };
        self.truncate_mark
            .store(mark.max(MIN_TRUNCATE_MARK), Ordering::Relaxed);
    }
}

/// Room kept under the WAL's bound for the transaction in flight when writes stop: a group of
/// [`sqlite_writer::MAX_GROUP`] orders rewrites the same few dozen pages, well under this.
pub(crate) const WAL_WRITE_HEADROOM: u64 = 1024 * 1024;

/// The WAL size at which writes stop, for a WAL bounded at `bound`: the bound less the headroom
/// (a quarter of the bound for bounds under 4 MiB).
pub(crate) fn wal_write_limit(bound: u64) -> u64 {
    bound - WAL_WRITE_HEADROOM.min(bound / 4)
}

/// The smallest WAL worth truncating: below it, truncations would come every few orders.
const MIN_TRUNCATE_MARK: u64 = 128 * 1024;

/// Bytes an unprivileged writer may still use on the volume holding `path`.
#[cfg(unix)]
fn free_space(path: &Path) -> Option<u64> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_space(_path: &Path) -> Option<u64> {
    None
}

#[cfg(unix)]
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|_| (0, 0))
}

/// The one task that checkpoints the WAL (two checkpoints at once make the second fail with
/// `SQLITE_BUSY` at once, so they must not come from two places), every [`CHECKPOINT_INTERVAL`]
/// and whenever the writer asks (see [`CHECKPOINT_EVERY_BYTES`]), until `stop`:
/// - past the truncation mark, or after a write failed for want of space: a `TRUNCATE`
///   checkpoint on the writer thread, between two groups of orders ([`truncate_wal`]);
/// - otherwise a `PASSIVE` one through a reader, which waits for no one (what SQLite's automatic
///   checkpoint does too) and leaves the truncations little to copy.
///
/// A failure is logged when it starts and when it ends, not every time.
fn spawn_checkpoints(
    reader: SqlitePool,
    writer: Arc<SqliteWriter>,
    file: Arc<SqliteFile>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
                () = file.checkpoint_now.notified() => {}
            }
            if reader.is_closed() || writer.is_closed() {
                return;
            }
            let shrink = file.shrink.swap(false, Ordering::AcqRel);
            let bounded = file.wal_truncate_at > 0;
            let outcome = if bounded && (shrink || file.over_limit()) {
                // Writes are waiting: truncate at once.
                truncate_wal(&writer, &file).await
            } else if bounded && file.wal_len() > file.truncate_mark.load(Ordering::Relaxed) {
                // The copying and syncing first, without holding the writer; the truncation
                // then has only what was committed meanwhile left to copy.
                match passive_checkpoint(&reader).await {
                    Ok(()) => truncate_wal(&writer, &file).await,
                    Err(error) => Err(error.into()),
                }
            } else {
                passive_checkpoint(&reader).await.map_err(DbError::from)
            };
            match outcome {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("WAL checkpoints work again");
                }
                Ok(()) => {}
                // A failure while the disk is full is expected, and the fault already logged.
                Err(error) if shrink => tracing::debug!(%error, "WAL checkpoint failed"),
                Err(error) => {
                    if !failing {
                        failing = true;
                        tracing::warn!(%error, "WAL checkpoint failed; retrying every {CHECKPOINT_INTERVAL:?}");
                    }
                }
            }
            file.checkpoint_asked_at
                .store(file.wal_len(), Ordering::Relaxed);
            file.refresh_mark();
            file.room.notify_waiters();
        }
    });
}

/// Copies what it can of the WAL into the database file without waiting for anyone.
async fn passive_checkpoint(reader: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = reader.acquire().await?;
    let started = std::time::Instant::now();
    let result = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(&mut *conn)
        .await;
    tracing::trace!(took = ?started.elapsed(), "WAL checkpoint (PASSIVE)");
    if result.is_err() {
        // A connection opened while the file was read-only stays read-only: close it so the
        // next one can write once the file can.
        conn.close_on_drop();
    }
    result.map(|_| ())
}

/// A handle on the store; cheap to clone (pools and status are reference counted).
#[derive(Clone, Debug)]
pub struct Db {
    store: Store,
    status: Arc<StoreStatus>,
    statement_timeout: Duration,
}

/// The concrete pools behind a [`Db`].
#[derive(Clone, Debug)]
pub(crate) enum Store {
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
    /// The database cannot be reached, is overloaded, or cannot write right now (disk full,
    /// read-only); retrying later may work (503).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The call did not finish within the statement timeout and was abandoned (503).
    #[error("the database did not answer within {0:?}")]
    TimedOut(Duration),
    /// The SQLite file was deleted or replaced under the running shop (503 until it is back).
    #[error("{0}")]
    FileGone(String),
    /// The connection failed or timed out after COMMIT was sent: order `order_id` may or may not
    /// exist. The client must retry with the same idempotency key to find out (503).
    #[error("commit outcome unknown for order {order_id}: {cause}")]
    OutcomeUnknown { order_id: String, cause: String },
    /// Anything else: a bug or a broken schema (500).
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl DbError {
    /// The kind of failure, as telemetry names it (a failed dependency's `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            DbError::Unavailable(_) => "unavailable",
            DbError::TimedOut(_) => "timed_out",
            DbError::FileGone(_) => "file_gone",
            DbError::OutcomeUnknown { .. } => "outcome_unknown",
            DbError::Other(_) => "other",
        }
    }

    /// The database's own code for the error (a PostgreSQL SQLSTATE, a SQLite result code), when
    /// the database answered with one.
    pub fn database_code(&self) -> Option<String> {
        match self {
            DbError::Unavailable(sqlx::Error::Database(error))
            | DbError::Other(sqlx::Error::Database(error)) => error.code().map(Into::into),
            _ => None,
        }
    }
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

/// Errors that mean "not now" rather than "never": connection loss, pool exhaustion, a busy,
/// full, read-only or unreadable SQLite file, PostgreSQL shutting down, out of space or
/// connections, or cancelling a statement that ran too long.
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
            if let Some(sqlite) = sqlite_code(db.as_ref()) {
                // SQLite's extended codes keep the primary code in the low byte: BUSY (5),
                // LOCKED (6), READONLY (8), IOERR (10), CORRUPT (11), FULL (13), CANTOPEN (14),
                // NOTADB (26).
                return matches!(sqlite & 0xff, 5 | 6 | 8 | 10 | 11 | 13 | 14 | 26);
            }
            // PostgreSQL: class 08 (connection), 53 (insufficient resources: disk full, out of
            // memory or connections), 57P (operator intervention: shutdown, crash recovery),
            // 57014 (statement timeout), 25006 (read-only: a standby), 40001/40P01
            // (serialization, deadlock).
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || matches!(code, "57014" | "25006" | "40001" | "40P01")
        }
        _ => false,
    }
}

/// A SQLite error's extended result code. (PostgreSQL's SQLSTATEs are often all digits too, so
/// the engine is told by the error's type, not by whether its code parses as a number.)
pub(crate) fn sqlite_code(error: &dyn sqlx::error::DatabaseError) -> Option<i32> {
    use sqlx::error::DatabaseError as _;
    if let Some(writer) = error.try_downcast_ref::<sqlite_writer::SqliteWriteError>() {
        return Some(writer.code);
    }
    error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .and_then(|sqlite| sqlite.code()?.parse().ok())
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

/// Whether a failed COMMIT may still have committed: the request reached (or may have reached)
/// the server and the answer was lost. SQLite commits inside this process and reports the truth,
/// so only a client–server engine has this doubt.
pub(crate) fn commit_may_have_happened(engine: Engine, error: &sqlx::Error) -> bool {
    engine == Engine::Postgres
        && matches!(
            error,
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_)
        )
}

impl Db {
    /// Opens pools for the URL (creating a SQLite file if missing). Does not touch the schema.
    pub async fn connect(options: &DbOptions) -> Result<Db, DbError> {
        let url = options.url.as_str();
        let status = Arc::new(StoreStatus::default());
        let statement_timeout = options.statement_timeout;
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)?
                .application_name("doorbuster")
                // The server gives up too, so a statement abandoned by the shop does not run on.
                .options([
                    (
                        "statement_timeout",
                        statement_timeout.as_millis().to_string(),
                    ),
                    (
                        "idle_in_transaction_session_timeout",
                        (statement_timeout.as_millis() * 2).to_string(),
                    ),
                ]);
            // Fail fast at start with the server's own reason (connection refused, a wrong
            // password, no such database): through the pool, every one of them reads "pool timed
            // out while waiting for an open connection".
            tokio::time::timeout(options.acquire_timeout, connect.connect())
                .await
                .map_err(|_| DbError::TimedOut(options.acquire_timeout))??
                .close()
                .await?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                // A connection that died with a restarted server is found and replaced on checkout.
                .test_before_acquire(true)
                .connect_lazy_with(connect);
            sqlx::query("SELECT 1").execute(&pool).await?;
            return Ok(Db {
                store: Store::Postgres(pool),
                status,
                statement_timeout,
            });
        }
        let connect = SqliteConnectOptions::from_str(url)?
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
                .connect_with(connect.create_if_missing(true))
                .await?;
            SqliteStore {
                reader: pool.clone(),
                writer: pool,
                orders: None,
                file: None,
                // One connection, so SQLite's own automatic checkpoint stays on.
                _checkpoints: None,
            }
        } else {
            // Only the first connection may create the file: a pool that reconnects after the
            // file was deleted must fail ("cannot open"), not start an empty shop in its place.
            let path = connect.get_filename().to_owned();
            if !path.exists() {
                connect
                    .clone()
                    .create_if_missing(true)
                    .connect()
                    .await?
                    .close()
                    .await?;
            }
            let file = SqliteFile::open(&path, options.sqlite_wal_max).map_err(|error| {
                DbError::FileGone(format!("cannot read {}: {error}", path.display()))
            })?;
            file.refresh_mark();
            // The WAL is also cut back to this size whenever SQLite restarts it (-1: never).
            let size_limit = match file.wal_truncate_at {
                0 => "-1".to_owned(),
                bytes => bytes.to_string(),
            };
            let connect = connect.pragma("journal_size_limit", size_limit);
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
            let file = Arc::new(file);
            let orders = SqliteWriter::start(WriterSettings {
                path: path.clone(),
                journal_size_limit: match file.wal_truncate_at {
                    0 => -1,
                    bytes => i64::try_from(bytes).unwrap_or(i64::MAX),
                },
                queue_timeout: options.acquire_timeout,
                run_timeout: statement_timeout,
                file: file.clone(),
                status: status.clone(),
            })
            .map_err(|error| DbError::Other(sqlx::Error::Io(error)))?;
            let orders = Arc::new(orders);
            spawn_checkpoints(reader.clone(), orders.clone(), file.clone(), stop.clone());
            SqliteStore {
                reader,
                writer,
                orders: Some(orders),
                file: Some(file),
                _checkpoints: Some(Arc::new(stop.drop_guard())),
            }
        };
        Ok(Db {
            store: Store::Sqlite(store),
            status,
            statement_timeout,
        })
    }

    pub fn engine(&self) -> Engine {
        match self.store {
            Store::Sqlite(_) => Engine::Sqlite,
            Store::Postgres(_) => Engine::Postgres,
        }
    }

    /// The PostgreSQL pool, for tests that inspect the server's side of a session.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.store {
            Store::Postgres(pool) => Some(pool),
            Store::Sqlite(_) => None,
        }
    }

    /// What is known about the store's health (see [`status`]).
    pub fn status(&self) -> &StoreStatus {
        &self.status
    }

    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// Applies the embedded migrations for this engine. Safe to run from several processes at
    /// once on PostgreSQL (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), DbError> {
        let result = match &self.store {
            Store::Sqlite(store) => {
                migrations::migrator(Engine::Sqlite)
                    .run(&store.writer)
                    .await
            }
            Store::Postgres(pool) => migrations::migrator(Engine::Postgres).run(pool).await,
        };
        result.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(error) => DbError::from(error),
            other => DbError::Other(sqlx::Error::Migrate(Box::new(other))),
        })
    }

    /// Runs one database call: bounded by the statement timeout, with its outcome told to the
    /// store status, and with no current tracing span.
    ///
    /// sqlx's SQLite worker thread keeps the span that was current when a command was sent, and
    /// can hold it (entered) long after the query returns. Were that the request's span, the
    /// request would stay open and its telemetry would be late or lost. The
    /// `#[tracing::instrument]` span of each `db` function still times the call; only the worker
    /// no longer sees it. In a request that is not traced there is no such span, so the call is
    /// timed here for Live Metrics' dependency rate instead (see [`crate::sampling`]).
    ///
    /// The call goes on the heap: sqlx's futures for both engines make it several kilobytes,
    /// which every enclosing future (handler, layers) would otherwise hold inline and copy each
    /// time it is moved. Callgrind counted 166,000 instructions of `memcpy` per checkout before
    /// this.
    pub(crate) fn call<'a, T: 'a, F>(
        &'a self,
        call: F,
    ) -> impl Future<Output = Result<T, DbError>> + 'a
    where
        F: Future<Output = Result<T, DbError>> + 'a,
    {
        let timeout = self.statement_timeout;
        self.call_bounded_by(Box::pin(async move {
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or(Err(DbError::TimedOut(timeout)))
        }))
    }

    /// [`Db::call`] for a call that bounds its own time (a checkout must know whether its
    /// COMMIT had been sent when time ran out).
    pub(crate) fn call_bounded_by<'a, T: 'a, F>(
        &'a self,
        call: F,
    ) -> impl Future<Output = Result<T, DbError>> + 'a
    where
        F: Future<Output = Result<T, DbError>> + 'a,
    {
        use tracing::Instrument as _;
        let call = Box::pin(call);
        async move {
            let untraced = crate::sampling::untraced_dependency();
            let result = call.instrument(tracing::Span::none()).await;
            match &result {
                Ok(_) => self.status.read_ok(),
                Err(error) => {
                    self.status.failed(error);
                    if status::fault_of(error).is_some_and(|f| f.kind == FaultKind::Unwritable) {
                        self.shrink_wal();
                    }
                }
            }
            // Tell telemetry how the call went: Live Metrics when the request is not traced,
            // else the call's span (the calling `db` function's, current here).
            match untraced {
                Some(dependency) => dependency.finish(result.is_err()),
                None => crate::sampling::dependency_outcome(result.as_ref().err()),
            }
            result
        }
    }

    /// Refuses a write when the SQLite file the shop opened is no longer at its path: a commit
    /// would go to a deleted file and be lost.
    pub(crate) fn check_file(&self) -> Result<(), DbError> {
        match &self.store {
            Store::Sqlite(SqliteStore {
                file: Some(file), ..
            }) => file.check(),
            _ => Ok(()),
        }
    }

    /// Whether a connection whose call failed must be closed rather than reused. Always, except
    /// the single connection that *is* an in-memory database.
    pub(crate) fn discard_failed_connections(&self) -> bool {
        match &self.store {
            Store::Sqlite(store) => store.file.is_some(),
            Store::Postgres(_) => true,
        }
    }

    /// Called after every committed write that did not go through the writer thread (which
    /// calls [`note_commit`] itself).
    pub(crate) fn committed(&self) {
        let file = match &self.store {
            Store::Sqlite(store) => store.file.as_deref(),
            Store::Postgres(_) => None,
        };
        note_commit(&self.status, file);
    }

    /// The thread that writes orders on a SQLite file (see [`sqlite_writer`]).
    pub(crate) fn order_writer(&self) -> Option<&SqliteWriter> {
        match &self.store {
            Store::Sqlite(store) => store.orders.as_deref(),
            Store::Postgres(_) => None,
        }
    }

    /// Waits, before a write, until the SQLite WAL is under its bound (see
    /// [`SqliteFile::over_limit`]); at once on PostgreSQL, in memory, or with the WAL unbounded.
    pub(crate) async fn wait_for_wal_room(&self) {
        if let Store::Sqlite(SqliteStore {
            file: Some(file), ..
        }) = &self.store
        {
            file.wait_for_room().await;
        }
    }

    /// After a write failed for want of space (or an I/O error): the WAL may be what fills the
    /// volume, and no commit will succeed to ask for its truncation, so ask now.
    fn shrink_wal(&self) {
        if let Store::Sqlite(SqliteStore {
            file: Some(file), ..
        }) = &self.store
            && file.wal_truncate_at > 0
            && !file.shrink.swap(true, Ordering::AcqRel)
        {
            file.checkpoint_now.notify_one();
        }
    }

    /// A cheap round trip through the reader pool.
    #[tracing::instrument(level = "debug", skip_all, fields(otel.name = "SELECT 1", otel.kind = "client", db.system.name = self.engine().as_str()))]
    pub async fn ping(&self) -> Result<(), DbError> {
        self.call(async move {
            with_reader!(self, pool => {
                sqlx::query("SELECT 1").execute(pool).await?;
            });
            Ok(())
        })
        .await
    }

    /// A real write through the writer, as small as one can be: a store that commits it can take
    /// orders (see [`Db::readiness`]).
    #[tracing::instrument(level = "debug", skip_all, fields(otel.name = "UPDATE store_probe", otel.kind = "client", db.system.name = self.engine().as_str()))]
    pub async fn probe_write(&self) -> Result<(), DbError> {
        const PROBE: &str = "UPDATE store_probe SET probes = probes + 1 WHERE id = 1";
        if let Some(writer) = self.order_writer() {
            // The writer thread records the commit itself.
            return self.call(writer.probe()).await;
        }
        self.call(async move {
            self.check_file()?;
            with_writer!(self, pool => {
                let mut conn = pool.acquire().await?;
                if let Err(error) = sqlx::query(PROBE).execute(&mut *conn).await {
                    if self.discard_failed_connections() {
                        conn.close_on_drop();
                    }
                    return Err(error.into());
                }
            });
            Ok(())
        })
        .await?;
        self.committed();
        Ok(())
    }

    /// Whether the store can take orders, and if not, why (the sentence `/readyz` shows).
    ///
    /// The file check is a `stat`. A store that committed a write within [`RECENT_WRITE`] is up
    /// and is not probed: a probe would queue behind the very surge that keeps it busy, and a
    /// busy shop is not a broken one. A store whose calls met a fault that recently is down, also
    /// without a probe (one small write may still fit on a volume where no checkout does).
    /// Otherwise one small write is committed: reads alone would call a full disk or a
    /// read-only file ready.
    pub async fn readiness(&self) -> Result<(), String> {
        if let Err(error) = self.check_file() {
            self.status.failed(&error);
            return Err(error.to_string());
        }
        match self.status.fault() {
            None if self.status.wrote_within(RECENT_WRITE) => return Ok(()),
            Some(fault) if self.status.faulted_within(RECENT_WRITE) => return Err(fault.reason),
            _ => {}
        }
        match tokio::time::timeout(READY_PROBE_TIMEOUT, self.probe_write()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self
                .status
                .fault()
                .map_or_else(|| error.to_string(), |fault| fault.reason)),
            Err(_) => {
                let timed_out = DbError::TimedOut(READY_PROBE_TIMEOUT);
                self.status.failed(&timed_out);
                Err(timed_out.to_string())
            }
        }
    }

    /// Closes every pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.store {
            Store::Sqlite(store) => {
                if let Some(orders) = &store.orders {
                    orders.close().await;
                }
                store.reader.close().await;
                store.writer.close().await;
            }
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

/// What every committed write does: tells the store status, and keeps the SQLite WAL bounded
/// by asking the checkpoint task for a checkpoint every few megabytes of growth, and for a
/// truncation once past the mark (see [`spawn_checkpoints`]). The writer thread calls it once per
/// group.
fn note_commit(status: &StoreStatus, file: Option<&SqliteFile>) {
    status.write_ok();
    let Some(file) = file else {
        return;
    };
    if file.wal_truncate_at == 0 {
        // Unbounded (for comparisons): only the passive checkpoint every second, as before.
        return;
    }
    let wal = file.wal_len();
    let mark = file.truncate_mark.load(Ordering::Relaxed);
    // Every 4 MiB, or more often on a volume too small for that.
    let step = CHECKPOINT_EVERY_BYTES.min(mark / 2).max(1);
    if wal > mark || wal > file.checkpoint_asked_at.load(Ordering::Relaxed) + step {
        file.checkpoint_asked_at.store(wal, Ordering::Relaxed);
        file.checkpoint_now.notify_one();
    }
}

/// Truncates the SQLite WAL on the writer thread, between two groups of orders: a `TRUNCATE`
/// checkpoint copies what is left into the database file, waits for readers still reading old
/// frames (briefly: new readers read the file once it is up to date), and empties the WAL.
/// Readers that stay on old frames longer than 200 ms postpone it to the next checkpoint rather
/// than hold every checkout.
async fn truncate_wal(writer: &SqliteWriter, file: &SqliteFile) -> Result<(), DbError> {
    let started = std::time::Instant::now();
    let outcome = writer.truncate_wal().await;
    let took = started.elapsed();
    match outcome? {
        (0, _, _) => tracing::debug!(?took, "WAL truncated"),
        (_busy, frames, copied) => {
            tracing::debug!(
                ?took,
                frames,
                copied,
                "WAL truncation postponed: readers still on it"
            );
            // Try again soon rather than at the next tick.
            file.checkpoint_now.notify_one();
        }
    }
    Ok(())
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
            max_connections: 2,
            ..DbOptions::new(format!("sqlite://{}", path.display()))
        })
        .await
        .unwrap();
        let Store::Sqlite(store) = &db.store else {
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
