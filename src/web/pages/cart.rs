//! The cart page and its forms (add, change a quantity), over the cookie-held cart.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use opentelemetry::KeyValue;
use serde::Deserialize;

use super::super::extract::{CartCookie, PageForm, PageQuery, cart_cookie};
use super::super::origin::{OverHttps, SameOrigin};
use crate::error::{AppError, PageError};
use crate::shop::cart::{Cart, MAX_QUANTITY};
use crate::shop::catalog::Product;
use crate::shop::money::Money;
use crate::shop::order::Shortage;
use crate::web::state::AppState;

use super::*;

/// A cart line joined with its product, for the cart and checkout pages.

#[derive(Debug)]
pub(super) struct CartRow {
    pub(super) product: Product,
    pub(super) quantity: i64,
    pub(super) line_total: Money,
    /// Set when the line cannot be ordered as it stands.
    pub(super) problem: Option<String>,
}

/// The cart's lines with current names, prices and stock; unknown products are dropped.
pub(super) async fn cart_rows(
    state: &AppState,
    cart: &mut Cart,
) -> Result<(Vec<CartRow>, Money), PageError> {
    let ids: Vec<i64> = cart.lines().iter().map(|line| line.product_id).collect();
    let products = state.catalog().await?.products_by_ids(&ids);
    cart.retain(|line| products.iter().any(|p| p.id == line.product_id));
    let mut rows = Vec::with_capacity(cart.lines().len());
    let mut subtotal = 0;
    for line in cart.lines() {
        let Some(product) = products.iter().find(|p| p.id == line.product_id) else {
            continue;
        };
        let problem = if product.stock == 0 {
            Some("Sold out: remove it to check out.".to_owned())
        } else if line.quantity > product.stock {
            Some(format!("Only {} left: lower the quantity.", product.stock))
        } else {
            None
        };
        subtotal += product.price_cents * line.quantity;
        rows.push(CartRow {
            line_total: Money(product.price_cents * line.quantity),
            product: product.clone(),
            quantity: line.quantity,
            problem,
        });
    }
    Ok((rows, Money(subtotal)))
}

/// What the shopper saves on these lines against list prices.
pub(super) fn savings(rows: &[CartRow]) -> Money {
    Money(
        rows.iter()
            .map(|row| row.product.saving_cents() * row.quantity)
            .sum(),
    )
}

#[derive(Debug, Deserialize)]
pub struct CartParams {
    added: Option<String>,
}

#[derive(Template)]
#[template(path = "cart.html")]
struct CartTemplate {
    layout: Layout,
    rows: Vec<CartRow>,
    subtotal: Money,
    item_count: i64,
    added: Option<String>,
    blocked: bool,
    max_quantity: i64,
    savings: Money,
}

pub async fn cart(
    State(state): State<AppState>,
    OverHttps(https): OverHttps,
    CartCookie(mut cart): CartCookie,
    PageQuery(params): PageQuery<CartParams>,
) -> Result<Response, PageError> {
    let (rows, subtotal) = cart_rows(&state, &mut cart).await?;
    let added = params
        .added
        .and_then(|slug| rows.iter().find(|row| *row.product.slug == *slug))
        .map(|row| row.product.name.to_string());
    let layout = Layout::load(&state, "Your cart · Doorbuster", &cart, None).await?;
    let page = Page(
        StatusCode::OK,
        CartTemplate {
            layout,
            item_count: cart.item_count(),
            blocked: rows.iter().any(|row| row.problem.is_some()),
            savings: savings(&rows),
            rows,
            subtotal,
            added,
            max_quantity: MAX_QUANTITY,
        },
    );
    // Write back the cookie: it may have lost products that no longer exist.
    Ok((cart_cookie(&cart, https), no_store(page)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CartForm {
    product_id: i64,
    #[serde(default)]
    quantity: Option<String>,
}

fn parse_quantity(raw: Option<&str>, default: i64) -> Result<i64, AppError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text.parse::<i64>().ok().filter(|q| (0..=MAX_QUANTITY).contains(q)).ok_or_else(|| {
            AppError::bad_request(format!(
                "Quantity must be a whole number from 0 to {MAX_QUANTITY}. Go back to your cart and try again."
            ))
        }),
    }
}

/// `POST /cart/add`: add a product, then show the cart.
pub async fn cart_add(
    _: SameOrigin,
    State(state): State<AppState>,
    OverHttps(https): OverHttps,
    CartCookie(mut cart): CartCookie,
    PageForm(form): PageForm<CartForm>,
) -> Result<Response, PageError> {
    let quantity = parse_quantity(form.quantity.as_deref(), 1)?.max(1);
    let product = state
        .catalog()
        .await?
        .product_by_id(form.product_id)
        .ok_or_else(|| AppError::not_found("That product is no longer sold. Pick another deal."))?;
    if product.is_sold_out() {
        return Err(AppError::OutOfStock {
            shortages: vec![Shortage {
                product_id: product.id,
                name: product.name.to_string(),
                requested: quantity,
                available: 0,
            }],
        }
        .into());
    }
    // Never put more in the cart than is on the shelf right now.
    let room = (product.stock.min(MAX_QUANTITY) - cart.quantity_of(product.id)).max(0);
    if room > 0 {
        cart.add(product.id, quantity.min(room)).map_err(|error| {
            AppError::bad_request(format!("{}.", capitalise(&error.to_string())))
        })?;
        state.metrics.cart_additions.add(
            u64::try_from(quantity.min(room)).unwrap_or(0),
            &[KeyValue::new("doorbuster", product.doorbuster)],
        );
    }
    let to = format!("/cart?added={}", product.slug);
    Ok((cart_cookie(&cart, https), Redirect::to(&to)).into_response())
}

/// `POST /cart/update`: set a line's quantity (0 removes it), then show the cart.
pub async fn cart_update(
    _: SameOrigin,
    OverHttps(https): OverHttps,
    CartCookie(mut cart): CartCookie,
    PageForm(form): PageForm<CartForm>,
) -> Result<Response, PageError> {
    let quantity = parse_quantity(form.quantity.as_deref(), 0)?;
    if cart.contains(form.product_id) || quantity == 0 {
        cart.set(form.product_id, quantity)
            .map_err(|error| AppError::bad_request(error.to_string()))?;
    }
    Ok((cart_cookie(&cart, https), Redirect::to("/cart")).into_response())
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_strictly() {
        assert_eq!(parse_quantity(None, 1).ok(), Some(1));
        assert_eq!(parse_quantity(Some(" 3 "), 1).ok(), Some(3));
        assert!(parse_quantity(Some("11"), 1).is_err());
        assert!(parse_quantity(Some("-1"), 1).is_err());
        assert!(parse_quantity(Some("two"), 1).is_err());
    }
}
