//! The HTML shop: home, category listings, product pages, the cart, checkout and order
//! confirmation, plus the 404 and error pages. Every page works without JavaScript (plain links
//! and forms that answer with a redirect); `static/app.js` only enhances.
//!
//! Pages render askama templates from `templates/`, all extending `base.html`, through [`Page`],
//! which turns a rendering failure into the error page rather than a blank 500.

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use askama::Template;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::assets;
use super::extract::AcceptsGzip;
use super::page_cache::{CachedPage, PageKey};
use crate::error::PageError;
use crate::shop::cart::Cart;
use crate::shop::catalog::{Category, Snapshot};
use crate::shop::money::{Grouped, Money, Tenths};
use crate::web::state::AppState;

mod cart;
mod catalog;
mod checkout;
mod errors;
pub mod escape;

pub use cart::{cart, cart_add, cart_update};
pub use catalog::{category, home, product};
pub use checkout::{checkout_form, checkout_submit};
pub use errors::{error_page, not_found, with_visitor_cart};

/// Products per category page.
pub const PER_PAGE: i64 = 12;

/// What every page's frame needs: title, navigation, cart counter, asset URLs.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub description: String,
    pub cart_count: i64,
    pub nav: Nav,
    pub css: Cow<'static, str>,
    pub js: Cow<'static, str>,
    pub favicon: Cow<'static, str>,
    pub logo: Cow<'static, str>,
    /// Which replica served the page, and on which node: refreshing shows load spreading across
    /// pods and onto the virtual node. Empty on pages rendered without the state (error pages).
    pub served_by: String,
}

/// The departments in the header and footer: the catalog snapshot's own list (not a copy per
/// page), and which one the page shows. Empty on pages rendered without the catalog.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    catalog: Option<Arc<Snapshot>>,
    current: Option<String>,
}

impl Nav {
    pub fn departments(&self) -> &[Category] {
        self.catalog.as_deref().map_or(&[], Snapshot::categories)
    }

    pub fn is_current(&self, department: &Category) -> bool {
        self.current.as_deref() == Some(department.slug.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.departments().is_empty()
    }
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
            nav: Nav::default(),
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
        let catalog = state.catalog().await?;
        let mut layout = Layout::bare(title, cart.item_count());
        layout.served_by = match &state.config.node {
            Some(node) => format!("{} on {node}", state.config.instance),
            None => state.config.instance.clone(),
        };
        layout.nav = Nav {
            catalog: Some(catalog),
            current: current.map(str::to_owned),
        };
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
        match render(&self.1) {
            Ok(html) => html_response(self.0, Bytes::from(html)),
            Err(error) => PageError(error.into()).into_response(),
        }
    }
}

/// `template` rendered, into a string allocated once at the size of the largest page rendered so
/// far: grown from askama's size hint (a few kilobytes) instead, a 10-25 KB page would be
/// reallocated and copied at every doubling. The string becomes the body without a copy.
fn render(template: &impl Template) -> askama::Result<String> {
    /// No page comes near this; it only bounds what one odd page can make every later one take.
    const LARGEST_HINT: usize = 256 * 1024;
    static LARGEST_PAGE: AtomicUsize = AtomicUsize::new(0);
    let mut html = String::with_capacity(LARGEST_PAGE.load(Ordering::Relaxed).max(1024));
    template.render_into(&mut html)?;
    LARGEST_PAGE.fetch_max(html.len().min(LARGEST_HINT), Ordering::Relaxed);
    Ok(html)
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
    // Loaded first (a cold catalog's first load is a change), then the version read before the
    // page is built, so an order placed meanwhile makes this copy stale at once.
    state.catalog().await?;
    let version = state.pages.version();
    let mut html = self::render(&Box::pin(render()).await?)?;
    if let Some(key) = key {
        // Kept for many requests: at its own size, not the render buffer's.
        html.shrink_to_fit();
        let html = Bytes::from(html);
        state.pages.put(key, version, html.clone());
        return Ok(html_response(StatusCode::OK, html));
    }
    Ok(html_response(StatusCode::OK, Bytes::from(html)))
}

/// `19204` → `19,204`, for review counts in templates (which pass fields by reference). Counts
/// are never negative (the schema says so); one that were would show as 0.
fn grouped(n: &i64) -> Grouped {
    Grouped(u64::try_from(*n).unwrap_or(0))
}

// Amounts, counts and ratings are written in one piece rather than through `core::fmt` (see
// `shop::money::Text`); the escaper then finds nothing to escape in them.
macro_rules! figure_for_templates {
    ($($figure:ty),*) => {$(
        impl askama::FastWritable for $figure {
            fn write_into(
                &self,
                dest: &mut dyn std::fmt::Write,
                _: &dyn askama::Values,
            ) -> askama::Result<()> {
                Ok(dest.write_str(self.text().as_str())?)
            }
        }
    )*};
}

figure_for_templates!(Money, Grouped, Tenths);

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
        assert_eq!(grouped(&7).to_string(), "7");
        assert_eq!(grouped(&3412).to_string(), "3,412");
        assert_eq!(grouped(&19_204).to_string(), "19,204");
        assert_eq!(grouped(&1_000_000).to_string(), "1,000,000");
    }
}
