//! The `doorbuster loadgen` command line: every flag with its default, and the parsers that turn
//! text such as `30s:50,2m:500` or `browse=80,cart=15,checkout=5` into checked values, so a typo
//! is a usage error (exit 2) before any request is sent.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::client::Target;
use super::scenario::Mix;
use super::shape::Stages;

/// Users when none are given: a closed model's crowd, or an open model's cap on users at once.
pub const DEFAULT_USERS: u32 = 10;
/// The open model's default cap: high enough that a demo-sized rate is never held back by it.
pub const DEFAULT_OPEN_USERS: u32 = 1000;
/// How long a run lasts when neither `--duration`, `--stages` nor `--requests` says.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);

/// Settings of `doorbuster loadgen`.
#[derive(Args, Clone, Debug)]
#[command(
    after_help = "Exit status: 0 when the run passed, 1 when more requests failed than \
    --max-error-rate allows, 2 when the arguments are wrong or the target cannot be reached."
)]
pub struct LoadgenArgs {
    /// Base URL of the Doorbuster to load: `http://127.0.0.1:8080`, or `http://doorbuster` for
    /// the in-cluster Service. Plain HTTP only.
    #[arg(long, value_name = "URL", value_parser = Target::parse)]
    pub target: Target,

    /// What each virtual user does: `journey` is a shopper (home, a category, products, and for
    /// some a cart and a checkout); the others repeat one request, for benchmarking: `home`
    /// (GET /), `category` (GET /c/{slug}), `product` (GET /p/{slug}), `api`
    /// (GET /api/products/{id}), `checkout` (POST /api/checkout, one unit of a random product).
    #[arg(long, value_enum, default_value_t = Scenario::Journey)]
    pub scenario: Scenario,

    /// The journey mix, as weights: shoppers who only browse, who fill a cart and leave, and who
    /// check out.
    #[arg(long, value_name = "WEIGHTS", default_value = "browse=80,cart=15,checkout=5", value_parser = Mix::parse)]
    pub mix: Mix,

    /// Closed model: this many virtual users, each starting its next journey when the last one
    /// ends. With `--rps` or `--open`: the most users busy at once. [default: 10, or 1000 with
    /// `--rps`/`--open`]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub users: Option<u32>,

    /// Closed model: how many users join per second at the start. [default: all at once]
    #[arg(long, value_name = "PER_SECOND", value_parser = positive_number, conflicts_with_all = ["stages", "rps"])]
    pub spawn_rate: Option<f64>,

    /// Open model: send this many requests per second whether or not earlier ones have been
    /// answered, the way independent shoppers arrive.
    #[arg(long, value_name = "PER_SECOND", value_parser = positive_number, conflicts_with = "stages")]
    pub rps: Option<f64>,

    /// A staged profile, `DURATION:TARGET,...` (e.g. `30s:50,2m:500,1m:500,30s:0`): each stage
    /// moves in a straight line from the previous target (0 at the start) to its own. Targets
    /// are users, or requests per second with `--open`. The run lasts as long as the stages.
    #[arg(long, value_name = "STAGES", value_parser = Stages::parse)]
    pub stages: Option<Stages>,

    /// Stage targets are requests per second (open model) instead of users.
    #[arg(long, requires = "stages")]
    pub open: bool,

    /// How long to run. [default: 30s, unless `--stages` or `--requests` sets the end]
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "stages")]
    pub duration: Option<Duration>,

    /// Stop after sending this many requests.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// A shopper's pause between the steps of a journey; each pause is random between half and
    /// one and a half times this. `0s` means none.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub think_time: Duration,

    /// Longest wait for one response (connecting included); a request past it is an error.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Exit with status 1 when more than this share of requests fail. Sold-out answers (409)
    /// are expected outcomes, not failures.
    #[arg(long, value_name = "PERCENT", default_value = "1%", value_parser = parse_percent)]
    pub max_error_rate: f64,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// When stdout is not a terminal (a pod's log), print a progress line this often.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,
}

impl LoadgenArgs {
    /// Arguments with every default, for `target`; what tests and tools start from.
    pub fn new(target: Target) -> LoadgenArgs {
        LoadgenArgs {
            target,
            scenario: Scenario::Journey,
            mix: Mix::default(),
            users: None,
            spawn_rate: None,
            rps: None,
            stages: None,
            open: false,
            duration: None,
            requests: None,
            think_time: Duration::ZERO,
            timeout: Duration::from_secs(10),
            max_error_rate: 1.0,
            json: None,
            progress_interval: Duration::from_secs(5),
        }
    }

    /// True when requests are paced by a rate rather than by users (the open model).
    pub fn is_open(&self) -> bool {
        self.rps.is_some() || self.open
    }

    /// The users setting with its model-dependent default.
    pub fn users(&self) -> u32 {
        self.users.unwrap_or(if self.is_open() {
            DEFAULT_OPEN_USERS
        } else {
            DEFAULT_USERS
        })
    }

    /// When the run ends by the clock, if it does.
    pub fn run_time(&self) -> Option<Duration> {
        match (&self.stages, self.duration, self.requests) {
            (Some(stages), _, _) => Some(stages.total()),
            (None, Some(duration), _) => Some(duration),
            (None, None, Some(_)) => None,
            (None, None, None) => Some(DEFAULT_DURATION),
        }
    }
}

/// What each virtual user does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Shopper journeys in the `--mix` proportions.
    Journey,
    /// `GET /` on repeat.
    Home,
    /// `GET /c/{slug}` of random categories.
    Category,
    /// `GET /p/{slug}` of random products.
    Product,
    /// `GET /api/products/{id}` of random products.
    Api,
    /// `POST /api/checkout` of one unit of a random product.
    Checkout,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Journey => "journey",
            Scenario::Home => "home",
            Scenario::Category => "category",
            Scenario::Product => "product",
            Scenario::Api => "api",
            Scenario::Checkout => "checkout",
        }
    }

    /// Whether the catalog must be discovered first (only the home page needs no ids or slugs).
    pub fn needs_catalog(self) -> bool {
        self != Scenario::Home
    }
}

fn positive_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("expected a number above 0, got {text:?}")),
    }
}

/// `1%`, `1` (both one percent) or `0.5%`.
fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(value) if (0.0..=100.0).contains(&value) => Ok(value),
        _ => Err(format!(
            "expected a percentage from 0 to 100 such as `1%`, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_accept_a_sign_or_none() {
        assert_eq!(parse_percent("1%"), Ok(1.0));
        assert_eq!(parse_percent("0.5"), Ok(0.5));
        assert_eq!(parse_percent("100 %"), Ok(100.0));
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("much").is_err());
    }

    #[test]
    fn run_time_comes_from_stages_duration_or_default() {
        let target = Target::parse("http://127.0.0.1:8080").unwrap();
        let mut args = LoadgenArgs::new(target);
        assert_eq!(args.run_time(), Some(DEFAULT_DURATION));
        args.requests = Some(100);
        assert_eq!(args.run_time(), None, "a request count alone ends the run");
        args.duration = Some(Duration::from_secs(5));
        assert_eq!(args.run_time(), Some(Duration::from_secs(5)));
        args.stages = Some(Stages::parse("1s:5,2s:0").unwrap());
        assert_eq!(args.run_time(), Some(Duration::from_secs(3)));
        assert_eq!(args.users(), DEFAULT_USERS);
        args.open = true;
        assert_eq!(args.users(), DEFAULT_OPEN_USERS);
    }
}
