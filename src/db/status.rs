//! What the shop knows about its store between probes: the last fault a real call ran into (a
//! full disk, a read-only or vanished file, an unreachable server) and when a write last
//! committed. `/readyz` reads it (see [`super::Db::readiness`]) so that readiness reflects the
//! faults that real requests meet, without probing the database on every call and without
//! calling a merely busy store "down".
//!
//! Faults are told apart from load: a pool timeout, `SQLITE_BUSY` or a serialization failure
//! means "busy", and never marks the store down. A fault is logged once when it starts (and
//! again if its reason changes) and once when it clears, not per request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::DbError;

/// Which kind of call clears which fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The server does not answer (connection refused or cut, a frozen server). Any successful
    /// call clears it.
    Unreachable,
    /// The store answers reads but cannot write (disk full, read-only, I/O error). Only a
    /// successful write clears it: reads keep working on a full disk.
    Unwritable,
    /// The SQLite file was deleted or replaced under the running shop.
    FileGone,
}

/// A fault with the sentence `/readyz` and the log show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub reason: String,
}

/// See the module documentation.
#[derive(Debug)]
pub struct StoreStatus {
    /// Set while `fault` holds something: the fast path of every successful call reads only this.
    faulted: AtomicBool,
    fault: Mutex<Option<Fault>>,
    /// Milliseconds after `epoch` at which a write last committed (0: never).
    last_write_ms: AtomicU64,
    /// Milliseconds after `epoch` at which a call last met a fault (0: never).
    last_fault_ms: AtomicU64,
    epoch: Instant,
}

impl Default for StoreStatus {
    fn default() -> Self {
        StoreStatus {
            faulted: AtomicBool::new(false),
            fault: Mutex::new(None),
            last_write_ms: AtomicU64::new(0),
            last_fault_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl StoreStatus {
    /// The current fault, if any.
    pub fn fault(&self) -> Option<Fault> {
        if !self.faulted.load(Ordering::Acquire) {
            return None;
        }
        self.lock().clone()
    }

    /// Whether a write committed within `window`: a store that took one a moment ago is up, even
    /// if a probe would now have to queue behind a surge of checkouts.
    pub fn wrote_within(&self, window: Duration) -> bool {
        let last = self.last_write_ms.load(Ordering::Relaxed);
        last != 0 && self.now_ms().saturating_sub(last) <= window.as_millis() as u64
    }

    /// Whether a call met a fault within `window`: then a probe that gets through proves little
    /// (one small write can still fit where a checkout does not) and readiness stays false
    /// without probing, rather than flapping.
    pub fn faulted_within(&self, window: Duration) -> bool {
        let last = self.last_fault_ms.load(Ordering::Relaxed);
        last != 0 && self.now_ms().saturating_sub(last) <= window.as_millis() as u64
    }

    /// A call that read (or only talked to the server) succeeded.
    pub fn read_ok(&self) {
        if self.faulted.load(Ordering::Acquire) {
            self.clear_if(|fault| fault.kind == FaultKind::Unreachable);
        }
    }

    /// A write committed: whatever was wrong, the store works again.
    pub fn write_ok(&self) {
        self.touch();
        if self.faulted.load(Ordering::Acquire) {
            self.clear_if(|_| true);
        }
    }

    /// A call failed: remember it if it is a fault rather than load.
    pub fn failed(&self, error: &DbError) {
        if let Some(fault) = fault_of(error) {
            self.set(fault);
        }
    }

    /// Records `fault` (logged only when it starts or its reason changes).
    pub fn set(&self, fault: Fault) {
        self.last_fault_ms
            .store(self.now_ms().max(1), Ordering::Relaxed);
        let mut current = self.lock();
        if current.as_ref() != Some(&fault) {
            tracing::warn!(reason = %fault.reason, "store unavailable: {}", fault.reason);
            *current = Some(fault);
        }
        self.faulted.store(true, Ordering::Release);
    }

    fn clear_if(&self, clears: impl Fn(&Fault) -> bool) {
        let mut current = self.lock();
        if let Some(fault) = current.as_ref()
            && clears(fault)
        {
            tracing::info!(was = %fault.reason, "store available again");
            *current = None;
            self.faulted.store(false, Ordering::Release);
        }
    }

    fn touch(&self) {
        self.last_write_ms
            .store(self.now_ms().max(1), Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Fault>> {
        self.fault
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The fault an error reveals, or `None` when it only says the store is busy (or the request was
/// wrong): those must never take a replica out of service.
pub fn fault_of(error: &DbError) -> Option<Fault> {
    let (kind, reason) = match error {
        DbError::Other(_) => return None,
        DbError::TimedOut(after) => (
            FaultKind::Unreachable,
            format!("the database did not answer within {after:?}"),
        ),
        DbError::OutcomeUnknown { .. } => (
            FaultKind::Unreachable,
            "the database connection failed while an order was being committed".to_owned(),
        ),
        DbError::FileGone(reason) => (FaultKind::FileGone, reason.clone()),
        DbError::Unavailable(cause) => return fault_of_sqlx(cause),
    };
    Some(Fault { kind, reason })
}

fn fault_of_sqlx(error: &sqlx::Error) -> Option<Fault> {
    let unreachable = |what: &str| {
        Some(Fault {
            kind: FaultKind::Unreachable,
            reason: format!("the database is unreachable ({what})"),
        })
    };
    match error {
        sqlx::Error::PoolTimedOut => None,
        sqlx::Error::Io(error) => unreachable(&error.to_string()),
        sqlx::Error::Tls(error) => unreachable(&error.to_string()),
        sqlx::Error::Protocol(error) => unreachable(error),
        sqlx::Error::PoolClosed => unreachable("the connection pool is closed"),
        sqlx::Error::WorkerCrashed => unreachable("the SQLite worker stopped"),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let message = db.message();
            let unwritable = |what: &str| {
                Some(Fault {
                    kind: FaultKind::Unwritable,
                    reason: format!("the database cannot write: {what} ({message})"),
                })
            };
            if let Some(sqlite) = super::sqlite_code(db.as_ref()) {
                // SQLite reports extended result codes; the low byte is the primary code.
                return match sqlite & 0xff {
                    13 => unwritable("the disk is full"),
                    8 => unwritable("the database file is read-only"),
                    10 => unwritable("an I/O error"),
                    11 | 26 => unwritable("the database file is corrupt"),
                    14 => Some(Fault {
                        kind: FaultKind::FileGone,
                        reason: format!("the database file cannot be opened ({message})"),
                    }),
                    _ => None,
                };
            }
            match code.as_ref() {
                "53100" => unwritable("the disk is full"),
                "25006" => unwritable("the server is read-only"),
                "57014" => unreachable("a statement timed out"),
                // Too many connections is load, not a fault.
                "53300" => None,
                code if code.starts_with("08") || code.starts_with("57P") => unreachable(message),
                code if code.starts_with("53") => unwritable("the server is out of resources"),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Fault {
        Fault {
            kind: FaultKind::Unreachable,
            reason: "down".into(),
        }
    }

    fn unwritable() -> Fault {
        Fault {
            kind: FaultKind::Unwritable,
            reason: "full".into(),
        }
    }

    #[test]
    fn a_read_clears_only_what_a_read_proves() {
        let status = StoreStatus::default();
        status.set(unwritable());
        status.read_ok();
        assert_eq!(
            status.fault(),
            Some(unwritable()),
            "reads work on a full disk"
        );
        status.write_ok();
        assert_eq!(status.fault(), None);
        status.set(unreachable());
        status.read_ok();
        assert_eq!(status.fault(), None);
    }

    #[test]
    fn load_is_not_a_fault() {
        assert_eq!(
            fault_of(&DbError::Unavailable(sqlx::Error::PoolTimedOut)),
            None
        );
        assert!(fault_of(&DbError::TimedOut(Duration::from_secs(1))).is_some());
    }

    #[test]
    fn only_a_write_proves_the_store_writes() {
        let status = StoreStatus::default();
        status.read_ok();
        assert!(!status.wrote_within(Duration::from_secs(60)));
        status.write_ok();
        assert!(status.wrote_within(Duration::from_secs(60)));
    }
}
