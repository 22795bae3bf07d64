//! The surge, second by second: the Job's rate, what the pods serve, what Prometheus's `rate()`
//! shows, what the HPA decides every sync, and where each new pod lands.
//!
//! - **Traffic**: the open model sends the stage's rate whatever happens; the Service spreads it
//!   over the ready pods, each serving at most its measured capacity. What they serve is the
//!   request counter Prometheus scrapes.
//! - **Metric**: `sum(rate(counter[window]))` at each HPA sync: the counter's slope between the
//!   first and last scrape inside the window (KEDA asks Prometheus when the HPA asks KEDA).
//! - **Placement**: a new pod goes to a VM node while one has room for its requests (the
//!   preferred node affinity ranks them first), else to the virtual node if the pod tolerates it,
//!   else it stays Pending. A pod is ready after the VM or ACI start time.
//! - **Removal**: the ReplicaSet removes Pending pods first, then pods not yet ready, then pods
//!   on the most crowded node, newest first: the virtual node, which holds many replicas, loses
//!   its pods before the VMs do.

use std::time::Duration;

use super::hpa::{Hpa, Spec};
use crate::loadgen::shape::Profile;

/// Everything that shapes the timeline.
#[derive(Clone, Debug)]
pub struct Setup {
    pub profile: Profile,
    /// When each stage ends, from the start of the surge.
    pub stage_ends: Vec<Duration>,
    pub hpa: Spec,
    pub initial_replicas: u32,
    /// Storefront pods the VM nodes hold.
    pub vm_slots: u32,
    pub can_burst: bool,
    /// Requests per second one pod serves at most.
    pub capacity_per_pod: f64,
    pub sync: Duration,
    pub scrape: Duration,
    pub window: Duration,
    pub vm_start: Duration,
    pub aci_start: Duration,
    /// How long after the surge to keep watching the scale-down, at most.
    pub tail: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Vm,
    Aci,
    Pending,
}

#[derive(Clone, Copy, Debug)]
struct Pod {
    place: Place,
    created: u64,
    ready_at: u64,
}

/// The state at one moment (the report prints one per minute).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub at: Duration,
    /// 1-based stage, 0 once the stages are over.
    pub stage: usize,
    pub offered: f64,
    /// The metric the HPA saw at its last sync.
    pub metric: f64,
    pub desired: u32,
    pub replicas: u32,
    pub vm: u32,
    pub vm_ready: u32,
    pub aci: u32,
    pub aci_ready: u32,
    pub pending: u32,
    /// Requests per second each ready pod serves.
    pub per_ready_pod: f64,
}

/// The whole timeline, summed up.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub minutes: Vec<Sample>,
    pub surge_end: Duration,
    pub end: Duration,
    /// When the first pod went to the virtual node, and in which stage.
    pub first_aci: Option<(Duration, usize)>,
    pub peak_aci: (u32, Duration),
    pub peak_replicas: (u32, Duration),
    /// When the replica count first reached `maxReplicas`, and in which stage.
    pub max_reached: Option<(Duration, usize)>,
    pub peak_pending: u32,
    /// Back at `minReplicas` after the surge.
    pub back_to_min: Option<Duration>,
    /// Pod-seconds on the virtual node (ACI bills each container group per second).
    pub aci_pod_seconds: f64,
    /// Seconds in which the ready pods could not serve the rate, and the worst shortfall.
    pub saturated_seconds: u32,
    pub worst_shortfall: f64,
    /// The most requests per second one ready pod served.
    pub busiest_pod: f64,
}

fn stage_at(stage_ends: &[Duration], at: Duration) -> usize {
    stage_ends
        .iter()
        .position(|&end| at < end)
        .map_or(0, |i| i + 1)
}

pub fn run(setup: &Setup) -> Outcome {
    let surge_end = setup.stage_ends.last().copied().unwrap_or_default();
    let last = (surge_end + setup.tail).as_secs();
    let (sync, scrape) = (setup.sync.as_secs().max(1), setup.scrape.as_secs().max(1));
    let mut hpa = Hpa::new(setup.hpa.clone());
    let mut pods: Vec<Pod> = Vec::new();
    let place_new = |pods: &[Pod], now: u64| -> Pod {
        let on_vms = pods.iter().filter(|p| p.place == Place::Vm).count() as u32;
        let (place, start) = if on_vms < setup.vm_slots {
            (Place::Vm, setup.vm_start)
        } else if setup.can_burst {
            (Place::Aci, setup.aci_start)
        } else {
            (Place::Pending, Duration::ZERO)
        };
        Pod {
            place,
            created: now,
            ready_at: if place == Place::Pending {
                u64::MAX
            } else {
                now + start.as_secs()
            },
        }
    };
    for _ in 0..setup.initial_replicas.max(setup.hpa.min) {
        let mut pod = place_new(&pods, 0);
        // Running before the surge starts.
        if pod.place != Place::Pending {
            pod.ready_at = 0;
        }
        pods.push(pod);
    }
    let mut outcome = Outcome {
        surge_end,
        ..Outcome::default()
    };
    let mut counter = 0.0f64;
    let mut scrapes: Vec<(u64, f64)> = Vec::new();
    let (mut metric, mut desired) = (0.0, pods.len() as u32);
    let mut quiet_at_min_since: Option<u64> = None;
    for now in 0..=last {
        let at = Duration::from_secs(now);
        let offered = if at < surge_end {
            setup.profile.at(at)
        } else {
            0.0
        };
        let ready = pods.iter().filter(|p| p.ready_at <= now).count() as f64;
        let served = offered.min(ready * setup.capacity_per_pod);
        if offered - served > 0.5 {
            outcome.saturated_seconds += 1;
            outcome.worst_shortfall = outcome.worst_shortfall.max(offered - served);
        }
        let per_ready_pod = if ready > 0.0 { served / ready } else { 0.0 };
        outcome.busiest_pod = outcome.busiest_pod.max(per_ready_pod);
        if now % scrape == 0 {
            scrapes.push((now, counter));
        }
        counter += served;

        if now % sync == 0 {
            let window = setup.window.as_secs();
            let inside: Vec<&(u64, f64)> =
                scrapes.iter().filter(|(t, _)| *t + window > now).collect();
            metric = match (inside.first(), inside.last()) {
                (Some(first), Some(last)) if last.0 > first.0 => {
                    (last.1 - first.1) / (last.0 - first.0) as f64
                }
                _ => 0.0,
            };
            scrapes.retain(|(t, _)| *t + window + scrape > now);
            let decision = hpa.sync(at, pods.len() as u32, metric);
            desired = decision.desired;
            let target = decision.replicas as usize;
            while pods.len() < target {
                let pod = place_new(&pods, now);
                pods.push(pod);
            }
            while pods.len() > target {
                remove_one(&mut pods, now);
            }
            // Pods freed on the VMs take in what was Pending.
            let on_vms = pods.iter().filter(|p| p.place == Place::Vm).count() as u32;
            let mut room = setup.vm_slots.saturating_sub(on_vms);
            for pod in pods.iter_mut().filter(|p| p.place == Place::Pending) {
                if room == 0 {
                    break;
                }
                *pod = Pod {
                    place: Place::Vm,
                    created: pod.created,
                    ready_at: now + setup.vm_start.as_secs(),
                };
                room -= 1;
            }
        }

        let count = |place: Place, ready_only: bool| {
            pods.iter()
                .filter(|p| p.place == place && (!ready_only || p.ready_at <= now))
                .count() as u32
        };
        let (aci, replicas) = (count(Place::Aci, false), pods.len() as u32);
        let stage = stage_at(&setup.stage_ends, at);
        outcome.aci_pod_seconds += f64::from(aci);
        if aci > 0 && outcome.first_aci.is_none() {
            outcome.first_aci = Some((at, stage));
        }
        if aci > outcome.peak_aci.0 {
            outcome.peak_aci = (aci, at);
        }
        if replicas > outcome.peak_replicas.0 {
            outcome.peak_replicas = (replicas, at);
        }
        if replicas >= setup.hpa.max && outcome.max_reached.is_none() {
            outcome.max_reached = Some((at, stage));
        }
        outcome.peak_pending = outcome.peak_pending.max(count(Place::Pending, false));
        if now % 60 == 0 {
            outcome.minutes.push(Sample {
                at,
                stage,
                offered,
                metric,
                desired,
                replicas,
                vm: count(Place::Vm, false),
                vm_ready: count(Place::Vm, true),
                aci,
                aci_ready: count(Place::Aci, true),
                pending: count(Place::Pending, false),
                per_ready_pod,
            });
        }
        outcome.end = at;
        if at >= surge_end && replicas <= setup.hpa.min {
            let since = *quiet_at_min_since.get_or_insert(now);
            if outcome.back_to_min.is_none() {
                outcome.back_to_min = Some(Duration::from_secs(since));
            }
            // One more minute row at the floor, then stop.
            if now >= since + 60 && now % 60 == 0 {
                break;
            }
        } else {
            quiet_at_min_since = None;
        }
    }
    outcome
}

/// Removes the pod the ReplicaSet would remove first (see the module documentation).
fn remove_one(pods: &mut Vec<Pod>, now: u64) {
    let rank = |pod: &Pod| -> (u8, u64) {
        let class = match (pod.place, pod.ready_at <= now) {
            (Place::Pending, _) => 0,
            (_, false) => 1,
            (Place::Aci, true) => 2,
            (Place::Vm, true) => 3,
        };
        // Newest first within a class.
        (class, u64::MAX - pod.created)
    };
    if let Some(index) = (0..pods.len()).min_by_key(|&i| rank(&pods[i])) {
        pods.remove(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::shape::Stages;
    use crate::rehearsal::hpa::{Policy, Rules, Select};

    fn setup(stages: &str, vm_slots: u32) -> Setup {
        let stages = Stages::parse(stages).unwrap();
        let mut ends = Vec::new();
        let mut at = Duration::ZERO;
        for stage in &stages.0 {
            at += stage.duration;
            ends.push(at);
        }
        Setup {
            profile: Profile::staged(&stages),
            stage_ends: ends,
            hpa: Spec {
                min: 2,
                max: 30,
                target: 20.0,
                up: Rules::default_up(),
                down: Rules {
                    window: Duration::from_secs(120),
                    select: Select::Min,
                    policies: vec![Policy::Percent {
                        value: 50,
                        period: Duration::from_secs(60),
                    }],
                },
                tolerance: 0.1,
            },
            initial_replicas: 2,
            vm_slots,
            can_burst: true,
            capacity_per_pod: 1000.0,
            sync: Duration::from_secs(15),
            scrape: Duration::from_secs(15),
            window: Duration::from_secs(60),
            vm_start: Duration::from_secs(10),
            aci_start: Duration::from_secs(60),
            tail: Duration::from_secs(1800),
        }
    }

    #[test]
    fn a_steady_climb_is_followed_and_overflows_onto_the_virtual_node() {
        let outcome = run(&setup("1m:30,5m:400,3m:400,1m:0", 8));
        assert_eq!(outcome.peak_replicas.0, 20, "400 / 20");
        assert_eq!(outcome.peak_aci.0, 12, "20 − 8 on VMs");
        let (first, stage) = outcome.first_aci.unwrap();
        assert_eq!(stage, 2, "during the climb");
        assert!(first > Duration::from_secs(120), "{first:?}");
        assert!(outcome.max_reached.is_none());
        assert_eq!(outcome.saturated_seconds, 0);
        let back = outcome.back_to_min.unwrap();
        assert!(
            back > Duration::from_secs(600) && back < Duration::from_secs(1200),
            "{back:?}"
        );
        // The table has a row per minute, each with VM + ACI + Pending = replicas.
        for row in &outcome.minutes {
            assert_eq!(row.vm + row.aci + row.pending, row.replicas, "{row:?}");
        }
    }

    #[test]
    fn a_surge_too_small_never_bursts_and_one_too_fast_hits_the_ceiling_early() {
        let small = run(&setup("1m:30,5m:100,1m:0", 8));
        assert_eq!(small.first_aci, None);
        assert_eq!(small.peak_replicas.0, 5);

        let instant = run(&setup("2m:900,2m:900", 8));
        let (_, stage) = instant.max_reached.expect("900 / 20 > 30");
        assert_eq!(stage, 1);
    }

    #[test]
    fn without_a_toleration_the_overflow_waits_pending() {
        let mut no_burst = setup("1m:30,5m:400,3m:400,1m:0", 8);
        no_burst.can_burst = false;
        let outcome = run(&no_burst);
        assert_eq!(outcome.first_aci, None);
        assert_eq!(outcome.peak_pending, 12);
        assert_eq!(
            outcome.saturated_seconds, 0,
            "8 pods of ample capacity serve it all"
        );

        let mut weak = setup("1m:30,5m:400,3m:400,1m:0", 8);
        weak.capacity_per_pod = 15.0;
        let outcome = run(&weak);
        assert!(outcome.saturated_seconds > 0 && outcome.busiest_pod <= 15.0);
    }
}
