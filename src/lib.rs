//! # herd — stress-test the hub-and-leaf way of running many coding agents on one repository
//!
//! This crate is the facade: it re-exports the rooms so an example or an orchestrator can depend
//! on one crate, and it hosts the `examples/` (the full trial is `examples/herd.rs`).
//!
//! - [`bus`]: NATS JetStream — the `nats-server` fixture, tip broadcasts, claim and task buckets.
//! - [`hub`]: the git smart-HTTP repository hub with a compare-and-swap trunk.
//! - [`leaf`]: one agent — its git2 clone, SQLite ledger and task lifecycle.
//! - [`trial`]: workload, runner, metrics, gates and reports.
//! - [`check`]: the history checker that re-derives a trial's verdict from raw artifacts.
//!
//! Dependencies point one way: trial → leaf → (hub over HTTP, bus); hub → bus.

pub use herd_bus as bus;
pub use herd_check as check;
pub use herd_hub as hub;
pub use herd_leaf as leaf;
pub use herd_trial as trial;
