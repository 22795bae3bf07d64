//! Telemetry end to end: a fake Application Insights on 127.0.0.1 receives requests named by
//! route, database dependencies, metrics and Live Metrics calls; Prometheus text is on the admin
//! port only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use doorbuster::config::{LogFormat, TelemetryArgs};
use doorbuster::telemetry::Telemetry;
use serde_json::Value;

use crate::fake_insights::{
    DEPENDENCIES, DEPENDENCIES_FAILED, EXCEPTIONS, FakeInsights, LoopbackClient, REQUESTS, Shop,
    args, base_data, install_telemetry,
};
use crate::reliability::CuttableProxy;
use crate::support::{TestApp, checkout_body, own_process};

/// After a page view and a checkout, Application Insights has the requests by route with their
/// result codes, database dependencies, the order metric, and Live Metrics pings and posts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_insights_receives_requests_dependencies_metrics_and_live_metrics() {
    if !own_process(
        "telemetry::application_insights_receives_requests_dependencies_metrics_and_live_metrics",
    ) {
        return;
    }
    let fake = FakeInsights::start().await;
    let (telemetry, subscriber, report) = Telemetry::build(
        &args(Some(fake.connection_string.clone())),
        LogFormat::Text,
        LoopbackClient::new(),
    )
    .unwrap();
    assert!(
        report.lines[0].starts_with("Application Insights: on"),
        "{:?}",
        report.lines
    );
    assert!(
        !report
            .lines
            .iter()
            .any(|line| line.contains("00000000-0000")),
        "the key is never logged"
    );
    // Global, as in `serve`: the server's tasks run on every worker thread. (The test has its
    // process to itself, so this does not leak into other tests.)
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only global subscriber in this process");

    let shop = Shop::serve(TestApp::sqlite().await, &telemetry).await;
    let base = shop.base.clone();

    let http = doorbuster::tls::client_builder().build().unwrap();
    assert_eq!(
        http.get(format!("{base}/")).send().await.unwrap().status(),
        200
    );
    let product = shop
        .app
        .find_product(|p| p["stock"].as_i64().unwrap() > 20)
        .await;
    let order = http
        .post(format!("{base}/api/checkout"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&checkout_body(&[(product["id"].as_i64().unwrap(), 1)]))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 201);
    assert_eq!(
        http.get(format!("{base}/p/no-such-thing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Live Metrics pings at once, then posts every second while "subscribed".
    let started = Instant::now();
    loop {
        let paths: Vec<String> = fake
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|(path, _)| path.clone())
            .collect();
        if paths.iter().any(|p| p.ends_with("/ping")) && paths.iter().any(|p| p.ends_with("/post"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no Live Metrics ping and post: {paths:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Traced requests reach Live Metrics too (each finished span feeds the exporter and it).
    for _ in 0..5 {
        assert_eq!(
            http.get(format!("{base}/")).send().await.unwrap().status(),
            200
        );
    }
    let started = Instant::now();
    while fake.live_metric_sum(REQUESTS) <= 0.0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Live Metrics never counted the traced requests"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    shop.stop().await;
    telemetry.shutdown(Duration::from_secs(5)).await;

    let received = fake.received.lock().unwrap();
    let items = crate::fake_insights::tracked_items(&received);
    let requests = base_data(&items, "RequestData");

    let names: Vec<_> = items
        .iter()
        .map(|i| format!("{} {}", i["name"], i["data"]["baseData"]["name"]))
        .collect();
    let paths: Vec<_> = received
        .iter()
        .map(|(p, b)| format!("{p} {}", b.as_array().map_or(0, Vec::len)))
        .collect();
    let find = |name: &str| {
        requests
            .iter()
            .find(|r| r["name"] == name)
            .copied()
            .unwrap_or_else(|| panic!("no {name} request in {names:?} from {paths:?}"))
    };
    let home = find("GET /");
    assert_eq!(home["responseCode"], "200");
    let checkout = find("POST /api/checkout");
    assert_eq!(checkout["responseCode"], "201");
    let missing = find("GET /p/{slug}");
    assert_eq!(missing["responseCode"], "404");
    // The HTTP attributes set on the exported span (not through the console's span fields).
    assert_eq!(missing["url"], "/p/no-such-thing", "{missing}");
    assert_eq!(
        missing["properties"]["http.route"], "/p/{slug}",
        "{missing}"
    );
    assert_eq!(
        missing["properties"]["http.request.method"], "GET",
        "{missing}"
    );
    // The checkout continued the caller's trace.
    let checkout_item = items
        .iter()
        .find(|item| item["data"]["baseData"]["name"] == "POST /api/checkout")
        .unwrap();
    assert_eq!(
        checkout_item["tags"]["ai.operation.id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(checkout_item["tags"]["ai.cloud.role"], "doorbuster");
    assert_eq!(
        checkout_item["tags"]["ai.cloud.roleInstance"],
        "doorbuster-test-pod"
    );

    let dependencies = base_data(&items, "RemoteDependencyData");
    assert!(
        dependencies
            .iter()
            .any(|d| d["name"] == "INSERT orders" && d["type"] == "sqlite"),
        "database dependencies: {dependencies:?}"
    );
    assert!(dependencies.iter().any(|d| d["name"] == "SELECT products"));

    let metrics = base_data(&items, "MetricData");
    let metric_names: Vec<&str> = metrics
        .iter()
        .flat_map(|m| m["metrics"].as_array().into_iter().flatten())
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        metric_names.contains(&"doorbuster.orders"),
        "metrics: {metric_names:?}"
    );
    assert!(
        metric_names.contains(&"http.server.request.duration"),
        "metrics: {metric_names:?}"
    );
}

/// With no trace exported (`DOORBUSTER_TRACE_EXPORT_RATIO=0`), requests build no spans for the
/// exporter, yet Live Metrics still counts them and their database calls: its request and
/// dependency rates do not depend on the share of traces exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_counts_requests_that_are_not_traced() {
    if !own_process("telemetry::live_metrics_counts_requests_that_are_not_traced") {
        return;
    }
    let fake = FakeInsights::start().await;
    let telemetry = install_telemetry(&TelemetryArgs {
        trace_export_ratio: 0.0,
        ..args(Some(fake.connection_string.clone()))
    });
    let shop = Shop::serve(TestApp::sqlite().await, &telemetry).await;
    let base = shop.base.clone();
    fake.wait_for_live_posts().await;
    let http = doorbuster::tls::client_builder().build().unwrap();
    for _ in 0..20 {
        let page = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
    }
    let started = Instant::now();
    while fake.live_metric_sum(REQUESTS) <= 0.0 || fake.live_metric_sum(DEPENDENCIES) <= 0.0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Live Metrics never counted the untraced requests and their database calls"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    shop.stop().await;
    telemetry.shutdown(Duration::from_secs(5)).await;
    let items = fake.items();
    // Only the start-up work (migrations and seeding, outside any request) is traced.
    let exported: Vec<&Value> = base_data(&items, "RequestData")
        .into_iter()
        .chain(base_data(&items, "RemoteDependencyData"))
        .filter(|item| item["name"] != "INSERT products" && item["name"] != "UPDATE products")
        .collect();
    assert!(
        exported.is_empty(),
        "no request trace is exported at ratio 0: {exported:?}"
    );
    assert!(
        !base_data(&items, "MetricData").is_empty(),
        "metrics are exported all the same"
    );
}

/// PostgreSQL cut in the middle of a run (through the cuttable proxy of the reliability tests):
/// each database call that failed is a failed dependency (`success: false`) naming the error's
/// kind, and each call that worked a successful one; each 503 is a failed request with exactly
/// one exception item giving the error's type and message; Live Metrics counts the failed calls
/// and the exceptions. Nothing sent carries the database password or the connection string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_shows_as_failed_dependencies_and_exceptions() {
    if !own_process("telemetry::a_database_cut_shows_as_failed_dependencies_and_exceptions") {
        return;
    }
    const PASSWORD: &str = "s3cret-db-password";
    let fake = FakeInsights::start().await;
    let telemetry = install_telemetry(&args(Some(fake.connection_string.clone())));
    let mut proxy = None;
    let app = TestApp::postgres_through_with_password(
        |host_port| {
            let host_port = host_port.to_owned();
            async move {
                let proxy = CuttableProxy::start(host_port).await;
                let addr = proxy.addr.to_string();
                (proxy, addr)
            }
        },
        &mut proxy,
        Some(PASSWORD),
    )
    .await;
    let proxy = proxy.expect("the proxy was started");
    let shop = Shop::serve(app, &telemetry).await;
    let product = shop
        .app
        .find_product(|p| p["stock"].as_i64().unwrap() > 20)
        .await["id"]
        .as_i64()
        .unwrap();
    fake.wait_for_live_posts().await;

    let http = doorbuster::tls::client_builder().build().unwrap();
    let checkout = || {
        http.post(format!("{}/api/checkout", shop.base))
            .json(&checkout_body(&[(product, 1)]))
            .send()
    };
    assert_eq!(checkout().await.unwrap().status(), 201);
    proxy.cut().await;
    const FAILED: usize = 5;
    for _ in 0..FAILED {
        assert_eq!(checkout().await.unwrap().status(), 503);
    }
    proxy.restore();
    // Two more Live Metrics posts, so the last failures are in one.
    let posts = fake.live_posts().len();
    let started = Instant::now();
    while fake.live_posts().len() < posts + 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "no more posts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shop.stop().await;
    telemetry.shutdown(Duration::from_secs(5)).await;

    let items = fake.items();
    let checkouts: Vec<&Value> = base_data(&items, "RequestData")
        .into_iter()
        .filter(|r| r["name"] == "POST /api/checkout")
        .collect();
    let failed: Vec<&&Value> = checkouts
        .iter()
        .filter(|r| r["responseCode"] == "503")
        .collect();
    assert_eq!(failed.len(), FAILED, "{checkouts:?}");
    assert!(failed.iter().all(|r| r["success"] == false), "{failed:?}");

    let exceptions = base_data(&items, "ExceptionData");
    assert_eq!(
        exceptions.len(),
        FAILED,
        "one exception per failed request: {exceptions:?}"
    );
    for exception in &exceptions {
        let details = &exception["exceptions"][0];
        let type_name = details["typeName"].as_str().unwrap();
        assert!(type_name.starts_with("DbError::"), "{exception}");
        assert!(
            !details["message"].as_str().unwrap().is_empty()
                && details["message"] != "<no message>",
            "{exception}"
        );
    }

    let dependencies = base_data(&items, "RemoteDependencyData");
    let (broken, worked): (Vec<&Value>, Vec<&Value>) = dependencies
        .iter()
        .copied()
        .filter(|d| d["type"] == "postgresql")
        .partition(|d| d["success"] == false);
    assert!(broken.len() >= FAILED, "failed calls: {dependencies:?}");
    for dependency in &broken {
        let kind = dependency["properties"]["error.type"].as_str();
        assert!(
            matches!(kind, Some("unavailable" | "timed_out")),
            "a failed call names its kind: {dependency}"
        );
    }
    assert!(
        !worked.is_empty() && worked.iter().all(|d| d["success"] == true),
        "calls that worked say so: {dependencies:?}"
    );

    // Live Metrics counted them, whether the request was traced or not.
    let counted_exceptions = fake.live_metric_count(EXCEPTIONS);
    assert!(
        (counted_exceptions - FAILED as f64).abs() < 0.5,
        "Live Metrics counted {counted_exceptions:.2} exceptions for {FAILED}"
    );
    let counted_failures = fake.live_metric_count(DEPENDENCIES_FAILED);
    assert!(
        (counted_failures - broken.len() as f64).abs() < 0.5,
        "Live Metrics counted {counted_failures:.2} failed dependency calls for {}",
        broken.len()
    );

    let everything = fake.everything();
    assert!(
        !everything.contains(PASSWORD),
        "the database password was sent"
    );
    assert!(
        !everything.contains(&fake.connection_string),
        "the connection string was sent"
    );
}

/// At ratio 0.1, a request traced because its caller sent a sampled `traceparent` stands for
/// itself alone: its items (the request, its database calls) carry a sample rate of 100%
/// (`itemCount` 1), while those traced at random carry 10% (`itemCount` 10), so `sum(itemCount)`
/// counts the requests there were. (Every item carried 10%, so each forced trace counted ten
/// times: 2,100 counted for 2,019 real.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_the_caller_asked_for_count_once() {
    if !own_process("telemetry::traces_the_caller_asked_for_count_once") {
        return;
    }
    let fake = FakeInsights::start().await;
    let telemetry = install_telemetry(&TelemetryArgs {
        trace_export_ratio: 0.1,
        ..args(Some(fake.connection_string.clone()))
    });
    let shop = Shop::serve(TestApp::sqlite().await, &telemetry).await;
    let product = shop.app.products().await[0]["id"].as_i64().unwrap();
    let url = format!("{}/api/products/{product}", shop.base);
    let http = doorbuster::tls::client_builder().build().unwrap();
    const FORCED: usize = 30;
    const RANDOM: usize = 300;
    let forced: Vec<String> = (0..FORCED)
        .map(|n| format!("{:032x}", 0xabc0_0000 + n))
        .collect();
    for trace in &forced {
        let answer = http
            .get(&url)
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    for _ in 0..RANDOM {
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    }
    shop.stop().await;
    telemetry.shutdown(Duration::from_secs(5)).await;

    let items = fake.items();
    let spans: Vec<&Value> = items
        .iter()
        .filter(|item| {
            matches!(
                item["data"]["baseType"].as_str(),
                Some("RequestData" | "RemoteDependencyData")
            ) && item["data"]["baseData"]["name"] != "INSERT products"
                && item["data"]["baseData"]["name"] != "UPDATE products"
        })
        .collect();
    let (asked, sampled): (Vec<&Value>, Vec<&Value>) = spans.iter().partition(|item| {
        forced
            .iter()
            .any(|trace| item["tags"]["ai.operation.id"] == trace.as_str())
    });
    let requests = |items: &[&Value]| {
        items
            .iter()
            .filter(|item| item["data"]["baseType"] == "RequestData")
            .count()
    };
    assert_eq!(requests(&asked), FORCED, "every forced trace is exported");
    assert!(
        asked.iter().all(|item| item["sampleRate"] == 100.0),
        "a trace the caller asked for counts once: {:?}",
        asked.iter().map(|i| &i["sampleRate"]).collect::<Vec<_>>()
    );
    assert!(
        requests(&sampled) > 0 && sampled.iter().all(|item| item["sampleRate"] == 10.0),
        "a trace sampled at random stands for ten: {:?}",
        sampled.iter().map(|i| &i["sampleRate"]).collect::<Vec<_>>()
    );
    let counted: f64 = spans
        .iter()
        .filter(|item| item["data"]["baseType"] == "RequestData")
        .map(|item| 100.0 / item["sampleRate"].as_f64().unwrap())
        .sum();
    let real = (FORCED + RANDOM) as f64;
    // The random share is binomial: 300 draws at 0.1 give 30 ± 15 almost always.
    assert!(
        (counted - real).abs() <= 150.0,
        "sum(itemCount) {counted} for {real} requests"
    );
}

/// With no telemetry variables set, nothing is exported (and the shop still serves).
#[tokio::test]
async fn no_variables_means_no_exporters() {
    let client = LoopbackClient(doorbuster::tls::client_builder().build().unwrap());
    let (telemetry, _subscriber, report) =
        Telemetry::build(&args(None), LogFormat::Json, client).unwrap();
    assert_eq!(
        report.lines,
        [
            "Application Insights: off (set APPLICATIONINSIGHTS_CONNECTION_STRING)",
            "OTLP: off (set OTEL_EXPORTER_OTLP_ENDPOINT)"
        ]
    );
    assert!(format!("{telemetry:?}").contains("tracer_provider: None"));
    let app = TestApp::sqlite().await;
    assert_eq!(app.get("/").await.status, StatusCode::OK);
}

/// A malformed connection string is a clear start-up error naming the variable.
#[tokio::test]
async fn malformed_connection_string_is_a_startup_error() {
    let client = LoopbackClient(doorbuster::tls::client_builder().build().unwrap());
    let error = Telemetry::build(
        &args(Some("not-a-connection-string".into())),
        LogFormat::Text,
        client,
    )
    .err()
    .expect("refused");
    assert!(
        error
            .to_string()
            .starts_with("APPLICATIONINSIGHTS_CONNECTION_STRING is malformed"),
        "{error}"
    );
}

/// /metrics on the admin port has the request-duration histogram by route and the order counter
/// after a checkout; the public port does not serve /metrics.
#[tokio::test]
async fn prometheus_metrics_on_the_admin_port_only() {
    let app = TestApp::sqlite().await;
    let state = app.state.clone();
    let shop = Shop::serve_state(app, state).await;
    let (public_url, admin_url) = (shop.base.clone(), shop.admin.clone());

    let http = doorbuster::tls::client_builder().build().unwrap();
    let product = shop
        .app
        .find_product(|p| p["stock"].as_i64().unwrap() > 20)
        .await;
    let placed = http
        .post(format!("{public_url}/api/checkout"))
        .header("baggage", "synthetic=true")
        .json(&checkout_body(&[(product["id"].as_i64().unwrap(), 2)]))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    http.get(format!(
        "{public_url}/p/{}",
        product["slug"].as_str().unwrap()
    ))
    .send()
    .await
    .unwrap();

    let text = http
        .get(format!("{admin_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |prefix: &str, needles: &[&str]| {
        text.lines()
            .find(|l| l.starts_with(prefix) && needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no {prefix} {needles:?} in:\n{text}"))
            .to_owned()
    };
    line(
        "http_server_request_duration_seconds_bucket",
        &["http_route=\"/p/{slug}\"", "le=\"0.001\""],
    );
    let checkout = line(
        "http_server_request_duration_seconds_count",
        &[
            "http_route=\"/api/checkout\"",
            "http_response_status_code=\"201\"",
            "synthetic=\"true\"",
        ],
    );
    assert!(checkout.ends_with(" 1"), "{checkout}");
    assert!(line("doorbuster_orders_total", &[]).ends_with(" 1"));
    assert!(line("doorbuster_items_sold_total", &[]).ends_with(" 2"));
    line("process_cpu_time_seconds_total", &[]);

    let public_metrics = http
        .get(format!("{public_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public_metrics.status(), 404);
    shop.stop().await;
}

/// A collector on 127.0.0.1 with a self-signed certificate for 127.0.0.1 (made with the openssl
/// command, as scripts/test makes PostgreSQL's): it counts the TLS handshakes that succeed and
/// those that fail, and answers every request 200.
async fn tls_collector(dir: &std::path::Path) -> (u16, Arc<Mutex<(u32, u32)>>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (dir.join("collector.pem"), dir.join("collector.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command (Debian: apt-get install openssl)");
    assert!(made.success(), "openssl req failed");
    let certs = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(Mutex::new((0, 0)));
    let counts = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, counts) = (acceptor.clone(), counts.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                match acceptor.accept(socket).await {
                    Ok(mut tls) => {
                        counts.lock().unwrap().0 += 1;
                        let mut buffer = vec![0; 64 * 1024];
                        while let Ok(read) = tls.read(&mut buffer).await {
                            if read == 0 {
                                break;
                            }
                            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if tls.write_all(answer.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(_) => counts.lock().unwrap().1 += 1,
                }
            });
        }
    });
    (port, handshakes)
}

/// The exporters' HTTPS client (rustls on ring, the platform verifier) trusts a private CA given
/// by `SSL_CERT_FILE`, as users behind TLS-inspecting proxies need, and refuses the same collector
/// without it: verification is on, and the real binary has a crypto provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_tls_is_verified_against_ssl_cert_file() {
    let dir = tempfile::tempdir().unwrap();
    let (port, handshakes) = tls_collector(dir.path()).await;
    for trusted in [true, false] {
        *handshakes.lock().unwrap() = (0, 0);
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_doorbuster"));
        command
            .env_clear()
            .env("DATABASE_URL", "sqlite::memory:")
            .env("DOORBUSTER_HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("DOORBUSTER_ADMIN_PORT", "0")
            .env("DOORBUSTER_DRAIN_DELAY", "0s")
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("https://127.0.0.1:{port}"),
            )
            .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if trusted {
            command.env("SSL_CERT_FILE", dir.path().join("collector.pem"));
        }
        // Else the system's trust store only (the environment is cleared), which does not hold
        // the collector's certificate.
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let seen = loop {
            let seen = *handshakes.lock().unwrap();
            if seen != (0, 0) || Instant::now() > deadline {
                break seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = child.kill();
        let _ = child.wait();
        if trusted {
            assert!(seen.0 > 0 && seen.1 == 0, "trusted: {seen:?} (ok, failed)");
        } else {
            assert!(
                seen.0 == 0 && seen.1 > 0,
                "untrusted: {seen:?} (ok, failed)"
            );
        }
    }
}
