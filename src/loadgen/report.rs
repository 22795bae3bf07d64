//! The final report: per step, counts, requests per second, latency percentiles and status
//! codes; per journey kind, how the journeys ended; overall, orders placed, sold-out answers
//! and the error rate against `--max-error-rate`. Printed for people, serialised for machines
//! (`--json`) from the same struct, so the two never disagree.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::args::{LoadgenArgs, Scenario};
use super::client::Failure;
use super::scenario::JourneyKind;
use super::stats::{JourneyTotals, Step, StepTotals, Totals};
use super::{EXIT_ERROR_RATE, EXIT_PASSED, StopReason, USER_AGENT};

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Latency {
        if histogram.is_empty() {
            return Latency::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Latency {
            min: ms(histogram.min()),
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
        }
    }
}

/// One step's line.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub step: &'static str,
    #[serde(skip)]
    pub label: &'static str,
    pub requests: u64,
    /// Answered as the step expects (303 for add to cart and a placed order, 200 for pages).
    pub ok: u64,
    pub orders_placed: u64,
    /// 409 answers: sold out, an expected outcome.
    pub sold_out: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
    /// Answers by status code, plus `connect_failed`, `timed_out` and `broken_connection`.
    pub statuses: BTreeMap<String, u64>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub generator: &'static str,
    pub target: String,
    pub scenario: Scenario,
    /// The journey mix (journey scenario only).
    pub mix: Option<String>,
    pub model: &'static str,
    /// The load as asked for: users, a rate, or stages.
    pub load: String,
    pub stopped_by: StopReason,
    pub duration_seconds: f64,
    pub peak_users: u64,
    pub requests: u64,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
    pub orders_placed: u64,
    pub sold_out: u64,
    pub errors: u64,
    pub error_rate_percent: f64,
    pub max_error_rate_percent: f64,
    /// Open model: requests that could not start on time because every user was busy.
    pub dropped: u64,
    /// The error rate is within the limit.
    pub passed: bool,
    pub steps: Vec<StepReport>,
    /// How journeys of each kind ended (journey scenario only).
    pub journeys: Option<BTreeMap<&'static str, JourneyTotals>>,
}

/// What [`Report::new`] needs to know about the run besides the counts.
#[derive(Debug)]
pub struct RunFacts {
    pub stopped_by: StopReason,
    pub elapsed: Duration,
    pub peak_users: u64,
    pub dropped: u64,
}

impl Report {
    pub fn new(args: &LoadgenArgs, totals: &Totals, facts: RunFacts) -> Report {
        let seconds = facts.elapsed.as_secs_f64().max(f64::EPSILON);
        let journey = args.scenario == Scenario::Journey;
        let mut all = totals.step(Step::Home).latency.clone();
        all.reset();
        let mut steps = Vec::new();
        for step in Step::ALL {
            let counts = totals.step(step);
            if counts.requests > 0 || (journey && Step::JOURNEY.contains(&step)) {
                // Histograms with the same bounds always add up.
                let _ = all.add(&counts.latency);
                steps.push(step_report(step, counts, seconds));
            }
        }
        let sum = |f: fn(&StepReport) -> u64| steps.iter().map(f).sum::<u64>();
        let requests = sum(|s| s.requests);
        let errors = sum(|s| s.errors);
        let error_rate_percent = if requests == 0 {
            0.0
        } else {
            errors as f64 * 100.0 / requests as f64
        };
        let load = match (&args.stages, args.rps) {
            (Some(stages), _) => format!("stages {stages}"),
            (None, Some(rps)) => format!("{rps} requests/s"),
            (None, None) => match args.spawn_rate {
                Some(rate) => format!("{} users, {rate} joining per second", args.users()),
                None => format!("{} users", args.users()),
            },
        };
        Report {
            generator: USER_AGENT,
            target: args.target.url().to_owned(),
            scenario: args.scenario,
            mix: journey.then(|| args.mix.to_string()),
            model: if args.is_open() { "open" } else { "closed" },
            load,
            stopped_by: facts.stopped_by,
            duration_seconds: facts.elapsed.as_secs_f64(),
            peak_users: facts.peak_users,
            requests,
            requests_per_second: requests as f64 / seconds,
            latency_ms: Latency::of(&all),
            orders_placed: sum(|s| s.orders_placed),
            sold_out: sum(|s| s.sold_out),
            errors,
            error_rate_percent,
            max_error_rate_percent: args.max_error_rate,
            dropped: facts.dropped,
            passed: error_rate_percent <= args.max_error_rate,
            steps,
            journeys: journey.then(|| {
                JourneyKind::ALL
                    .iter()
                    .map(|k| (k.as_str(), *totals.journey(*k)))
                    .collect()
            }),
        }
    }

    /// The process exit status: [`EXIT_PASSED`] or [`EXIT_ERROR_RATE`].
    pub fn exit_code(&self) -> u8 {
        if self.passed {
            EXIT_PASSED
        } else {
            EXIT_ERROR_RATE
        }
    }

    /// The line of `step` (`home`, `add_to_cart`, …), if the run reports it.
    pub fn step(&self, step: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.step == step)
    }

    /// The requests of `step`, 0 when it is not reported.
    pub fn requests(&self, step: &str) -> u64 {
        self.step(step).map_or(0, |s| s.requests)
    }

    /// How journeys of `kind` (`browse`, `cart`, `checkout`) ended.
    pub fn journey(&self, kind: &str) -> JourneyTotals {
        self.journeys
            .as_ref()
            .and_then(|j| j.get(kind).copied())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn step_report(step: Step, counts: &StepTotals, seconds: f64) -> StepReport {
    let mut statuses: BTreeMap<String, u64> = counts
        .statuses
        .iter()
        .map(|(status, n)| (status.to_string(), *n))
        .collect();
    for failure in Failure::ALL {
        if let Some(n) = counts.failures.get(&failure) {
            statuses.insert(failure.as_str().to_owned(), *n);
        }
    }
    StepReport {
        step: step.as_str(),
        label: step.label(),
        requests: counts.requests,
        ok: counts.ok,
        orders_placed: counts.orders,
        sold_out: counts.sold_out,
        errors: counts.errors,
        requests_per_second: counts.requests as f64 / seconds,
        latency_ms: Latency::of(&counts.latency),
        statuses,
    }
}

/// `3m 30.2s`, `12.5s`.
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        let minutes = (seconds / 60.0).floor();
        format!("{minutes:.0}m {:.0}s", seconds - minutes * 60.0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stopped = match self.stopped_by {
            StopReason::Completed => "completed",
            StopReason::RequestLimit => "request limit reached",
            StopReason::Interrupted => "interrupted",
        };
        writeln!(f, "{} → {}", self.generator, self.target)?;
        let mix = self
            .mix
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        writeln!(
            f,
            "scenario {}{mix}, {} model, {}",
            self.scenario.as_str(),
            self.model,
            self.load
        )?;
        writeln!(
            f,
            "ran {} ({stopped}), peak {} users, {} requests, {:.1}/s",
            human_duration(Duration::from_secs_f64(self.duration_seconds)),
            self.peak_users,
            self.requests,
            self.requests_per_second
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<13}{:>9}{:>9}{:>9}{:>9}{:>8}{:>9}{:>9}{:>9}{:>9}  statuses",
            "step",
            "requests",
            "req/s",
            "ok",
            "sold out",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms"
        )?;
        for step in &self.steps {
            write_row(f, step)?;
        }
        if self.steps.len() > 1 {
            let all = StepReport {
                step: "all",
                label: "all",
                requests: self.requests,
                ok: self.steps.iter().map(|s| s.ok).sum(),
                orders_placed: self.orders_placed,
                sold_out: self.sold_out,
                errors: self.errors,
                requests_per_second: self.requests_per_second,
                latency_ms: self.latency_ms,
                statuses: BTreeMap::new(),
            };
            write_row(f, &all)?;
        }
        if let Some(journeys) = &self.journeys {
            writeln!(f)?;
            writeln!(
                f,
                "{:<13}{:>9}{:>10}{:>9}{:>8}{:>12}",
                "journey", "started", "completed", "sold out", "failed", "interrupted"
            )?;
            for kind in JourneyKind::ALL {
                let j = journeys.get(kind.as_str()).copied().unwrap_or_default();
                writeln!(
                    f,
                    "{:<13}{:>9}{:>10}{:>9}{:>8}{:>12}",
                    kind.as_str(),
                    j.started,
                    j.completed,
                    j.sold_out,
                    j.failed,
                    j.interrupted
                )?;
            }
        }
        writeln!(f)?;
        write!(
            f,
            "orders placed {}, sold-out answers {}, errors {} of {} ({:.2}%, limit {}%)",
            self.orders_placed,
            self.sold_out,
            self.errors,
            self.requests,
            self.error_rate_percent,
            self.max_error_rate_percent
        )?;
        if self.dropped > 0 {
            write!(
                f,
                ", {} requests dropped: every user was busy (raise --users)",
                self.dropped
            )?;
        }
        writeln!(f)?;
        if self.passed {
            writeln!(f, "PASSED")
        } else {
            writeln!(
                f,
                "FAILED: the error rate {:.2}% is over the {}% limit (--max-error-rate)",
                self.error_rate_percent, self.max_error_rate_percent
            )
        }
    }
}

fn write_row(f: &mut fmt::Formatter<'_>, step: &StepReport) -> fmt::Result {
    let statuses = step
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}:{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let latency = &step.latency_ms;
    writeln!(
        f,
        "{:<13}{:>9}{:>9.1}{:>9}{:>9}{:>8}{:>9.2}{:>9.2}{:>9.2}{:>9.2}  {statuses}",
        step.label,
        step.requests,
        step.requests_per_second,
        step.ok,
        step.sold_out,
        step.errors,
        latency.p50,
        latency.p95,
        latency.p99,
        latency.max
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(210)), "3m 30s");
    }
}
