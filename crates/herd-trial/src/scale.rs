//! What a trial's coordination cost: the numbers that say whether herd's own machinery scales —
//! hub work per landed commit (HTTP requests, fetches, group commits), payload bytes, the
//! runtime against the workload's *think floor* (the slowest leaf's summed think time: no
//! coordination can finish the work sooner), and memory per leaf.
//!
//! Memory is read from `/proc/self/status`: `VmRSS` just before the leaves open and `VmHWM`
//! (the process's peak resident set) after the work, divided by the number of leaves. Hub and
//! runner growth during the work is charged to the leaves, so the per-leaf figure is an upper
//! bound. Leaves run in this process; nats-server is a child process and is not counted.

use std::time::Duration;

use herd_hub::HubStats;
use serde::{Deserialize, Serialize};

use crate::workload::Workload;

/// The coordination-cost block of `results.json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Scale {
    /// The slowest leaf's summed think time, seconds.
    pub think_floor_secs: f64,
    /// Work phase ÷ think floor (1.0 would be coordination at no cost).
    pub work_to_think_floor: f64,
    /// Hub HTTP requests during the work phase (clones before it are not counted).
    pub hub_requests: u64,
    /// … per commit landed in the work phase.
    pub hub_requests_per_commit: f64,
    /// Fetch rounds (`POST git-upload-pack`) during the work phase.
    pub hub_fetches: u64,
    /// Push requests (`POST git-receive-pack`) during the work phase.
    pub hub_push_requests: u64,
    /// Fork retries per landed commit.
    pub fork_retries_per_commit: f64,
    /// Commits the merge queue replayed onto a newer tip.
    pub commits_replayed: u64,
    /// Ref updates that landed commits.
    pub landing_batches: u64,
    /// Most commits one ref update landed.
    pub largest_batch: u64,
    /// Broadcasts published with a payload, and their bytes.
    pub payloads: u64,
    /// Payload bytes published.
    pub payload_bytes: u64,
    /// Broadcasts sent without payload for size.
    pub payloads_over_cap: u64,
    /// Resident set before the leaves opened, KiB.
    pub rss_before_leaves_kib: u64,
    /// Peak resident set of the process, KiB.
    pub rss_peak_kib: u64,
    /// (peak − before) ÷ leaves, KiB: an upper bound on one leaf's memory.
    pub rss_per_leaf_kib: u64,
}

/// The slowest leaf's summed think time — in the open model, the time its last task would end
/// if every task took only its think time and started when due.
pub fn think_floor(workload: &Workload) -> Duration {
    workload
        .slots
        .iter()
        .map(|s| {
            s.tasks.iter().fold(Duration::ZERO, |end, t| {
                end.max(t.due.unwrap_or_default()) + t.think
            })
        })
        .max()
        .unwrap_or_default()
}

/// (`VmRSS`, `VmHWM`) of this process in KiB; zeros where `/proc` is not available.
pub fn rss_kib() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    (
        status_field(&status, "VmRSS:"),
        status_field(&status, "VmHWM:"),
    )
}

/// The number after `name` (e.g. `VmRSS:`) in a `/proc/<pid>/status` text; 0 when absent.
pub fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Inputs of [`Scale::new`].
pub struct ScaleInput<'a> {
    /// Hub counters when the work phase started.
    pub hub_before: &'a HubStats,
    /// Hub counters after the drain.
    pub hub_after: &'a HubStats,
    /// The workload's think floor.
    pub think_floor: Duration,
    /// Seconds of the work phase.
    pub work_secs: f64,
    /// Fork retries over the run.
    pub fork_retries: u64,
    /// Leaves.
    pub leaves: u64,
    /// `VmRSS` before the leaves opened, KiB.
    pub rss_before_leaves_kib: u64,
}

impl Scale {
    /// Computes the block.
    pub fn new(i: &ScaleInput<'_>) -> Scale {
        let (a, b) = (i.hub_after, i.hub_before);
        let landed = a.commits_landed - b.commits_landed;
        let per_commit = |n: u64| {
            if landed == 0 {
                0.0
            } else {
                n as f64 / landed as f64
            }
        };
        let requests = a.requests - b.requests;
        let floor = i.think_floor.as_secs_f64();
        let (_, peak) = rss_kib();
        Scale {
            think_floor_secs: floor,
            work_to_think_floor: if floor > 0.0 {
                i.work_secs / floor
            } else {
                0.0
            },
            hub_requests: requests,
            hub_requests_per_commit: per_commit(requests),
            hub_fetches: a.fetches - b.fetches,
            hub_push_requests: a.push_requests - b.push_requests,
            fork_retries_per_commit: per_commit(i.fork_retries),
            commits_replayed: a.commits_replayed - b.commits_replayed,
            landing_batches: a.landing_batches - b.landing_batches,
            largest_batch: a.largest_batch,
            payloads: a.payloads - b.payloads,
            payload_bytes: a.payload_bytes - b.payload_bytes,
            payloads_over_cap: a.payloads_over_cap - b.payloads_over_cap,
            rss_before_leaves_kib: i.rss_before_leaves_kib,
            rss_peak_kib: peak,
            rss_per_leaf_kib: peak.saturating_sub(i.rss_before_leaves_kib) / i.leaves.max(1),
        }
    }
}
