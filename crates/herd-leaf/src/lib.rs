//! # herd-leaf — one agent of the herd
//!
//! This room is a single agent: its own git2 clone and worktree (`<dir>/repo`), its own SQLite
//! ledger (`<dir>/ledger.sqlite`, [`ledger`]), and the task lifecycle **open → claim → commit →
//! close** ([`Leaf`]). It writes only inside its slot directory ([`paths`]).
//!
//! - One owner per repository: a dedicated thread owns the `git2::Repository` ([`worker`]);
//!   the committer and the tip subscriber both send it jobs, so they never touch the
//!   repository at once.
//! - A push that loses the race for the trunk is a *fork*: fetch, rebase the commit onto the
//!   new tip, retry — bounded, with jittered backoff. A real content conflict is
//!   [`LeafError::Conflict`] (fork unrecoverable) and releases the claim; a lapsed or stolen
//!   claim is [`LeafError::EpochStale`] and nothing is pushed.
//! - The tip subscriber ([`tip_sync`]) pulls, skips (idempotent) or coalesces each
//!   `TipChanged`; counters in [`LeafStats`], each also a ledger event.
//! - Spans: `leaf.open`, `leaf.claim`, `leaf.commit`, `leaf.close`, `leaf.sync_on_broadcast`.
//!
//! Calls: herd-bus (claims, task records, tip stream) and herd-hub's client transport (HTTP to
//! the hub). Called by: herd-trial.

pub mod error;
pub mod git_ops;
pub mod leaf;
pub mod ledger;
pub mod paths;
pub mod stats;
pub mod tip_sync;
pub mod turns;
pub mod worker;

pub use error::LeafError;
pub use leaf::{Claim, CommitOutcome, Leaf, LeafConfig, RetryPolicy, TaskId};
pub use ledger::{LEDGER_FILE, Ledger, LedgerTask};
pub use stats::LeafStats;
pub use tip_sync::{SyncEvent, SyncHook, SyncOutcome, SyncPolicy};
pub use turns::Fairness;
