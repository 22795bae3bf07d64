//! `doorbuster loadgen`: the Black Friday crowd. Virtual shoppers walk journeys (home → category
//! → products → cart → checkout) against any Doorbuster, in a closed model (users) or an open one
//! (requests per second), constant or staged for a surge, and the run ends with a report per
//! step and an exit status that scripts can test. It lives in the library so that the tests drive
//! the same code as the binary, and it shares nothing with the shop but the paths it requests.
//!
//! - [`args`]: the flags; [`shape`]: users or rates over time; [`scenario`]: discovery and the
//!   journeys; [`client`]: the lean HTTP client; [`stats`]: counting; [`report`]: the result;
//!   [`progress`]: the live view.
//!
//! Every request is marked as synthetic with the W3C baggage header [`SYNTHETIC_BAGGAGE`], and
//! names the generator in its `User-Agent` ([`USER_AGENT`]), so the shop's telemetry can tell
//! load tests from shoppers.
//!
//! Exit status (see [`exit_code`]):
//!
//! | status | meaning |
//! |---|---|
//! | 0 ([`EXIT_PASSED`]) | the run finished (or was stopped with Ctrl-C) within `--max-error-rate` |
//! | 1 ([`EXIT_ERROR_RATE`]) | more requests failed than `--max-error-rate` allows |
//! | 2 ([`EXIT_UNUSABLE`]) | bad arguments, or the target is unreachable or not a Doorbuster |

pub mod args;
pub mod client;
mod progress;
pub mod report;
pub mod scenario;
pub mod shape;
pub mod stats;

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use args::{LoadgenArgs, Scenario};
pub use client::Target;
pub use report::Report;

use client::{Client, Endpoint};
use progress::{Progress, Total};
use scenario::{Catalog, DiscoveryError, Mix};
use shape::Profile;
use stats::Stats;

/// The `User-Agent` of every request: the generator and its version.
pub const USER_AGENT: &str = concat!("doorbuster-loadgen/", env!("CARGO_PKG_VERSION"));
/// The header that carries the synthetic-traffic marker (W3C Baggage).
pub const SYNTHETIC_BAGGAGE_HEADER: &str = "baggage";
/// The baggage member's name…
pub const SYNTHETIC_BAGGAGE_KEY: &str = "synthetic";
/// …and value…
pub const SYNTHETIC_BAGGAGE_VALUE: &str = "true";
/// …and the whole header value the generator sends.
pub const SYNTHETIC_BAGGAGE: &str = "synthetic=true";

/// Exit status of a run within the error budget.
pub const EXIT_PASSED: u8 = 0;
/// Exit status of a run whose error rate exceeded `--max-error-rate`.
pub const EXIT_ERROR_RATE: u8 = 1;
/// Exit status when no run could be made: bad arguments (clap uses 2 for those too), or a target
/// that cannot be reached or is not a Doorbuster.
pub const EXIT_UNUSABLE: u8 = 2;

/// When the run's clock has ended, shoppers still in the shop may finish their journey for this
/// long (plus their pauses); then whatever is left is cut and counted as interrupted.
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("cannot reach {target}: {reason}. Is the shop running, and is --target right?")]
    Unreachable { target: String, reason: String },
    #[error("{target} does not answer like a Doorbuster: {detail}")]
    NotADoorbuster { target: String, detail: String },
    #[error("cannot write the JSON report to {path}: {source}")]
    Json {
        path: String,
        source: std::io::Error,
    },
}

impl LoadgenError {
    pub fn exit_code(&self) -> u8 {
        EXIT_UNUSABLE
    }
}

/// The process exit status for a run's result; what `main` returns.
pub fn exit_code(result: &Result<Report, LoadgenError>) -> ExitCode {
    ExitCode::from(match result {
        Ok(report) => report.exit_code(),
        Err(error) => error.exit_code(),
    })
}

/// Why the run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The duration or the stages ran out.
    Completed,
    /// `--requests` were sent.
    RequestLimit,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

/// What every user task shares.
#[derive(Debug)]
pub struct Context {
    scenario: Scenario,
    mix: Mix,
    catalog: Arc<Catalog>,
    endpoint: Arc<Endpoint>,
    think_time: Duration,
    started: Instant,
    /// No new journeys (the clock ran out, or stopping).
    closing: CancellationToken,
    /// No new requests at all.
    halt: CancellationToken,
    stop_reason: OnceLock<StopReason>,
    /// Requests left to send, with `--requests`.
    budget: Option<AtomicU64>,
    stats: Arc<Stats>,
    users: AtomicUsize,
    peak_users: AtomicUsize,
    tracker: TaskTracker,
}

impl Context {
    /// Stops the run: at the end of the clock shoppers finish their journeys; otherwise no
    /// request is sent after this. The first reason given is the one reported.
    fn stop(&self, reason: StopReason) {
        let _ = self.stop_reason.set(reason);
        self.closing.cancel();
        if reason != StopReason::Completed {
            self.halt.cancel();
        }
    }

    /// Takes one request from the `--requests` budget; false once it is spent.
    fn take_request(&self) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        match budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        }) {
            Ok(left) => {
                if left == 1 {
                    self.stop(StopReason::RequestLimit);
                }
                true
            }
            Err(_) => false,
        }
    }

    fn user_joined(&self) {
        let now = self.users.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_users.fetch_max(now, Ordering::Relaxed);
    }

    fn user_left(&self) {
        self.users.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `doorbuster loadgen`: runs until the clock, the request limit, Ctrl-C or SIGTERM stops it,
/// prints the report (and writes `--json`), and returns it.
pub async fn run(args: LoadgenArgs) -> Result<Report, LoadgenError> {
    run_until(args, crate::server::shutdown_signal()).await
}

/// [`run`], stopped early (like Ctrl-C) when `shutdown` resolves.
pub async fn run_until(
    args: LoadgenArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Report, LoadgenError> {
    validate(&args)?;
    // Fail on an unwritable path now, not after a long run.
    if let Some(path) = &args.json {
        std::fs::write(path, b"").map_err(|source| LoadgenError::Json {
            path: path.display().to_string(),
            source,
        })?;
    }
    let target = args.target.url().to_owned();
    let unreachable = |reason: String| LoadgenError::Unreachable {
        target: target.clone(),
        reason,
    };
    let endpoint = Arc::new(
        Endpoint::resolve(&args.target, args.timeout)
            .await
            .map_err(|e| unreachable(e.to_string()))?,
    );
    let mut client = Client::new(endpoint.clone());
    client
        .connect()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let catalog = if args.scenario.needs_catalog() {
        Catalog::discover(&mut client)
            .await
            .map_err(|error| match error {
                DiscoveryError::Unreachable => unreachable("the connection was refused".to_owned()),
                DiscoveryError::Unexpected(detail) => LoadgenError::NotADoorbuster {
                    target: target.clone(),
                    detail,
                },
            })?
    } else {
        Catalog::without_products()
    };
    drop(client);
    tracing::info!(
        target = %target,
        scenario = args.scenario.as_str(),
        products = catalog.product_count(),
        categories = catalog.category_count(),
        "load generator starting"
    );

    let ctx = Arc::new(Context {
        scenario: args.scenario,
        mix: args.mix.clone(),
        catalog: Arc::new(catalog),
        endpoint,
        think_time: args.think_time,
        started: Instant::now(),
        closing: CancellationToken::new(),
        halt: CancellationToken::new(),
        stop_reason: OnceLock::new(),
        budget: args.requests.map(AtomicU64::new),
        stats: Arc::new(Stats::default()),
        users: AtomicUsize::new(0),
        peak_users: AtomicUsize::new(0),
        tracker: TaskTracker::new(),
    });
    let run_time = args.run_time();
    let total = match (run_time, args.requests) {
        (Some(time), _) => Total::Time(time),
        (None, Some(requests)) => Total::Requests(requests),
        (None, None) => Total::Time(args::DEFAULT_DURATION),
    };
    let progress = Progress::start(ctx.clone(), total, args.progress_interval);
    let signal = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            shutdown.await;
            ctx.stop(StopReason::Interrupted);
        }
    });
    let clock = tokio::spawn(shape::clock(ctx.clone(), run_time));
    let users = args.users();
    let driver = if args.is_open() {
        let profile = match (&args.stages, args.rps) {
            (Some(stages), _) => Profile::staged(stages),
            (None, rps) => Profile::constant(rps.unwrap_or_default()),
        };
        let permits = Arc::new(Semaphore::new(0));
        let ctx = ctx.clone();
        tokio::spawn(async move {
            shape::open(ctx, profile, users as usize, permits.clone()).await;
            // Shoppers finishing their journeys after closing time are no longer paced.
            permits.close();
        })
    } else {
        let profile = match (&args.stages, args.spawn_rate) {
            (Some(stages), _) => Profile::staged(stages),
            (None, Some(rate)) => Profile::ramp(f64::from(users), rate),
            (None, None) => Profile::constant(f64::from(users)),
        };
        tokio::spawn(shape::closed(ctx.clone(), profile))
    };

    ctx.closing.cancelled().await;
    let _ = driver.await;
    ctx.tracker.close();
    let grace = GRACE_PERIOD + scenario::longest_journey_pauses(args.think_time);
    tokio::select! {
        () = ctx.tracker.wait() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "shoppers did not finish their journeys in time; cutting them short");
            ctx.halt.cancel();
        }
    }
    // Requests still in flight finish within --timeout.
    ctx.tracker.wait().await;
    let elapsed = ctx.started.elapsed();
    signal.abort();
    clock.abort();
    progress.finish().await;

    let facts = report::RunFacts {
        stopped_by: ctx
            .stop_reason
            .get()
            .copied()
            .unwrap_or(StopReason::Completed),
        elapsed,
        peak_users: ctx.peak_users.load(Ordering::Relaxed) as u64,
        dropped: ctx.stats.dropped.load(Ordering::Relaxed),
    };
    let report = Report::new(&args, &ctx.stats.totals(), facts);
    println!("\n{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()).map_err(|source| LoadgenError::Json {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(report)
}

/// The checks clap makes for the command line, for callers that build [`LoadgenArgs`] in code.
fn validate(args: &LoadgenArgs) -> Result<(), LoadgenError> {
    let invalid = |text: &str| Err(LoadgenError::InvalidArguments(text.to_owned()));
    if args.rps.is_some() && args.stages.is_some() {
        return invalid(
            "give --rps or --stages, not both (use --stages with --open for staged rates)",
        );
    }
    if args.open && args.stages.is_none() {
        return invalid("--open needs --stages");
    }
    if args.spawn_rate.is_some() && (args.stages.is_some() || args.is_open()) {
        return invalid(
            "--spawn-rate is for a constant number of users; stages ramp by themselves",
        );
    }
    if args.duration.is_some() && args.stages.is_some() {
        return invalid("the stages set the duration: give --stages or --duration, not both");
    }
    if args.timeout.is_zero() || args.progress_interval.is_zero() {
        return invalid("--timeout and --progress-interval must be above zero");
    }
    if args.users == Some(0) || args.requests == Some(0) {
        return invalid("--users and --requests must be at least 1");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baggage_constants_agree() {
        assert_eq!(
            SYNTHETIC_BAGGAGE,
            format!("{SYNTHETIC_BAGGAGE_KEY}={SYNTHETIC_BAGGAGE_VALUE}")
        );
        assert!(USER_AGENT.starts_with("doorbuster-loadgen/"));
    }

    #[test]
    fn arguments_made_in_code_are_checked_like_the_command_line() {
        let base = LoadgenArgs::new(Target::parse("http://127.0.0.1:1").unwrap());
        assert!(validate(&base).is_ok());
        let stages = shape::Stages::parse("1s:5").unwrap();
        let cases = [
            LoadgenArgs {
                rps: Some(5.0),
                stages: Some(stages.clone()),
                ..base.clone()
            },
            LoadgenArgs {
                open: true,
                ..base.clone()
            },
            LoadgenArgs {
                spawn_rate: Some(1.0),
                rps: Some(5.0),
                ..base.clone()
            },
            LoadgenArgs {
                duration: Some(Duration::from_secs(1)),
                stages: Some(stages),
                ..base.clone()
            },
            LoadgenArgs {
                timeout: Duration::ZERO,
                ..base.clone()
            },
        ];
        for args in cases {
            let error = validate(&args).unwrap_err();
            assert_eq!(error.exit_code(), EXIT_UNUSABLE, "{error}");
        }
    }
}
