//! The SQLite write path for orders: one thread owning one rusqlite connection, taking checkouts
//! from a queue and committing them in groups.
//!
//! **Why.** Through sqlx, every statement of a checkout was a crossing to the connection's worker
//! thread and back (pool acquire, BEGIN, an UPDATE per line, the order, a line each, COMMIT): at
//! least six thread hand-offs per order, and on a shop pinned to one core each one is a context
//! switch. Measured with the shop on one core and 64 shoppers, that path placed 0.15× the orders
//! per second of the same transaction on a raw connection. Here an order costs one hand-off each
//! way, the statements are prepared once (rusqlite's statement cache), and the orders that queue
//! up while a group is being written go into the next group: one `COMMIT` (one append of the
//! pages they share to the WAL) answers all of them. Under a surge the groups grow by themselves;
//! a lone order is written at once, never held back to wait for company.
//!
//! **The guarantees are the old ones, kept order by order.**
//! - Each order runs in its own `SAVEPOINT` inside the group's transaction: an order refused for
//!   want of stock, for an unknown product or for an idempotency key already used is rolled back
//!   alone (so is one that breaks a constraint), and the others commit. Stock is still taken by
//!   the conditional `UPDATE … WHERE stock >= $qty`, with the CHECK constraint behind it.
//! - Nobody hears anything before the `COMMIT` that decides it has succeeded: every answer of a
//!   group is sent after it (a refusal too, since what refused it may be an order of the same
//!   group). If a statement that is not one order's own refusal fails, or the `COMMIT` fails, or
//!   the database file is no longer the one the shop opened ([`SqliteFile::check`], just before
//!   `COMMIT`), the whole group is rolled back, every order in it is answered with that error, and
//!   the connection is closed and reopened for the next group, never reused (after a failed
//!   `COMMIT` SQLite and a caller can disagree on whether a transaction is open). The reopen
//!   never creates the file: a deleted database stays unavailable.
//! - A checkout that is still queued when its caller gives up (its queue wait ran past
//!   [`super::DbOptions::acquire_timeout`], or the request went away) is marked cancelled with one
//!   atomic operation and is skipped, never written later. One the thread has taken is written
//!   unless its caller gives up before the group's `COMMIT` is decided, in which case the group is
//!   rolled back and written again without it; a caller who gives up after that learns that the
//!   outcome is unknown ([`DbError::OutcomeUnknown`], with the order id, to retry with the same
//!   idempotency key).
//! - A retried request (its idempotency key taken) or a refused one that carries a key is looked
//!   up in the same transaction, so a retry of an order of the same group gets that order.
//!
//! **What else runs here.** The WAL truncation ([`super::spawn_checkpoints`] asks for it) runs on
//! this thread between two groups: it needs the writer idle, and a truncation from another
//! connection would wait on a busy timeout that a writer committing group after group never lets
//! expire. `/readyz`'s write probe runs here too, in a group, so it proves the path orders take.
//! Migrations, the seed and restocking still go through sqlx's writer pool: they run at start-up or
//! by an operator, and SQLite's lock (with its busy timeout) keeps them and this thread apart.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

use super::orders::Taken;
use super::status::StoreStatus;
use super::{DbError, SqliteFile};
use crate::shop::order::{
    CheckoutOutcome, Customer, LineRequest, NewOrder, Order, OrderLine, Shortage,
};

/// The most orders one transaction takes: a bound on how long the first of them waits for the
/// last to be written.
pub const MAX_GROUP: usize = 128;

/// How long a statement waits for SQLite's lock (held by a migration or a restock through sqlx).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the WAL truncation waits for readers still on old frames before it gives up until
/// the next checkpoint, holding every checkout meanwhile.
const TRUNCATE_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

const BEGIN: &str = "BEGIN IMMEDIATE";
const COMMIT: &str = "COMMIT";
const ROLLBACK: &str = "ROLLBACK";
const SAVEPOINT: &str = "SAVEPOINT checkout";
const RELEASE: &str = "RELEASE checkout";
const ROLLBACK_TO: &str = "ROLLBACK TO checkout";
const TAKE_STOCK: &str = "UPDATE products SET stock = stock - ?1 \
     WHERE id = ?2 AND stock >= ?1 RETURNING name, price_cents, stock";
const CURRENT_STOCK: &str = "SELECT name, stock FROM products WHERE id = ?1";
const INSERT_ORDER: &str = "INSERT INTO orders (id, idempotency_key, request_fingerprint, \
     customer_name, email, address, city, postal_code, country, item_count, total_cents, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
const INSERT_LINE: &str = "INSERT INTO order_lines \
     (order_id, product_id, product_name, unit_price_cents, quantity) VALUES (?1, ?2, ?3, ?4, ?5)";
const SELECT_BY_KEY: &str = "SELECT id, request_fingerprint FROM orders WHERE idempotency_key = ?1";
const SELECT_ORDER: &str = "SELECT customer_name, email, address, city, postal_code, country, \
     item_count, total_cents, created_at FROM orders WHERE id = ?1";
const SELECT_LINES: &str = "SELECT product_id, product_name, unit_price_cents, quantity \
     FROM order_lines WHERE order_id = ?1 ORDER BY product_id";
const PROBE: &str = "UPDATE store_probe SET probes = probes + 1 WHERE id = 1";

/// Where a queued piece of work stands; its caller and the thread move it on with
/// compare-and-swap, so exactly one of them decides whether a given-up order can still be written.
#[derive(Debug)]
struct Ticket(AtomicU8);

const QUEUED: u8 = 0;
/// Taken by the thread; still rolled back if its caller gives up now.
const TAKEN: u8 = 1;
/// Its group's `COMMIT` is under way: giving up now leaves the outcome unknown.
const COMMITTING: u8 = 2;
const GIVEN_UP: u8 = 3;

impl Ticket {
    fn new() -> Ticket {
        Ticket(AtomicU8::new(QUEUED))
    }

    /// The thread takes the work: false if its caller gave up first.
    fn take(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The thread is about to commit the work: false if its caller gave up first.
    fn commit(&self) -> bool {
        self.0
            .compare_exchange(TAKEN, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The group was rolled back to be written again: the work is taken, not committing.
    fn retake(&self) {
        let _ = self
            .0
            .compare_exchange(COMMITTING, TAKEN, Ordering::AcqRel, Ordering::Acquire);
    }

    fn given_up(&self) -> bool {
        self.0.load(Ordering::Acquire) == GIVEN_UP
    }

    /// The caller gives up only while the work is still queued; returns whether it did.
    fn cancel_if_queued(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The caller gives up: returns where the work stood. `QUEUED` or `TAKEN`: it will never be
    /// written. `COMMITTING`: it may be.
    fn give_up(&self) -> u8 {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current == COMMITTING || current == GIVEN_UP {
                return current;
            }
            match self
                .0
                .compare_exchange(current, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return current,
                Err(actual) => current = actual,
            }
        }
    }
}

/// Gives the ticket up if the caller's future is dropped before its answer came.
struct GiveUpOnDrop<'a>(Option<&'a Ticket>);

impl Drop for GiveUpOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.0 {
            ticket.give_up();
        }
    }
}

/// One order to write, owned so that it can cross to the thread.
#[derive(Debug)]
struct PlaceJob {
    order_id: String,
    customer: Customer,
    /// Sorted by product id.
    lines: Vec<LineRequest>,
    idempotency_key: Option<String>,
    fingerprint: String,
    created_at: OffsetDateTime,
}

#[derive(Debug)]
enum Work {
    Place(Box<PlaceJob>),
    Probe,
}

#[derive(Debug)]
enum Done {
    Order(Box<CheckoutOutcome>),
    Probed,
}

#[derive(Debug)]
struct Pending {
    ticket: Arc<Ticket>,
    work: Work,
    reply: oneshot::Sender<Result<Done, WriteError>>,
}

/// What the thread is asked to do.
enum Job {
    /// Goes into a group.
    Work(Pending),
    /// `PRAGMA wal_checkpoint(TRUNCATE)` between two groups: SQLite's three numbers.
    TruncateWal(oneshot::Sender<Result<(i64, i64, i64), WriteError>>),
    /// Finish, close the connection, answer, and stop.
    Close(oneshot::Sender<()>),
    /// Tests: hold the thread until the sender is dropped or sends, so that work queues up.
    #[cfg(test)]
    Pause(mpsc::Receiver<()>),
}

/// A failure on the writer thread, kept as SQLite said it so that it can answer every order of a
/// group (each gets its own [`DbError`]).
#[derive(Clone, Debug)]
enum WriteError {
    /// SQLite's extended result code and message.
    Sqlite { code: i32, message: String },
    /// The database file is no longer the one the shop opened.
    FileGone(String),
    /// Not SQLite's failure: a value of an unexpected type, a panic on the thread.
    Other(String),
}

impl From<rusqlite::Error> for WriteError {
    fn from(error: rusqlite::Error) -> Self {
        match error {
            rusqlite::Error::SqliteFailure(failure, message) => WriteError::Sqlite {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            },
            other => WriteError::Other(other.to_string()),
        }
    }
}

impl WriteError {
    /// A failure that belongs to one order (a constraint it broke), not to the group.
    fn is_constraint(&self) -> bool {
        matches!(self, WriteError::Sqlite { code, .. } if code & 0xff == 19)
    }

    fn into_db_error(self) -> DbError {
        match self {
            WriteError::Sqlite { code, message } => {
                DbError::from(sqlx::Error::Database(Box::new(SqliteWriteError {
                    code,
                    message,
                })))
            }
            WriteError::FileGone(reason) => DbError::FileGone(reason),
            WriteError::Other(message) => DbError::Other(sqlx::Error::Protocol(message)),
        }
    }
}

/// A SQLite error from the writer thread, as sqlx's error type so that the shop's error handling
/// (unavailable or not, the fault `/readyz` reports, constraint names) reads it like one of
/// sqlx's own: [`super::sqlite_code`] knows it.
#[derive(Debug)]
pub(crate) struct SqliteWriteError {
    /// SQLite's extended result code.
    pub(crate) code: i32,
    message: String,
}

impl std::fmt::Display for SqliteWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteWriteError {}

impl sqlx::error::DatabaseError for SqliteWriteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use sqlx::error::ErrorKind;
        // SQLite's extended codes for constraint failures (SQLITE_CONSTRAINT_*).
        match self.code {
            1555 | 2067 => ErrorKind::UniqueViolation,
            787 => ErrorKind::ForeignKeyViolation,
            1299 => ErrorKind::NotNullViolation,
            275 => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// What the thread needs to know about the store.
#[derive(Debug)]
pub(crate) struct WriterSettings {
    pub path: PathBuf,
    /// `PRAGMA journal_size_limit` (-1: none).
    pub journal_size_limit: i64,
    /// How long a checkout may wait in the queue before it is cancelled (503, busy).
    pub queue_timeout: Duration,
    /// How long a taken checkout may take to be answered.
    pub run_timeout: Duration,
    pub file: Arc<SqliteFile>,
    pub status: Arc<StoreStatus>,
}

/// The handle on the writer thread; see the module documentation.
#[derive(Debug)]
pub(crate) struct SqliteWriter {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    queue_timeout: Duration,
    run_timeout: Duration,
    #[cfg(test)]
    stats: Arc<Stats>,
}

/// Counters, for tests (and a debugger) to see how orders were grouped.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Transactions committed.
    pub groups: AtomicU64,
    /// Orders and probes those carried (refused ones included).
    pub grouped: AtomicU64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Work(_) => "Work",
            Job::TruncateWal(_) => "TruncateWal",
            Job::Close(_) => "Close",
            #[cfg(test)]
            Job::Pause(_) => "Pause",
        })
    }
}

fn closed() -> DbError {
    DbError::Unavailable(sqlx::Error::PoolClosed)
}

impl SqliteWriter {
    /// Starts the thread. The connection is opened by the thread when the first work comes (the
    /// schema may not exist yet when the store is opened).
    pub(crate) fn start(settings: WriterSettings) -> std::io::Result<SqliteWriter> {
        let (queue, jobs) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let writer = SqliteWriter {
            queue: Mutex::new(Some(queue)),
            queue_timeout: settings.queue_timeout,
            run_timeout: settings.run_timeout,
            #[cfg(test)]
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || Thread::new(settings, stats).run(&jobs))?;
        Ok(writer)
    }

    fn send(&self, job: Job) -> Result<(), DbError> {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match queue.as_ref() {
            Some(queue) => queue.send(job).map_err(|_| closed()),
            None => Err(closed()),
        }
    }

    #[cfg(test)]
    fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Queues `work` and waits for its answer; `order_id` names the order an unknown outcome is
    /// about.
    async fn submit(&self, work: Work, order_id: Option<&str>) -> Result<Done, DbError> {
        let ticket = Arc::new(Ticket::new());
        let (reply, mut answer) = oneshot::channel();
        self.send(Job::Work(Pending {
            ticket: ticket.clone(),
            work,
            reply,
        }))?;
        let mut guard = GiveUpOnDrop(Some(&ticket));
        let answer = match tokio::time::timeout(self.queue_timeout, &mut answer).await {
            Ok(answer) => answer,
            // Still queued: cancelled, never written. The queue is full, not broken (the
            // write probe finds out whether the thread is stuck).
            Err(_) if ticket.cancel_if_queued() => {
                guard.0 = None;
                return Err(DbError::Unavailable(sqlx::Error::PoolTimedOut));
            }
            Err(_) => match tokio::time::timeout(self.run_timeout, &mut answer).await {
                Ok(answer) => answer,
                Err(_) => {
                    guard.0 = None;
                    return Err(match (ticket.give_up(), order_id) {
                        (COMMITTING, Some(order_id)) => DbError::OutcomeUnknown {
                            order_id: order_id.to_owned(),
                            cause: format!("no answer to COMMIT within {:?}", self.run_timeout),
                        },
                        _ => DbError::TimedOut(self.run_timeout),
                    });
                }
            },
        };
        guard.0 = None;
        match answer {
            Ok(done) => done.map_err(WriteError::into_db_error),
            // The thread dropped the work without an answer: it stopped (closed, or a bug).
            Err(_) => Err(match (ticket.give_up(), order_id) {
                (COMMITTING, Some(order_id)) => DbError::OutcomeUnknown {
                    order_id: order_id.to_owned(),
                    cause: "the SQLite writer stopped during COMMIT".to_owned(),
                },
                _ => DbError::Unavailable(sqlx::Error::WorkerCrashed),
            }),
        }
    }

    /// Writes one order: see [`super::orders::place`] for what the outcomes mean.
    pub(crate) async fn place(
        &self,
        new: &NewOrder<'_>,
        order_id: String,
        created_at: OffsetDateTime,
    ) -> Result<CheckoutOutcome, DbError> {
        let mut lines = new.lines.to_vec();
        lines.sort_by_key(|line| line.product_id);
        let job = PlaceJob {
            order_id: order_id.clone(),
            customer: new.customer.clone(),
            lines,
            idempotency_key: new.idempotency_key.map(str::to_owned),
            fingerprint: new.fingerprint.to_owned(),
            created_at,
        };
        match self
            .submit(Work::Place(Box::new(job)), Some(&order_id))
            .await?
        {
            Done::Order(outcome) => Ok(*outcome),
            Done::Probed => unreachable!("an order is answered with an order"),
        }
    }

    /// Commits the smallest write there is, through the same thread and transaction as orders.
    pub(crate) async fn probe(&self) -> Result<(), DbError> {
        self.submit(Work::Probe, None).await.map(|_| ())
    }

    /// Truncates the WAL between two groups; SQLite's `(busy, frames, copied)`.
    pub(crate) async fn truncate_wal(&self) -> Result<(i64, i64, i64), DbError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::TruncateWal(reply))?;
        match answer.await {
            Ok(result) => result.map_err(WriteError::into_db_error),
            Err(_) => Err(closed()),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none()
    }

    /// Lets the thread finish the work queued so far, close its connection and stop; later work
    /// is refused as with a closed pool.
    pub(crate) async fn close(&self) {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(queue) = queue {
            let (reply, closed) = oneshot::channel();
            if queue.send(Job::Close(reply)).is_ok() {
                let _ = closed.await;
            }
        }
    }

    /// Tests: holds the thread until the returned sender sends or is dropped.
    #[cfg(test)]
    fn pause(&self) -> mpsc::Sender<()> {
        let (resume, paused) = mpsc::channel();
        self.send(Job::Pause(paused)).expect("the writer runs");
        resume
    }
}

/// The thread's side.
struct Thread {
    settings: WriterSettings,
    stats: Arc<Stats>,
    conn: Option<Connection>,
}

/// What one piece of work came to inside the group's transaction.
type Outcome = Result<Done, WriteError>;

impl Thread {
    fn new(settings: WriterSettings, stats: Arc<Stats>) -> Thread {
        Thread {
            settings,
            stats,
            conn: None,
        }
    }

    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        let mut next: Option<Job> = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            match job {
                Job::Work(first) => {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match jobs.try_recv() {
                            Ok(Job::Work(pending)) => group.push(pending),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write_group(group);
                }
                Job::TruncateWal(reply) => {
                    let _ = reply.send(self.truncate_wal());
                }
                Job::Close(reply) => {
                    drop(self.conn.take());
                    let _ = reply.send(());
                    return;
                }
                #[cfg(test)]
                Job::Pause(paused) => {
                    let _ = paused.recv();
                }
            }
        }
    }

    fn connection(&mut self) -> Result<&mut Connection, WriteError> {
        if self.conn.is_none() {
            self.conn = Some(open(&self.settings)?);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// Writes a group and answers every piece of work in it.
    fn write_group(&mut self, group: Vec<Pending>) {
        // Work whose caller gave up while it was queued is dropped unanswered, never written.
        let mut group: Vec<Pending> = group
            .into_iter()
            .filter(|pending| pending.ticket.take())
            .collect();
        loop {
            if group.is_empty() {
                return;
            }
            let written =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.try_group(&group)))
                    .unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        Err(WriteError::Other(format!(
                            "the SQLite writer panicked: {what}"
                        )))
                    });
            match written {
                Ok(Some(outcomes)) => {
                    self.stats.groups.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .grouped
                        .fetch_add(group.len() as u64, Ordering::Relaxed);
                    super::note_commit(&self.settings.status, Some(&self.settings.file));
                    for (pending, outcome) in group.into_iter().zip(outcomes) {
                        let _ = pending.reply.send(outcome);
                    }
                    return;
                }
                // Someone gave up while the group was being written: it was rolled back; write
                // it again without them.
                Ok(None) => {
                    group.retain(|pending| !pending.ticket.given_up());
                    for pending in &group {
                        pending.ticket.retake();
                    }
                }
                Err(error) => {
                    // Never reuse a connection whose transaction failed.
                    if let Some(conn) = self.conn.take() {
                        let _ = conn.execute_batch(ROLLBACK);
                    }
                    for pending in group {
                        let _ = pending.reply.send(Err(error.clone()));
                    }
                    return;
                }
            }
        }
    }

    /// One transaction over the group: the outcomes in the group's order once committed, `None`
    /// when it was rolled back because a caller gave up before the COMMIT, or the error that
    /// fails the whole group (the transaction may still be open: the caller drops the
    /// connection).
    fn try_group(&mut self, group: &[Pending]) -> Result<Option<Vec<Outcome>>, WriteError> {
        self.make_wal_room()?;
        let conn = self.connection()?;
        conn.prepare_cached(BEGIN)?.execute([])?;
        let mut outcomes = Vec::with_capacity(group.len());
        for pending in group {
            conn.prepare_cached(SAVEPOINT)?.execute([])?;
            let outcome = match &pending.work {
                Work::Place(job) => place(conn, job).map(|o| o.map(|o| Done::Order(Box::new(o)))),
                Work::Probe => conn
                    .prepare_cached(PROBE)?
                    .execute([])
                    .map(|_| Ok(Done::Probed))
                    .map_err(WriteError::from),
            };
            let outcome = match outcome {
                // Placed: kept.
                Ok(Ok(Done::Probed)) => Ok(Done::Probed),
                Ok(Ok(Done::Order(placed)))
                    if matches!(*placed, CheckoutOutcome::Placed { .. }) =>
                {
                    Ok(Done::Order(placed))
                }
                // Refused (nothing of it may stay), or a constraint this order broke.
                Ok(refused) => {
                    conn.prepare_cached(ROLLBACK_TO)?.execute([])?;
                    refused
                }
                Err(error) if error.is_constraint() => {
                    conn.prepare_cached(ROLLBACK_TO)?.execute([])?;
                    Err(error)
                }
                Err(error) => return Err(error),
            };
            conn.prepare_cached(RELEASE)?.execute([])?;
            outcomes.push(outcome);
        }
        // Last call for callers: from here on, giving up leaves the outcome unknown.
        if !group.iter().all(|pending| pending.ticket.commit()) {
            conn.prepare_cached(ROLLBACK)?.execute([])?;
            return Ok(None);
        }
        // A deleted or replaced file still takes commits, into nowhere.
        self.settings
            .file
            .check()
            .map_err(|error| WriteError::FileGone(error.to_string()))?;
        let conn = self.connection()?;
        conn.prepare_cached(COMMIT)?.execute([])?;
        Ok(Some(outcomes))
    }

    /// Keeps the WAL under its bound before a group is written: the checkpoint task truncates
    /// it well before (at half the bound), but a checkpoint can fall behind (a starved core, a
    /// slow disk) or be held back by a reader on an old snapshot. At the bound, the thread
    /// truncates it itself; if readers still hold it, the group is refused as busy (503), never
    /// written into a WAL past its bound.
    fn make_wal_room(&mut self) -> Result<(), WriteError> {
        let file = &self.settings.file;
        // The group about to be written must fit under the bound too.
        let bound = super::wal_write_limit(file.wal_truncate_at.saturating_mul(2));
        if file.wal_truncate_at == 0 || file.wal_len() < bound {
            return Ok(());
        }
        self.truncate_wal()?;
        if self.settings.file.wal_len() < bound {
            return Ok(());
        }
        Err(WriteError::Sqlite {
            code: 5, // SQLITE_BUSY: load, not a fault
            message: "the WAL is at its bound and readers keep it from being truncated".into(),
        })
    }

    fn truncate_wal(&mut self) -> Result<(i64, i64, i64), WriteError> {
        let conn = self.connection()?;
        conn.busy_timeout(TRUNCATE_BUSY_TIMEOUT)?;
        let started = std::time::Instant::now();
        let outcome = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        });
        tracing::trace!(took = ?started.elapsed(), "WAL checkpoint (TRUNCATE)");
        let reset = conn.busy_timeout(BUSY_TIMEOUT);
        match (outcome, reset) {
            (Ok(numbers), Ok(())) => Ok(numbers),
            (Err(error), _) | (_, Err(error)) => {
                // A connection that failed to write may be stuck read-only: open a new one.
                self.conn = None;
                Err(error.into())
            }
        }
    }
}

/// Opens the writer's connection: read-write, never creating the file (a deleted database must
/// stay gone, not come back empty), with the shop's settings and no automatic checkpoint (the
/// checkpoint task does that).
fn open(settings: &WriterSettings) -> Result<Connection, WriteError> {
    let conn = Connection::open_with_flags(
        &settings.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {};",
        settings.journal_size_limit
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// One order's statements, inside its savepoint. `Ok(Err(_))` is this order's own failure.
fn place(
    conn: &Connection,
    job: &PlaceJob,
) -> Result<Result<CheckoutOutcome, WriteError>, WriteError> {
    let mut taken = Taken::with_capacity(job.lines.len());
    let mut short = Vec::new();
    let mut unknown = Vec::new();
    {
        let mut take_stock = conn.prepare_cached(TAKE_STOCK)?;
        for line in &job.lines {
            let row = take_stock
                .query_row(params![line.quantity, line.product_id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            match row {
                Some((product_name, unit_price_cents, stock)) => {
                    taken.push(line, product_name, unit_price_cents, stock);
                }
                None => {
                    let current = conn
                        .prepare_cached(CURRENT_STOCK)?
                        .query_row(params![line.product_id], |row| {
                            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                        })
                        .optional()?;
                    match current {
                        Some((name, available)) => short.push(Shortage {
                            product_id: line.product_id,
                            name,
                            requested: line.quantity,
                            available,
                        }),
                        None => unknown.push(line.product_id),
                    }
                }
            }
        }
    }
    if !unknown.is_empty() || !short.is_empty() {
        // A retry of an order placed before the stock ran out still gets that order.
        if let Some(key) = &job.idempotency_key
            && let Some(outcome) = replay(conn, key, &job.fingerprint)?
        {
            return Ok(Ok(outcome));
        }
        return Ok(Ok(if unknown.is_empty() {
            CheckoutOutcome::OutOfStock(short)
        } else {
            CheckoutOutcome::UnknownProducts(unknown)
        }));
    }
    let (item_count, total_cents) = (taken.item_count(), taken.total_cents());
    let customer = &job.customer;
    let created_at = job
        .created_at
        .format(&Rfc3339)
        .map_err(|error| WriteError::Other(error.to_string()))?;
    let inserted = conn.prepare_cached(INSERT_ORDER)?.execute(params![
        job.order_id,
        job.idempotency_key,
        job.fingerprint,
        customer.name,
        customer.email,
        customer.address,
        customer.city,
        customer.postal_code,
        customer.country,
        item_count,
        total_cents,
        created_at,
    ]);
    if let Err(error) = inserted {
        let error = WriteError::from(error);
        let key_taken = matches!(&error, WriteError::Sqlite { message, .. }
            if message.contains("orders.idempotency_key"));
        return match &job.idempotency_key {
            // A retry, or a request racing the first one with the same key (maybe in this very
            // group): the first order, or the news that the key was used for another request.
            Some(key) if key_taken => match replay(conn, key, &job.fingerprint)? {
                Some(outcome) => Ok(Ok(outcome)),
                None => Err(WriteError::Other(
                    "an idempotency key in use has no order".to_owned(),
                )),
            },
            _ if error.is_constraint() => Ok(Err(error)),
            _ => Err(error),
        };
    }
    {
        let mut insert_line = conn.prepare_cached(INSERT_LINE)?;
        for line in &taken.lines {
            insert_line.execute(params![
                job.order_id,
                line.product_id,
                line.product_name,
                line.unit_price_cents,
                line.quantity,
            ])?;
        }
    }
    Ok(Ok(CheckoutOutcome::Placed {
        order: Order {
            id: job.order_id.clone(),
            customer: customer.clone(),
            lines: taken.lines,
            item_count,
            total_cents,
            created_at: job.created_at,
        },
        stock_left: taken.stock_left,
    }))
}

/// The earlier outcome for an idempotency key, if the key was used before.
fn replay(
    conn: &Connection,
    key: &str,
    fingerprint: &str,
) -> Result<Option<CheckoutOutcome>, WriteError> {
    let existing: Option<(String, String)> = conn
        .prepare_cached(SELECT_BY_KEY)?
        .query_row(params![key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((order_id, stored_fingerprint)) = existing else {
        return Ok(None);
    };
    if stored_fingerprint != fingerprint {
        return Ok(Some(CheckoutOutcome::KeyReused));
    }
    let row = conn
        .prepare_cached(SELECT_ORDER)?
        .query_row(params![order_id], |row| {
            Ok((
                Customer {
                    name: row.get(0)?,
                    email: row.get(1)?,
                    address: row.get(2)?,
                    city: row.get(3)?,
                    postal_code: row.get(4)?,
                    country: row.get(5)?,
                },
                row.get::<_, i64>(6)?,
                row.get::<_, i64>(7)?,
                row.get::<_, String>(8)?,
            ))
        })?;
    let (customer, item_count, total_cents, created_at) = row;
    let created_at = OffsetDateTime::parse(&created_at, &Rfc3339)
        .map_err(|error| WriteError::Other(format!("order {order_id}'s created_at: {error}")))?;
    let lines = conn
        .prepare_cached(SELECT_LINES)?
        .query_map(params![order_id], |row| {
            Ok(OrderLine {
                product_id: row.get(0)?,
                product_name: row.get(1)?,
                unit_price_cents: row.get(2)?,
                quantity: row.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(CheckoutOutcome::Replayed(Order {
        id: order_id,
        customer,
        lines,
        item_count,
        total_cents,
        created_at,
    })))
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    use super::*;
    use crate::db::orders::{self, Audit};
    use crate::db::{Db, DbOptions, with_reader};
    use crate::shop::order::StockLeft;

    /// A seeded shop on a fresh file, and the directory that holds it.
    async fn shop(queue_timeout: Duration) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("shop.db").display());
        let db = Db::connect(&DbOptions {
            acquire_timeout: queue_timeout,
            ..DbOptions::new(url)
        })
        .await
        .unwrap();
        crate::server::prepare(&db).await.unwrap();
        (dir, db)
    }

    fn customer(name: &str) -> Customer {
        Customer {
            name: name.into(),
            email: "ada@example.com".into(),
            address: "12 Analytical Row".into(),
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "United Kingdom".into(),
        }
    }

    async fn stock(db: &Db, product: i64) -> i64 {
        with_reader!(db, pool => sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
            .bind(product)
            .fetch_one(pool)
            .await
            .unwrap())
    }

    async fn product_ids(db: &Db) -> Vec<i64> {
        with_reader!(db, pool => sqlx::query_scalar("SELECT id FROM products ORDER BY id LIMIT 3")
            .fetch_all(pool)
            .await
            .unwrap())
    }

    /// Polls `future` once, so that it queues its work, and keeps it for later.
    async fn queue<'a, T>(
        mut future: Pin<Box<dyn Future<Output = T> + 'a>>,
    ) -> Pin<Box<dyn Future<Output = T> + 'a>> {
        std::future::poll_fn(|cx| {
            assert!(
                future.as_mut().poll(cx).is_pending(),
                "the writer is paused: nothing can be answered yet"
            );
            Poll::Ready(())
        })
        .await;
        future
    }

    fn writer(db: &Db) -> &SqliteWriter {
        db.order_writer()
            .expect("a SQLite file has a writer thread")
    }

    /// Orders that queue up while the writer is busy go into one transaction; the ones refused
    /// (short stock, unknown product, a key used for another request) roll back alone, a retry of
    /// an order of the same group gets that order, and the others commit.
    #[tokio::test]
    async fn a_group_commits_its_orders_and_rolls_back_only_the_refused_ones() {
        let (_dir, db) = shop(Duration::from_secs(5)).await;
        let products = product_ids(&db).await;
        let (p1, p2, p3) = (products[0], products[1], products[2]);
        let before = (
            stock(&db, p1).await,
            stock(&db, p2).await,
            stock(&db, p3).await,
        );
        let (ada, grace) = (customer("Ada"), customer("Grace"));
        let one = |product| {
            [LineRequest {
                product_id: product,
                quantity: 1,
            }]
        };
        let (l1, l3) = (one(p1), one(p3));
        let too_many = [LineRequest {
            product_id: p2,
            quantity: before.1 + 1,
        }];
        // Two lines, the second unknown: the first line's stock must come back.
        let with_unknown = [
            LineRequest {
                product_id: p3,
                quantity: 1,
            },
            LineRequest {
                product_id: 999_999,
                quantity: 1,
            },
        ];
        let order = |customer, lines, key, fingerprint| NewOrder {
            customer,
            lines,
            idempotency_key: key,
            fingerprint,
        };
        let first = order(&ada, &l1[..], Some("key-a"), "a");
        let short = order(&ada, &too_many[..], None, "b");
        let unknown = order(&ada, &with_unknown[..], None, "c");
        let retry = order(&ada, &l1[..], Some("key-a"), "a");
        let reused = order(&grace, &l3[..], Some("key-a"), "other request");
        let other = order(&grace, &l3[..], None, "d");

        let groups_before = writer(&db).stats().groups.load(Ordering::Relaxed);
        let resume = writer(&db).pause();
        let mut queued = Vec::new();
        for new in [&first, &short, &unknown, &retry, &reused, &other] {
            queued.push(queue(Box::pin(orders::place(&db, new))).await);
        }
        resume.send(()).unwrap();
        let mut outcomes = Vec::new();
        for future in queued {
            outcomes.push(future.await.unwrap());
        }
        assert_eq!(
            writer(&db).stats().groups.load(Ordering::Relaxed) - groups_before,
            1,
            "one transaction for the six"
        );

        let CheckoutOutcome::Placed { order: placed, .. } = &outcomes[0] else {
            panic!("placed: {:?}", outcomes[0])
        };
        assert!(
            matches!(&outcomes[1], CheckoutOutcome::OutOfStock(short) if short[0].product_id == p2),
            "{:?}",
            outcomes[1]
        );
        assert!(
            matches!(&outcomes[2], CheckoutOutcome::UnknownProducts(ids) if ids == &[999_999]),
            "{:?}",
            outcomes[2]
        );
        assert!(
            matches!(&outcomes[3], CheckoutOutcome::Replayed(order) if order.id == placed.id && order.lines == placed.lines),
            "{:?}",
            outcomes[3]
        );
        assert!(
            matches!(&outcomes[4], CheckoutOutcome::KeyReused),
            "{:?}",
            outcomes[4]
        );
        let CheckoutOutcome::Placed { order: second, .. } = &outcomes[5] else {
            panic!("placed: {:?}", outcomes[5])
        };

        assert_eq!(
            stock(&db, p1).await,
            before.0 - 1,
            "one unit of p1 sold, once"
        );
        assert_eq!(
            stock(&db, p2).await,
            before.1,
            "the short order took nothing"
        );
        assert_eq!(
            stock(&db, p3).await,
            before.2 - 1,
            "the unknown product's order gave p3 back"
        );
        assert_eq!(orders::count(&db).await.unwrap(), 2);
        for id in [&placed.id, &second.id] {
            let stored = orders::order(&db, id).await.unwrap().expect("committed");
            assert_eq!(stored.lines.len(), 1);
        }
        assert_eq!(orders::audit(&db).await.unwrap(), Audit::default());
        db.close().await;
    }

    /// A checkout whose caller gives up while it is queued (the request went away, or its wait
    /// ran out) is never written, even though the thread reaches it afterwards.
    #[tokio::test]
    async fn a_checkout_given_up_while_queued_is_never_written() {
        let (_dir, db) = shop(Duration::from_millis(50)).await;
        let product = product_ids(&db).await[0];
        let before = stock(&db, product).await;
        let ada = customer("Ada");
        let lines = [LineRequest {
            product_id: product,
            quantity: 1,
        }];
        let order = |key| NewOrder {
            customer: &ada,
            lines: &lines,
            idempotency_key: Some(key),
            fingerprint: "f",
        };
        let (dropped, waited, later) = (order("dropped"), order("waited"), order("later"));

        let resume = writer(&db).pause();
        // The request goes away while its order is queued.
        drop(queue(Box::pin(orders::place(&db, &dropped))).await);
        // The queue wait runs out (the thread is held): a 503 that says "busy".
        let error = orders::place(&db, &waited).await.unwrap_err();
        assert!(
            matches!(error, DbError::Unavailable(sqlx::Error::PoolTimedOut)),
            "{error:?}"
        );
        assert!(
            crate::db::status::fault_of(&error).is_none(),
            "a long queue is load, not a fault"
        );
        resume.send(()).unwrap();
        // Work queued after them is answered, so the thread has been past them.
        let outcome = orders::place(&db, &later).await.unwrap();
        let CheckoutOutcome::Placed { stock_left, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            stock_left,
            [StockLeft {
                product_id: product,
                stock: before - 1
            }],
            "the stock the order's transaction left"
        );

        assert_eq!(orders::count(&db).await.unwrap(), 1, "only the last order");
        assert_eq!(stock(&db, product).await, before - 1);
        for key in ["dropped", "waited"] {
            let retried = orders::place(&db, &order(key)).await.unwrap();
            assert!(
                matches!(retried, CheckoutOutcome::Placed { .. }),
                "a retry of {key} places it for the first time: {retried:?}"
            );
        }
        db.close().await;
    }

    /// A reader on an old snapshot keeps every checkpoint from emptying the WAL: at its bound the
    /// writer refuses orders as busy (a 503) rather than grow it, and takes them again once the
    /// reader lets go.
    #[tokio::test]
    async fn the_writer_never_grows_the_wal_past_its_bound() {
        use sqlx::Connection as _;
        const WAL_MAX: u64 = 1024 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        let url = format!("sqlite://{}", path.display());
        let db = Db::connect(&DbOptions {
            sqlite_wal_max: WAL_MAX,
            ..DbOptions::new(url.clone())
        })
        .await
        .unwrap();
        crate::server::prepare(&db).await.unwrap();
        crate::db::seed::restock_to(&db, 1_000_000).await.unwrap();
        let product = product_ids(&db).await[0];
        let mut reader = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
            .fetch_one(&mut reader)
            .await
            .unwrap();

        let ada = customer("Ada");
        let lines = [LineRequest {
            product_id: product,
            quantity: 1,
        }];
        let wal = dir.path().join("shop.db-wal");
        let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        let (mut placed, mut peak) = (0, 0);
        let refusal = loop {
            let key = format!("held-{placed}");
            let new = NewOrder {
                customer: &ada,
                lines: &lines,
                idempotency_key: Some(&key),
                fingerprint: "f",
            };
            match orders::place(&db, &new).await {
                Ok(CheckoutOutcome::Placed { .. }) => placed += 1,
                Ok(other) => panic!("{other:?}"),
                Err(error) => break error,
            }
            peak = peak.max(wal_len());
            assert!(placed < 100_000, "the WAL never filled");
        };
        assert!(matches!(&refusal, DbError::Unavailable(_)), "{refusal:?}");
        assert!(
            crate::db::status::fault_of(&refusal).is_none(),
            "busy, not broken"
        );
        // One order's worth of slack: the check comes before each group.
        assert!(peak <= WAL_MAX + 64 * 1024, "the WAL reached {peak} bytes");
        assert_eq!(orders::count(&db).await.unwrap(), placed);

        sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
        drop(reader);
        let new = NewOrder {
            customer: &ada,
            lines: &lines,
            idempotency_key: Some("after"),
            fingerprint: "f",
        };
        let outcome = orders::place(&db, &new).await.unwrap();
        assert!(
            matches!(outcome, CheckoutOutcome::Placed { .. }),
            "{outcome:?}"
        );
        assert!(wal_len() < WAL_MAX);
        db.close().await;
    }

    /// The caller's side of a ticket: giving up before the thread commits means never written,
    /// and after, unknown; the thread never writes what was given up.
    #[test]
    fn a_ticket_is_decided_once() {
        let ticket = Ticket::new();
        assert!(ticket.cancel_if_queued());
        assert!(!ticket.take(), "cancelled work is not taken");

        let ticket = Ticket::new();
        assert!(ticket.take());
        assert!(!ticket.cancel_if_queued(), "taken work is no longer queued");
        assert_eq!(ticket.give_up(), TAKEN);
        assert!(!ticket.commit(), "given up before COMMIT: rolled back");
        assert!(ticket.given_up());

        let ticket = Ticket::new();
        assert!(ticket.take() && ticket.commit());
        assert_eq!(
            ticket.give_up(),
            COMMITTING,
            "too late: the outcome is unknown"
        );
        ticket.retake();
        assert!(ticket.commit(), "rolled back and written again");
    }

    /// A SQLite error from the writer thread reads like one of sqlx's own.
    #[test]
    fn writer_errors_keep_their_sqlite_meaning() {
        let full = WriteError::Sqlite {
            code: 13,
            message: "database or disk is full".into(),
        }
        .into_db_error();
        assert!(matches!(full, DbError::Unavailable(_)), "{full:?}");
        let fault = crate::db::status::fault_of(&full).expect("a full disk is a fault");
        assert_eq!(fault.kind, crate::db::status::FaultKind::Unwritable);
        assert_eq!(full.database_code().as_deref(), Some("13"));

        let taken = WriteError::Sqlite {
            code: 2067,
            message: "UNIQUE constraint failed: orders.idempotency_key".into(),
        };
        assert!(taken.is_constraint());
        let sqlx::Error::Database(error) = (match taken.into_db_error() {
            DbError::Other(error) => error,
            other => panic!("{other:?}"),
        }) else {
            panic!("a database error")
        };
        assert!(error.is_unique_violation());
    }
}
