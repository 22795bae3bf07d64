//! The HTTP surface: one route table and one deliberately ordered stack of layers.
//!
//! The table mounts its routes in groups, and each group says what its routes are ([`Mount`]):
//! pages or API (so errors are an HTML page or problem+json, whatever the URL looks like) and
//! which load-target costs apply. Nothing downstream guesses either from the path.
//!
//! Probes sit outside the stack (no timeout, no compression, no tracing noise), so a saturated or
//! draining shop still answers its orchestrator; a one-line layer gives them the security headers.
//! Everything else passes through three layers: [`around_request`], which does in order what
//! every request needs (request span and metrics ([`observe`]) → reading the body whole, within
//! the body-read timeout, before the request counts as in flight → load shedding → timeout → the
//! load-target costs ([`crate::load`]) → panic catcher, then on the way out error bodies for bare
//! statuses, security headers on every response, errors included, and `Connection: close` while
//! draining); compression for clients that accept it ([`compress`]); and the body limit. Each
//! layer costs every request a clone of the inner stack and a boxed future, which is why the
//! per-request work shares one.

pub mod api;
pub mod art;
pub mod assets;
pub mod compress;
pub mod confirmation;
pub mod control;
pub mod extract;
pub mod health;
pub mod observe;
pub mod origin;
pub mod page_cache;
pub mod pages;
pub mod state;

use std::panic::AssertUnwindSafe;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{FutureExt as _, StreamExt as _};
use tower::ServiceBuilder;

use crate::config::WebConfig;
use crate::error::{Failure, Problem};
use crate::load::RouteGroup;
use crate::web::state::AppState;
use health::Health;

/// The Content-Security-Policy every page satisfies: nothing leaves the site, no inline script
/// or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self'; style-src 'self'; \
     script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// What a group of routes is, said where the route table mounts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Whether errors are answered as problem+json (the API) rather than an HTML page.
    pub api: bool,
    /// The load-target knobs that apply, if any ([`crate::load`]).
    pub costs: Option<RouteGroup>,
}

impl Mount {
    pub const PAGES: Mount = Mount {
        api: false,
        costs: Some(RouteGroup::Pages),
    };
    /// The stylesheet, script and art: exempt from the costs (they are the page's, not extra
    /// requests).
    pub const ASSETS: Mount = Mount {
        api: false,
        costs: None,
    };
    pub const FORM_CHECKOUT: Mount = Mount {
        api: false,
        costs: Some(RouteGroup::Checkout),
    };
    pub const API: Mount = Mount {
        api: true,
        costs: Some(RouteGroup::Api),
    };
    pub const API_CHECKOUT: Mount = Mount {
        api: true,
        costs: Some(RouteGroup::Checkout),
    };
}

/// Builds the whole application.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    // Layers on a router apply to each of its routes (after routing), so each group gets the same
    // stack told what the group is, at no cost per request.
    let mount = |group: Router<AppState>, mount: Mount| {
        group.layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(
                    (state.clone(), mount),
                    around_request,
                ))
                .layer(compress::CompressWhenAcceptedLayer)
                .layer(DefaultBodyLimit::max(config.max_body_bytes)),
        )
    };
    let pages = Router::new()
        .route("/", get(pages::home))
        .route("/c/{category}", get(pages::category))
        .route("/p/{slug}", get(pages::product))
        .route("/cart", get(pages::cart))
        .route("/cart/add", post(pages::cart_add))
        .route("/cart/update", post(pages::cart_update))
        .route("/checkout", get(pages::checkout_form))
        .route("/orders/{id}", get(confirmation::order))
        .fallback(pages::not_found);
    let form_checkout = Router::new().route("/checkout", post(pages::checkout_submit));
    let assets = Router::new()
        .route("/static/{file}", get(assets::static_file))
        .route("/art/product/{file}", get(assets::product_art))
        .route("/art/category/{file}", get(assets::category_art));
    let api = api::routes();
    // `/checkout` is in two groups; the one merged last answers its other methods (405).
    let shop = Router::new()
        .merge(mount(form_checkout, Mount::FORM_CHECKOUT))
        .merge(mount(pages, Mount::PAGES))
        .merge(mount(assets, Mount::ASSETS))
        .merge(mount(api.checkout, Mount::API_CHECKOUT))
        .merge(mount(api.rest, Mount::API));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Only the security headers: probes stay out of the traced and timed stack.
        .layer(middleware::map_response(secure_probe))
        .merge(shop)
        .with_state(state)
}

/// The admin listener's routes: metrics for Prometheus and the runtime control API, on a port the
/// public Service does not expose.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .merge(control::routes())
        .with_state(state)
}

/// Everything the shop does around a request, in this order, in one layer: observe it (span,
/// metrics), read its body, shed it when over the in-flight bound, bound its time, apply the
/// load-target costs, catch a panicking handler, then finish the response (error body, security
/// headers, draining).
/// One layer rather than one per step because each layer costs every request a clone of the
/// inner stack and a boxed future: with six of them that was a third of serving a cached page.
async fn around_request(
    State((state, mount)): State<(AppState, Mount)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    // Cheap (the path shares the request's buffer); only read when an error body is needed.
    let uri = request.uri().clone();
    // An error page, wherever it is made, shows the visitor's real cart.
    let cart = extract::cart_item_count(request.headers());
    pages::with_visitor_cart(cart, async move {
        let response = observe::observe_request(&state.metrics, request, |request| {
            admit_and_serve(&state, mount, request, next)
        })
        .await;
        finish_response(&state.health, mount, &method, uri.path(), response)
    })
    .await
}

/// Reads the body, then sheds, times and serves one request; a slow or oversized body, a panic
/// or a timeout becomes a bare status that [`finish_response`] fills in.
async fn admit_and_serve(state: &AppState, mount: Mount, request: Request, next: Next) -> Response {
    // The body is read whole before the request takes an in-flight slot: a client dribbling its
    // body would otherwise hold a slot for the whole request timeout, and a crowd of them would
    // get everyone else shed. Requests without a body (every page view) skip this at the cost of
    // one check.
    let request = if request.body().is_end_stream() {
        request
    } else {
        match read_body(&state.config, request).await {
            Ok(request) => request,
            Err(status) => return status.into_response(),
        }
    };
    // Overload protection: beyond the in-flight bound, answer 503 with `Retry-After` at once
    // rather than queue (a queue only turns overload into timeouts). Probes never get here.
    let Some(_permit) = state.controls.try_admit() else {
        state.metrics.requests_shed.add(1, &[]);
        let detail = "The shop is at capacity right now. Try again in a second.";
        let mut response = error_body(mount, StatusCode::SERVICE_UNAVAILABLE, detail);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Failure::new(
            "Shed",
            &format!(
                "{} requests were in flight already, the most this pod takes",
                state.controls.max_in_flight()
            ),
        )
        .attach(&mut response);
        return response;
    };
    let served = AssertUnwindSafe(apply_costs(state, mount, request, next)).catch_unwind();
    let (mut response, failure) =
        match tokio::time::timeout(state.config.request_timeout, served).await {
            Ok(Ok(response)) => return response,
            Ok(Err(_panic)) => {
                tracing::error!("a handler panicked");
                (
                    StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    Failure::new("Panic", "a handler panicked"),
                )
            }
            Err(_elapsed) => (
                StatusCode::SERVICE_UNAVAILABLE.into_response(),
                Failure::new(
                    "RequestTimeout",
                    &format!(
                        "the request was not answered within DOORBUSTER_REQUEST_TIMEOUT ({:?})",
                        state.config.request_timeout
                    ),
                ),
            ),
        };
    failure.attach(&mut response);
    response
}

/// The request with its body read whole, within the body-read timeout and the size limit:
/// otherwise 408, 413, or 400 for a body that broke off.
async fn read_body(config: &WebConfig, request: Request) -> Result<Request, StatusCode> {
    let limit = config.max_body_bytes;
    let (parts, body) = request.into_parts();
    let declared = body.size_hint().exact();
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let read = async {
        let mut chunks = body.into_data_stream();
        // Most bodies arrive in one chunk, which is kept as it is; only more are copied together.
        let mut first: Option<Bytes> = None;
        let mut joined: Vec<u8> = Vec::new();
        let mut length = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
            length += chunk.len();
            if length > limit {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            if first.is_none() && joined.is_empty() {
                first = Some(chunk);
                continue;
            }
            if let Some(first) = first.take() {
                joined.extend_from_slice(&first);
            }
            joined.extend_from_slice(&chunk);
        }
        Ok(first.unwrap_or_else(|| Bytes::from(joined)))
    };
    match tokio::time::timeout(config.body_read_timeout, read).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Ok(Err(status)) => Err(status),
        Err(_elapsed) => Err(StatusCode::REQUEST_TIMEOUT),
    }
}

/// The load-target knobs for the request's route group: added latency, CPU work, injected faults.
async fn apply_costs(state: &AppState, mount: Mount, request: Request, next: Next) -> Response {
    let Some(group) = mount.costs else {
        return next.run(request).await;
    };
    let cost = *state.controls.knobs().cost(group);
    let delay = state.controls.latency(&cost);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if cost.cpu_ms > 0.0 {
        state
            .controls
            .burn(Duration::from_secs_f64(cost.cpu_ms / 1000.0))
            .await;
    }
    if let Some(fault) = state.controls.fault(&cost) {
        let status = match fault {
            crate::load::Fault::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            crate::load::Fault::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let detail = "Injected fault (DOORBUSTER_ERROR_RATE): the operator asked for a share of \
                      requests to fail. Try again.";
        let mut response = error_body(mount, status, detail);
        response
            .headers_mut()
            .insert("x-doorbuster-fault", HeaderValue::from_static("injected"));
        Failure::new(
            "InjectedFault",
            "injected by DOORBUSTER_ERROR_RATE (the operator's share of failing requests)",
        )
        .attach(&mut response);
        return response;
    }
    next.run(request).await
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.prometheus_text(),
    )
}

/// The security headers every response carries, errors included.
static SECURITY_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    HeaderMap::from_iter([
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ])
});

/// The probes' only layer: the security headers (the probes skip [`around_request`], which adds
/// them to everything else).
async fn secure_probe(mut response: Response) -> Response {
    response.headers_mut().extend(SECURITY_HEADERS.clone());
    response
}

/// A header map that already holds the security headers, plus `extra`. Responses built on it
/// (the pages) skip [`finish_response`]'s inserts: cloning a ready map is one copy, where adding
/// the set is a hash and a probe per header, a tenth of serving a cached page.
pub(crate) fn secured_headers(
    extra: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) -> HeaderMap {
    let mut headers = SECURITY_HEADERS.clone();
    headers.extend(extra);
    headers
}

/// Run once per response: an error body for a bare error status, the security headers, and
/// `Connection: close` while draining (so keep-alive clients reconnect to a replica that is
/// staying up).
fn finish_response(
    health: &Health,
    mount: Mount,
    method: &axum::http::Method,
    path: &str,
    mut response: Response,
) -> Response {
    if response.status().as_u16() >= 400 && !response.headers().contains_key(header::CONTENT_TYPE) {
        response = fill_error_body(mount, response.status(), method, path);
    }
    let headers = response.headers_mut();
    // The set comes whole: a response with the policy was built on `secured_headers`.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        // One growth of the map for all of them, rather than one per insert.
        headers.reserve(SECURITY_HEADERS.len() + 1);
        for (name, value) in SECURITY_HEADERS.iter() {
            headers.entry(name).or_insert_with(|| value.clone());
        }
    }
    if health.is_draining() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// An error answered outside a handler, in the format of the routes it reached: problem+json for
/// the API, an HTML page for the rest. Both renderings add `Retry-After` to a 503.
fn error_body(mount: Mount, status: StatusCode, detail: &str) -> Response {
    if mount.api {
        Problem::for_status(status, detail).into_response_with_status()
    } else {
        pages::error_page(status, detail)
    }
}

/// Layers and the router answer some errors with a bare status (405, 408, 413, a timeout's 503,
/// a caught panic's 500). Give those the same bodies handlers give ([`error_body`]).
fn fill_error_body(
    mount: Mount,
    status: StatusCode,
    method: &axum::http::Method,
    path: &str,
) -> Response {
    let detail = match status {
        // The router adds the `Allow` header after this middleware has run.
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{method} is not supported at {}; the Allow header lists the methods that are.",
            crate::error::echo(path)
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            "The request body is too large; send a smaller one.".to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => {
            "The request body arrived too slowly. Send the request again, body and all at once."
                .to_owned()
        }
        StatusCode::SERVICE_UNAVAILABLE => format!(
            "The shop took too long to answer. Try again in {} seconds.",
            crate::error::RETRY_AFTER_SECONDS
        ),
        StatusCode::INTERNAL_SERVER_ERROR => {
            "Something went wrong on our side. Try again; if it keeps happening, tell the operator."
                .to_owned()
        }
        _ => status.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let mut filled = error_body(mount, status, &detail);
    if status == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still arrive: this connection cannot carry another request.
        filled
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    filled
}

/// `Cache-Control` for responses that must not be stored (pages show a per-visitor cart).
pub const NO_STORE: &str = "no-store";

/// Long-lived caching for content-addressed assets.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Art changes only with a new release; a day of caching keeps repeat views free.
pub const ONE_DAY: Duration = Duration::from_secs(86_400);
