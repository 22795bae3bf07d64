//! Extractors whose rejections speak the app's error format: problem+json for the API
//! (`ApiJson`, `ApiQuery`, `ApiPath`), an HTML page for the shop (`PageQuery`, `PageForm`,
//! `PagePath`), and two that never reject: the cart cookie (see [`crate::shop::cart`]) and whether the
//! client takes gzip.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Form, FromRequest, FromRequestParts, Json, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, AppError, PageError, echo_message};
use crate::shop::cart::{self, Cart};

/// Turns an axum rejection into an [`AppError`] that keeps axum's precise message (which names
/// the offending field and position) and picks the right status. The message can quote the
/// client's input (an unknown field, a value), so it is cut as [`echo_message`] cuts.
fn rejection_to_error(status: StatusCode, body: String, what: &str) -> AppError {
    let body = echo_message(&body);
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge {
            detail: "The request body is too large; send a smaller one.".to_owned(),
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType {
            detail: format!("{body}. Send the body as {what}."),
        },
        StatusCode::UNPROCESSABLE_ENTITY => AppError::Invalid {
            errors: vec![crate::shop::checkout::FieldError {
                field: "body".to_owned(),
                message: body,
            }],
        },
        _ => AppError::BadRequest { detail: body },
    }
}

macro_rules! wrapped_extractor {
    ($(#[$doc:meta])* $name:ident, $inner:ident, $rejection:ty, $error:ident, $what:literal, parts) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<T>(pub T);

        impl<T, S> FromRequestParts<S> for $name<T>
        where
            T: DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = $error;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                match $inner::<T>::from_request_parts(parts, state).await {
                    Ok($inner(value)) => Ok($name(value)),
                    Err(rejection) => {
                        let rejection: $rejection = rejection;
                        Err($error(rejection_to_error(rejection.status(), rejection.body_text(), $what)))
                    }
                }
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $inner:ident, $rejection:ty, $error:ident, $what:literal, body) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<T>(pub T);

        impl<T, S> FromRequest<S> for $name<T>
        where
            T: DeserializeOwned,
            S: Send + Sync,
        {
            type Rejection = $error;

            async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
                match $inner::<T>::from_request(request, state).await {
                    Ok($inner(value)) => Ok($name(value)),
                    Err(rejection) => {
                        let rejection: $rejection = rejection;
                        Err($error(rejection_to_error(rejection.status(), rejection.body_text(), $what)))
                    }
                }
            }
        }
    };
}

wrapped_extractor!(
    /// A JSON body; rejections are problem+json.
    ApiJson, Json, JsonRejection, ApiError, "JSON with Content-Type: application/json", body
);
wrapped_extractor!(
    /// Query parameters of an API route; rejections are problem+json.
    ApiQuery, Query, QueryRejection, ApiError, "query parameters", parts
);
wrapped_extractor!(
    /// Path parameters of an API route; rejections are problem+json.
    ApiPath, Path, PathRejection, ApiError, "a path", parts
);
wrapped_extractor!(
    /// Query parameters of a page; rejections are an HTML error page.
    PageQuery, Query, QueryRejection, PageError, "query parameters", parts
);
wrapped_extractor!(
    /// Path parameters of a page; rejections are an HTML error page.
    PagePath, Path, PathRejection, PageError, "a path", parts
);
wrapped_extractor!(
    /// A submitted HTML form; rejections are an HTML error page.
    PageForm, Form, FormRejection, PageError, "a form (application/x-www-form-urlencoded)", body
);

/// The visitor's cart, read from its cookie. Never fails: an unreadable cookie is an empty cart.
#[derive(Debug, Clone, Default)]
pub struct CartCookie(pub Cart);

impl<S: Send + Sync> FromRequestParts<S> for CartCookie {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        Ok(CartCookie(
            jar.get(cart::COOKIE_NAME)
                .map(|cookie| Cart::from_cookie(cookie.value()))
                .unwrap_or_default(),
        ))
    }
}

/// Whether the client takes a gzip-encoded response, from `Accept-Encoding` (RFC 9110, 12.5.3):
/// gzip named with a weight above zero, or, when not named, covered by `*`. Cached pages go out
/// as their stored gzip copy when it does (see [`super::page_cache`]). Never fails: an unreadable
/// header means no.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptsGzip(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for AcceptsGzip {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(AcceptsGzip(accepts_gzip(&parts.headers)))
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None::<f32>, None::<f32>);
    let codings = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for coding in codings {
        let mut parameters = coding.split(';');
        let name = parameters.next().unwrap_or_default().trim();
        let weight = parameters
            .filter_map(|parameter| parameter.split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, value)| value.trim().parse::<f32>().ok());
        // A weight that does not parse makes the entry meaningless: skip it.
        let Some(weight) = weight else { continue };
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.map_or(weight, |seen| seen.max(weight)));
        } else if name == "*" {
            any = Some(weight);
        }
    }
    gzip.or(any).is_some_and(|weight| weight > 0.0)
}

/// How long a cart survives without a visit.
const CART_MAX_AGE: time::Duration = time::Duration::days(7);

/// A `Set-Cookie` that stores `cart` (or deletes the cookie when the cart is empty). `secure`
/// (the shopper is on HTTPS, see [`super::origin::OverHttps`]) keeps the browser from ever
/// sending it over plain HTTP; a shop served over plain HTTP (`localhost`) must leave it off, or
/// the browser would drop the cookie.
pub fn cart_cookie(cart: &Cart, secure: bool) -> CookieJar {
    let jar = CookieJar::new();
    let value = cart.to_cookie();
    let mut cookie = Cookie::build((cart::COOKIE_NAME, value))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(CART_MAX_AGE)
        .build();
    if cart.is_empty() {
        cookie.make_removal();
    }
    jar.add(cookie)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accepts(values: &[&'static str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_taken_when_named_or_covered_by_a_wildcard_with_a_weight_above_zero() {
        assert!(accepts(&["gzip, deflate, br, zstd"]));
        assert!(accepts(&["br;q=1.0, GZIP;q=0.5"]));
        assert!(accepts(&["br", "x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["br, *;q=0.1"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&[""]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0, br"]));
        assert!(!accepts(&["gzip;q=0.000"]));
        assert!(!accepts(&["*, gzip;q=0"]), "named beats the wildcard");
        assert!(
            !accepts(&["gzip;q=lots"]),
            "an unreadable weight is skipped"
        );
        assert!(!accepts(&["identity"]));
    }
}
