//! What a trial and its `herd leaf` children say to each other: one JSON object per line, the
//! child's on stdout, the trial's on the child's stdin. Times travel as nanoseconds since the
//! run's time zero (the join file's `zero_unix_ns`), which both sides map to their own clock.

use serde::{Deserialize, Serialize};

use crate::metrics::Latency;
use crate::slot_runner::SlotReport;

/// Child → trial.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum FromLeaf {
    /// The leaf is open (clone made, bus joined) and waits for `Go`.
    Ready {
        /// The leaf's id.
        leaf: String,
        /// It found its ledger damaged and rebuilt it from the bus (a restart after F13).
        #[serde(default)]
        rebuilt: bool,
    },
    /// Tasks finished and commits accepted since the last progress line.
    Progress {
        /// Tasks finished.
        tasks: u64,
        /// Commits accepted.
        commits: u64,
    },
    /// Every task of the slot has run.
    Worked(Box<WireReport>),
    /// A leaf fault reached its point (F6 after the claim, F7 after the accepted push): the
    /// leaf's work so far, then it waits to be SIGKILLed by the trial and started again.
    Crashing {
        /// The slot's report up to here.
        report: Box<WireReport>,
        /// The leaf's counters up to here.
        stats: herd_leaf::LeafStats,
        /// The tip-stream sequence it reached (its restart takes the stream up after it).
        tip_position: u64,
        /// The task the fault hit.
        task: String,
    },
    /// The drain ended (`settled`: every broadcast handled); counters are final.
    Drained {
        /// Every expected broadcast handled, nothing in flight.
        settled: bool,
        /// The leaf's counters.
        stats: herd_leaf::LeafStats,
        /// Tips the leaf held: (oid, ns since time zero).
        holdings: Vec<(String, u64)>,
        /// The process's own resource use so far.
        usage: Usage,
    },
}

/// A leaf process's resource use.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Peak resident set, KiB (`VmHWM`).
    pub rss_peak_kib: u64,
    /// CPU time, user + system, ms.
    pub cpu_ms: u64,
}

impl Usage {
    /// This process's use so far.
    pub fn of_self() -> Usage {
        // SAFETY: getrusage fills the zeroed struct we pass; RUSAGE_SELF is always valid.
        let cpu_ms = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0 {
                let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
                ms(ru.ru_utime) + ms(ru.ru_stime)
            } else {
                0
            }
        };
        Usage {
            rss_peak_kib: crate::scale::rss_kib().1,
            cpu_ms,
        }
    }
}

/// Per-process resource use over a run's leaf processes (results.json `leaf_processes`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct UsageSummary {
    /// Leaf processes that reported.
    pub processes: u64,
    /// Median peak RSS, KiB.
    pub rss_peak_kib_p50: u64,
    /// Largest peak RSS, KiB.
    pub rss_peak_kib_max: u64,
    /// Median CPU time, ms.
    pub cpu_ms_p50: u64,
    /// Largest CPU time, ms.
    pub cpu_ms_max: u64,
}

impl UsageSummary {
    /// Median and maximum over `usages` (`None` when empty).
    pub fn of(usages: &[Usage]) -> Option<UsageSummary> {
        if usages.is_empty() {
            return None;
        }
        let stat = |f: fn(&Usage) -> u64| {
            let mut v: Vec<u64> = usages.iter().map(f).collect();
            v.sort_unstable();
            (v[v.len() / 2], v[v.len() - 1])
        };
        let (rss_p50, rss_max) = stat(|u| u.rss_peak_kib);
        let (cpu_p50, cpu_max) = stat(|u| u.cpu_ms);
        Some(UsageSummary {
            processes: usages.len() as u64,
            rss_peak_kib_p50: rss_p50,
            rss_peak_kib_max: rss_max,
            cpu_ms_p50: cpu_p50,
            cpu_ms_max: cpu_max,
        })
    }
}

/// Trial → child.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum ToLeaf {
    /// Start the tasks.
    Go,
    /// Wait until `broadcasts` tips are handled (giving up after `stall_secs` without progress).
    Drain {
        /// Broadcasts the hub sent.
        broadcasts: u64,
        /// Stall limit, seconds.
        stall_secs: u64,
    },
    /// Shut down (flush the ledger) and exit.
    Stop,
    /// Play a leaf fault out at the next won claim (`kill`, `halt` or `damage`): reach its
    /// point, say `Crashing`, and wait to be killed.
    Fault {
        /// Which.
        fault: String,
    },
}

/// A [`SlotReport`] across the process boundary.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct WireReport {
    /// The leaf.
    pub leaf: String,
    /// Claim latency histogram as (µs, count).
    pub claim: Vec<(u64, u64)>,
    /// Commit latency histogram.
    pub commit: Vec<(u64, u64)>,
    /// Failed-commit latency histogram.
    pub commit_failed: Vec<(u64, u64)>,
    /// Starved tasks.
    pub starved: u64,
    /// Tasks failed by the conflict rule.
    #[serde(default)]
    pub failed_by_rule: u64,
    /// Accepted commits: (oid, ns since time zero).
    pub commits: Vec<(String, u64)>,
    /// Tasks opened.
    pub opened: u64,
    /// Tasks closed.
    pub closed: u64,
    /// Tasks failed.
    pub failed: u64,
    /// Lost-claim latency histogram (shared board).
    #[serde(default)]
    pub claim_lost: Vec<(u64, u64)>,
    /// Task latency histogram (due → closed).
    #[serde(default)]
    pub task: Vec<(u64, u64)>,
    /// Start-lag histogram (open model).
    #[serde(default)]
    pub lag: Vec<(u64, u64)>,
    /// Backlog samples: (ns since time zero, tasks due and not started).
    #[serde(default)]
    pub backlog: Vec<(u64, u32)>,
    /// Commit starts, ns since time zero.
    #[serde(default)]
    pub commit_starts: Vec<u64>,
}

impl WireReport {
    /// `report` with its instants as offsets from `zero`.
    pub fn from_report(report: &SlotReport, zero: std::time::Instant) -> WireReport {
        WireReport {
            leaf: report.leaf.clone(),
            claim: report.claim.to_counts(),
            commit: report.commit.to_counts(),
            commit_failed: report.commit_failed.to_counts(),
            starved: report.starved,
            failed_by_rule: report.failed_by_rule,
            commits: report
                .commits
                .iter()
                .map(|(oid, at)| (oid.clone(), since(zero, *at)))
                .collect(),
            opened: report.opened,
            closed: report.closed,
            failed: report.failed,
            claim_lost: report.claim_lost.to_counts(),
            task: report.task.to_counts(),
            lag: report.lag.to_counts(),
            backlog: report
                .backlog
                .iter()
                .map(|(t, n)| (since(zero, *t), *n))
                .collect(),
            commit_starts: report
                .commit_starts
                .iter()
                .map(|t| since(zero, *t))
                .collect(),
        }
    }

    /// The report with offsets mapped onto `zero`.
    pub fn into_report(self, zero: std::time::Instant) -> SlotReport {
        SlotReport {
            leaf: self.leaf,
            claim: Latency::from_counts(&self.claim),
            commit: Latency::from_counts(&self.commit),
            commit_failed: Latency::from_counts(&self.commit_failed),
            starved: self.starved,
            failed_by_rule: self.failed_by_rule,
            commits: self
                .commits
                .into_iter()
                .map(|(oid, ns)| (oid, at(zero, ns)))
                .collect(),
            opened: self.opened,
            closed: self.closed,
            failed: self.failed,
            claim_lost: Latency::from_counts(&self.claim_lost),
            task: Latency::from_counts(&self.task),
            lag: Latency::from_counts(&self.lag),
            backlog: self
                .backlog
                .into_iter()
                .map(|(ns, n)| (at(zero, ns), n))
                .collect(),
            commit_starts: self
                .commit_starts
                .into_iter()
                .map(|ns| at(zero, ns))
                .collect(),
        }
    }
}

/// `t` as nanoseconds after `zero`.
pub fn since(zero: std::time::Instant, t: std::time::Instant) -> u64 {
    t.saturating_duration_since(zero).as_nanos() as u64
}

/// The instant `ns` nanoseconds after `zero`.
pub fn at(zero: std::time::Instant, ns: u64) -> std::time::Instant {
    zero + std::time::Duration::from_nanos(ns)
}
