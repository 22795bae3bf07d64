//! Connections over real sockets: nothing held forever, nothing frozen. A silent or idle
//! connection is closed (HTTP/1, HTTP/2 and the admin port alike); a shop out of file descriptors
//! makes room so its probes still get in; slow request bodies are answered 408 without taking the
//! shop's capacity; and connections still queued when the listener closes are answered, not reset.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use doorbuster::config::WebConfig;
use doorbuster::load::{Controls, Knobs};
use doorbuster::server;
use doorbuster::web::state::AppState;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::TestApp;

/// How long any test here waits for something that should take about a second: generous, so a
/// loaded machine does not fail the test, yet short of the defaults (10 s header read, 75 s idle)
/// the old code fell back on.
const PATIENCE: Duration = Duration::from_secs(6);

/// The HTTP/2 connection preface (RFC 9113, 3.4) followed by an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// The real shop on a real listener with `config`; stopped when the returned token is cancelled.
struct Shop {
    addr: SocketAddr,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _app: TestApp,
}

impl Shop {
    async fn start(config: WebConfig) -> Shop {
        let app = TestApp::sqlite_with(config).await;
        Self::start_with(app.state.clone(), app).await
    }

    async fn start_with(state: AppState, app: TestApp) -> Shop {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(server::serve(
            listener,
            state,
            Duration::ZERO,
            stop.clone().cancelled_owned(),
        ));
        Shop {
            addr,
            stop,
            server,
            _app: app,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.server.await.unwrap().unwrap();
    }
}

/// Reads until the peer closes the connection (end of stream or reset) or `PATIENCE` passes;
/// returns what arrived and whether it was closed.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    (received, closed)
}

/// Reads one HTTP/1.1 response with a `Content-Length` body: its head and body.
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before a response");
        received.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    while received.len() < head_end + length {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("the body in time")
            .unwrap();
        assert!(n > 0, "closed inside the body");
        received.extend_from_slice(&buffer[..n]);
    }
    (head, received[head_end..head_end + length].to_vec())
}

fn short_header_timeout() -> WebConfig {
    WebConfig {
        header_read_timeout: Duration::from_millis(500),
        ..WebConfig::default()
    }
}

/// A client that connects and sends nothing is closed once the header-read timeout has passed
/// since it was accepted (it used to wait forever for a first byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http1_connection_is_closed_after_the_header_read_timeout() {
    let shop = Shop::start(short_header_timeout()).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(shop.addr).await.unwrap();
    let (received, closed) = read_until_closed(&mut silent).await;
    assert!(
        closed,
        "still open after {PATIENCE:?}, with a 500 ms header-read timeout"
    );
    assert!(received.is_empty(), "nothing to answer");
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "not before the timeout: {:?}",
        started.elapsed()
    );
    shop.stop().await;
}

/// An HTTP/2 client that sends the preface and then nothing is closed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_h2c_connection_is_closed_after_the_header_read_timeout() {
    let shop = Shop::start(short_header_timeout()).await;
    let mut silent = TcpStream::connect(shop.addr).await.unwrap();
    silent.write_all(H2_PREFACE).await.unwrap();
    let (_received, closed) = read_until_closed(&mut silent).await;
    assert!(
        closed,
        "still open after {PATIENCE:?}, with a 500 ms header-read timeout"
    );
    shop.stop().await;
}

/// A keep-alive HTTP/1 connection that goes quiet after a request is closed after the idle
/// timeout, even with a long header-read timeout (which used to be what closed it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let shop = Shop::start(WebConfig {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(1),
        ..WebConfig::default()
    })
    .await;
    let mut client = TcpStream::connect(shop.addr).await.unwrap();
    let mut last_sent = Instant::now();
    for _ in 0..2 {
        last_sent = Instant::now();
        client
            .write_all(b"GET /api/categories HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        let (head, _body) = read_response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let (received, closed) = read_until_closed(&mut client).await;
    assert!(closed, "still open {PATIENCE:?} after a 1 s idle timeout");
    assert!(received.is_empty());
    // The idle time starts when the response has been handed over, after the request was sent.
    assert!(
        last_sent.elapsed() >= Duration::from_millis(900),
        "not before the idle timeout: {:?}",
        last_sent.elapsed()
    );
    shop.stop().await;
}

/// Between keep-alive requests, a client that starts a head and stalls is cut off after the
/// header-read timeout, not the (longer) idle timeout: a slowloris guard on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_second_request_head_is_closed_after_the_header_read_timeout() {
    let shop = Shop::start(WebConfig {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        ..WebConfig::default()
    })
    .await;
    let mut client = TcpStream::connect(shop.addr).await.unwrap();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sh")
        .await
        .unwrap();
    let (received, closed) = read_until_closed(&mut client).await;
    assert!(closed, "a stalled head is cut off");
    assert!(received.is_empty() || received.starts_with(b"HTTP/1.1 408"));
    shop.stop().await;
}

/// One HTTP/2 frame: (type, flags, stream, payload).
type Frame = (u8, u8, u32, Vec<u8>);

fn h2_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let length =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        if bytes.len() < 9 + length {
            break;
        }
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        frames.push((bytes[3], bytes[4], stream, bytes[9..9 + length].to_vec()));
        bytes = &bytes[9 + length..];
    }
    frames
}

/// An HTTP/2 connection that goes quiet after a request is told to go away (GOAWAY) and closed
/// after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2c_connection_is_closed_after_the_idle_timeout() {
    let shop = Shop::start(WebConfig {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(1),
        ..WebConfig::default()
    })
    .await;
    let mut client = TcpStream::connect(shop.addr).await.unwrap();
    // GET /healthz on stream 1: HPACK `:method: GET` (indexed 2), `:scheme: http` (indexed 6),
    // `:path` (name indexed 4) with a literal value; END_STREAM | END_HEADERS.
    let mut block = vec![0x82, 0x86, 0x04, 0x08];
    block.extend_from_slice(b"/healthz");
    let mut request = H2_PREFACE.to_vec();
    request.extend_from_slice(&[0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, 1]);
    request.extend_from_slice(&block);
    client.write_all(&request).await.unwrap();
    let started = Instant::now();
    let (received, closed) = read_until_closed(&mut client).await;
    assert!(closed, "still open {PATIENCE:?} after a 1 s idle timeout");
    let frames = h2_frames(&received);
    assert!(
        frames.iter().any(|(kind, _, stream, block)| *kind == 0x1
            && *stream == 1
            && block.first() == Some(&0x88)),
        "a 200 response on stream 1: {frames:?}"
    );
    assert!(
        frames.iter().any(|(kind, ..)| *kind == 0x7),
        "a GOAWAY before closing: {frames:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    shop.stop().await;
}

/// The admin listener (metrics, control API) closes silent connections too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_closes_a_silent_connection() {
    let app = TestApp::sqlite_with(short_header_timeout()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let admin = tokio::spawn(server::serve_admin(
        listener,
        app.state.clone(),
        stop.clone(),
    ));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (_received, closed) = read_until_closed(&mut silent).await;
    assert!(
        closed,
        "still open after {PATIENCE:?}, with a 500 ms header-read timeout"
    );
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200"), "still serving: {head}");
    stop.cancel();
    admin.await.unwrap().unwrap();
}

/// The real binary with 64 file descriptors: crowds of silent connections take every one, and
/// more wait in the listener's queue ahead of the probe, yet `/healthz` still answers within
/// seconds (the shop closes its oldest idle connections to
/// make room, long before the 60 s header-read timeout would), and the accept loop logs the
/// exhaustion once instead of twenty times a second.
#[test]
fn probes_get_in_when_file_descriptors_run_out() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    const LIMIT: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("ulimit -n {LIMIT} && exec \"$0\""))
        .arg(env!("CARGO_BIN_EXE_doorbuster"))
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("shop.db").display()),
        )
        .env("DOORBUSTER_DB_MAX_CONNECTIONS", "1")
        .env("DOORBUSTER_HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DOORBUSTER_ADMIN_PORT", "0")
        .env("DOORBUSTER_DRAIN_DELAY", "0s")
        .env("DOORBUSTER_HEADER_READ_TIMEOUT", "60s")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Killed however the test ends, so a failure leaves no server behind.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut child = Running(child);
    let addr = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        if let Some(rest) = line.split("open at http://").nth(1) {
            break rest.trim().to_owned();
        }
    };
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    // More silent connections than the server has descriptors: the kernel completes them all,
    // and those the server cannot accept wait in the listener's queue. A second crowd, once the
    // first has settled, makes sure descriptors are short when the probe arrives, behind it.
    let connect = |count: usize| -> Vec<std::net::TcpStream> {
        (0..count)
            .map(|_| std::net::TcpStream::connect(&addr).unwrap())
            .collect()
    };
    let first = connect(LIMIT + 40);
    std::thread::sleep(Duration::from_millis(500));
    let second = connect(LIMIT);

    let started = Instant::now();
    let mut probe = std::net::TcpStream::connect(&addr).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        probe,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = probe.read_to_string(&mut answer);
    let waited = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the probe got in: {answer:?}"
    );
    assert!(
        waited < Duration::from_secs(8),
        "the probe waited {waited:?}: it got in by a timeout, not by making room"
    );
    // Let a spinning accept loop show itself.
    std::thread::sleep(Duration::from_secs(1));

    drop((first, second));
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let started = Instant::now();
    while child.0.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(child);
    let log = log.join().unwrap();
    let failures = log
        .iter()
        .filter(|line| line.contains("accept") && line.contains("Too many open files"))
        .count();
    assert!(
        (1..=2).contains(&failures),
        "the exhaustion is logged once per episode, not per failed accept: {failures} lines:\n{}",
        log.join("\n")
    );
}

/// 160 clients each send a request head and part of a body, then stall. They are answered 408
/// once the body-read timeout passes (problem+json under /api, a page elsewhere), and while they
/// wait they hold none of the shop's capacity: ordinary requests are served, not shed, although
/// the stalled requests outnumber the in-flight bound five to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_bodies_get_408_and_do_not_starve_the_shop() {
    const STALLED: usize = 160;
    const MAX_IN_FLIGHT: usize = 32;
    let app = TestApp::sqlite().await;
    let config = WebConfig {
        body_read_timeout: Duration::from_secs(1),
        ..WebConfig::default()
    };
    let state = AppState::with_controls(
        app.state.db.clone(),
        config,
        app.state.metrics.clone(),
        Controls::new(Knobs::default(), MAX_IN_FLIGHT, None),
    );
    let shop = Shop::start_with(state, app).await;

    let started = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..STALLED {
        let mut client = TcpStream::connect(shop.addr).await.unwrap();
        let head = if i == 0 {
            "POST /cart/add HTTP/1.1\r\nHost: shop\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nproduct_id=1&quan"
        } else {
            "POST /api/checkout HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"items\": [{\"product_"
        };
        client.write_all(head.as_bytes()).await.unwrap();
        stalled.push(client);
    }
    // Give the server time to read every head (and, before the fix, to admit them all).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ordinary: Vec<_> = (0..25)
        .map(|_| {
            let addr = shop.addr;
            tokio::spawn(async move {
                let mut client = TcpStream::connect(addr).await.unwrap();
                client
                    .write_all(b"GET /api/categories HTTP/1.1\r\nHost: shop\r\n\r\n")
                    .await
                    .unwrap();
                read_response(&mut client).await.0
            })
        })
        .collect();
    for request in ordinary {
        let head = request.await.unwrap();
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "ordinary requests are served while slow bodies trickle in: {head}"
        );
    }

    for (i, client) in stalled.iter_mut().enumerate() {
        let (head, body) = read_response(client).await;
        assert!(head.starts_with("HTTP/1.1 408"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("connection: close"), "{head}");
        if i == 0 {
            assert!(head.contains("content-type: text/html"), "{head}");
        } else {
            assert!(
                head.contains("content-type: application/problem+json"),
                "{head}"
            );
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["status"], 408);
        }
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(10),
        "408 after the 1 s body-read timeout, well before the 10 s request timeout: {waited:?}"
    );
    shop.stop().await;
}

/// Connections the kernel has queued on the listener when the drain delay ends are accepted and
/// answered (with `Connection: close`) before the listener closes, not reset. Staged on the
/// runtime's only thread: while `serve` waits out a 100 ms drain delay, the test blocks that
/// thread past the deadline and connects five clients, whose requests wait in the listener's
/// queue. When the thread is released, the drain deadline and the queued connections are seen at
/// the same moment, which is exactly the moment the old accept loop chose between them (and
/// either reset the queue or cancelled the connections it had just accepted).
#[tokio::test(flavor = "current_thread")]
async fn connections_queued_when_the_drain_ends_are_answered() {
    let app = TestApp::sqlite().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(server::serve(
        listener,
        app.state.clone(),
        Duration::from_millis(100),
        async {},
    ));
    // Let `serve` start its drain delay.
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Block the runtime (no `.await` here) until the drain delay is over.
    std::thread::sleep(Duration::from_millis(300));
    let mut queued: Vec<std::net::TcpStream> = (0..5)
        .map(|_| {
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            client
                .write_all(b"GET /api/categories HTTP/1.1\r\nHost: shop\r\n\r\n")
                .unwrap();
            client
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    for client in &mut queued {
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut answer = Vec::new();
        let read = client.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            read.is_ok() && answer.starts_with("HTTP/1.1 200"),
            "a queued connection is answered, not reset: {read:?} {answer:?}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
}
