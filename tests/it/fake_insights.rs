//! A fake Application Insights on 127.0.0.1 (ingestion and Live Metrics) that records what it
//! receives, the HTTP client that takes the exporter to it, and a shop served on 127.0.0.1 with
//! telemetry exporting there: what the telemetry tests read the shop's telemetry from.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use doorbuster::config::{LogFormat, TelemetryArgs, WebConfig};
use doorbuster::server;
use doorbuster::telemetry::Telemetry;
use doorbuster::web::state::AppState;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::TestApp;

/// What the fake received: (path, decoded JSON), in order.
pub type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// The fake: `POST /v2/track` (a gzipped JSON array of items) and Live Metrics' ping and post.
pub struct FakeInsights {
    pub received: Received,
    /// A connection string whose endpoints are the fake.
    pub connection_string: String,
}

impl FakeInsights {
    pub async fn start() -> FakeInsights {
        Self::answering_live_metrics_after(Duration::ZERO).await
    }

    /// A fake whose Live Metrics endpoint takes `delay` to answer each ping and post, as Azure's
    /// does from another region.
    pub async fn answering_live_metrics_after(delay: Duration) -> FakeInsights {
        async fn record(
            State((received, delay)): State<(Received, Duration)>,
            uri: Uri,
            body: Bytes,
        ) -> axum::response::Response {
            let mut text = Vec::new();
            if body.starts_with(&[0x1f, 0x8b]) {
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut text)
                    .unwrap();
            } else {
                text = body.to_vec();
            }
            let json = serde_json::from_slice(&text).unwrap_or(Value::Null);
            let path = uri.path().to_owned();
            let count = json.as_array().map_or(0, Vec::len);
            received.lock().unwrap().push((path.clone(), json));
            if path.starts_with("/QuickPulseService.svc") {
                tokio::time::sleep(delay).await;
                // Tell the exporter a Live Metrics viewer is watching, so it starts posting.
                return (StatusCode::OK, [("x-ms-qps-subscribed", "true")], "").into_response();
            }
            let answer =
                serde_json::json!({"itemsReceived": count, "itemsAccepted": count, "errors": []});
            (StatusCode::OK, axum::Json(answer)).into_response()
        }
        let received = Received::default();
        let app = Router::new()
            .route("/v2/track", post(record))
            .route("/QuickPulseService.svc/ping", post(record))
            .route("/QuickPulseService.svc/post", post(record))
            .with_state((received.clone(), delay));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeInsights {
            received,
            connection_string: format!(
                "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://{addr}/;LiveEndpoint=http://{addr}/"
            ),
        }
    }

    /// Every item received on `/v2/track`.
    pub fn items(&self) -> Vec<Value> {
        tracked_items(&self.received.lock().unwrap())
    }

    /// Every Live Metrics post received, in order.
    pub fn live_posts(&self) -> Vec<LivePost> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path.ends_with("/post"))
            .flat_map(|(_, body)| body.as_array().cloned().unwrap_or_default())
            .map(|post| LivePost {
                at_ms: post["Timestamp"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("/Date(")?.strip_suffix(")/")?.parse().ok())
                    .unwrap_or(0),
                metrics: post["Metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| Some((m["Name"].as_str()?.to_owned(), m["Value"].as_f64()?)))
                    .collect(),
            })
            .collect()
    }

    /// The sum of a Live Metrics metric over every post received so far.
    pub fn live_metric_sum(&self, name: &str) -> f64 {
        self.live_posts()
            .iter()
            .filter_map(|post| post.metrics.get(name))
            .sum()
    }

    /// How many events a Live Metrics rate counted in all: each post's rate times the time since
    /// the post before (posts come about once a second, so this is the count give or take the
    /// few milliseconds between collecting and posting).
    pub fn live_metric_count(&self, name: &str) -> f64 {
        self.live_posts()
            .windows(2)
            .map(|pair| {
                let seconds = (pair[1].at_ms - pair[0].at_ms) as f64 / 1000.0;
                pair[1].metrics.get(name).copied().unwrap_or(0.0) * seconds
            })
            .sum()
    }

    /// Everything received, as text, to look for what must never be sent.
    pub fn everything(&self) -> String {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(path, body)| format!("{path} {body}\n"))
            .collect()
    }

    /// Waits for the first Live Metrics post: Live Metrics counts only while a viewer watches.
    pub async fn wait_for_live_posts(&self) {
        let started = Instant::now();
        while self.live_posts().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no Live Metrics post"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One Live Metrics post: when the exporter sent it (its `Timestamp`) and its metrics by name.
#[derive(Debug)]
pub struct LivePost {
    pub at_ms: u128,
    pub metrics: BTreeMap<String, f64>,
}

pub const REQUESTS: &str = "\\ApplicationInsights\\Requests/Sec";
pub const REQUESTS_FAILED: &str = "\\ApplicationInsights\\Requests Failed/Sec";
pub const DEPENDENCIES: &str = "\\ApplicationInsights\\Dependency Calls/Sec";
pub const DEPENDENCIES_FAILED: &str = "\\ApplicationInsights\\Dependency Calls Failed/Sec";
pub const EXCEPTIONS: &str = "\\ApplicationInsights\\Exceptions/Sec";
pub const CPU: &str = "\\Processor(_Total)\\% Processor Time";

/// Every item in what was received on `/v2/track`.
pub fn tracked_items(received: &[(String, Value)]) -> Vec<Value> {
    received
        .iter()
        .filter(|(path, _)| path == "/v2/track")
        .flat_map(|(_, body)| body.as_array().cloned().unwrap_or_default())
        .collect()
}

/// The `baseData` of the items of one type (`RequestData`, `RemoteDependencyData`, …).
pub fn base_data<'a>(items: &'a [Value], base_type: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|item| item["data"]["baseType"] == base_type)
        .map(|item| &item["data"]["baseData"])
        .collect()
}

/// The connection-string parser upgrades every endpoint to https; this client takes loopback
/// requests back to plain http so they reach the fake. Everything else is the real exporter.
#[derive(Clone, Debug)]
pub struct LoopbackClient(pub reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for LoopbackClient {
    async fn send_bytes(&self, mut request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let uri = request.uri().to_string();
        assert!(
            uri.starts_with("https://127.0.0.1:"),
            "telemetry must only go to the fake: {uri}"
        );
        *request.uri_mut() = uri.replacen("https://", "http://", 1).parse()?;
        self.0.send_bytes(request).await
    }
}

impl LoopbackClient {
    pub fn new() -> LoopbackClient {
        LoopbackClient(doorbuster::tls::client_builder().build().unwrap())
    }
}

pub fn args(connection_string: Option<String>) -> TelemetryArgs {
    TelemetryArgs {
        applicationinsights_connection_string: connection_string,
        otel_exporter_otlp_endpoint: None,
        otel_service_name: "doorbuster".to_owned(),
        otel_metric_export_interval: 60_000,
        trace_export_ratio: 1.0,
        pod_name: Some("doorbuster-test-pod".to_owned()),
        node_name: Some("virtual-node-aci-linux".to_owned()),
    }
}

/// Builds the shop's telemetry and installs its subscriber globally, as `serve` does (the
/// server's tasks run on every worker thread). Only for a test that has its process to itself
/// (see `support::own_process`).
pub fn install_telemetry(args: &TelemetryArgs) -> Telemetry {
    let (telemetry, subscriber, _) =
        Telemetry::build(args, LogFormat::Text, LoopbackClient::new()).unwrap();
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only global subscriber in this process");
    telemetry
}

/// A shop served on 127.0.0.1 (public and admin ports) with `telemetry`'s metrics.
pub struct Shop {
    pub app: TestApp,
    /// The state the server runs with (its knobs, metrics and database).
    pub state: AppState,
    pub base: String,
    pub admin: String,
    stop: CancellationToken,
    servers: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Shop {
    /// Serves `app`'s database with `telemetry`'s metrics.
    pub async fn serve(app: TestApp, telemetry: &Telemetry) -> Shop {
        let state = AppState::with_metrics(
            app.state.db.clone(),
            WebConfig::default(),
            telemetry.metrics.clone(),
        );
        Self::serve_state(app, state).await
    }

    /// Serves `state` (built on `app`'s database).
    pub async fn serve_state(app: TestApp, state: AppState) -> Shop {
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", public.local_addr().unwrap());
        let admin_url = format!("http://{}", admin.local_addr().unwrap());
        let stop = CancellationToken::new();
        let servers = vec![
            tokio::spawn(server::serve(
                public,
                state.clone(),
                Duration::ZERO,
                stop.clone().cancelled_owned(),
            )),
            tokio::spawn(server::serve_admin(admin, state.clone(), stop.clone())),
        ];
        Shop {
            app,
            state,
            base,
            admin: admin_url,
            stop,
            servers,
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        for server in self.servers {
            server.await.unwrap().unwrap();
        }
    }

    /// The admin port's `/metrics`, as Prometheus scrapes it.
    pub async fn scrape(&self) -> String {
        doorbuster::tls::client_builder()
            .build()
            .unwrap()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// An open-model load: `rps` requests a second for `duration`, each sent on schedule in a task of
/// its own whatever the earlier ones are doing (as `doorbuster loadgen --open` does), to the path
/// `path_of(n)` gives the n-th. Returns when the last has been answered, with the wall-clock
/// times of the first send and of the end of the schedule, and the statuses.
pub async fn open_load(
    base: &str,
    rps: u32,
    duration: Duration,
    path_of: impl Fn(u64) -> String,
) -> (SystemTime, SystemTime, Vec<u16>) {
    let http = doorbuster::tls::client_builder().build().unwrap();
    let period = Duration::from_secs_f64(1.0 / f64::from(rps));
    let total = (duration.as_secs_f64() * f64::from(rps)).round() as u64;
    let mut ticks = tokio::time::interval(period);
    // A late tick is sent at once, so the rate over the run stays `rps`.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = SystemTime::now();
    let mut sent = Vec::new();
    for n in 0..total {
        ticks.tick().await;
        let (http, url) = (http.clone(), format!("{base}{}", path_of(n)));
        sent.push(tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        }));
    }
    let ended = SystemTime::now();
    let mut statuses = Vec::new();
    for request in sent {
        statuses.push(request.await.unwrap());
    }
    (started, ended, statuses)
}

/// Milliseconds since the Unix epoch, as Live Metrics' timestamps count.
pub fn epoch_ms(time: SystemTime) -> u128 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// The median of `values` (the middle one; of the two middle ones, the mean).
pub fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "no values");
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}
