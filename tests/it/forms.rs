//! The shop's forms as browsers and proxies send them: a post another site makes is refused
//! (cross-site request forgery), the checkout form's key places exactly one order however often
//! it is submitted, and the cart cookie is `Secure` when the shopper came over HTTPS.

use axum::http::StatusCode;
use futures_util::future::join_all;

use crate::support::{TestApp, TestResponse, db_tests};

/// The key the checkout form carries in its hidden field.
fn form_key(html: &str) -> String {
    html.split("name=\"idempotency_key\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no idempotency_key field in {html}"))
        .to_owned()
}

/// A valid checkout form, with `key` as its idempotency key (left out when `None`).
fn checkout_fields(key: Option<&str>) -> Vec<(&str, &str)> {
    let mut fields = vec![
        ("name", "Grace Hopper"),
        ("email", "grace@example.com"),
        ("address", "1 Compiler Way"),
        ("city", "Arlington"),
        ("postal_code", "22201"),
        ("country", "United States"),
    ];
    if let Some(key) = key {
        fields.push(("idempotency_key", key));
    }
    fields
}

/// A cart cookie holding two units of a roomy product.
async fn cart_with_a_product(app: &TestApp) -> String {
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 20)
        .await;
    let id = product["id"].to_string();
    app.post_form("/cart/add", &[("product_id", &id), ("quantity", "2")], "")
        .await
        .cart_cookie()
}

#[track_caller]
fn confirmation(response: &TestResponse) -> String {
    assert_eq!(
        response.status,
        StatusCode::SEE_OTHER,
        "{}",
        response.text()
    );
    let location = response.header("location");
    assert!(location.starts_with("/orders/"), "{location}");
    location.to_owned()
}

db_tests! {
    /// A checkout form submitted twice with one key and the same cart cookie, one after the other
    /// or several times at once, places one order, and every answer leads to it. A key the shop
    /// cannot use (this is how two orders were made: it was dropped and each submit placed an
    /// unkeyed order) places none.
    async fn double_submitted_checkout_places_one_order(app) {
        let cookie = cart_with_a_product(&app).await;
        let key = form_key(&app.get_with_cookie("/checkout", &cookie).await.text());
        let fields = checkout_fields(Some(&key));
        let first = confirmation(&app.post_form("/checkout", &fields, &cookie).await);
        let second = confirmation(&app.post_form("/checkout", &fields, &cookie).await);
        assert_eq!(first, second);
        assert_eq!(app.order_count().await, 1);

        let key = form_key(&app.get_with_cookie("/checkout", &cookie).await.text());
        let fields = checkout_fields(Some(&key));
        let answers = join_all((0..6).map(|_| app.post_form("/checkout", &fields, &cookie))).await;
        let locations: Vec<String> = answers.iter().map(confirmation).collect();
        assert!(locations.iter().all(|l| *l == locations[0]), "{locations:?}");
        assert_ne!(locations[0], first, "a new form is a new order");
        assert_eq!(app.order_count().await, 2);

        let fields = checkout_fields(Some("form key with spaces"));
        let mut answers = vec![app.post_form("/checkout", &fields, &cookie).await];
        answers.extend(join_all((0..4).map(|_| app.post_form("/checkout", &fields, &cookie))).await);
        for answer in &answers {
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.header("location"));
        }
        assert_eq!(app.order_count().await, 2, "an unusable key placed orders");
    }

    /// A checkout post without its key, or with a key that is not one, places no order: the form
    /// comes back (422) with the details kept, a fresh key and a message saying what to do.
    async fn checkout_without_a_valid_key_places_no_order(app) {
        let cookie = cart_with_a_product(&app).await;
        let long = "k".repeat(300);
        let mut fresh = String::new();
        for key in [None, Some(""), Some("has spaces"), Some(long.as_str())] {
            let response = app.post_form("/checkout", &checkout_fields(key), &cookie).await;
            assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{key:?}: {}", response.text());
            let html = response.text();
            assert!(html.contains("Nothing was ordered"), "{html}");
            assert!(html.contains("value=\"Grace Hopper\""), "the details are kept");
            fresh = form_key(&html);
            assert!(fresh.starts_with("form-"), "{fresh}");
            assert_eq!(app.order_count().await, 0, "{key:?}");
        }
        // The form as it came back places the order.
        confirmation(&app.post_form("/checkout", &checkout_fields(Some(&fresh)), &cookie).await);
        assert_eq!(app.order_count().await, 1);
    }

    /// A form whose key already placed an order for another cart comes back with a new key, so
    /// the shopper's next submit places the order instead of being refused again.
    async fn a_used_key_for_another_cart_is_replaced(app) {
        let cookie = cart_with_a_product(&app).await;
        let key = form_key(&app.get_with_cookie("/checkout", &cookie).await.text());
        confirmation(&app.post_form("/checkout", &checkout_fields(Some(&key)), &cookie).await);
        let other = app.find_product(|p| p["stock"].as_i64().unwrap() > 20 && !cookie.contains(&format!("={}x", p["id"]))).await;
        let cookie = app.post_form("/cart/add", &[("product_id", &other["id"].to_string())], "").await.cart_cookie();
        let refused = app.post_form("/checkout", &checkout_fields(Some(&key)), &cookie).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.text().contains("Your cart changed"), "{}", refused.text());
        let fresh = form_key(&refused.text());
        assert_ne!(fresh, key);
        confirmation(&app.post_form("/checkout", &checkout_fields(Some(&fresh)), &cookie).await);
        assert_eq!(app.order_count().await, 2);
    }
}

/// The headers a browser sends with a form post, by where the page that sent it was.
const FROM_THE_SHOP: &[(&str, &str)] = &[
    ("host", "shop.test"),
    ("origin", "http://shop.test"),
    ("sec-fetch-site", "same-origin"),
];
const FROM_ANOTHER_SITE: &[(&str, &str)] = &[
    ("host", "shop.test"),
    ("origin", "https://evil.test"),
    ("sec-fetch-site", "cross-site"),
];
const FROM_A_SIBLING_SUBDOMAIN: &[(&str, &str)] = &[
    ("host", "shop.test"),
    ("origin", "http://blog.shop.test"),
    ("sec-fetch-site", "same-site"),
];
/// An old browser: `Origin` only.
const OLD_BROWSER_ELSEWHERE: &[(&str, &str)] =
    &[("host", "shop.test"), ("origin", "https://evil.test")];

/// A form post another site makes the browser send, to any of the three forms, is refused with a
/// 403 page that says what happened; the cart cookie is not touched and nothing is ordered.
#[tokio::test]
async fn cross_site_form_posts_are_refused_and_change_nothing() {
    let app = TestApp::sqlite().await;
    let cookie = cart_with_a_product(&app).await;
    let id = cookie
        .trim_start_matches("cart=")
        .split('x')
        .next()
        .unwrap()
        .to_owned();
    let key = form_key(&app.get_with_cookie("/checkout", &cookie).await.text());
    let forms: [(&str, Vec<(&str, &str)>); 3] = [
        ("/cart/add", vec![("product_id", &id), ("quantity", "9")]),
        ("/cart/update", vec![("product_id", &id), ("quantity", "0")]),
        ("/checkout", checkout_fields(Some(&key))),
    ];
    for headers in [
        FROM_ANOTHER_SITE,
        FROM_A_SIBLING_SUBDOMAIN,
        OLD_BROWSER_ELSEWHERE,
        &[("host", "shop.test"), ("origin", "null")],
    ] {
        for (path, fields) in &forms {
            let response = app.post_form_with(path, fields, &cookie, headers).await;
            assert_eq!(response.status, StatusCode::FORBIDDEN, "{path} {headers:?}");
            assert!(response.header("content-type").starts_with("text/html"));
            let html = response.text();
            assert!(
                html.contains("sent from another website")
                    && html.contains("nothing was added, changed or ordered"),
                "says what happened: {html}"
            );
            assert!(
                html.contains("use its own buttons"),
                "says what to do: {html}"
            );
            assert!(
                response.headers.get("set-cookie").is_none(),
                "{path}: the cart is not touched"
            );
            assert!(response.headers.get("location").is_none());
        }
    }
    assert_eq!(app.order_count().await, 0);
    let cart = app.get_with_cookie("/cart", &cookie).await;
    assert_eq!(cart.cart_cookie(), cookie, "the cart is as it was");
}

/// Posts from the shop's own pages pass, as do posts with no browser headers at all (curl, the
/// load generator); an old browser's `Origin` must name the shop, port and all.
#[tokio::test]
async fn same_origin_and_headerless_form_posts_are_accepted() {
    let app = TestApp::sqlite().await;
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 20)
        .await;
    let id = product["id"].to_string();
    let add = [("product_id", id.as_str()), ("quantity", "1")];
    let cases: [(&[(&str, &str)], bool); 8] = [
        (FROM_THE_SHOP, true),
        (&[], true),
        (&[("sec-fetch-site", "none")], true),
        (
            &[("host", "shop.test"), ("origin", "http://shop.test")],
            true,
        ),
        (
            &[
                ("host", "shop.test:8080"),
                ("origin", "http://shop.test:8080"),
            ],
            true,
        ),
        (
            &[
                ("host", "shop.test:8080"),
                ("origin", "http://shop.test:9090"),
            ],
            false,
        ),
        (
            &[
                ("host", "shop.test"),
                ("origin", "http://shop.test.evil.test"),
            ],
            false,
        ),
        (OLD_BROWSER_ELSEWHERE, false),
    ];
    for (headers, accepted) in cases {
        let response = app.post_form_with("/cart/add", &add, "", headers).await;
        let expected = if accepted {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(response.status, expected, "{headers:?}");
    }
    // The whole journey from the shop's own pages, as Chromium sends it.
    let cookie = app
        .post_form_with("/cart/add", &add, "", FROM_THE_SHOP)
        .await
        .cart_cookie();
    let cookie = app
        .post_form_with(
            "/cart/update",
            &[("product_id", &id), ("quantity", "2")],
            &cookie,
            FROM_THE_SHOP,
        )
        .await
        .cart_cookie();
    let key = form_key(&app.get_with_cookie("/checkout", &cookie).await.text());
    confirmation(
        &app.post_form_with(
            "/checkout",
            &checkout_fields(Some(&key)),
            &cookie,
            FROM_THE_SHOP,
        )
        .await,
    );
}

/// Behind a load balancer that ends TLS, the shop's origin is the host and scheme the browser
/// used, as the proxy forwards them: that origin passes, the internal name and plain HTTP do not.
#[tokio::test]
async fn origin_must_match_the_shop_behind_a_proxy() {
    let app = TestApp::sqlite().await;
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 20)
        .await;
    let id = product["id"].to_string();
    let add = [("product_id", id.as_str())];
    let proxied = |origin| {
        [
            ("host", "10.244.1.17:8080"),
            ("x-forwarded-host", "shop.example"),
            ("x-forwarded-proto", "https"),
            ("origin", origin),
        ]
    };
    let cases = [
        (proxied("https://shop.example"), true),
        (proxied("https://shop.example:443"), true),
        (proxied("http://shop.example"), false),
        (proxied("http://10.244.1.17:8080"), false),
        (proxied("https://evil.example"), false),
    ];
    for (headers, accepted) in cases {
        let response = app.post_form_with("/cart/add", &add, "", &headers).await;
        let expected = if accepted {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(response.status, expected, "{headers:?}");
    }
    // An ingress that passes Host through and only says the scheme.
    let passed_through = [
        ("host", "shop.example"),
        ("x-forwarded-proto", "https"),
        ("origin", "https://shop.example"),
    ];
    assert_eq!(
        app.post_form_with("/cart/add", &add, "", &passed_through)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

/// What a cross-site page can send to the JSON API without a preflight (a form's content types)
/// is refused, and the shop answers no CORS preflight: the API needs no origin check of its own.
#[tokio::test]
async fn the_json_api_refuses_what_a_cross_site_form_can_send() {
    use axum::body::Body;
    use axum::http::Request;
    let app = TestApp::sqlite().await;
    let body = crate::support::checkout_body(&[(1, 1)]).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let request = Request::post("/api/checkout")
            .header("content-type", content_type)
            .header("origin", "https://evil.test")
            .header("sec-fetch-site", "cross-site")
            .body(Body::from(body.clone()))
            .unwrap();
        app.request(request)
            .await
            .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let preflight = Request::options("/api/checkout")
        .header("origin", "https://evil.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap();
    let answer = app.request(preflight).await;
    assert!(!answer.status.is_success(), "{}", answer.status);
    assert!(answer.headers.get("access-control-allow-origin").is_none());
    assert_eq!(app.order_count().await, 0);
}

/// Whether the `Set-Cookie` for the cart in `response` is `Secure`.
fn cart_cookie_is_secure(response: &TestResponse) -> bool {
    cookie_is_secure(response, "cart")
}

/// Whether the `Set-Cookie` for cookie `name` in `response` is `Secure`.
fn cookie_is_secure(response: &TestResponse, name: &str) -> bool {
    let set = response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("a {name} cookie: {:?}", response.headers));
    set.split(';')
        .any(|attribute| attribute.trim().eq_ignore_ascii_case("secure"))
}

/// The cart cookie (and the receipt a checkout leaves) is `Secure` when the shopper came over HTTPS (the load balancer says so in
/// `X-Forwarded-Proto`), on every answer that sets it; over plain HTTP it is not, so a shop on
/// `http://localhost` keeps its cart.
#[tokio::test]
async fn cart_cookie_is_secure_only_over_https() {
    let app = TestApp::sqlite().await;
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 20)
        .await;
    let id = product["id"].to_string();
    for (headers, secure) in [
        (&[("x-forwarded-proto", "https")][..], true),
        (&[("x-forwarded-proto", "https, http")][..], true),
        (&[][..], false),
        (&[("x-forwarded-proto", "http")][..], false),
    ] {
        let added = app
            .post_form_with("/cart/add", &[("product_id", &id)], "", headers)
            .await;
        assert_eq!(cart_cookie_is_secure(&added), secure, "add {headers:?}");
        let cookie = added.cart_cookie();
        let mut request = axum::http::Request::get("/cart").header("cookie", &cookie);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let shown = app
            .request(request.body(axum::body::Body::empty()).unwrap())
            .await;
        assert_eq!(
            cart_cookie_is_secure(&shown),
            secure,
            "cart page {headers:?}"
        );
        let updated = app
            .post_form_with(
                "/cart/update",
                &[("product_id", &id), ("quantity", "2")],
                &cookie,
                headers,
            )
            .await;
        assert_eq!(
            cart_cookie_is_secure(&updated),
            secure,
            "update {headers:?}"
        );
        let key = form_key(&app.get_with_cookie("/checkout", &cookie).await.text());
        let placed = app
            .post_form_with("/checkout", &checkout_fields(Some(&key)), &cookie, headers)
            .await;
        confirmation(&placed);
        assert_eq!(
            cart_cookie_is_secure(&placed),
            secure,
            "emptied at checkout {headers:?}"
        );
        assert_eq!(
            cookie_is_secure(&placed, doorbuster::web::confirmation::RECEIPT_COOKIE),
            secure,
            "the order's receipt {headers:?}"
        );
    }
}
