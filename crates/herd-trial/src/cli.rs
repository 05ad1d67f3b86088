//! The command line of `cargo run --example herd`: clap flags for every knob, `--config` for a
//! TOML file, and the `check` subcommand. [`resolve_config`] lays the sources in order.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigLayer, GatePreset, Mode, TrialConfig};
use crate::error::ConfigError;
use crate::span::Span;

/// Run a herd trial: a git hub, a NATS bus and N agents committing tasks; exact counts, gates
/// as exit codes (0 pass, 1 gate failed or work lost, 2 bad config or unreachable dependency).
#[derive(Parser, Debug)]
#[command(name = "herd", version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: run a trial).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Trial knobs.
    #[command(flatten)]
    pub trial: TrialArgs,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a trial (the default when no subcommand is given; takes the same knobs).
    Trial(TrialArgs),
    /// Run a standalone hub and bus for leaves started elsewhere: prints the repository URL,
    /// the bus URL and the join file leaves need; on Ctrl-C/SIGTERM writes what `herd check`
    /// reads and stops.
    Hub(HubArgs),
    /// Run one leaf that joins a running hub and bus through a join file (written by `herd hub`
    /// or by a trial with `--leaves process`); exit 0 when every task of its slot closed.
    Leaf(LeafArgs),
    /// Re-check a kept run's history offline (exit 0 pass, 1 fail, 2 inconclusive).
    Check {
        /// The output directory of a run made with `--keep`.
        dir: PathBuf,
        /// The run's spans as your collector stored them (OTLP JSON lines, e.g. the
        /// OpenTelemetry Collector's `file` exporter): checks I5, the trace against every
        /// ledger. Default: `DIR/spans.jsonl` when it exists.
        #[arg(long)]
        spans: Option<PathBuf>,
    },
    /// Compare two runs (two results.json, or two directories of runs such as sweeps, paired by
    /// subdirectory name): a regression table; exit 0 none, 1 a regression, 2 unreadable input.
    Diff {
        /// The baseline.
        old: PathBuf,
        /// The run to judge.
        new: PathBuf,
        /// Relative change beyond which a metric regresses (0.10 = 10 %).
        #[arg(long, default_value_t = 0.10)]
        threshold: f64,
    },
    /// Run a grid of trials (agents × sync × hub) after measuring the floor in the same run;
    /// writes every cell's results.json and an index (exit 0 when every cell passed, 1 if one
    /// failed). Other knobs (seed, sizes, ...) are taken from the trial flags.
    Sweep(SweepArgs),
    /// Run the named trials of a TOML file (`[[scenario]]` tables: `name` plus any trial key)
    /// back to back: one summary table, one exit code (1 if any failed, else 3 if any was
    /// inconclusive, else 0; 2 for a bad file, before anything runs). `--out` sets the directory.
    Scenarios {
        /// The scenarios file.
        file: PathBuf,
    },
}

/// `herd hub` options: where it listens, plus the trial knobs that shape the workload.
#[derive(Args, Debug)]
pub struct HubArgs {
    /// Listen address of the hub's HTTP server (0.0.0.0:PORT to serve other machines).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: std::net::SocketAddr,
    /// Host name or IP leaves use to reach the hub [default: the bind address].
    #[arg(long, value_name = "HOST")]
    pub advertise: Option<String>,
    /// Trial knobs (agents = slots, seed, sizes, hub mode, output directory, ...).
    #[command(flatten)]
    pub trial: TrialArgs,
}

/// `herd leaf` options.
#[derive(Args, Debug)]
pub struct LeafArgs {
    /// The join file (`join.json` in the hub's output directory).
    #[arg(long, value_name = "FILE")]
    pub join: PathBuf,
    /// Which slot of the trial's workload this leaf runs (0-based; leaf-<slot>).
    #[arg(long)]
    pub slot: usize,
    /// Driven by a trial over stdin/stdout (line protocol) instead of run by hand.
    #[arg(long, hide = true)]
    pub controlled: bool,
    /// Started again by the trial after it killed this leaf (a leaf fault): reopen the leaf on
    /// its directory, take the tip stream up after this sequence, land the claims its ledger
    /// holds and go on with the slot's remaining tasks.
    #[arg(long, hide = true, value_name = "SEQ")]
    pub resume_after: Option<u64>,
    /// Which start of this leaf this is (0: the first); names its history part.
    #[arg(long, hide = true, default_value_t = 0)]
    pub incarnation: u32,
}

/// `herd sweep` options.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Agent counts, comma-separated.
    #[arg(
        long = "grid-agents",
        visible_alias = "agents",
        value_delimiter = ',',
        default_value = "4,16,64,256"
    )]
    pub agents: Vec<u32>,
    /// Sync policies, comma-separated.
    #[arg(
        long = "grid-sync",
        visible_alias = "sync",
        value_delimiter = ',',
        default_value = "payload,fetch"
    )]
    pub sync: Vec<herd_leaf::SyncPolicy>,
    /// Hub modes, comma-separated.
    #[arg(
        long = "grid-hub",
        visible_alias = "hub",
        value_delimiter = ',',
        default_value = "race,queue"
    )]
    pub hub: Vec<herd_hub::HubMode>,
    /// Open-model cadences, tasks per minute per agent, comma-separated (one series each);
    /// unset: closed loop. Arrivals come from the trial's --arrivals.
    #[arg(
        long = "grid-rate",
        visible_alias = "rate",
        value_delimiter = ',',
        value_name = "PER_MIN"
    )]
    pub rate: Vec<f64>,
    /// Open model: seconds of schedule per cell (tasks per agent = ⌈rate × secs ÷ 60⌉) unless --tasks-per-agent is given.
    #[arg(long, default_value_t = 60)]
    pub schedule_secs: u64,
    /// Commits each cell aims at (tasks per agent = ⌈commits ÷ agents⌉) unless --tasks-per-agent is given.
    #[arg(long, default_value_t = 480)]
    pub commits: u64,
    /// Think time of the grid's cells, ms (N or MIN-MAX).
    #[arg(long = "grid-think-ms", value_name = "SPAN", default_value = "0")]
    pub think_ms: Span,
    /// Also run the default think time (10-100 ms) at N = 16, once per hub mode.
    #[arg(long)]
    pub default_think: bool,
    /// Commits of the floor run (one pusher) measured first.
    #[arg(long, default_value_t = 1000)]
    pub floor_commits: u64,
}

/// Every trial knob as a flag. Unset flags leave the value of earlier sources (TOML file,
/// `HERD_*` environment, defaults) in place.
#[derive(Args, Debug, Default)]
pub struct TrialArgs {
    /// TOML file with any of the knobs below (keys as the long flags, `_` for `-`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Number of agents (leaves) [default: 16; env HERD_AGENTS].
    #[arg(long)]
    pub agents: Option<u32>,
    /// Tasks per agent [default: 30; env HERD_TASKS_PER_AGENT].
    #[arg(long)]
    pub tasks_per_agent: Option<u32>,
    /// Files per task, N or MIN-MAX [default: 1-4; env HERD_FILES_PER_TASK].
    #[arg(long, value_name = "SPAN")]
    pub files_per_task: Option<Span>,
    /// Bytes per file, N or MIN-MAX [default: 50-2000; env HERD_BYTES_PER_FILE].
    #[arg(long, value_name = "SPAN")]
    pub bytes_per_file: Option<Span>,
    /// Think time between claim and commit in ms, N or MIN-MAX; 0 = tight loop [default: 10-100; env HERD_THINK_MS].
    #[arg(long, value_name = "SPAN")]
    pub think_ms: Option<Span>,
    /// Workload seed [default: 1; env HERD_SEED].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Slot assignment [default: disjoint; env HERD_MODE].
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// How leaves follow the trunk: payload (apply the objects a broadcast carries), fetch (fetch on every broadcast) or on-demand (fetch before a commit when behind) [default: payload; env HERD_SYNC].
    #[arg(long, value_name = "POLICY")]
    pub sync: Option<herd_leaf::SyncPolicy>,
    /// How the hub lands pushes: race (compare-and-swap of the tip; stale pushes are forks) or queue (merge queue, group commit) [default: race; env HERD_HUB].
    #[arg(long, value_name = "MODE")]
    pub hub: Option<herd_hub::HubMode>,
    /// Largest payload pack a broadcast carries, bytes; 0 = broadcasts carry none [default: 262144; env HERD_PAYLOAD_MAX_BYTES].
    #[arg(long, value_name = "BYTES")]
    pub payload_max_bytes: Option<u64>,
    /// How a leaf that keeps losing the race still lands (race mode): turn (FIFO of turns on the bus) or backoff (jittered exponential backoff) [default: turn; env HERD_FAIRNESS].
    #[arg(long, value_name = "HOW")]
    pub fairness: Option<herd_leaf::Fairness>,
    /// Lost races before a leaf asks for a turn [default: 1; env HERD_TURN_AFTER].
    #[arg(long, value_name = "K")]
    pub turn_after: Option<u32>,
    /// Content conflicts a task may meet and be redone on the newer tip before it fails by rule (shared mode) [default: 8; env HERD_CONFLICT_REDOS].
    #[arg(long, value_name = "N")]
    pub conflict_redos: Option<u32>,
    /// Where leaves run: in-process (tasks of this process) or process (`herd leaf` children of this binary) [default: in-process; env HERD_LEAVES].
    #[arg(long, value_enum, value_name = "WHERE")]
    pub leaves: Option<crate::config::Placement>,
    /// Seconds a leaf process may stay silent before the trial kills and reports it [default: 60; env HERD_LEAF_SILENCE_SECS].
    #[arg(long, value_name = "SECS")]
    pub leaf_silence_secs: Option<u64>,
    /// Bus layout: direct (one nats-server), leafnodes (a leaf-node server per group of leaves, linked to the hub's) or cluster3 (3-node JetStream cluster, replicas 3) [default: direct; env HERD_BUS].
    #[arg(long, value_enum, value_name = "LAYOUT")]
    pub bus: Option<crate::config::BusKind>,
    /// Leaves per leaf-node server with --bus leafnodes [default: 1; env HERD_LEAVES_PER_SERVER].
    #[arg(long, value_name = "K")]
    pub leaves_per_server: Option<u32>,
    /// Cap on the herd's total commit rate, commits per minute: commit starts at least 60/PER_MIN s apart [default: unpaced; env HERD_PACE_PER_MIN].
    #[arg(long, value_name = "PER_MIN")]
    pub pace_per_min: Option<f64>,
    /// Open model: tasks each agent starts per minute, on schedule whether or not its last task finished; latency counts from the due time [default: closed loop; env HERD_RATE_PER_AGENT].
    #[arg(long, value_name = "PER_MIN")]
    pub rate_per_agent: Option<f64>,
    /// Open-model arrivals: fixed (every 60/R s after a seeded phase) or poisson (seeded exponential gaps) [default: fixed; env HERD_ARRIVALS].
    #[arg(long, value_enum)]
    pub arrivals: Option<crate::cadence::Arrivals>,
    /// Task board: own (each leaf opens and claims its own tasks) or shared (one pool opened by the trial; leaves compete to claim every task, so claims lost are measured) [default: own; env HERD_BOARD].
    #[arg(long, value_enum)]
    pub board: Option<crate::board::Board>,
    /// Soak: run the open model this long, e.g. 30m (tasks per agent = ⌈rate × minutes⌉); RSS, open fds and threads are sampled and gated on growth, coordination time on its variation [default: off; env HERD_DURATION].
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<crate::soak::Period>,
    /// Soak: seconds between process samples [default: 10; env HERD_SAMPLE_SECS].
    #[arg(long, value_name = "SECS")]
    pub sample_secs: Option<u64>,
    /// Claim lease in seconds [default: 60; env HERD_CLAIM_TTL_SECS].
    #[arg(long)]
    pub claim_ttl_secs: Option<u64>,
    /// Seconds the drain waits for every reported commit to be on the trunk, and for leaves that stop making progress through their broadcast backlog [default: 60; env HERD_DRAIN_TIMEOUT_SECS].
    #[arg(long)]
    pub drain_timeout_secs: Option<u64>,
    /// Output directory [default: target/herd-trials/<timestamp>; env HERD_OUT].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep the hub repository, leaf dirs and KV dumps in the output dir [env HERD_KEEP].
    #[arg(long)]
    pub keep: bool,
    /// A gate preset; phase2 = N=4 at <= 4 commits/min, 100% completion, P99 < 5 s, 0 unrecoverable [env HERD_GATE].
    #[arg(long, value_enum)]
    pub gate: Option<GatePreset>,
    /// Fail (exit 1) if the P99 commit latency exceeds this [env HERD_MAX_P99_MS].
    #[arg(long, value_name = "MS")]
    pub max_p99_ms: Option<u64>,
    /// Fail (exit 1) if the herd committed faster than this [env HERD_MAX_COMMITS_PER_MIN].
    #[arg(long, value_name = "PER_MIN")]
    pub max_commits_per_min: Option<f64>,
    /// Faults to inject, `KIND@WHEN[+HOLD][:TARGET]` joined by `;`: e.g. `bus-kill@commits=100+1s` (F1), `bus-stop@5s~2s+8s` (F2, seeded jitter); targets bus, node-K, local-K, any [env HERD_FAULTS].
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<crate::faults::spec::FaultList>,
    /// What each fault must meet, e.g. `detect=3s,recover=10s,rate=30s` (the defaults); a miss fails the trial [env HERD_FAULT_SLA].
    #[arg(long, value_name = "SLA")]
    pub fault_sla: Option<crate::faults::FaultSla>,
}

impl TrialArgs {
    fn layer(&self) -> ConfigLayer {
        ConfigLayer {
            agents: self.agents,
            tasks_per_agent: self.tasks_per_agent,
            files_per_task: self.files_per_task,
            bytes_per_file: self.bytes_per_file,
            think_ms: self.think_ms,
            seed: self.seed,
            mode: self.mode,
            sync: self.sync,
            hub: self.hub,
            payload_max_bytes: self.payload_max_bytes,
            fairness: self.fairness,
            turn_after: self.turn_after,
            conflict_redos: self.conflict_redos,
            leaves: self.leaves,
            leaf_silence_secs: self.leaf_silence_secs,
            bus: self.bus,
            leaves_per_server: self.leaves_per_server,
            pace_per_min: self.pace_per_min,
            rate_per_agent: self.rate_per_agent,
            arrivals: self.arrivals,
            board: self.board,
            duration: self.duration,
            sample_secs: self.sample_secs,
            claim_ttl_secs: self.claim_ttl_secs,
            drain_timeout_secs: self.drain_timeout_secs,
            out: self.out.clone(),
            keep: self.keep.then_some(true),
            gate: self.gate,
            max_p99_ms: self.max_p99_ms,
            max_commits_per_min: self.max_commits_per_min,
            faults: self.faults.clone().map(|f| f.0),
            fault_sla: self.fault_sla,
        }
    }
}

/// Defaults → (phase2 shape, if that gate is chosen anywhere) → TOML → env → flags; validated.
pub fn resolve_config(
    args: &TrialArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<TrialConfig, ConfigError> {
    let file = match &args.config {
        Some(path) => ConfigLayer::from_toml_file(path)?,
        None => ConfigLayer::default(),
    };
    let env = ConfigLayer::from_env_with(env)?;
    let flags = args.layer();
    let mut config = TrialConfig::default();
    if [&file, &env, &flags]
        .iter()
        .any(|l| l.gate == Some(GatePreset::Phase2))
    {
        config.apply(TrialConfig::phase2_defaults());
    }
    config.apply(file);
    config.apply(env);
    config.apply(flags);
    config.settle();
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_env_beat_file_and_phase2_sets_the_shape() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herd.toml");
        std::fs::write(&file, "agents = 2\ntasks_per_agent = 7\nseed = 5\n").unwrap();
        let cli = Cli::try_parse_from(["herd", "--config", file.to_str().unwrap(), "--seed", "9"])
            .unwrap();
        let env = |k: &str| (k == "HERD_TASKS_PER_AGENT").then(|| "8".to_string());
        let config = resolve_config(&cli.trial, env).unwrap();
        assert_eq!(
            (config.agents, config.tasks_per_agent, config.seed),
            (2, 8, 9)
        );

        let cli = Cli::try_parse_from(["herd", "--gate", "phase2"]).unwrap();
        let config = resolve_config(&cli.trial, |_| None).unwrap();
        assert_eq!((config.agents, config.pace_per_min), (4, Some(4.0)));
    }

    #[test]
    fn invalid_values_are_errors_naming_the_key() {
        let cli = Cli::try_parse_from(["herd", "--agents", "0"]).unwrap();
        let err = resolve_config(&cli.trial, |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("agents"), "{err}");
        let cli = Cli::try_parse_from(["herd", "--think-ms", "9-3"]).unwrap();
        let err = resolve_config(&cli.trial, |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("think_ms"), "{err}");
        assert!(Cli::try_parse_from(["herd", "--agents", "x"]).is_err());
    }
}
