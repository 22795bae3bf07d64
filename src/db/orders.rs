//! Orders: placing one (stock taken and order written in one transaction) and reading it back.
//!
//! Placing an order is the only write on the hot path. Its guarantees, in order of importance:
//! stock never goes below zero (conditional decrement, plus a CHECK constraint behind it); an order
//! never exists without its lines and stock is never taken without an order (one transaction);
//! a retried request with the same `Idempotency-Key` gets the first order back (a unique
//! constraint, so the guarantee holds across replicas sharing PostgreSQL).

use serde::Serialize;
use time::OffsetDateTime;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::shop::order::{
    CheckoutOutcome, Customer, LineRequest, NewOrder, Order, OrderLine, Shortage, StockLeft,
    new_order_id,
};

use super::{Db, DbError, commit_may_have_happened, violated_constraint, with_reader, with_writer};

const TAKE_STOCK: &str = "UPDATE products SET stock = stock - $1 \
     WHERE id = $2 AND stock >= $1 RETURNING name, price_cents, stock";
const CURRENT_STOCK: &str = "SELECT name, stock FROM products WHERE id = $1";
const INSERT_ORDER: &str = "INSERT INTO orders (id, idempotency_key, request_fingerprint, \
     customer_name, email, address, city, postal_code, country, item_count, total_cents, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const INSERT_LINE: &str = "INSERT INTO order_lines \
     (order_id, product_id, product_name, unit_price_cents, quantity) VALUES ($1, $2, $3, $4, $5)";
const SELECT_ORDER: &str = "SELECT id, customer_name, email, address, city, postal_code, country, \
     item_count, total_cents, created_at FROM orders WHERE id = $1";
const SELECT_LINES: &str = "SELECT product_id, product_name, unit_price_cents, quantity \
     FROM order_lines WHERE order_id = $1 ORDER BY product_id";
const SELECT_BY_KEY: &str = "SELECT id, request_fingerprint FROM orders WHERE idempotency_key = $1";

row_struct! {
    struct OrderRow {
        id: String,
        customer_name: String,
        email: String,
        address: String,
        city: String,
        postal_code: String,
        country: String,
        item_count: i64,
        total_cents: i64,
        created_at: OffsetDateTime,
    }
}

row_struct! {
    struct LineRow {
        product_id: i64,
        product_name: String,
        unit_price_cents: i64,
        quantity: i64,
    }
}

impl From<LineRow> for OrderLine {
    fn from(row: LineRow) -> Self {
        OrderLine {
            product_id: row.product_id,
            product_name: row.product_name,
            unit_price_cents: row.unit_price_cents,
            quantity: row.quantity,
        }
    }
}

/// What an order's stock statements took, line by line: the order's lines, and the stock each
/// product was left with. Both stores' transactions fill it (this one and `db::sqlite_writer`).
pub(super) struct Taken {
    pub(super) lines: Vec<OrderLine>,
    pub(super) stock_left: Vec<StockLeft>,
}

impl Taken {
    pub(super) fn with_capacity(lines: usize) -> Taken {
        Taken {
            lines: Vec::with_capacity(lines),
            stock_left: Vec::with_capacity(lines),
        }
    }

    /// `line` took its quantity of the product named `product_name` at `unit_price_cents` a
    /// unit, and left `stock` of it.
    pub(super) fn push(
        &mut self,
        line: &LineRequest,
        product_name: String,
        unit_price_cents: i64,
        stock: i64,
    ) {
        self.lines.push(OrderLine {
            product_id: line.product_id,
            product_name,
            unit_price_cents,
            quantity: line.quantity,
        });
        self.stock_left.push(StockLeft {
            product_id: line.product_id,
            stock,
        });
    }

    pub(super) fn item_count(&self) -> i64 {
        self.lines.iter().map(|line| line.quantity).sum()
    }

    pub(super) fn total_cents(&self) -> i64 {
        self.lines.iter().map(OrderLine::line_total_cents).sum()
    }
}

/// What the order's transaction did.
enum Written {
    Placed {
        order: Order,
        stock_left: Vec<StockLeft>,
    },
    /// Unknown products or not enough stock: rolled back, nothing written.
    Refused {
        short: Vec<Shortage>,
        unknown: Vec<i64>,
    },
    /// The idempotency key is taken (a retry, or a race lost to the first request): rolled back.
    KeyTaken,
}

/// Takes the stock and writes the order, or explains why not.
///
/// Failures keep their meaning to the end: an `Err` means no order was written, except
/// [`DbError::OutcomeUnknown`], returned when the connection failed or time ran out after COMMIT
/// was sent (the order may exist; a retry with the same idempotency key finds out). The
/// connection of a failed transaction is closed, never reused (see [`crate::db`]).
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "INSERT orders", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "INSERT", db.collection.name = "orders"))]
pub async fn place(db: &Db, new: &NewOrder<'_>) -> Result<CheckoutOutcome, DbError> {
    db.call_bounded_by(async move {
        // A retried request is not looked up first: that would cost every order a statement (and
        // on SQLite a second turn at the one writer). Its order insert fails on the unique key
        // instead, which rolls back the stock it took, and the first order is read back below.
        // Lock rows in one global order (by product id) so concurrent PostgreSQL transactions cannot
        // deadlock on each other's stock rows.
        let mut lines = new.lines.to_vec();
        lines.sort_by_key(|line| line.product_id);
        let order_id = new_order_id();
        // PostgreSQL keeps microseconds: truncate so the order returned now equals the order read later.
        let now = OffsetDateTime::now_utc();
        let created_at = now
            .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now);
        if let Some(writer) = db.order_writer() {
            // A SQLite file: its writer thread writes the order in a group (see
            // `db::sqlite_writer`), with the same outcomes, replays included.
            return writer.place(new, order_id, created_at).await;
        }
        let deadline = db.statement_timeout();
        // Once COMMIT is on its way, a lost answer no longer means "not written".
        let commit_sent = AtomicBool::new(false);
        let unknown_outcome = |cause: String| DbError::OutcomeUnknown {
            order_id: order_id.clone(),
            cause,
        };

        // Within the call's deadline: a WAL that cannot be brought under its bound in time makes
        // this a 503, not a WAL past its bound.
        tokio::time::timeout(deadline, db.wait_for_wal_room())
            .await
            .map_err(|_elapsed| DbError::TimedOut(deadline))?;
        let written = with_writer!(db, pool => {
            let mut conn = pool.acquire().await?;
            let attempt = tokio::time::timeout(deadline, async {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let mut taken = Taken::with_capacity(lines.len());
                let mut short = Vec::new();
                let mut unknown = Vec::new();
                for line in &lines {
                    let row: Option<(String, i64, i64)> = sqlx::query_as(TAKE_STOCK)
                        .bind(line.quantity)
                        .bind(line.product_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match row {
                        Some((product_name, unit_price_cents, stock)) => {
                            taken.push(line, product_name, unit_price_cents, stock);
                        }
                        None => {
                            let current: Option<(String, i64)> = sqlx::query_as(CURRENT_STOCK)
                                .bind(line.product_id)
                                .fetch_optional(&mut *tx)
                                .await?;
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
                if !unknown.is_empty() || !short.is_empty() {
                    tx.rollback().await?;
                    return Ok(Written::Refused { short, unknown });
                }
                let (item_count, total_cents) = (taken.item_count(), taken.total_cents());
                let customer = new.customer;
                let inserted = sqlx::query(INSERT_ORDER)
                    .bind(&order_id)
                    .bind(new.idempotency_key)
                    .bind(new.fingerprint)
                    .bind(&customer.name)
                    .bind(&customer.email)
                    .bind(&customer.address)
                    .bind(&customer.city)
                    .bind(&customer.postal_code)
                    .bind(&customer.country)
                    .bind(item_count)
                    .bind(total_cents)
                    .bind(created_at)
                    .execute(&mut *tx)
                    .await;
                match inserted {
                    // Another request with the same key committed first (PostgreSQL blocks on the
                    // unique index until it does). Dropping the transaction rolls back the stock
                    // taken here.
                    Err(error)
                        if violated_constraint(&error).as_deref() == Some("orders_idempotency_key_key") =>
                    {
                        return Ok(Written::KeyTaken);
                    }
                    Err(error) => return Err(error.into()),
                    Ok(_) => {}
                }
                for line in &taken.lines {
                    sqlx::query(INSERT_LINE)
                        .bind(&order_id)
                        .bind(line.product_id)
                        .bind(&line.product_name)
                        .bind(line.unit_price_cents)
                        .bind(line.quantity)
                        .execute(&mut *tx)
                        .await?;
                }
                // A deleted database file still takes commits, into nowhere.
                db.check_file()?;
                commit_sent.store(true, Ordering::Release);
                if let Err(error) = tx.commit().await {
                    return Err(if commit_may_have_happened(db.engine(), &error) {
                        unknown_outcome(error.to_string())
                    } else {
                        error.into()
                    });
                }
                Ok(Written::Placed {
                    order: Order {
                        id: order_id.clone(),
                        customer: customer.clone(),
                        lines: taken.lines,
                        item_count,
                        total_cents,
                        created_at,
                    },
                    stock_left: taken.stock_left,
                })
            })
            .await
            .unwrap_or_else(|_elapsed| {
                Err(if commit_sent.load(Ordering::Acquire) {
                    unknown_outcome(format!("no answer to COMMIT within {deadline:?}"))
                } else {
                    DbError::TimedOut(deadline)
                })
            });
            if attempt.is_err() && db.discard_failed_connections() {
                conn.close_on_drop();
            }
            attempt?
        });
        let (short, unknown) = match written {
            Written::Placed { order, stock_left } => {
                db.committed();
                return Ok(CheckoutOutcome::Placed { order, stock_left });
            }
            Written::Refused { short, unknown } => (short, unknown),
            Written::KeyTaken => {
                // Only a used idempotency key gets here: a retry, or a lost race with the first
                // request.
                let key = new.idempotency_key.unwrap_or_default();
                return match replay(db, key, new.fingerprint).await? {
                    Some(outcome) => Ok(outcome),
                    // The conflicting order vanished between the two statements: orders are
                    // never deleted, so this is a broken invariant, not a user error.
                    None => Err(DbError::Other(sqlx::Error::RowNotFound)),
                };
            }
        };
        // A retry of an order placed before the stock ran out still gets that order.
        if let Some(key) = new.idempotency_key
            && let Some(outcome) = replay(db, key, new.fingerprint).await?
        {
            return Ok(outcome);
        }
        Ok(if unknown.is_empty() {
            CheckoutOutcome::OutOfStock(short)
        } else {
            CheckoutOutcome::UnknownProducts(unknown)
        })
    })
    .await
}

/// The earlier outcome for an idempotency key, if the key was used before.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT orders", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "orders"))]
async fn replay(db: &Db, key: &str, fingerprint: &str) -> Result<Option<CheckoutOutcome>, DbError> {
    db.call(async move {
        let existing: Option<(String, String)> = with_writer!(db, pool => {
            // Read through the writer: on SQLite that sees the latest commit without waiting for
            // reader snapshots, and on PostgreSQL it is the same pool.
            sqlx::query_as(SELECT_BY_KEY).bind(key).fetch_optional(pool).await?
        });
        let Some((order_id, stored_fingerprint)) = existing else {
            return Ok(None);
        };
        if stored_fingerprint != fingerprint {
            return Ok(Some(CheckoutOutcome::KeyReused));
        }
        match order(db, &order_id).await? {
            Some(order) => Ok(Some(CheckoutOutcome::Replayed(order))),
            None => Err(DbError::Other(sqlx::Error::RowNotFound)),
        }
    })
    .await
}

/// One order with its lines.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT orders", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "orders"))]
pub async fn order(db: &Db, id: &str) -> Result<Option<Order>, DbError> {
    db.call(async move {
        with_reader!(db, pool => {
            let Some(row): Option<OrderRow> =
                sqlx::query_as(SELECT_ORDER).bind(id).fetch_optional(pool).await?
            else {
                return Ok(None);
            };
            let lines: Vec<LineRow> = sqlx::query_as(SELECT_LINES).bind(id).fetch_all(pool).await?;
            Ok(Some(Order {
                id: row.id,
                customer: Customer {
                    name: row.customer_name,
                    email: row.email,
                    address: row.address,
                    city: row.city,
                    postal_code: row.postal_code,
                    country: row.country,
                },
                lines: lines.into_iter().map(OrderLine::from).collect(),
                item_count: row.item_count,
                total_cents: row.total_cents,
                created_at: row.created_at,
            }))
        })
    })
    .await
}

/// How many orders exist; used by tests and the load generator's report.
pub async fn count(db: &Db) -> Result<i64, DbError> {
    with_reader!(db, pool => Ok(sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(pool).await?))
}

/// What [`audit`] found: every count should be zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Orders with no lines (a half-written order).
    pub orders_without_lines: i64,
    /// Products whose stock taken (seeded minus current) differs from the units in orders.
    pub stock_mismatches: i64,
    /// Products below zero stock (the CHECK constraint forbids it; counted all the same).
    pub negative_stock: i64,
}

/// Checks the invariants a crash or a cut connection must never break: no order without its
/// lines, and stock taken equals units ordered, product by product. (Valid until an operator runs
/// `migrate --restock` or `--restock-to`, which reset the baseline.)
pub async fn audit(db: &Db) -> Result<Audit, DbError> {
    const ORPHANS: &str = "SELECT COUNT(*) FROM orders o \
         WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)";
    const MISMATCHES: &str = "SELECT COUNT(*) FROM products p WHERE p.seed_stock - p.stock <> \
         COALESCE((SELECT CAST(SUM(l.quantity) AS BIGINT) FROM order_lines l WHERE l.product_id = p.id), 0)";
    const NEGATIVE: &str = "SELECT COUNT(*) FROM products WHERE stock < 0";
    with_writer!(db, pool => {
        Ok(Audit {
            orders_without_lines: sqlx::query_scalar(ORPHANS).fetch_one(pool).await?,
            stock_mismatches: sqlx::query_scalar(MISMATCHES).fetch_one(pool).await?,
            negative_stock: sqlx::query_scalar(NEGATIVE).fetch_one(pool).await?,
        })
    })
}
