//! Per-pod capacity, measured on this binary: the shop pinned to one core, the load generator
//! pinned to another, both on 127.0.0.1, the overlay's storefront settings applied and the Job's
//! journey mix sent by a closed crowd with no pauses (so the shop is the bottleneck). The median
//! of the rounds is the core's capacity; a pod gets its CPU limit's share of it.
//!
//! Measuring takes a release build and a quiet machine, so the result is saved
//! ([`Measurement`], JSON) and read back by later rehearsals (CI among them), which refuse it when
//! it was made with other settings, another journey mix or a debug build.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::loadgen::LoadgenArgs;

/// Storefront settings the measurement does not take from the overlay: where it listens, its
/// admin token, the drain, which only slows the measurement's end, and the share of traces
/// exported, which does nothing without an exporter (the measurement runs none: it has no
/// network but 127.0.0.1, and what exporting costs a pod is not in its figure).
const NOT_MEASURED: &[&str] = &[
    "DOORBUSTER_HOST",
    "DOORBUSTER_ADMIN_PORT",
    "DOORBUSTER_ADMIN_TOKEN",
    "DOORBUSTER_SKIP_MIGRATIONS",
    "DOORBUSTER_DRAIN_DELAY",
    "DOORBUSTER_TRACE_EXPORT_RATIO",
];

/// One measurement, as saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Requests per second the shop answered on one core: the median of the rounds.
    pub requests_per_second_per_core: f64,
    pub rounds: Vec<f64>,
    /// Latency in the median round, in milliseconds (at saturation: queueing included).
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Failed requests over all rounds.
    pub errors: u64,
    /// The storefront settings the shop ran with.
    pub knobs: BTreeMap<String, String>,
    /// The load generator's scenario, journey mix and think time.
    pub workload: String,
    /// How the load was sent: users, round length, rounds.
    pub method: String,
    /// `release` or `debug`: only a release build measures what a pod does.
    pub build: String,
    pub version: String,
    pub measured_at: String,
    pub machine: String,
    /// The machine's 1-, 5- and 15-minute load averages as the measurement began: other work
    /// on the cores lowers what it finds.
    #[serde(default)]
    pub load_average: String,
}

/// The storefront settings a measurement applies: the overlay's literal `DOORBUSTER_*` values.
pub fn knobs(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .filter(|(name, _)| {
            name.starts_with("DOORBUSTER_") && !NOT_MEASURED.contains(&name.as_str())
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// What the Job's shoppers do, as a measurement records it.
pub fn workload(surge: &LoadgenArgs) -> String {
    format!(
        "{} {}, think time {}",
        surge.scenario.as_str(),
        surge.mix,
        humantime::format_duration(surge.think_time)
    )
}

pub fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

impl Measurement {
    pub fn load(path: &Path) -> Result<Measurement, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the capacity measurement {}: {e}. Measure it with `doorbuster rehearse --measure` (a release build)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a capacity measurement: {e}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Why this measurement does not stand for the overlay's pods, if it does not.
    pub fn mismatch(&self, knobs: &BTreeMap<String, String>, workload: &str) -> Option<String> {
        if self.build != "release" {
            return Some(format!("it was made with a {} build", self.build));
        }
        if &self.knobs != knobs {
            return Some(format!(
                "it ran with the settings {:?}, the overlay's storefront has {:?}",
                self.knobs, knobs
            ));
        }
        if self.workload != workload {
            return Some(format!(
                "it sent `{}`, the Job sends `{workload}`",
                self.workload
            ));
        }
        None
    }
}

/// How to measure.
#[derive(Clone, Debug)]
pub struct Plan {
    pub knobs: BTreeMap<String, String>,
    pub surge: LoadgenArgs,
    pub users: u32,
    pub rounds: u32,
    pub round: Duration,
}

/// A child process killed, and a folder removed, when the measurement ends however it ends.
struct Cleanup {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the measurement (about `rounds × round` plus a few seconds of start-up and warm-up).
pub fn measure(plan: &Plan) -> Result<Measurement, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return Err(
            "measuring needs two CPU cores: one for the shop, one for the load generator"
                .to_owned(),
        );
    }
    let taskset_works = Command::new("taskset")
        .args(["-c", "0", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !taskset_works {
        return Err("measuring needs `taskset` (util-linux) to pin the shop and the load generator to their own cores".to_owned());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let dir = std::env::temp_dir().join(format!("doorbuster-rehearse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut cleanup = Cleanup {
        children: Vec::new(),
        dir: dir.clone(),
    };
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let (port, admin) = (free_port()?, free_port()?);
    let log = std::fs::File::create(dir.join("shop.log")).map_err(|e| e.to_string())?;
    let mut shop = pinned(0, &exe);
    shop.arg("serve")
        .envs(&plan.knobs)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("shop.db").display()),
        )
        .env("DOORBUSTER_HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DOORBUSTER_ADMIN_PORT", admin.to_string())
        .env("DOORBUSTER_DRAIN_DELAY", "0s")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    cleanup.children.push(
        shop.spawn()
            .map_err(|e| format!("cannot start the shop: {e}"))?,
    );
    wait_ready(port, &mut cleanup.children[0], &dir)?;

    let target = format!("http://127.0.0.1:{port}");
    // A short warm-up: connections, page cache, SQLite's cache; not counted.
    run_round(
        &exe,
        &target,
        plan,
        Duration::from_secs(3),
        &dir.join("warmup.json"),
    )?;
    let mut rounds = Vec::new();
    for i in 0..plan.rounds {
        let report = run_round(
            &exe,
            &target,
            plan,
            plan.round,
            &dir.join(format!("round-{i}.json")),
        )?;
        rounds.push(report);
    }
    let mut by_rate: Vec<&serde_json::Value> = rounds.iter().collect();
    by_rate.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    let median = by_rate[by_rate.len() / 2];
    Ok(Measurement {
        requests_per_second_per_core: rate(median),
        rounds: rounds.iter().map(rate).collect(),
        p50_ms: median["latency_ms"]["p50"].as_f64().unwrap_or_default(),
        p99_ms: median["latency_ms"]["p99"].as_f64().unwrap_or_default(),
        errors: rounds
            .iter()
            .map(|r| r["errors"].as_u64().unwrap_or_default())
            .sum(),
        knobs: plan.knobs.clone(),
        workload: workload(&plan.surge),
        method: format!(
            "shop on core 0, `doorbuster loadgen` on core 1, 127.0.0.1; {} users without pauses, {} rounds of {} after a 3s warm-up; median round",
            plan.users,
            plan.rounds,
            humantime::format_duration(plan.round)
        ),
        build: build().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        measured_at: time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        machine: format!("{cores} × {}", cpu_model()),
        load_average,
    })
}

fn rate(report: &serde_json::Value) -> f64 {
    report["requests_per_second"].as_f64().unwrap_or_default()
}

/// `taskset -c CORE exe` with an environment of its own: nothing of the caller's (an
/// Application Insights connection string, a `DATABASE_URL`) reaches the measured processes.
fn pinned(core: u32, exe: &Path) -> Command {
    let mut command = Command::new("taskset");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["-c", &core.to_string()])
        .arg(exe);
    command
}

fn run_round(
    exe: &Path,
    target: &str,
    plan: &Plan,
    length: Duration,
    json: &Path,
) -> Result<serde_json::Value, String> {
    let surge = &plan.surge;
    let mut loadgen = pinned(1, exe);
    loadgen
        .args([
            "loadgen",
            "--target",
            target,
            "--scenario",
            surge.scenario.as_str(),
        ])
        .args(["--mix", &surge.mix.to_string()])
        .args([
            "--think-time",
            &humantime::format_duration(surge.think_time).to_string(),
        ])
        .args(["--users", &plan.users.to_string()])
        .args([
            "--duration",
            &humantime::format_duration(length).to_string(),
        ])
        .args(["--max-error-rate", "100%", "--progress-interval", "1h"])
        .arg("--json")
        .arg(json)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = loadgen
        .spawn()
        .map_err(|e| format!("cannot start the load generator: {e}"))?;
    let deadline = Instant::now() + length + crate::loadgen::GRACE_PERIOD + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the load generator did not finish in time".to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        return Err(format!(
            "the load generator failed ({status}): {}",
            stderr.trim()
        ));
    }
    let text = std::fs::read_to_string(json).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("the load generator's report: {e}"))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// Waits until the shop answers `/readyz` with 200 (at most 30 s).
fn wait_ready(port: u16, shop: &mut Child, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = shop.try_wait() {
            let log = std::fs::read_to_string(dir.join("shop.log")).unwrap_or_default();
            return Err(format!("the shop exited ({status}): {}", log.trim()));
        }
        let ready = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(1)))?;
            stream.write_all(
                b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            )?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head)?;
            Ok(&head == b"HTTP/1.1 200")
        });
        if ready.unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the shop was not ready within 30 s".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name")
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_storefront_settings_that_shape_its_work_are_applied() {
        let env: BTreeMap<String, String> = [
            ("DOORBUSTER_CPU_WORK", "8ms"),
            ("DOORBUSTER_ADMIN_PORT", "9090"),
            ("DOORBUSTER_DRAIN_DELAY", "5s"),
            ("DOORBUSTER_TRACE_EXPORT_RATIO", "0.1"),
            ("DATABASE_URL", "sqlite:///data/doorbuster.db"),
            ("LOG_FORMAT", "json"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            knobs(&env).into_iter().collect::<Vec<_>>(),
            [("DOORBUSTER_CPU_WORK".to_owned(), "8ms".to_owned())]
        );
    }

    #[test]
    fn a_measurement_made_otherwise_is_refused() {
        let measurement = Measurement {
            requests_per_second_per_core: 1000.0,
            rounds: vec![1000.0],
            p50_ms: 1.0,
            p99_ms: 2.0,
            errors: 0,
            knobs: BTreeMap::new(),
            workload: "journey browse=80,cart=15,checkout=5, think time 0s".to_owned(),
            method: String::new(),
            build: "release".to_owned(),
            version: "0.1.0".to_owned(),
            measured_at: String::new(),
            machine: String::new(),
            load_average: String::new(),
        };
        let workload = measurement.workload.clone();
        assert_eq!(measurement.mismatch(&BTreeMap::new(), &workload), None);
        let knobs = BTreeMap::from([("DOORBUSTER_CPU_WORK".to_owned(), "8ms".to_owned())]);
        assert!(measurement.mismatch(&knobs, &workload).is_some());
        assert!(
            measurement
                .mismatch(&BTreeMap::new(), "journey browse=100, think time 0s")
                .is_some()
        );
        let debug = Measurement {
            build: "debug".to_owned(),
            ..measurement
        };
        assert!(
            debug
                .mismatch(&BTreeMap::new(), &workload)
                .unwrap()
                .contains("debug")
        );
    }
}
