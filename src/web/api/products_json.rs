//! `GET /api/products` written from a JSON projection of the catalog snapshot.
//!
//! A listing answer is mostly product text (names and descriptions), and JSON-escaping it byte by
//! byte was most of the cost of the answer. The text changes only when the catalog's snapshot is
//! replaced (a refresh that found other details), so each product's JSON is written once per
//! snapshot, in three pieces around what moves: the stock, and the stock state derived from it.
//! Every answer is still assembled per request, from the listing the snapshot computes and the
//! stock of that moment; nothing answers from a copy of an earlier answer.
//!
//! The bytes are exactly what serde writes for [`ProductList`] (a test compares them for every
//! product and stock state), so the OpenAPI document, derived from those types, still describes
//! them.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock, Weak};

use aide::OperationOutput;
use aide::generate::GenContext;
use aide::openapi::{Operation, Response as ApiResponse};
use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ProductList;
use crate::shop::catalog::{Product, ProductPage, Snapshot, StockState};

/// One product's JSON around its stock: `head` ends with `"stock":`, `middle` with
/// `"stock_state":`, and `tail` closes the object.
struct ProductJson {
    id: i64,
    head: String,
    middle: String,
    tail: String,
}

/// The projection of one snapshot, products in id order (the snapshot's own order).
struct Projection {
    snapshot: Weak<Snapshot>,
    products: Vec<ProductJson>,
}

/// The projection of the snapshot most recently asked for. A replaced snapshot's projection is
/// rebuilt on first use (73 products: well under a millisecond, once per catalog change); every
/// other request only reads it.
static CURRENT: RwLock<Option<Arc<Projection>>> = RwLock::new(None);

fn projection(snapshot: &Arc<Snapshot>) -> Arc<Projection> {
    // The Weak keeps the snapshot's allocation, so its address cannot be reused by another.
    let of_this = |current: &Option<Arc<Projection>>| {
        current
            .as_ref()
            .filter(|p| std::ptr::eq(p.snapshot.as_ptr(), Arc::as_ptr(snapshot)))
            .cloned()
    };
    if let Some(projection) = of_this(&CURRENT.read().unwrap_or_else(|e| e.into_inner())) {
        return projection;
    }
    let mut current = CURRENT.write().unwrap_or_else(|e| e.into_inner());
    if let Some(projection) = of_this(&current) {
        return projection; // another request built it meanwhile
    }
    let projection = Arc::new(Projection {
        snapshot: Arc::downgrade(snapshot),
        // The snapshot's products are in id order, which the lookup below relies on.
        products: snapshot.products().iter().map(product_json).collect(),
    });
    *current = Some(projection.clone());
    projection
}

/// A JSON string or number as serde writes it.
fn json(value: &(impl serde::Serialize + ?Sized)) -> String {
    serde_json::to_string(value).expect("strings and numbers serialize")
}

fn product_json(product: &Product) -> ProductJson {
    // The field order of `ProductView`: the product's own fields, then what the API adds.
    ProductJson {
        id: product.id,
        head: format!(
            r#"{{"id":{},"slug":{},"category":{},"name":{},"description":{},"price_cents":{},"list_price_cents":{},"stock":"#,
            product.id,
            json(&*product.slug),
            json(&*product.category_slug),
            json(&*product.name),
            json(&*product.description),
            product.price_cents,
            product.list_price_cents,
        ),
        middle: format!(
            r#","rating":{},"review_count":{},"doorbuster":{},"discount_percent":{},"stock_state":"#,
            json(&product.rating),
            product.review_count,
            product.doorbuster,
            product.discount_percent(),
        ),
        tail: format!(
            r#","image_url":{},"url":{}}}"#,
            json(&product.image_path().to_string()),
            json(&format!("/p/{}", product.slug)),
        ),
    }
}

/// A listing page as `/api/products` answers it.
pub(super) fn product_list(
    snapshot: &Arc<Snapshot>,
    listing: &ProductPage,
    page: i64,
    per_page: i64,
) -> ProductListJson {
    let projection = projection(snapshot);
    let mut out = String::with_capacity(64 + listing.items.len() * 640);
    out.push_str(r#"{"items":["#);
    for (i, product) in listing.items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match projection
            .products
            .binary_search_by_key(&product.id, |p| p.id)
        {
            Ok(at) => {
                let json = &projection.products[at];
                out.push_str(&json.head);
                // Writing to a String cannot fail.
                let _ = write!(out, "{}", product.stock);
                out.push_str(&json.middle);
                out.push_str(stock_state(product.stock_state()));
                out.push_str(&json.tail);
            }
            // Every listed product is the snapshot's; should that ever fail, write it in full.
            Err(_) => out.push_str(&json(&super::ProductView::from(product.clone()))),
        }
    }
    let _ = write!(
        out,
        r#"],"total":{},"page":{page},"per_page":{per_page}}}"#,
        listing.total
    );
    ProductListJson(Bytes::from(out))
}

fn stock_state(state: StockState) -> &'static str {
    match state {
        StockState::InStock => r#""in_stock""#,
        StockState::Low => r#""low""#,
        StockState::SoldOut => r#""sold_out""#,
    }
}

/// A [`ProductList`] already written as JSON. The OpenAPI document describes it as
/// `Json<ProductList>`, which is what its bytes are.
pub(super) struct ProductListJson(Bytes);

impl IntoResponse for ProductListJson {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

impl OperationOutput for ProductListJson {
    type Inner = ProductList;

    fn operation_response(ctx: &mut GenContext, operation: &mut Operation) -> Option<ApiResponse> {
        Json::<ProductList>::operation_response(ctx, operation)
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, ApiResponse)> {
        Json::<ProductList>::inferred_responses(ctx, operation)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{ProductList, ProductView};
    use super::product_list;
    use crate::shop::catalog::{Category, Product, Snapshot, Sort};

    fn product(id: i64, name: &str, stock: i64, rating: f64) -> Product {
        Product {
            id,
            slug: format!("item-{id}").into(),
            category_slug: "games".into(),
            name: name.into(),
            description: format!(
                "{name}: \"quoted\", <b>bold</b> & a tab\there, \u{1F3AE} and \\ too."
            )
            .into(),
            price_cents: 1_999 * id,
            list_price_cents: if id % 3 == 0 { 0 } else { 2_999 * id },
            stock,
            rating,
            review_count: 1_234 * id,
            doorbuster: id % 2 == 0,
        }
    }

    fn snapshot(names: &[&str]) -> Arc<Snapshot> {
        let categories = vec![Category {
            slug: "games".into(),
            name: "Games".into(),
            tagline: "Play".into(),
            position: 1,
            product_count: 0,
        }];
        // Sold out, low and in stock; whole, one-decimal and long ratings.
        let stocks = [0, 1, 10, 11, 1_000_000];
        let ratings = [0.0, 4.6, 5.0, 3.25, 1.0 / 3.0];
        let products = names
            .iter()
            .enumerate()
            .map(|(i, name)| product(i as i64 + 1, name, stocks[i % 5], ratings[i % 5]))
            .collect();
        Arc::new(Snapshot::new(categories, products))
    }

    /// What serde writes for the same listing: the types the OpenAPI document is derived from.
    fn serde_bytes(snapshot: &Snapshot, sort: Sort, per_page: usize, offset: usize) -> String {
        let listing = snapshot.listing(None, sort, per_page, offset);
        serde_json::to_string(&ProductList {
            items: listing.items.into_iter().map(ProductView::from).collect(),
            total: listing.total,
            page: 2,
            per_page: per_page as i64,
        })
        .unwrap()
    }

    fn projected_bytes(
        snapshot: &Arc<Snapshot>,
        sort: Sort,
        per_page: usize,
        offset: usize,
    ) -> String {
        let listing = snapshot.listing(None, sort, per_page, offset);
        let json = product_list(snapshot, &listing, 2, per_page as i64);
        String::from_utf8(json.0.to_vec()).unwrap()
    }

    #[test]
    fn the_projection_writes_what_serde_writes() {
        let names = [
            "Lamp",
            "Quote \" mark",
            "Fish & <Chips>",
            "Ünïcødé",
            "Back\\slash",
            "Plain",
            "Seventh",
        ];
        let snapshot = snapshot(&names);
        for sort in Sort::ALL {
            for (per_page, offset) in [(100, 0), (3, 2), (1, 6), (5, 10)] {
                assert_eq!(
                    projected_bytes(&snapshot, sort, per_page, offset),
                    serde_bytes(&snapshot, sort, per_page, offset),
                    "{sort:?} per_page {per_page} offset {offset}"
                );
            }
        }
    }

    /// A replaced snapshot's text shows in the next answer.
    #[test]
    fn a_new_snapshot_shows_in_the_next_answer() {
        let first = snapshot(&["Lamp", "Chair"]);
        assert!(projected_bytes(&first, Sort::PriceAsc, 10, 0).contains(r#""name":"Chair""#));

        let renamed = snapshot(&["Lamp", "Armchair"]);
        let answer = projected_bytes(&renamed, Sort::PriceAsc, 10, 0);
        assert!(answer.contains(r#""name":"Armchair""#), "{answer}");
        assert_eq!(answer, serde_bytes(&renamed, Sort::PriceAsc, 10, 0));
    }
}
