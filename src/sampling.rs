//! Which requests are traced: the head-sampling decision, made once per request before any span
//! exists, and the bookkeeping that keeps Live Metrics exact for the requests that are not traced.
//!
//! Building spans, not exporting them, is what tracing costs (docs/TELEMETRY.md, "What it
//! costs"). So a request that will not be exported gets no spans at all: [`UntracedGate`] reads
//! the request's task-local decision and turns its request and database spans off. Application
//! Insights Live Metrics counts requests and dependencies from finished spans, so for those
//! requests this module hands it a bare span record (kind, times, failure) instead, which costs
//! a fraction of a traced span. Metrics are recorded for every request either way.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks, SpanProcessor};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// The name of the span event that Application Insights exports as an exception item, and that
/// Live Metrics counts as an exception (OpenTelemetry's semantic conventions).
pub const EXCEPTION_EVENT: &str = "exception";

/// Where the requests that are not traced are counted: Application Insights' Live Metrics.
pub type LiveMetricsFeed = Arc<dyn SpanProcessor>;

tokio::task_local! {
    /// The decision for the request this task is serving.
    static REQUEST: RequestDecision;
}

#[derive(Clone)]
struct RequestDecision {
    traced: bool,
    /// Set only for requests that are not traced: their dependencies are counted here.
    live_metrics: Option<LiveMetricsFeed>,
}

/// Decides which requests are traced: `ratio` of them, at random, unless the caller's
/// `traceparent` already decided (W3C's sampled flag), so a trace is whole or absent.
#[derive(Clone, Default)]
pub struct RequestTracing {
    /// Requests whose random draw falls below this are traced; `None` traces every request.
    threshold: Option<u64>,
    live_metrics: Option<LiveMetricsFeed>,
}

impl std::fmt::Debug for RequestTracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTracing")
            .field("threshold", &self.threshold)
            .field("live_metrics", &self.live_metrics.is_some())
            .finish()
    }
}

impl RequestTracing {
    /// Traces `ratio` (0 to 1) of the requests; the others are counted in `live_metrics`.
    pub fn new(ratio: f64, live_metrics: Option<LiveMetricsFeed>) -> RequestTracing {
        let ratio = ratio.clamp(0.0, 1.0);
        RequestTracing {
            threshold: (ratio < 1.0).then_some((ratio * u64::MAX as f64) as u64),
            live_metrics,
        }
    }

    /// Whether to trace a request whose incoming trace context is `parent` (invalid if none).
    pub fn traces(&self, parent: &SpanContext) -> bool {
        if parent.is_valid() {
            return parent.is_sampled();
        }
        self.threshold
            .is_none_or(|threshold| rand::random::<u64>() < threshold)
    }

    /// Runs a request's future under its decision, so the spans created while serving it, and
    /// their database calls, know whether they are traced. (Not an `async fn`: that would keep
    /// `request` twice in its state, as argument and inside the scope, and every request's
    /// future would carry and copy both.)
    pub fn serve<F: Future>(&self, traced: bool, request: F) -> impl Future<Output = F::Output> {
        let decision = RequestDecision {
            traced,
            live_metrics: if traced {
                None
            } else {
                self.live_metrics.clone()
            },
        };
        REQUEST.scope(decision, request)
    }

    /// Counts a finished request that was not traced in Live Metrics; a server error counts as a
    /// failed request and as an exception, as a traced one's span does.
    pub fn count_untraced_request(&self, started: SystemTime, server_error: bool) {
        if let Some(live_metrics) = &self.live_metrics {
            let mut span = bare_span(SpanKind::Server, started, server_error);
            if server_error {
                // Live Metrics counts events by name; what the exception was is not its concern.
                span.events.events.push(opentelemetry::trace::Event::new(
                    EXCEPTION_EVENT,
                    span.end_time,
                    Vec::new(),
                    0,
                ));
            }
            live_metrics.on_end(span);
        }
    }
}

/// The W3C trace-state entry that marks a trace its caller asked for (a `traceparent` with the
/// sampled flag) rather than one drawn at random at the export ratio. Such a trace stands for one
/// request, not for `1 / ratio` of them, so it is exported with a sample rate of 100%
/// (`telemetry::SampleRateByOrigin`); children inherit the trace state of their parent, so the
/// mark reaches every span of the trace. Only traces a caller asked for carry it: the others
/// keep an empty trace state, which costs nothing to copy.
pub const ASKED_BY_CALLER: (&str, &str) = ("doorbuster", "caller");

/// `parent`, the caller's context of a request traced because the caller sampled it, with its
/// remote span context marked [`ASKED_BY_CALLER`].
pub fn asked_by_caller(parent: opentelemetry::Context) -> opentelemetry::Context {
    use opentelemetry::trace::TraceContextExt as _;
    let caller = parent.span().span_context().clone();
    let Ok(state) = caller
        .trace_state()
        .insert(ASKED_BY_CALLER.0, ASKED_BY_CALLER.1)
    else {
        return parent;
    };
    parent.with_remote_span_context(SpanContext::new(
        caller.trace_id(),
        caller.span_id(),
        caller.trace_flags(),
        true,
        state,
    ))
}

/// Whether a finished span belongs to a trace its caller asked for (see [`ASKED_BY_CALLER`]).
pub fn is_asked_by_caller(span: &SpanData) -> bool {
    span.span_context.trace_state().get(ASKED_BY_CALLER.0) == Some(ASKED_BY_CALLER.1)
}

/// Runs housekeeping that no request asked for and that would otherwise be traced as start-up
/// work is (every span outside a request is): the catalog refresh, every second on every
/// replica, would send a trace and a dependency to Application Insights each time. It is neither
/// traced nor counted in Live Metrics.
pub fn untraced_housekeeping<F: Future>(work: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(
        RequestDecision {
            traced: false,
            live_metrics: None,
        },
        work,
    )
}

/// Whether spans made now are wanted: inside a request, only if that request is traced; outside
/// any request (start-up work), always.
pub fn span_enabled_for_export() -> bool {
    REQUEST.try_with(|decision| decision.traced).unwrap_or(true)
}

/// The outermost layer of the shop's subscriber: it turns this crate's spans off, for every
/// layer, inside requests that are not traced, so they are never built. (A per-layer filter on
/// the exporting layer alone leaves the span to the registry, whose bookkeeping on every poll is
/// most of the cost.) Log lines inside such requests still print; they carry no trace ids, as
/// there is no trace for them to point to.
#[derive(Debug, Clone, Copy)]
pub struct UntracedGate;

impl UntracedGate {
    fn gated(metadata: &Metadata<'_>) -> bool {
        metadata.is_span() && metadata.target().starts_with("doorbuster")
    }
}

impl<S: Subscriber> Layer<S> for UntracedGate {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::gated(metadata) {
            // Decided per request: ask `enabled` every time.
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        !Self::gated(metadata) || span_enabled_for_export()
    }
}

/// Records how a database call went on its span, for Application Insights: status OK, or an
/// error with the failure's kind as `error.type`, the database's code as
/// `db.response.status_code` and the message as the status description. The exporter turns the
/// status into the dependency's `success` (it sent none while the status was unset, and a failed
/// call looked like any other), and Live Metrics counts the failures. The span is the current one,
/// made by the calling `db` function; this does nothing where there is none to export (a request
/// that is not traced, whose call [`UntracedDependency`] counts instead), or where the calling
/// function's span is filtered out (the current span is then someone else's, such as the
/// request's, and must not take the call's outcome).
pub fn dependency_outcome(failure: Option<&crate::db::DbError>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !span_enabled_for_export() {
        return;
    }
    let span = tracing::Span::current();
    if span
        .metadata()
        .is_none_or(|metadata| metadata.fields().field("db.system.name").is_none())
    {
        return;
    }
    match failure {
        None => span.set_status(Status::Ok),
        Some(error) => {
            span.set_attribute("error.type", error.kind());
            if let Some(code) = error.database_code() {
                span.set_attribute("db.response.status_code", code);
            }
            span.set_status(Status::error(crate::error::scrub_secrets(
                &error.to_string(),
            )));
        }
    }
}

/// Times a database call of a request that is not traced, for Live Metrics' dependency rate.
/// Returns `None`, at the cost of one task-local read, when the request is traced (its database
/// span is counted when it ends) or there is no Live Metrics.
pub fn untraced_dependency() -> Option<UntracedDependency> {
    REQUEST
        .try_with(|decision| decision.live_metrics.clone())
        .ok()
        .flatten()
        .map(|live_metrics| UntracedDependency {
            live_metrics,
            started: SystemTime::now(),
        })
}

/// A database call under way in a request that is not traced; see [`untraced_dependency`].
#[derive(Debug)]
pub struct UntracedDependency {
    live_metrics: LiveMetricsFeed,
    started: SystemTime,
}

impl UntracedDependency {
    pub fn finish(self, failed: bool) {
        self.live_metrics
            .on_end(bare_span(SpanKind::Client, self.started, failed));
    }
}

/// What Live Metrics reads from a span: its kind, duration and failure, and nothing else.
fn bare_span(kind: SpanKind, started: SystemTime, failed: bool) -> SpanData {
    let status = if failed {
        Status::error("")
    } else {
        Status::Unset
    };
    live_record(
        kind,
        started,
        SystemTime::now(),
        status,
        SpanEvents::default(),
    )
}

/// The part of a traced span Live Metrics reads: kind, times, status, and the events it counts
/// exceptions in. Handing it this instead of a clone of the whole span saves a traced request the
/// copy of every attribute (see `telemetry::ExportAndCount`).
pub fn live_metrics_record(span: &SpanData) -> SpanData {
    live_record(
        span.span_kind.clone(),
        span.start_time,
        span.end_time,
        span.status.clone(),
        span.events.clone(),
    )
}

fn live_record(
    kind: SpanKind,
    start_time: SystemTime,
    end_time: SystemTime,
    status: Status,
    events: SpanEvents,
) -> SpanData {
    SpanData {
        span_context: SpanContext::empty_context(),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: kind,
        name: Cow::Borrowed("untraced"),
        start_time,
        end_time,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry::trace::{TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn about_the_ratio_of_requests_is_traced_and_the_caller_decides_first() {
        let tenth = RequestTracing::new(0.1, None);
        let none = SpanContext::empty_context();
        let traced = (0..10_000).filter(|_| tenth.traces(&none)).count();
        assert!((800..=1200).contains(&traced), "{traced}");
        assert!((0..100).all(|_| RequestTracing::new(1.0, None).traces(&none)));
        assert!((0..100).all(|_| !RequestTracing::new(0.0, None).traces(&none)));

        let caller = |flags| {
            SpanContext::new(
                TraceId::from(7),
                SpanId::from(9),
                flags,
                true,
                TraceState::default(),
            )
        };
        assert!(RequestTracing::new(0.0, None).traces(&caller(TraceFlags::SAMPLED)));
        assert!(!RequestTracing::new(1.0, None).traces(&caller(TraceFlags::default())));
    }

    #[tokio::test]
    async fn the_gate_builds_no_spans_for_untraced_requests() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
            .with(UntracedGate);
        let _guard = tracing::subscriber::set_default(subscriber);
        let tracing = RequestTracing::new(0.5, None);
        let made = |traced| {
            tracing.serve(traced, async {
                !tracing::info_span!("request").is_disabled()
            })
        };
        assert!(made(true).await, "a traced request has its span");
        assert!(!made(false).await, "an untraced one has none");
        assert!(
            !tracing::info_span!("start-up").is_disabled(),
            "outside requests, spans are made"
        );
    }

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<(SpanKind, bool)>>);

    impl SpanProcessor for Recorder {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
        fn on_end(&self, span: SpanData) {
            let failed = matches!(span.status, Status::Error { .. });
            self.0.lock().unwrap().push((span.span_kind, failed));
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(
            &self,
            _: std::time::Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }

    #[tokio::test]
    async fn untraced_requests_and_their_database_calls_reach_live_metrics() {
        let recorder = Arc::new(Recorder::default());
        let tracing = RequestTracing::new(0.5, Some(recorder.clone()));
        assert!(span_enabled_for_export(), "outside a request");
        assert!(untraced_dependency().is_none(), "outside a request");

        tracing
            .serve(true, async {
                assert!(span_enabled_for_export());
                assert!(
                    untraced_dependency().is_none(),
                    "a traced request's span counts"
                );
            })
            .await;
        tracing
            .serve(false, async {
                assert!(!span_enabled_for_export());
                untraced_dependency().unwrap().finish(true);
            })
            .await;
        tracing.count_untraced_request(SystemTime::now(), false);
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [(SpanKind::Client, true), (SpanKind::Server, false)]
        );
    }
}
