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
