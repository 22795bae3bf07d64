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
    let mut child = Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("shop.db").display()),
        )
        .env("DOORBUSTER_HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DOORBUSTER_DRAIN_DELAY", "500ms")
        .env("RUST_LOG", "info")
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
    // Keep draining stdout so the child never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

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
