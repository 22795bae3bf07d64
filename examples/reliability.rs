//! The figures in `docs/RELIABILITY.md`, measured on the real binary: each fault staged for real
//! while shoppers check out, then every order answered 201 looked up in the database (after the
//! shop has stopped), so "accepted" and "persisted" are counted, not assumed.
//!
//! ```sh
//! scripts/reliability                                   # builds, then runs everything
//! target/release/examples/reliability --binary target/release/doorbuster \
//!     [--baseline /path/to/older/doorbuster] [--postgres postgres://…/postgres] [--only wal,cpu]
//! ```
//!
//! With `--baseline`, every scenario also runs on that binary, so "before" and "after" come from
//! one run on one machine. Scenarios: `disk-full` (a tmpfs that fills; root only), `read-only`,
//! `deleted`, `pg-freeze` (PostgreSQL's processes stopped mid-surge; needs `--postgres` or
//! `DOORBUSTER_TEST_POSTGRES_URL` and a local server), `wal` (the WAL peak and the checkout rate
//! under a 32-user surge), `cpu` (`/healthz` under the CPU knob, the shop pinned to one core), and
//! `silent` (how long a connection that sends nothing stays open). Everything talks to 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use doorbuster::db::{Db, DbOptions, orders};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = Options::parse()?;
    let mut binaries = vec![("after", options.binary.clone())];
    if let Some(baseline) = &options.baseline {
        binaries.insert(0, ("before", baseline.clone()));
    }
    println!(
        "Doorbuster reliability figures: {} ({})",
        options.binary.display(),
        options
            .baseline
            .as_ref()
            .map_or("no baseline".to_owned(), |b| format!(
                "baseline {}",
                b.display()
            ))
    );
    let mut faults = Vec::new();
    let mut others = Vec::new();
    for (label, binary) in &binaries {
        let run = Run {
            label,
            binary: binary.clone(),
            postgres: options.postgres.clone(),
        };
        for scenario in &options.only {
            eprintln!("--- {scenario} on {label} ({})", binary.display());
            let outcome = match scenario.as_str() {
                "disk-full" => run.disk_full().await.map(Figure::Fault),
                "read-only" => run.read_only().await.map(Figure::Fault),
                "deleted" => run.deleted().await.map(Figure::Fault),
                "pg-freeze" => run.pg_freeze().await.map(Figure::Fault),
                "wal" => run.wal_surge().await.map(Figure::Other),
                "cpu" => run.cpu_knob().await.map(Figure::Other),
                "silent" => run.silent().await.map(Figure::Other),
                other => Err(format!("unknown scenario {other}").into()),
            };
            match outcome {
                Ok(Figure::Fault(row)) => faults.push(row),
                Ok(Figure::Other(rows)) => others.extend(rows),
                Err(error) => eprintln!("{scenario} on {label}: not measured: {error}"),
            }
        }
    }
    println!();
    println!(
        "| binary | fault | answered 201 | persisted | 503 | 5xx other | plain 503 with an order behind it | longest answer | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &faults {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} s | {} |",
            row.label,
            row.fault,
            row.accepted,
            row.persisted,
            row.unavailable,
            row.other_5xx,
            row.hidden,
            row.longest.as_secs_f64(),
            row.notes
        );
    }
    println!();
    println!("| binary | measure | value | notes |");
    println!("|---|---|---|---|");
    for (label, measure, value, notes) in &others {
        println!("| {label} | {measure} | {value} | {notes} |");
    }
    Ok(())
}

struct Options {
    binary: PathBuf,
    baseline: Option<PathBuf>,
    postgres: Option<String>,
    only: Vec<String>,
}

impl Options {
    fn parse() -> Result<Options, BoxError> {
        let mut options = Options {
            binary: PathBuf::from("target/release/doorbuster"),
            baseline: None,
            postgres: std::env::var("DOORBUSTER_TEST_POSTGRES_URL").ok(),
            only: [
                "disk-full",
                "read-only",
                "deleted",
                "pg-freeze",
                "wal",
                "cpu",
                "silent",
            ]
            .map(str::to_owned)
            .to_vec(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--binary" => options.binary = value()?.into(),
                "--baseline" => options.baseline = Some(value()?.into()),
                "--postgres" => options.postgres = Some(value()?),
                "--only" => options.only = value()?.split(',').map(str::to_owned).collect(),
                other => return Err(format!("unknown argument {other}: see the file's doc").into()),
            }
        }
        Ok(options)
    }
}

enum Figure {
    Fault(FaultRow),
    Other(Vec<(String, String, String, String)>),
}

/// One fault's outcome.
struct FaultRow {
    label: String,
    fault: &'static str,
    /// Checkouts answered 201.
    accepted: usize,
    /// Of those, orders found in the database afterwards.
    persisted: usize,
    unavailable: usize,
    other_5xx: usize,
    /// Checkouts answered with a plain 503 ("nothing happened") whose order exists all the same.
    hidden: usize,
    longest: Duration,
    notes: String,
}

/// One checkout's answer.
#[derive(Clone, Debug)]
struct Answer {
    key: String,
    status: u16,
    problem: String,
    order: Option<String>,
    took: Duration,
    at: Duration,
}

struct Run<'a> {
    label: &'a str,
    binary: PathBuf,
    postgres: Option<String>,
}

impl Run<'_> {
    /// The SQLite file fills its volume mid-surge and is given space back.
    async fn disk_full(&self) -> Result<FaultRow, BoxError> {
        if !is_root() {
            return Err("needs root to mount a tmpfs".into());
        }
        let dir = tempfile::tempdir()?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir.path()))?;
        let _unmount = Defer(Box::new({
            let path = dir.path().to_owned();
            move || {
                let _ = Command::new("umount").arg("-l").arg(&path).status();
            }
        }));
        let db = dir.path().join("shop.db");
        let shop = self.shop_on_sqlite(&db, &[])?;
        let filler = dir.path().join("filler");
        let answers = surge(&shop.base, 8, Duration::from_secs(9), "disk", {
            let (filler, mut stage) = (filler.clone(), 0);
            move |elapsed| {
                if stage == 0 && elapsed >= Duration::from_secs(3) {
                    stage = 1;
                    fill(&filler);
                }
                if stage == 1 && elapsed >= Duration::from_secs(6) {
                    stage = 2;
                    let _ = std::fs::remove_file(&filler);
                }
            }
        })
        .await?;
        let ready_after = get_status(&format!("{}/readyz", shop.base)).await;
        shop.stop();
        let mut row = self.tally(
            "disk full (16 MiB tmpfs filled at 3 s, freed at 6 s)",
            &answers,
        );
        row.persisted = persisted_sqlite(&db, &accepted_ids(&answers)).await?;
        row.notes = format!(
            "201s after space came back: {}; /readyz after: {ready_after}",
            answers
                .iter()
                .filter(|a| a.status == 201 && a.at > Duration::from_secs(6))
                .count()
        );
        Ok(row)
    }

    /// The SQLite file is read-only when the shop opens it, and made writable mid-surge.
    async fn read_only(&self) -> Result<FaultRow, BoxError> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("shop.db");
        self.migrate(&format!("sqlite://{}", db.display()))?;
        set_read_only(&db, true)?;
        let _writable = Defer(Box::new({
            let db = db.clone();
            move || {
                let _ = set_read_only(&db, false);
            }
        }));
        let shop = self.shop_on_sqlite(&db, &[])?;
        let ready_before = get_status(&format!("{}/readyz", shop.base)).await;
        let answers = surge(&shop.base, 4, Duration::from_secs(6), "ro", {
            let (db, mut done) = (db.clone(), false);
            move |elapsed| {
                if elapsed >= Duration::from_secs(3) && !done {
                    done = true;
                    let _ = set_read_only(&db, false);
                }
            }
        })
        .await?;
        let ready_after = get_status(&format!("{}/readyz", shop.base)).await;
        shop.stop();
        let mut row = self.tally("read-only file (writable again at 3 s)", &answers);
        row.persisted = persisted_sqlite(&db, &accepted_ids(&answers)).await?;
        row.notes = format!("/readyz {ready_before} while read-only, {ready_after} after");
        Ok(row)
    }

    /// The SQLite file (and its WAL) deleted mid-surge.
    async fn deleted(&self) -> Result<FaultRow, BoxError> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("shop.db");
        let shop = self.shop_on_sqlite(&db, &[])?;
        let answers = surge(&shop.base, 4, Duration::from_secs(6), "del", {
            let (db, mut done) = (db.clone(), false);
            move |elapsed| {
                if elapsed >= Duration::from_secs(2) && !done {
                    done = true;
                    for suffix in ["", "-wal", "-shm"] {
                        let mut path = db.as_os_str().to_owned();
                        path.push(suffix);
                        let _ = std::fs::remove_file(PathBuf::from(path));
                    }
                }
            }
        })
        .await?;
        let ready_after = get_status(&format!("{}/readyz", shop.base)).await;
        shop.stop();
        let mut row = self.tally("database file deleted at 2 s", &answers);
        // The file is gone, and the orders in it with it: what counts is that nothing was
        // accepted into it once it was gone.
        let after = answers
            .iter()
            .filter(|a| {
                a.status == 201 && a.at > Duration::from_secs(2) + Duration::from_millis(50)
            })
            .count();
        row.persisted = row.accepted - after;
        row.notes = format!(
            "\"persisted\" = accepted before the deletion; 201s after it: {after}; /readyz after: {ready_after}"
        );
        Ok(row)
    }

    /// PostgreSQL's processes for the shop's database stopped (SIGSTOP) for 4 s mid-surge.
    async fn pg_freeze(&self) -> Result<FaultRow, BoxError> {
        let admin_url = self
            .postgres
            .clone()
            .ok_or("needs --postgres or DOORBUSTER_TEST_POSTGRES_URL")?;
        let name = format!("reliability_{}", std::process::id());
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await?;
        }
        let base_url = admin_url.split('?').next().unwrap_or(&admin_url);
        let url = format!("{}/{name}", base_url.rsplit_once('/').ok_or("a URL")?.0);
        self.migrate(&url)?;
        let shop = Shop::start(
            &self.binary,
            &[
                ("DATABASE_URL", url.as_str()),
                ("DOORBUSTER_DB_MAX_CONNECTIONS", "8"),
                ("DOORBUSTER_DB_ACQUIRE_TIMEOUT", "2s"),
                ("DOORBUSTER_DB_STATEMENT_TIMEOUT", "2s"),
            ],
            None,
        )?;
        let database = name.clone();
        let admin_for_freeze = admin_url.clone();
        let frozen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let answers = surge(&shop.base, 16, Duration::from_secs(10), "pg", {
            let frozen = frozen.clone();
            let mut state = 0;
            move |elapsed| {
                if state == 0 && elapsed >= Duration::from_secs(3) {
                    state = 1;
                    let pids = backend_pids(&admin_for_freeze, &database);
                    let _ = Command::new("kill").arg("-STOP").args(&pids).status();
                    *frozen.lock().unwrap() = pids;
                }
                if state == 1 && elapsed >= Duration::from_secs(7) {
                    state = 2;
                    let pids = std::mem::take(&mut *frozen.lock().unwrap());
                    let _ = Command::new("kill").arg("-CONT").args(&pids).status();
                }
            }
        })
        .await?;
        // Whatever happened above, nothing stays stopped.
        let pids = std::mem::take(&mut *frozen.lock().unwrap());
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-CONT").args(&pids).status();
        }
        let mut row = self.tally("PostgreSQL stopped (SIGSTOP) from 3 s to 7 s", &answers);
        let db = Db::connect(&DbOptions::new(url.clone())).await?;
        let pool = db.postgres_pool().ok_or("a PostgreSQL pool")?;
        let mut hidden = 0;
        let mut unknown_placed = 0;
        for answer in &answers {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT id FROM orders WHERE idempotency_key = $1")
                    .bind(&answer.key)
                    .fetch_optional(pool)
                    .await?;
            if answer.status == 503 && answer.problem.ends_with("outcome-unknown") {
                unknown_placed += usize::from(stored.is_some());
            } else if answer.status == 503 && stored.is_some() {
                hidden += 1;
            }
        }
        row.persisted = count_existing(&db, &accepted_ids(&answers)).await?;
        row.hidden = hidden;
        let unknown = answers
            .iter()
            .filter(|a| a.problem.ends_with("outcome-unknown"))
            .count();
        row.notes = format!(
            "outcome-unknown answers: {unknown} (of which placed after all: {unknown_placed})"
        );
        db.close().await;
        shop.stop();
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
        Ok(row)
    }

    /// `doorbuster loadgen --scenario checkout --users 32` for 15 s: the WAL's peak size and the
    /// checkout rate, with the WAL unbounded (as before) and bounded (the default).
    async fn wal_surge(&self) -> Result<Vec<(String, String, String, String)>, BoxError> {
        let mut rows = Vec::new();
        for wal_max in ["0", "64"] {
            let dir = tempfile::tempdir()?;
            let db = dir.path().join("shop.db");
            let shop = self.shop_on_sqlite(&db, &[("DOORBUSTER_SQLITE_WAL_MAX_MB", wal_max)])?;
            let wal = dir.path().join("shop.db-wal");
            let done = Arc::new(AtomicBool::new(false));
            let sampler = {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut peak = 0;
                    while !done.load(Ordering::Relaxed) {
                        peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    peak
                })
            };
            let report = dir.path().join("loadgen.json");
            let status = Command::new(&self.binary)
                .args(["loadgen", "--scenario", "checkout", "--users", "32"])
                .args(["--duration", "15s", "--target", &shop.base, "--json"])
                .arg(&report)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            done.store(true, Ordering::Relaxed);
            let peak = sampler.join().map_err(|_| "the sampler panicked")?;
            shop.stop();
            let report: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
            let setting = if wal_max == "0" {
                "unbounded (DOORBUSTER_SQLITE_WAL_MAX_MB=0; a binary without the setting ignores it)"
                    .to_owned()
            } else {
                "DOORBUSTER_SQLITE_WAL_MAX_MB=64 (the default)".to_owned()
            };
            rows.push((
                self.label.to_owned(),
                "WAL peak, 32-user checkout surge, 15 s".to_owned(),
                format!("{:.1} MiB", peak as f64 / 1_048_576.0),
                setting.clone(),
            ));
            rows.push((
                self.label.to_owned(),
                "checkout rate, same surge".to_owned(),
                format!(
                    "{:.0} orders/s, p99 {:.1} ms",
                    report["orders_placed"].as_f64().unwrap_or(0.0)
                        / report["duration_seconds"].as_f64().unwrap_or(1.0),
                    report["latency_ms"]["p99"].as_f64().unwrap_or(0.0)
                ),
                format!("{setting}; loadgen exit {status}"),
            ));
        }
        Ok(rows)
    }

    /// `/healthz` probed like a kubelet (a new connection, every 100 ms) while 300 users load the
    /// home page of a shop pinned to one core with `DOORBUSTER_CPU_WORK=8ms`.
    async fn cpu_knob(&self) -> Result<Vec<(String, String, String, String)>, BoxError> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("shop.db");
        self.migrate(&format!("sqlite://{}", db.display()))?;
        let url = format!("sqlite://{}", db.display());
        let shop = Shop::start(
            &self.binary,
            &[
                ("DATABASE_URL", url.as_str()),
                ("DOORBUSTER_CPU_WORK", "8ms"),
            ],
            Some(0),
        )?;
        let mut load = Command::new("taskset")
            .args(["-c", "1"])
            .arg(&self.binary)
            .args(["loadgen", "--scenario", "home", "--users", "300"])
            .args([
                "--duration",
                "25s",
                "--max-error-rate",
                "100",
                "--target",
                &shop.base,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let probe = doorbuster::tls::client_builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut healthz = Histogram::<u64>::new(3)?;
        let mut not_ready = BTreeMap::new();
        let started = Instant::now();
        let mut readyz_checks = 0;
        while started.elapsed() < Duration::from_secs(20) {
            let sent = Instant::now();
            let status = probe
                .get(format!("{}/healthz", shop.base))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            healthz.record(sent.elapsed().as_micros() as u64)?;
            if status != 200 {
                *not_ready.entry(format!("healthz {status}")).or_insert(0) += 1;
            }
            if readyz_checks * 10 < healthz.len() {
                readyz_checks += 1;
                let status = get_status(&format!("{}/readyz", shop.base)).await;
                if status != 200 {
                    *not_ready.entry(format!("readyz {status}")).or_insert(0) += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(100).saturating_sub(sent.elapsed())).await;
        }
        let _ = load.wait();
        shop.stop();
        let ms = |q: f64| healthz.value_at_quantile(q) as f64 / 1000.0;
        Ok(vec![(
            self.label.to_owned(),
            "/healthz under DOORBUSTER_CPU_WORK=8ms, shop on one core, 300 users".to_owned(),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                ms(0.5),
                ms(0.99),
                healthz.max() as f64 / 1000.0
            ),
            format!(
                "{} probes, {readyz_checks} /readyz checks; failures: {}",
                healthz.len(),
                if not_ready.is_empty() {
                    "none".to_owned()
                } else {
                    format!("{not_ready:?}")
                }
            ),
        )])
    }

    /// How long a connection that sends nothing stays open (capped at 30 s), on the shop port
    /// and the admin port.
    async fn silent(&self) -> Result<Vec<(String, String, String, String)>, BoxError> {
        let dir = tempfile::tempdir()?;
        let shop = self.shop_on_sqlite(&dir.path().join("shop.db"), &[])?;
        let mut rows = Vec::new();
        for (port, address) in [("shop", &shop.base), ("admin", &shop.admin)] {
            let address = address.trim_start_matches("http://").to_owned();
            let lifetime = tokio::task::spawn_blocking(move || {
                let mut stream = std::net::TcpStream::connect(address)?;
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                let started = Instant::now();
                let mut buffer = [0u8; 64];
                let _ = stream.read(&mut buffer);
                Ok::<_, std::io::Error>(started.elapsed())
            })
            .await??;
            rows.push((
                self.label.to_owned(),
                format!("a silent connection's lifetime, {port} port"),
                if lifetime >= Duration::from_secs(30) {
                    "still open after 30 s".to_owned()
                } else {
                    format!("{:.1} s", lifetime.as_secs_f64())
                },
                "header-read timeout 10 s (default)".to_owned(),
            ));
        }
        shop.stop();
        Ok(rows)
    }

    fn migrate(&self, url: &str) -> Result<(), BoxError> {
        run(Command::new(&self.binary)
            .args(["migrate", "--restock-to", "1000000"])
            .env("DATABASE_URL", url))
    }

    fn shop_on_sqlite(&self, db: &Path, extra: &[(&str, &str)]) -> Result<Shop, BoxError> {
        let url = format!("sqlite://{}", db.display());
        if !db.exists() {
            self.migrate(&url)?;
        }
        let mut env = vec![("DATABASE_URL", url.as_str())];
        env.extend_from_slice(extra);
        Shop::start(&self.binary, &env, None)
    }

    fn tally(&self, fault: &'static str, answers: &[Answer]) -> FaultRow {
        let count = |f: &dyn Fn(&Answer) -> bool| answers.iter().filter(|a| f(a)).count();
        FaultRow {
            label: self.label.to_owned(),
            fault,
            accepted: count(&|a| a.status == 201),
            persisted: 0,
            unavailable: count(&|a| a.status == 503),
            other_5xx: count(&|a| (a.status >= 500 && a.status != 503) || a.status == 0),
            hidden: 0,
            longest: answers.iter().map(|a| a.took).max().unwrap_or_default(),
            notes: String::new(),
        }
    }
}

/// The real binary, serving on 127.0.0.1 with free ports.
struct Shop {
    child: Child,
    base: String,
    admin: String,
}

impl Shop {
    fn start(binary: &Path, env: &[(&str, &str)], core: Option<usize>) -> Result<Shop, BoxError> {
        let mut command = match core {
            Some(core) => {
                let mut command = Command::new("taskset");
                command.args(["-c", &core.to_string()]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .arg("serve")
            .env("DOORBUSTER_HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("DOORBUSTER_ADMIN_PORT", "0")
            .env("DOORBUSTER_DRAIN_DELAY", "0s")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "text")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut base, mut admin) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let url = |marker: &str| {
                    line.split(marker).nth(1).map(|rest| {
                        let end = rest
                            .find(|c: char| c == '/' || c == ')' || c.is_whitespace() || c == '"')
                            .unwrap_or(rest.len());
                        format!("http://{}", &rest[..end])
                    })
                };
                if let Some(found) = url("Prometheus: on (http://") {
                    admin = Some(found);
                }
                if let Some(found) = url("open at http://") {
                    base = Some(found);
                }
                if let (Some(base), Some(admin)) = (&base, &admin) {
                    let _ = tx.send((base.clone(), admin.clone()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((base, admin)) => Ok(Shop { child, base, admin }),
            Err(_) => {
                let _ = child.kill();
                Err("the shop did not start within 30 s".into())
            }
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `workers` shoppers placing one-unit API checkouts back to back, each with its own
/// idempotency key, for `duration`; `tick` is called every 50 ms with the time since the start
/// (to stage the fault).
async fn surge(
    base: &str,
    workers: usize,
    duration: Duration,
    prefix: &str,
    mut tick: impl FnMut(Duration) + Send + 'static,
) -> Result<Vec<Answer>, BoxError> {
    let client = doorbuster::tls::client_builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let products: Value = client
        .get(format!("{base}/api/products?per_page=100"))
        .send()
        .await?
        .json()
        .await?;
    let products: Vec<i64> = products["items"]
        .as_array()
        .ok_or("a product list")?
        .iter()
        .filter_map(|p| p["id"].as_i64())
        .collect();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                tick(started.elapsed());
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (client, base, products) = (client.clone(), base.to_owned(), products.clone());
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while started.elapsed() < duration {
                n += 1;
                let key = format!("{prefix}-{worker}-{n}");
                let sent = Instant::now();
                let at = started.elapsed();
                let body = json!({
                    "items": [{"product_id": products[(worker + n) % products.len()], "quantity": 1}],
                    "customer": {"name": "Grace Hopper", "email": "grace@example.com",
                        "address": "1 Compiler Way", "city": "Arlington",
                        "postal_code": "22201", "country": "United States"},
                });
                let response = client
                    .post(format!("{base}/api/checkout"))
                    .header("idempotency-key", &key)
                    .json(&body)
                    .send()
                    .await;
                let (status, answer) = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        (status, response.json::<Value>().await.unwrap_or_default())
                    }
                    Err(_) => (0, Value::Null),
                };
                answers.push(Answer {
                    key,
                    status,
                    problem: answer["type"].as_str().unwrap_or_default().to_owned(),
                    order: answer["id"].as_str().map(str::to_owned),
                    took: sent.elapsed(),
                    at,
                });
                if status == 503 || status == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await?);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    Ok(answers)
}

fn accepted_ids(answers: &[Answer]) -> Vec<String> {
    answers
        .iter()
        .filter(|a| a.status == 201)
        .filter_map(|a| a.order.clone())
        .collect()
}

/// How many of `ids` the SQLite file at `path` holds, opened afresh after the shop stopped.
async fn persisted_sqlite(path: &Path, ids: &[String]) -> Result<usize, BoxError> {
    let db = Db::connect(&DbOptions::new(format!("sqlite://{}", path.display()))).await?;
    let found = count_existing(&db, ids).await;
    db.close().await;
    found
}

async fn count_existing(db: &Db, ids: &[String]) -> Result<usize, BoxError> {
    let mut found = 0;
    for id in ids {
        found += usize::from(orders::order(db, id).await?.is_some());
    }
    Ok(found)
}

async fn get_status(url: &str) -> u16 {
    let client = doorbuster::tls::client_builder()
        .timeout(Duration::from_secs(5))
        .build();
    match client {
        Ok(client) => client
            .get(url)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16()),
        Err(_) => 0,
    }
}

/// The server processes serving `database` (blocking: called from the fault ticker's thread).
fn backend_pids(admin_url: &str, database: &str) -> Vec<String> {
    let output = Command::new("psql")
        .arg(admin_url)
        .args(["-At", "-c"])
        .arg(format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = '{database}'"
        ))
        .output();
    output
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Fills the filesystem holding `path` with one file.
fn fill(path: &Path) {
    use std::io::Write as _;
    if let Ok(mut file) = std::fs::File::create(path) {
        let block = vec![0x5a_u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
    }
}

fn set_read_only(path: &Path, read_only: bool) -> Result<(), BoxError> {
    if is_root() {
        run(Command::new("chattr")
            .arg(if read_only { "+i" } else { "-i" })
            .arg(path))
    } else {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if read_only { 0o444 } else { 0o644 };
        Ok(std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(mode),
        )?)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn run(command: &mut Command) -> Result<(), BoxError> {
    let output = command.output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into())
    }
}

/// Runs a closure on drop (unmount, make writable again), whatever happened before.
struct Defer(Box<dyn FnMut()>);

impl Drop for Defer {
    fn drop(&mut self) {
        (self.0)();
    }
}
