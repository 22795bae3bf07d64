//! Per-request observation: one server span named `{METHOD} {route}` with OpenTelemetry HTTP
//! semantic-convention attributes, continuing the caller's W3C `traceparent`, failed with one
//! exception event when the answer is a 5xx (its cause from the answer's [`Failure`]); the
//! request-duration histogram and in-flight gauge; and the synthetic-traffic tag.
//!
//! Synthetic traffic (the load generator, or any client that says so) is marked with the W3C
//! baggage entry `synthetic=true`; such requests carry `synthetic=true` on their span and metrics so
//! dashboards can split the Black Friday crowd from real shoppers.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument as _;
use tracing::field::{Empty, display};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::error::Failure;
use crate::metrics::{Metrics, RequestAttributes};
use crate::sampling::EXCEPTION_EVENT;

/// The W3C baggage entry that marks synthetic traffic: `baggage: synthetic=true`.
pub const SYNTHETIC_BAGGAGE: (&str, &str) = ("synthetic", "true");

/// Whether the request's `baggage` header carries `synthetic=true`.
pub fn is_synthetic(headers: &HeaderMap) -> bool {
    headers
        .get_all("baggage")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|member| member.split(';').next()?.split_once('='))
        .any(|(key, value)| {
            key.trim() == SYNTHETIC_BAGGAGE.0 && value.trim() == SYNTHETIC_BAGGAGE.1
        })
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// The method as the metrics name it: standard methods by name, others as `_OTHER`.
fn method_name(method: &Method) -> Cow<'static, str> {
    Cow::Borrowed(match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    })
}

/// The request's OpenTelemetry HTTP semantic-convention attributes, for its exported span.
fn http_attributes(request: &Request, attributes: &RequestAttributes) -> Vec<KeyValue> {
    let mut http = vec![
        KeyValue::new("http.request.method", attributes.method.clone()),
        KeyValue::new("http.route", attributes.route.clone()),
        KeyValue::new("url.scheme", "http"),
        KeyValue::new("synthetic", attributes.synthetic),
    ];
    if let Some(agent) = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        http.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    http
}

/// The exception a 5xx answer records: the [`Failure`] whoever made the answer attached, or, for
/// an answer made without one, its status.
fn exception_attributes(response: &Response) -> Vec<KeyValue> {
    let (type_name, message) = match response.extensions().get::<Failure>() {
        Some(failure) => (failure.type_name, failure.message.clone()),
        None => ("ServerError", response.status().to_string()),
    };
    vec![
        KeyValue::new("exception.type", type_name),
        KeyValue::new("exception.message", message),
    ]
}

/// Observes one request served by `serve`: inside the router, where the matched route template
/// is known.
pub async fn observe_request<F, Fut>(metrics: &Metrics, request: Request, serve: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let route: Arc<str> = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| Arc::from("unmatched"), |path| Arc::from(path.as_str()));
    let attributes = RequestAttributes {
        method: method_name(request.method()),
        route,
        synthetic: is_synthetic(request.headers()),
    };
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    let caller = parent.span().span_context().clone();
    let request_tracing = &metrics.request_tracing;
    let traced = request_tracing.traces(&caller);
    let _in_flight = metrics.request_started(&attributes);
    let started_at = SystemTime::now();
    let started = Instant::now();
    // The span is made inside the decision's scope: the exporting layer reads it from there.
    let response = request_tracing
        .serve(traced, async {
            // The console gets the span's name, path and ids (what a log line inside the request
            // needs to be found and joined to its trace); the other HTTP attributes go straight
            // to the OpenTelemetry span below, so the console does not format them for every
            // traced request only to print them on the rare log line.
            let span = tracing::info_span!(
                "request",
                otel.name = format!("{} {}", request.method(), attributes.route),
                otel.kind = "server",
                otel.status_code = Empty,
                url.path = %request.uri().path(),
                trace_id = Empty,
                span_id = Empty,
            );
            // Untraced, and the console does not want request spans either: nothing to fill in.
            // (One `serve(...).await` for both cases, instrumenting with the disabled span,
            // which costs nothing: two would each take room in every request's future.)
            let mut exported = None;
            if !span.is_disabled() {
                // A trace the caller asked for is marked so, to be exported as one request
                // rather than as a random draw standing for many.
                let parent = if caller.is_valid() {
                    crate::sampling::asked_by_caller(parent)
                } else {
                    parent
                };
                let _ = span.set_parent(parent);
                let context = span.context();
                let own = context.span().span_context().clone();
                // Ids for the logs: the OpenTelemetry ones when exported, else the caller's.
                let ids = if own.is_valid() { own } else { caller };
                if ids.is_valid() {
                    // Displayed, not turned into strings first: no allocation, and the
                    // console writes the hex digits as they are, without escaping a string.
                    span.record("trace_id", display(ids.trace_id()));
                    span.record("span_id", display(ids.span_id()));
                }
                if context.span().is_recording() {
                    context
                        .span()
                        .set_attributes(http_attributes(&request, &attributes));
                    exported = Some(context);
                }
            }
            let response = serve(request).instrument(span.clone()).await;
            if let Some(context) = exported {
                let status = response.status();
                context.span().set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                if status.is_server_error() {
                    span.record("otel.status_code", "error");
                    context
                        .span()
                        .add_event(EXCEPTION_EVENT, exception_attributes(&response));
                }
            }
            response
        })
        .await;
    let status = response.status();
    if !traced {
        request_tracing.count_untraced_request(started_at, status.is_server_error());
    }
    metrics.request_finished(
        &attributes,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_one_series() {
        assert_eq!(method_name(&Method::GET), "GET");
        assert_eq!(method_name(&Method::POST), "POST");
        let custom = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_name(&custom), "_OTHER");
    }

    #[test]
    fn synthetic_marker_is_read_from_baggage() {
        let mut headers = HeaderMap::new();
        assert!(!is_synthetic(&headers));
        headers.insert(
            "baggage",
            HeaderValue::from_static("userId=alice, synthetic = true;prop=1"),
        );
        assert!(is_synthetic(&headers));
        headers.insert("baggage", HeaderValue::from_static("synthetic=false"));
        assert!(!is_synthetic(&headers));
    }
}
