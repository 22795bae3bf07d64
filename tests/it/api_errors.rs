//! Every class of bad input is a 4xx problem document (or an HTML page outside `/api`) that says
//! what to fix; a broken database is 503, never 500.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use doorbuster::config::WebConfig;
use serde_json::json;

use crate::support::{TestApp, checkout_body, db_tests, valid_customer};

db_tests! {
    /// Unknown products and zero, negative or absurd quantities are 422 naming the field.
    async fn invalid_items_are_422(app) {
        let problem = app.post_json("/api/checkout", &checkout_body(&[(987654, 1)])).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(problem["detail"].as_str().unwrap().contains("987654"));
        for quantity in [0, -1, 11, 1_000_000_000_000] {
            let problem = app.post_json("/api/checkout", &checkout_body(&[(1, quantity)])).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["errors"][0]["field"], "items[0].quantity", "{quantity}");
        }
        let problem = app.post_json("/api/checkout", &checkout_body(&[])).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["field"], "items");
        let mut body = checkout_body(&[(1, 1)]);
        body["customer"]["email"] = json!("nobody");
        let problem = app.post_json("/api/checkout", &body).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["field"], "customer.email");
        assert_eq!(app.order_count().await, 0);
    }
}

/// Malformed JSON is 400; a wrong content type 415; a wrong JSON type or an unknown field 422.
#[tokio::test]
async fn malformed_bodies_are_4xx_problems() {
    let app = TestApp::sqlite().await;
    let send = |content_type: &'static str, body: &'static str| {
        Request::post("/api/checkout")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let problem = app
        .request(send("application/json", "{\"items\": ["))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"].as_str().unwrap().contains("line 1"),
        "says where: {problem}"
    );
    let problem = app
        .request(send("text/plain", "{}"))
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
    app.request(send(
        "application/json",
        "{\"items\": [{\"product_id\": \"one\", \"quantity\": 1}]}",
    ))
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.request(send(
        "application/json",
        "{\"items\": [], \"coupon\": \"FREE\"}",
    ))
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.request(send(
        "application/json",
        "{\"items\": [{\"product_id\": 1, \"quantity\": 1.5}]}",
    ))
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
}

/// A body over the configured limit is 413, with or without a Content-Length.
#[tokio::test]
async fn oversize_bodies_are_413() {
    let app = TestApp::sqlite_with(WebConfig {
        max_body_bytes: 1024,
        ..WebConfig::default()
    })
    .await;
    let mut body = checkout_body(&[(1, 1)]);
    body["customer"]["name"] = json!("x".repeat(4096));
    app.post_json("/api/checkout", &body)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok("{\"items\":[".to_owned()),
        Ok(" ".repeat(4096)),
        Ok("]}".to_owned()),
    ];
    let streamed = Request::post("/api/checkout")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    app.request(streamed)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
}

/// Bad query parameters, unknown routes and wrong methods are problems under /api and pages elsewhere.
#[tokio::test]
async fn routing_errors_speak_the_right_format() {
    let app = TestApp::sqlite().await;
    app.get("/api/products?per_page=1000")
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.get("/api/products?page=0")
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.get("/api/products?page=two")
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.get("/api/products?sort=random")
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.get("/api/products?colour=red")
        .await
        .problem(StatusCode::BAD_REQUEST);
    let problem = app
        .get("/api/nothing/here")
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("/api/nothing/here")
    );
    let wrong_method = app
        .request(
            Request::delete("/api/products")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let problem = wrong_method.problem(StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        problem["detail"].as_str().unwrap().contains("Allow"),
        "{problem}"
    );
    assert_eq!(wrong_method.header("allow"), "GET,HEAD");

    let page = app.get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.text().contains("find that page"));
    let page = app
        .request(Request::delete("/cart").body(Body::empty()).unwrap())
        .await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(page.header("content-type").starts_with("text/html"));
    // Invalid UTF-8 in a path segment is a 400, not a crash.
    let page = app.get("/p/%FF%FE").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    app.get("/api/products/%FF")
        .await
        .problem(StatusCode::BAD_REQUEST);
}

/// Every response, errors included, carries the security headers and a CSP the pages satisfy.
#[tokio::test]
async fn security_headers_on_every_response() {
    let app = TestApp::sqlite().await;
    for uri in [
        "/",
        "/cart",
        "/api/products",
        "/api/nope",
        "/nope",
        "/static/app.css",
    ] {
        let response = app.get(uri).await;
        let csp = response.header("content-security-policy");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{uri}"
        );
        assert_eq!(
            response.header("x-content-type-options"),
            "nosniff",
            "{uri}"
        );
        assert_eq!(
            response.header("referrer-policy"),
            "strict-origin-when-cross-origin",
            "{uri}"
        );
        assert_eq!(response.header("x-frame-options"), "DENY", "{uri}");
        assert_eq!(
            response.header("cross-origin-opener-policy"),
            "same-origin",
            "{uri}"
        );
        // Pages come with the set ready-made; nothing may add it a second time.
        for name in [
            "content-security-policy",
            "x-content-type-options",
            "referrer-policy",
            "x-frame-options",
            "cross-origin-opener-policy",
        ] {
            assert_eq!(
                response.headers.get_all(name).iter().count(),
                1,
                "{uri} {name}"
            );
        }
    }
    // The CSP forbids inline script and style, so the pages must have none.
    let html = app.get("/").await.text();
    assert!(
        !html.contains("style=") && !html.contains("<style"),
        "no inline styles"
    );
    assert!(!html.contains("<script>"), "no inline scripts");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing loaded from elsewhere"
    );
}

/// A page's length is declared once and is the body's, whether rendered or from the page cache,
/// and a HEAD request gets the same headers without the body.
#[tokio::test]
async fn pages_declare_their_length() {
    let app = TestApp::sqlite().await;
    for _ in 0..2 {
        let page = app.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.headers.get_all("content-length").iter().count(), 1);
        assert_eq!(page.header("content-length"), page.body.len().to_string());
        assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
        assert_eq!(page.header("cache-control"), "private, no-cache");
        let head = app
            .request(Request::head("/").body(Body::empty()).unwrap())
            .await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), page.body.len().to_string());
    }
}

/// Responses are compressed for clients that ask.
#[tokio::test]
async fn responses_are_compressed_on_request() {
    let app = TestApp::sqlite().await;
    let response = app
        .request(
            Request::get("/")
                .header("accept-encoding", "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-encoding"), "gzip");
}

/// With the database gone, pages and API answer 503 with Retry-After (never 500), /readyz fails
/// and /healthz still passes.
#[tokio::test]
async fn database_down_is_503() {
    let app = TestApp::sqlite().await;
    app.state.db.close().await;
    let problem = app.get("/api/products").await;
    problem.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem.header("retry-after"), "2");
    let order = app
        .post_json(
            "/api/checkout",
            &json!({"items": [{"product_id": 1, "quantity": 1}], "customer": valid_customer()}),
        )
        .await;
    order.problem(StatusCode::SERVICE_UNAVAILABLE);
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.text().contains("Try again"));
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

/// Every 503 the shop sends as a page carries `Retry-After`, as its problem documents do: a
/// database that is down, and a fault the operator injects.
#[tokio::test]
async fn html_503_pages_carry_retry_after() {
    use doorbuster::load::{Controls, Cost, Knobs};
    use doorbuster::web::state::AppState;

    let app = TestApp::sqlite().await;
    let knobs = Knobs {
        pages: Cost {
            error_rate: 1.0,
            ..Cost::default()
        },
        ..Knobs::default()
    };
    let faulty = AppState::with_controls(
        app.state.db.clone(),
        WebConfig::default(),
        app.state.metrics.clone(),
        Controls::new(knobs, 100, Some(7)),
    );
    let faulty = TestApp::sqlite().await.with_state(faulty);
    let mut unavailable = 0;
    for _ in 0..40 {
        let page = faulty.get("/").await;
        assert!(page.status.is_server_error(), "{}", page.status);
        if page.status == StatusCode::SERVICE_UNAVAILABLE {
            unavailable += 1;
            assert!(page.header("content-type").starts_with("text/html"));
            assert_eq!(page.header("retry-after"), "2", "an injected 503");
        }
    }
    assert!(unavailable > 0, "half the injected faults are 503s");

    app.state.db.close().await;
    for uri in ["/", "/cart", "/c/books", "/p/anything"] {
        let page = app.get(uri).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{uri}"
        );
        assert_eq!(page.header("retry-after"), "2", "{uri}: database down");
    }
}

/// An unknown field inside `customer` is refused with a 422 problem that names it, as the OpenAPI
/// document says (`additionalProperties: false`), and nothing is ordered.
#[tokio::test]
async fn unknown_customer_fields_are_refused_naming_the_field() {
    let app = TestApp::sqlite().await;
    let mut body = checkout_body(&[(1, 1)]);
    body["customer"]["coupon"] = json!("FREE");
    let problem = app
        .post_json("/api/checkout", &body)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"].as_str().unwrap().contains("coupon"),
        "{problem}"
    );
    assert_eq!(app.order_count().await, 0);
    let spec = doorbuster::web::api::openapi::spec();
    assert_eq!(
        spec["components"]["schemas"]["Customer"]["additionalProperties"],
        json!(false)
    );
    assert_eq!(
        app.post_json("/api/checkout", &checkout_body(&[(1, 1)]))
            .await
            .status,
        StatusCode::CREATED
    );
}

/// Whether an error is problem+json or an HTML page follows the group the route table mounts a
/// route in, not the look of its URL: `/api` and unknown paths under `/api/` are the API's, an
/// unknown page is the shop's; so are errors raised outside handlers (a 405, an injected fault),
/// and the load-target costs of the API apply to `/api` as to the rest of it.
#[tokio::test]
async fn route_groups_decide_the_error_format_and_costs() {
    use doorbuster::load::{Controls, Cost, Knobs};
    use doorbuster::web::state::AppState;

    let app = TestApp::sqlite().await;
    for uri in ["/api", "/api/", "/api/unknown", "/api/products/1/more"] {
        let problem = app.get(uri).await.problem(StatusCode::NOT_FOUND);
        assert!(
            problem["detail"].as_str().unwrap().contains("no API route"),
            "{uri}: {problem}"
        );
    }
    for uri in ["/nope", "/apis", "/p/no-such-product"] {
        let page = app.get(uri).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{uri}"
        );
    }
    let delete = |uri: &str| Request::delete(uri).body(Body::empty()).unwrap();
    let refused = app.request(delete("/api/checkout")).await;
    refused.problem(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.header("allow"), "POST");
    // The form's checkout is mounted apart from the checkout page (it costs what checkout costs).
    let refused = app.request(delete("/checkout")).await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(refused.header("content-type").starts_with("text/html"));
    let mut allowed: Vec<&str> = refused.header("allow").split(',').collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["GET", "HEAD", "POST"]);

    // Every API request fails, no page does.
    let knobs = Knobs {
        api: Cost {
            error_rate: 1.0,
            ..Cost::default()
        },
        ..Knobs::default()
    };
    let faulty = AppState::with_controls(
        app.state.db.clone(),
        WebConfig::default(),
        app.state.metrics.clone(),
        Controls::new(knobs, 100, Some(7)),
    );
    let faulty = TestApp::sqlite().await.with_state(faulty);
    for uri in ["/api", "/api/unknown", "/api/products"] {
        let response = faulty.get(uri).await;
        assert!(
            response.status.is_server_error(),
            "{uri}: {}",
            response.status
        );
        assert_eq!(response.header("x-doorbuster-fault"), "injected", "{uri}");
        response.problem(response.status);
    }
    for uri in ["/", "/static/app.css"] {
        assert_eq!(faulty.get(uri).await.status, StatusCode::OK, "{uri}");
    }
    let page = faulty.get("/nope").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("content-type").starts_with("text/html"));
}
