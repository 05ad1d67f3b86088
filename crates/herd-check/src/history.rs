//! The history format: one JSON object per line in `events.jsonl`, one line per step of every
//! leaf operation. Documented for users in `docs/history.md`.
//!
//! Each operation is an `invoke` followed by exactly one of `ok` (it happened), `fail` (it
//! certainly did not happen) or `info` (unknown: e.g. a push whose reply was lost — the commit
//! may or may not be on the trunk, and the checker resolves it against the repository).
//! A tip broadcast handled by a leaf is one `pull` line with phase `ok` and an `outcome`.

use serde::{Deserialize, Serialize};

/// The operation a history line belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `open_task`.
    Open,
    /// `claim`.
    Claim,
    /// `commit` (write, commit, push, retries).
    Commit,
    /// `close`.
    Close,
    /// `release` (abandon the claim).
    Release,
    /// A tip broadcast handled by a leaf's subscriber.
    Pull,
    /// A fault the trial injected (`invoke`) and healed (`ok`; `fail` if either step
    /// failed): leaf `herd-faults`, slot = the server hit, `outcome` = the fault spec.
    Fault,
}

/// Where in the operation the line was written.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// About to call.
    Invoke,
    /// Returned success.
    Ok,
    /// Returned a definite failure.
    Fail,
    /// Outcome unknown.
    Info,
}

/// One line of `events.jsonl`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    /// Operation.
    pub op: Op,
    /// Phase.
    pub phase: Phase,
    /// Leaf id.
    pub leaf: String,
    /// Slot directory the leaf writes in.
    pub slot: String,
    /// Task id (absent for pulls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Claim revision (the epoch) for claim/commit/close/release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_rev: Option<u64>,
    /// Commit oid on the trunk (commit ok/info) or the tip oid (pull).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    /// The commit the leaf pushed, when the hub landed it as a different one (`oid`): the merge
    /// queue replays a push built on an older tip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    /// The tip the leaf observed before this step (commit: the parent its push replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_tip: Option<String>,
    /// Nanoseconds since the trial started (monotonic).
    pub t_ns: u64,
    /// The error, for `fail` and `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Broadcast outcome: `applied`, `pulled`, `skipped_idempotent`, `skipped_coalesced` or
    /// `deferred`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Fork retries of a commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_retries: Option<u32>,
}

impl HistoryEvent {
    /// A line with only the always-present fields set.
    pub fn new(op: Op, phase: Phase, leaf: &str, slot: &str, t_ns: u64) -> HistoryEvent {
        HistoryEvent {
            op,
            phase,
            leaf: leaf.to_string(),
            slot: slot.to_string(),
            task: None,
            claim_rev: None,
            oid: None,
            pushed: None,
            prev_tip: None,
            t_ns,
            error: None,
            outcome: None,
            fork_retries: None,
        }
    }
}
