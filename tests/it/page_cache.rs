//! The page cache: shared pages are reused, yet a sold-out product shows at once, a visitor's own
//! cart always shows, and a change made elsewhere shows within the time to live.

use std::time::Duration;

use axum::http::StatusCode;
use doorbuster::config::WebConfig;

use crate::support::{TestApp, checkout_body, db_tests};

/// How many products the home page shows as sold out.
fn sold_out_cards(html: &str) -> usize {
    html.matches("badge badge-soldout").count()
}

db_tests! {
    /// Selling the last units through checkout shows "Sold out" at once on the product page and
    /// the home page, although both were cached just before.
    async fn a_sell_out_shows_at_once_on_cached_pages(app) {
        let deal = app.find_product(|p| p["doorbuster"] == true && p["stock"].as_i64().unwrap() > 0).await;
        let (id, mut stock) = (deal["id"].as_i64().unwrap(), deal["stock"].as_i64().unwrap());
        let url = deal["url"].as_str().unwrap();
        let page = app.get(url).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text().contains("action=\"/cart/add\""), "in stock before");
        let home = app.get("/").await.text();
        assert_eq!(app.get("/").await.text(), home, "the second view is the same page");
        assert_eq!(app.state.pages.len(), 2, "both pages are cached");

        while stock > 0 {
            let quantity = stock.min(10);
            let placed = app.post_json("/api/checkout", &checkout_body(&[(id, quantity)])).await;
            assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());
            stock -= quantity;
        }

        let page = app.get(url).await.text();
        assert!(page.contains("Sold out"), "the product page shows the sell-out");
        assert!(!page.contains("action=\"/cart/add\""));
        assert_eq!(sold_out_cards(&app.get("/").await.text()), sold_out_cards(&home) + 1);
    }

    /// The cached page is the empty-cart one: a visitor with items in the cart always gets a page
    /// with their own count, and does not change what others see.
    async fn a_visitor_with_a_cart_sees_their_own_cart(app) {
        let product = app.find_product(|p| p["stock"].as_i64().unwrap() > 10).await;
        let url = product["url"].as_str().unwrap();
        let anonymous = app.get(url).await.text();
        assert!(anonymous.contains("aria-label=\"0 items in cart\""));
        let cookie = format!("cart={}x3", product["id"]);
        let mine = app.get_with_cookie(url, &cookie).await.text();
        assert!(mine.contains("aria-label=\"3 items in cart\""), "{mine}");
        assert!(mine.contains("3 already in"));
        let home = app.get_with_cookie("/", &cookie).await.text();
        assert!(home.contains("aria-label=\"3 items in cart\""));
        assert_eq!(app.get(url).await.text(), anonymous);
        assert!(app.get("/").await.text().contains("aria-label=\"0 items in cart\""));
    }
}

/// A change made behind this replica's back (another replica selling on a shared PostgreSQL, or
/// `migrate --restock-to` from another process) shows once the catalog refresh has run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_elsewhere_shows_within_the_refresh_interval() {
    // A page cache that would keep the page far longer: the catalog's refresh, not the cache's
    // time to live, bounds how stale a page gets.
    let (app, url) = shop_with_page_cache_ttl(Duration::from_secs(60)).await;
    let url = url.as_str();
    let before = app.get(url).await.text();
    assert!(!before.contains("Only 7 left"));
    doorbuster::db::seed::restock_to(&app.state.db, 7)
        .await
        .unwrap();
    tokio::time::sleep(REFRESH + Duration::from_millis(200)).await;
    assert!(app.get(url).await.text().contains("Only 7 left"));
}

/// The catalog refresh interval of [`shop_with_page_cache_ttl`].
const REFRESH: Duration = Duration::from_millis(300);

/// With `DOORBUSTER_PAGE_CACHE_TTL=0s` nothing is cached: every page is rendered from the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_ttl_turns_the_cache_off() {
    let (app, url) = shop_with_page_cache_ttl(Duration::ZERO).await;
    let url = url.as_str();
    assert_eq!(app.get(url).await.status, StatusCode::OK);
    doorbuster::db::seed::restock_to(&app.state.db, 7)
        .await
        .unwrap();
    app.refresh_catalog().await;
    assert!(app.get(url).await.text().contains("Only 7 left"));
    assert!(app.state.pages.is_empty());
}

/// A shop whose page cache keeps pages for `ttl`, and the URL of a product page whose stock
/// (more than 10, not a doorbuster) a restock to 7 visibly changes.
async fn shop_with_page_cache_ttl(ttl: Duration) -> (TestApp, String) {
    let app = TestApp::sqlite_with(WebConfig {
        page_cache_ttl: ttl,
        catalog_refresh: REFRESH,
        ..WebConfig::default()
    })
    .await;
    let product = app
        .find_product(|p| p["doorbuster"] == false && p["stock"].as_i64().unwrap() > 10)
        .await;
    let url = product["url"].as_str().unwrap().to_owned();
    (app, url)
}

/// A browser (which asks for gzip) gets a cached page as its stored gzip copy: the same page, with
/// its length, `Content-Encoding` and `Vary`; a client that refuses gzip gets what it asked for.
#[tokio::test]
async fn browsers_get_the_cached_gzip_copy() {
    use std::io::Read as _;

    use axum::body::Body;
    use axum::http::Request;

    let app = TestApp::sqlite().await;
    let get = |accept_encoding: &'static str| {
        let request = Request::get("/")
            .header("accept-encoding", accept_encoding)
            .body(Body::empty())
            .unwrap();
        app.request(request)
    };
    let plain = app.get("/").await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(app.state.pages.len(), 1, "the home page is cached");

    for _ in 0..2 {
        let page = get("gzip, deflate, br").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.header("content-encoding"), "gzip");
        assert_eq!(page.header("vary"), "accept-encoding");
        assert_eq!(page.header("content-length"), page.body.len().to_string());
        assert_eq!(
            page.headers
                .get_all("content-security-policy")
                .iter()
                .count(),
            1
        );
        let mut html = Vec::new();
        flate2::read::GzDecoder::new(&page.body[..])
            .read_to_end(&mut html)
            .unwrap();
        assert_eq!(html, plain.body, "the same page, compressed");
        assert!(page.body.len() * 4 < plain.body.len());
    }

    let brotli = get("gzip;q=0, br").await;
    assert_eq!(brotli.status, StatusCode::OK);
    assert_eq!(brotli.header("content-encoding"), "br");
}
