//! The cookie cart, driven through the HTML forms as a browser without JavaScript would.

use axum::http::StatusCode;

use crate::support::db_tests;

db_tests! {
    /// Adding, changing and removing items works through plain forms and the cart cookie.
    async fn cart_add_update_remove(app) {
        let product = app.find_product(|p| p["stock"].as_i64().unwrap() > 20).await;
        let id = product["id"].to_string();
        let response = app.post_form("/cart/add", &[("product_id", &id), ("quantity", "2")], "").await;
        assert_eq!(response.status, StatusCode::SEE_OTHER);
        assert!(response.header("location").starts_with("/cart?added="));
        let cookie = response.cart_cookie();
        assert_eq!(cookie, format!("cart={id}x2"));
        let set_cookie = response.header("set-cookie");
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && set_cookie.contains("Path=/"));

        let html = app.get_with_cookie(response.header("location"), &cookie).await.text();
        assert!(html.contains(&format!("Added {} to your cart.", product["name"].as_str().unwrap())));
        let price = product["price_cents"].as_i64().unwrap();
        assert!(html.contains(&doorbuster::shop::money::Money(price * 2).to_string()), "subtotal shown");
        assert!(html.contains("href=\"/checkout\""));

        let response = app.post_form("/cart/update", &[("product_id", &id), ("quantity", "5")], &cookie).await;
        assert_eq!(response.status, StatusCode::SEE_OTHER);
        let cookie = response.cart_cookie();
        assert_eq!(cookie, format!("cart={id}x5"));
        let html = app.get_with_cookie("/cart", &cookie).await.text();
        assert!(html.contains("Subtotal (5 items)"));

        let response = app.post_form("/cart/update", &[("product_id", &id), ("quantity", "0")], &cookie).await;
        let removal = response.header("set-cookie");
        assert!(removal.starts_with("cart=;") && removal.contains("Max-Age=0"), "{removal}");
        let html = app.get("/cart").await.text();
        assert!(html.contains("Your cart is empty"));
    }

    /// The cart counter in the header follows the cookie on every page, so it survives navigation.
    async fn cart_survives_navigation(app) {
        let product = app.find_product(|p| p["stock"].as_i64().unwrap() > 20).await;
        let id = product["id"].to_string();
        let cookie = app.post_form("/cart/add", &[("product_id", &id), ("quantity", "3")], "").await.cart_cookie();
        for page in ["/", "/c/books", product["url"].as_str().unwrap(), "/cart"] {
            let html = app.get_with_cookie(page, &cookie).await.text();
            assert!(html.contains("aria-label=\"3 items in cart\""), "{page}");
        }
    }

    /// A sold-out product cannot be added, and the cart never holds more than the shelf.
    async fn sold_out_cannot_be_added(app) {
        let sold_out = app.find_product(|p| p["stock"] == 0).await;
        let response = app.post_form("/cart/add", &[("product_id", &sold_out["id"].to_string())], "").await;
        assert_eq!(response.status, StatusCode::CONFLICT);
        assert!(response.text().contains("Not enough stock"));
        assert!(response.headers.get("set-cookie").is_none());

        let low = app.find_product(|p| (1..=5).contains(&p["stock"].as_i64().unwrap())).await;
        let stock = low["stock"].as_i64().unwrap();
        let response = app.post_form("/cart/add", &[("product_id", &low["id"].to_string()), ("quantity", "10")], "").await;
        assert_eq!(response.cart_cookie(), format!("cart={}x{stock}", low["id"]));
    }

    /// A tampered or oversized cart cookie is cleaned up, never an error; unknown products drop out.
    async fn tampered_cookie_is_cleaned(app) {
        let product = app.find_product(|p| p["stock"].as_i64().unwrap() > 20).await;
        let cookie = format!("cart=999999x1-{}x400-garbage-x4x2", product["id"]);
        let response = app.get_with_cookie("/cart", &cookie).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.cart_cookie(), format!("cart={}x10", product["id"]));
        let huge = format!("cart={}", "1x1-".repeat(5000));
        assert_eq!(app.get_with_cookie("/cart", &huge).await.status, StatusCode::OK);
    }

    /// Malformed cart forms get a friendly 400 page, not a crash.
    async fn bad_cart_forms_are_explained(app) {
        let response = app.post_form("/cart/update", &[("product_id", "1"), ("quantity", "lots")], "").await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert!(response.text().contains("Quantity must be a whole number"));
        let response = app.post_form("/cart/add", &[("quantity", "1")], "").await;
        assert!(response.status.is_client_error());
        assert!(response.header("content-type").starts_with("text/html"));
        let response = app.post_form("/cart/add", &[("product_id", "424242")], "").await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
    }
}
