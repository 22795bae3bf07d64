//! The tables in docs/TELEMETRY.md, "Live Metrics, checked": the release binary under
//! `doorbuster loadgen --rps N --duration 60s --json …` (the open model), exporting to a fake
//! Application Insights on 127.0.0.1 whose Live Metrics endpoint answers at once or after 0.4 s;
//! what Live Metrics shows (the posts the shop sends it, as the portal plots them: the median
//! second and the mean over the run) and what Grafana shows (the dashboard's own queries, read
//! from its JSON, evaluated over a scrape of `/metrics` at each end of the run, as Prometheus
//! would), each set against the load generator's own count of the requests the shop answered
//! over the same window. Standard output is the markdown to paste; progress goes to stderr.
//!
//! ```sh
//! scripts/telemetry-figures                 # builds, waits for and takes the benchmark lock, runs
//! target/release/examples/telemetry --binary target/release/doorbuster \
//!     [--seconds 60] [--rps 50,100,200] [--delays 0,0.4] [--ratio 0.1] \
//!     [--error-rate pages=0.02,checkout=0.02]
//! ```
//!
//! The window is the load generator's: it starts at its "load generator starting" line, logged
//! after it has read the catalogue (two requests, which the shop counts and it does not) and just
//! before its clock starts, and ends when it exits, just after its last answer. The truth is the
//! requests it got an answer to (attempts refused or timed out are left out and reported on
//! stderr; there should be none).
//!
//! The shop injects `--error-rate` of 500s and 503s (set through its control API, by route
//! group), so that failures and exceptions are counted too; the load generator's count of 5xx
//! answers is their truth. Before each run, twenty seconds of the same load (the second ten with
//! 30% errors) make every series the run will touch, as on a pod that has been serving for a
//! while: `rate()` counts a series from its first sample only.
//!
//! The fake speaks HTTPS (the exporter always does) with a throwaway CA made by `openssl`, which the
//! shop trusts through `SSL_CERT_FILE`. The shop runs on core 0 and the load generator on core 1
//! (`taskset`); everything stays on 127.0.0.1.

#[path = "../tests/it/promql.rs"]
mod promql;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::Value;
use tokio_rustls::rustls;

use promql::{Labels, Scrape, eval, parse};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The namespace and pod the scrape labels the shop's series with, as the ServiceMonitor would.
const NAMESPACE: &str = "doorbuster";
const POD: &str = "doorbuster-figures";

/// The shop's control API token (the admin port is on 127.0.0.1 and lives for one run).
const ADMIN_TOKEN: &str = "telemetry-figures";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = Options::parse()?;
    let work = tempfile::tempdir()?;
    let ca = make_certificates(work.path())?;
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        "k8s/components/monitoring/dashboard.json",
    )?)?;
    let panel = |title: &str| -> Result<String, BoxError> {
        find_panel_expr(&dashboard["panels"], title)
            .ok_or_else(|| format!("no panel {title:?} in the dashboard").into())
    };
    let requests_query = panel("Requests per second")?;
    let orders_query = panel("Orders per second")?;
    let errors_query = panel("Error rate (5xx)")?;
    eprintln!(
        "telemetry figures: {}, {} s per run, trace ratio {}, errors injected {}",
        options.binary.display(),
        options.seconds,
        options.ratio,
        options.error_rate
    );
    let mut rows = Vec::new();
    for &delay in &options.delays {
        for &rps in &options.rps {
            eprintln!("--- endpoint {delay} s away, {rps} requests a second");
            let fake = Fake::start(&ca, Duration::from_secs_f64(delay)).await?;
            let run = Run {
                binary: &options.binary,
                work: work.path(),
                ca: &ca.cert,
                fake: &fake,
                ratio: options.ratio,
                error_rate: &options.error_rate,
                seconds: options.seconds,
                rps,
            };
            match run
                .measure(&requests_query, &orders_query, &errors_query)
                .await
            {
                Ok(row) => rows.push((delay, rps, row)),
                Err(error) => eprintln!("not measured: {error}"),
            }
        }
    }
    // Each figure with its difference from the load generator's count over the same window.
    let mut worst: f64 = 0.0;
    let mut off = |shown: f64, truth: f64, unit: &str| {
        let error = if truth == 0.0 {
            if shown == 0.0 { 0.0 } else { f64::INFINITY }
        } else {
            shown / truth - 1.0
        };
        worst = worst.max(error.abs());
        format!("{shown:.2}{unit} ({:+.1}%)", error * 100.0)
    };
    println!(
        "Requests per second over each {} s run: the load generator's count of answered requests \
         over its run, and what Live Metrics and Grafana show for the same window (difference from \
         the load generator in brackets).",
        options.seconds
    );
    println!();
    println!(
        "| Live Metrics endpoint | load | load generator | Live Metrics Requests/Sec, median | Live Metrics, mean over the run | Grafana rate() |"
    );
    println!("|---|---|---|---|---|---|");
    for (delay, rps, row) in &rows {
        let cells = [
            off(row.live_requests_median, row.answered_rate, ""),
            off(row.live_requests, row.answered_rate, ""),
            off(row.grafana_requests, row.answered_rate, ""),
        ];
        println!(
            "| {delay} s | {rps}/s | {:.2} ({} in {:.1} s) | {} (of {} posts) | {} | {} |",
            row.answered_rate,
            row.answered,
            row.duration,
            cells[0],
            row.posts_inside,
            cells[1],
            cells[2],
        );
    }
    println!();
    println!(
        "Failures and orders over the same runs ({} of 500 and 503 injected by route group):",
        options.error_rate
    );
    println!();
    println!(
        "| Live Metrics endpoint | load | load generator 5xx/s (share) | Live Metrics Requests Failed/Sec | Live Metrics Exceptions/Sec | Grafana error rate (5xx) | load generator orders/s | Grafana orders/s | Live Metrics Dependency Calls/Sec |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (delay, rps, row) in &rows {
        let share = row.server_errors_rate / row.answered_rate;
        let cells = [
            off(row.live_failed, row.server_errors_rate, ""),
            off(row.live_exceptions, row.server_errors_rate, ""),
            off(row.grafana_error_share * 100.0, share * 100.0, "%"),
            off(row.grafana_orders, row.orders_rate, ""),
        ];
        println!(
            "| {delay} s | {rps}/s | {:.2} ({:.2}%) | {} | {} | {} | {:.2} | {} | {:.1} |",
            row.server_errors_rate,
            share * 100.0,
            cells[0],
            cells[1],
            cells[2],
            row.orders_rate,
            cells[3],
            row.live_dependencies,
        );
    }
    println!();
    println!(
        "Largest difference from the load generator: {:.1}% ({}).",
        worst * 100.0,
        if worst <= 0.05 {
            "every figure within 5%"
        } else {
            "over 5%"
        }
    );
    println!();
    println!(
        "Grafana: the dashboard's panels, as Prometheus evaluates them over a scrape of `/metrics` \
         at each end of the run: requests `{requests_query}`; error rate `{errors_query}`; orders \
         `{orders_query}` (`$namespace` = {NAMESPACE})."
    );
    if rows.len() < options.delays.len() * options.rps.len() {
        return Err("some runs were not measured (see above)".into());
    }
    Ok(())
}

struct Options {
    binary: PathBuf,
    seconds: u64,
    rps: Vec<u32>,
    delays: Vec<f64>,
    ratio: f64,
    error_rate: String,
}

impl Options {
    fn parse() -> Result<Options, BoxError> {
        let mut options = Options {
            binary: PathBuf::from("target/release/doorbuster"),
            seconds: 60,
            rps: vec![50, 100, 200],
            delays: vec![0.0, 0.4],
            ratio: 0.1,
            // Not the API: the load generator reads the catalogue through it before it starts.
            error_rate: "pages=0.02,checkout=0.02".to_owned(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--binary" => options.binary = value()?.into(),
                "--seconds" => options.seconds = value()?.parse()?,
                "--rps" => {
                    options.rps = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?
                }
                "--delays" => {
                    options.delays = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?
                }
                "--ratio" => options.ratio = value()?.parse()?,
                "--error-rate" => options.error_rate = value()?,
                other => return Err(format!("unknown argument {other}: see the file's doc").into()),
            }
        }
        Ok(options)
    }
}

/// The `expr` of the first query of the dashboard panel titled `title` (rows searched too).
fn find_panel_expr(panels: &Value, title: &str) -> Option<String> {
    for panel in panels.as_array()? {
        if panel["title"] == title {
            return panel["targets"][0]["expr"].as_str().map(str::to_owned);
        }
        if let Some(found) = find_panel_expr(&panel["panels"], title) {
            return Some(found);
        }
    }
    None
}

/// One measured run: the load generator's figures and what the telemetry showed.
struct Row {
    /// Requests the shop answered (any status), by the load generator's count.
    answered: u64,
    /// The load generator's run, from its clock's start to its last answer.
    duration: f64,
    /// Live Metrics posts whose interval lies inside the run (the median's sample).
    posts_inside: usize,
    answered_rate: f64,
    server_errors_rate: f64,
    orders_rate: f64,
    live_requests_median: f64,
    live_requests: f64,
    live_failed: f64,
    live_exceptions: f64,
    live_dependencies: f64,
    grafana_requests: f64,
    grafana_orders: f64,
    grafana_error_share: f64,
}

struct Run<'a> {
    binary: &'a Path,
    work: &'a Path,
    ca: &'a Path,
    fake: &'a Fake,
    ratio: f64,
    error_rate: &'a str,
    seconds: u64,
    rps: u32,
}

impl Run<'_> {
    async fn measure(&self, requests: &str, orders: &str, errors: &str) -> Result<Row, BoxError> {
        let database = self.work.join(format!("shop-{}.db", self.rps));
        let _ = std::fs::remove_file(&database);
        let connection = format!(
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://{0}/;LiveEndpoint=https://{0}/",
            self.fake.addr
        );
        let ratio = self.ratio.to_string();
        let database_url = format!("sqlite://{}", database.display());
        let shop = Shop::start(
            self.binary,
            &[
                ("DATABASE_URL", database_url.as_str()),
                ("APPLICATIONINSIGHTS_CONNECTION_STRING", connection.as_str()),
                ("SSL_CERT_FILE", &self.ca.display().to_string()),
                ("DOORBUSTER_TRACE_EXPORT_RATIO", ratio.as_str()),
                ("DOORBUSTER_ADMIN_TOKEN", ADMIN_TOKEN),
                ("POD_NAME", POD),
            ],
        )?;
        let result = self.load(&shop, requests, orders, errors).await;
        shop.stop();
        result
    }

    async fn load(
        &self,
        shop: &Shop,
        requests: &str,
        orders: &str,
        errors: &str,
    ) -> Result<Row, BoxError> {
        // Live Metrics counts only once the service says a viewer watches: its first post.
        let waiting = Instant::now();
        while self.fake.posts().len() < 2 {
            if waiting.elapsed() > Duration::from_secs(30) {
                return Err("no Live Metrics posts".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A pod that has been serving: a series appears with the first request of its route and
        // status, and `rate()` counts from a series' first sample, so a series born during the
        // measured run would lose what it counted before the scrape that found it. Ten seconds
        // of the same load, then ten with errors at 30% so that every route's 500 and 503
        // series appear too, make them; then the run's own error rate is set through the control
        // API.
        let http = doorbuster::tls::client_builder().no_proxy().build()?;
        let set_error_rate = |groups: Vec<(String, f64)>| {
            let (http, url) = (http.clone(), format!("{}/control", shop.admin));
            async move {
                let knobs: serde_json::Map<String, Value> = groups
                    .into_iter()
                    .map(|(group, rate)| (group, serde_json::json!({ "error_rate": rate })))
                    .collect();
                let answer = http
                    .put(url)
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&knobs)
                    .send()
                    .await?;
                if answer.status().is_success() {
                    Ok::<_, BoxError>(())
                } else {
                    Err(format!("the control API answered {}", answer.status()).into())
                }
            }
        };
        let groups = error_rates(self.error_rate)?;
        for warm_up in [0.0, 0.3] {
            set_error_rate(groups.iter().map(|(g, _)| (g.clone(), warm_up)).collect()).await?;
            let status = self
                .loadgen(&shop.base, Duration::from_secs(10), None)
                .status()?;
            if !status.success() {
                return Err(format!("the warm-up loadgen exited with {status}").into());
            }
        }
        set_error_rate(groups).await?;
        // Quiet for more than a Live Metrics interval (1 s plus the endpoint's answer), so the
        // posts that straddle the run's start and end count nothing but the run.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let scrape = |at: f64| {
            let http = http.clone();
            let url = format!("{}/metrics", shop.admin);
            async move {
                let text = http.get(url).send().await?.text().await?;
                let target = Labels::from([
                    ("namespace".to_owned(), NAMESPACE.to_owned()),
                    ("pod".to_owned(), POD.to_owned()),
                ]);
                Ok::<_, BoxError>(Scrape::new(at, &text, &target))
            }
        };
        // The measured window is the load generator's own: from its "load generator starting"
        // line (logged after its catalogue discovery, immediately before its clock starts and
        // its first request is due) to its exit (just after its last answer). `/metrics` is
        // scraped at both ends, so Grafana's rate() covers the same window as its count.
        let report = self.work.join(format!("loadgen-{}.json", self.rps));
        let mut loadgen = self
            .loadgen(&shop.base, Duration::from_secs(self.seconds), Some(&report))
            .env("RUST_LOG", "warn,doorbuster::loadgen=info")
            .env("LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .spawn()?;
        let started = match wait_for_line(&mut loadgen, "load generator starting").await {
            Ok(()) => SystemTime::now(),
            Err(error) => {
                let _ = loadgen.kill();
                let _ = loadgen.wait();
                return Err(error);
            }
        };
        let clock = Instant::now();
        let before = scrape(0.0).await?;
        let status = tokio::task::spawn_blocking(move || loadgen.wait()).await??;
        let finished = SystemTime::now();
        let after = scrape(clock.elapsed().as_secs_f64()).await?;
        if !status.success() {
            return Err(format!("loadgen exited with {status}").into());
        }
        // The post that covers the end of the run.
        tokio::time::sleep(Duration::from_secs(3)).await;

        let report: Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
        let number = |key: &str| {
            report[key]
                .as_f64()
                .ok_or(format!("no {key} in the report"))
        };
        let duration = number("duration_seconds")?;
        // The truth: requests the shop answered, by the load generator's count. Its `requests`
        // also counts attempts that never got an answer (refused, timed out, cut off), which
        // the shop may never have seen; they are reported apart, and should be none.
        let statuses = || {
            report["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|step| step["statuses"].as_object().into_iter().flatten())
                .filter_map(|(status, count)| Some((status.as_str(), count.as_f64()?)))
        };
        let answered: f64 = statuses()
            .filter(|(status, _)| status.parse::<u16>().is_ok())
            .map(|(_, count)| count)
            .sum();
        let unanswered = number("requests")? - answered;
        let server_errors: f64 = statuses()
            .filter(|(status, _)| status.starts_with('5'))
            .map(|(_, count)| count)
            .sum();
        let dropped = number("dropped")?;
        let window = after.at - before.at;
        eprintln!(
            "loadgen: {answered} answered in {duration:.3} s ({unanswered} unanswered, {dropped} \
             not started on time); scrapes {window:.3} s apart"
        );

        // Live Metrics, as the portal plots it: each post's rates hold for the interval since
        // the post before (posts come every second plus the endpoint's answer time).
        let (start, end) = (epoch_ms(started), epoch_ms(finished));
        let posts = self.fake.posts();
        let intervals: Vec<(u128, u128, &BTreeMap<String, f64>)> = posts
            .windows(2)
            .map(|pair| (pair[0].0, pair[1].0, &pair[1].1))
            .collect();
        // Over the run: every interval that overlaps it, each rate times the time it covers,
        // over the run's duration. The first and last reach into the quiet before and after,
        // which adds nothing but the load generator's two discovery requests just before its
        // clock starts.
        let covering: Vec<_> = intervals
            .iter()
            .filter(|(from, to, _)| *to > start && *from < end)
            .collect();
        let covered: f64 = covering
            .iter()
            .map(|(from, to, _)| (to - from) as f64 / 1000.0)
            .sum();
        if covered < duration {
            return Err(format!(
                "Live Metrics posts cover {covered:.1} s of the {duration:.1} s run"
            )
            .into());
        }
        let live = |name: &str| {
            covering
                .iter()
                .map(|(from, to, metrics)| {
                    (to - from) as f64 / 1000.0 * metrics.get(name).copied().unwrap_or(0.0)
                })
                .sum::<f64>()
                / duration
        };
        // Second by second: the median of the posts whose interval lies inside the run, what a
        // person reads off the chart while the load runs.
        let inside: Vec<f64> = intervals
            .iter()
            .filter(|(from, to, _)| *from >= start && *to <= end)
            .map(|(_, _, metrics)| {
                metrics
                    .get("\\ApplicationInsights\\Requests/Sec")
                    .copied()
                    .unwrap_or(0.0)
            })
            .collect();
        let live_requests_median = median(&inside).ok_or("no Live Metrics post inside the run")?;

        let born: Vec<String> = after
            .samples
            .iter()
            .filter(|s| s.name == "http_server_request_duration_seconds_count")
            .filter(|s| {
                !before
                    .samples
                    .iter()
                    .any(|b| b.name == s.name && b.labels == s.labels)
            })
            .map(|s| format!("{:?} {}", s.labels.get("http_route"), s.value))
            .collect();
        if !born.is_empty() {
            eprintln!(
                "request series born during the run, uncounted by rate() as in Prometheus: {born:?}"
            );
        }
        let grafana = |query: &str| -> Result<f64, BoxError> {
            let expr = parse(&query.replace("$namespace", NAMESPACE))?;
            Ok(eval(&expr, &before, &after)?.single().unwrap_or(0.0))
        };
        Ok(Row {
            answered: answered as u64,
            duration,
            posts_inside: inside.len(),
            answered_rate: answered / duration,
            server_errors_rate: server_errors / duration,
            orders_rate: number("orders_placed")? / duration,
            live_requests_median,
            live_requests: live("\\ApplicationInsights\\Requests/Sec"),
            live_failed: live("\\ApplicationInsights\\Requests Failed/Sec"),
            live_exceptions: live("\\ApplicationInsights\\Exceptions/Sec"),
            live_dependencies: live("\\ApplicationInsights\\Dependency Calls/Sec"),
            grafana_requests: grafana(requests)?,
            grafana_orders: grafana(orders)?,
            grafana_error_share: grafana(errors).unwrap_or(0.0),
        })
    }
}

impl Run<'_> {
    /// `doorbuster loadgen` at this run's rate (the open model) for `duration`, on core 1.
    fn loadgen(&self, target: &str, duration: Duration, json: Option<&Path>) -> Command {
        let mut command = Command::new("taskset");
        command
            .args(["-c", "1"])
            .arg(self.binary)
            .args(["loadgen", "--target", target, "--rps"])
            .arg(self.rps.to_string())
            .arg("--duration")
            .arg(format!("{}s", duration.as_secs_f64()))
            .args(["--max-error-rate", "100%"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        if let Some(json) = json {
            command.arg("--json").arg(json);
        }
        command
    }
}

/// `pages=0.02,checkout=0.02` (the syntax of `DOORBUSTER_ERROR_RATE`, by group only) as pairs.
fn error_rates(text: &str) -> Result<Vec<(String, f64)>, BoxError> {
    text.split(',')
        .map(|part| {
            let (group, rate) = part
                .split_once('=')
                .ok_or(format!("--error-rate: {part:?} is not GROUP=RATE"))?;
            Ok((group.trim().to_owned(), rate.trim().parse()?))
        })
        .collect()
}

fn epoch_ms(time: SystemTime) -> u128 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A throwaway CA and a certificate for 127.0.0.1 that it signed, made with `openssl`.
struct Certificates {
    cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

fn make_certificates(dir: &Path) -> Result<Certificates, BoxError> {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| -> Result<(), BoxError> {
        let output = Command::new("openssl").args(args).output()?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )
            .into())
        }
    };
    let s = |p: PathBuf| p.display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=doorbuster figures CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-keyout",
        &s(path("ca.key")),
        "-out",
        &s(path("ca.pem")),
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &s(path("server.key")),
        "-out",
        &s(path("server.csr")),
    ])?;
    std::fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(path("server.csr")),
        "-CA",
        &s(path("ca.pem")),
        "-CAkey",
        &s(path("ca.key")),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &s(path("server.ext")),
        "-out",
        &s(path("server.pem")),
    ])?;
    Ok(Certificates {
        cert: path("ca.pem"),
        server_cert: path("server.pem"),
        server_key: path("server.key"),
    })
}

/// Live Metrics posts received: (the post's own timestamp, its metrics by name).
type Posts = Arc<Mutex<Vec<(u128, BTreeMap<String, f64>)>>>;

/// The fake Application Insights: ingestion accepts everything; Live Metrics answers "a viewer is
/// watching" after `delay`, and its posts are kept.
struct Fake {
    addr: std::net::SocketAddr,
    posts: Posts,
}

impl Fake {
    async fn start(certificates: &Certificates, delay: Duration) -> Result<Fake, BoxError> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                CertificateDer::pem_file_iter(&certificates.server_cert)?
                    .collect::<Result<_, _>>()?,
                PrivateKeyDer::from_pem_file(&certificates.server_key)?,
            )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        async fn track(body: Bytes) -> impl IntoResponse {
            let mut json = Vec::new();
            let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut json);
            let count = serde_json::from_slice::<Value>(&json)
                .ok()
                .and_then(|v| v.as_array().map(Vec::len))
                .unwrap_or(0);
            axum::Json(
                serde_json::json!({"itemsReceived": count, "itemsAccepted": count, "errors": []}),
            )
        }
        async fn live(
            State((posts, delay)): State<(Posts, Duration)>,
            uri: Uri,
            body: Bytes,
        ) -> impl IntoResponse {
            if uri.path().ends_with("/post") {
                let mut json = Vec::new();
                let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut json);
                let envelopes: Value = serde_json::from_slice(&json).unwrap_or(Value::Null);
                for envelope in envelopes.as_array().into_iter().flatten() {
                    let at = envelope["Timestamp"]
                        .as_str()
                        .and_then(|t| t.strip_prefix("/Date(")?.strip_suffix(")/")?.parse().ok())
                        .unwrap_or(0);
                    let metrics = envelope["Metrics"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|m| {
                            Some((m["Name"].as_str()?.to_owned(), m["Value"].as_f64()?))
                        })
                        .collect();
                    posts.lock().unwrap().push((at, metrics));
                }
            }
            tokio::time::sleep(delay).await;
            ([("x-ms-qps-subscribed", "true")], "")
        }
        let posts = Posts::default();
        let app = Router::new()
            .route("/v2/track", post(track))
            .route("/QuickPulseService.svc/ping", post(live))
            .route("/QuickPulseService.svc/post", post(live))
            .with_state((posts.clone(), delay));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Ok(Fake { addr, posts })
    }

    fn posts(&self) -> Vec<(u128, BTreeMap<String, f64>)> {
        self.posts.lock().unwrap().clone()
    }
}

/// The real binary, serving on 127.0.0.1 with free ports, pinned to core 0.
struct Shop {
    child: Child,
    base: String,
    admin: String,
}

impl Shop {
    fn start(binary: &Path, env: &[(&str, &str)]) -> Result<Shop, BoxError> {
        let mut command = Command::new("taskset");
        command
            .args(["-c", "0"])
            .arg(binary)
            .arg("serve")
            .env("DOORBUSTER_HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("DOORBUSTER_ADMIN_PORT", "0")
            .env("DOORBUSTER_DRAIN_DELAY", "0s")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "text")
            // Telemetry goes to the fake on 127.0.0.1 only, never through a proxy.
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut base, mut admin) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let url = |marker: &str| {
                    line.split(marker).nth(1).map(|rest| {
                        let end = rest
                            .find(|c: char| c == '/' || c == ')' || c.is_whitespace() || c == '"')
                            .unwrap_or(rest.len());
                        format!("http://{}", &rest[..end])
                    })
                };
                if let Some(found) = url("Prometheus: on (http://") {
                    admin = Some(found);
                }
                if let Some(found) = url("open at http://") {
                    base = Some(found);
                }
                if let (Some(base), Some(admin)) = (&base, &admin) {
                    let _ = tx.send((base.clone(), admin.clone()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((base, admin)) => Ok(Shop { child, base, admin }),
            Err(_) => {
                let _ = child.kill();
                Err("the shop did not start within 30 s".into())
            }
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Waits (30 s at most) until `child` prints a line containing `marker` on its stdout, which is
/// read to its end from then on so that the child never blocks on a full pipe.
async fn wait_for_line(child: &mut Child, marker: &'static str) -> Result<(), BoxError> {
    let stdout = child
        .stdout
        .take()
        .ok_or("the child's stdout is not piped")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(marker)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(format!("the load generator ended without saying {marker:?}").into()),
        Err(_) => Err(format!("the load generator did not say {marker:?} within 30 s").into()),
    }
}

/// The median of `values` (the mean of the middle two for an even count), `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}
