//! The HTML shop: home, category listings, product pages, the cart, checkout and order
//! confirmation, plus the 404 and error pages. Every page works without JavaScript (plain links
//! and forms that answer with a redirect); `static/app.js` only enhances.
//!
//! Pages render askama templates from `templates/`, all extending `base.html`, through [`Page`],
//! which turns a rendering failure into the error page rather than a blank 500.

use std::future::Future;
use std::sync::LazyLock;

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use opentelemetry::KeyValue;
use serde::Deserialize;

use super::assets;
use super::confirmation;
use super::extract::{AcceptsGzip, CartCookie, PageForm, PagePath, PageQuery, cart_cookie};
use super::origin::{OverHttps, SameOrigin};
use super::page_cache::{CachedPage, PageKey};
use crate::db::catalog;
use crate::error::{AppError, PageError, echo};
use crate::shop::cart::{Cart, MAX_QUANTITY};
use crate::shop::catalog::{Category, Product, Sort};
use crate::shop::checkout::{self, CheckoutError, CheckoutRequest, FieldError, ItemRequest};
use crate::shop::money::Money;
use crate::shop::order::{Customer, Shortage};
use crate::state::AppState;

/// Products per category page.
pub const PER_PAGE: i64 = 12;

/// What every page's frame needs: title, navigation, cart counter, asset URLs.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub description: String,
    pub cart_count: i64,
    pub nav: Vec<NavLink>,
    pub css: String,
    pub js: String,
    pub favicon: String,
    pub logo: String,
    /// Which replica served the page, and on which node: refreshing shows load spreading across
    /// pods and onto the virtual node. Empty on pages rendered without the state (error pages).
    pub served_by: String,
}

#[derive(Debug, Clone)]
pub struct NavLink {
    pub href: String,
    pub label: String,
    pub current: bool,
}

impl Layout {
    /// A frame without navigation, for pages that must render even when the database is down.
    fn bare(title: impl Into<String>, cart_count: i64) -> Layout {
        Layout {
            title: title.into(),
            description:
                "Doorbuster: Black Friday deals on books, consoles, games, laptops and more."
                    .to_owned(),
            cart_count,
            nav: Vec::new(),
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            favicon: assets::url("favicon.svg"),
            logo: assets::url("logo.svg"),
            served_by: String::new(),
        }
    }

    /// The full frame, with category navigation (`current` marks the category being shown).
    pub(super) async fn load(
        state: &AppState,
        title: impl Into<String>,
        cart: &Cart,
        current: Option<&str>,
    ) -> Result<Layout, PageError> {
        let categories = catalog::categories(&state.db).await?;
        let mut layout = Layout::bare(title, cart.item_count());
        layout.served_by = match &state.config.node {
            Some(node) => format!("{} on {node}", state.config.instance),
            None => state.config.instance.clone(),
        };
        layout.nav = categories
            .into_iter()
            .map(|c| NavLink {
                current: current == Some(c.slug.as_str()),
                href: format!("/c/{}", c.slug),
                label: c.name,
            })
            .collect();
        Ok(layout)
    }

    fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

/// A rendered template with a status. Pages carry a per-visitor cart counter, so shared caches
/// must not store them.
#[derive(Debug)]
pub struct Page<T>(pub StatusCode, pub T);

impl<T: Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.1.render() {
            Ok(html) => html_response(self.0, Bytes::from(html)),
            Err(error) => PageError(error.into()).into_response(),
        }
    }
}

/// A page's headers: the security set, HTML, no shared caching (see [`Page`]) and a length slot
/// that [`page_response`] fills. Built once and cloned per response (see
/// [`super::secured_headers`]); the slot is there so that filling it finds its place rather than
/// growing the cloned map, which would re-hash every header.
static PAGE_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    super::secured_headers([
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        ),
        (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
    ])
});

/// [`PAGE_HEADERS`] for a page's stored gzip copy (see [`super::page_cache`]): the encoding, and
/// `Vary` so that no cache hands it to a client that did not ask for it.
static GZIP_PAGE_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = PAGE_HEADERS.clone();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers
});

fn html_response(status: StatusCode, html: Bytes) -> Response {
    page_response(&PAGE_HEADERS, status, html)
}

fn cached_response(page: CachedPage) -> Response {
    let headers = if page.gzipped {
        &GZIP_PAGE_HEADERS
    } else {
        &PAGE_HEADERS
    };
    page_response(headers, StatusCode::OK, page.body)
}

fn page_response(headers: &HeaderMap, status: StatusCode, body: Bytes) -> Response {
    let mut headers = headers.clone();
    if let Some(length) = headers.get_mut(header::CONTENT_LENGTH) {
        *length = HeaderValue::from(body.len());
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A page that every visitor with an empty cart sees alike: served from the page cache when it
/// holds a current copy, else rendered by `render` (and kept, when `key` is given: pass `None` for
/// visitors whose cart shows on the page). See [`super::page_cache`].
///
/// `render` makes its future only on a miss, and that future goes on the heap: its queries make
/// it kilobytes, which every cache hit would otherwise carry and copy through the layers.
async fn shared_page<T: Template, F: Future<Output = Result<T, PageError>>>(
    state: &AppState,
    key: Option<PageKey>,
    AcceptsGzip(gzip): AcceptsGzip,
    render: impl FnOnce() -> F,
) -> Result<Response, PageError> {
    if let Some(key) = &key
        && let Some(page) = state.pages.get(key, gzip)
    {
        return Ok(cached_response(page));
    }
    // Read before the queries run, so an order placed meanwhile makes this copy stale at once.
    let version = state.pages.version();
    let html = Bytes::from(Box::pin(render()).await?.render()?);
    if let Some(key) = key {
        state.pages.put(key, version, html.clone());
    }
    Ok(html_response(StatusCode::OK, html))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate {
    layout: Layout,
    status: u16,
    heading: String,
    message: String,
}

/// The friendly error page; used for every HTML error, including those raised outside handlers.
/// A 503 says when to come back (`Retry-After`), as a problem document does.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "We couldn't find that page".to_owned(),
        StatusCode::CONFLICT => "Not enough stock".to_owned(),
        StatusCode::FORBIDDEN => "That form didn't come from the shop".to_owned(),
        s if s.is_server_error() => "The shop is having a moment".to_owned(),
        s => s
            .canonical_reason()
            .unwrap_or("Something is not right")
            .to_owned(),
    };
    let template = ErrorTemplate {
        layout: Layout::bare(format!("{heading} · Doorbuster"), 0),
        status: status.as_u16(),
        heading,
        message: message.to_owned(),
    };
    let mut response = match template.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        // The error page itself failed: fall back to text rather than recurse.
        Err(_) => (status, message.to_owned()).into_response(),
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::error::RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// Fallback for unknown paths.
pub async fn not_found(uri: Uri) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        &format!(
            "There is nothing at {}. The deals are on the home page.",
            echo(uri.path())
        ),
    )
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomeTemplate {
    layout: Layout,
    deals: Vec<Product>,
    categories: Vec<Category>,
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
        let deals = catalog::doorbusters(&state.db).await?;
        let categories = catalog::categories(&state.db).await?;
        Ok(HomeTemplate {
            layout,
            deals,
            categories,
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
    let category = catalog::category(&state.db, &slug).await?.ok_or_else(|| {
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
    let listing = catalog::products(
        &state.db,
        Some(&slug),
        params.sort,
        PER_PAGE,
        (page - 1) * PER_PAGE,
    )
    .await?;
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
    let product = catalog::product_by_slug(&state.db, &slug)
        .await?
        .ok_or_else(|| {
            AppError::not_found(format!(
                "We don't sell '{}'. Try the deals on the home page.",
                echo(&slug)
            ))
        })?;
    let category = catalog::category(&state.db, &product.category_slug)
        .await?
        .ok_or_else(|| AppError::Internal(format!("product {} has no category", product.slug)))?;
    let related = catalog::related(&state.db, &product, 4).await?;
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

/// A cart line joined with its product, for the cart and checkout pages.
#[derive(Debug)]
struct CartRow {
    product: Product,
    quantity: i64,
    line_total: Money,
    /// Set when the line cannot be ordered as it stands.
    problem: Option<String>,
}

/// The cart's lines with current names, prices and stock; unknown products are dropped.
async fn cart_rows(state: &AppState, cart: &mut Cart) -> Result<(Vec<CartRow>, Money), PageError> {
    let ids: Vec<i64> = cart.lines().iter().map(|line| line.product_id).collect();
    let products = catalog::products_by_ids(&state.db, &ids).await?;
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
fn savings(rows: &[CartRow]) -> Money {
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
        .and_then(|slug| rows.iter().find(|row| row.product.slug == slug))
        .map(|row| row.product.name.clone());
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
    let product = catalog::product_by_id(&state.db, form.product_id)
        .await?
        .ok_or_else(|| AppError::not_found("That product is no longer sold. Pick another deal."))?;
    if product.is_sold_out() {
        return Err(AppError::OutOfStock {
            shortages: vec![Shortage {
                product_id: product.id,
                name: product.name.clone(),
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
    let outcome = checkout::checkout(&state.db, &request, Some(key)).await;
    state.record_checkout(&outcome);
    // A key whose order was refused is still unused, so the corrected form keeps it; a key that
    // already placed another order would only be refused again, so that form gets a new one.
    // A 503 here is a page of its own: telemetry learns its cause from `failure`.
    let mut failure = None;
    let again = match outcome {
        Ok(placed) => {
            let to = format!("/orders/{}?placed=1", placed.order().id);
            // The redirect may land on another replica, which with a store per replica does not
            // hold the order: the receipt lets it show the confirmation all the same.
            let mut cookies = cart_cookie(&Cart::default(), https);
            if let Some(receipt) = confirmation::receipt_cookie(placed.order(), https) {
                cookies = cookies.add(receipt);
            }
            return Ok((cookies, Redirect::to(&to)).into_response());
        }
        Err(CheckoutError::Invalid(errors)) => CheckoutAgain {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            alerts: errors
                .iter()
                .filter(|e| !e.field.starts_with("customer."))
                .map(|e| e.message.clone())
                .collect(),
            errors,
            key: key.to_owned(),
        },
        Err(CheckoutError::OutOfStock(shortages)) => CheckoutAgain {
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
        Err(CheckoutError::KeyReused) => CheckoutAgain {
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
        Err(error @ CheckoutError::UnknownProducts(_)) => return Err(AppError::from(error).into()),
        Err(CheckoutError::Db(error)) => {
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

/// `19204` → `19,204`, for review counts in templates (which pass fields by reference).
fn grouped(n: &i64) -> String {
    let n = *n;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Marks a response as not storable at all (it shows personal data or a form key).
pub(super) fn no_store(page: impl IntoResponse) -> Response {
    let mut response = page.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_in_thousands() {
        assert_eq!(grouped(&7), "7");
        assert_eq!(grouped(&3412), "3,412");
        assert_eq!(grouped(&19_204), "19,204");
        assert_eq!(grouped(&1_000_000), "1,000,000");
    }

    #[test]
    fn quantities_parse_strictly() {
        assert_eq!(parse_quantity(None, 1).ok(), Some(1));
        assert_eq!(parse_quantity(Some(" 3 "), 1).ok(), Some(3));
        assert!(parse_quantity(Some("11"), 1).is_err());
        assert!(parse_quantity(Some("-1"), 1).is_err());
        assert!(parse_quantity(Some("two"), 1).is_err());
    }
}
