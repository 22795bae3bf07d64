//! Checkout: the HTML form, the API, idempotency, stock limits and concurrency.

use std::sync::Arc;

use axum::http::StatusCode;
use doorbuster::server;
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::{checkout_body, db_tests, valid_customer};

db_tests! {
    /// The form shows each problem next to its field, then a valid submit confirms the order and
    /// empties the cart.
    async fn html_checkout_validates_then_confirms(app) {
        let product = app.find_product(|p| p["stock"].as_i64().unwrap() > 20).await;
        let cookie = app.post_form("/cart/add", &[("product_id", &product["id"].to_string()), ("quantity", "2")], "").await.cart_cookie();

        let form = app.get_with_cookie("/checkout", &cookie).await;
        assert_eq!(form.status, StatusCode::OK);
        let html = form.text();
        let key = html.split("name=\"idempotency_key\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();

        let invalid = app.post_form("/checkout", &[
            ("name", "Grace Hopper"), ("email", "grace-at-example"), ("address", ""),
            ("city", "Arlington"), ("postal_code", "22201"), ("country", "United States"),
            ("idempotency_key", &key),
        ], &cookie).await;
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
        let html = invalid.text();
        assert!(html.contains("id=\"email-error\""), "error next to the email field");
        assert!(html.contains("Enter an email address like name@example.com."));
        assert!(html.contains("id=\"address-error\"") && html.contains("Enter your street address."));
        assert!(html.contains("value=\"Grace Hopper\""), "entered values are kept");
        assert_eq!(app.order_count().await, 0);

        let fields = [
            ("name", "Grace Hopper"), ("email", "grace@example.com"), ("address", "1 Compiler Way"),
            ("city", "Arlington"), ("postal_code", "22201"), ("country", "United States"),
            ("idempotency_key", key.as_str()),
        ];
        let placed = app.post_form("/checkout", &fields, &cookie).await;
        assert_eq!(placed.status, StatusCode::SEE_OTHER, "{}", placed.text());
        let location = placed.header("location").to_owned();
        assert!(location.starts_with("/orders/"));
        let emptied = placed.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).any(|v| v.starts_with("cart=;") && v.contains("Max-Age=0"));
        assert!(emptied, "cart emptied: {:?}", placed.headers);

        // A double submit of the same form is the same order.
        let again = app.post_form("/checkout", &fields, &cookie).await;
        assert_eq!(again.header("location"), location);
        assert_eq!(app.order_count().await, 1);

        let confirmation = app.get(&location).await;
        assert_eq!(confirmation.status, StatusCode::OK);
        let html = confirmation.text();
        assert!(html.contains("Thank you, Grace Hopper!"));
        let id = location.trim_start_matches("/orders/").split('?').next().unwrap();
        assert!(html.contains(&format!("data-order-id=\"{id}\"")));
        let total = doorbuster::shop::money::Money(product["price_cents"].as_i64().unwrap() * 2).to_string();
        assert!(html.contains(&total));
        assert_eq!(app.get("/orders/ZZZZZZZZZZZZ").await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/orders/not-an-order").await.status, StatusCode::NOT_FOUND);
    }

    /// An API checkout answers 201 with server-computed totals and takes the stock.
    async fn api_checkout_creates_order_and_takes_stock(app) {
        let a = app.find_product(|p| p["stock"].as_i64().unwrap() > 20).await;
        let b = app.find_product(|p| p["stock"].as_i64().unwrap() > 20 && p["id"] != a["id"]).await;
        let (a_id, b_id) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
        let response = app.post_json("/api/checkout", &checkout_body(&[(a_id, 2), (b_id, 1)])).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        let order = response.json();
        let expected = a["price_cents"].as_i64().unwrap() * 2 + b["price_cents"].as_i64().unwrap();
        assert_eq!(order["total_cents"], expected);
        assert_eq!(order["item_count"], 3);
        assert_eq!(order["customer"], valid_customer());
        assert_eq!(response.header("location"), format!("/api/orders/{}", order["id"].as_str().unwrap()));

        let fetched = app.get(response.header("location")).await;
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(fetched.json(), order);
        assert_eq!(app.product(a["slug"].as_str().unwrap()).await["stock"], a["stock"].as_i64().unwrap() - 2);
        assert_eq!(app.product(b["slug"].as_str().unwrap()).await["stock"], b["stock"].as_i64().unwrap() - 1);
        app.get("/api/orders/ZZZZZZZZZZZZ").await.problem(StatusCode::NOT_FOUND);
        app.get("/api/orders/x").await.problem(StatusCode::NOT_FOUND);
    }

    /// Retrying with the same Idempotency-Key returns the first order; a different body is 422.
    async fn idempotency_key_replays_the_first_order(app) {
        let product = app.find_product(|p| p["stock"].as_i64().unwrap() > 20).await;
        let id = product["id"].as_i64().unwrap();
        let key = [("Idempotency-Key", "3b8e8c52-retry-me")];
        let first = app.post_json_with("/api/checkout", &checkout_body(&[(id, 1)]), &key).await;
        assert_eq!(first.status, StatusCode::CREATED);
        let retry = app.post_json_with("/api/checkout", &checkout_body(&[(id, 1)]), &key).await;
        assert_eq!(retry.status, StatusCode::CREATED);
        assert_eq!(retry.header("idempotent-replayed"), "true");
        assert_eq!(retry.json()["id"], first.json()["id"]);
        assert_eq!(app.order_count().await, 1);
        assert_eq!(app.product(product["slug"].as_str().unwrap()).await["stock"], product["stock"].as_i64().unwrap() - 1);

        let different = app.post_json_with("/api/checkout", &checkout_body(&[(id, 2)]), &key).await;
        let problem = different.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(problem["detail"].as_str().unwrap().contains("Idempotency-Key"));
        assert_eq!(app.order_count().await, 1);

        let bad_key = app.post_json_with("/api/checkout", &checkout_body(&[(id, 1)]), &[("Idempotency-Key", "has spaces in it")]).await;
        bad_key.problem(StatusCode::BAD_REQUEST);
    }

    /// A retry that arrives after its product sold out still gets the first order back, not a
    /// 409; the same key with another request is still refused.
    async fn a_retry_after_the_sell_out_replays_the_order(app) {
        let low = app.find_product(|p| (1..=10).contains(&p["stock"].as_i64().unwrap())).await;
        let (id, stock) = (low["id"].as_i64().unwrap(), low["stock"].as_i64().unwrap());
        let key = [("Idempotency-Key", "sell-out-then-retry")];
        let first = app.post_json_with("/api/checkout", &checkout_body(&[(id, stock)]), &key).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
        assert_eq!(app.product(low["slug"].as_str().unwrap()).await["stock"], 0);
        let retry = app.post_json_with("/api/checkout", &checkout_body(&[(id, stock)]), &key).await;
        assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text());
        assert_eq!(retry.header("idempotent-replayed"), "true");
        assert_eq!(retry.json()["id"], first.json()["id"]);
        let other = app.post_json_with("/api/checkout", &checkout_body(&[(id, 1)]), &key).await;
        other.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.order_count().await, 1);
    }

    /// Asking for more than the stock is 409 naming the short items; nothing is taken.
    async fn short_stock_is_409_naming_the_items(app) {
        let low = app.find_product(|p| (1..=5).contains(&p["stock"].as_i64().unwrap())).await;
        let plenty = app.find_product(|p| p["stock"].as_i64().unwrap() > 20).await;
        let stock = low["stock"].as_i64().unwrap();
        let response = app.post_json("/api/checkout", &checkout_body(&[
            (plenty["id"].as_i64().unwrap(), 1),
            (low["id"].as_i64().unwrap(), stock + 1),
        ])).await;
        let problem = response.problem(StatusCode::CONFLICT);
        assert_eq!(problem["shortages"], json!([{
            "product_id": low["id"], "name": low["name"], "requested": stock + 1, "available": stock
        }]));
        assert!(problem["detail"].as_str().unwrap().contains(low["name"].as_str().unwrap()));
        assert_eq!(app.product(plenty["slug"].as_str().unwrap()).await["stock"], plenty["stock"], "rolled back");
        assert_eq!(app.order_count().await, 0);
    }

    /// A placed order reports the stock its own transaction left, and the catalog shows exactly
    /// that even when a refresh has already read the sale (the race that once showed -1 left).
    async fn the_stock_shown_after_a_sale_is_what_it_left(app) {
        use doorbuster::db::orders;
        use doorbuster::shop::order::{CheckoutOutcome, Customer, LineRequest, NewOrder, StockLeft};

        let product = app.find_product(|p| p["stock"].as_i64().unwrap() >= 3).await;
        let (id, stock) = (product["id"].as_i64().unwrap(), product["stock"].as_i64().unwrap());
        let customer: Customer = serde_json::from_value(valid_customer()).unwrap();
        let lines = [LineRequest { product_id: id, quantity: 2 }];
        let new = NewOrder { customer: &customer, lines: &lines, idempotency_key: None, fingerprint: "two" };
        let outcome = orders::place(&app.state.db, &new).await.unwrap();
        let CheckoutOutcome::Placed { stock_left, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!(stock_left, [StockLeft { product_id: id, stock: stock - 2 }]);

        app.refresh_catalog().await; // reads the sale from the database
        app.state.catalog.sold(&stock_left); // then the sale itself reaches the catalog
        assert_eq!(app.product(product["slug"].as_str().unwrap()).await["stock"], stock - 2);
    }

    /// 4×S concurrent one-unit checkouts of a product with stock S over real HTTP: exactly S
    /// succeed, the rest are 409, stock ends at 0 (a sale counted both by a catalog refresh and
    /// by its own report once showed -1 here), and exactly S orders exist.
    async fn concurrent_checkouts_never_oversell(app) {
        let deal = app.find_product(|p| p["doorbuster"] == true && p["stock"].as_i64().unwrap() > 0).await;
        let stock = deal["stock"].as_i64().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(listener, app.state.clone(), std::time::Duration::ZERO, async {
            let _ = stopped.await;
        }));
        let client = doorbuster::tls::client_builder().pool_max_idle_per_host(64).build().unwrap();
        let url = Arc::new(format!("http://{addr}/api/checkout"));
        let body = Arc::new(checkout_body(&[(deal["id"].as_i64().unwrap(), 1)]));
        let tasks: Vec<_> = (0..4 * stock)
            .map(|_| {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                tokio::spawn(async move {
                    client.post(url.as_str()).json(&*body).send().await.expect("request").status().as_u16()
                })
            })
            .collect();
        let mut created = 0;
        let mut conflicts = 0;
        for task in tasks {
            match task.await.unwrap() {
                201 => created += 1,
                409 => conflicts += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(created, stock);
        assert_eq!(conflicts, 3 * stock);
        assert_eq!(app.product(deal["slug"].as_str().unwrap()).await["stock"], 0);
        assert_eq!(app.order_count().await, stock);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
