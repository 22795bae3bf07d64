//! Orders: who buys ([`Customer`]), what they asked for ([`LineRequest`]), what they got
//! ([`Order`] and its [`OrderLine`]s), and what can become of a request ([`PlaceOutcome`]).
//!
//! An order's number is random (see [`ORDER_ID_LEN`]) so that an order page needs no login.

use rand::Rng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who the order ships to. Validated by [`crate::shop::checkout`] before it gets here. A field it does
/// not know is refused when read from JSON (the API's `customer`), as the OpenAPI document says,
/// rather than dropped unseen; rows and the checkout form are read field by field, not through serde.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub name: String,
    pub email: String,
    pub address: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderLine {
    pub product_id: i64,
    pub product_name: String,
    pub unit_price_cents: i64,
    pub quantity: i64,
}

impl OrderLine {
    pub fn line_total_cents(&self) -> i64 {
        self.unit_price_cents * self.quantity
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Order {
    pub id: String,
    pub customer: Customer,
    pub lines: Vec<OrderLine>,
    pub item_count: i64,
    pub total_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One line of a checkout request, already validated and merged (one line per product).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRequest {
    pub product_id: i64,
    pub quantity: i64,
}

/// A product that does not have enough stock for the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shortage {
    pub product_id: i64,
    pub name: String,
    pub requested: i64,
    pub available: i64,
}

/// Everything needed to write an order.
#[derive(Clone, Debug)]
pub struct NewOrder<'a> {
    pub customer: &'a Customer,
    /// One per product, quantities positive.
    pub lines: &'a [LineRequest],
    pub idempotency_key: Option<&'a str>,
    /// A canonical rendering of the request, stored to recognise a retry of the same request.
    pub fingerprint: &'a str,
}

/// What became of a checkout. Failures of the database itself are the `Err` of [`crate::db::orders::place`].
#[derive(Clone, Debug)]
pub enum PlaceOutcome {
    /// A new order was written.
    Placed(Order),
    /// The idempotency key was seen before with the same request: this is that first order.
    Replayed(Order),
    /// Not enough stock for these products; nothing was written.
    OutOfStock(Vec<Shortage>),
    /// These product ids do not exist; nothing was written.
    UnknownProducts(Vec<i64>),
    /// The idempotency key was used before for a different request.
    KeyReused,
}

/// Crockford base32 without the ambiguous letters I, L, O and U.
pub const ORDER_ID_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 12 symbols = 60 random bits: unguessable enough that order pages need no login.
pub const ORDER_ID_LEN: usize = 12;

pub fn new_order_id() -> String {
    let mut rng = rand::rng();
    (0..ORDER_ID_LEN)
        .map(|_| char::from(ORDER_ID_ALPHABET[rng.random_range(0..32)]))
        .collect()
}

/// Whether `id` has the shape of an order number, so malformed ids are rejected without a query.
pub fn is_order_id(id: &str) -> bool {
    id.len() == ORDER_ID_LEN && id.bytes().all(|b| ORDER_ID_ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_have_the_documented_shape() {
        for _ in 0..100 {
            let id = new_order_id();
            assert!(is_order_id(&id), "{id}");
        }
        assert!(!is_order_id("0123456789AI"));
        assert!(!is_order_id("short"));
        assert!(!is_order_id("0123456789ab"));
    }
}
