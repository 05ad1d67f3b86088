//! Open-model cadence: when each task of a slot is *due*, whether or not the slot's previous
//! task has finished (`rate_per_agent` tasks per minute per agent, fixed or Poisson arrivals).
//!
//! A leaf still runs its tasks one at a time; a task whose due time passed while the leaf was
//! busy starts late, and its latency is measured from when it was due (explicit schedule times,
//! so a herd that cannot keep up shows it instead of hiding it behind a slower loop: no
//! coordinated omission). The tasks already due but not yet started are the slot's *backlog*.
//!
//! The schedule is seeded per slot (`seed + slot`, on its own generator so the files and think
//! times are the same with or without a cadence) and part of the workload's digest.

use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::metrics::Summary;
use crate::slot_runner::SlotReport;

/// How due times are spaced.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Arrivals {
    /// Every `60 / rate` seconds, each slot starting at its own seeded phase within the first
    /// interval (so N agents do not arrive in lock step).
    #[default]
    Fixed,
    /// Exponentially distributed gaps with mean `60 / rate` seconds (a Poisson process).
    Poisson,
}

impl Arrivals {
    /// The name used in configs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Arrivals::Fixed => "fixed",
            Arrivals::Poisson => "poisson",
        }
    }
}

impl std::str::FromStr for Arrivals {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fixed" => Ok(Arrivals::Fixed),
            "poisson" => Ok(Arrivals::Poisson),
            other => Err(format!("unknown arrivals {other:?} (fixed or poisson)")),
        }
    }
}

/// Due times (offsets from the start of the work) of `tasks` tasks of `slot`.
pub fn schedule(
    seed: u64,
    slot: u32,
    tasks: u32,
    per_min: f64,
    arrivals: Arrivals,
) -> Vec<Duration> {
    const STREAM: u64 = 0x6361_6465_6e63_6500; // "cadence\0": apart from the workload's stream
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(u64::from(slot)) ^ STREAM);
    let mean = 60.0 / per_min;
    let mut at = 0.0_f64;
    (0..tasks)
        .map(|k| {
            at = match arrivals {
                Arrivals::Fixed if k == 0 => rng.random::<f64>() * mean,
                Arrivals::Fixed => at + mean,
                // Inverse transform: −ln(1 − u)·mean, u ∈ [0, 1).
                Arrivals::Poisson => at - (1.0 - rng.random::<f64>()).ln() * mean,
            };
            Duration::from_secs_f64(at)
        })
        .collect()
}

/// What the load model did: in the open model, how well the herd kept to its schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Load {
    /// `closed` (each task after the last) or `open` (tasks due on a schedule).
    pub model: String,
    /// Open model: tasks per minute per agent, and the arrivals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_agent: Option<f64>,
    /// `fixed` or `poisson` (open model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<String>,
    /// Tasks per minute the schedule offered the herd (agents × rate).
    pub offered_per_min: f64,
    /// When the last task of the schedule was due, seconds after the start of the work.
    pub schedule_secs: f64,
    /// Tasks per minute the herd closed over the work phase.
    pub closed_per_min: f64,
    /// Due → started (open model): how late tasks began.
    pub lag: Summary,
    /// Most tasks due and not started at once, over the herd.
    pub backlog_max: u32,
    /// The herd's backlog when the last task started (0: it caught up).
    pub backlog_last: u32,
    /// The herd's backlog over time: (seconds since the start of the work, tasks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backlog: Vec<(f64, u32)>,
    /// Open model: the herd kept up — the p99 start lag is under one mean interval.
    pub kept_up: bool,
    /// The most commits started in any 60 s window (what `pace_per_min` and the phase2 rate
    /// gate bound).
    pub commit_starts_max_per_min: u32,
}

/// Measures the load model over the slots' reports.
pub fn measure(
    config: &crate::TrialConfig,
    workload: &crate::Workload,
    reports: &[SlotReport],
    zero: Instant,
    work_secs: f64,
) -> Load {
    let mut lag = crate::metrics::Latency::default();
    for r in reports {
        lag.merge(&r.lag);
    }
    let lag = lag.summary();
    let ns = |t: Instant| t.saturating_duration_since(zero).as_nanos() as u64;
    let slots: Vec<Vec<(u64, u32)>> = reports
        .iter()
        .map(|r| r.backlog.iter().map(|&(t, n)| (ns(t), n)).collect())
        .collect();
    let series = herd_backlog(&slots);
    let starts: Vec<Instant> = reports
        .iter()
        .flat_map(|r| r.commit_starts.iter().copied())
        .collect();
    let closed: u64 = reports.iter().map(|r| r.closed).sum();
    let open = config.rate_per_agent;
    Load {
        model: if open.is_some() { "open" } else { "closed" }.into(),
        rate_per_agent: open,
        arrivals: open.map(|_| config.arrivals.as_str().to_string()),
        offered_per_min: open.map_or(0.0, |r| r * f64::from(config.agents)),
        schedule_secs: workload
            .slots
            .iter()
            .filter_map(|s| s.tasks.last()?.due)
            .max()
            .unwrap_or_default()
            .as_secs_f64(),
        closed_per_min: if work_secs > 0.0 {
            closed as f64 * 60.0 / work_secs
        } else {
            0.0
        },
        kept_up: open.is_none_or(|r| lag.p99_ms < 60_000.0 / r),
        lag,
        backlog_max: series.iter().map(|s| s.1).max().unwrap_or(0),
        backlog_last: series.last().map_or(0, |s| s.1),
        backlog: series.iter().map(|&(t, n)| (t as f64 / 1e9, n)).collect(),
        commit_starts_max_per_min: most_in_window(&starts, Duration::from_secs(60)) as u32,
    }
}

/// The most `times` in any half-open window `[t, t + window)`.
pub fn most_in_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        while sorted[hi] - sorted[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// The herd's backlog over time from every slot's samples `(ns since the start, tasks due but
/// not started)`, each sample holding until the same slot's next: `(ns, herd backlog)` at
/// every change.
pub fn herd_backlog(slots: &[Vec<(u64, u32)>]) -> Vec<(u64, u32)> {
    let mut samples: Vec<(u64, usize, u32)> = slots
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.iter().map(move |&(t, n)| (t, i, n)))
        .collect();
    samples.sort_unstable();
    let mut current = vec![0u32; slots.len()];
    let mut total = 0u32;
    let mut out: Vec<(u64, u32)> = Vec::new();
    for (t, i, n) in samples {
        total = total - current[i] + n;
        current[i] = n;
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 = total,
            _ => out.push((t, total)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_arrivals_are_one_interval_apart_after_a_seeded_phase() {
        let due = schedule(1, 0, 4, 6.0, Arrivals::Fixed); // every 10 s
        assert!(due[0] < Duration::from_secs(10), "{due:?}");
        for w in due.windows(2) {
            let gap = (w[1] - w[0]).as_secs_f64();
            assert!((gap - 10.0).abs() < 1e-6, "{due:?}");
        }
        assert_eq!(due, schedule(1, 0, 4, 6.0, Arrivals::Fixed));
        assert_ne!(due[0], schedule(1, 1, 4, 6.0, Arrivals::Fixed)[0]);
    }

    #[test]
    fn poisson_gaps_average_the_interval() {
        let due = schedule(9, 3, 4000, 60.0, Arrivals::Poisson); // mean gap 1 s
        let mean = due.last().unwrap().as_secs_f64() / 4000.0;
        assert!((mean - 1.0).abs() < 0.05, "mean gap {mean}");
        assert!(due.windows(2).all(|w| w[0] <= w[1]));
        let gaps: Vec<f64> = due
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        // Exponential: about 63 % of gaps are shorter than the mean (1 − 1/e).
        let short = gaps.iter().filter(|g| **g < 1.0).count() as f64 / gaps.len() as f64;
        assert!((short - 0.632).abs() < 0.03, "{short}");
    }

    #[test]
    fn windows_are_half_open() {
        let zero = Instant::now();
        let at = |s: u64| zero + Duration::from_secs(s);
        let starts = [at(0), at(15), at(30), at(45), at(60), at(76)];
        assert_eq!(most_in_window(&starts, Duration::from_secs(60)), 4);
        let bunched = [at(0), at(15), at(30), at(45), at(59)];
        assert_eq!(most_in_window(&bunched, Duration::from_secs(60)), 5);
        assert_eq!(most_in_window(&[], Duration::from_secs(60)), 0);
    }

    #[test]
    fn the_herd_backlog_sums_each_slots_latest_sample() {
        let a = vec![(10, 1), (30, 0)];
        let b = vec![(20, 2), (30, 3), (40, 0)];
        assert_eq!(
            herd_backlog(&[a, b]),
            vec![(10, 1), (20, 3), (30, 3), (40, 0)]
        );
    }
}
