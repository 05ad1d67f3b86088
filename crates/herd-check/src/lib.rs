//! # herd-check — the history checker
//!
//! Counters can lie (the Go reference printed counters that were never wired); a history
//! checked independently cannot. This room re-derives a trial's verdict from raw artifacts
//! only — the `events.jsonl` history ([`history`]), the hub's bare repository, the KV dumps of
//! `herd-tasks` and `herd-claims`, and each leaf's SQLite ledger — and never from the runner's
//! counters. Layout of the artifacts: [`artifacts`].
//!
//! Invariants (documented in `docs/history.md`):
//! I1 every leaf opened as many tasks as the plan (`plan.json`, from the configuration) gave it,
//! and every opened task has exactly one successful close (a task failed by the conflict rule
//! must not close); I1b claim intervals of a task never
//! overlap; I2 the trunk is linear, only `refs/heads/main` exists, its length after the seed
//! equals the hub's accepted pushes, and the object store reads back; I3 each trunk commit stays
//! in its author's slot; I4 every reported commit is on the trunk and every trunk commit was
//! reported once; I4b no task appears in two trunk commits; I6 no lock files, temp packs or
//! quarantine dirs are left; I9 each leaf's observed tips only move forward; I10 every accepted
//! tip reaches every live leaf within 30 s; I11 each ledger's
//! final task states equal the bucket's (a task another leaf took over may be `released`),
//! and every bucket task of a planned leaf is in that leaf's ledger; I5 (when the run's spans
//! are at hand, `spans.jsonl`) the collector's spans, deduplicated by span id, equal every
//! ledger's commits and claim epochs; I7 no task is stuck; I8 every push was fenced by the live claim; I12 no
//! commit overwrote a path changed on the trunk after its `Herd-Base`. A missing artifact (the plan included) makes the verdict inconclusive.
//!
//! Enters: a directory (or explicit [`Artifacts`]). Leaves: a [`CheckReport`] with a
//! [`Verdict`]. Calls herd-bus only for its record types; reads files, never a live server.

pub mod artifacts;
pub mod check;
pub mod history;
pub mod invariants;
pub mod report;
pub mod trunk;

pub use artifacts::{Artifacts, HubFacts, Plan};
pub use check::{INVARIANTS, check};
pub use history::{HistoryEvent, Op, Phase};
pub use report::{CheckReport, Verdict, Violation};
