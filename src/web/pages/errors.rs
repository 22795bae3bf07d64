//! The error page every HTML error is shown as (also for errors raised outside handlers), and
//! the 404 for unknown paths.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::{PageError, echo};

use std::future::Future;

use super::*;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate {
    layout: Layout,
    status: u16,
    heading: String,
    message: String,
}

tokio::task_local! {
    /// The cart of the visitor whose request is being answered, for the error page's header: it
    /// is made where the request is no longer at hand (an error's rendering, a layer).
    static VISITOR_CART: i64;
}

/// Runs `answer` (a request's whole handling) with the visitor's cart count known to
/// [`error_page`].
pub fn with_visitor_cart<F: Future>(cart_items: i64, answer: F) -> impl Future<Output = F::Output> {
    VISITOR_CART.scope(cart_items, answer)
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
        layout: Layout::bare(
            format!("{heading} · Doorbuster"),
            VISITOR_CART.try_with(|count| *count).unwrap_or(0),
        ),
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

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.log_if_server_error();
        // The page carries `Retry-After` on a 503.
        let mut response = error_page(self.0.status(), &self.0.detail());
        if let Some(failure) = self.0.failure() {
            failure.attach(&mut response);
        }
        response
    }
}
