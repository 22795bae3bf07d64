//! Replicas that each keep their own store, as the demo runs them (SQLite in every pod, behind a
//! load balancer without affinity): what a shopper sees when one request lands on one replica
//! and the next on another.

use axum::http::{StatusCode, header};

use crate::support::{TestApp, TestResponse};

/// Places an order through the checkout form on `app`, the way a browser does, and returns the
/// answer to the form's submit (the redirect to the confirmation).
async fn place_by_form(app: &TestApp) -> (TestResponse, i64) {
    let product = app
        .find_product(|p| p["stock"].as_i64().unwrap() > 20)
        .await;
    let id = product["id"].as_i64().unwrap();
    let cart = app
        .post_form(
            "/cart/add",
            &[("product_id", &id.to_string()), ("quantity", "2")],
            "",
        )
        .await
        .cart_cookie();
    let form = app.get_with_cookie("/checkout", &cart).await.text();
    let key = form
        .split("name=\"idempotency_key\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries its key")
        .to_owned();
    let placed = app
        .post_form(
            "/checkout",
            &[
                ("name", "Grace Hopper"),
                ("email", "grace@example.com"),
                ("address", "1 Compiler Way"),
                ("city", "Arlington"),
                ("postal_code", "22201"),
                ("country", "United States"),
                ("idempotency_key", &key),
            ],
            &cart,
        )
        .await;
    assert_eq!(placed.status, StatusCode::SEE_OTHER, "{}", placed.text());
    (placed, product["price_cents"].as_i64().unwrap() * 2)
}

/// The `name=value` pairs a browser would send back to `path` from a response's `Set-Cookie`
/// headers (cookies deleted with `Max-Age=0` left out), joined as a `Cookie` header.
fn cookies_for(response: &TestResponse, path: &str) -> String {
    response
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter(|value| !value.contains("Max-Age=0"))
        .filter(|value| {
            let cookie_path = value
                .split(';')
                .map(str::trim)
                .find_map(|attribute| attribute.strip_prefix("Path="))
                .unwrap_or("/");
            path.starts_with(cookie_path)
        })
        .map(|value| value.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A form checkout placed on one replica, and its redirect fetched from another replica whose
/// own database never saw the order, shows the order's confirmation: what the page shows
/// travels in the shopper's own short-lived cookie. That replica says where its copy came from;
/// the replica that holds the order shows it from its database, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_shows_on_a_replica_without_the_order() {
    let (took_it, other) = (TestApp::sqlite().await, TestApp::sqlite().await);
    let (placed, total_cents) = place_by_form(&took_it).await;
    let location = placed.header("location").to_owned();
    let id = location
        .trim_start_matches("/orders/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let cookie = cookies_for(&placed, &location);
    assert!(
        !cookie.is_empty(),
        "the checkout leaves the browser something to show the confirmation with"
    );
    assert_eq!(other.order_count().await, 0, "separate stores");

    let elsewhere = other.get_with_cookie(&location, &cookie).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text());
    let html = elsewhere.text();
    assert!(html.contains("Thank you, Grace Hopper!"), "{html}");
    assert!(html.contains(&format!("data-order-id=\"{id}\"")));
    assert!(html.contains(&doorbuster::shop::money::Money(total_cents).to_string()));
    assert!(html.contains("1 Compiler Way"));
    assert!(
        html.contains("data-receipt"),
        "the page says its copy came from the browser, not from a database: {html}"
    );
    assert_eq!(elsewhere.header("cache-control"), "no-store");

    // Without the cookie that replica has nothing to show; the replica that took the order reads
    // its database and needs no cookie.
    assert_eq!(other.get(&location).await.status, StatusCode::NOT_FOUND);
    let at_home = took_it.get_with_cookie(&location, &cookie).await;
    assert_eq!(at_home.status, StatusCode::OK);
    assert!(at_home.text().contains("Thank you, Grace Hopper!"));
    assert!(!at_home.text().contains("data-receipt"));
}

/// The database is the authority: a receipt naming an order this replica holds changes nothing
/// on its page, whatever it says. A receipt can only fool the browser that carries it, and a page
/// drawn from one says so; a receipt for another order, or one that does not decode, is no
/// receipt (404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_never_overrides_the_database() {
    use doorbuster::web::confirmation::{RECEIPT_COOKIE, Receipt};

    let (took_it, other) = (TestApp::sqlite().await, TestApp::sqlite().await);
    let (placed, _) = place_by_form(&took_it).await;
    let location = placed.header("location").to_owned();
    let cookie = cookies_for(&placed, &location);
    let value = cookie
        .split("; ")
        .find_map(|pair| pair.strip_prefix(&format!("{RECEIPT_COOKIE}=")))
        .expect("a receipt");
    let mut forged = Receipt::from_cookie_value(value).expect("a receipt that decodes");
    forged.name = "Mallory".to_owned();
    let forged = format!(
        "{RECEIPT_COOKIE}={}",
        forged.to_cookie_value().expect("fits")
    );

    let page = took_it.get_with_cookie(&location, &forged).await.text();
    assert!(page.contains("Thank you, Grace Hopper!") && !page.contains("Mallory"));

    let fooled = other.get_with_cookie(&location, &forged).await;
    assert_eq!(fooled.status, StatusCode::OK);
    let page = fooled.text();
    assert!(page.contains("Mallory") && page.contains("data-receipt"));

    let other_order = location.replace(
        location
            .trim_start_matches("/orders/")
            .split('?')
            .next()
            .unwrap(),
        "ZZZZZZZZZZZZ",
    );
    assert_eq!(
        other.get_with_cookie(&other_order, &cookie).await.status,
        StatusCode::NOT_FOUND
    );
    let garbage = format!("{RECEIPT_COOKIE}=e30");
    assert_eq!(
        other.get_with_cookie(&location, &garbage).await.status,
        StatusCode::NOT_FOUND
    );
}
