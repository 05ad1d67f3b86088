//! # herd-trial — the herd runner
//!
//! This room turns a [`TrialConfig`] into a verdict: it generates the deterministic
//! [`workload`], starts the bus (a `nats-server` fixture or `NATS_URL`), the hub and N leaves,
//! runs every task open → claim → think → commit → close, **drains** (waits until the hub trunk
//! holds every commit a leaf reported and every leaf handled every broadcast), checks the
//! history with herd-check, and writes `results.json`, `events.jsonl` and `report.md`.
//!
//! Exactness: counters are counted once where they happen and every commit is accounted for on
//! the trunk; [`gates`] turn them into the exit code (0 pass, 1 gate failed or work lost,
//! 2 bad config or unreachable dependency). Config comes from defaults → TOML → `HERD_*` env →
//! flags ([`config`], [`cli`]). [`telemetry`] (used only by the binary) installs the OTLP
//! exporter after a pre-flight and the span-counting layer.
//!
//! Work: each leaf its own tasks, or a shared [`board`] whose tasks every leaf competes for.
//!
//! Load: a closed loop (each task after the last, `think_ms`) or an open model ([`cadence`]:
//! tasks due on a seeded schedule, latency from the due time, backlog reported); [`pacer`]
//! caps the herd's commit starts; [`soak`] runs the open model for a `duration` and samples
//! the processes for growth.
//!
//! Scale: [`scale`] relates a run to its think floor and counts hub work per commit;
//! [`floor`] measures the one-pusher commit rate (the *floor*); [`sweep`] runs a grid of
//! agents × sync × hub (× cadence) cells against the floor of the same run (`herd sweep`)
//! and names each series' [`knee`].
//!
//! [`html`] writes `report.html` beside every trial's and sweep's reports: a self-contained
//! page of SVG charts (latency histogram and percentiles over time, per-agent timeline, fault
//! windows, the open model's backlog; the sweep curve with its knees).
//!
//! [`scenarios`] is `herd scenarios FILE`: named trials from one TOML file, one table, one
//! exit code.
//!
//! [`diff`] is `herd diff OLD NEW`: a regression table between two runs or two sweeps.
//!
//! [`faults`] injects a seeded schedule of real faults beside the work (it may signal and
//! restart only the bus servers this trial started, crash and restart its hub, steer the
//! proxies on its leaves' links, and — through the named leaf's own runner — crash, kill,
//! pause or fill the disk of its own leaves) and measures each against an SLA.
//! [`leaves::LeafCell`] holds each in-process slot's leaf so a leaf fault can reopen it.
//!
//! Where leaves run is one seam, [`leaves::LeafSet`]: tasks of this process, or `herd leaf`
//! children ([`leaves::children`]) stepped through the run over a line protocol
//! ([`leaves::wire`]); both open leaves with [`leaves::open_leaf`] and run
//! [`slot_runner::run_slot`]. [`join`] is the file a leaf joins a hub by; [`leaf_cmd`] is
//! `herd leaf`, [`hub_cmd`] is `herd hub` (a standalone hub and bus for hand-started leaves).
//! Child processes and histories stay inside the run's output and work directories.
//!
//! Calls: herd-bus, herd-hub, herd-leaf, herd-check. Nothing calls it but the `herd` example.

pub mod board;
pub mod cadence;
pub mod cli;
pub mod config;
pub mod diff;
pub mod environment;
pub mod error;
pub mod events;
pub mod faults;
pub mod floor;
pub mod gates;
pub mod html;
pub mod hub_cmd;
pub mod join;
pub mod knee;
pub mod leaf_cmd;
pub mod leaves;
pub mod metrics;
mod observer;
pub mod pacer;
pub mod progress;
pub mod propagation;
pub mod results;
mod rig;
pub mod runner;
pub mod scale;
pub mod scenarios;
pub mod slot_runner;
pub mod soak;
pub mod span;
pub mod sweep;
pub mod sync_log;
pub mod telemetry;
pub mod workload;

pub use config::{GatePreset, Mode, Placement, TrialConfig};
pub use error::{ConfigError, TrialError};
pub use results::TrialResults;
pub use runner::{RunOptions, TrialOutcome, run, run_with};
pub use workload::Workload;

/// `herd check <dir>`: re-checks a kept run offline, prints the verdict, returns the exit code
/// (0 pass, 1 fail, 2 inconclusive).
pub fn check_dir(dir: &std::path::Path, spans: Option<&std::path::Path>) -> u8 {
    let mut artifacts = herd_check::Artifacts::in_dir(dir);
    if let Some(spans) = spans {
        if !spans.exists() {
            println!("history check: INCONCLUSIVE");
            println!("  missing: {}: no such file (--spans)", spans.display());
            return 2; // inconclusive, as `CheckReport::exit_code` says
        }
        artifacts.spans = spans.to_path_buf();
    }
    let report = herd_check::check(&artifacts);
    println!("{}", report.summary_line());
    for v in &report.violations {
        println!("  {}: {}", v.invariant, v.message);
    }
    for m in &report.missing {
        println!("  missing: {m}");
    }
    report.exit_code()
}
