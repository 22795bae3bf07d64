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
    assert!(
        form.text().contains(r#"value="form-disk-full-1""#),
        "the form comes back with its key, so sending it again places one order: {}",
        form.text()
    );

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

/// A full disk in the middle of a surge, when orders are written in groups (many shoppers at
/// once, one transaction for the orders that queued together): a group that cannot be written
/// is refused whole, each of its orders a 503 with Retry-After; after a restart the database
/// holds every order answered 201 and nothing else, and nothing half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_a_surge_loses_no_accepted_order() {
    const SHOPPERS: usize = 32;
    let Some(tmpfs) = Tmpfs::mount("2m") else {
        return;
    };
    let db_path = tmpfs.path().join("shop.db");
    let app = sqlite_app_at(&db_path, WebConfig::default()).await;
    // Products with stock to spare (no refusal for want of stock), without restocking, which
    // would reset what the audit compares against.
    let products: Vec<i64> = app
        .products()
        .await
        .iter()
        .filter(|p| p["stock"].as_i64().unwrap() >= 100)
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert!(products.len() >= 4, "the seed has well-stocked products");
    let mut accepted = Vec::new();
    let mut wave = 0;
    // Every shopper at once; returns how many were refused.
    let mut surge = async |accepted: &mut Vec<String>| {
        wave += 1;
        let keys: Vec<String> = (0..SHOPPERS).map(|n| format!("surge-{wave}-{n}")).collect();
        let responses = futures_util::future::join_all(
            keys.iter()
                .enumerate()
                .map(|(n, key)| api_checkout(&app, products[n % products.len()], key)),
        )
        .await;
        let mut refused = 0;
        for response in responses {
            if response.status == StatusCode::CREATED {
                accepted.push(response.json()["id"].as_str().unwrap().to_owned());
            } else {
                assert_unavailable(&response);
                refused += 1;
            }
        }
        refused
    };
    assert_eq!(surge(&mut accepted).await, 0, "a surge on a disk with room");

    let filler = tmpfs.fill();
    let mut refused = 0;
    for _ in 0..3 {
        refused += surge(&mut accepted).await;
    }
    assert!(refused > 0, "a full disk refuses checkouts");

    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    while surge(&mut accepted).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "checkouts succeed again once space is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.order_count().await,
        accepted.len() as i64,
        "no order answered 503 was written"
    );
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
/// past the pod's volume). The bound here is 8 MiB so that a short surge would cross it many
/// times over (1,000 orders write about 24 MB); the default is 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_surge_keeps_the_wal_bounded() {
    const WAL_MAX: u64 = 8 * 1024 * 1024;
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
                // The catalog is answered from memory without awaiting anything: yield, or this
                // loop holds the test's one thread (a server yields on its sockets).
                tokio::task::yield_now().await;
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

/// A TCP proxy in front of PostgreSQL that, while holding, stops each connection at its COMMIT:
/// the COMMIT waits in the proxy (as in a partition or a server that froze just then) until
/// released, and then reaches the server, which commits.
struct CommitHoldingProxy {
    addr: std::net::SocketAddr,
    hold: tokio::sync::watch::Sender<bool>,
}

impl CommitHoldingProxy {
    async fn start(upstream: String) -> CommitHoldingProxy {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hold, _) = tokio::sync::watch::channel(false);
        let holds = hold.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                });
                let mut hold = holds.subscribe();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let Ok(read) = from_client.read(&mut buffer).await else {
                            return;
                        };
                        let chunk = &buffer[..read];
                        if *hold.borrow() && chunk.windows(6).any(|w| w == b"COMMIT") {
                            let _ = hold.wait_for(|holding| !*holding).await;
                        }
                        if read == 0 || to_server.write_all(chunk).await.is_err() {
                            let _ = to_server.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        CommitHoldingProxy { addr, hold }
    }

    fn hold(&self, holding: bool) {
        self.hold.send_replace(holding);
    }
}

/// The connection is lost after COMMIT was sent (the answer never comes back in time): the
/// checkout is answered 503 with the `outcome-unknown` problem naming the order, within the
/// statement timeout, never a plain 503 that reads as "nothing happened". The order did commit;
/// retrying with the same Idempotency-Key returns it instead of placing a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_reported_as_unknown_and_a_retry_finds_it() {
    let mut proxy = None;
    let app = TestApp::postgres_through(
        |host_port| {
            let host_port = host_port.to_owned();
            async move {
                let started = CommitHoldingProxy::start(host_port).await;
                let addr = started.addr.to_string();
                (started, addr)
            }
        },
        &mut proxy,
    )
    .await;
    let proxy = proxy.expect("the proxy was started");
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 50)
        .await["id"]
        .as_i64()
        .unwrap();
    let before = app.order_count().await;

    proxy.hold(true);
    let started = Instant::now();
    let response = api_checkout(&app, product, "lost-commit-1").await;
    let waited = started.elapsed();
    let problem = assert_unavailable(&response);
    assert_eq!(
        problem["type"], "urn:doorbuster:problem:outcome-unknown",
        "{problem}"
    );
    assert!(
        waited < Duration::from_secs(6),
        "bounded by the statement timeout (2 s here), not the request timeout: {waited:?}"
    );
    let detail = problem["detail"].as_str().unwrap();
    let order_id = detail
        .split_whitespace()
        .find(|word| doorbuster::shop::order::is_order_id(word))
        .unwrap_or_else(|| panic!("the detail names the order: {detail}"))
        .to_owned();

    // The held COMMIT reaches the server: the order exists after all.
    proxy.hold(false);
    eventually(
        Duration::from_secs(10),
        "the held commit lands",
        async || app.get(&format!("/api/orders/{order_id}")).await.status == StatusCode::OK,
    )
    .await;
    // The shopper's client retries as a 503 tells it to. On a loaded machine (the whole suite in
    // one process under `cargo test`) the retry itself once met a busy database and got a plain
    // 503; retrying that again is what the answer says to do, and must still find the order.
    let mut retried = api_checkout(&app, product, "lost-commit-1").await;
    let patience = Instant::now() + Duration::from_secs(20);
    while retried.status == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < patience {
        tokio::time::sleep(Duration::from_millis(500)).await;
        retried = api_checkout(&app, product, "lost-commit-1").await;
    }
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text());
    assert_eq!(
        retried.json()["id"],
        order_id.as_str(),
        "the retry finds that order"
    );
    assert_eq!(retried.header("idempotent-replayed"), "true");
    assert_eq!(app.order_count().await, before + 1, "one order, not two");
    assert_eq!(
        orders::audit(&app.state.db).await.unwrap(),
        orders::Audit::default()
    );
}

/// Stops (SIGSTOP) or resumes (SIGCONT) the PostgreSQL server processes serving `database`,
/// resuming them on drop whatever happens.
struct FrozenBackends(Vec<String>);

impl FrozenBackends {
    async fn freeze(database: &str) -> FrozenBackends {
        let admin_url = std::env::var("DOORBUSTER_TEST_POSTGRES_URL").unwrap();
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .unwrap();
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(database)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(!pids.is_empty(), "the shop has connections to freeze");
        let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
        let status = Command::new("kill")
            .arg("-STOP")
            .args(&pids)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "freezing PostgreSQL's processes needs a local server run by this user or root \
             (scripts/test starts one)"
        );
        FrozenBackends(pids)
    }
}

impl Drop for FrozenBackends {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").args(&self.0).status();
    }
}

/// PostgreSQL frozen mid-surge (its processes stopped, as a stalled VM or storage would): every
/// checkout is answered within the statement timeout instead of hanging, as 201, a plain 503
/// (nothing was written: no order exists under that key) or the `outcome-unknown` 503; after the
/// thaw, retrying every unanswered checkout with its key leaves exactly one order per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_postgres_fails_fast_and_a_503_never_hides_an_order() {
    let app = TestApp::postgres_with_options(WebConfig::default(), |options| DbOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
        ..options
    })
    .await;
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 50)
        .await["id"]
        .as_i64()
        .unwrap();
    doorbuster::db::seed::restock_to(&app.state.db, 1_000_000)
        .await
        .unwrap();
    let pool = app.state.db.postgres_pool().unwrap().clone();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Fill the pool, so every connection the shop holds is one that freezes.
    let warm: Vec<_> = (0..8)
        .map(|n| {
            let router = app.router.clone();
            tokio::spawn(post_checkout(router, product, format!("warm-{n}")))
        })
        .collect();
    for task in warm {
        assert_eq!(task.await.unwrap().0, StatusCode::CREATED);
    }

    // Twelve shoppers checking out back to back; the freeze lands while some are mid-transaction.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shoppers: Vec<_> = (0..12)
        .map(|shopper| {
            let (router, stop) = (app.router.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("frozen-{shopper}-{n}");
                    let started = Instant::now();
                    let (status, body) = post_checkout(router.clone(), product, key.clone()).await;
                    answers.push((key, status, body, started.elapsed()));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = FrozenBackends::freeze(&database).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // Frozen for 6 s in all: longer than any answer may take.
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(frozen);
    let mut answers = Vec::new();
    for shopper in shoppers {
        answers.extend(shopper.await.unwrap());
    }
    for (key, status, body, waited) in &answers {
        assert!(
            *waited < Duration::from_secs(5),
            "{key} waited {waited:?}: the statement timeout bounds it"
        );
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::SERVICE_UNAVAILABLE,
            "{key}: {status} {body}"
        );
    }
    assert!(
        answers
            .iter()
            .any(|(_, status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE),
        "the freeze was felt"
    );

    eventually(Duration::from_secs(15), "readiness returns", async || {
        app.get("/readyz").await.status == StatusCode::OK
    })
    .await;
    for (key, status, body, _) in &answers {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT id FROM orders WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(&pool)
                .await
                .unwrap();
        let problem: Value = serde_json::from_str(body).unwrap_or_default();
        match (*status, problem["type"].as_str()) {
            (StatusCode::CREATED, _) => assert!(stored.is_some(), "{key}: a 201 is kept"),
            (_, Some("urn:doorbuster:problem:outcome-unknown")) => {}
            _ => assert!(
                stored.is_none(),
                "{key} was answered as not placed ({body}) but order {stored:?} exists"
            ),
        }
        let (retried, retried_body) = post_checkout(app.router.clone(), product, key.clone()).await;
        assert_eq!(retried, StatusCode::CREATED, "{key}: {retried_body}");
    }
    let keyed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE idempotency_key LIKE 'frozen-%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(keyed, answers.len() as i64, "exactly one order per key");
    // (The stock half of the audit is void after `restock_to`.)
    assert_eq!(
        orders::audit(&app.state.db)
            .await
            .unwrap()
            .orders_without_lines,
        0
    );
}

/// One API checkout of `product` with idempotency key `key`, through the router.
async fn post_checkout(router: axum::Router, product: i64, key: String) -> (StatusCode, String) {
    use tower::ServiceExt as _;
    let request = axum::http::Request::post("/api/checkout")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(axum::body::Body::from(
            checkout_body(&[(product, 1)]).to_string(),
        ))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A reader that holds an old snapshot (a backup, an analyst's query left open) stops every
/// checkpoint from emptying the WAL. Checkouts then wait for room, within their deadline, and
/// answer 503 rather than grow the WAL past its bound; once the reader lets go, the WAL is
/// truncated and checkouts succeed again. (Before, the writer kept appending: on a starved core a
/// checkpoint took 9 s and the WAL passed 500 MiB.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_holding_the_wal_cannot_push_it_past_its_bound() {
    use sqlx::Connection as _;
    const WAL_MAX: u64 = 4 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("shop.db");
    let url = format!("sqlite://{}", db_path.display());
    let db = Db::connect(&DbOptions {
        sqlite_wal_max: WAL_MAX,
        statement_timeout: Duration::from_millis(500),
        ..options(&url)
    })
    .await
    .unwrap();
    doorbuster::server::prepare(&db).await.unwrap();
    doorbuster::db::seed::restock_to(&db, 1_000_000)
        .await
        .unwrap();
    let app = TestApp::from_db(db, WebConfig::default());
    let product = app.products().await[0]["id"].as_i64().unwrap();

    // Another process's reader, on an old snapshot of the file.
    let mut reader = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&mut reader)
        .await
        .unwrap();

    let wal = dir.path().join("shop.db-wal");
    let mut peak = 0;
    let mut refused = 0;
    let mut key = 0;
    let started = Instant::now();
    while refused < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the WAL never filled: {peak} bytes"
        );
        key += 1;
        let response = api_checkout(&app, product, &format!("held-{key}")).await;
        match response.status {
            StatusCode::CREATED => {}
            _ => {
                assert_unavailable(&response);
                refused += 1;
            }
        }
        peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(
        peak <= WAL_MAX,
        "the WAL reached {peak} bytes, over its bound of {WAL_MAX}"
    );

    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    drop(reader);
    let recovered = Instant::now();
    loop {
        key += 1;
        if api_checkout(&app, product, &format!("held-{key}"))
            .await
            .status
            == StatusCode::CREATED
        {
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(10),
            "checkouts did not resume once the reader let go"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(std::fs::metadata(&wal).map_or(0, |m| m.len()) < WAL_MAX);
}
