//! The JSON API under `/api`: catalog reads, checkout and orders, described by an OpenAPI 3.1
//! document at `/api/openapi.json` that is derived from this router and the types its handlers
//! read and write ([`openapi`]). Errors are `application/problem+json`.

pub mod openapi;
mod products_json;

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::openapi::OpenApi;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::db::orders;
use crate::error::{ApiError, AppError, echo};
use crate::shop::catalog::{Category, Product, Sort, StockState};
use crate::shop::checkout::{self, CheckoutRequest};
use crate::shop::order::{self as order_id, CheckoutOutcome, Order};
use crate::web::state::AppState;

/// Products per page when the client does not say.
pub const DEFAULT_PER_PAGE: i64 = 24;
/// Most products per page a client may ask for.
pub const MAX_PER_PAGE: i64 = 100;
/// Deepest page a client may ask for; far beyond any real catalog, it only bounds the OFFSET.
pub const MAX_PAGE: i64 = 10_000;

/// The API's routes, in the two groups the route table mounts with different load-target costs,
/// and the OpenAPI document that describes them.
#[derive(Debug)]
pub struct ApiRoutes {
    /// Placing an order.
    pub checkout: Router<AppState>,
    /// Everything else: the catalog, orders, the document, and the problem+json answer to any
    /// other path under `/api`.
    pub rest: Router<AppState>,
    pub document: OpenApi,
}

/// Each route is registered with the function in [`openapi`] that describes it: the document
/// lists exactly what the routers serve. (The routers are merged into the route table rather
/// than nested: nesting loses the `Allow` header on 405 answers.)
pub fn routes() -> ApiRoutes {
    let mut document = OpenApi::default();
    let rest = openapi::finish(&mut document, || {
        ApiRouter::new()
            .api_route(
                "/api/categories",
                get_with(list_categories, openapi::list_categories),
            )
            .api_route(
                "/api/products",
                get_with(list_products, openapi::list_products),
            )
            .api_route(
                "/api/products/{id_or_slug}",
                get_with(get_product, openapi::get_product),
            )
            .api_route("/api/orders/{id}", get_with(get_order, openapi::get_order))
            .api_route(
                "/api/openapi.json",
                get_with(openapi::serve, openapi::openapi),
            )
    })
    // Unknown paths under /api answer in the API's format rather than with the shop's 404 page
    // (`{*rest}` does not match an empty rest: `/api/` is listed on its own).
    .route("/api", any(not_found))
    .route("/api/", any(not_found))
    .route("/api/{*rest}", any(not_found));
    let checkout = openapi::finish(&mut document, || {
        ApiRouter::new().api_route("/api/checkout", post_with(place_order, openapi::checkout))
    });
    ApiRoutes {
        checkout,
        rest,
        document: openapi::document(document),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError(AppError::not_found(format!(
        "There is no API route {}. The routes are listed in /api/openapi.json.",
        echo(uri.path())
    )))
}

/// A product as the API shows it: the stored fields plus what clients would otherwise compute.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Product", deny_unknown_fields)]
pub struct ProductView {
    #[serde(flatten)]
    pub product: Product,
    #[schemars(range(min = 0, max = 100))]
    pub discount_percent: i64,
    pub stock_state: StockState,
    #[schemars(extend("format" = "uri-reference"))]
    pub image_url: String,
    /// The product's page.
    #[schemars(extend("format" = "uri-reference"))]
    pub url: String,
}

impl From<Product> for ProductView {
    fn from(product: Product) -> Self {
        let image_url = product.image_path().to_string();
        ProductView {
            discount_percent: product.discount_percent(),
            stock_state: product.stock_state(),
            image_url,
            url: format!("/p/{}", product.slug),
            product,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Category", deny_unknown_fields)]
pub struct CategoryView {
    #[serde(flatten)]
    pub category: Category,
    /// The category's page.
    #[schemars(extend("format" = "uri-reference"))]
    pub url: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Order", deny_unknown_fields)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    /// The order's confirmation page.
    #[schemars(extend("format" = "uri-reference"))]
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

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
struct CategoryList {
    categories: Vec<CategoryView>,
}

async fn list_categories(State(state): State<AppState>) -> Result<Json<CategoryList>, ApiError> {
    let catalog = state.catalog().await?;
    Ok(Json(CategoryList {
        categories: catalog
            .categories()
            .iter()
            .map(|category| CategoryView {
                url: format!("/c/{}", category.slug),
                category: category.clone(),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct ListParams {
    /// A category slug from /api/categories.
    category: Option<String>,
    #[serde(default)]
    sort: Sort,
    #[schemars(range(min = 1, max = MAX_PAGE), extend("default" = 1))]
    page: Option<i64>,
    #[schemars(range(min = 1, max = MAX_PER_PAGE), extend("default" = DEFAULT_PER_PAGE))]
    per_page: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(super) struct ProductList {
    #[schemars(length(max = MAX_PER_PAGE))]
    items: Vec<ProductView>,
    #[schemars(range(min = 0))]
    total: i64,
    #[schemars(range(min = 1, max = MAX_PAGE))]
    page: i64,
    #[schemars(range(min = 1, max = MAX_PER_PAGE))]
    per_page: i64,
}

async fn list_products(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<products_json::ProductListJson, ApiError> {
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
    let catalog = state.catalog().await?;
    if let Some(slug) = &params.category
        && catalog.category(slug).is_none()
    {
        return Err(AppError::not_found(format!(
            "There is no category '{}'. GET /api/categories lists them.",
            echo(slug)
        ))
        .into());
    }
    // Both are within bounds checked above, so the casts cannot wrap.
    let listing = catalog.listing(
        params.category.as_deref(),
        params.sort,
        per_page as usize,
        ((page - 1) * per_page) as usize,
    );
    Ok(products_json::product_list(
        &catalog, &listing, page, per_page,
    ))
}

async fn get_product(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ProductView>, ApiError> {
    let catalog = state.catalog().await?;
    let product = match key.parse::<i64>() {
        Ok(id) => catalog.product_by_id(id),
        Err(_) => catalog.product_by_slug(&key),
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
    let (order, replayed) = match state.checkout.place(&request, key).await? {
        CheckoutOutcome::Placed { order, .. } => (order, false),
        CheckoutOutcome::Replayed(order) => (order, true),
        refused => return Err(AppError::refused(refused).into()),
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
