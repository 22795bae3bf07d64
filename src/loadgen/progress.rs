//! Live progress while the run goes: elapsed and total, users, current requests per second,
//! p50/p95/p99 and errors. A person at a terminal gets an indicatif bar redrawn every second; a
//! pod's log (stdout is not a terminal) gets one plain line per `--progress-interval`, since a
//! redrawn bar would be stored as a mess of escape codes.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::report::human_duration;
use super::stats::Tick;

/// How often the terminal bar is redrawn.
const BAR_INTERVAL: Duration = Duration::from_secs(1);

/// Where the run ends, for the "of" in the progress display.
#[derive(Clone, Copy, Debug)]
pub enum Total {
    Time(Duration),
    Requests(u64),
}

/// The running progress display; [`Progress::finish`] stops and clears it.
#[derive(Debug)]
pub struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Progress {
    pub fn start(ctx: Arc<Context>, total: Total, interval: Duration) -> Progress {
        let stop = CancellationToken::new();
        let task = if std::io::stdout().is_terminal() {
            tokio::spawn(bar(ctx, total, stop.clone()))
        } else {
            tokio::spawn(lines(ctx, total, interval, stop.clone()))
        };
        Progress { stop, task }
    }

    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The numbers shown, from one tick of the stats.
fn summary(ctx: &Context, tick: &Tick, window: Duration) -> String {
    let rate = tick.window_requests as f64 / window.as_secs_f64().max(f64::EPSILON);
    let [p50, p95, p99] = tick.window_percentiles_ms;
    let error_rate = if tick.requests == 0 {
        0.0
    } else {
        tick.errors as f64 * 100.0 / tick.requests as f64
    };
    format!(
        "users {}, {rate:.0} req/s, p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, \
         errors {} ({error_rate:.2}%), orders {}, sold out {}",
        ctx.users.load(Ordering::Relaxed),
        tick.errors,
        tick.orders,
        tick.sold_out
    )
}

async fn bar(ctx: Arc<Context>, total: Total, stop: CancellationToken) {
    let (length, unit) = match total {
        Total::Time(duration) => (duration.as_secs().max(1), "s"),
        Total::Requests(requests) => (requests, " requests"),
    };
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stdout());
    let template = format!("[{{elapsed_precise}}] {{bar:24}} {{pos}}/{{len}}{unit}  {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    let mut last = Instant::now();
    let mut ticker = tokio::time::interval(BAR_INTERVAL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => break,
        }
        let tick = ctx.stats.tick();
        let now = Instant::now();
        bar.set_position(match total {
            Total::Time(_) => ctx.started.elapsed().as_secs(),
            Total::Requests(_) => tick.requests,
        });
        bar.set_message(summary(&ctx, &tick, now - last));
        last = now;
    }
    bar.finish_and_clear();
}

async fn lines(ctx: Arc<Context>, total: Total, interval: Duration, stop: CancellationToken) {
    let mut last = Instant::now();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => break,
        }
        let tick = ctx.stats.tick();
        let now = Instant::now();
        let of = match total {
            Total::Time(duration) => format!(
                "{}/{}",
                human_duration(ctx.started.elapsed()),
                human_duration(duration)
            ),
            Total::Requests(requests) => format!("{}/{requests} requests", tick.requests),
        };
        println!("[{of}] {}", summary(&ctx, &tick, now - last));
        last = now;
    }
}
