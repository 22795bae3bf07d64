//! Hostile input: property tests over the cart cookie, query strings and checkout bodies. Whatever
//! arrives, the answer is a deliberate 2xx/3xx/4xx, never a 5xx or a crash.

use axum::body::Body;
use axum::http::Request;
use doorbuster::shop::cart::{Cart, MAX_COOKIE_LEN, MAX_LINES, MAX_QUANTITY};
use proptest::prelude::*;

use crate::support::TestApp;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any cookie value parses into a cart within bounds, and a parsed cart round-trips.
    #[test]
    fn cart_cookie_parser_is_total_and_bounded(value in "\\PC{0,600}|([0-9x\\-]{0,80})") {
        let cart = Cart::from_cookie(&value);
        prop_assert!(cart.lines().len() <= MAX_LINES);
        prop_assert!(cart.lines().iter().all(|l| l.product_id > 0 && (1..=MAX_QUANTITY).contains(&l.quantity)));
        if value.len() > MAX_COOKIE_LEN {
            prop_assert!(cart.is_empty());
        }
        prop_assert_eq!(Cart::from_cookie(&cart.to_cookie()), cart);
    }

    /// Carts built by adding items always encode into a cookie the parser reads back unchanged.
    #[test]
    fn built_carts_round_trip(items in proptest::collection::vec((1i64..100_000, -5i64..50), 0..40)) {
        let mut cart = Cart::default();
        for (id, quantity) in items {
            let _ = cart.add(id, quantity);
        }
        prop_assert!(cart.to_cookie().len() <= MAX_COOKIE_LEN);
        prop_assert_eq!(Cart::from_cookie(&cart.to_cookie()), cart);
    }
}

/// Random query strings on listings never produce a 5xx.
#[test]
fn random_query_strings_never_5xx() {
    let rt = runtime();
    let app = rt.block_on(TestApp::sqlite());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&"[a-z_=&%0-9A-F\\-\\.\\+]{0,60}", |query| {
            for path in ["/api/products", "/c/games", "/cart", "/orders/ABCDEFGHJKMN"] {
                let uri = format!("{path}?{query}");
                let Ok(request) = Request::get(&uri).body(Body::empty()) else {
                    continue;
                };
                let response = rt.block_on(app.request(request));
                prop_assert!(
                    !response.status.is_server_error(),
                    "{uri} -> {}",
                    response.status
                );
            }
            Ok(())
        })
        .unwrap();
}

/// Random and mutated checkout bodies are answered 201, 409 or 4xx, never 5xx.
#[test]
fn random_checkout_bodies_never_5xx() {
    let rt = runtime();
    let app = rt.block_on(TestApp::sqlite());
    let json_value = proptest::prop_oneof![
        Just(serde_json::json!(null)),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        "\\PC{0,40}".prop_map(|s| serde_json::json!(s)),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
    ];
    let body = (
        json_value.clone(),
        json_value.clone(),
        json_value,
        any::<bool>(),
        "\\PC{0,30}",
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    runner
        .run(&body, |(product_id, quantity, email, raw, junk)| {
            let text = if raw {
                junk
            } else {
                serde_json::json!({
                    "items": [{"product_id": product_id, "quantity": quantity}],
                    "customer": {"name": "A", "email": email, "address": "B", "city": "C", "postal_code": "1", "country": "D"}
                })
                .to_string()
            };
            let request = Request::post("/api/checkout")
                .header("content-type", "application/json")
                .body(Body::from(text.clone()))
                .unwrap();
            let response = rt.block_on(app.request(request));
            prop_assert!(!response.status.is_server_error(), "{text} -> {} {}", response.status, response.text());
            Ok(())
        })
        .unwrap();
}

/// Over a real socket: a client that never finishes its headers is cut off by the header-read
/// timeout; an oversized request head is refused with 431; invalid bytes in the path are a 400;
/// and the server keeps serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_huge_and_malformed_requests_are_refused() {
    use std::time::{Duration, Instant};

    use doorbuster::config::WebConfig;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    let config = WebConfig {
        header_read_timeout: Duration::from_millis(500),
        ..WebConfig::default()
    };
    let app = TestApp::sqlite_with(config).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(doorbuster::server::serve(
        listener,
        app.state.clone(),
        Duration::ZERO,
        stop.clone().cancelled_owned(),
    ));

    async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    // Slowloris: half a request head, then silence.
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: shop\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server closed the slow connection");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: shop\r\nCookie: cart={}\r\nConnection: close\r\n\r\n",
        "1x1-".repeat(50_000)
    );
    let answer = exchange(addr, huge.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    let answer = exchange(
        addr,
        b"GET /p/\xff\xfe HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    let answer = exchange(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "still serving: {answer}"
    );
    stop.cancel();
    server.await.unwrap().unwrap();
}

/// A 60 KB path, slug, id, query value or field name is not reflected back whole: errors repeat
/// at most the first 80 characters of what was sent, cut with an ellipsis.
#[tokio::test]
async fn huge_input_is_not_echoed_whole() {
    let app = TestApp::sqlite().await;
    let huge = "x".repeat(60_000);
    let too_much = "x".repeat(81);
    // The input's start, cut: what repeats it may quote it, so a character or two goes on that.
    let cut = format!("{}…", "x".repeat(75));
    let get = |uri: String| Request::get(uri).body(Body::empty()).unwrap();
    let json = |body: String| {
        Request::post("/api/checkout")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    // (request, whether the answer repeats the start of the input)
    let requests = [
        (get(format!("/{huge}")), false),
        (get(format!("/p/{huge}")), true),
        (get(format!("/c/{huge}")), true),
        (get(format!("/orders/{huge}")), true),
        (get(format!("/c/books?sort={huge}")), true),
        (get(format!("/static/{huge}")), true),
        (get(format!("/art/product/{huge}.svg")), true),
        (get(format!("/art/category/{huge}.svg")), true),
        (get(format!("/api/{huge}")), false),
        (get(format!("/api/products/{huge}")), true),
        (get(format!("/api/products?category={huge}")), true),
        (get(format!("/api/products?sort={huge}")), true),
        (get(format!("/api/products?{huge}=1")), true),
        (get(format!("/api/orders/{huge}")), true),
        (
            Request::delete(format!("/p/{huge}"))
                .body(Body::empty())
                .unwrap(),
            false,
        ),
        (json(format!(r#"{{"items": [], "{huge}": 1}}"#)), true),
        (
            json(format!(
                r#"{{"items": [{{"product_id": 1, "quantity": 1}}], "customer": {{"{huge}": "x"}}}}"#
            )),
            true,
        ),
    ];
    for (request, repeats) in requests {
        let uri: String = request.uri().to_string().chars().take(24).collect();
        let what = format!("{} {uri}", request.method());
        let response = app.request(request).await;
        assert!(
            response.status.is_client_error(),
            "{what}: {}",
            response.status
        );
        let text = response.text();
        assert!(
            !text.contains(&too_much),
            "{what} echoed it whole: {}",
            &text[..text.len().min(300)]
        );
        assert!(
            response.body.len() < 12_000,
            "{what}: {} bytes",
            response.body.len()
        );
        if repeats {
            assert!(text.contains(&cut), "{what} shows where it was cut: {text}");
        } else {
            assert!(text.contains('…'), "{what} shows where it was cut: {text}");
        }
    }
}
