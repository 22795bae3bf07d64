//! Browsing: the seeded catalog through pages and the JSON API.

use axum::http::StatusCode;

use crate::support::db_tests;

db_tests! {
    /// The seeded catalog has at least 60 products in at least 5 categories, with doorbusters.
    async fn seeded_catalog_is_black_friday_sized(app) {
        let categories = app.get("/api/categories").await.json();
        let categories = categories["categories"].as_array().unwrap();
        assert!(categories.len() >= 5, "{categories:?}");
        let products = app.products().await;
        assert!(products.len() >= 60);
        let total: i64 = app.get("/api/products").await.json()["total"].as_i64().unwrap();
        assert_eq!(total as usize, products.len());
        let doorbusters: Vec<_> = products.iter().filter(|p| p["doorbuster"] == true).collect();
        assert!(!doorbusters.is_empty());
        for deal in doorbusters {
            assert!(deal["stock"].as_i64().unwrap() <= 30);
            assert!(deal["discount_percent"].as_i64().unwrap() >= 50, "{deal}");
        }
        for product in &products {
            assert!(product["price_cents"].as_i64().unwrap() <= product["list_price_cents"].as_i64().unwrap());
        }
    }

    /// The home page shows the doorbuster deals and links every department.
    async fn home_page_shows_deals_and_departments(app) {
        let response = app.get("/").await;
        assert_eq!(response.status, StatusCode::OK);
        assert!(response.header("content-type").starts_with("text/html"));
        let html = response.text();
        let deal = app.find_product(|p| p["doorbuster"] == true).await;
        assert!(html.contains(deal["name"].as_str().unwrap()), "doorbuster on the home page");
        for category in app.get("/api/categories").await.json()["categories"].as_array().unwrap() {
            assert!(html.contains(&format!("href=\"/c/{}\"", category["slug"].as_str().unwrap())));
        }
        assert!(html.contains("<html lang=\"en\">"));
    }

    /// Category pages sort by price and paginate; a page past the end is a friendly 404.
    async fn category_page_sorts_and_paginates(app) {
        let response = app.get("/c/games?sort=price-asc").await;
        assert_eq!(response.status, StatusCode::OK);
        let html = response.text();
        assert!(html.contains("page 1 of 1") || html.contains("page 1 of 2"), "pagination shown");

        let api = app.get("/api/products?category=games&sort=price-asc&per_page=100").await.json();
        let prices: Vec<i64> = api["items"].as_array().unwrap().iter().map(|p| p["price_cents"].as_i64().unwrap()).collect();
        assert!(prices.windows(2).all(|w| w[0] <= w[1]), "ascending: {prices:?}");
        // The page lists products in the same order as the API.
        let first = api["items"][0]["name"].as_str().unwrap();
        let second = api["items"][1]["name"].as_str().unwrap();
        assert!(html.find(first).unwrap() < html.find(second).unwrap());

        // Every category with more than a page of products has a working page 2.
        for category in app.get("/api/categories").await.json()["categories"].as_array().unwrap() {
            let slug = category["slug"].as_str().unwrap();
            let count = category["product_count"].as_i64().unwrap();
            let page2 = app.get(&format!("/c/{slug}?page=2")).await;
            if count > 12 {
                assert_eq!(page2.status, StatusCode::OK);
                assert!(page2.text().contains("page 2 of"));
            } else {
                assert_eq!(page2.status, StatusCode::NOT_FOUND);
            }
        }
        let missing = app.get("/c/games?page=99").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(missing.text().contains("there is no page 99"));
        let bad_sort = app.get("/c/games?sort=cheapest-first").await;
        assert_eq!(bad_sort.status, StatusCode::BAD_REQUEST);
        assert!(bad_sort.header("content-type").starts_with("text/html"));
        assert_eq!(app.get("/c/no-such-department").await.status, StatusCode::NOT_FOUND);
    }

    /// A product page shows the price, the saving, the stock state and an add-to-cart form.
    async fn product_page_shows_price_saving_and_stock(app) {
        let deal = app.find_product(|p| p["doorbuster"] == true && p["stock"].as_i64().unwrap() > 10).await;
        let html = app.get(deal["url"].as_str().unwrap()).await.text();
        assert!(html.contains(deal["name"].as_str().unwrap()));
        assert!(html.contains("You save"));
        assert!(html.contains(&format!("({}%)", deal["discount_percent"])));
        assert!(html.contains("action=\"/cart/add\""));
        assert!(html.contains("In stock"));

        let sold_out = app.find_product(|p| p["stock"] == 0).await;
        let html = app.get(sold_out["url"].as_str().unwrap()).await.text();
        assert!(html.contains("Sold out"));
        assert!(!html.contains("action=\"/cart/add\""), "no add-to-cart form for a sold-out product");

        let low = app.find_product(|p| (1..=10).contains(&p["stock"].as_i64().unwrap())).await;
        let html = app.get(low["url"].as_str().unwrap()).await.text();
        assert!(html.contains(&format!("Only {} left", low["stock"])));

        assert_eq!(app.get("/p/not-a-product").await.status, StatusCode::NOT_FOUND);
    }

    /// The API filters by category, pages, and finds one product by id or slug.
    async fn api_lists_and_finds_products(app) {
        let page = app.get("/api/products?category=laptops&per_page=3&page=2").await.json();
        assert_eq!(page["page"], 2);
        assert_eq!(page["per_page"], 3);
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty() && items.len() <= 3);
        assert!(items.iter().all(|p| p["category"] == "laptops"));

        let product = &items[0];
        let by_id = app.get(&format!("/api/products/{}", product["id"])).await.json();
        let by_slug = app.get(&format!("/api/products/{}", product["slug"].as_str().unwrap())).await.json();
        assert_eq!(by_id, by_slug);
        assert_eq!(&by_id, product);

        let problem = app.get("/api/products/999999").await.problem(StatusCode::NOT_FOUND);
        assert!(problem["detail"].as_str().unwrap().contains("/api/products"));
        app.get("/api/products?category=fridges").await.problem(StatusCode::NOT_FOUND);
    }

    /// Product art is SVG generated in the binary; assets have content-hashed, immutable URLs.
    async fn art_and_assets_are_served_from_the_binary(app) {
        let product = app.find_product(|_| true).await;
        let art = app.get(product["image_url"].as_str().unwrap()).await;
        assert_eq!(art.status, StatusCode::OK);
        assert_eq!(art.header("content-type"), "image/svg+xml");
        assert!(art.text().starts_with("<svg"));
        let etag = art.header("etag").to_owned();
        let again = app
            .request(
                axum::http::Request::get(product["image_url"].as_str().unwrap())
                    .header("if-none-match", &etag)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert_eq!(app.get("/art/product/nope.svg").await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/art/category/books.svg").await.status, StatusCode::OK);

        let html = app.get("/").await.text();
        let css = html.split("href=\"/static/app.").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
        let response = app.get(&format!("/static/app.{css}")).await;
        assert_eq!(response.status, StatusCode::OK);
        assert!(response.header("cache-control").contains("immutable"));
        assert!(response.header("content-type").starts_with("text/css"));
        assert_eq!(app.get("/static/nothing.css").await.status, StatusCode::NOT_FOUND);
    }

    /// `migrate --restock-to N` puts every product at N units (a benchmark never sells out), and
    /// `--restock` still goes back to the seeded levels.
    async fn restock_to_sets_every_product_and_restock_goes_back(app) {
        let seeded: Vec<(i64, i64)> = app.products().await.iter()
            .map(|p| (p["id"].as_i64().unwrap(), p["stock"].as_i64().unwrap())).collect();
        let changed = doorbuster::db::seed::restock_to(&app.state.db, 250_000).await.unwrap();
        assert_eq!(changed as usize, seeded.len());
        app.refresh_catalog().await;
        assert!(app.products().await.iter().all(|p| p["stock"] == 250_000));
        doorbuster::db::seed::restock(&app.state.db).await.unwrap();
        app.refresh_catalog().await;
        let back: Vec<(i64, i64)> = app.products().await.iter()
            .map(|p| (p["id"].as_i64().unwrap(), p["stock"].as_i64().unwrap())).collect();
        assert_eq!(back, seeded);
    }

    /// Starting again on a seeded database (every pod start does) adds nothing and leaves stock
    /// as the shoppers left it.
    async fn seeding_a_seeded_database_changes_nothing(app) {
        let product = app.find_product(|p| p["stock"].as_i64().unwrap() > 5).await;
        let placed = app.post_json("/api/checkout", &crate::support::checkout_body(&[(product["id"].as_i64().unwrap(), 2)])).await;
        assert_eq!(placed.status, StatusCode::CREATED);
        let before = app.products().await;
        let report = doorbuster::server::prepare(&app.state.db).await.unwrap();
        assert_eq!(report, doorbuster::db::seed::SeedReport::default());
        assert_eq!(app.products().await, before);
    }
}
