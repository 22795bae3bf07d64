//! The order confirmation page (`/orders/{id}`), and the receipt that lets any replica show it
//! right after checkout.
//!
//! Why a receipt: replicas may each keep their own store (the demo runs SQLite in every pod
//! behind a load balancer without affinity), so the redirect that follows a form checkout can
//! land on a replica whose database never saw the order. The checkout therefore leaves the
//! shopper's browser a short-lived cookie ([`RECEIPT_COOKIE`], [`RECEIPT_MAX_AGE`], path
//! `/orders`) holding what the page shows: the order number, who it ships to, and each line's
//! product id, quantity and unit price as charged. Product names come from the catalog of the
//! replica showing the page (every replica seeds the same catalog), which keeps the cookie far
//! below the browsers' 4 KiB limit even for the largest order the checkout accepts.
//!
//! The rules:
//! - **The database is the authority.** The page reads the order from this replica's database
//!   first; the receipt is used only when there is no such order here, and only for the order it
//!   names.
//! - **A receipt is not proof.** It is not signed (replicas share no key, and a shopper's cookie
//!   is only ever shown back to that shopper's browser, so a forged one fools no one else), and
//!   a page drawn from it says so: where the data came from, and that this replica does not hold
//!   the order.
//! - **Bounded and checked like the cart cookie.** A receipt longer than [`MAX_RECEIPT_LEN`], not
//!   decodable, or with a value out of range is no receipt at all.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::extract::{CartCookie, PagePath, PageQuery};
use super::pages::{Layout, Page, no_store};
use crate::db::orders;
use crate::error::{AppError, PageError, echo};
use crate::shop::cart::{MAX_LINES, MAX_QUANTITY};
use crate::shop::money::Money;
use crate::shop::order::{self as order_id, Customer, Order};
use crate::web::state::AppState;

/// Name of the receipt cookie.
pub const RECEIPT_COOKIE: &str = "receipt";
/// How long the receipt lives: long enough to read the confirmation and reload it, short enough
/// that a shared computer does not keep showing who bought what.
pub const RECEIPT_MAX_AGE: time::Duration = time::Duration::minutes(10);
/// Longest receipt value written or read. Browsers keep cookies of up to 4,096 bytes of name and
/// value (RFC 6265, section 6.1, is the floor they all meet); this leaves room for the name. The
/// largest order the checkout accepts (20 lines, every address field at its limit in 4-byte
/// characters) encodes to about 3,100 bytes: a test keeps it so.
pub const MAX_RECEIPT_LEN: usize = 3_900;
/// Longest text field a receipt may carry, in characters (the checkout's own limits are lower).
const MAX_FIELD_CHARS: usize = 200;
/// Highest unit price a receipt may carry, in cents: far above any product, well away from
/// overflow when multiplied by a quantity and summed.
const MAX_UNIT_PRICE_CENTS: i64 = 100_000_000;

/// What the confirmation page shows of an order just placed, as the shopper's browser keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub id: String,
    pub name: String,
    pub address: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
    /// Product id, quantity, unit price in cents as charged.
    pub lines: Vec<(i64, i64, i64)>,
}

impl Receipt {
    pub fn of(order: &Order) -> Receipt {
        let customer = &order.customer;
        Receipt {
            id: order.id.clone(),
            name: customer.name.clone(),
            address: customer.address.clone(),
            city: customer.city.clone(),
            postal_code: customer.postal_code.clone(),
            country: customer.country.clone(),
            lines: order
                .lines
                .iter()
                .map(|line| (line.product_id, line.quantity, line.unit_price_cents))
                .collect(),
        }
    }

    /// The cookie value (URL-safe base64 of JSON: no character a cookie value may not hold), or
    /// `None` if it would be longer than [`MAX_RECEIPT_LEN`].
    pub fn to_cookie_value(&self) -> Option<String> {
        let json = serde_json::to_vec(self).ok()?;
        let value = URL_SAFE_NO_PAD.encode(json);
        (value.len() <= MAX_RECEIPT_LEN).then_some(value)
    }

    /// Reads a cookie value; anything malformed or out of range is `None`.
    pub fn from_cookie_value(value: &str) -> Option<Receipt> {
        if value.len() > MAX_RECEIPT_LEN {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(value).ok()?;
        let receipt: Receipt = serde_json::from_slice(&json).ok()?;
        receipt.is_sound().then_some(receipt)
    }

    fn is_sound(&self) -> bool {
        let text_ok = |text: &str| {
            text.chars().count() <= MAX_FIELD_CHARS && !text.chars().any(char::is_control)
        };
        let mut ids: Vec<i64> = self.lines.iter().map(|line| line.0).collect();
        ids.sort_unstable();
        ids.dedup();
        order_id::is_order_id(&self.id)
            && !self.name.trim().is_empty()
            && [
                &self.name,
                &self.address,
                &self.city,
                &self.postal_code,
                &self.country,
            ]
            .into_iter()
            .all(|field| text_ok(field))
            && (1..=MAX_LINES).contains(&self.lines.len())
            && ids.len() == self.lines.len()
            && self.lines.iter().all(|&(id, quantity, price)| {
                id > 0
                    && (1..=MAX_QUANTITY).contains(&quantity)
                    && (0..=MAX_UNIT_PRICE_CENTS).contains(&price)
            })
    }
}

/// The `Set-Cookie` that gives the shopper the receipt of `order`; `None` in the (never seen)
/// case of a receipt too long to keep, when the confirmation is left to the database alone.
/// `secure` as for the cart cookie (see [`super::extract::cart_cookie`]).
pub fn receipt_cookie(order: &Order, secure: bool) -> Option<Cookie<'static>> {
    let value = Receipt::of(order).to_cookie_value()?;
    Some(
        Cookie::build((RECEIPT_COOKIE, value))
            // Sent only with order pages: every other request stays as small as it was.
            .path("/orders")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .max_age(RECEIPT_MAX_AGE)
            .build(),
    )
}

#[derive(Debug, Deserialize)]
pub struct OrderParams {
    placed: Option<String>,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderTemplate {
    layout: Layout,
    id: String,
    number: String,
    customer: Customer,
    /// Name, quantity, line total.
    lines: Vec<(String, i64, Money)>,
    item_count: i64,
    total: Money,
    just_placed: bool,
    /// This replica's database has no such order: the page shows the shopper's receipt, and
    /// says so.
    from_receipt: bool,
}

/// `GET /orders/{id}`: the order from this replica's database, or else, for the order the
/// shopper just placed on another replica, from their receipt (see the module documentation).
pub async fn order(
    State(state): State<AppState>,
    CartCookie(cart): CartCookie,
    cookies: CookieJar,
    PagePath(id): PagePath<String>,
    PageQuery(params): PageQuery<OrderParams>,
) -> Result<Response, PageError> {
    let not_found = || {
        AppError::not_found(format!(
            "There is no order {}. Check the order number in your confirmation.",
            echo(&id)
        ))
    };
    if !order_id::is_order_id(&id) {
        return Err(not_found().into());
    }
    let layout = Layout::load(&state, format!("Order {id} · Doorbuster"), &cart, None);
    let just_placed = params.placed.is_some();
    let page = match orders::order(&state.db, &id).await? {
        Some(order) => OrderTemplate {
            layout: layout.await?,
            number: group_order_number(&order.id),
            lines: order
                .lines
                .iter()
                .map(|line| {
                    (
                        line.product_name.clone(),
                        line.quantity,
                        Money(line.line_total_cents()),
                    )
                })
                .collect(),
            item_count: order.item_count,
            total: Money(order.total_cents),
            customer: order.customer,
            id: order.id,
            just_placed,
            from_receipt: false,
        },
        None => {
            let receipt = cookies
                .get(RECEIPT_COOKIE)
                .and_then(|cookie| Receipt::from_cookie_value(cookie.value()))
                .filter(|receipt| receipt.id == id)
                .ok_or_else(not_found)?;
            let ids: Vec<i64> = receipt.lines.iter().map(|line| line.0).collect();
            let products = state.catalog().await?.products_by_ids(&ids);
            let lines = receipt
                .lines
                .iter()
                .map(|&(product_id, quantity, unit_price)| {
                    let name = products
                        .iter()
                        .find(|p| p.id == product_id)
                        .map_or_else(|| format!("Product {product_id}"), |p| p.name.to_string());
                    (name, quantity, Money(unit_price * quantity))
                })
                .collect::<Vec<_>>();
            OrderTemplate {
                layout: layout.await?,
                number: group_order_number(&receipt.id),
                item_count: receipt.lines.iter().map(|line| line.1).sum(),
                total: Money(lines.iter().map(|line| line.2.0).sum()),
                lines,
                customer: Customer {
                    name: receipt.name,
                    email: String::new(),
                    address: receipt.address,
                    city: receipt.city,
                    postal_code: receipt.postal_code,
                    country: receipt.country,
                },
                id: receipt.id,
                just_placed,
                from_receipt: true,
            }
        }
    };
    Ok(no_store(Page(StatusCode::OK, page)).into_response())
}

/// `K7Q3M9XD2FHA` → `K7Q3-M9XD-2FHA`, easier to read out on the phone.
fn group_order_number(id: &str) -> String {
    id.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            id: "K7Q3M9XD2FHA".to_owned(),
            name: "Grace Hopper".to_owned(),
            address: "1 Compiler Way".to_owned(),
            city: "Arlington".to_owned(),
            postal_code: "22201".to_owned(),
            country: "United States".to_owned(),
            lines: vec![(12, 2, 4_999), (7, 1, 129_999)],
        }
    }

    #[test]
    fn order_numbers_are_grouped() {
        assert_eq!(group_order_number("K7Q3M9XD2FHA"), "K7Q3-M9XD-2FHA");
    }

    #[test]
    fn receipts_round_trip_through_the_cookie() {
        let value = receipt().to_cookie_value().unwrap();
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{value}"
        );
        assert_eq!(Receipt::from_cookie_value(&value), Some(receipt()));
    }

    /// The largest order the checkout accepts still fits in a cookie every browser keeps.
    #[test]
    fn the_largest_order_fits() {
        let wide = |chars: usize| "𝄞".repeat(chars);
        let largest = Receipt {
            id: "ZZZZZZZZZZZZ".to_owned(),
            // The checkout's limits (src/checkout.rs), in 4-byte characters.
            name: wide(100),
            address: wide(200),
            city: wide(100),
            postal_code: wide(20),
            country: wide(60),
            lines: (1..=MAX_LINES as i64)
                .map(|id| (id + 1_000, MAX_QUANTITY, MAX_UNIT_PRICE_CENTS))
                .collect(),
        };
        let value = largest.to_cookie_value().expect("fits");
        assert!(
            RECEIPT_COOKIE.len() + 1 + value.len() <= 4_096,
            "{}",
            value.len()
        );
        assert_eq!(Receipt::from_cookie_value(&value), Some(largest));
    }

    #[test]
    fn malformed_or_out_of_range_receipts_are_no_receipt() {
        let encode =
            |receipt: &Receipt| URL_SAFE_NO_PAD.encode(serde_json::to_vec(receipt).unwrap());
        let broken = [
            Receipt {
                id: "not-an-id".to_owned(),
                ..receipt()
            },
            Receipt {
                name: " ".to_owned(),
                ..receipt()
            },
            Receipt {
                city: "a\u{7}b".to_owned(),
                ..receipt()
            },
            Receipt {
                address: "x".repeat(MAX_FIELD_CHARS + 1),
                ..receipt()
            },
            Receipt {
                lines: Vec::new(),
                ..receipt()
            },
            Receipt {
                lines: vec![(1, MAX_QUANTITY + 1, 100)],
                ..receipt()
            },
            Receipt {
                lines: vec![(1, 1, -5)],
                ..receipt()
            },
            Receipt {
                lines: vec![(1, 1, 100), (1, 2, 100)],
                ..receipt()
            },
            Receipt {
                lines: vec![(0, 1, 100)],
                ..receipt()
            },
        ];
        for receipt in &broken {
            assert_eq!(
                Receipt::from_cookie_value(&encode(receipt)),
                None,
                "{receipt:?}"
            );
        }
        for garbage in ["", "!!!", "e30", &"A".repeat(MAX_RECEIPT_LEN + 1)] {
            assert_eq!(Receipt::from_cookie_value(garbage), None, "{garbage}");
        }
    }
}
