//! Checkout rules shared by the HTML form and the JSON API: what a valid order request is, how it
//! is normalised, and how it is turned into an order.
//!
//! Validation lives here rather than in the handlers so both front doors give the same answers;
//! the transaction itself lives in [`crate::db::orders`].

use serde::{Deserialize, Serialize};

use crate::db::orders;
use crate::db::{Db, DbError};
use crate::shop::cart::{MAX_LINES, MAX_QUANTITY};
use crate::shop::order::{Customer, LineRequest, NewOrder, Order, PlaceOutcome, Shortage};

/// The body of `POST /api/checkout` (and what the checkout form is converted into).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub items: Vec<ItemRequest>,
    #[serde(default)]
    pub customer: Customer,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub product_id: i64,
    pub quantity: i64,
}

/// One problem with one field, phrased for the person who has to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where the problem is: `customer.email`, `items[2].quantity`, `items`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A request that passed validation: trimmed customer fields, one line per product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidCheckout {
    pub customer: Customer,
    pub lines: Vec<LineRequest>,
}

/// Why a checkout did not produce an order.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("the order has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("unknown products: {0:?}")]
    UnknownProducts(Vec<i64>),
    #[error("not enough stock")]
    OutOfStock(Vec<Shortage>),
    #[error("the idempotency key was already used for a different order")]
    KeyReused,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A successful checkout: a new order, or the earlier order for a retried request.
#[derive(Clone, Debug)]
pub enum Placed {
    New(Order),
    Replayed(Order),
}

impl Placed {
    pub fn order(&self) -> &Order {
        match self {
            Placed::New(order) | Placed::Replayed(order) => order,
        }
    }
}

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Checks and normalises a request. Returns every problem at once, not just the first.
pub fn validate(request: &CheckoutRequest) -> Result<ValidCheckout, Vec<FieldError>> {
    let mut errors = Vec::new();
    let customer = validate_customer(&request.customer, &mut errors);

    let mut lines: Vec<LineRequest> = Vec::new();
    if request.items.is_empty() {
        errors.push(FieldError::new(
            "items",
            "The order has no items: add at least one product.",
        ));
    }
    for (index, item) in request.items.iter().enumerate() {
        if item.product_id <= 0 {
            errors.push(FieldError::new(
                format!("items[{index}].product_id"),
                "Product ids are positive integers: take them from GET /api/products.",
            ));
            continue;
        }
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            errors.push(FieldError::new(
                format!("items[{index}].quantity"),
                format!("Quantity must be between 1 and {MAX_QUANTITY}."),
            ));
            continue;
        }
        // The same product twice is merged, as a cart would.
        match lines.iter_mut().find(|l| l.product_id == item.product_id) {
            Some(line) => line.quantity += item.quantity,
            None => lines.push(LineRequest {
                product_id: item.product_id,
                quantity: item.quantity,
            }),
        }
    }
    for line in &lines {
        if line.quantity > MAX_QUANTITY {
            errors.push(FieldError::new(
                "items",
                format!(
                    "Product {} is ordered {} times in total; the limit is {MAX_QUANTITY} per product.",
                    line.product_id, line.quantity
                ),
            ));
        }
    }
    if lines.len() > MAX_LINES {
        errors.push(FieldError::new(
            "items",
            format!("An order holds at most {MAX_LINES} different products."),
        ));
    }
    if errors.is_empty() {
        Ok(ValidCheckout { customer, lines })
    } else {
        Err(errors)
    }
}

fn validate_customer(input: &Customer, errors: &mut Vec<FieldError>) -> Customer {
    let mut field = |name: &str, value: &str, label: &str, max: usize| -> String {
        let value = value.trim();
        let path = format!("customer.{name}");
        if value.is_empty() {
            errors.push(FieldError::new(path, format!("Enter your {label}.")));
        } else if value.chars().count() > max {
            errors.push(FieldError::new(
                path,
                format!("Your {label} is too long: use at most {max} characters."),
            ));
        } else if value.chars().any(char::is_control) {
            errors.push(FieldError::new(
                path,
                format!("Your {label} contains control characters: use plain text."),
            ));
        }
        value.to_owned()
    };
    let customer = Customer {
        name: field("name", &input.name, "name", 100),
        email: field("email", &input.email, "email address", 254),
        address: field("address", &input.address, "street address", 200),
        city: field("city", &input.city, "city", 100),
        postal_code: field("postal_code", &input.postal_code, "postal code", 20),
        country: field("country", &input.country, "country", 60),
    };
    if !customer.email.is_empty() && !looks_like_email(&customer.email) {
        errors.push(FieldError::new(
            "customer.email",
            "Enter an email address like name@example.com.",
        ));
    }
    customer
}

/// Deliberately loose: one `@`, something before it, a dotted domain after it, no spaces.
/// Real verification is sending mail, which a demo shop does not do.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// Checks an `Idempotency-Key` header value.
pub fn validate_idempotency_key(key: &str) -> Result<&str, FieldError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(FieldError::new(
            "Idempotency-Key",
            format!(
                "The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters, such as a UUID."
            ),
        ));
    }
    Ok(key)
}

/// A canonical rendering of the validated request: equal for a retry of the same order, whatever
/// the item order or whitespace in the original body.
pub fn fingerprint(valid: &ValidCheckout) -> String {
    let mut lines = valid.lines.clone();
    lines.sort_by_key(|line| line.product_id);
    let lines: Vec<(i64, i64)> = lines.iter().map(|l| (l.product_id, l.quantity)).collect();
    serde_json::json!({ "lines": lines, "customer": valid.customer }).to_string()
}

/// Validates and places an order.
#[tracing::instrument(name = "checkout", skip_all, fields(otel.kind = "internal", items = request.items.len(), idempotent = idempotency_key.is_some()))]
pub async fn checkout(
    db: &Db,
    request: &CheckoutRequest,
    idempotency_key: Option<&str>,
) -> Result<Placed, CheckoutError> {
    let valid = tracing::info_span!("checkout.validate", otel.kind = "internal")
        .in_scope(|| validate(request))
        .map_err(CheckoutError::Invalid)?;
    place(db, &valid, idempotency_key).await
}

/// Places an already validated order.
#[tracing::instrument(name = "checkout.place", skip_all, fields(otel.kind = "internal", outcome = tracing::field::Empty))]
pub async fn place(
    db: &Db,
    valid: &ValidCheckout,
    idempotency_key: Option<&str>,
) -> Result<Placed, CheckoutError> {
    let fingerprint = fingerprint(valid);
    let new = NewOrder {
        customer: &valid.customer,
        lines: &valid.lines,
        idempotency_key,
        fingerprint: &fingerprint,
    };
    let outcome = orders::place(db, &new).await?;
    let label = match &outcome {
        PlaceOutcome::Placed(_) => "placed",
        PlaceOutcome::Replayed(_) => "replayed",
        PlaceOutcome::OutOfStock(_) => "out_of_stock",
        PlaceOutcome::UnknownProducts(_) => "unknown_products",
        PlaceOutcome::KeyReused => "key_reused",
    };
    tracing::Span::current().record("outcome", label);
    match outcome {
        PlaceOutcome::Placed(order) => Ok(Placed::New(order)),
        PlaceOutcome::Replayed(order) => Ok(Placed::Replayed(order)),
        PlaceOutcome::OutOfStock(short) => Err(CheckoutError::OutOfStock(short)),
        PlaceOutcome::UnknownProducts(ids) => Err(CheckoutError::UnknownProducts(ids)),
        PlaceOutcome::KeyReused => Err(CheckoutError::KeyReused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Customer {
        Customer {
            name: " Ada Lovelace ".into(),
            email: "ada@example.com".into(),
            address: "12 Analytical Row".into(),
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "United Kingdom".into(),
        }
    }

    fn request(items: &[(i64, i64)]) -> CheckoutRequest {
        CheckoutRequest {
            items: items
                .iter()
                .map(|&(product_id, quantity)| ItemRequest {
                    product_id,
                    quantity,
                })
                .collect(),
            customer: customer(),
        }
    }

    #[test]
    fn valid_request_is_trimmed_and_merged() {
        let valid = validate(&request(&[(3, 1), (5, 2), (3, 2)])).unwrap();
        assert_eq!(valid.customer.name, "Ada Lovelace");
        assert_eq!(
            valid.lines,
            vec![
                LineRequest {
                    product_id: 3,
                    quantity: 3
                },
                LineRequest {
                    product_id: 5,
                    quantity: 2
                }
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut bad = request(&[(0, 1), (4, 0), (5, -3), (6, 1_000_000)]);
        bad.customer.email = "not-an-email".into();
        bad.customer.city = "   ".into();
        let errors = validate(&bad).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "customer.city",
                "customer.email",
                "items[0].product_id",
                "items[1].quantity",
                "items[2].quantity",
                "items[3].quantity"
            ]
        );
        assert!(validate(&request(&[])).is_err());
        assert!(
            validate(&request(&[(1, 6), (1, 6)])).is_err(),
            "merged lines respect the limit"
        );
    }

    #[test]
    fn email_shapes() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(looks_like_email(good), "{good}");
        }
        for bad in ["a@b", "@b.co", "a b@c.de", "a@@b.co", "a@.co", "a@b.co."] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }

    #[test]
    fn fingerprint_ignores_item_order() {
        let a = validate(&request(&[(1, 1), (2, 2)])).unwrap();
        let b = validate(&request(&[(2, 2), (1, 1)])).unwrap();
        let c = validate(&request(&[(2, 1), (1, 1)])).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    #[test]
    fn idempotency_keys() {
        assert!(validate_idempotency_key("6f1c2d1e-0b7a-4d7e-9a51-2b1f0f3c9a10").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key(&"k".repeat(256)).is_err());
    }
}
