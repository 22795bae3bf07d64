//! Load shapes: how many users there are, or how many requests start, at each moment of a run.
//!
//! Both models follow one [`Profile`] (a target that moves in straight lines between stages):
//! - **closed**: the target is a number of users; each user starts its next journey when the
//!   last one ends, so a slower shop gets fewer requests. [`closed`] adds users (each with a new
//!   connection) and asks the surplus to leave after their current journey.
//! - **open**: the target is requests per second; [`open`] hands out that many permits per
//!   second and users wait for one before each request, so a slower shop gets the same requests
//!   and builds up a queue, as independent shoppers would. Users are added while permits go
//!   untaken, up to `--users`; beyond that the requests that could not start within
//!   [`MAX_LATENESS`] are counted as dropped rather than fired late in a burst.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::Context;
use super::scenario;

/// How often the closed model compares users with the target.
const CLOSED_TICK: Duration = Duration::from_millis(20);
/// How often the open model hands out permits: short enough that requests are spread evenly.
const OPEN_TICK: Duration = Duration::from_millis(5);
/// The open model drops a request that could not start within this of its due time.
pub const MAX_LATENESS: Duration = Duration::from_millis(100);

/// One stage: over `duration`, move the target in a straight line to `target`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// A staged profile as given on the command line (`30s:50,2m:500,1m:500,30s:0`).
#[derive(Clone, Debug, PartialEq)]
pub struct Stages(pub Vec<Stage>);

impl Stages {
    pub fn parse(text: &str) -> Result<Stages, String> {
        let mut stages = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (duration, target) = part
                .split_once(':')
                .ok_or_else(|| format!("stage {part:?} is not DURATION:TARGET, e.g. `2m:500`"))?;
            let duration = humantime::parse_duration(duration.trim())
                .map_err(|e| format!("stage {part:?}: bad duration: {e}"))?;
            let target = target
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| format!("stage {part:?}: the target must be a number from 0"))?;
            stages.push(Stage { duration, target });
        }
        if stages.is_empty() {
            return Err("give at least one stage, e.g. `30s:50,2m:500,30s:0`".to_owned());
        }
        if stages.iter().all(|s| s.duration.is_zero()) {
            return Err("the stages last no time at all".to_owned());
        }
        Ok(Stages(stages))
    }

    pub fn total(&self) -> Duration {
        self.0.iter().map(|s| s.duration).sum()
    }
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, stage) in self.0.iter().enumerate() {
            let separator = if i == 0 { "" } else { "," };
            write!(
                f,
                "{separator}{}:{}",
                humantime::format_duration(stage.duration),
                stage.target
            )?;
        }
        Ok(())
    }
}

/// The target (users or requests per second) at every moment of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    start: f64,
    stages: Vec<Stage>,
}

impl Profile {
    /// The same target throughout.
    pub fn constant(target: f64) -> Profile {
        Profile {
            start: target,
            stages: Vec::new(),
        }
    }

    /// From 0 to `target` at `per_second`, then held.
    pub fn ramp(target: f64, per_second: f64) -> Profile {
        Profile {
            start: 0.0,
            stages: vec![Stage {
                duration: Duration::from_secs_f64(target / per_second),
                target,
            }],
        }
    }

    /// Stages from a start of 0.
    pub fn staged(stages: &Stages) -> Profile {
        Profile {
            start: 0.0,
            stages: stages.0.clone(),
        }
    }

    /// The target `elapsed` into the run; the last stage's target holds after the stages.
    pub fn at(&self, elapsed: Duration) -> f64 {
        let mut from = self.start;
        let mut stage_start = Duration::ZERO;
        for stage in &self.stages {
            let stage_end = stage_start + stage.duration;
            if elapsed < stage_end {
                let progress = (elapsed - stage_start).as_secs_f64() / stage.duration.as_secs_f64();
                return from + (stage.target - from) * progress;
            }
            from = stage.target;
            stage_start = stage_end;
        }
        from
    }
}

/// Closed model: keeps the number of users at the profile's target until the context closes.
pub async fn closed(ctx: Arc<Context>, profile: Profile) {
    let mut tick = tokio::time::interval(CLOSED_TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Each user's own "please leave" signal, newest last, so a ramp-down retires the newest.
    let mut users: Vec<CancellationToken> = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ctx.closing.cancelled() => break,
        }
        let target = profile.at(ctx.started.elapsed()).round() as usize;
        while users.len() < target {
            let leave = CancellationToken::new();
            ctx.tracker
                .spawn(scenario::user(ctx.clone(), leave.clone(), None));
            users.push(leave);
        }
        while users.len() > target {
            if let Some(leave) = users.pop() {
                leave.cancel();
            }
        }
    }
}

/// Open model: hands out the profile's requests per second as permits until the context closes,
/// adding users (up to `max_users`) while permits go untaken.
pub async fn open(ctx: Arc<Context>, profile: Profile, max_users: usize, permits: Arc<Semaphore>) {
    let mut tick = tokio::time::interval(OPEN_TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut users = 0usize;
    let mut credit = 0.0f64;
    let mut last = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ctx.closing.cancelled() => break,
        }
        let now = ctx.started.elapsed();
        let rate = profile.at(now);
        // Permits left from the last tick found no idle user: everyone is busy.
        let waiting = permits.available_permits();
        if waiting > 0 && users < max_users {
            for _ in 0..waiting.min(max_users - users) {
                ctx.tracker.spawn(scenario::user(
                    ctx.clone(),
                    CancellationToken::new(),
                    Some(permits.clone()),
                ));
                users += 1;
            }
        }
        let allowed = ((rate * MAX_LATENESS.as_secs_f64()).ceil() as usize).max(1);
        if users >= max_users && waiting > allowed {
            let dropped = permits.forget_permits(waiting - allowed);
            ctx.stats
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        // Trapezoid rule: the number of requests due between the last tick and this one.
        credit += (profile.at(last) + rate) / 2.0 * (now - last).as_secs_f64();
        last = now;
        let due = credit.floor();
        credit -= due;
        if due >= 1.0 {
            permits.add_permits(due as usize);
        }
    }
}

/// Ends the run's clock: waits for `end` (if any), then asks the shoppers to finish.
pub async fn clock(ctx: Arc<Context>, end: Option<Duration>) {
    match end {
        Some(end) => {
            tokio::select! {
                () = tokio::time::sleep_until(Instant::from_std(ctx.started) + end) => {
                    ctx.stop(super::StopReason::Completed);
                }
                () = ctx.halt.cancelled() => {}
            }
        }
        None => ctx.halt.cancelled().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn stages_parse_and_print() {
        let stages = Stages::parse("30s:50, 2m:500,1m:500,30s:0").unwrap();
        assert_eq!(stages.0.len(), 4);
        assert_eq!(
            stages.0[1],
            Stage {
                duration: secs(120.0),
                target: 500.0
            }
        );
        assert_eq!(stages.total(), secs(240.0));
        assert_eq!(stages.to_string(), "30s:50,2m:500,1m:500,30s:0");
        for bad in ["", "30s", "30:50", "30s:-1", "30s:many", "0s:5"] {
            assert!(Stages::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn profiles_move_in_straight_lines() {
        let surge = Profile::staged(&Stages::parse("10s:100,10s:100,10s:0").unwrap());
        assert_eq!(surge.at(secs(0.0)), 0.0);
        assert_eq!(surge.at(secs(5.0)), 50.0);
        assert_eq!(surge.at(secs(15.0)), 100.0);
        assert_eq!(surge.at(secs(25.0)), 50.0);
        assert_eq!(surge.at(secs(99.0)), 0.0);

        let ramp = Profile::ramp(20.0, 10.0);
        assert_eq!(ramp.at(secs(1.0)), 10.0);
        assert_eq!(ramp.at(secs(60.0)), 20.0);
        assert_eq!(Profile::constant(7.0).at(secs(3.0)), 7.0);

        // A zero-length stage jumps straight to its target.
        let step = Profile::staged(&Stages::parse("0s:10,1s:10").unwrap());
        assert_eq!(step.at(secs(0.0)), 10.0);
    }
}
