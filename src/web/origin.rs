//! Where a request came from, and over what: two questions the shop's forms ask of headers that
//! browsers and load balancers set.
//!
//! [`SameOrigin`] is taken by every handler of a form post that changes something (`/cart/add`,
//! `/cart/update`, `POST /checkout`): it refuses, with a 403 page, a post that another site made
//! the shopper's browser send (cross-site request forgery). `SameSite=Lax` on the cart cookie is
//! not enough on its own: a cross-site form still reaches the handler, and the cookie its answer
//! sets replaces the shopper's cart; sibling subdomains count as the same site and get the cookie
//! sent. The browser says where a request comes from in `Sec-Fetch-Site` (current browsers, to
//! HTTPS sites and to localhost); otherwise, as to a shop on plain HTTP or from an older browser,
//! in `Origin`, which must then name the shop itself. A request with neither passes: forgery needs
//! a browser, and what sends neither is curl, the load generator or a browser old enough to
//! predate both (for which `SameSite=Lax` stays the only defence). The JSON
//! API needs no such check: it takes only `Content-Type: application/json`, which a cross-site
//! page cannot send without a CORS preflight, and the shop answers none.
//!
//! [`OverHttps`] says whether the shopper's connection is HTTPS, so the cart cookie can be
//! `Secure`. The shop itself speaks plain HTTP: TLS ends at the load balancer or ingress in front
//! of it, which names the scheme the browser used in `X-Forwarded-Proto` and the host it asked
//! for in `X-Forwarded-Host` (or passes `Host` through). Both are taken as they come: a browser
//! cannot set them on a cross-site request, a client that can set any header can also leave out
//! `Origin`, and one that claims HTTPS over plain HTTP only gets a cookie its browser drops.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderName, Uri, header};

use crate::error::{AppError, PageError};

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What the 403 page says: what happened, that nothing changed, and what to do.
pub const REFUSED: &str = "This form was sent from another website, not from a page of this \
    shop, so the shop did not act on it: nothing was added, changed or ordered. If you meant to \
    do this, open the shop yourself and use its own buttons.";

/// Proof that a form post came from one of the shop's own pages (or from no browser at all);
/// the extractor refuses anything else with a 403 page. See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct SameOrigin;

impl<S: Send + Sync> FromRequestParts<S> for SameOrigin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if is_same_origin(&parts.headers, &parts.uri) {
            Ok(SameOrigin)
        } else {
            Err(PageError(AppError::Forbidden {
                detail: REFUSED.to_owned(),
            }))
        }
    }
}

/// Whether the shopper reached the shop over HTTPS: the load balancer's `X-Forwarded-Proto`, or
/// the request's own scheme. Never fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverHttps(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for OverHttps {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(OverHttps(
            own_scheme(&parts.headers, &parts.uri).as_deref() == Some("https"),
        ))
    }
}

fn is_same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    if let Some(site) = headers.get(&SEC_FETCH_SITE) {
        // Set by the browser itself, which no page can change: it decides. `none` is the shopper
        // acting directly (a bookmark, the address bar). `same-site` is refused: a sibling
        // subdomain is another party.
        let site = site.as_bytes();
        return site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none");
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| origin_is_own(origin, headers, uri)),
    }
}

/// Whether a serialised origin (`scheme://host[:port]`) is the shop's own: the host the browser
/// asked for (`X-Forwarded-Host` from a proxy, else `Host`, else the HTTP/2 authority) and, when
/// known, the scheme. `null` (sandboxed frames, `data:` pages) and anything unreadable are not.
fn origin_is_own(origin: &str, headers: &HeaderMap, uri: &Uri) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let scheme = scheme.to_ascii_lowercase();
    if !(scheme == "http" || scheme == "https") || authority.contains(['@', '/', '?', '#']) {
        return false;
    }
    let Ok(origin) = authority.parse::<Authority>() else {
        return false;
    };
    let Some(own) = own_authority(headers, uri) else {
        return false;
    };
    // Without word from a proxy, the scheme is unknown: the shop speaks plain HTTP, but a proxy
    // that ends TLS may not say so. The host and port still have to match.
    let own_scheme = own_scheme(headers, uri);
    if own_scheme.as_ref().is_some_and(|own| *own != scheme) {
        return false;
    }
    let own_scheme = own_scheme.unwrap_or_else(|| scheme.clone());
    origin.host().eq_ignore_ascii_case(own.host())
        && port_or_default(&origin, &scheme) == port_or_default(&own, &own_scheme)
}

/// The host and port the browser asked for.
fn own_authority(headers: &HeaderMap, uri: &Uri) -> Option<Authority> {
    if let Some(forwarded) = first_value(headers, &X_FORWARDED_HOST) {
        return forwarded.parse().ok();
    }
    match headers.get(header::HOST) {
        Some(host) => host.to_str().ok()?.parse().ok(),
        None => uri.authority().cloned(),
    }
}

/// The scheme the browser used, lowercase, when a proxy or the request line says.
fn own_scheme(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    first_value(headers, &X_FORWARDED_PROTO)
        .map(str::to_ascii_lowercase)
        .or_else(|| uri.scheme_str().map(str::to_ascii_lowercase))
}

/// The first entry of a header a chain of proxies may extend (`a, b`): what the first proxy, the
/// one the browser spoke to, saw.
fn first_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

fn port_or_default(authority: &Authority, scheme: &str) -> Option<u16> {
    authority.port_u16().or(match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn origins_compare_host_port_and_a_known_scheme() {
        let uri = Uri::from_static("/cart/add");
        let own = |pairs| is_same_origin(&headers(pairs), &uri);
        assert!(own(&[
            ("host", "shop.test"),
            ("origin", "http://shop.test")
        ]));
        assert!(own(&[
            ("host", "Shop.Test:80"),
            ("origin", "http://shop.test")
        ]));
        assert!(own(&[
            ("host", "shop.test"),
            ("origin", "https://shop.test")
        ]));
        assert!(!own(&[
            ("host", "shop.test"),
            ("origin", "https://shop.test:8443")
        ]));
        assert!(!own(&[
            ("host", "shop.test"),
            ("origin", "http://shop.test.evil")
        ]));
        assert!(!own(&[
            ("host", "shop.test"),
            ("origin", "http://user@shop.test")
        ]));
        assert!(!own(&[
            ("host", "shop.test"),
            ("origin", "ftp://shop.test")
        ]));
        assert!(!own(&[("host", "shop.test"), ("origin", "null")]));
        assert!(!own(&[("origin", "http://shop.test")]), "no host, no match");
        assert!(own(&[
            ("host", "10.0.0.7:8080"),
            ("x-forwarded-host", "shop.test, 10.0.0.7:8080"),
            ("x-forwarded-proto", "HTTPS, http"),
            ("origin", "https://shop.test"),
        ]));
        assert!(!own(&[
            ("host", "shop.test"),
            ("x-forwarded-proto", "https"),
            ("origin", "http://shop.test"),
        ]));
        let http2 = Uri::from_static("https://shop.test/cart/add");
        assert!(is_same_origin(
            &headers(&[("origin", "https://shop.test")]),
            &http2
        ));
    }

    #[test]
    fn sec_fetch_site_decides_when_present() {
        let uri = Uri::from_static("/cart/add");
        let own = |pairs| is_same_origin(&headers(pairs), &uri);
        assert!(own(&[("sec-fetch-site", "same-origin")]));
        assert!(own(&[("sec-fetch-site", "none")]));
        assert!(!own(&[("sec-fetch-site", "same-site")]));
        assert!(!own(&[("sec-fetch-site", "cross-site")]));
        assert!(!own(&[("sec-fetch-site", "something-new")]));
        assert!(own(&[]), "no browser, no forgery");
    }
}
