//! The checkout form and its submission: the form re-rendered with what to fix (and the same
//! idempotency key) when the order is refused or the store is unavailable, the redirect to the
//! confirmation when it is placed.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::super::confirmation;
use super::super::extract::{CartCookie, PageForm, cart_cookie};
use super::super::origin::{OverHttps, SameOrigin};
use crate::error::{AppError, PageError};
use crate::shop::cart::Cart;
use crate::shop::checkout::{self, CheckoutRequest, FieldError, ItemRequest};
use crate::shop::money::Money;
use crate::shop::order::{CheckoutOutcome, Customer};
use crate::web::state::AppState;

use super::cart::{CartRow, cart_rows, savings};
use super::*;

/// One input of the checkout form.
#[derive(Debug)]
struct FormField {
    name: &'static str,
    label: &'static str,
    value: String,
    autocomplete: &'static str,
    input_type: &'static str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "checkout.html")]
struct CheckoutTemplate {
    layout: Layout,
    rows: Vec<CartRow>,
    subtotal: Money,
    savings: Money,
    fields: Vec<FormField>,
    idempotency_key: String,
    /// Problems that belong to no single field (stock, the cart).
    alerts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    idempotency_key: String,
}

impl CheckoutForm {
    fn customer(&self) -> Customer {
        Customer {
            name: self.name.clone(),
            email: self.email.clone(),
            address: self.address.clone(),
            city: self.city.clone(),
            postal_code: self.postal_code.clone(),
            country: self.country.clone(),
        }
    }
}

fn form_fields(customer: &Customer, errors: &[FieldError]) -> Vec<FormField> {
    let error_for = |name: &str| {
        errors
            .iter()
            .find(|e| e.field.strip_prefix("customer.") == Some(name))
            .map(|e| e.message.clone())
    };
    let field = |name, label, value: &str, autocomplete, input_type| FormField {
        name,
        label,
        value: value.to_owned(),
        autocomplete,
        input_type,
        error: error_for(name),
    };
    vec![
        field("name", "Full name", &customer.name, "name", "text"),
        field("email", "Email", &customer.email, "email", "email"),
        field(
            "address",
            "Street address",
            &customer.address,
            "street-address",
            "text",
        ),
        field("city", "City", &customer.city, "address-level2", "text"),
        field(
            "postal_code",
            "Postal code",
            &customer.postal_code,
            "postal-code",
            "text",
        ),
        field(
            "country",
            "Country",
            &customer.country,
            "country-name",
            "text",
        ),
    ]
}

/// A fresh key per checkout form, so a double-submitted form places one order.
fn new_form_key() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!(
        "form-{:016x}{:016x}",
        rng.random::<u64>(),
        rng.random::<u64>()
    )
}

pub async fn checkout_form(
    State(state): State<AppState>,
    CartCookie(mut cart): CartCookie,
) -> Result<Response, PageError> {
    let (rows, subtotal) = cart_rows(&state, &mut cart).await?;
    if rows.is_empty() {
        return Ok(Redirect::to("/cart").into_response());
    }
    let layout = Layout::load(&state, "Checkout · Doorbuster", &cart, None).await?;
    let page = CheckoutTemplate {
        layout,
        savings: savings(&rows),
        rows,
        subtotal,
        fields: form_fields(&Customer::default(), &[]),
        idempotency_key: new_form_key(),
        alerts: Vec::new(),
    };
    Ok(no_store(Page(StatusCode::OK, page)).into_response())
}

/// `POST /checkout`: place the order and go to its confirmation, or show the form again with
/// each problem next to its field.
///
/// The order is always placed under the form's key, as the API's `Idempotency-Key`: a form sent
/// twice (a double click, a retry after a timeout) finds the first order and goes to its
/// confirmation. A post without a usable key places nothing: an unkeyed order could not be
/// recognised when the same form came again, which is how a double submit made two orders.
pub async fn checkout_submit(
    _: SameOrigin,
    State(state): State<AppState>,
    OverHttps(https): OverHttps,
    CartCookie(mut cart): CartCookie,
    PageForm(form): PageForm<CheckoutForm>,
) -> Result<Response, PageError> {
    let (rows, subtotal) = cart_rows(&state, &mut cart).await?;
    if rows.is_empty() {
        return Ok(Redirect::to("/cart").into_response());
    }
    let Ok(key) = checkout::validate_idempotency_key(&form.idempotency_key) else {
        let alert = "Nothing was ordered: this form had lost its order key (an old or altered \
                     copy of the page). Check your details and place the order again."
            .to_owned();
        let again = CheckoutAgain {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: Vec::new(),
            alerts: vec![alert],
            key: new_form_key(),
        };
        return again.render(&state, &cart, rows, subtotal, &form).await;
    };
    let request = CheckoutRequest {
        items: cart
            .lines()
            .iter()
            .map(|line| ItemRequest {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect(),
        customer: form.customer(),
    };
    let outcome = state.checkout.place(&request, Some(key)).await;
    // A key whose order was refused is still unused, so the corrected form keeps it; a key that
    // already placed another order would only be refused again, so that form gets a new one.
    // A 503 here is a page of its own: telemetry learns its cause from `failure`.
    let mut failure = None;
    let again = match outcome {
        Ok(CheckoutOutcome::Placed { order, .. } | CheckoutOutcome::Replayed(order)) => {
            let to = format!("/orders/{}?placed=1", order.id);
            // The redirect may land on another replica, which with a store per replica does not
            // hold the order: the receipt lets it show the confirmation all the same.
            let mut cookies = cart_cookie(&Cart::default(), https);
            if let Some(receipt) = confirmation::receipt_cookie(&order, https) {
                cookies = cookies.add(receipt);
            }
            return Ok((cookies, Redirect::to(&to)).into_response());
        }
        Ok(CheckoutOutcome::Invalid(errors)) => CheckoutAgain {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            alerts: errors
                .iter()
                .filter(|e| !e.field.starts_with("customer."))
                .map(|e| e.message.clone())
                .collect(),
            errors,
            key: key.to_owned(),
        },
        Ok(CheckoutOutcome::OutOfStock(shortages)) => CheckoutAgain {
            status: StatusCode::CONFLICT,
            errors: Vec::new(),
            alerts: shortages
                .iter()
                .map(|s| match s.available {
                    0 => format!(
                        "{} just sold out. Remove it from your cart to continue.",
                        s.name
                    ),
                    n => format!(
                        "Only {n} of {} left. Lower the quantity in your cart.",
                        s.name
                    ),
                })
                .collect(),
            key: key.to_owned(),
        },
        Ok(CheckoutOutcome::KeyReused) => CheckoutAgain {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: Vec::new(),
            alerts: vec![
                "Your cart changed since this form was opened. Check it and place the order again."
                    .to_owned(),
            ],
            key: new_form_key(),
        },
        // The cart holds only products that exist (`cart_rows` drops the rest): a product that
        // vanished since is the 422 page.
        Ok(refused @ CheckoutOutcome::UnknownProducts(_)) => {
            return Err(AppError::refused(refused).into());
        }
        Err(error) => {
            let error = AppError::from(error);
            if error.status() != StatusCode::SERVICE_UNAVAILABLE {
                return Err(error.into());
            }
            // Nothing was written, or it is not known whether the order was: either way the
            // same form, with the same key, is what the shopper should send again. It places
            // the order once, or finds the one already placed.
            let detail = error.detail();
            failure = PageError(error).log();
            CheckoutAgain {
                status: StatusCode::SERVICE_UNAVAILABLE,
                errors: Vec::new(),
                alerts: vec![format!(
                    "{detail} Press “Place order” again in a moment: this form places at most \
                     one order."
                )],
                key: key.to_owned(),
            }
        }
    };
    let mut response = again.render(&state, &cart, rows, subtotal, &form).await?;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::error::RETRY_AFTER_SECONDS),
        );
    }
    if let Some(failure) = failure {
        failure.attach(&mut response);
    }
    Ok(response)
}

/// The checkout form shown again after a submit that placed no order: what went wrong, and the
/// key the next submit carries.
struct CheckoutAgain {
    status: StatusCode,
    errors: Vec<FieldError>,
    /// Problems that belong to no single field.
    alerts: Vec<String>,
    key: String,
}

impl CheckoutAgain {
    async fn render(
        self,
        state: &AppState,
        cart: &Cart,
        rows: Vec<CartRow>,
        subtotal: Money,
        form: &CheckoutForm,
    ) -> Result<Response, PageError> {
        let layout = Layout::load(state, "Checkout · Doorbuster", cart, None).await?;
        let page = CheckoutTemplate {
            layout,
            savings: savings(&rows),
            rows,
            subtotal,
            fields: form_fields(&form.customer(), &self.errors),
            idempotency_key: self.key,
            alerts: self.alerts,
        };
        Ok(no_store(Page(self.status, page)).into_response())
    }
}
