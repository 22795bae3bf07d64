//! The baseline `scripts/bench` compares SQLite checkout against: the checkout's transaction on a
//! raw SQLite connection, as fast as one connection can run it, with no web server, no pool and
//! no thread in between.
//!
//! ```text
//! DATABASE_URL=sqlite:///tmp/raw.db doorbuster migrate --restock-to 1000000
//! cargo run --release --example raw_checkout -- /tmp/raw.db 10
//! ```
//!
//! It opens the file the shop's own migrations made (so the schema, its indexes, CHECKs and
//! foreign keys are the shop's), with the shop's connection settings: WAL, `synchronous=NORMAL`,
//! `foreign_keys=ON`, a 5 s busy timeout, and no checkpoint at all: the WAL is left to grow (about
//! 30 KB an order, gigabytes in a 10 s run), so the figure is the transaction alone, the fastest
//! one connection runs it, while the shop also pays for keeping its WAL under 64 MiB. Two
//! variants, for comparison: `RAW_WAL_MAX_MB=64` keeps the WAL under that bound the way the shop
//! does (a `TRUNCATE` checkpoint in the loop, between two orders, once it passes half, checked
//! every 64 orders), and `RAW_AUTOCHECKPOINT=1000` turns on SQLite's default automatic checkpoint.
//! Then, on one connection in one thread, for the given number of
//! seconds, it places orders one after the other, each one the shop's transaction for a
//! one-unit order of the next product (cycling through every product, as the benchmark's
//! shoppers do), with the statements prepared once:
//!
//! ```text
//! BEGIN
//! UPDATE products SET stock = stock - 1 WHERE id = ? AND stock >= 1 RETURNING name, price_cents
//! INSERT INTO orders (... 12 columns: random id, its own idempotency key, fingerprint, customer, totals, time)
//! INSERT INTO order_lines (...)
//! COMMIT
//! ```
//!
//! It prints `orders_per_second N` (and how many orders it placed, and the CPU seconds it used) on
//! standard output. Orders
//! that find no stock are counted as failures and stop the run: the database must be stocked
//! for more than a run can sell.

use std::time::{Duration, Instant};

use rand::Rng as _;
use rusqlite::{Connection, OpenFlags, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: raw_checkout DATABASE_FILE [SECONDS]")?;
    let seconds: u64 = args.next().map_or(Ok(10), |s| s.parse())?;

    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let autocheckpoint = std::env::var("RAW_AUTOCHECKPOINT").unwrap_or_else(|_| "0".into());
    conn.pragma_update(None, "wal_autocheckpoint", &autocheckpoint)?;
    let truncate_at = match std::env::var("RAW_WAL_MAX_MB").map(|mb| mb.parse::<u64>()) {
        Ok(Ok(mb)) if mb > 0 => mb * 1024 * 1024 / 2,
        Ok(Err(error)) => return Err(format!("RAW_WAL_MAX_MB: {error}").into()),
        _ => u64::MAX,
    };
    let wal = format!("{path}-wal");

    let products: Vec<i64> = conn
        .prepare("SELECT id FROM products ORDER BY id")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if products.is_empty() {
        return Err("no products: run `doorbuster migrate` on the file first".into());
    }

    let customer = (
        "Bench Shopper",
        "bench@example.com",
        "1 Loopback Way",
        "Localhost",
        "12701",
        "US",
    );
    let prefix = format!("raw-{}-", std::process::id());
    let mut rng = rand::rng();
    let mut placed: u64 = 0;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    while Instant::now() < until {
        let product = products[placed as usize % products.len()];
        let order_id: String = (0..12)
            .map(|_| char::from(ALPHABET[rng.random_range(0..32)]))
            .collect();
        let key = format!("{prefix}{placed}");
        let fingerprint = format!(
            r#"{{"customer":{{"address":"{}","city":"{}","country":"{}","email":"{}","name":"{}","postal_code":"{}"}},"lines":[[{product},1]]}}"#,
            customer.2, customer.3, customer.5, customer.1, customer.0, customer.4
        );
        let created_at = OffsetDateTime::now_utc().format(&Rfc3339)?;

        conn.prepare_cached("BEGIN")?.execute([])?;
        let taken: Option<(String, i64)> = conn
            .prepare_cached(
                "UPDATE products SET stock = stock - ?1 WHERE id = ?2 AND stock >= ?1 \
                 RETURNING name, price_cents",
            )?
            .query_row(params![1_i64, product], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map(Some)
            .or_else(|error| match error {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })?;
        let Some((name, price)) = taken else {
            conn.execute_batch("ROLLBACK")?;
            return Err(format!(
                "product {product} is out of stock after {placed} orders: restock the file"
            )
            .into());
        };
        conn.prepare_cached(
            "INSERT INTO orders (id, idempotency_key, request_fingerprint, customer_name, email, \
             address, city, postal_code, country, item_count, total_cents, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            order_id,
            key,
            fingerprint,
            customer.0,
            customer.1,
            customer.2,
            customer.3,
            customer.4,
            customer.5,
            1_i64,
            price,
            created_at
        ])?;
        conn.prepare_cached(
            "INSERT INTO order_lines (order_id, product_id, product_name, unit_price_cents, \
             quantity) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![order_id, product, name, price, 1_i64])?;
        conn.prepare_cached("COMMIT")?.execute([])?;
        placed += 1;
        if placed.is_multiple_of(64) && std::fs::metadata(&wal).map_or(0, |m| m.len()) > truncate_at
        {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("orders {placed}");
    println!("seconds {elapsed:.3}");
    println!("orders_per_second {:.0}", placed as f64 / elapsed);
    if let Some(cpu) = cpu_seconds() {
        println!("cpu_seconds {cpu:.3}");
    }
    Ok(())
}

/// CPU time this process used (user and system), from `/proc/self/stat` on Linux: on a shared
/// machine, orders per CPU-second move less than orders per second.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces), from the third on.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux the shop runs on.
    Some(ticks / 100.0)
}
