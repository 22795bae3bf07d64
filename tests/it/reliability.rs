//! Faults that users cause on purpose during a demo: the database going away in the middle of a
//! run (cut through a proxy), and 64 shoppers checking out at once on SQLite. Nothing half-written
//! may remain, and the service must recover without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use doorbuster::db::orders;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::{TestApp, checkout_body};

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones.
pub(crate) struct CuttableProxy {
    pub(crate) addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    generation: Arc<tokio::sync::Mutex<CancellationToken>>,
}

impl CuttableProxy {
    pub(crate) async fn start(upstream: String) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::Mutex::new(CancellationToken::new()));
        let (cut_flag, generations) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if cut_flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let token = generations.lock().await.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        CuttableProxy {
            addr,
            cut,
            generation,
        }
    }

    pub(crate) async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut token = self.generation.lock().await;
        token.cancel();
        *token = CancellationToken::new();
    }

    pub(crate) fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Cutting PostgreSQL mid-run: requests that need it get 503 with Retry-After quickly, /readyz
/// turns false while /healthz stays true, the service recovers when the database returns, and no
/// half-written order exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_gives_503_then_recovers_with_nothing_half_written() {
    let mut proxy = None;
    let app = TestApp::postgres_through(
        |host_port| {
            let host_port = host_port.to_owned();
            async move {
                let started = CuttableProxy::start(host_port).await;
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
        .await;
    let id = product["id"].as_i64().unwrap();

    // A steady stream of checkouts, with the cut landing in the middle of it.
    let stop = CancellationToken::new();
    let load = {
        let (router, stop) = (app.router.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.is_cancelled() {
                use tower::ServiceExt;
                let request = axum::http::Request::post("/api/checkout")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(
                        checkout_body(&[(id, 1)]).to_string(),
                    ))
                    .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                let status = response.status();
                // A 503 whose COMMIT was sent before the cut says so ("outcome unknown"): that
                // order may exist. A plain 503 must not hide one.
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let unknown = String::from_utf8_lossy(&body).contains("outcome-unknown");
                statuses.push((status, unknown));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut().await;

    // An order lookup needs the database; the catalog does not (it is held in memory).
    const SOME_ORDER: &str = "/api/orders/0123456789AB";
    let started = Instant::now();
    let response = app.get(SOME_ORDER).await;
    response.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.header("retry-after"), "2");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang beyond the acquire timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    // Shoppers can still browse: pages and the catalog API come from the copy in memory.
    assert_eq!(app.get("/").await.status, StatusCode::OK);
    assert_eq!(app.get("/api/products").await.status, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    let recovered = Instant::now();
    loop {
        if app.get("/readyz").await.status == StatusCode::OK
            && app.get(SOME_ORDER).await.status == StatusCode::NOT_FOUND
        {
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(15),
            "did not recover without a restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let answers = load.await.unwrap();
    let statuses: Vec<StatusCode> = answers.iter().map(|(status, _)| *status).collect();
    let unknown = answers.iter().filter(|(_, unknown)| *unknown).count() as i64;
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the cut was felt"
    );
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count() as i64;
    assert!(created > 0);
    let stored = app.order_count().await;
    assert!(
        (created..=created + unknown).contains(&stored),
        "every 201 is an order, and nothing else is but an answer that said its outcome was \
         unknown: {stored} stored, {created} answered 201, {unknown} outcome unknown"
    );
    assert_eq!(
        orders::audit(&app.state.db).await.unwrap(),
        orders::Audit::default()
    );
}

/// 64 concurrent checkouts on SQLite: no "database is locked" reaches anyone, stock adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_takes_64_concurrent_checkouts_without_lock_errors() {
    let app = TestApp::sqlite().await;
    let products: Vec<i64> = app
        .products()
        .await
        .iter()
        .filter(|p| p["stock"].as_i64().unwrap() >= 100)
        .map(|p| p["id"].as_i64().unwrap())
        .take(4)
        .collect();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let router = app.router.clone();
            let body = checkout_body(&[
                (products[i % products.len()], 1),
                (products[(i + 1) % products.len()], 1),
            ]);
            tokio::spawn(async move {
                use tower::ServiceExt;
                let request = axum::http::Request::post("/api/checkout")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap();
                let response = router.oneshot(request).await.unwrap();
                let status = response.status();
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                (status, String::from_utf8_lossy(&body).into_owned())
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(!body.contains("locked"));
    }
    assert_eq!(app.order_count().await, 64);
    assert_eq!(
        orders::audit(&app.state.db).await.unwrap(),
        orders::Audit::default()
    );
}

/// No secret (database password, Application Insights key, admin token) appears in the logs,
/// even when the server refuses a wrong token, fails requests and shuts down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    use std::process::Stdio;

    use tokio::io::AsyncReadExt as _;

    let dir = tempfile::tempdir().unwrap();
    let db_password = "db-Pa55word-9f1c";
    let ikey = "3f5c0a5e-secret-ikey-77aa";
    let admin_token = "admin-T0ken-4d2e";
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .env_clear()
        .env("DATABASE_URL", format!("postgres://shop:{db_password}@127.0.0.1:1/doorbuster"))
        .env("DOORBUSTER_HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DOORBUSTER_ADMIN_PORT", "0")
        .env("APPLICATIONINSIGHTS_CONNECTION_STRING", format!("InstrumentationKey={ikey};IngestionEndpoint=https://127.0.0.1:1/;LiveEndpoint=https://127.0.0.1:1/"))
        .env("DOORBUSTER_ADMIN_TOKEN", admin_token)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // PostgreSQL at 127.0.0.1:1 is unreachable: start-up fails, and says why, without the password.
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .await
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .await
        .unwrap();
    assert!(
        output.contains("cannot open the database postgres://shop:***@127.0.0.1:1/doorbuster"),
        "{output}"
    );

    // Now a server that starts: refuse a wrong token, serve, shut down; then read everything it wrote.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("shop.db").display()))
        .env("DOORBUSTER_HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DOORBUSTER_ADMIN_PORT", "0")
        .env("DOORBUSTER_DRAIN_DELAY", "0s")
        .env("APPLICATIONINSIGHTS_CONNECTION_STRING", format!("InstrumentationKey={ikey};IngestionEndpoint=https://127.0.0.1:1/;LiveEndpoint=https://127.0.0.1:1/"))
        .env("DOORBUSTER_ADMIN_TOKEN", admin_token)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut log = String::new();
    let (mut public, mut admin) = (None, None);
    while public.is_none() || admin.is_none() {
        let mut line = String::new();
        use tokio::io::AsyncBufReadExt as _;
        assert!(
            stdout.read_line(&mut line).await.unwrap() > 0,
            "server exited early: {log}"
        );
        if let Some(rest) = line.split("Prometheus: on (http://").nth(1) {
            admin = rest.split("/metrics").next().map(str::to_owned);
        }
        if let Some(rest) = line.split("open at http://").nth(1) {
            public = rest.split('"').next().map(str::to_owned);
        }
        log.push_str(&line);
    }
    let (public, admin) = (public.unwrap(), admin.unwrap());
    let http = doorbuster::tls::client_builder().build().unwrap();
    let refused = http
        .put(format!("http://{admin}/control"))
        .bearer_auth("wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(!refused.text().await.unwrap().contains(admin_token));
    assert_eq!(
        http.get(format!("http://{public}/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("http://{public}/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    stdout.read_to_string(&mut log).await.unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    assert!(log.contains("Application Insights: on"), "{log}");
    for secret in [db_password, ikey, admin_token] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the logs:\n{log}"
        );
    }
}

/// Azure Database for PostgreSQL requires TLS: the shop connects with `sslmode=verify-full`
/// (scripts/test runs its PostgreSQL with TLS on and a certificate for 127.0.0.1), and the
/// session really is encrypted.
#[tokio::test]
async fn postgres_connects_over_verified_tls() {
    let admin_url = std::env::var("DOORBUSTER_TEST_POSTGRES_URL")
        .expect("run scripts/test, which starts PostgreSQL with TLS on");
    let ca = std::env::var("DOORBUSTER_TEST_POSTGRES_CA").expect(
        "DOORBUSTER_TEST_POSTGRES_CA: scripts/test sets it to its server's certificate; with a \
         server of your own, set it to the CA certificate that signed the server's",
    );
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}sslmode=verify-full&sslrootcert={ca}");
    let db = doorbuster::db::Db::connect(&crate::support::options(&url))
        .await
        .expect("a verified TLS connection");
    let Some(pool) = db.postgres_pool() else {
        panic!("a postgres:// URL opens PostgreSQL")
    };
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(encrypted, "the session is encrypted");
    db.close().await;
}
