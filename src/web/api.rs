//! The JSON API under `/api`: catalog reads, checkout and orders, described by an OpenAPI 3.1
//! document at `/api/openapi.json` ([`openapi`]). Errors are `application/problem+json`.
//!
//! Routes are registered through [`ApiRoutes`], which records each method and path, so a test can
//! prove the OpenAPI document lists every route the router serves.

pub mod openapi;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::db::catalog;
use crate::db::orders;
use crate::error::{ApiError, AppError, echo};
use crate::shop::catalog::{Category, Product, Sort, StockState};
use crate::shop::checkout::{self, CheckoutRequest, Placed};
use crate::shop::order::{self as order_id, Order};
use crate::state::AppState;

/// Products per page when the client does not say.
pub const DEFAULT_PER_PAGE: i64 = 24;
/// Most products per page a client may ask for.
pub const MAX_PER_PAGE: i64 = 100;
/// Deepest page a client may ask for; far beyond any real catalog, it only bounds the OFFSET.
pub const MAX_PAGE: i64 = 10_000;

/// The API router plus the list of what it serves.
#[derive(Debug, Default)]
pub struct ApiRoutes {
    pub router: Router<AppState>,
    /// `(METHOD, full path template)`, e.g. `("GET", "/api/products/{id_or_slug}")`.
    pub documented: Vec<(&'static str, &'static str)>,
}

impl ApiRoutes {
    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<AppState>,
    ) -> Self {
        self.router = self.router.route(path, handler);
        self.documented.push((method, path));
        self
    }
}

pub fn routes() -> ApiRoutes {
    let routes = ApiRoutes::default()
        .add("GET", "/api/categories", get(list_categories))
        .add("GET", "/api/products", get(list_products))
        .add("GET", "/api/products/{id_or_slug}", get(get_product))
        .add("POST", "/api/checkout", post(place_order))
        .add("GET", "/api/orders/{id}", get(get_order))
        .add("GET", "/api/openapi.json", get(openapi::document));
    // Unknown paths under /api answer in the API's format rather than with the shop's 404 page.
    // (Routes are merged into the main router rather than nested: nesting loses the `Allow`
    // header on 405 answers.)
    ApiRoutes {
        router: routes
            .router
            .route("/api", any(not_found))
            .route("/api/{*rest}", any(not_found)),
        documented: routes.documented,
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError(AppError::not_found(format!(
        "There is no API route {}. The routes are listed in /api/openapi.json.",
        echo(uri.path())
    )))
}

/// A product as the API shows it: the stored fields plus what clients would otherwise compute.
#[derive(Debug, Serialize)]
pub struct ProductView {
    #[serde(flatten)]
    pub product: Product,
    pub discount_percent: i64,
    pub stock_state: StockState,
    pub image_url: String,
    pub url: String,
}

impl From<Product> for ProductView {
    fn from(product: Product) -> Self {
        ProductView {
            discount_percent: product.discount_percent(),
            stock_state: product.stock_state(),
            image_url: product.image_path(),
            url: format!("/p/{}", product.slug),
            product,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CategoryView {
    #[serde(flatten)]
    pub category: Category,
    pub url: String,
}

#[derive(Debug, Serialize)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    pub url: String,
}

impl From<Order> for OrderView {
    fn from(order: Order) -> Self {
        OrderView {
            url: format!("/orders/{}", order.id),
            order,
        }
    }
}

#[derive(Debug, Serialize)]
struct CategoryList {
    categories: Vec<CategoryView>,
}

async fn list_categories(State(state): State<AppState>) -> Result<Json<impl Serialize>, ApiError> {
    let categories = catalog::categories(&state.db).await?;
    Ok(Json(CategoryList {
        categories: categories
            .into_iter()
            .map(|category| CategoryView {
                url: format!("/c/{}", category.slug),
                category,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    category: Option<String>,
    #[serde(default)]
    sort: Sort,
    page: Option<i64>,
    per_page: Option<i64>,
}

#[derive(Debug, Serialize)]
struct ProductList {
    items: Vec<ProductView>,
    total: i64,
    page: i64,
    per_page: i64,
}

async fn list_products(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let page = params.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(
            AppError::invalid("page", format!("page must be between 1 and {MAX_PAGE}.")).into(),
        );
    }
    let per_page = params.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(AppError::invalid(
            "per_page",
            format!("per_page must be between 1 and {MAX_PER_PAGE}."),
        )
        .into());
    }
    if let Some(slug) = &params.category
        && catalog::category(&state.db, slug).await?.is_none()
    {
        return Err(AppError::not_found(format!(
            "There is no category '{}'. GET /api/categories lists them.",
            echo(slug)
        ))
        .into());
    }
    let listing = catalog::products(
        &state.db,
        params.category.as_deref(),
        params.sort,
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(Json(ProductList {
        items: listing.items.into_iter().map(ProductView::from).collect(),
        total: listing.total,
        page,
        per_page,
    }))
}

async fn get_product(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ProductView>, ApiError> {
    let product = match key.parse::<i64>() {
        Ok(id) => catalog::product_by_id(&state.db, id).await?,
        Err(_) => catalog::product_by_slug(&state.db, &key).await?,
    };
    let product = product.ok_or_else(|| {
        AppError::not_found(format!(
            "There is no product with id or slug '{}'. GET /api/products lists them.",
            echo(&key)
        ))
    })?;
    Ok(Json(product.into()))
}

/// `POST /api/checkout`: 201 with the order and its `Location`; a replay of an `Idempotency-Key`
/// gets the first order again, marked `Idempotent-Replayed: true`.
async fn place_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value.to_str().unwrap_or_default();
            Some(
                checkout::validate_idempotency_key(key).map_err(|error| AppError::BadRequest {
                    detail: error.message,
                })?,
            )
        }
    };
    let outcome = checkout::checkout(&state.db, &request, key).await;
    state.record_checkout(&outcome);
    let placed = outcome?;
    let replayed = matches!(placed, Placed::Replayed(_));
    let order = match placed {
        Placed::New(order) | Placed::Replayed(order) => order,
    };
    let location = format!("/api/orders/{}", order.id);
    let mut response = (StatusCode::CREATED, Json(OrderView::from(order))).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

async fn get_order(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderView>, ApiError> {
    let not_found = || {
        AppError::not_found(format!(
            "There is no order '{}'. Check the order number.",
            echo(&id)
        ))
    };
    if !order_id::is_order_id(&id) {
        return Err(not_found().into());
    }
    let order = orders::order(&state.db, &id).await?.ok_or_else(not_found)?;
    Ok(Json(order.into()))
}
