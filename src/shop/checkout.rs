//! Checkout, shared by the HTML form and the JSON API: what a valid order request is, how it is
//! normalised, and [`Checkout`], the use case that turns it into an order.
//!
//! Validation lives here rather than in the handlers so both front doors give the same answers;
//! the transaction's statements live in [`crate::db::orders`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::db::orders;
use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::shop::cart::{MAX_LINES, MAX_QUANTITY};
use crate::shop::catalog::Catalog;
use crate::shop::order::{CheckoutOutcome, Customer, LineRequest, NewOrder};

/// The body of `POST /api/checkout` (and what the checkout form is converted into).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::shop::schema::required("customer"))]
pub struct CheckoutRequest {
    #[schemars(length(min = 1, max = MAX_LINES))]
    pub items: Vec<ItemRequest>,
    #[serde(default)]
    pub customer: Customer,
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    /// A product id from /api/products.
    #[schemars(range(min = 1))]
    pub product_id: i64,
    #[schemars(range(min = 1, max = MAX_QUANTITY))]
    pub quantity: i64,
}

/// One problem with one field, phrased for the person who has to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FieldError {
    /// Where the problem is: `customer.email`, `items[2].quantity`, `items`, `body`.
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

/// Checkout, the shop's one write, as one use case: validate the request, place the order in one
/// transaction, count it, and show the stock it took. Handlers only translate HTTP to a
/// [`CheckoutRequest`] and the [`CheckoutOutcome`] back.
#[derive(Clone, Debug)]
pub struct Checkout {
    db: Db,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
}

impl Checkout {
    pub fn new(db: Db, catalog: Arc<Catalog>, metrics: Arc<Metrics>) -> Checkout {
        Checkout {
            db,
            catalog,
            metrics,
        }
    }

    /// Validates and places an order. `Err` is the store failing (nothing was written, or for
    /// [`DbError::OutcomeUnknown`] it is not known whether it was); everything the shopper can
    /// act on is an outcome.
    #[tracing::instrument(name = "checkout", skip_all, fields(otel.kind = "internal", items = request.items.len(), idempotent = idempotency_key.is_some(), outcome = tracing::field::Empty))]
    pub async fn place(
        &self,
        request: &CheckoutRequest,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutOutcome, DbError> {
        let validated = tracing::info_span!("checkout.validate", otel.kind = "internal")
            .in_scope(|| validate(request));
        let outcome = match validated {
            Ok(valid) => self.place_valid(&valid, idempotency_key).await,
            Err(errors) => Ok(CheckoutOutcome::Invalid(errors)),
        };
        if let Ok(outcome) = &outcome {
            tracing::Span::current().record("outcome", outcome.label());
        }
        self.metrics.record_checkout(&outcome);
        match &outcome {
            Ok(CheckoutOutcome::Placed { stock_left, .. }) => self.catalog.sold(stock_left),
            // Stock moved somewhere else: the catalog shows more than there is.
            Ok(CheckoutOutcome::OutOfStock(_)) => self.catalog.moved_elsewhere(),
            _ => {}
        }
        outcome
    }

    async fn place_valid(
        &self,
        valid: &ValidCheckout,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutOutcome, DbError> {
        let fingerprint = fingerprint(valid);
        let new = NewOrder {
            customer: &valid.customer,
            lines: &valid.lines,
            idempotency_key,
            fingerprint: &fingerprint,
        };
        orders::place(&self.db, &new).await
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
