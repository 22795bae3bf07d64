//! Storage faults a Black Friday brings, staged for real: a full disk (a small tmpfs that fills),
//! a database file made read-only or deleted under the running shop, a WAL that a checkout surge
//! would grow past a pod's volume, and a frozen PostgreSQL. In each, every order answered 201 must
//! be in the database afterwards (and after a restart), a failure must be a 503 with
//! `Retry-After` (never a 500), `/readyz` must say why the store is down, and the shop must
//! recover without a restart once the fault is gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use doorbuster::config::WebConfig;
use doorbuster::db::{Db, DbOptions, orders};
use serde_json::Value;

use crate::support::{TestApp, checkout_body, options};

/// A small tmpfs mounted for one test (unmounted on drop). Mounting needs root, which CI has;
/// elsewhere the tests that need it say so and stop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!(
                "SKIPPED: staging a full disk mounts a tmpfs, which needs root (CI runs as root)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a {size} tmpfs");
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0x5a_u8; 4096];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(28) => break, // ENOSPC
                Err(error) => panic!("filling the tmpfs: {error}"),
            }
        }
        // Whatever is still buffered cannot be written either.
        let _ = file.flush();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A shop on a SQLite file at `path`, migrated and seeded.
async fn sqlite_app_at(path: &Path, config: WebConfig) -> TestApp {
    let url = format!("sqlite://{}", path.display());
    let db = Db::connect(&options(&url)).await.expect("open SQLite");
    doorbuster::server::prepare(&db)
        .await
        .expect("migrate and seed SQLite");
    TestApp::from_db(db, config)
}

/// Places one order of `product` through the API with a fresh idempotency key.
async fn api_checkout(app: &TestApp, product: i64, key: &str) -> crate::support::TestResponse {
    app.post_json_with(
        "/api/checkout",
        &checkout_body(&[(product, 1)]),
        &[("idempotency-key", key)],
    )
    .await
}

/// Asserts a failed checkout is the "store unavailable" answer: 503, problem+json, Retry-After.
#[track_caller]
fn assert_unavailable(response: &crate::support::TestResponse) -> Value {
    let problem = response.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !response.header("retry-after").is_empty(),
        "a 503 says when to retry"
    );
    problem
}

/// The order ids in the database at `path`, read by a fresh process-like open (a "restart").
async fn orders_after_restart(path: &Path, ids: &[String]) -> Vec<String> {
    let url = format!("sqlite://{}", path.display());
    let db = Db::connect(&DbOptions {
        max_connections: 1,
        ..options(&url)
    })
    .await
    .expect("reopen SQLite");
    let mut found = Vec::new();
    for id in ids {
        if orders::order(&db, id).await.unwrap().is_some() {
            found.push(id.clone());
        }
    }
    assert_eq!(
        orders::audit(&db).await.unwrap(),
        orders::Audit::default(),
        "nothing half-written"
    );
    db.close().await;
    found
}

/// A full disk: while the filesystem is full, checkouts are 503 with Retry-After (never 201 or
/// 500) and `/readyz` says the store cannot write; once space is freed, checkouts succeed again
/// without a restart; every order answered 201 is in the database after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_loses_an_accepted_order() {
    let Some(tmpfs) = Tmpfs::mount("2m") else {
        return;
    };
    let db_path = tmpfs.path().join("shop.db");
    let app = sqlite_app_at(&db_path, WebConfig::default()).await;
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 100)
        .await["id"]
        .as_i64()
        .unwrap();
    let mut accepted = Vec::new();
    let mut key = 0;
    let mut next_key = || {
        key += 1;
        format!("disk-full-{key}")
    };
    for _ in 0..5 {
        let placed = api_checkout(&app, product, &next_key()).await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());
        accepted.push(placed.json()["id"].as_str().unwrap().to_owned());
    }

    let filler = tmpfs.fill();
    let mut refused = 0;
    for _ in 0..30 {
        let response = api_checkout(&app, product, &next_key()).await;
        match response.status {
            // SQLite may still fit a commit in a page it already holds.
            StatusCode::CREATED => {
                accepted.push(response.json()["id"].as_str().unwrap().to_owned())
            }
            _ => {
                assert_unavailable(&response);
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a full disk refuses checkouts");
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text()
    );
    assert!(
        ready.text().contains("full"),
        "readiness says why: {}",
        ready.text()
    );
    // The form answers with the error page, also with Retry-After.
    let form = app
        .request(
            axum::http::Request::post("/checkout")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", format!("cart={product}x1"))
                .body(axum::body::Body::from(
                    "name=Grace+Hopper&email=grace%40example.com&address=1+Compiler+Way&city=Arlington\
                     &postal_code=22201&country=United+States&idempotency_key=form-disk-full-1",
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(
        form.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        form.text()
    );
    assert!(form.header("content-type").starts_with("text/html"));
    assert!(!form.header("retry-after").is_empty());

    // Space comes back: the shop recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    loop {
        let response = api_checkout(&app, product, &next_key()).await;
        if response.status == StatusCode::CREATED {
            accepted.push(response.json()["id"].as_str().unwrap().to_owned());
            break;
        }
        assert_unavailable(&response);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "checkouts succeed again once space is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        let placed = api_checkout(&app, product, &next_key()).await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());
        accepted.push(placed.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    for id in &accepted {
        let order = app.get(&format!("/api/orders/{id}")).await;
        assert_eq!(
            order.status,
            StatusCode::OK,
            "order {id} answered 201 is readable"
        );
    }
    app.state.db.close().await;
    drop(app);
    let found = orders_after_restart(&db_path, &accepted).await;
    assert_eq!(found, accepted, "every 201 survives a restart");
}

/// Makes a file unwritable for this process until dropped: `chattr +i` as root (root ignores
/// file modes), the file mode otherwise.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn set(path: &Path) -> ReadOnly {
        set_read_only(path, true);
        ReadOnly(path.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        set_read_only(&self.0, false);
    }
}

fn set_read_only(path: &Path, read_only: bool) {
    if is_root() {
        let flag = if read_only { "+i" } else { "-i" };
        let status = Command::new("chattr").arg(flag).arg(path).status().unwrap();
        assert!(status.success(), "chattr {flag} {}", path.display());
    } else {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if read_only { 0o444 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Polls `check` every 100 ms until it holds, failing after `within`.
async fn eventually(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database file that is read-only when the shop opens it (a restored snapshot, a volume
/// mounted read-only, wrong ownership): `/readyz` is 503 and says so, checkouts are 503 with
/// Retry-After, never 500; once the file is writable again, the shop takes orders without a
/// restart, and keeps every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_file_is_unavailable_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("shop.db");
    let first = sqlite_app_at(&db_path, WebConfig::default()).await;
    let product = first
        .find_product(|p| p["stock"].as_i64().unwrap() > 100)
        .await["id"]
        .as_i64()
        .unwrap();
    first.state.db.close().await;
    drop(first);

    let read_only = ReadOnly::set(&db_path);
    let app = sqlite_app_at(&db_path, WebConfig::default()).await;
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text()
    );
    assert!(ready.text().contains("read-only"), "{}", ready.text());
    for key in ["ro-1", "ro-2", "ro-3"] {
        assert_unavailable(&api_checkout(&app, product, key).await);
    }
    assert_eq!(
        app.get("/").await.status,
        StatusCode::OK,
        "pages still show"
    );

    drop(read_only);
    let mut accepted = Vec::new();
    eventually(
        Duration::from_secs(10),
        "checkouts succeed again",
        async || {
            let response = api_checkout(&app, product, &format!("rw-{}", accepted.len())).await;
            if response.status == StatusCode::CREATED {
                accepted.push(response.json()["id"].as_str().unwrap().to_owned());
                return true;
            }
            assert_unavailable(&response);
            false
        },
    )
    .await;
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    app.state.db.close().await;
    drop(app);
    assert_eq!(orders_after_restart(&db_path, &accepted).await, accepted);
}

/// The database file deleted under the running shop: no checkout is ever answered 201 (it would
/// go to the unlinked file and be lost), each is 503 with Retry-After, and `/readyz` says the
/// file is gone. A file moved away and back is taken up again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_file_never_accepts_an_order() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("shop.db");
    let app = sqlite_app_at(&db_path, WebConfig::default()).await;
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 100)
        .await["id"]
        .as_i64()
        .unwrap();
    let placed = api_checkout(&app, product, "before-move").await;
    assert_eq!(placed.status, StatusCode::CREATED);

    // Moved away: unavailable; moved back: the same file, so orders are taken again.
    let aside = dir.path().join("shop.db.aside");
    std::fs::rename(&db_path, &aside).unwrap();
    assert_unavailable(&api_checkout(&app, product, "while-moved").await);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().contains("gone"), "{}", ready.text());
    std::fs::rename(&aside, &db_path).unwrap();
    let placed = api_checkout(&app, product, "after-move").await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);

    // Deleted, with its WAL: nothing is ever accepted again by this process, even once its
    // connections are replaced.
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db_path.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
    for attempt in 0..20 {
        let response = api_checkout(&app, product, &format!("deleted-{attempt}")).await;
        let problem = assert_unavailable(&response);
        assert!(
            !problem["detail"].as_str().unwrap().contains("shop.db"),
            "the path is for the operator's log, not the shopper: {problem}"
        );
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().contains("gone"), "{}", ready.text());
    assert!(!db_path.exists(), "no empty database was made in its place");
}

/// A checkout surge with shoppers browsing alongside keeps the SQLite WAL under its bound (the
/// readers stop the passive checkpoint from ever restarting it: a 15 s surge grew it to 1.3 GB,
/// past the pod's volume). The bound here is 4 MiB so that a short surge would cross it many
/// times over; the default is 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_surge_keeps_the_wal_bounded() {
    const WAL_MAX: u64 = 4 * 1024 * 1024;
    const ORDERS: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("shop.db");
    let url = format!("sqlite://{}", db_path.display());
    let db = Db::connect(&DbOptions {
        sqlite_wal_max: WAL_MAX,
        ..options(&url)
    })
    .await
    .unwrap();
    doorbuster::server::prepare(&db).await.unwrap();
    doorbuster::db::seed::restock_to(&db, 1_000_000)
        .await
        .unwrap();
    let app = TestApp::from_db(db, WebConfig::default());
    let products: Vec<i64> = app
        .products()
        .await
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();

    let wal = dir.path().join("shop.db-wal");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (wal, done) = (wal.clone(), done.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut shoppers = Vec::new();
    for _ in 0..32 {
        let (router, next, products) = (app.router.clone(), next.clone(), products.clone());
        shoppers.push(tokio::spawn(async move {
            use tower::ServiceExt as _;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= ORDERS {
                    return;
                }
                let body = checkout_body(&[(products[n % products.len()], 1)]);
                let request = axum::http::Request::post("/api/checkout")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap();
                let status = router.clone().oneshot(request).await.unwrap().status();
                assert_eq!(status, StatusCode::CREATED);
            }
        }));
    }
    let browsing = done.clone();
    let mut browsers = Vec::new();
    for _ in 0..2 {
        let (router, done) = (app.router.clone(), browsing.clone());
        browsers.push(tokio::spawn(async move {
            use tower::ServiceExt as _;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let request = axum::http::Request::get("/api/products?per_page=12")
                    .body(axum::body::Body::empty())
                    .unwrap();
                let status = router.clone().oneshot(request).await.unwrap().status();
                assert_eq!(status, StatusCode::OK);
            }
        }));
    }
    for shopper in shoppers {
        shopper.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for browser in browsers {
        browser.await.unwrap();
    }
    let peak = sampler.join().unwrap();
    assert_eq!(app.order_count().await, ORDERS as i64);
    assert!(
        peak <= WAL_MAX,
        "the WAL reached {peak} bytes, over its bound of {WAL_MAX}"
    );
    eprintln!("WAL peak {peak} bytes for {ORDERS} orders (bound {WAL_MAX})");
}
