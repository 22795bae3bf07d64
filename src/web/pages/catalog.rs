//! The catalog pages: home (the doorbusters and departments), a department's listing (sorted,
//! paged) and a product, all built from the in-memory catalog and, for visitors with an empty
//! cart, served from the page cache.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::super::extract::{AcceptsGzip, CartCookie, PagePath, PageQuery};
use super::super::page_cache::PageKey;
use crate::error::{AppError, PageError, echo};
use crate::shop::cart::{Cart, MAX_QUANTITY};
use crate::shop::catalog::{Category, Product, Sort};
use crate::web::state::AppState;

use super::*;

#[derive(Template)]
#[template(path = "home.html")]
struct HomeTemplate {
    layout: Layout,
    deals: Vec<Product>,
    /// Its departments are listed straight from the snapshot.
    catalog: Arc<Snapshot>,
}

pub async fn home(
    State(state): State<AppState>,
    CartCookie(cart): CartCookie,
    gzip: AcceptsGzip,
) -> Result<Response, PageError> {
    let key = cart.is_empty().then_some(PageKey::Home);
    let (state, cart) = (&state, &cart);
    shared_page(state, key, gzip, move || async move {
        let layout = Layout::load(state, "Doorbuster · Black Friday deals", cart, None).await?;
        let catalog = state.catalog().await?;
        Ok(HomeTemplate {
            layout,
            deals: catalog.doorbusters(),
            catalog,
        })
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct ListingParams {
    #[serde(default)]
    sort: Sort,
    page: Option<i64>,
}

#[derive(Debug)]
struct SortOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Debug)]
struct PageLink {
    number: i64,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "category.html")]
struct CategoryTemplate {
    layout: Layout,
    category: Category,
    products: Vec<Product>,
    sort_options: Vec<SortOption>,
    page: i64,
    pages: i64,
    total: i64,
    pager: Vec<PageLink>,
    prev: Option<String>,
    next: Option<String>,
}

pub async fn category(
    State(state): State<AppState>,
    CartCookie(cart): CartCookie,
    gzip: AcceptsGzip,
    PagePath(slug): PagePath<String>,
    PageQuery(params): PageQuery<ListingParams>,
) -> Result<Response, PageError> {
    let key = cart.is_empty().then(|| PageKey::Category {
        slug: slug.clone(),
        sort: params.sort,
        page: params.page.unwrap_or(1),
    });
    shared_page(&state, key, gzip, || {
        category_page(&state, &cart, slug, params)
    })
    .await
}

async fn category_page(
    state: &AppState,
    cart: &Cart,
    slug: String,
    params: ListingParams,
) -> Result<CategoryTemplate, PageError> {
    let catalog = state.catalog().await?;
    let category = catalog.category(&slug).cloned().ok_or_else(|| {
        AppError::not_found(format!(
            "There is no '{}' department. Pick one from the menu.",
            echo(&slug)
        ))
    })?;
    let page = params.page.unwrap_or(1);
    let pages = ((category.product_count + PER_PAGE - 1) / PER_PAGE).max(1);
    if !(1..=pages).contains(&page) {
        return Err(AppError::not_found(format!(
            "{} has {pages} page{} of products; there is no page {page}.",
            category.name,
            if pages == 1 { "" } else { "s" }
        ))
        .into());
    }
    // `page` is within 1..=pages, checked above.
    let listing = catalog.listing(
        Some(&slug),
        params.sort,
        PER_PAGE as usize,
        ((page - 1) * PER_PAGE) as usize,
    );
    let sort = params.sort.as_str();
    let href = |number: i64| format!("/c/{slug}?sort={sort}&page={number}");
    let layout = Layout::load(
        state,
        format!("{} · Doorbuster", category.name),
        cart,
        Some(&slug),
    )
    .await?
    .describe(category.tagline.clone());
    Ok(CategoryTemplate {
        layout,
        sort_options: Sort::ALL
            .iter()
            .map(|s| SortOption {
                value: s.as_str(),
                label: s.label(),
                selected: *s == params.sort,
            })
            .collect(),
        page,
        pages,
        total: listing.total,
        pager: (1..=pages)
            .map(|number| PageLink {
                number,
                href: href(number),
                current: number == page,
            })
            .collect(),
        prev: (page > 1).then(|| href(page - 1)),
        next: (page < pages).then(|| href(page + 1)),
        products: listing.items,
        category,
    })
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductTemplate {
    layout: Layout,
    product: Product,
    category: Category,
    related: Vec<Product>,
    /// Choices for the quantity selector: 1 up to what stock and the per-order limit allow.
    quantities: Vec<i64>,
    in_cart: i64,
}

pub async fn product(
    State(state): State<AppState>,
    CartCookie(cart): CartCookie,
    gzip: AcceptsGzip,
    PagePath(slug): PagePath<String>,
) -> Result<Response, PageError> {
    let key = cart.is_empty().then(|| PageKey::Product(slug.clone()));
    shared_page(&state, key, gzip, || product_page(&state, &cart, slug)).await
}

async fn product_page(
    state: &AppState,
    cart: &Cart,
    slug: String,
) -> Result<ProductTemplate, PageError> {
    let catalog = state.catalog().await?;
    let product = catalog.product_by_slug(&slug).ok_or_else(|| {
        AppError::not_found(format!(
            "We don't sell '{}'. Try the deals on the home page.",
            echo(&slug)
        ))
    })?;
    let category = catalog
        .category(&product.category_slug)
        .cloned()
        .ok_or_else(|| AppError::Internal(format!("product {} has no category", product.slug)))?;
    let related = catalog.related(&product, 4);
    let layout = Layout::load(
        state,
        format!("{} · Doorbuster", product.name),
        cart,
        Some(&product.category_slug),
    )
    .await?
    .describe(product.blurb().to_owned());
    Ok(ProductTemplate {
        layout,
        quantities: (1..=product.stock.clamp(0, MAX_QUANTITY)).collect(),
        in_cart: cart.quantity_of(product.id),
        product,
        category,
        related,
    })
}
