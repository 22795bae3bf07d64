//! Counting what happened: per step, requests by status, latencies in an HDR histogram, orders,
//! sold-out answers and errors; per journey kind, how journeys ended.
//!
//! Recording must cost almost nothing next to a request, and thousands of users record at once.
//! Each user therefore keeps its samples in a small [`Recorder`] buffer and hands them to the
//! shared [`Stats`] in batches (every [`FLUSH_EVERY`] samples or [`FLUSH_AFTER`]), taking the lock
//! once per batch rather than once per request. The live view lags by at most that much.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::client::Failure;
use super::scenario::JourneyKind;

/// A user hands its samples over after this many…
pub const FLUSH_EVERY: usize = 64;
/// …or after this long, whichever comes first, so the live view stays current at low rates.
pub const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Latencies are recorded in microseconds up to this; longer ones count as this.
const LATENCY_CEILING_MICROS: u64 = 3_600_000_000;

/// One kind of request, reported on its own line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Home,
    Category,
    Product,
    AddToCart,
    Cart,
    Checkout,
    /// `GET /api/products/{id}` (the `api` scenario).
    Api,
    /// `POST /api/checkout` (the `checkout` scenario).
    ApiCheckout,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Home,
        Step::Category,
        Step::Product,
        Step::AddToCart,
        Step::Cart,
        Step::Checkout,
        Step::Api,
        Step::ApiCheckout,
    ];

    /// The six steps of a shopper's journey, in order.
    pub const JOURNEY: [Step; 6] = [
        Step::Home,
        Step::Category,
        Step::Product,
        Step::AddToCart,
        Step::Cart,
        Step::Checkout,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The name in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Home => "home",
            Step::Category => "category",
            Step::Product => "product",
            Step::AddToCart => "add_to_cart",
            Step::Cart => "cart",
            Step::Checkout => "checkout",
            Step::Api => "api_product",
            Step::ApiCheckout => "api_checkout",
        }
    }

    /// The name in the printed report.
    pub fn label(self) -> &'static str {
        match self {
            Step::Home => "home",
            Step::Category => "category",
            Step::Product => "product",
            Step::AddToCart => "add to cart",
            Step::Cart => "cart",
            Step::Checkout => "checkout",
            Step::Api => "api product",
            Step::ApiCheckout => "api checkout",
        }
    }
}

/// How an answer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The answer the step expects.
    Ok,
    /// A checkout that placed an order (also [`Verdict::Ok`] for the counts).
    Order,
    /// 409: the product sold out. Expected on Black Friday, so not an error.
    SoldOut,
    /// Anything else: an unexpected status, or no answer at all.
    Error,
}

/// What a request got back: a status, or a failure without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    Failed(Failure),
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    step: Step,
    answer: Answer,
    verdict: Verdict,
    micros: u64,
}

/// How a journey ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JourneyEnd {
    /// Every step answered as expected.
    Completed,
    /// Stopped by a 409: the product sold out before the shopper got it.
    SoldOut,
    /// Stopped by an error.
    Failed,
    /// Cut short by Ctrl-C, the request limit, or the end of the grace period.
    Interrupted,
}

fn new_histogram() -> Histogram<u64> {
    // Three significant figures between 1 µs and an hour: percentiles to 0.1%.
    Histogram::new_with_bounds(1, LATENCY_CEILING_MICROS, 3).expect("valid histogram bounds")
}

/// Everything counted for one step.
#[derive(Clone, Debug)]
pub struct StepTotals {
    pub requests: u64,
    pub ok: u64,
    pub orders: u64,
    pub sold_out: u64,
    pub errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub failures: BTreeMap<Failure, u64>,
    pub latency: Histogram<u64>,
}

impl StepTotals {
    fn new() -> StepTotals {
        StepTotals {
            requests: 0,
            ok: 0,
            orders: 0,
            sold_out: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
            latency: new_histogram(),
        }
    }

    fn add(&mut self, sample: &Sample) {
        self.requests += 1;
        match sample.verdict {
            Verdict::Ok => self.ok += 1,
            Verdict::Order => {
                self.ok += 1;
                self.orders += 1;
            }
            Verdict::SoldOut => self.sold_out += 1,
            Verdict::Error => self.errors += 1,
        }
        match sample.answer {
            Answer::Status(status) => *self.statuses.entry(status).or_default() += 1,
            Answer::Failed(failure) => *self.failures.entry(failure).or_default() += 1,
        }
        self.latency.saturating_record(sample.micros.max(1));
    }
}

/// How the journeys of one kind ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct JourneyTotals {
    pub started: u64,
    pub completed: u64,
    pub sold_out: u64,
    pub failed: u64,
    pub interrupted: u64,
}

/// Everything counted so far.
#[derive(Debug)]
pub struct Totals {
    pub steps: Vec<StepTotals>,
    pub journeys: Vec<JourneyTotals>,
    window: Window,
}

impl Totals {
    pub fn step(&self, step: Step) -> &StepTotals {
        &self.steps[step.index()]
    }

    pub fn journey(&self, kind: JourneyKind) -> &JourneyTotals {
        &self.journeys[kind as usize]
    }
}

/// What happened since the last progress tick.
#[derive(Debug)]
struct Window {
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
}

/// The counts shared by every user of a run.
#[derive(Debug)]
pub struct Stats {
    totals: Mutex<Totals>,
    /// Open model: requests that could not start on time because every user was busy.
    pub dropped: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            totals: Mutex::new(Totals {
                steps: Step::ALL.iter().map(|_| StepTotals::new()).collect(),
                journeys: vec![JourneyTotals::default(); JourneyKind::ALL.len()],
                window: Window {
                    requests: 0,
                    errors: 0,
                    latency: new_histogram(),
                },
            }),
            dropped: AtomicU64::new(0),
        }
    }
}

/// A progress tick: totals so far, and the window since the previous tick.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tick {
    pub requests: u64,
    pub errors: u64,
    pub orders: u64,
    pub sold_out: u64,
    pub window_requests: u64,
    pub window_errors: u64,
    /// p50, p95, p99 of the window, in milliseconds (0 when the window is empty).
    pub window_percentiles_ms: [f64; 3],
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Totals> {
        // A panicking user cannot leave the counts half-updated in a way that matters more
        // than losing the whole report would.
        self.totals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the totals and restarts the window.
    pub fn tick(&self) -> Tick {
        let mut totals = self.lock();
        let mut tick = Tick::default();
        for step in &totals.steps {
            tick.requests += step.requests;
            tick.errors += step.errors;
            tick.orders += step.orders;
            tick.sold_out += step.sold_out;
        }
        let window = &mut totals.window;
        tick.window_requests = window.requests;
        tick.window_errors = window.errors;
        if !window.latency.is_empty() {
            tick.window_percentiles_ms = [50.0, 95.0, 99.0]
                .map(|q| window.latency.value_at_quantile(q / 100.0) as f64 / 1000.0);
        }
        window.requests = 0;
        window.errors = 0;
        window.latency.reset();
        tick
    }

    /// The final counts (call once every user has finished).
    pub fn totals(&self) -> MutexGuard<'_, Totals> {
        self.lock()
    }
}

/// One user's buffer of samples not yet handed to [`Stats`]. Flushed when dropped.
#[derive(Debug)]
pub struct Recorder {
    stats: Arc<Stats>,
    samples: Vec<Sample>,
    journeys: Vec<(JourneyKind, Option<JourneyEnd>)>,
    last_flush: Instant,
}

impl Recorder {
    pub fn new(stats: Arc<Stats>) -> Recorder {
        Recorder {
            stats,
            samples: Vec::with_capacity(FLUSH_EVERY),
            journeys: Vec::new(),
            last_flush: Instant::now(),
        }
    }

    /// Records one answered (or failed) request that finished at `now`.
    pub fn request(
        &mut self,
        step: Step,
        answer: Answer,
        verdict: Verdict,
        latency: Duration,
        now: Instant,
    ) {
        self.samples.push(Sample {
            step,
            answer,
            verdict,
            micros: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        });
        if self.samples.len() >= FLUSH_EVERY || now.duration_since(self.last_flush) >= FLUSH_AFTER {
            self.flush_at(now);
        }
    }

    /// Records that a journey of `kind` started (with its first request).
    pub fn journey_started(&mut self, kind: JourneyKind) {
        self.journeys.push((kind, None));
    }

    pub fn journey_ended(&mut self, kind: JourneyKind, end: JourneyEnd) {
        self.journeys.push((kind, Some(end)));
    }

    pub fn flush(&mut self) {
        self.flush_at(Instant::now());
    }

    fn flush_at(&mut self, now: Instant) {
        self.last_flush = now;
        if self.samples.is_empty() && self.journeys.is_empty() {
            return;
        }
        let mut totals = self.stats.lock();
        let totals = &mut *totals;
        for sample in self.samples.drain(..) {
            totals.steps[sample.step.index()].add(&sample);
            totals.window.requests += 1;
            if sample.verdict == Verdict::Error {
                totals.window.errors += 1;
            }
            totals
                .window
                .latency
                .saturating_record(sample.micros.max(1));
        }
        for (kind, end) in self.journeys.drain(..) {
            let journey = &mut totals.journeys[kind as usize];
            match end {
                None => journey.started += 1,
                Some(JourneyEnd::Completed) => journey.completed += 1,
                Some(JourneyEnd::SoldOut) => journey.sold_out += 1,
                Some(JourneyEnd::Failed) => journey.failed += 1,
                Some(JourneyEnd::Interrupted) => journey.interrupted += 1,
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_hand_over_everything() {
        let stats = Arc::new(Stats::default());
        let mut recorder = Recorder::new(stats.clone());
        let now = Instant::now();
        let ms = Duration::from_millis;
        recorder.journey_started(JourneyKind::Checkout);
        recorder.request(Step::Home, Answer::Status(200), Verdict::Ok, ms(2), now);
        recorder.request(
            Step::Checkout,
            Answer::Status(303),
            Verdict::Order,
            ms(9),
            now,
        );
        recorder.request(
            Step::Checkout,
            Answer::Status(409),
            Verdict::SoldOut,
            ms(4),
            now,
        );
        recorder.request(
            Step::Checkout,
            Answer::Failed(Failure::TimedOut),
            Verdict::Error,
            ms(10_000),
            now,
        );
        recorder.journey_ended(JourneyKind::Checkout, JourneyEnd::Completed);
        drop(recorder);

        let tick = stats.tick();
        assert_eq!(
            (tick.requests, tick.errors, tick.orders, tick.sold_out),
            (4, 1, 1, 1)
        );
        assert_eq!(tick.window_requests, 4);
        assert_eq!(stats.tick().window_requests, 0, "the window restarts");

        let totals = stats.totals();
        let checkout = totals.step(Step::Checkout);
        assert_eq!((checkout.requests, checkout.ok, checkout.errors), (3, 1, 1));
        assert_eq!(checkout.statuses, BTreeMap::from([(303, 1), (409, 1)]));
        assert_eq!(checkout.failures, BTreeMap::from([(Failure::TimedOut, 1)]));
        let slowest = checkout.latency.max() as f64;
        assert!(
            (slowest - 10e6).abs() / 10e6 < 0.001,
            "within 0.1%: {slowest}"
        );
        let journey = totals.journey(JourneyKind::Checkout);
        assert_eq!((journey.started, journey.completed), (1, 1));
    }
}
