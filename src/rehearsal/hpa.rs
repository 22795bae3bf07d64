//! The Horizontal Pod Autoscaler's algorithm, as the Kubernetes controller runs it for an
//! `AverageValue` target (what KEDA's Prometheus trigger becomes, and what a Pods metric such as
//! prometheus-adapter's `requests_per_second` is), one sync at a time:
//!
//! 1. **Desired** = `ceil(total / target)`, unless the ratio `total / (target × current)` is
//!    within the tolerance of 1 (10% by default), when the replica count stays.
//! 2. **Stabilisation**: the recommendation is held between the lowest recommendation of the
//!    scale-up window and the highest of the scale-down window (each recommendation is kept with
//!    its time).
//! 3. **Rate limits**: each policy allows, from the replica count at the start of its period
//!    (current − added + removed within the period), `Pods` more (or fewer) pods, or `Percent`
//!    more (rounded up) or fewer (rounded down); `selectPolicy: Max` takes the policy allowing the
//!    biggest change, `Min` the smallest, `Disabled` none.
//! 4. **Bounds**: never above `maxReplicas`, never below `minReplicas`.
//!
//! This follows `pkg/controller/podautoscaler/horizontal.go` (`normalizeDesiredReplicasWithBehaviors`,
//! `stabilizeRecommendationWithBehaviors`, `convertDesiredReplicasWithBehaviorRate`,
//! `calculateScaleUpLimitWithScalingRules`, `calculateScaleDownLimitWithBehaviors`) and the
//! behaviour defaults of the `autoscaling/v2` API: scale up at once by the larger of +100% and +4
//! pods every 15 s; scale down by up to 100% every 15 s after a 300 s window.

use std::time::Duration;

/// One scaling policy: how much may change within `period`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    Pods { value: u32, period: Duration },
    Percent { value: u32, period: Duration },
}

impl Policy {
    fn period(self) -> Duration {
        match self {
            Policy::Pods { period, .. } | Policy::Percent { period, .. } => period,
        }
    }
}

/// Which policy wins when several apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the biggest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One direction's rules (`behavior.scaleUp` or `behavior.scaleDown`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

impl Rules {
    /// `behavior.scaleUp` when the HPA does not set it.
    pub fn default_up() -> Rules {
        Rules {
            window: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                Policy::Percent {
                    value: 100,
                    period: Duration::from_secs(15),
                },
                Policy::Pods {
                    value: 4,
                    period: Duration::from_secs(15),
                },
            ],
        }
    }

    /// `behavior.scaleDown` when the HPA does not set it.
    pub fn default_down() -> Rules {
        Rules {
            window: Duration::from_secs(300),
            select: Select::Max,
            policies: vec![Policy::Percent {
                value: 100,
                period: Duration::from_secs(15),
            }],
        }
    }
}

/// What the HPA is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub min: u32,
    pub max: u32,
    /// The `AverageValue` target: metric per pod.
    pub target: f64,
    pub up: Rules,
    pub down: Rules,
    /// The controller's `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub tolerance: f64,
}

/// One sync's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What the metric alone asks for.
    pub desired: u32,
    /// What the replica count becomes.
    pub replicas: u32,
}

/// The controller's memory between syncs: recommendations and scale events, with their times.
#[derive(Debug)]
pub struct Hpa {
    pub spec: Spec,
    recommendations: Vec<(Duration, u32)>,
    /// (time, pods added) and (time, pods removed).
    ups: Vec<(Duration, u32)>,
    downs: Vec<(Duration, u32)>,
}

impl Hpa {
    pub fn new(spec: Spec) -> Hpa {
        Hpa {
            spec,
            recommendations: Vec::new(),
            ups: Vec::new(),
            downs: Vec::new(),
        }
    }

    /// One sync at `now`, with `current` replicas and the metric's `total` over all pods.
    pub fn sync(&mut self, now: Duration, current: u32, total: f64) -> Decision {
        let spec = &self.spec;
        // Outside the bounds (a manual scale), the controller only brings the count back in.
        let (desired, replicas) = if current > spec.max {
            (spec.max, spec.max)
        } else if current < spec.min {
            (spec.min, spec.min)
        } else {
            let desired = desired_for(current, total, spec.target, spec.tolerance);
            let stabilised = self.stabilise(now, current, desired);
            (desired, self.limit(now, current, stabilised))
        };
        if replicas > current {
            self.ups.push((now, replicas - current));
        } else if replicas < current {
            self.downs.push((now, current - replicas));
        }
        Decision { desired, replicas }
    }

    fn stabilise(&mut self, now: Duration, current: u32, desired: u32) -> u32 {
        let within = |at: Duration, window: Duration| at + window > now;
        let mut up = desired;
        let mut down = desired;
        for &(at, recommendation) in &self.recommendations {
            if within(at, self.spec.up.window) {
                up = up.min(recommendation);
            }
            if within(at, self.spec.down.window) {
                down = down.max(recommendation);
            }
        }
        let longest = self.spec.up.window.max(self.spec.down.window);
        self.recommendations.retain(|&(at, _)| within(at, longest));
        self.recommendations.push((now, desired));
        current.max(up).min(down)
    }

    fn limit(&self, now: Duration, current: u32, desired: u32) -> u32 {
        let changed = |events: &[(Duration, u32)], period: Duration| -> i64 {
            events
                .iter()
                .filter(|&&(at, _)| at + period > now)
                .map(|&(_, n)| i64::from(n))
                .sum()
        };
        let start =
            |period| i64::from(current) - changed(&self.ups, period) + changed(&self.downs, period);
        let current_i = i64::from(current);
        if desired > current {
            let rules = &self.spec.up;
            let limit = match rules.select {
                Select::Disabled => current_i,
                select => {
                    let proposals = rules.policies.iter().map(|&policy| {
                        let start = start(policy.period());
                        match policy {
                            Policy::Pods { value, .. } => start + i64::from(value),
                            Policy::Percent { value, .. } => {
                                (start as f64 * (1.0 + f64::from(value) / 100.0)).ceil() as i64
                            }
                        }
                    });
                    pick(select, proposals, true).unwrap_or(current_i)
                }
            };
            let limit = limit.max(current_i).min(i64::from(self.spec.max));
            (i64::from(desired).min(limit)) as u32
        } else if desired < current {
            let rules = &self.spec.down;
            let limit = match rules.select {
                Select::Disabled => current_i,
                select => {
                    let proposals = rules.policies.iter().map(|&policy| {
                        let start = start(policy.period());
                        match policy {
                            Policy::Pods { value, .. } => start - i64::from(value),
                            Policy::Percent { value, .. } => {
                                (start as f64 * (1.0 - f64::from(value) / 100.0)) as i64
                            }
                        }
                    });
                    pick(select, proposals, false).unwrap_or(current_i)
                }
            };
            let limit = limit.min(current_i).max(i64::from(self.spec.min));
            (i64::from(desired).max(limit)) as u32
        } else {
            desired
        }
    }
}

/// `Max` means the biggest change: the highest proposal going up, the lowest going down.
fn pick(select: Select, proposals: impl Iterator<Item = i64>, up: bool) -> Option<i64> {
    let biggest_change = select == Select::Max;
    if biggest_change == up {
        proposals.max()
    } else {
        proposals.min()
    }
}

/// Step 1: the replica count the metric asks for, for an `AverageValue` target.
pub fn desired_for(current: u32, total: f64, target: f64, tolerance: f64) -> u32 {
    if current == 0 || target <= 0.0 {
        return current;
    }
    let ratio = total / (target * f64::from(current));
    if (ratio - 1.0).abs() <= tolerance {
        current
    } else {
        (total / target).ceil().max(0.0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn demo_spec() -> Spec {
        Spec {
            min: 2,
            max: 30,
            target: 20.0,
            up: Rules::default_up(),
            down: Rules {
                window: secs(120),
                select: Select::Min,
                policies: vec![Policy::Percent {
                    value: 50,
                    period: secs(60),
                }],
            },
            tolerance: 0.1,
        }
    }

    #[test]
    fn desired_is_ceil_of_total_over_target_outside_the_tolerance() {
        assert_eq!(desired_for(2, 30.0, 20.0, 0.1), 2);
        assert_eq!(desired_for(2, 43.0, 20.0, 0.1), 2, "7.5% over: within");
        assert_eq!(desired_for(2, 45.0, 20.0, 0.1), 3, "12.5% over");
        assert_eq!(desired_for(10, 185.0, 20.0, 0.1), 10);
        assert_eq!(desired_for(10, 500.0, 20.0, 0.1), 25);
        assert_eq!(desired_for(10, 0.0, 20.0, 0.1), 0);
    }

    #[test]
    fn scale_up_takes_the_larger_of_doubling_and_four_pods_per_period() {
        let mut hpa = Hpa::new(demo_spec());
        // 1000 req/s asks for 50; from 2, +4 beats +100%; then doubling from 6 wins.
        let first = hpa.sync(secs(0), 2, 1000.0);
        assert_eq!(
            first,
            Decision {
                desired: 50,
                replicas: 6
            }
        );
        assert_eq!(
            hpa.sync(secs(5), 6, 1000.0).replicas,
            6,
            "the period's budget is spent"
        );
        assert_eq!(hpa.sync(secs(15), 6, 1000.0).replicas, 12);
        assert_eq!(hpa.sync(secs(30), 12, 1000.0).replicas, 24);
        assert_eq!(hpa.sync(secs(45), 24, 1000.0).replicas, 30, "maxReplicas");
    }

    #[test]
    fn scale_down_waits_for_the_window_then_halves_per_minute() {
        let mut hpa = Hpa::new(demo_spec());
        assert_eq!(hpa.sync(secs(0), 20, 400.0).replicas, 20);
        // Quiet from 15 s on: the 120 s window still holds the recommendation of 20 made at 0 s.
        let mut now = 15;
        while now < 120 {
            assert_eq!(hpa.sync(secs(now), 20, 0.0).replicas, 20, "at {now}s");
            now += 15;
        }
        assert_eq!(hpa.sync(secs(120), 20, 0.0).replicas, 10, "half");
        assert_eq!(
            hpa.sync(secs(135), 10, 0.0).replicas,
            10,
            "one step per 60 s"
        );
        assert_eq!(hpa.sync(secs(180), 10, 0.0).replicas, 5);
        assert_eq!(
            hpa.sync(secs(240), 5, 0.0).replicas,
            2,
            "floor(2.5) then minReplicas"
        );
    }

    #[test]
    fn defaults_and_disabled_directions() {
        let mut spec = demo_spec();
        spec.down = Rules::default_down();
        let mut hpa = Hpa::new(spec.clone());
        assert_eq!(hpa.sync(secs(0), 10, 200.0).replicas, 10);
        assert_eq!(hpa.sync(secs(15), 10, 0.0).replicas, 10, "300 s window");
        assert_eq!(hpa.sync(secs(285), 10, 0.0).replicas, 10);
        assert_eq!(
            hpa.sync(secs(300), 10, 0.0).replicas,
            2,
            "then 100% at once"
        );

        spec.up.select = Select::Disabled;
        let mut hpa = Hpa::new(spec);
        assert_eq!(hpa.sync(secs(0), 2, 1000.0).replicas, 2);
        assert_eq!(
            hpa.sync(secs(0), 1, 0.0).replicas,
            2,
            "below min: back to min"
        );
    }
}
