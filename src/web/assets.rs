//! Static assets and product art, all inside the binary so a container needs no files and nothing
//! is fetched from the internet.
//!
//! Stylesheet, script and icons are served under content-hashed names (`app.3f9c2a1b.css`) with
//! year-long immutable caching; the hash is of the content, so every replica of one build agrees on
//! the names. Product and category art is drawn on request by [`super::art`] and cached for a day.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::art;
use super::extract::PagePath;
use crate::error::{AppError, PageError, echo};
use crate::web::state::AppState;

struct Asset {
    /// The name templates ask for, e.g. `app.css`.
    name: &'static str,
    /// The content-addressed file name, e.g. `app.3f9c2a1b.css`.
    hashed_name: String,
    /// `/static/` and the hashed name: what pages link to.
    url: String,
    content_type: &'static str,
    body: &'static [u8],
    etag: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
        let hash = fnv1a(body);
        let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
        let hashed_name = format!("{stem}.{:08x}.{extension}", hash as u32);
        Asset {
            name,
            url: format!("/static/{hashed_name}"),
            hashed_name,
            content_type,
            body,
            etag: format!("\"{hash:016x}\""),
        }
    }
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    vec![
        Asset::new(
            "app.css",
            "text/css; charset=utf-8",
            include_bytes!("../../static/app.css"),
        ),
        Asset::new(
            "app.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../static/app.js"),
        ),
        Asset::new(
            "favicon.svg",
            "image/svg+xml",
            include_bytes!("../../static/favicon.svg"),
        ),
        Asset::new(
            "logo.svg",
            "image/svg+xml",
            include_bytes!("../../static/logo.svg"),
        ),
    ]
});

/// The URL of an asset by its plain name, for templates; worked out once, as every page links
/// to the same four. Unknown names are a programming error caught by the tests (every template is
/// rendered there), so they map to a URL that 404s.
pub fn url(name: &str) -> Cow<'static, str> {
    ASSETS.iter().find(|asset| asset.name == name).map_or_else(
        || Cow::Owned(format!("/static/{name}")),
        |asset| Cow::Borrowed(asset.url.as_str()),
    )
}

/// FNV-1a: tiny, stable across builds and platforms, and plenty for cache busting and ETags.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `GET /static/{file}`: hashed names are immutable; plain names (for hand-written links) are
/// revalidated with their ETag.
pub async fn static_file(PagePath(file): PagePath<String>, headers: HeaderMap) -> Response {
    if let Some(asset) = ASSETS.iter().find(|a| a.hashed_name == file) {
        return cached(
            &headers,
            asset.content_type,
            asset.body.to_vec(),
            &asset.etag,
            super::IMMUTABLE,
        );
    }
    if let Some(asset) = ASSETS.iter().find(|a| a.name == file) {
        return cached(
            &headers,
            asset.content_type,
            asset.body.to_vec(),
            &asset.etag,
            "public, max-age=300",
        );
    }
    PageError(AppError::not_found(format!(
        "There is no file called {}.",
        echo(&file)
    )))
    .into_response()
}

/// `GET /art/product/{slug}.svg`
pub async fn product_art(
    State(state): State<AppState>,
    PagePath(file): PagePath<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let slug = file.strip_suffix(".svg").unwrap_or_default();
    let product = state
        .catalog()
        .await?
        .product_by_slug(slug)
        .ok_or_else(|| {
            AppError::not_found(format!("There is no picture called {}.", echo(&file)))
        })?;
    let svg = art::product_svg(&product.category_slug, &product.slug, &product.name);
    Ok(svg_response(&headers, svg))
}

/// `GET /art/category/{slug}.svg`
pub async fn category_art(
    State(state): State<AppState>,
    PagePath(file): PagePath<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let slug = file.strip_suffix(".svg").unwrap_or_default();
    let catalog = state.catalog().await?;
    let category = catalog.category(slug).ok_or_else(|| {
        AppError::not_found(format!("There is no picture called {}.", echo(&file)))
    })?;
    Ok(svg_response(&headers, art::category_svg(&category.slug)))
}

fn svg_response(headers: &HeaderMap, svg: String) -> Response {
    let etag = format!("\"{:016x}\"", fnv1a(svg.as_bytes()));
    let cache = format!("public, max-age={}", super::ONE_DAY.as_secs());
    cached(headers, "image/svg+xml", svg.into_bytes(), &etag, &cache)
}

/// A cacheable response, or 304 when the client already holds this version.
fn cached(
    request_headers: &HeaderMap,
    content_type: &'static str,
    body: Vec<u8>,
    etag: &str,
    cache_control: &str,
) -> Response {
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_urls_are_content_addressed() {
        let css = url("app.css");
        assert!(
            css.starts_with("/static/app.") && css.ends_with(".css"),
            "{css}"
        );
        assert_ne!(css, "/static/app.css");
        assert_eq!(url("missing.txt"), "/static/missing.txt");
    }
}
