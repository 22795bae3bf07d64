//! `doorbuster rehearse`: the AKS demo's surge, predicted before going on stage.
//!
//! It reads what will really be applied (a rendered overlay: the Job's stages, the autoscaler's
//! target, bounds and behaviour, the pod's requests), the cluster the guide creates (VM size and
//! count) and the capacity of one pod measured on this binary, then runs the HPA's documented
//! algorithm over the surge and prints the replica curve minute by minute: pods on VM nodes and
//! on the virtual node, and the peak on the virtual node, which is what the burst costs. It fails
//! (exit 1) when the demo would not show what it is for: the surge never reaches the virtual
//! node, hits `maxReplicas` in its first stage, is a closed crowd (its rate would follow the
//! pods instead of leading them), overloads the pods, or outlives the Job's deadline.
//!
//! - [`overlay`]: reading the rendered manifests; [`cluster`]: the guide's node pool and what its
//!   nodes hold; [`capacity`]: measuring one core's capacity, saved for later runs;
//!   [`hpa`]: the autoscaler's algorithm; [`simulate`]: the timeline.

pub mod capacity;
pub mod cluster;
pub mod hpa;
pub mod overlay;
pub mod simulate;

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::loadgen::shape::Profile;
use capacity::Measurement;
use cluster::Pool;
use overlay::Overlay;
use simulate::{Outcome, Setup};

/// Exit status when a check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status when the inputs could not be read.
pub const EXIT_UNUSABLE: u8 = 2;
/// Prometheus's scrape interval when the overlay's ServiceMonitor gives none
/// (kube-prometheus-stack's default).
const DEFAULT_SCRAPE: Duration = Duration::from_secs(30);
/// The `rate()` window when the overlay does not show its query.
const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);

/// Settings of `doorbuster rehearse`.
#[derive(Args, Clone, Debug)]
#[command(
    after_help = "Exit status: 0 when every check passed, 1 when one failed, 2 when the \
    inputs could not be read. scripts/rehearse renders the overlay and runs this."
)]
pub struct RehearseArgs {
    /// The rendered overlay: what `kubectl kustomize k8s/overlays/aks-demo` prints (`-` reads
    /// it from standard input).
    #[arg(long, value_name = "FILE")]
    pub manifests: PathBuf,

    /// What the manifests are, for the report's first line. [default: the `--manifests` path]
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,

    /// The AKS guide: its `az aks create` command names the VM size and count.
    #[arg(long, value_name = "FILE", default_value = "docs/DEPLOY-AKS.md")]
    pub guide: PathBuf,

    /// The capacity measurement to use (with `--measure`: to write).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "docs/rehearsal-capacity.json"
    )]
    pub capacity: PathBuf,

    /// Measure one core's capacity now, with this binary (build it with `--release`), and save
    /// it to `--capacity`. Pins the shop and the load generator to cores 0 and 1 with `taskset`:
    /// run it on a quiet machine.
    #[arg(long)]
    pub measure: bool,

    /// Measurement: rounds (the median counts).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub measure_rounds: u32,

    /// Measurement: length of a round.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub measure_round: Duration,

    /// Measurement: shoppers at once, without pauses (enough to keep one core busy).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub measure_users: u32,

    /// How long a new pod on a VM node takes to be ready (image cached, readiness probe passed).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub vm_pod_start: Duration,

    /// How long a new pod on the virtual node takes to be ready (ACI creates a container group
    /// and pulls the image for every pod).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub aci_pod_start: Duration,

    /// The HPA controller's sync period (`--horizontal-pod-autoscaler-sync-period`).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub hpa_sync_period: Duration,

    /// CPU already requested on each VM node by system pods, e.g. `950m` (from `kubectl describe
    /// node`, "Allocated resources", before the demo is applied). Replaces the built-in estimate.
    #[arg(long, value_name = "CPU", requires = "system_memory", value_parser = cpu_m)]
    pub system_cpu: Option<u64>,

    /// Memory already requested on each VM node by system pods, e.g. `1100Mi`.
    #[arg(long, value_name = "MEMORY", requires = "system_cpu", value_parser = memory_mib)]
    pub system_memory: Option<f64>,

    /// vCPUs of the guide's VM size, when it is not one the rehearsal knows.
    #[arg(long, value_name = "N", requires = "node_memory")]
    pub node_cpu: Option<u32>,

    /// Memory of the guide's VM size, e.g. `16Gi`, when it is not one the rehearsal knows.
    #[arg(long, value_name = "MEMORY", requires = "node_cpu", value_parser = memory_mib)]
    pub node_memory: Option<f64>,
}

fn cpu_m(text: &str) -> Result<u64, String> {
    overlay::parse_cpu_m(text)
        .ok_or_else(|| format!("expected CPU such as `950m` or `1`, got {text:?}"))
}

fn memory_mib(text: &str) -> Result<f64, String> {
    overlay::parse_memory_mib(text)
        .ok_or_else(|| format!("expected memory such as `1100Mi`, got {text:?}"))
}

/// `doorbuster rehearse`: prints the rehearsal and returns its exit status.
pub fn run(args: &RehearseArgs) -> ExitCode {
    match rehearse(args) {
        Ok((text, failures)) => {
            print!("{text}");
            ExitCode::from(if failures == 0 { 0 } else { EXIT_FAILED })
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

/// The rehearsal's text and how many checks failed.
pub fn rehearse(args: &RehearseArgs) -> Result<(String, usize), String> {
    let rendered = if args.manifests.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the manifests from standard input: {e}"))?;
        text
    } else {
        std::fs::read_to_string(&args.manifests)
            .map_err(|e| format!("cannot read {}: {e}", args.manifests.display()))?
    };
    let overlay = Overlay::parse(&rendered)?;
    let guide = std::fs::read_to_string(&args.guide)
        .map_err(|e| format!("cannot read the guide {}: {e}", args.guide.display()))?;
    let size = args.node_cpu.zip(args.node_memory.map(|mib| mib / 1024.0));
    let pool = Pool::from_guide(&guide, size)?;

    let store = &overlay.storefront;
    let surge = &overlay.surge;
    let knobs = capacity::knobs(&store.env);
    let workload = capacity::workload(&surge.args);
    let measurement = if args.measure {
        eprintln!(
            "measuring one core's capacity ({} rounds of {})…",
            args.measure_rounds,
            humantime::format_duration(args.measure_round)
        );
        let measured = capacity::measure(&capacity::Plan {
            knobs: knobs.clone(),
            surge: surge.args.clone(),
            users: args.measure_users,
            rounds: args.measure_rounds,
            round: args.measure_round,
        })?;
        measured.save(&args.capacity)?;
        eprintln!("saved to {}", args.capacity.display());
        measured
    } else {
        Measurement::load(&args.capacity)?
    };
    if let Some(why) = measurement.mismatch(&knobs, &workload) {
        if args.measure {
            eprintln!("warning: this measurement does not stand for a pod: {why}");
        } else {
            return Err(format!(
                "the capacity measurement {} does not stand for these pods: {why}. Measure again with `scripts/rehearse --measure`",
                args.capacity.display()
            ));
        }
    }
    let per_pod = measurement.requests_per_second_per_core * store.cpu_limit_m as f64 / 1000.0;

    let mut out = String::new();
    let mut checks: Vec<(bool, String)> = Vec::new();
    inputs(&mut out, args, &overlay, &pool, &measurement, per_pod);

    let Some(stages) = surge.args.stages.as_ref().filter(|_| surge.args.open) else {
        checks.push((
            false,
            format!(
                "the surge is {}: a closed crowd's targets are users, not requests per second, so its rate follows how fast the pods answer instead of leading them. Give the Job `--open --stages` in requests per second",
                if surge.args.stages.is_some() { "staged in users" } else { "not staged" }
            ),
        ));
        return Ok(finish(out, checks));
    };

    let system_override = args.system_cpu.zip(args.system_memory);
    let job = [(
        format!("Job {}", surge.job),
        surge.cpu_request_m,
        surge.memory_request_mib,
    )];
    let fits = cluster::fit(
        &pool,
        &pool.system_pods(),
        system_override,
        &job,
        store.cpu_request_m,
        store.memory_request_mib,
    );
    let vm_slots = if store.requires_virtual_node {
        0
    } else {
        fits.iter().map(|n| n.storefront_pods).sum()
    };
    nodes(&mut out, &pool, &fits, system_override, vm_slots);

    let mut stage_ends = Vec::new();
    let mut end = Duration::ZERO;
    for stage in &stages.0 {
        end += stage.duration;
        stage_ends.push(end);
    }
    let scaler = &overlay.scaler;
    let setup = Setup {
        profile: Profile::staged(stages),
        stage_ends,
        hpa: scaler.spec.clone(),
        initial_replicas: store.replicas,
        vm_slots,
        can_burst: store.tolerates_virtual_node,
        capacity_per_pod: per_pod,
        sync: args.hpa_sync_period,
        scrape: overlay.scrape_interval.unwrap_or(DEFAULT_SCRAPE),
        window: scaler.rate_window.unwrap_or(DEFAULT_RATE_WINDOW),
        vm_start: args.vm_pod_start,
        aci_start: args.aci_pod_start,
        tail: Duration::from_secs(30 * 60),
    };
    let outcome = simulate::run(&setup);
    table(&mut out, &outcome);
    summary(
        &mut out,
        &setup,
        &outcome,
        store.cpu_request_m,
        store.memory_request_mib,
    );

    let first_stage = stages
        .0
        .first()
        .map(|s| format!("{}:{}", humantime::format_duration(s.duration), s.target))
        .unwrap_or_default();
    checks.push(match outcome.first_aci {
        Some((at, stage)) => (true, format!("reaches the virtual node at {} (stage {stage}), {} pods there at the peak", clock(at), outcome.peak_aci.0)),
        None if !store.tolerates_virtual_node => (false, "never reaches the virtual node: the storefront does not tolerate its taint".to_owned()),
        None => (false, format!(
            "never reaches the virtual node: the peak asks for {} pods and the VM nodes hold {vm_slots}; raise the peak rate (above {} req/s) or lower the threshold",
            outcome.peak_replicas.0,
            (f64::from(vm_slots) * scaler.spec.target * (1.0 + scaler.spec.tolerance)).ceil()
        )),
    });
    checks.push(match outcome.max_reached {
        Some((at, 1)) => (false, format!(
            "hits maxReplicas ({}) at {} in the first stage ({first_stage}): the warm-up alone asks for everything",
            scaler.spec.max, clock(at)
        )),
        Some((at, stage)) => (true, format!(
            "maxReplicas ({}) reached at {} (stage {stage}), not in the first stage; beyond it the pods no longer follow the rate",
            scaler.spec.max, clock(at)
        )),
        None => (true, format!("never hits maxReplicas ({})", scaler.spec.max)),
    });
    checks.push(if outcome.saturated_seconds == 0 {
        (true, format!(
            "no pod is asked for more than it serves: at most {:.0} req/s per ready pod, {:.0}% of its capacity",
            outcome.busiest_pod,
            100.0 * outcome.busiest_pod / per_pod
        ))
    } else {
        (false, format!(
            "the ready pods cannot serve the rate for {} s (up to {:.0} req/s short): pods start too slowly for the climb, or one pod serves too little",
            outcome.saturated_seconds, outcome.worst_shortfall
        ))
    });
    let needed = stages.total()
        + crate::loadgen::GRACE_PERIOD
        + crate::loadgen::scenario::longest_journey_pauses(surge.args.think_time);
    checks.push(match surge.active_deadline {
        Some(deadline) if deadline < needed => (false, format!(
            "the Job's activeDeadlineSeconds ({} s) ends it before the stages and the shoppers' grace period ({} s)",
            deadline.as_secs(), needed.as_secs()
        )),
        Some(deadline) => (true, format!(
            "the Job's activeDeadlineSeconds ({} s) covers the stages and the shoppers' grace period ({} s)",
            deadline.as_secs(), needed.as_secs()
        )),
        None => (true, "the Job has no deadline".to_owned()),
    });
    Ok(finish(out, checks))
}

fn finish(mut out: String, checks: Vec<(bool, String)>) -> (String, usize) {
    out.push_str("\nchecks\n");
    let mut failures = 0;
    for (ok, text) in &checks {
        failures += usize::from(!ok);
        let _ = writeln!(out, "  {}  {text}", if *ok { "ok  " } else { "FAIL" });
    }
    out.push_str(if failures == 0 {
        "REHEARSAL PASSED\n"
    } else {
        "REHEARSAL FAILED\n"
    });
    (wrap(&out, WIDTH), failures)
}

/// Widest line printed: the report is pasted into the guide.
const WIDTH: usize = 100;

/// Breaks lines longer than `width` at spaces, continuing under the text that follows the
/// line's label (the first run of two spaces after its first word).
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        if chars.len() <= width {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let start = chars.iter().position(|c| *c != ' ').unwrap_or(0);
        let indent = (start..chars.len().saturating_sub(1))
            .find(|&i| chars[i] == ' ' && chars[i + 1] == ' ')
            .and_then(|i| (i..chars.len()).find(|&j| chars[j] != ' '))
            .filter(|&i| i < width / 2)
            .unwrap_or(start);
        let mut rest: &[char] = &chars;
        let mut first = true;
        while !rest.is_empty() {
            let room = if first { width } else { width - indent };
            if !first {
                out.extend(std::iter::repeat_n(' ', indent));
            }
            if rest.len() <= room {
                out.extend(rest.iter());
                out.push('\n');
                break;
            }
            let cut = (1..=room).rev().find(|&i| rest[i] == ' ').unwrap_or(room);
            out.extend(rest[..cut].iter());
            out.push('\n');
            rest = &rest[cut..];
            while rest.first() == Some(&' ') {
                rest = &rest[1..];
            }
            first = false;
        }
    }
    out
}

/// `m:ss` from the start of the surge.
fn clock(at: Duration) -> String {
    let s = at.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

fn inputs(
    out: &mut String,
    args: &RehearseArgs,
    overlay: &Overlay,
    pool: &Pool,
    measurement: &Measurement,
    per_pod: f64,
) {
    let store = &overlay.storefront;
    let surge = &overlay.surge;
    let spec = &overlay.scaler.spec;
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| args.manifests.display().to_string());
    let _ = writeln!(
        out,
        "doorbuster rehearse: {label} on the cluster of {}",
        args.guide.display()
    );
    out.push_str("\ninputs\n");
    let model = if surge.args.open {
        "open model: targets are requests per second"
    } else {
        "closed model: targets are users"
    };
    let _ = writeln!(
        out,
        "  surge        Job {} ({model})\n               {}",
        surge.job, surge.command_line
    );
    let _ = writeln!(out, "  scaler       {}", overlay.scaler.source);
    let _ = writeln!(
        out,
        "               metric: rate over {} of the request counter, scraped every {}; HPA sync {}, tolerance {:.0}%",
        humantime::format_duration(overlay.scaler.rate_window.unwrap_or(DEFAULT_RATE_WINDOW)),
        humantime::format_duration(overlay.scrape_interval.unwrap_or(DEFAULT_SCRAPE)),
        humantime::format_duration(args.hpa_sync_period),
        spec.tolerance * 100.0
    );
    let _ = writeln!(
        out,
        "  replicas     {}..{}; up: {}; down: {}",
        spec.min,
        spec.max,
        rules(&spec.up),
        rules(&spec.down)
    );
    let _ = writeln!(
        out,
        "  pod          requests {}m CPU / {:.0}Mi, CPU limit {}m; {}",
        store.cpu_request_m,
        store.memory_request_mib,
        store.cpu_limit_m,
        if store.requires_virtual_node {
            "required onto the virtual node"
        } else if store.tolerates_virtual_node {
            "prefers VM nodes, tolerates the virtual node"
        } else {
            "VM nodes only (no virtual-node toleration)"
        }
    );
    let knobs = if measurement.knobs.is_empty() {
        "no DOORBUSTER_* work knobs".to_owned()
    } else {
        measurement
            .knobs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        out,
        "  capacity     one pod serves {per_pod:.0} req/s: {:.0} req/s per core × {}m CPU limit",
        measurement.requests_per_second_per_core, store.cpu_limit_m
    );
    let rounds: Vec<String> = measurement
        .rounds
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect();
    // To the second.
    let measured_at = measurement
        .measured_at
        .split(['.', 'Z'])
        .next()
        .unwrap_or_default()
        .replace('T', " ");
    let _ = writeln!(
        out,
        "               measured {measured_at} UTC on {} (load average {}; {} build {}), {knobs}",
        measurement.machine, measurement.load_average, measurement.build, measurement.version,
    );
    let _ = writeln!(
        out,
        "               {}: {}",
        measurement.workload, measurement.method
    );
    let _ = writeln!(
        out,
        "               rounds {} req/s; median round p50 {:.1} ms, p99 {:.1} ms (saturated, so queueing included); {} errors",
        rounds.join(", "),
        measurement.p50_ms,
        measurement.p99_ms,
        measurement.errors
    );
    out.push_str(
        "               SQLite; no telemetry exporter runs (127.0.0.1 only), so exporting's cost is left out\n",
    );
    let _ = writeln!(
        out,
        "  pod start    ready {} after creation on a VM node, {} on the virtual node\n               (assumptions: --vm-pod-start, --aci-pod-start)",
        humantime::format_duration(args.vm_pod_start),
        humantime::format_duration(args.aci_pod_start)
    );
    let autoscaler = match pool.autoscaler_max {
        Some(max) => format!(
            "; the cluster autoscaler (--max-count {max}) adds none: a pod that tolerates the virtual node never stays Pending"
        ),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "  VM nodes     {} × {} ({} vCPU, {} GiB), network {}{}, up to {} pods per node{autoscaler}",
        pool.nodes,
        pool.vm_size,
        pool.vcpus,
        pool.memory_gib,
        pool.network,
        pool.network_policy
            .as_deref()
            .map(|p| format!(", network policy {p}"))
            .unwrap_or_default(),
        pool.max_pods
    );
    let _ = writeln!(
        out,
        "  allocatable  {}m CPU (kube-reserved {}m), {:.0}Mi (kube-reserved {:.0}Mi, eviction 100Mi) per node, as \"Node resource reservations\" in the AKS documentation computes them",
        pool.allocatable_cpu_m(),
        pool.kube_reserved_cpu_m(),
        pool.allocatable_memory_mib(),
        pool.kube_reserved_memory_mib()
    );
}

fn rules(rules: &hpa::Rules) -> String {
    let policies: Vec<String> = rules
        .policies
        .iter()
        .map(|policy| match *policy {
            hpa::Policy::Pods { value, period } => {
                format!("{value} pods/{}", humantime::format_duration(period))
            }
            hpa::Policy::Percent { value, period } => {
                format!("{value}%/{}", humantime::format_duration(period))
            }
        })
        .collect();
    let select = match rules.select {
        hpa::Select::Max => "max of",
        hpa::Select::Min => "min of",
        hpa::Select::Disabled => "disabled:",
    };
    format!(
        "{select} {} after a {} window",
        policies.join(", "),
        humantime::format_duration(rules.window)
    )
}

fn nodes(
    out: &mut String,
    pool: &Pool,
    fits: &[cluster::NodeFit],
    system_override: Option<(u64, f64)>,
    vm_slots: u32,
) {
    match system_override {
        Some((cpu, memory)) => {
            let _ = writeln!(
                out,
                "  system pods  {cpu}m CPU / {memory:.0}Mi per node (given)"
            );
        }
        None => {
            let pods = pool.system_pods();
            let daemonsets: Vec<_> = pods.iter().filter(|p| p.replicas == 0).collect();
            let (cpu, memory) = daemonsets
                .iter()
                .fold((0, 0.0), |(c, m), p| (c + p.cpu_m, m + p.memory_mib));
            let cluster_wide: Vec<_> = pods.iter().filter(|p| p.replicas > 0).collect();
            let (wide_cpu, wide_memory) = cluster_wide.iter().fold((0, 0.0), |(c, m), p| {
                (
                    c + p.cpu_m * u64::from(p.replicas),
                    m + p.memory_mib * f64::from(p.replicas),
                )
            });
            let names = |pods: &[&cluster::SystemPod]| {
                pods.iter()
                    .map(|p| {
                        if p.replicas > 1 {
                            format!("{} ×{}", p.name, p.replicas)
                        } else {
                            p.name.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str("  system pods  requests estimated for this cluster (src/rehearsal/cluster.rs says from where; give\n");
            out.push_str("               --system-cpu/--system-memory from `kubectl describe node` to use a real node's)\n");
            let _ = writeln!(
                out,
                "               on every node {cpu}m / {memory:.0}Mi: {}",
                names(&daemonsets)
            );
            let _ = writeln!(
                out,
                "               spread over the nodes {wide_cpu}m / {wide_memory:.0}Mi: {}",
                names(&cluster_wide)
            );
        }
    }
    for (i, node) in fits.iter().enumerate() {
        let job = node.taken_by.iter().any(|name| name.starts_with("Job "));
        let _ = writeln!(
            out,
            "  VM node {}    {}m CPU / {:.0}Mi free after system pods{} → {} storefront pods",
            i + 1,
            node.free_cpu_m,
            node.free_memory_mib,
            if job {
                " and the load generator Job"
            } else {
                ""
            },
            node.storefront_pods
        );
    }
    let _ = writeln!(
        out,
        "  → the VM nodes hold {vm_slots} storefront pods; the rest go to the virtual node"
    );
}

fn table(out: &mut String, outcome: &Outcome) {
    out.push_str("\nminute by minute (from the start of the surge)\n");
    out.push_str("   time stage  offered  metric     asks  replicas  on VMs  on ACI  pending  req/s per ready pod\n");
    for row in &outcome.minutes {
        let stage = if row.stage == 0 {
            "after".to_owned()
        } else {
            row.stage.to_string()
        };
        let vm = if row.vm_ready < row.vm {
            format!("{}+{}", row.vm_ready, row.vm - row.vm_ready)
        } else {
            row.vm.to_string()
        };
        let aci = if row.aci_ready < row.aci {
            format!("{}+{}", row.aci_ready, row.aci - row.aci_ready)
        } else {
            row.aci.to_string()
        };
        let _ = writeln!(
            out,
            "  {:>5} {:>5} {:>8.0} {:>7.0} {:>8} {:>9} {:>7} {:>7} {:>8} {:>20.1}",
            clock(row.at),
            stage,
            row.offered,
            row.metric,
            row.desired,
            row.replicas,
            vm,
            aci,
            row.pending,
            row.per_ready_pod
        );
    }
    out.push_str(
        "  offered: the Job's rate; metric: the total req/s the HPA last read; asks: ceil(metric / target)\n  (the count unchanged within the tolerance), before windows, policies and bounds; a+b: a ready, b starting\n",
    );
}

fn summary(out: &mut String, setup: &Setup, outcome: &Outcome, cpu_m: u64, memory_mib: f64) {
    out.push_str("\nsummary\n");
    let (peak, at) = outcome.peak_replicas;
    let _ = writeln!(out, "  peak replicas        {peak} at {}", clock(at));
    let (aci, aci_at) = outcome.peak_aci;
    let _ = writeln!(
        out,
        "  peak on ACI          {aci} pods at {} (the cost driver)",
        clock(aci_at)
    );
    let minutes = outcome.aci_pod_seconds / 60.0;
    let _ = writeln!(
        out,
        "  ACI usage            {minutes:.0} pod-minutes = {:.2} vCPU-hours and {:.2} GiB-hours (ACI bills per second: multiply by your region's prices)",
        minutes / 60.0 * cpu_m as f64 / 1000.0,
        minutes / 60.0 * memory_mib / 1024.0
    );
    if outcome.peak_pending > 0 {
        let _ = writeln!(
            out,
            "  pending              up to {} pods found no node",
            outcome.peak_pending
        );
    }
    let _ = writeln!(
        out,
        "  surge                {} long; back to {} replicas at {}",
        clock(outcome.surge_end),
        setup.hpa.min,
        outcome
            .back_to_min
            .map_or_else(|| format!("not within {}", clock(outcome.end)), clock)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_under_their_text() {
        let text = "  label        one two three four five six seven\nshort\n";
        assert_eq!(
            wrap(text, 40),
            "  label        one two three four five\n               six seven\nshort\n"
        );
    }
}
