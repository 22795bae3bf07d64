//! Telemetry setup: logs, traces and metrics, configured once at start and flushed at shutdown.
//!
//! - Logs: readable text in a terminal, JSON lines for collectors (`LOG_FORMAT=json`), level from
//!   `RUST_LOG`. Inside a traced request, JSON lines carry the request span's `trace_id` and
//!   `span_id`; without an exporter, only requests whose caller sent a sampled `traceparent` are.
//! - Traces: `tracing` spans bridged to OpenTelemetry, exported to Application Insights (with Live
//!   Metrics) when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set and over OTLP/HTTP when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The exporting layer has its own filter, so a quiet
//!   `RUST_LOG=warn` does not silence request spans.
//! - Metrics: [`crate::metrics`], with periodic exporters to the same two destinations.
//!
//! Exporters run on background tasks with bounded queues: an unreachable endpoint costs dropped
//! telemetry, never slower requests. [`Telemetry::shutdown`] flushes within a deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::HttpClient;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter, SpanProcessor};
use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogFormat, TelemetryArgs};
use crate::metrics::{MetricReaderBox, Metrics};
use crate::sampling::{self, LiveMetricsFeed, RequestTracing, UntracedGate};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Installs logging only (for `migrate` and `loadgen`, which export nothing).
pub fn init_logging(format: LogFormat) {
    let subscriber = Registry::default().with(log_layer(format));
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("logging was already set up");
    }
}

fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match format {
        // Colours only for a person at a terminal; a pod's log collector would store the escapes.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    }
}

/// The running telemetry pipeline. Keep it alive for the life of the server, then call
/// [`Telemetry::shutdown`].
#[derive(Debug)]
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    tracer_provider: Option<SdkTracerProvider>,
}

/// One line per exporter for the start-up log, with secrets left out.
#[derive(Debug, Default)]
pub struct ExporterReport {
    pub lines: Vec<String>,
}

/// What the connection string says, minus the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStringSummary {
    pub ingestion_endpoint: String,
    pub live_endpoint: String,
}

/// Checks an Application Insights connection string and extracts the endpoints for the log.
/// Instrumentation keys alone are no longer accepted by Azure: a connection string is required.
pub fn parse_connection_string(value: &str) -> Result<ConnectionStringSummary, String> {
    let mut key = None;
    let mut ingestion = None;
    let mut live = None;
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, field)) = part.split_once('=') else {
            return Err(format!(
                "'{}…' is not a Name=value pair",
                part.chars().take(12).collect::<String>()
            ));
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "instrumentationkey" => key = Some(field.trim()),
            "ingestionendpoint" => ingestion = Some(field.trim().trim_end_matches('/').to_owned()),
            "liveendpoint" => live = Some(field.trim().trim_end_matches('/').to_owned()),
            _ => {}
        }
    }
    if key.is_none_or(str::is_empty) {
        return Err(
            "it has no InstrumentationKey (copy the whole connection string from the \
                    Application Insights resource's Overview page)"
                .to_owned(),
        );
    }
    Ok(ConnectionStringSummary {
        ingestion_endpoint: ingestion
            .unwrap_or_else(|| "https://dc.services.visualstudio.com".to_owned()),
        live_endpoint: live.unwrap_or_else(|| "https://rt.services.visualstudio.com".to_owned()),
    })
}

/// The OpenTelemetry resource: who is reporting. `service.instance.id` and `host.name` are the
/// pod name so Application Insights shows one role instance (and one Live Metrics server) per pod.
pub fn resource(args: &TelemetryArgs) -> Resource {
    let instance = args.instance();
    let mut attributes = vec![
        KeyValue::new("service.name", args.otel_service_name.clone()),
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance.clone()),
        KeyValue::new("host.name", instance.clone()),
        KeyValue::new("k8s.pod.name", instance),
    ];
    if let Some(node) = args.node_name.as_ref().filter(|n| !n.is_empty()) {
        attributes.push(KeyValue::new("k8s.node.name", node.clone()));
    }
    Resource::builder_empty()
        .with_attributes(attributes)
        .build()
}

impl Telemetry {
    /// Builds the exporters the arguments switch on and a subscriber that feeds them. The
    /// caller installs the subscriber (globally in `serve`, per test in tests). Must be called
    /// inside a Tokio runtime (exporters run as tasks on it).
    pub fn build<C>(
        args: &TelemetryArgs,
        format: LogFormat,
        client: C,
    ) -> Result<(Telemetry, Box<dyn Subscriber + Send + Sync>, ExporterReport), BoxError>
    where
        C: HttpClient + Clone + 'static,
    {
        Self::build_with_cgroup_root(args, format, client, Path::new("/"))
    }

    /// [`Telemetry::build`] with the container's CPU limit read from the cgroup files under
    /// `root` rather than `/` (see [`crate::cgroup`]): for tests.
    pub fn build_with_cgroup_root<C>(
        args: &TelemetryArgs,
        format: LogFormat,
        client: C,
        root: &Path,
    ) -> Result<(Telemetry, Box<dyn Subscriber + Send + Sync>, ExporterReport), BoxError>
    where
        C: HttpClient + Clone + 'static,
    {
        let resource = resource(args);
        let mut report = ExporterReport::default();
        let ratio = args.trace_export_ratio.clamp(0.0, 1.0);
        let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone());
        let mut live_metrics: Option<LiveMetricsFeed> = None;
        let mut readers: Vec<Box<dyn MetricReaderBox>> = Vec::new();
        let mut tracing_on = false;
        let interval = Duration::from_millis(args.otel_metric_export_interval.max(1_000));

        match args
            .applicationinsights_connection_string
            .as_deref()
            .map(str::trim)
        {
            Some(connection_string) if !connection_string.is_empty() => {
                let summary = parse_connection_string(connection_string).map_err(|reason| {
                    format!("APPLICATIONINSIGHTS_CONNECTION_STRING is malformed: {reason}")
                })?;
                let exporter =
                    opentelemetry_application_insights::Exporter::new_from_connection_string(
                        connection_string,
                        CpuAgainstLimit {
                            client: client.clone(),
                            cgroup_root: root.into(),
                        },
                    )
                    .map_err(|error| {
                        format!("APPLICATIONINSIGHTS_CONNECTION_STRING is malformed: {error}")
                    })?
                    .with_resource_attributes_in_events_and_logs(false)
                    .with_sample_rate(ratio);
                let mut processor =
                    opentelemetry_application_insights::LiveMetricsSpanProcessor::new(
                        exporter.clone(),
                        Tokio,
                    );
                opentelemetry_sdk::trace::SpanProcessor::set_resource(&mut processor, &resource);
                let feed: LiveMetricsFeed = Arc::new(processor);
                let spans = SampleRateByOrigin {
                    random: exporter.clone(),
                    asked: exporter.clone().with_sample_rate(1.0),
                };
                tracer_builder = tracer_builder.with_span_processor(ExportAndCount {
                    export: BatchSpanProcessor::builder(spans, Tokio).build(),
                    live_metrics: feed.clone(),
                });
                live_metrics = Some(feed);
                readers.push(Box::new(
                    PeriodicReader::builder(exporter, Tokio)
                        .with_interval(interval)
                        .build(),
                ));
                tracing_on = true;
                report.lines.push(format!(
                    "Application Insights: on (ingestion {}, Live Metrics {}, role {}, instance {}, traces exported {:.0}%)",
                    summary.ingestion_endpoint,
                    summary.live_endpoint,
                    args.otel_service_name,
                    args.instance(),
                    ratio * 100.0
                ));
            }
            _ => report.lines.push(
                "Application Insights: off (set APPLICATIONINSIGHTS_CONNECTION_STRING)".to_owned(),
            ),
        }

        match args.otel_exporter_otlp_endpoint.as_deref().map(str::trim) {
            Some(endpoint) if !endpoint.is_empty() => {
                use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
                let base = endpoint.trim_end_matches('/');
                let spans = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client.clone())
                    .with_endpoint(format!("{base}/v1/traces"))
                    .build()
                    .map_err(|error| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {error}"))?;
                let metrics = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(client.clone())
                    .with_endpoint(format!("{base}/v1/metrics"))
                    .build()
                    .map_err(|error| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {error}"))?;
                tracer_builder = tracer_builder
                    .with_span_processor(BatchSpanProcessor::builder(spans, Tokio).build());
                readers.push(Box::new(
                    PeriodicReader::builder(metrics, Tokio)
                        .with_interval(interval)
                        .build(),
                ));
                tracing_on = true;
                report
                    .lines
                    .push(format!("OTLP: on (traces and metrics to {base})"));
            }
            _ => report
                .lines
                .push("OTLP: off (set OTEL_EXPORTER_OTLP_ENDPOINT)".to_owned()),
        }

        // Without an exporter a request span only decorates the console's log lines, yet building
        // it is a fifth of what serving a cached page costs (docs/BENCHMARKS.md). So only requests
        // whose caller sampled them get one, to keep their logs joined to the caller's trace.
        let traced_share = if tracing_on { ratio } else { 0.0 };
        let metrics = Metrics::with_readers(
            resource,
            readers,
            RequestTracing::new(traced_share, live_metrics),
        );
        let tracer_provider = tracing_on.then(|| tracer_builder.build());
        let otel_layer = tracer_provider.as_ref().map(|provider| {
            // Its own filter: request and database spans from this crate, warnings from others,
            // whatever RUST_LOG says about the console.
            let filter = Targets::new()
                .with_target("doorbuster", LevelFilter::INFO)
                .with_default(LevelFilter::WARN);
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("doorbuster"))
                .with_error_events_to_exceptions(true)
                .with_error_events_to_status(false)
                // Per-span bookkeeping nobody reads in Application Insights: skipping it keeps the
                // cost of a traced request down (see docs/TELEMETRY.md, "What it costs").
                .with_tracked_inactivity(false)
                // Nothing here reads OpenTelemetry's own current context (parents come from the
                // tracing span tree), so skip attaching it on every poll of every span.
                .with_context_activation(false)
                .with_threads(false)
                .with_location(false)
                .with_target(false)
                .with_level(false)
                .with_filter(filter)
        });
        // Requests that are not traced build no spans (see crate::sampling).
        let subscriber = Registry::default()
            .with(log_layer(format))
            .with(otel_layer)
            .with(UntracedGate);
        Ok((
            Telemetry {
                metrics,
                tracer_provider,
            },
            Box::new(subscriber),
            report,
        ))
    }

    /// Builds telemetry for `serve` with an HTTP client that honours `SSL_CERT_FILE`,
    /// `HTTPS_PROXY` and `NO_PROXY`, installs it globally and logs one line per exporter.
    pub fn install(args: &TelemetryArgs, format: LogFormat) -> Result<Telemetry, BoxError> {
        let client = crate::tls::client_builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| format!("cannot build the telemetry HTTP client: {error}"))?;
        let (telemetry, subscriber, report) = Telemetry::build(args, format, client)?;
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|error| format!("cannot install the logger: {error}"))?;
        for line in &report.lines {
            tracing::info!("telemetry: {line}");
        }
        Ok(telemetry)
    }

    /// Flushes spans and metrics, giving up after `within` so a dead endpoint cannot hold the
    /// shutdown (an unreachable ingestion endpoint otherwise keeps the exporter retrying).
    pub async fn shutdown(self, within: Duration) {
        let Telemetry {
            metrics,
            tracer_provider,
        } = self;
        // Provider shutdown blocks on the exporter tasks, which run on this runtime: do it on a
        // blocking thread so the runtime keeps driving them.
        let flush = tokio::task::spawn_blocking(move || {
            if let Some(provider) = tracer_provider
                && let Err(error) = provider.shutdown_with_timeout(within)
            {
                tracing::warn!(%error, "trace exporters did not shut down cleanly");
            }
            metrics.shutdown_blocking(within);
        });
        if tokio::time::timeout(within + Duration::from_secs(1), flush)
            .await
            .is_err()
        {
            tracing::warn!(
                ?within,
                "telemetry flush timed out; some telemetry was dropped"
            );
        }
    }
}

/// The name under which Live Metrics carries the CPU figure.
const LIVE_METRICS_CPU: &str = "\\Processor(_Total)\\% Processor Time";

/// The Application Insights exporter's HTTP client, with Live Metrics' CPU figure reported against
/// the container's CPU limit. The exporter sends the process's CPU use as a percentage of one
/// core, so a pod pegged at a 500m limit showed 50%; divided by the limit in cores (read from the
/// cgroup at each post, about once a second: a pod can be resized in place), that pod shows 100%,
/// as a viewer expects of "CPU". Without a limit the figure stays a percentage of one core. Only
/// Live Metrics posts are touched, and only this one figure. (Done here rather than in the
/// patched exporter, vendor/README.md: it is how the shop reads the figure, not a bug there.)
#[derive(Clone, Debug)]
struct CpuAgainstLimit<C> {
    client: C,
    cgroup_root: Arc<Path>,
}

#[async_trait::async_trait]
impl<C: HttpClient> HttpClient for CpuAgainstLimit<C> {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<Bytes>,
    ) -> Result<opentelemetry_http::Response<Bytes>, opentelemetry_http::HttpError> {
        let request = if request
            .uri()
            .path()
            .ends_with("/QuickPulseService.svc/post")
            && let Some(cores) = crate::cgroup::cpu_limit_cores(&self.cgroup_root)
        {
            let (parts, body) = request.into_parts();
            let body = cpu_against_limit(&body, cores).map_or(body, Bytes::from);
            opentelemetry_http::Request::from_parts(parts, body)
        } else {
            request
        };
        self.client.send_bytes(request).await
    }
}

/// A Live Metrics post (a gzipped JSON array of envelopes) with its CPU figure divided by
/// `cores`, or `None` if the body is not one.
fn cpu_against_limit(body: &[u8], cores: f64) -> Option<Vec<u8>> {
    use std::io::{Read as _, Write as _};
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut json)
        .ok()?;
    let mut envelopes: serde_json::Value = serde_json::from_slice(&json).ok()?;
    for envelope in envelopes.as_array_mut()? {
        let metrics = envelope
            .get_mut("Metrics")
            .and_then(serde_json::Value::as_array_mut);
        for metric in metrics.into_iter().flatten() {
            if metric["Name"] == LIVE_METRICS_CPU
                && let Some(value) = metric["Value"].as_f64()
            {
                metric["Value"] = serde_json::json!(value / cores);
            }
        }
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&serde_json::to_vec(&envelopes).ok()?).ok()?;
    gzip.finish().ok()
}

/// Exports spans to Application Insights with the sample rate that says how many requests each
/// stands for: the export ratio for traces drawn at random (each stands for `1 / ratio`), 100%
/// for traces a caller asked for with its sampled `traceparent`, which stand for themselves
/// ([`sampling::ASKED_BY_CALLER`]). Application Insights' `itemCount` is `100 / sample rate`, and
/// `sum(itemCount)` counted each forced trace ten times at ratio 0.1 when one rate served both.
/// (The exporter takes one rate; two copies of it, one per rate, split each batch.)
#[derive(Debug)]
struct SampleRateByOrigin<C> {
    random: opentelemetry_application_insights::Exporter<C>,
    asked: opentelemetry_application_insights::Exporter<C>,
}

impl<C: HttpClient + 'static> SpanExporter for SampleRateByOrigin<C> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let (asked, random): (Vec<SpanData>, Vec<SpanData>) =
            batch.into_iter().partition(sampling::is_asked_by_caller);
        let random = async {
            if random.is_empty() {
                Ok(())
            } else {
                self.random.export(random).await
            }
        };
        let asked = async {
            if asked.is_empty() {
                Ok(())
            } else {
                self.asked.export(asked).await
            }
        };
        let (random, asked) = futures_util::join!(random, asked);
        random.and(asked)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.random.set_resource(resource);
        self.asked.set_resource(resource);
    }
}

/// Hands each finished span to the exporter whole and to Live Metrics as the few fields it
/// reads ([`sampling::live_metrics_record`]). As two processors, the SDK would clone every span's
/// data, attributes and all, for the first of them: about a tenth of what a traced request costs.
/// Live Metrics is shared with [`RequestTracing`], which feeds it the requests that are not
/// traced; its resource is set before it is shared.
#[derive(Debug)]
struct ExportAndCount {
    export: BatchSpanProcessor<Tokio>,
    live_metrics: LiveMetricsFeed,
}

impl SpanProcessor for ExportAndCount {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.export.on_start(span, cx);
        self.live_metrics.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.live_metrics
            .on_end(sampling::live_metrics_record(&span));
        self.export.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        let export = self.export.force_flush();
        self.live_metrics.force_flush().and(export)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let export = self.export.shutdown_with_timeout(timeout);
        self.live_metrics.shutdown_with_timeout(timeout).and(export)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.export.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_metrics_cpu_is_divided_by_the_limit() {
        use std::io::{Read as _, Write as _};
        let post = serde_json::json!([{
            "Instance": "pod",
            "Metrics": [
                {"Name": LIVE_METRICS_CPU, "Value": 50.0, "Weight": 1},
                {"Name": "\\ApplicationInsights\\Requests/Sec", "Value": 7.0, "Weight": 1},
            ],
        }]);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(post.to_string().as_bytes()).unwrap();
        let body = cpu_against_limit(&gzip.finish().unwrap(), 0.5).unwrap();
        let mut json = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut json)
            .unwrap();
        let sent: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            sent[0]["Metrics"][0]["Value"], 100.0,
            "half a core used of half a core allowed"
        );
        assert_eq!(sent[0]["Metrics"][1]["Value"], 7.0, "nothing else changes");
        assert_eq!(sent[0]["Instance"], "pod");
        assert_eq!(cpu_against_limit(b"not gzip", 0.5), None);
    }

    #[test]
    fn connection_strings_are_checked_and_summarised() {
        let summary = parse_connection_string(
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=x",
        )
        .unwrap();
        assert_eq!(
            summary.ingestion_endpoint,
            "https://westeurope-5.in.applicationinsights.azure.com"
        );
        assert!(parse_connection_string("IngestionEndpoint=https://x").is_err());
        assert!(parse_connection_string("just-a-key").is_err());
        assert!(parse_connection_string("InstrumentationKey=").is_err());
    }
}
