//! Orders: who buys ([`Customer`]), what they asked for ([`LineRequest`]), what they got
//! ([`Order`] and its [`OrderLine`]s), and what can become of a request ([`CheckoutOutcome`]).
//!
//! An order's number is random (see [`ORDER_ID_LEN`]) so that an order page needs no login.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::cart::{MAX_LINES, MAX_QUANTITY};
use super::checkout::FieldError;
use super::schema::{email_pattern, order_id_pattern, text_pattern};

/// Who the order ships to. Validated by [`crate::shop::checkout`] before it gets here. A field it does
/// not know is refused when read from JSON (the API's `customer`), as the OpenAPI document says,
/// rather than dropped unseen; rows and the checkout form are read field by field, not through serde.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    description = "Who the order ships to. Surrounding whitespace is trimmed; control characters are refused. Other properties are refused."
)]
pub struct Customer {
    /// At most 100 characters.
    #[schemars(regex(pattern = text_pattern(100)))]
    pub name: String,
    /// An address like name@example.com, at most 254 characters.
    #[schemars(regex(pattern = email_pattern()), length(max = 254))]
    pub email: String,
    /// Street address, at most 200 characters.
    #[schemars(regex(pattern = text_pattern(200)))]
    pub address: String,
    /// At most 100 characters.
    #[schemars(regex(pattern = text_pattern(100)))]
    pub city: String,
    /// At most 20 characters.
    #[schemars(regex(pattern = text_pattern(20)))]
    pub postal_code: String,
    /// At most 60 characters.
    #[schemars(regex(pattern = text_pattern(60)))]
    pub country: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct OrderLine {
    #[schemars(range(min = 1))]
    pub product_id: i64,
    pub product_name: String,
    #[schemars(range(min = 0))]
    pub unit_price_cents: i64,
    #[schemars(range(min = 1, max = MAX_QUANTITY))]
    pub quantity: i64,
}

impl OrderLine {
    pub fn line_total_cents(&self) -> i64 {
        self.unit_price_cents * self.quantity
    }
}

/// A product's stock as the order's own transaction left it: what the catalog shows once the
/// order is placed (see [`crate::shop::catalog::Catalog::sold`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockLeft {
    pub product_id: i64,
    pub stock: i64,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Order {
    /// The order number.
    #[schemars(regex(pattern = order_id_pattern()))]
    pub id: String,
    pub customer: Customer,
    #[schemars(length(min = 1, max = MAX_LINES))]
    pub lines: Vec<OrderLine>,
    #[schemars(range(min = 1))]
    pub item_count: i64,
    #[schemars(range(min = 0))]
    pub total_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: OffsetDateTime,
}

/// One line of a checkout request, already validated and merged (one line per product).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRequest {
    pub product_id: i64,
    pub quantity: i64,
}

/// A product that does not have enough stock for the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Shortage {
    #[schemars(range(min = 1))]
    pub product_id: i64,
    pub name: String,
    #[schemars(range(min = 1))]
    pub requested: i64,
    #[schemars(range(min = 0))]
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

/// What became of a checkout request: the one answer the form, the API, the metrics and the
/// catalog all read. Failures of the store itself are the `Err` beside it
/// ([`crate::db::DbError`]).
#[derive(Clone, Debug)]
pub enum CheckoutOutcome {
    /// A new order was written, leaving this stock of the products it took.
    Placed {
        order: Order,
        stock_left: Vec<StockLeft>,
    },
    /// The idempotency key was seen before with the same request: this is that first order.
    Replayed(Order),
    /// The request itself is wrong (every problem, by field); nothing was written.
    Invalid(Vec<FieldError>),
    /// Not enough stock for these products; nothing was written.
    OutOfStock(Vec<Shortage>),
    /// These product ids do not exist; nothing was written.
    UnknownProducts(Vec<i64>),
    /// The idempotency key was used before for a different request.
    KeyReused,
}

impl CheckoutOutcome {
    /// The order, when there is one (placed now or before).
    pub fn order(&self) -> Option<&Order> {
        match self {
            CheckoutOutcome::Placed { order, .. } | CheckoutOutcome::Replayed(order) => Some(order),
            _ => None,
        }
    }

    /// A name for traces.
    pub fn label(&self) -> &'static str {
        match self {
            CheckoutOutcome::Placed { .. } => "placed",
            CheckoutOutcome::Replayed(_) => "replayed",
            CheckoutOutcome::Invalid(_) => "invalid",
            CheckoutOutcome::OutOfStock(_) => "out_of_stock",
            CheckoutOutcome::UnknownProducts(_) => "unknown_products",
            CheckoutOutcome::KeyReused => "key_reused",
        }
    }
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
