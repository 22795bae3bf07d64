//! One error type for every handler, rendered two ways: an HTML page for people
//! ([`PageError`]) and `application/problem+json` (RFC 9457) for programs ([`ApiError`]).
//!
//! Each [`AppError`] variant documents its status. A 4xx says what to fix; a 5xx body is generic
//! and the cause is logged once, inside the request's span, where the operator can find it.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::DbError;
use crate::shop::checkout::FieldError;
use crate::shop::order::CheckoutOutcome;
use crate::shop::order::Shortage;

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 2;

/// Most characters of a client's input that an error repeats back.
pub const ECHO_MAX_CHARS: usize = 80;

/// Input as an error may repeat it: the first [`ECHO_MAX_CHARS`] characters, then `…` when there
/// was more. Enough to recognise what was sent; a 60 KB path or value is not sent back whole, which
/// would spend the shop's bandwidth on it and put whatever the sender chose on the shop's page.
pub fn echo(input: &str) -> Cow<'_, str> {
    match input.char_indices().nth(ECHO_MAX_CHARS) {
        None => Cow::Borrowed(input),
        Some((end, _)) => Cow::Owned(format!("{}…", &input[..end])),
    }
}

/// A library's message that quotes input somewhere inside it (serde's "unknown field `…`", a
/// query parser's value): each space-separated word is cut as [`echo`] cuts input, and the whole
/// to a few lines.
pub fn echo_message(message: &str) -> String {
    const MAX_CHARS: usize = 6 * ECHO_MAX_CHARS;
    let words: Vec<Cow<'_, str>> = message.split(' ').map(echo).collect();
    let joined = words.join(" ");
    match joined.char_indices().nth(MAX_CHARS) {
        None => joined,
        Some((end, _)) => format!("{}…", &joined[..end]),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 404: the thing named does not exist. `detail` says what was looked for and where to look.
    #[error("{detail}")]
    NotFound { detail: String },
    /// 400: the request is malformed (bad JSON syntax, bad query string, bad header).
    #[error("{detail}")]
    BadRequest { detail: String },
    /// 403: a form post another site made the browser send (see [`crate::web::origin`]).
    #[error("{detail}")]
    Forbidden { detail: String },
    /// 415: the body is not JSON.
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    /// 413: the body is larger than the configured limit.
    #[error("{detail}")]
    PayloadTooLarge { detail: String },
    /// 422: well-formed but invalid; each field's problem is listed.
    #[error("the request has invalid fields")]
    Invalid { errors: Vec<FieldError> },
    /// 409: not enough stock for these products; nothing was ordered.
    #[error("not enough stock")]
    OutOfStock { shortages: Vec<Shortage> },
    /// 422: an `Idempotency-Key` was reused with a different request body.
    #[error("idempotency key reused for a different request")]
    IdempotencyKeyReused,
    /// 503 with `Retry-After`: the database is unreachable, saturated or cannot write; nothing
    /// was written, and retrying later works.
    #[error("service unavailable: {0}")]
    Unavailable(#[source] DbError),
    /// 503 with `Retry-After`: the database stopped answering after the order's COMMIT was sent,
    /// so order `order_id` may or may not exist. Retrying with the same idempotency key (the
    /// same form) returns it if it exists and places it if not.
    #[error("order outcome unknown: {0}")]
    OutcomeUnknown(#[source] DbError),
    /// 500: a bug. The body says nothing more.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn not_found(detail: impl Into<String>) -> Self {
        AppError::NotFound {
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        AppError::BadRequest {
            detail: detail.into(),
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            errors: vec![FieldError {
                field: field.to_owned(),
                message: message.into(),
            }],
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Invalid { .. } | AppError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::OutOfStock { .. } => StatusCode::CONFLICT,
            AppError::Unavailable(_) | AppError::OutcomeUnknown(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable identifier for the kind of problem (the `type` of the problem document).
    fn slug(&self) -> &'static str {
        match self {
            AppError::NotFound { .. } => "not-found",
            AppError::BadRequest { .. } => "bad-request",
            AppError::Forbidden { .. } => "forbidden",
            AppError::UnsupportedMediaType { .. } => "unsupported-media-type",
            AppError::PayloadTooLarge { .. } => "payload-too-large",
            AppError::Invalid { .. } => "invalid-request",
            AppError::OutOfStock { .. } => "out-of-stock",
            AppError::IdempotencyKeyReused => "idempotency-key-reused",
            AppError::Unavailable(_) => "unavailable",
            AppError::OutcomeUnknown(_) => "outcome-unknown",
            AppError::Internal(_) => "internal",
        }
    }

    /// What the client should do, in one or two sentences. Never includes internals.
    pub fn detail(&self) -> String {
        match self {
            AppError::NotFound { detail }
            | AppError::BadRequest { detail }
            | AppError::Forbidden { detail }
            | AppError::UnsupportedMediaType { detail }
            | AppError::PayloadTooLarge { detail } => detail.clone(),
            AppError::Invalid { errors } => {
                let fields: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                format!("Fix these fields and try again. {}", fields.join(" "))
            }
            AppError::OutOfStock { shortages } => {
                let items: Vec<String> = shortages
                    .iter()
                    .map(|s| format!("{} (wanted {}, {} left)", s.name, s.requested, s.available))
                    .collect();
                format!(
                    "Not enough stock for: {}. Lower those quantities or remove them, then try again.",
                    items.join("; ")
                )
            }
            AppError::IdempotencyKeyReused => "This Idempotency-Key was already used for a \
                different order. Use a new key for a new order, or resend the original body."
                .to_owned(),
            AppError::Unavailable(_) => format!(
                "The shop is busy or its database is unreachable. Try again in {RETRY_AFTER_SECONDS} seconds."
            ),
            AppError::OutcomeUnknown(cause) => {
                let order = match cause {
                    DbError::OutcomeUnknown { order_id, .. } => format!("order {order_id}"),
                    _ => "your order".to_owned(),
                };
                format!(
                    "We could not confirm whether {order} was placed: the database stopped \
                     answering while it was being saved. Send the same checkout again (the same \
                     form, or the same Idempotency-Key header) in {RETRY_AFTER_SECONDS} seconds: \
                     you get that order if it was placed, and it is placed if it was not. Without \
                     an Idempotency-Key, look the order up before ordering again."
                )
            }
            AppError::Internal(_) => {
                "Something went wrong on our side. Try again; if it keeps happening, tell the operator."
                    .to_owned()
            }
        }
    }

    /// What a server-side failure was, for telemetry (the request's exception); `None` for a
    /// client error, which is the client's to fix and no fault of the shop's.
    pub fn failure(&self) -> Option<Failure> {
        let (type_name, message) = match self {
            AppError::Unavailable(cause) | AppError::OutcomeUnknown(cause) => {
                let type_name = match cause {
                    DbError::Unavailable(_) => "DbError::Unavailable",
                    DbError::TimedOut(_) => "DbError::TimedOut",
                    DbError::FileGone(_) => "DbError::FileGone",
                    DbError::OutcomeUnknown { .. } => "DbError::OutcomeUnknown",
                    DbError::Other(_) => "DbError::Other",
                };
                (type_name, cause.to_string())
            }
            AppError::Internal(cause) => ("AppError::Internal", cause.clone()),
            _ => return None,
        };
        Some(Failure::new(type_name, &message))
    }

    /// Logs the cause of a server-side failure. Client errors are not logged: they are the
    /// client's to fix, and logging them would let any client flood the logs.
    pub(crate) fn log_if_server_error(&self) {
        match self {
            AppError::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            AppError::OutcomeUnknown(cause) => {
                tracing::error!(error = %cause, "order outcome unknown")
            }
            AppError::Internal(cause) => tracing::error!(error = %cause, "request failed"),
            _ => {}
        }
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) | DbError::TimedOut(_) | DbError::FileGone(_) => {
                AppError::Unavailable(error)
            }
            DbError::OutcomeUnknown { .. } => AppError::OutcomeUnknown(error),
            DbError::Other(cause) => AppError::Internal(cause.to_string()),
        }
    }
}

impl AppError {
    /// The answer to a checkout that placed no order (an outcome with an order is no error).
    pub fn refused(outcome: CheckoutOutcome) -> AppError {
        match outcome {
            CheckoutOutcome::Invalid(errors) => AppError::Invalid { errors },
            CheckoutOutcome::UnknownProducts(ids) => AppError::Invalid {
                errors: vec![FieldError {
                    field: "items".to_owned(),
                    message: format!(
                        "No product has id {}: take product ids from GET /api/products.",
                        ids.iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }],
            },
            CheckoutOutcome::OutOfStock(shortages) => AppError::OutOfStock { shortages },
            CheckoutOutcome::KeyReused => AppError::IdempotencyKeyReused,
            CheckoutOutcome::Placed { order, .. } | CheckoutOutcome::Replayed(order) => {
                AppError::Internal(format!(
                    "order {} was placed, yet answered as refused",
                    order.id
                ))
            }
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        AppError::Internal(format!("template rendering failed: {error}"))
    }
}

/// Why a request was answered with a 5xx, for telemetry: the failure's type and a message safe to
/// export. Whatever makes the answer puts it in the response's extensions; the request's
/// observation ([`crate::web::observe`]) reads it and records it as the request's exception, so
/// Application Insights shows one exception per failed request, with its cause, and Live Metrics
/// counts it. Made only when a request fails, so the success path pays nothing for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Stable and few (Application Insights groups exceptions by type): `DbError::Unavailable`,
    /// `Shed`, `RequestTimeout`, …
    pub type_name: &'static str,
    /// What happened, with secrets taken out (see [`scrub_secrets`]).
    pub message: String,
}

impl Failure {
    pub fn new(type_name: &'static str, message: &str) -> Failure {
        Failure {
            type_name,
            message: scrub_secrets(message),
        }
    }

    /// Puts it in `response`'s extensions (never sent to the client).
    pub fn attach(self, response: &mut Response) {
        response.extensions_mut().insert(self);
    }
}

/// Most characters of a failure message that telemetry carries.
const FAILURE_MESSAGE_MAX_CHARS: usize = 2_000;

/// `text` with the secrets an error message could carry taken out, cut to a length fit for
/// telemetry: the password of any URL with credentials (`postgres://shop:***@db/…`) and the value
/// of `password=`, `pwd=` and `InstrumentationKey=` pairs (a connection string quoted whole). The
/// shop's own messages name neither, but a driver's may quote what it was given.
pub fn scrub_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(FAILURE_MESSAGE_MAX_CHARS));
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || "\"'`".contains(c)
            })
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split(':').next().unwrap_or_default();
                out.push_str(user);
                if credentials.contains(':') {
                    out.push_str(":***");
                }
                out.push('@');
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    for key in ["password=", "pwd=", "instrumentationkey="] {
        out = redact_values(&out, key);
    }
    match out.char_indices().nth(FAILURE_MESSAGE_MAX_CHARS) {
        None => out,
        Some((end, _)) => format!("{}…", &out[..end]),
    }
}

/// `text` with the value after each (case-insensitive) `key` replaced by `***`.
fn redact_values(text: &str, key: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find(key) {
        let value_start = from + found + key.len();
        out.push_str(&text[from..value_start]);
        let value = &text[value_start..];
        let value_len = match value.chars().next() {
            // A quoted value runs to its closing quote.
            Some(quote @ ('"' | '\'' | '`')) => {
                out.push(quote);
                out.push_str("***");
                out.push(quote);
                value[1..].find(quote).map_or(value.len(), |end| end + 2)
            }
            _ => {
                let len = value
                    .find(|c: char| {
                        c == ';' || c == '&' || c == ',' || c.is_whitespace() || "\"'`".contains(c)
                    })
                    .unwrap_or(value.len());
                if len > 0 {
                    out.push_str("***");
                }
                len
            }
        };
        from = value_start + value_len;
    }
    out.push_str(&text[from..]);
    out
}

/// An RFC 9457 problem document.
// (`default` on the lists only tells the schema they may be absent, as they are when empty.)
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Problem {
    /// `urn:doorbuster:problem:…` for the shop's own problems, `about:blank` otherwise.
    #[serde(rename = "type")]
    #[schemars(url)]
    pub kind: String,
    pub title: String,
    #[schemars(range(min = 400, max = 599))]
    pub status: u16,
    /// What to fix.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub errors: Vec<FieldError>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub shortages: Vec<Shortage>,
}

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

impl Problem {
    /// A problem for a bare status (used for errors raised outside handlers, such as a timeout).
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            shortages: Vec::new(),
        }
    }

    pub fn into_response_with_status(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// An [`AppError`] answered as `application/problem+json`: the error type of API handlers.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        error.log_if_server_error();
        let failure = error.failure();
        let status = error.status();
        let (errors, shortages) = match &error {
            AppError::Invalid { errors } => (errors.clone(), Vec::new()),
            AppError::OutOfStock { shortages } => (Vec::new(), shortages.clone()),
            _ => (Vec::new(), Vec::new()),
        };
        let mut response = Problem {
            kind: format!("urn:doorbuster:problem:{}", error.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: error.detail(),
            errors,
            shortages,
        }
        .into_response_with_status();
        if let Some(failure) = failure {
            failure.attach(&mut response);
        }
        response
    }
}

/// An [`AppError`] answered as an HTML page: the error type of page handlers.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(error: E) -> Self {
        PageError(error.into())
    }
}

impl PageError {
    /// Logs a server-side cause, for a handler that answers the error with a page of its own,
    /// and returns what telemetry is to record of it (to attach to that page).
    pub fn log(&self) -> Option<Failure> {
        self.0.log_if_server_error();
        self.0.failure()
    }
}

// `PageError`'s rendering, the error page, is in `crate::web::pages::errors`: errors know
// nothing of pages.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_failure_messages() {
        assert_eq!(
            scrub_secrets(
                "error connecting to postgres://shop:s3cret@db:5432/doorbuster?sslmode=require: refused"
            ),
            "error connecting to postgres://shop:***@db:5432/doorbuster?sslmode=require: refused"
        );
        assert_eq!(
            scrub_secrets("no password in postgres://shop@db/x or https://host/path"),
            "no password in postgres://shop@db/x or https://host/path"
        );
        assert_eq!(
            scrub_secrets(
                "bad: InstrumentationKey=0000-1111;IngestionEndpoint=https://x/ and Password=hunter2 pwd='p'"
            ),
            "bad: InstrumentationKey=***;IngestionEndpoint=https://x/ and Password=*** pwd='***'"
        );
        assert_eq!(scrub_secrets("password="), "password=");
        let long = "é".repeat(3 * FAILURE_MESSAGE_MAX_CHARS);
        assert_eq!(
            scrub_secrets(&long).chars().count(),
            FAILURE_MESSAGE_MAX_CHARS + 1
        );
    }

    #[test]
    fn only_server_errors_are_failures() {
        let failure = AppError::Unavailable(DbError::TimedOut(std::time::Duration::from_secs(2)))
            .failure()
            .unwrap();
        assert_eq!(failure.type_name, "DbError::TimedOut");
        assert_eq!(failure.message, "the database did not answer within 2s");
        assert_eq!(
            AppError::Internal("boom".into())
                .failure()
                .unwrap()
                .type_name,
            "AppError::Internal"
        );
        assert_eq!(AppError::not_found("x").failure(), None);
        assert_eq!(AppError::IdempotencyKeyReused.failure(), None);
    }

    #[test]
    fn echoes_are_cut_on_a_char_boundary() {
        assert_eq!(echo("short"), "short");
        let exact = "é".repeat(ECHO_MAX_CHARS);
        assert_eq!(echo(&exact), exact);
        let long = "é".repeat(ECHO_MAX_CHARS + 1);
        assert_eq!(echo(&long), format!("{exact}…"));
        let message = format!("unknown field `{}`, expected `name`", "x".repeat(500));
        let cut = echo_message(&message);
        assert!(cut.ends_with("x… expected `name`"), "{cut}");
        assert_eq!(cut.chars().count(), 14 + ECHO_MAX_CHARS + 1 + 16, "{cut}");
        let spaced = "a ".repeat(5_000);
        assert_eq!(
            echo_message(&spaced).chars().count(),
            6 * ECHO_MAX_CHARS + 1
        );
    }
}
