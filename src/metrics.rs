//! The service's metrics, defined once through the OpenTelemetry API and read by every exporter:
//! Prometheus text on the admin port always, Application Insights and OTLP when configured.
//!
//! Names follow the OpenTelemetry semantic conventions where one exists
//! (`http.server.request.duration` in seconds, `http.server.active_requests`); shop metrics live
//! under `doorbuster.*`. The Prometheus names (`http_server_request_duration_seconds`,
//! `doorbuster_orders_total`, …) are what dashboards and autoscalers query; docs/TELEMETRY.md lists
//! them all.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    BoundHistogram, BoundUpDownCounter, Counter, Histogram, MeterProvider as _, UpDownCounter,
};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::reader::MetricReader;

use crate::db::DbError;
use crate::sampling::RequestTracing;
use crate::shop::order::CheckoutOutcome;

/// Request-duration buckets in seconds. (The SDK's defaults assume milliseconds.)
///
/// Grafana's percentiles (`histogram_quantile`) interpolate linearly inside the bucket the
/// percentile falls in, so their error is bounded only by how wide that bucket is: between bounds
/// `a` and `b`, both the true percentile and the one shown lie in `(a, b]`, off by at most
/// `b / a - 1`. From 0.91 ms to 2.14 s each bound is therefore at most 1.1 times the one before
/// (the one before times 1.1, rounded down to three significant digits), which keeps every
/// percentile between 1 ms and 2 s within 10% whatever the shape of the latencies; above, coarse
/// bounds up to the 10 s request timeout. Ten bounds a decade, the usual choice, would allow 25%,
/// and the old 0.1 s, 0.25 s pair showed 235 ms for a true 145 ms. The price is 88 bounds, that
/// many series per label set (docs/TELEMETRY.md, "Latency buckets").
pub const DURATION_BUCKETS: [f64; 88] = [
    0.00091, 0.001, 0.0011, 0.00121, 0.00133, 0.00146, 0.0016, 0.00176, 0.00193, 0.00212, 0.00233,
    0.00256, 0.00281, 0.00309, 0.00339, 0.00372, 0.00409, 0.00449, 0.00493, 0.00542, 0.00596,
    0.00655, 0.0072, 0.00792, 0.00871, 0.00958, 0.0105, 0.0115, 0.0126, 0.0138, 0.0151, 0.0166,
    0.0182, 0.02, 0.022, 0.0242, 0.0266, 0.0292, 0.0321, 0.0353, 0.0388, 0.0426, 0.0468, 0.0514,
    0.0565, 0.0621, 0.0683, 0.0751, 0.0826, 0.0908, 0.0998, 0.109, 0.119, 0.13, 0.143, 0.157,
    0.172, 0.189, 0.207, 0.227, 0.249, 0.273, 0.3, 0.33, 0.363, 0.399, 0.438, 0.481, 0.529, 0.581,
    0.639, 0.702, 0.772, 0.849, 0.933, 1.02, 1.12, 1.23, 1.35, 1.48, 1.62, 1.78, 1.95, 2.14, 2.5,
    5.0, 7.5, 10.0,
];

/// The instruments, plus the provider and Prometheus registry behind them.
#[derive(Debug, Clone)]
pub struct Metrics {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    pub request_duration: Histogram<f64>,
    pub active_requests: UpDownCounter<i64>,
    pub orders: Counter<u64>,
    pub items_sold: Counter<u64>,
    pub revenue_cents: Counter<u64>,
    pub checkout_rejections: Counter<u64>,
    pub cart_additions: Counter<u64>,
    pub requests_shed: Counter<u64>,
    pub control_changes: Counter<u64>,
    /// Which requests are traced, and where the others are counted (see [`RequestTracing`]).
    pub request_tracing: RequestTracing,
    meter: opentelemetry::metrics::Meter,
    /// The two request instruments, bound to each attribute set seen so far.
    bound_durations: Arc<BoundInstruments<DurationAttributes, BoundHistogram<f64>>>,
    bound_in_flight: Arc<BoundInstruments<InFlightAttributes, BoundUpDownCounter<i64>>>,
}

/// The attributes of a request, as the request metrics carry them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestAttributes {
    /// `GET`, `POST`, …, or `_OTHER` for a method outside the standard ones (semantic conventions;
    /// it also bounds the number of series a client can create).
    pub method: Cow<'static, str>,
    /// The matched route template, or `unmatched`.
    pub route: Arc<str>,
    pub synthetic: bool,
}

type InFlightAttributes = (Cow<'static, str>, Arc<str>);
type DurationAttributes = (RequestAttributes, u16);

/// Instruments bound to attribute sets, one per distinct set. Recording through the SDK with
/// attributes hashes and sorts them on every call, several thousand instructions per request
/// for these two; a bound instrument records straight into its series. The sets are bounded:
/// route templates × standard methods × status codes. Keyed with foldhash, not SipHash: every
/// request looks up two keys, and SipHash made those lookups cost several hundred instructions.
struct BoundInstruments<K, B> {
    bound: RwLock<HashMap<K, B, foldhash::fast::RandomState>>,
}

impl<K, B> std::fmt::Debug for BoundInstruments<K, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoundInstruments")
    }
}

impl<K: Eq + Hash + Clone, B: Clone> BoundInstruments<K, B> {
    fn new() -> Self {
        BoundInstruments {
            bound: RwLock::new(HashMap::default()),
        }
    }

    fn get(&self, key: &K, bind: impl FnOnce() -> B) -> B {
        if let Some(bound) = self
            .bound
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return bound.clone();
        }
        self.bound
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_insert_with(bind)
            .clone()
    }
}

/// Counts a request as in flight until dropped (also when the client goes away mid-request).
pub struct InFlightRequest(BoundUpDownCounter<i64>);

impl std::fmt::Debug for InFlightRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlightRequest")
    }
}

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// The `reason` label values of `doorbuster.checkout.rejections`.
pub const REJECTION_REASONS: [&str; 3] = ["out_of_stock", "invalid", "conflict"];

/// The `control` label values of `doorbuster.control.changes` (see [`crate::web::control`]).
pub const CONTROL_KNOBS: &str = "knobs";
pub const CONTROL_READINESS: &str = "readiness";
const CONTROLS: [&str; 2] = [CONTROL_KNOBS, CONTROL_READINESS];

/// Why a checkout produced no order, as the `reason` label.
fn rejection_reason(outcome: &CheckoutOutcome) -> Option<&'static str> {
    let [out_of_stock, invalid, conflict] = REJECTION_REASONS;
    match outcome {
        CheckoutOutcome::OutOfStock(_) => Some(out_of_stock),
        CheckoutOutcome::Invalid(_) | CheckoutOutcome::UnknownProducts(_) => Some(invalid),
        CheckoutOutcome::KeyReused => Some(conflict),
        CheckoutOutcome::Placed { .. } | CheckoutOutcome::Replayed(_) => None,
    }
}

impl Metrics {
    /// Metrics exported through Prometheus only (what tests and a bare `serve` use).
    pub fn prometheus_only(resource: opentelemetry_sdk::Resource) -> Arc<Metrics> {
        Self::with_readers(resource, Vec::new(), RequestTracing::default())
    }

    /// Metrics exported through Prometheus and through each extra reader (periodic exporters).
    pub fn with_readers(
        resource: opentelemetry_sdk::Resource,
        readers: Vec<Box<dyn MetricReaderBox>>,
        request_tracing: RequestTracing,
    ) -> Arc<Metrics> {
        let registry = prometheus::Registry::new();
        let mut builder = SdkMeterProvider::builder().with_resource(resource);
        match opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
        {
            Ok(exporter) => builder = builder.with_reader(exporter),
            Err(error) => tracing::error!(%error, "cannot set up the Prometheus exporter"),
        }
        for reader in readers {
            builder = reader.attach(builder);
        }
        let provider = builder.build();
        let meter = provider.meter("doorbuster");
        let metrics = Metrics {
            request_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active_requests: meter
                .i64_up_down_counter("http.server.active_requests")
                .with_description("Number of HTTP server requests in flight")
                .build(),
            orders: meter
                .u64_counter("doorbuster.orders")
                .with_description("Orders placed")
                .build(),
            items_sold: meter
                .u64_counter("doorbuster.items_sold")
                .with_description("Units sold across all orders")
                .build(),
            revenue_cents: meter
                .u64_counter("doorbuster.revenue_cents")
                .with_description("Revenue of placed orders, in US cents")
                .build(),
            checkout_rejections: meter
                .u64_counter("doorbuster.checkout.rejections")
                .with_description("Checkouts that placed no order, by reason")
                .build(),
            cart_additions: meter
                .u64_counter("doorbuster.cart.additions")
                .with_description("Products added to carts")
                .build(),
            requests_shed: meter
                .u64_counter("doorbuster.requests.shed")
                .with_description("Requests answered 503 at once because too many were in flight")
                .build(),
            control_changes: meter
                .u64_counter("doorbuster.control.changes")
                .with_description("Changes made through the admin control API")
                .build(),
            request_tracing,
            bound_durations: Arc::new(BoundInstruments::new()),
            bound_in_flight: Arc::new(BoundInstruments::new()),
            meter: meter.clone(),
            provider,
            registry,
        };
        register_process_metrics(&meter);
        metrics.start_counters_at_zero();
        Arc::new(metrics)
    }

    /// Makes every shop counter exist, at zero, for each label value it can take. A counter
    /// series exists only once something is added to it, and `rate()` and `increase()` take a
    /// series' first sample as their starting point: without this, each new pod's first orders
    /// (and items, revenue, sheds) were lost to the dashboard and the autoscalers, and a panel over
    /// a counter nothing had touched yet said "No data" instead of 0. (The request histogram's
    /// series are keyed by route and status, which are not known in advance; at the request
    /// rates it is read at, its first request per series is noise.)
    fn start_counters_at_zero(&self) {
        for counter in [
            &self.orders,
            &self.items_sold,
            &self.revenue_cents,
            &self.requests_shed,
        ] {
            counter.add(0, &[]);
        }
        for reason in REJECTION_REASONS {
            self.checkout_rejections
                .add(0, &[KeyValue::new("reason", reason)]);
        }
        for doorbuster in [false, true] {
            self.cart_additions
                .add(0, &[KeyValue::new("doorbuster", doorbuster)]);
        }
        for control in CONTROLS {
            self.control_changes
                .add(0, &[KeyValue::new("control", control)]);
        }
    }

    /// Reports the requests in flight (the signal an autoscaler can scale on) and the bound.
    pub fn observe_in_flight(&self, controls: Arc<crate::load::Controls>) {
        self.meter
            .i64_observable_gauge("doorbuster.in_flight_requests")
            .with_description("Requests being served now, against the in-flight bound")
            .with_callback(move |observer| {
                observer.observe(i64::try_from(controls.in_flight()).unwrap_or(i64::MAX), &[]);
            })
            .build();
    }

    /// Counts a request in `http.server.active_requests` until the returned guard is dropped.
    pub fn request_started(&self, request: &RequestAttributes) -> InFlightRequest {
        let key = (request.method.clone(), request.route.clone());
        let counter = self.bound_in_flight.get(&key, || {
            self.active_requests.bind(&[
                KeyValue::new("http.request.method", key.0.clone()),
                KeyValue::new("http.route", key.1.clone()),
            ])
        });
        counter.add(1);
        InFlightRequest(counter)
    }

    /// Records a finished request in `http.server.request.duration`.
    pub fn request_finished(&self, request: &RequestAttributes, status: u16, seconds: f64) {
        let key = (request.clone(), status);
        self.bound_durations
            .get(&key, || {
                self.request_duration.bind(&[
                    KeyValue::new("http.request.method", request.method.clone()),
                    KeyValue::new("http.route", request.route.clone()),
                    KeyValue::new("http.response.status_code", i64::from(status)),
                    KeyValue::new("synthetic", request.synthetic),
                ])
            })
            .record(seconds);
    }

    /// Counts what a checkout did: an order with its items and revenue, or a rejection by reason.
    /// Replays of an idempotent request count nothing: the order was counted the first time.
    /// Failures of the store are server errors, counted by the request metrics, not rejections.
    pub fn record_checkout(&self, outcome: &Result<CheckoutOutcome, DbError>) {
        match outcome {
            Ok(CheckoutOutcome::Placed { order, .. }) => {
                self.orders.add(1, &[]);
                self.items_sold
                    .add(u64::try_from(order.item_count).unwrap_or(0), &[]);
                self.revenue_cents
                    .add(u64::try_from(order.total_cents).unwrap_or(0), &[]);
            }
            Ok(refused) => {
                if let Some(reason) = rejection_reason(refused) {
                    self.checkout_rejections
                        .add(1, &[KeyValue::new("reason", reason)]);
                }
            }
            Err(_) => {}
        }
    }

    /// The current values in Prometheus text format.
    pub fn prometheus_text(&self) -> String {
        use prometheus::Encoder as _;
        let mut buffer = Vec::new();
        if let Err(error) =
            prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buffer)
        {
            tracing::error!(%error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Flushes and stops the periodic exporters. Blocks: call from a blocking thread.
    pub fn shutdown_blocking(&self, timeout: Duration) {
        if let Err(error) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(%error, "metrics exporters did not shut down cleanly");
        }
    }
}

/// A periodic metric reader, boxed so exporters of different types can be listed together.
pub trait MetricReaderBox: Send {
    fn attach(
        self: Box<Self>,
        builder: opentelemetry_sdk::metrics::MeterProviderBuilder,
    ) -> opentelemetry_sdk::metrics::MeterProviderBuilder;
}

impl<R: MetricReader + 'static> MetricReaderBox for R {
    fn attach(
        self: Box<Self>,
        builder: opentelemetry_sdk::metrics::MeterProviderBuilder,
    ) -> opentelemetry_sdk::metrics::MeterProviderBuilder {
        builder.with_reader(*self)
    }
}

/// Process CPU time and resident memory, read from `/proc` when asked (Linux only; elsewhere
/// the instruments report nothing).
fn register_process_metrics(meter: &opentelemetry::metrics::Meter) {
    meter
        .f64_observable_counter("process.cpu.time")
        .with_unit("s")
        .with_description("CPU time used by this process (user + system)")
        .with_callback(|observer| {
            if let Some(seconds) = process_cpu_seconds() {
                observer.observe(seconds, &[]);
            }
        })
        .build();
    meter
        .i64_observable_gauge("process.memory.usage")
        .with_unit("By")
        .with_description("Resident memory of this process")
        .with_callback(|observer| {
            if let Some(bytes) = process_resident_bytes() {
                observer.observe(bytes, &[]);
            }
        })
        .build();
}

/// User + system CPU seconds from `/proc/self/stat` (fields 14 and 15, in USER_HZ = 100 ticks,
/// which Linux fixes for user space on every architecture).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields are counted after its closing ')'.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resident set size in bytes from `/proc/self/status`.
pub fn process_resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_buckets_are_at_most_a_tenth_apart_from_1ms_to_2s() {
        const { assert!(DURATION_BUCKETS[0] < 0.001) };
        let last = DURATION_BUCKETS.iter().position(|&b| b >= 2.0).unwrap();
        for pair in DURATION_BUCKETS[..=last].windows(2) {
            assert!(pair[1] / pair[0] <= 1.1 + 1e-9, "{pair:?}");
        }
        assert!(DURATION_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(DURATION_BUCKETS.last(), Some(&10.0));
    }
}
