//! Load-target controls: make each request cost more (CPU time, latency), fail on purpose (a
//! fraction of 500s and 503s), and protect the process from overload (a bound on requests in
//! flight, beyond which requests are answered 503 at once).
//!
//! A Rust shop answers thousands of requests per second per core; an autoscaling demo has to react
//! at a few hundred. These knobs make one pod saturate at demo size, and make slow dependencies,
//! errors and load shedding visible.
//!
//! The CPU work never runs where the runtime's own tasks do: it is burnt on blocking threads, at
//! most one per CPU at a time ([`Controls::burn`]), so probes, the admin API and the accept loop
//! keep getting a share of every core (with the burn on the async workers, a demo setting pushed
//! `/healthz` past the probes' 2 s timeout). A burn stops when its request is abandoned (the
//! request timeout), and one request may burn at most [`MAX_CPU_MS`]. All are off by default, settable at start (`DOORBUSTER_*`)
//! and changeable at run time through the admin API ([`crate::web::control`]).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Which knobs apply to a request: the route table says it of each group of routes it mounts
/// ([`crate::web::Mount`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteGroup {
    /// HTML pages (static assets and art are exempt: they are the page's, not extra requests).
    Pages,
    /// The JSON API, except checkout.
    Api,
    /// Placing an order, through the form or the API.
    Checkout,
}

/// The cost of one request in a group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cost {
    /// CPU time burnt per request, in milliseconds.
    pub cpu_ms: f64,
    /// Added latency per request: uniform between these bounds, in milliseconds.
    pub latency_min_ms: f64,
    pub latency_max_ms: f64,
    /// Fraction of requests answered with an injected 500 or 503 (chosen independently).
    pub error_rate: f64,
}

/// Most CPU time one request may burn, in milliseconds. A second per request already makes one
/// core serve one request a second; beyond it a single request holds a core longer than any
/// probe or client waits.
pub const MAX_CPU_MS: f64 = 1_000.0;

impl Cost {
    fn validate(&self, group: &str) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && (0.0..=60_000.0).contains(&v);
        if !self.cpu_ms.is_finite() || !(0.0..=MAX_CPU_MS).contains(&self.cpu_ms) {
            return Err(format!(
                "{group}: cpu_ms must be between 0 and {MAX_CPU_MS} ms (one request may burn at \
                 most a second of CPU)"
            ));
        }
        if !ok(self.latency_min_ms) || !ok(self.latency_max_ms) {
            return Err(format!("{group}: latencies must be between 0 and 60000 ms"));
        }
        if self.latency_min_ms > self.latency_max_ms {
            return Err(format!(
                "{group}: latency_min_ms must not exceed latency_max_ms"
            ));
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("{group}: error_rate must be between 0 and 1"));
        }
        Ok(())
    }
}

/// Every knob, per route group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    pub pages: Cost,
    pub api: Cost,
    pub checkout: Cost,
}

impl Knobs {
    pub fn cost(&self, group: RouteGroup) -> &Cost {
        match group {
            RouteGroup::Pages => &self.pages,
            RouteGroup::Api => &self.api,
            RouteGroup::Checkout => &self.checkout,
        }
    }

    fn cost_mut(&mut self, group: RouteGroup) -> &mut Cost {
        match group {
            RouteGroup::Pages => &mut self.pages,
            RouteGroup::Api => &mut self.api,
            RouteGroup::Checkout => &mut self.checkout,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.pages.validate("pages")?;
        self.api.validate("api")?;
        self.checkout.validate("checkout")
    }

    /// The knobs in the words of their variables, as a person would set them again:
    /// `DOORBUSTER_CPU_WORK=pages=2ms DOORBUSTER_ERROR_RATE=0.02`, or `off` when none is set.
    pub fn describe(&self) -> String {
        let groups = [
            ("pages", &self.pages),
            ("api", &self.api),
            ("checkout", &self.checkout),
        ];
        // One value for every group is written once (`8ms`), as the variable accepts it.
        let setting = |value: &dyn Fn(&Cost) -> Option<String>| {
            let values: Vec<(&str, Option<String>)> = groups
                .iter()
                .map(|(name, cost)| (*name, value(cost)))
                .collect();
            if values.iter().all(|(_, v)| v.is_some() && *v == values[0].1) {
                return values[0].1.clone();
            }
            let set: Vec<String> = values
                .into_iter()
                .filter_map(|(name, v)| v.map(|v| format!("{name}={v}")))
                .collect();
            (!set.is_empty()).then(|| set.join(","))
        };
        let cpu = setting(&|cost| (cost.cpu_ms > 0.0).then(|| millis(cost.cpu_ms)));
        let latency = setting(&|cost| {
            (cost.latency_max_ms > 0.0).then(|| {
                if cost.latency_min_ms == cost.latency_max_ms {
                    millis(cost.latency_max_ms)
                } else {
                    format!(
                        "{}..{}",
                        millis(cost.latency_min_ms),
                        millis(cost.latency_max_ms)
                    )
                }
            })
        });
        let errors = setting(&|cost| (cost.error_rate > 0.0).then(|| cost.error_rate.to_string()));
        let described: Vec<String> = [
            ("DOORBUSTER_CPU_WORK", cpu),
            ("DOORBUSTER_LATENCY", latency),
            ("DOORBUSTER_ERROR_RATE", errors),
        ]
        .into_iter()
        .filter_map(|(var, value)| value.map(|value| format!("{var}={value}")))
        .collect();
        if described.is_empty() {
            "off".to_owned()
        } else {
            described.join(" ")
        }
    }

    /// Knobs from the start-up settings (see [`PerGroup`] for their syntax).
    pub fn from_settings(
        cpu: &PerGroup<Duration>,
        latency: &PerGroup<LatencyRange>,
        errors: &PerGroup<f64>,
    ) -> Result<Knobs, String> {
        let mut knobs = Knobs::default();
        for group in [RouteGroup::Pages, RouteGroup::Api, RouteGroup::Checkout] {
            let cost = knobs.cost_mut(group);
            if let Some(cpu) = cpu.get(group) {
                cost.cpu_ms = cpu.as_secs_f64() * 1000.0;
            }
            if let Some(range) = latency.get(group) {
                cost.latency_min_ms = range.min.as_secs_f64() * 1000.0;
                cost.latency_max_ms = range.max.as_secs_f64() * 1000.0;
            }
            if let Some(rate) = errors.get(group) {
                cost.error_rate = rate;
            }
        }
        knobs.validate()?;
        Ok(knobs)
    }
}

/// Milliseconds as a duration the settings parse again: `2ms`, or `1500us` for a fraction.
fn millis(ms: f64) -> String {
    if ms.fract() == 0.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.0}us", ms * 1000.0)
    }
}

/// A setting that is either one value for every group (`2ms`) or per group
/// (`pages=2ms,checkout=10ms`; groups not named are off).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerGroup<T> {
    all: Option<T>,
    pages: Option<T>,
    api: Option<T>,
    checkout: Option<T>,
}

impl<T: Copy> PerGroup<T> {
    pub fn get(&self, group: RouteGroup) -> Option<T> {
        let specific = match group {
            RouteGroup::Pages => self.pages,
            RouteGroup::Api => self.api,
            RouteGroup::Checkout => self.checkout,
        };
        specific.or(self.all)
    }
}

impl<T: FromStr<Err = String>> FromStr for PerGroup<T> {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut setting = PerGroup {
            all: None,
            pages: None,
            api: None,
            checkout: None,
        };
        if text.trim().is_empty() {
            return Ok(setting);
        }
        if !text.contains('=') {
            setting.all = Some(text.trim().parse()?);
            return Ok(setting);
        }
        for part in text.split(',') {
            let (group, value) = part.split_once('=').ok_or_else(|| {
                format!("'{part}': write GROUP=VALUE, GROUP being pages, api or checkout")
            })?;
            let value = Some(value.trim().parse()?);
            match group.trim() {
                "pages" => setting.pages = value,
                "api" => setting.api = value,
                "checkout" => setting.checkout = value,
                other => {
                    return Err(format!(
                        "unknown route group '{other}': use pages, api or checkout"
                    ));
                }
            }
        }
        Ok(setting)
    }
}

/// Added latency: `100ms` (fixed) or `50ms..150ms` (uniform).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyRange {
    pub min: Duration,
    pub max: Duration,
}

impl FromStr for LatencyRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parse =
            |t: &str| humantime::parse_duration(t.trim()).map_err(|e| format!("'{t}': {e}"));
        let (min, max) = match text.split_once("..") {
            Some((min, max)) => (parse(min)?, parse(max)?),
            None => {
                let fixed = parse(text)?;
                (fixed, fixed)
            }
        };
        if min > max {
            return Err(format!(
                "'{text}': the lower bound is above the upper bound"
            ));
        }
        Ok(LatencyRange { min, max })
    }
}

/// Wrapper so durations parse with humantime inside [`PerGroup`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cpu(pub Duration);

impl FromStr for Cpu {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(Cpu)
            .map_err(|e| format!("'{text}': {e}"))
    }
}

/// A fraction between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fraction(pub f64);

impl FromStr for Fraction {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a number"))?;
        if !(0.0..=1.0).contains(&value) {
            return Err(format!(
                "'{text}': use a fraction between 0 and 1, such as 0.05"
            ));
        }
        Ok(Fraction(value))
    }
}

impl<T: Copy> PerGroup<T> {
    /// Converts the values (e.g. the parse wrappers into plain values).
    pub fn map<U>(&self, f: impl Fn(T) -> U) -> PerGroup<U> {
        PerGroup {
            all: self.all.map(&f),
            pages: self.pages.map(&f),
            api: self.api.map(&f),
            checkout: self.checkout.map(&f),
        }
    }
}

/// What an injected fault answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Internal,
    Unavailable,
}

/// The live controls: knobs (changeable at run time), the random source for faults, and the
/// in-flight bound.
#[derive(Debug)]
pub struct Controls {
    knobs: RwLock<Knobs>,
    rng: Mutex<StdRng>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// One permit per CPU: how many requests may burn CPU at once.
    burners: Semaphore,
}

impl Controls {
    /// `seed` makes fault injection repeatable (tests); `None` seeds from the OS.
    pub fn new(knobs: Knobs, max_in_flight: usize, seed: Option<u64>) -> Arc<Controls> {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let max_in_flight = max_in_flight.max(1);
        Arc::new(Controls {
            knobs: RwLock::new(knobs),
            rng: Mutex::new(rng),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            // `available_parallelism` honours the container's CPU limit (cgroup `cpu.max`).
            burners: Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
        })
    }

    /// Knobs off, and the default in-flight bound.
    pub fn off() -> Arc<Controls> {
        Controls::new(Knobs::default(), default_max_in_flight(), None)
    }

    pub fn knobs(&self) -> Knobs {
        *self
            .knobs
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_knobs(&self, knobs: Knobs) -> Result<(), String> {
        knobs.validate()?;
        *self
            .knobs
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = knobs;
        Ok(())
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }

    /// A slot for one request, or `None` when the bound is reached (the caller sheds it).
    pub fn try_admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.in_flight.clone().try_acquire_owned().ok()
    }

    /// Burns `amount` of CPU time for one request, on a blocking thread, waiting for a turn when
    /// every CPU already burns for another request. Dropping the future (the request timed out)
    /// stops the burn within microseconds.
    pub async fn burn(&self, amount: Duration) {
        if amount.is_zero() {
            return;
        }
        let Ok(_turn) = self.burners.acquire().await else {
            return;
        };
        /// Tells the burning thread to stop when the request goes away.
        struct StopOnDrop(Arc<AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = stop.0.clone();
        let _ = tokio::task::spawn_blocking(move || burn_cpu(amount, &flag)).await;
    }

    /// The latency to add to one request of `group`.
    pub fn latency(&self, cost: &Cost) -> Duration {
        if cost.latency_max_ms <= 0.0 {
            return Duration::ZERO;
        }
        let ms = if cost.latency_max_ms > cost.latency_min_ms {
            self.random(|rng| rng.random_range(cost.latency_min_ms..=cost.latency_max_ms))
        } else {
            cost.latency_min_ms
        };
        Duration::from_secs_f64(ms / 1000.0)
    }

    /// Whether this request gets an injected fault, and which: each request independently, so
    /// faults never come in bursts.
    pub fn fault(&self, cost: &Cost) -> Option<Fault> {
        if cost.error_rate <= 0.0 {
            return None;
        }
        self.random(|rng| {
            rng.random_bool(cost.error_rate).then(|| {
                if rng.random_bool(0.5) {
                    Fault::Internal
                } else {
                    Fault::Unavailable
                }
            })
        })
    }

    fn random<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut rng)
    }
}

/// Default bound on requests in flight: 256 per CPU. Far above what a healthy pod holds (requests
/// take milliseconds), low enough that a pod under a surge answers 503 quickly instead of queueing
/// until every request times out.
pub fn default_max_in_flight() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * 256
}

/// Burns `amount` of this thread's CPU time with real work (hashing), measured from the thread's
/// own CPU clock so that time spent preempted does not count as work done; stops early once
/// `stop` is set.
pub fn burn_cpu(amount: Duration, stop: &AtomicBool) {
    if amount.is_zero() {
        return;
    }
    let started_cpu = thread_cpu_time();
    let started_wall = Instant::now();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    loop {
        // A batch of work between clock reads: ~20 µs, small next to any sensible setting.
        for _ in 0..4_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        std::hint::black_box(state);
        let done = match (started_cpu, thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            // No per-thread clock (not Linux): fall back to wall time.
            _ => started_wall.elapsed(),
        };
        if done >= amount || stop.load(Ordering::Relaxed) {
            break;
        }
    }
}

/// This thread's CPU time, from `/proc/thread-self/schedstat` (nanoseconds on CPU).
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_for_all_groups_or_each() {
        let cpu: PerGroup<Cpu> = "2ms".parse().unwrap();
        assert_eq!(
            cpu.get(RouteGroup::Api),
            Some(Cpu(Duration::from_millis(2)))
        );
        let cpu: PerGroup<Cpu> = "pages=2ms, checkout=10ms".parse().unwrap();
        assert_eq!(cpu.get(RouteGroup::Api), None);
        assert_eq!(
            cpu.get(RouteGroup::Checkout),
            Some(Cpu(Duration::from_millis(10)))
        );
        assert!("basket=1ms".parse::<PerGroup<Cpu>>().is_err());
        let latency: LatencyRange = "50ms..150ms".parse().unwrap();
        assert_eq!(latency.min, Duration::from_millis(50));
        assert!("150ms..50ms".parse::<LatencyRange>().is_err());
        assert!("1.5".parse::<Fraction>().is_err());
    }

    /// The start-up log names what is set in the variables' own syntax, and that text parses
    /// back into the same knobs.
    #[test]
    fn knobs_are_described_as_their_variables() {
        let knobs = |cpu: &str, latency: &str, errors: &str| {
            Knobs::from_settings(
                &cpu.parse::<PerGroup<Cpu>>().unwrap().map(|c| c.0),
                &latency.parse().unwrap(),
                &errors.parse::<PerGroup<Fraction>>().unwrap().map(|f| f.0),
            )
            .unwrap()
        };
        assert_eq!(Knobs::default().describe(), "off");
        assert_eq!(
            knobs("pages=2ms", "", "").describe(),
            "DOORBUSTER_CPU_WORK=pages=2ms"
        );
        assert_eq!(knobs("8ms", "", "").describe(), "DOORBUSTER_CPU_WORK=8ms");
        let all = knobs(
            "pages=2ms,api=1500us,checkout=10ms",
            "50ms..150ms",
            "checkout=0.1",
        );
        let described = all.describe();
        assert_eq!(
            described,
            "DOORBUSTER_CPU_WORK=pages=2ms,api=1500us,checkout=10ms \
             DOORBUSTER_LATENCY=50ms..150ms DOORBUSTER_ERROR_RATE=checkout=0.1"
        );
        let value = |var: &str| {
            described
                .split(' ')
                .find_map(|word| word.strip_prefix(&format!("{var}=")))
                .unwrap_or_default()
                .to_owned()
        };
        let again = knobs(
            &value("DOORBUSTER_CPU_WORK"),
            &value("DOORBUSTER_LATENCY"),
            &value("DOORBUSTER_ERROR_RATE"),
        );
        assert_eq!(again, all);
    }

    #[test]
    fn faults_follow_the_rate_independently() {
        let controls = Controls::new(Knobs::default(), 10, Some(7));
        let cost = Cost {
            error_rate: 0.25,
            ..Cost::default()
        };
        let faults: Vec<_> = (0..4000).map(|_| controls.fault(&cost)).collect();
        let count = faults.iter().filter(|f| f.is_some()).count();
        // Binomial(4000, 0.25): mean 1000, sd ~27; ±6 sd.
        assert!((840..=1160).contains(&count), "{count}");
        let internal = faults
            .iter()
            .filter(|f| **f == Some(Fault::Internal))
            .count();
        assert!((internal as f64 / count as f64 - 0.5).abs() < 0.1);
        // Never in bursts: the longest run of consecutive faults is short.
        let longest = faults
            .split(|f| f.is_none())
            .map(<[_]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest < 12, "{longest}");
    }

    #[test]
    fn burn_cpu_takes_about_the_asked_time() {
        let start = Instant::now();
        burn_cpu(Duration::from_millis(20), &AtomicBool::new(false));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_burn_stops_when_told() {
        let stop = Arc::new(AtomicBool::new(false));
        let burning = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                burn_cpu(Duration::from_secs(30), &stop);
                start.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        assert!(burning.join().unwrap() < Duration::from_secs(10));
    }

    #[test]
    fn a_request_may_burn_at_most_a_second() {
        let cost = |cpu_ms| Knobs {
            api: Cost {
                cpu_ms,
                ..Cost::default()
            },
            ..Knobs::default()
        };
        assert!(cost(1000.0).validate().is_ok());
        let refused = cost(1000.5).validate().unwrap_err();
        assert!(refused.contains("1000 ms"), "{refused}");
    }
}
