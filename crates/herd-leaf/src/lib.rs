//! # herd-leaf — one agent of the herd
//!
//! This room is a single agent: its own git2 clone and worktree (`<dir>/repo`, holding only the
//! leaf's slot), its own SQLite ledger (`<dir>/ledger.sqlite`, [`ledger`]), and the task
//! lifecycle **open → claim → commit → close** ([`Leaf`]). It writes only inside its slot
//! directory ([`paths`]) and its own `<dir>`.
//!
//! - One owner per repository: a dedicated thread owns the `git2::Repository` ([`worker`]);
//!   the committer and the tip subscriber both send it jobs, so they never touch the
//!   repository at once. Objects go to a memory backend (payload entries are kept as they
//!   arrived and inflated only when read) and reach disk as one pack per flush;
//!   the leaf's packs are merged geometrically and the repository reopened ([`compact`]), so
//!   its open files stay about log2(trunk) however long it runs.
//! - A push ([`git_ops`]) is one receive-pack request carrying only the commit's new objects, to
//!   the trunk (race hub: compare-and-swap) or the merge queue (queue hub, which answers with the
//!   oid the commit landed as). A push that loses the race is a *fork*: the leaf waits for the
//!   named tip (or fetches), rebases and retries — bounded. After K lost races it asks for a
//!   turn ([`turns`], [`Fairness`]), so no leaf starves. A real content conflict is
//!   redone on the newer tip while `conflict_redos` lasts (every commit names the tip its work
//!   was written against in a `Herd-Base` trailer), then is [`LeafError::Conflict`] (fork
//!   unrecoverable, the task fails by rule) and releases the claim; a lapsed or stolen
//!   claim is [`LeafError::EpochStale`] and nothing is pushed; a policy refusal is
//!   [`LeafError::Refused`] (never retried).
//! - The tip subscriber ([`tip_sync`]) follows the trunk by one [`SyncPolicy`]: apply the
//!   broadcast's payload (no request to the hub), fetch every tip, or fetch on demand; each
//!   broadcast gets exactly one outcome, counted in [`LeafStats`] and noted in the ledger.
//!   When the bus client reconnects (a restarted server lost the consumer) the subscriber
//!   resumes at once from the last stream sequence it saw; a replayed old tip leaves the
//!   reported view where it was. A push whose reply was lost is an unknown outcome naming the
//!   commit it pushed ([`LeafError::pushed`]); with the race hub the leaf settles it from the
//!   trunk once the hub answers again (landed, or pushed again: compare-and-swap lets at most
//!   one land), within `resolve_wait`.
//! - Claims are leases renewed while a task runs (`lease.rs`); a lapse is detected and the leaf
//!   refuses to push. A claim resumed from the ledger after a stop is first looked for on the
//!   trunk (its `Herd-Claim` trailer): if the hub accepted it before the stop it is recorded,
//!   not pushed again (the replay guard). Fault hooks for trials and tests:
//!   [`Leaf::pause_next_push`] (F8), [`Leaf::halt_after_next_push`] (F7), [`Leaf::stall_lease`]. Pushes carry the slot token (`Authorization: Bearer`) and name their
//!   claim (`x-herd-claim`) for a fencing hub; a broadcast with a forged or backwards `seq`
//!   is ignored and counted (`backwards`).
//! - Spans: `leaf.open`, `leaf.claim`, `leaf.commit`, `leaf.close`, `leaf.sync_on_broadcast`
//!   (`pull.source`: payload, fetch, none).
//!
//! Calls: herd-bus (claims, task records, tip stream, turns) and herd-hub (its client transport,
//! pack reader/writer, memory backend, tree diff). Called by: herd-trial.

pub mod compact;
pub mod error;
pub mod git_ops;
pub mod leaf;
mod lease;
pub mod ledger;
pub mod paths;
mod rebuild;
mod resume;
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
