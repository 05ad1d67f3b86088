//! What the page draws, computed from the run's artifacts.

use std::collections::HashMap;

use herd_check::HistoryEvent;
use herd_check::history::{Op, Phase};
use serde::Serialize;

use crate::sweep::SweepIndex;

/// Most broadcast marks on the timeline (a 256-leaf run handles ~N² broadcasts); beyond it
/// every k-th is drawn and the page says so.
const MAX_PULL_MARKS: usize = 20_000;
/// Histogram buckets (log-spaced between the fastest and the slowest commit).
const BUCKETS: usize = 32;
/// Time bins of the percentiles-over-time chart.
const TIME_BINS: f64 = 60.0;

/// A trial's page data.
#[derive(Serialize, Debug, Default)]
pub struct TrialPage {
    /// Headline facts, in order.
    pub summary: Vec<(String, String)>,
    /// Commit latency histogram: (from ms, to ms, commits).
    pub histogram: Vec<(f64, f64, u64)>,
    /// Commit latency percentiles of the run, ms: (name, value).
    pub percentiles: Vec<(String, f64)>,
    /// Per time bin: (bin start s, p50 ms, p99 ms, commits).
    pub over_time: Vec<(f64, f64, f64, u64)>,
    /// Agents, one timeline row each.
    pub agents: Vec<String>,
    /// Claims won: (agent, s).
    pub claims: Vec<(usize, f64)>,
    /// Commits landed: (agent, s, latency ms, fork retries).
    pub commits: Vec<(usize, f64, f64, u32)>,
    /// Commits that failed or whose outcome is unknown: (agent, s).
    pub failed: Vec<(usize, f64)>,
    /// Broadcasts handled: (agent, s), at most [`MAX_PULL_MARKS`].
    pub pulls: Vec<(usize, f64)>,
    /// Broadcasts handled in all (`pulls` may be a sample of them).
    pub pulls_total: usize,
    /// Fault windows: (injected s, healed s, label).
    pub faults: Vec<(f64, f64, String)>,
    /// Open model backlog over time: (s since the start of the work, tasks).
    pub backlog: Vec<(f64, u32)>,
    /// Soak: RSS per process over time, (process, [(s, MiB)]).
    pub soak_rss: Vec<(String, Vec<(f64, f64)>)>,
    /// Soak: mean commit latency per window, (window start s, ms, commits).
    pub soak_windows: Vec<(f64, f64, u64)>,
    /// Soak: the windows' coefficient of variation.
    pub soak_cv: f64,
}

impl TrialPage {
    /// The page of `results`, with `events` the run's history.
    pub fn new(results: &crate::TrialResults, events: &[HistoryEvent]) -> TrialPage {
        // The agents are whoever claimed, committed or handled a broadcast (not the board
        // that opened a shared pool, not the fault driver), in slot order.
        let mut agents: Vec<String> = events
            .iter()
            .filter(|e| matches!(e.op, Op::Claim | Op::Commit | Op::Pull))
            .map(|e| e.leaf.clone())
            .collect();
        agents.sort_by_key(|a| {
            let n = a.rsplit('-').next().and_then(|n| n.parse::<u64>().ok());
            (n.unwrap_or(u64::MAX), a.clone())
        });
        agents.dedup();
        let index: HashMap<&str, usize> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.as_str(), i))
            .collect();
        let secs = |e: &HistoryEvent| e.t_ns as f64 / 1e9;
        let mut page = TrialPage::default();
        let mut pulls = Vec::new();
        for e in events {
            let Some(&i) = index.get(e.leaf.as_str()) else {
                continue;
            };
            match (e.op, e.phase) {
                (Op::Claim, Phase::Ok) => page.claims.push((i, secs(e))),
                (Op::Commit, Phase::Fail | Phase::Info) => page.failed.push((i, secs(e))),
                (Op::Pull, Phase::Ok) => pulls.push((i, secs(e))),
                _ => {}
            }
        }
        page.commits = crate::events::landed_commits(events)
            .iter()
            .filter_map(|c| Some((*index.get(c.leaf)?, c.t_s, c.ms, c.fork_retries)))
            .collect();
        page.pulls_total = pulls.len();
        let stride = pulls.len().div_ceil(MAX_PULL_MARKS).max(1);
        page.pulls = pulls.into_iter().step_by(stride).collect();
        page.histogram = histogram(page.commits.iter().map(|c| c.2));
        page.over_time = over_time(&page.commits);
        page.agents = agents;
        let l = &results.latency.commit;
        page.percentiles = vec![
            ("p50".into(), l.p50_ms),
            ("p90".into(), l.p90_ms),
            ("p99".into(), l.p99_ms),
            ("max".into(), l.max_ms),
        ];
        page.faults = results
            .faults
            .iter()
            .filter_map(|f| {
                let from = f.record.injected_s?;
                Some((
                    from,
                    f.record.healed_s.unwrap_or(from),
                    f.record.spec.clone(),
                ))
            })
            .collect();
        page.backlog = results.load.backlog.clone();
        if let Some(soak) = &results.soak {
            for g in &soak.growth {
                let series = soak
                    .samples
                    .iter()
                    .filter(|x| x.process == g.process)
                    .map(|x| (x.t_s, x.rss_kib as f64 / 1024.0))
                    .collect();
                page.soak_rss.push((g.process.clone(), series));
            }
            page.soak_windows = soak.windows.clone();
            page.soak_cv = soak.cv;
        }
        page.summary = summary(results);
        page
    }
}

fn summary(r: &crate::TrialResults) -> Vec<(String, String)> {
    let c = &r.counters;
    let mut out = vec![
        ("verdict".to_string(), r.verdict().0.to_string()),
        (
            "tasks closed".into(),
            format!("{} / {}", c.tasks_closed, c.tasks_total),
        ),
        ("hub commits".into(), c.hub_commits.to_string()),
        ("commits lost".into(), c.commits_lost.to_string()),
        ("fork retries".into(), c.fork_retries.to_string()),
        (
            "commit p50 / p99 ms".into(),
            format!(
                "{:.1} / {:.1}",
                r.latency.commit.p50_ms, r.latency.commit.p99_ms
            ),
        ),
        (
            "failed commits".into(),
            r.latency.commit_failed.count.to_string(),
        ),
        ("runtime".into(), format!("{:.1} s", r.runtime_secs)),
        (
            "sync / hub".into(),
            format!("{} / {}", r.config.sync.as_str(), r.config.hub.as_str()),
        ),
        ("history".into(), r.history_check.summary_line()),
        ("revision".into(), r.environment.herd_revision.clone()),
    ];
    if let Some(rate) = r.load.rate_per_agent {
        out.push((
            "open model".into(),
            format!(
                "{rate}/min per agent; start lag p99 {:.1} ms; backlog max {}",
                r.load.lag.p99_ms, r.load.backlog_max
            ),
        ));
    }
    out
}

fn histogram(samples: impl Iterator<Item = f64>) -> Vec<(f64, f64, u64)> {
    let samples: Vec<f64> = samples.map(|ms| ms.max(0.001)).collect();
    let (Some(lo), Some(hi)) = (
        samples.iter().copied().reduce(f64::min),
        samples.iter().copied().reduce(f64::max),
    ) else {
        return Vec::new();
    };
    let (llo, lhi) = (lo.ln(), (hi * 1.0001).ln());
    let width = ((lhi - llo) / BUCKETS as f64).max(1e-9);
    let mut counts = vec![0u64; BUCKETS];
    for s in &samples {
        let k = (((s.ln() - llo) / width) as usize).min(BUCKETS - 1);
        counts[k] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(k, n)| {
            let from = (llo + width * k as f64).exp();
            let to = (llo + width * (k + 1) as f64).exp();
            (from, to, n)
        })
        .collect()
}

fn over_time(commits: &[(usize, f64, f64, u32)]) -> Vec<(f64, f64, f64, u64)> {
    let (Some(first), Some(last)) = (
        commits.iter().map(|c| c.1).reduce(f64::min),
        commits.iter().map(|c| c.1).reduce(f64::max),
    ) else {
        return Vec::new();
    };
    let bin = ((last - first) / TIME_BINS).max(0.25);
    let mut bins: Vec<Vec<f64>> = Vec::new();
    for c in commits {
        let k = ((c.1 - first) / bin) as usize;
        if bins.len() <= k {
            bins.resize(k + 1, Vec::new());
        }
        bins[k].push(c.2);
    }
    bins.into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
            (first + bin * k as f64, q(0.50), q(0.99), v.len() as u64)
        })
        .collect()
}

/// A sweep's page data.
#[derive(Serialize, Debug, Default)]
pub struct SweepPage {
    /// Headline facts.
    pub summary: Vec<(String, String)>,
    /// One series per line: name, points (N, commits/s, p99 commit ms, cell passed), knee N.
    pub series: Vec<Series>,
}

/// One series of a sweep.
#[derive(Serialize, Debug, Default)]
pub struct Series {
    /// `payload/race think 0 ms, closed loop`.
    pub name: String,
    /// (N, commits/s, p99 commit ms, passed), rising N.
    pub points: Vec<(u32, f64, f64, bool)>,
    /// The knee's N, if the series has one.
    pub knee: Option<u32>,
}

impl SweepPage {
    /// The page of a sweep's index.
    pub fn new(index: &SweepIndex) -> SweepPage {
        let series = index
            .knees
            .iter()
            .map(|k| {
                let mut points: Vec<(u32, f64, f64, bool)> = index
                    .rows
                    .iter()
                    .filter(|r| crate::knee::series_of(r) == k.series)
                    .map(|r| (r.agents, r.commits_per_sec, r.commit_ms[2], r.passed))
                    .collect();
                points.sort_by_key(|p| p.0);
                Series {
                    name: k.series.clone(),
                    points,
                    knee: k.agents,
                }
            })
            .collect();
        let mut summary = vec![
            ("revision".to_string(), index.revision.clone()),
            (
                "machine".into(),
                format!(
                    "{} cores, {}",
                    index.environment.cores, index.environment.platform
                ),
            ),
        ];
        for f in &index.floors {
            summary.push((
                format!("floor ({})", f.hub.as_str()),
                format!("{:.1} commits/s", f.commits_per_sec),
            ));
        }
        for k in &index.knees {
            summary.push(("knee".into(), k.line()));
        }
        SweepPage { summary, series }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_hold_every_sample() {
        let h = histogram([1.0, 2.0, 4.0, 100.0, 100.0].into_iter());
        assert_eq!(h.len(), BUCKETS);
        assert_eq!(h.iter().map(|b| b.2).sum::<u64>(), 5);
        assert!((h[0].0 - 1.0).abs() < 1e-9 && h[BUCKETS - 1].1 >= 100.0);
        assert!(histogram(std::iter::empty()).is_empty());
    }

    #[test]
    fn percentiles_over_time_per_bin() {
        let commits: Vec<(usize, f64, f64, u32)> = (0..100)
            .map(|k| (0, k as f64, (k % 10) as f64, 0))
            .collect();
        let bins = over_time(&commits);
        assert_eq!(bins.iter().map(|b| b.3).sum::<u64>(), 100);
        assert!(bins.iter().all(|b| b.1 <= b.2));
    }
}
