//! Graceful shutdown of the real binary: SIGTERM turns readiness off at once, a request in flight
//! completes, and the process exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::valid_customer;

/// A request whose body is still arriving when SIGTERM lands is answered 201 after the drain.
#[test]
fn sigterm_drains_and_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, log) = start_server(&dir.path().join("shop.db"), "500ms", "info");

    let body = json!({"items": [{"product_id": 1, "quantity": 1}], "customer": valid_customer()})
        .to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(&addr).unwrap();
    write!(
        in_flight,
        "POST /api/checkout HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    in_flight.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // Readiness turns false at once, while requests are still served.
    let started = Instant::now();
    let ready = loop {
        let status = http_get_status(&addr, "/readyz");
        if status == 503 || started.elapsed() > Duration::from_millis(400) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ready, 503, "not ready while draining");
    assert_eq!(
        http_get_status(&addr, "/healthz"),
        200,
        "still serving during the drain delay"
    );

    // Past the drain delay the listener is closed, but the in-flight request still completes.
    std::thread::sleep(Duration::from_millis(700));
    in_flight.write_all(tail.as_bytes()).unwrap();
    let mut response = String::new();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    in_flight.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    let exit = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert_eq!(exit, Some(0), "exits 0 after the drain");
    assert!(TcpStream::connect(&addr).is_err(), "the listener is closed");
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("received SIGTERM"), "{log}");
}

/// Starts the real binary on `db` and 127.0.0.1 with a free port: the child, its address, and a
/// thread that keeps draining its stdout (so it never blocks on a full pipe) and returns the log.
fn start_server(
    db: &std::path::Path,
    drain_delay: &str,
    rust_log: &str,
) -> (
    std::process::Child,
    String,
    std::thread::JoinHandle<Vec<String>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("DOORBUSTER_HOST", "127.0.0.1")
        .env("PORT", "0")
        // A free admin port too: tests run side by side, and 9090 may be taken on the machine.
        .env("DOORBUSTER_ADMIN_PORT", "0")
        .env("DOORBUSTER_DRAIN_DELAY", drain_delay)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        if let Some(rest) = line.split("open at http://").nth(1) {
            break rest.trim().to_owned();
        }
    };
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    (child, addr, log)
}

fn http_get_status(addr: &str, path: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn wait_with_timeout(child: &mut std::process::Child, timeout: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// Drain under load: two `doorbuster loadgen` crowds shop while the server gets SIGTERM. The first
/// crowd's run ends inside the drain delay, so every request it makes is accepted before the
/// deadline: none may fail. The second keeps going past the deadline, so it meets a closed
/// listener, which is the point: it may see connection errors then, but never a 5xx. Readiness
/// turns false while the shop still serves, and every order either crowd was told about (201)
/// is in the database, whole.
#[test]
fn sigterm_under_load_loses_no_accepted_request_or_order() {
    const DRAIN_DELAY: Duration = Duration::from_secs(6);
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("shop.db");
    let (mut server, addr, log) = start_server(&db_path, "6s", "warn,doorbuster=info");

    let crowd = |name: &str, duration: &str| {
        let report = dir.path().join(format!("{name}.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_doorbuster"))
            .args(["loadgen", "--target", &format!("http://{addr}")])
            .args(["--users", "4", "--duration", duration])
            .args(["--mix", "browse=40,cart=20,checkout=40"])
            .args(["--max-error-rate", "100%", "--timeout", "5s"])
            .arg("--json")
            .arg(&report)
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (child, report)
    };
    let (mut inside, inside_report) = crowd("inside", "2s");
    let (mut past, past_report) = crowd("past", "9s");
    std::thread::sleep(Duration::from_millis(500));

    let sigterm_at = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = sigterm_at + DRAIN_DELAY;

    // Readiness turns false at once, while the listener still serves the crowd.
    let ready = loop {
        let status = http_get_status(&addr, "/readyz");
        if status == 503 || sigterm_at.elapsed() > Duration::from_secs(2) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ready, 503, "not ready while draining");
    assert_eq!(http_get_status(&addr, "/healthz"), 200, "still serving");

    let inside_exit = wait_with_timeout(&mut inside, Duration::from_secs(30));
    assert!(
        Instant::now() < deadline,
        "the first crowd must finish inside the drain delay for this test to mean anything; \
         the machine is too slow for a {DRAIN_DELAY:?} delay"
    );
    assert_eq!(inside_exit, Some(0), "the first crowd's run passed");
    assert_eq!(
        wait_with_timeout(&mut server, Duration::from_secs(30)),
        Some(0),
        "the server exits 0 after the drain"
    );
    assert!(
        Instant::now() >= deadline,
        "the listener stayed open for the drain delay"
    );
    wait_with_timeout(&mut past, Duration::from_secs(60)).expect("the second crowd ends");

    let inside = read_report(&inside_report);
    let past = read_report(&past_report);
    assert!(
        inside["requests"].as_u64().unwrap() > 20,
        "the first crowd did shop: {inside}"
    );
    assert_eq!(
        inside["errors"], 0,
        "nothing accepted before the deadline failed: {inside}"
    );
    for report in [&inside, &past] {
        for step in report["steps"].as_array().unwrap() {
            let statuses = step["statuses"].as_object().unwrap();
            assert!(
                statuses.keys().all(|status| !status.starts_with('5')),
                "no 5xx, ever: {step}"
            );
        }
    }
    eprintln!(
        "inside the drain: {} requests, {} orders; past it: {} requests, {} orders, {} errors",
        inside["requests"],
        inside["orders_placed"],
        past["requests"],
        past["orders_placed"],
        past["errors"]
    );
    let told = inside["orders_placed"].as_u64().unwrap() + past["orders_placed"].as_u64().unwrap();
    assert!(told > 0, "some orders were placed: {inside} {past}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = doorbuster::db::Db::connect(&crate::support::options(&format!(
            "sqlite://{}",
            db_path.display()
        )))
        .await
        .unwrap();
        let stored = doorbuster::db::orders::count(&db).await.unwrap();
        assert_eq!(
            stored as u64, told,
            "every 201 is an order in the database, and only those"
        );
        assert_eq!(
            doorbuster::db::orders::audit(&db).await.unwrap(),
            doorbuster::db::orders::Audit::default(),
            "no half-written order"
        );
    });
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("received SIGTERM"), "{log}");
}

fn read_report(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("loadgen wrote no report at {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap()
}
