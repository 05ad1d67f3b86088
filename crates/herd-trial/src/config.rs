//! `TrialConfig`: every knob of a trial, with documented defaults, layered from four sources
//! (later wins): defaults → TOML file (`--config`) → `HERD_*` environment → command-line flags.
//!
//! Each source produces a [`ConfigLayer`] (all fields optional); [`TrialConfig::apply`] lays
//! them over the defaults and [`TrialConfig::validate`] refuses impossible values with the key
//! named. Nothing is silently ignored: an unknown TOML key, an unparsable `HERD_*` value or an
//! out-of-range number is an error.

use std::path::{Path, PathBuf};

use herd_hub::HubMode;
use herd_leaf::{Fairness, SyncPolicy};
use serde::{Deserialize, Serialize};

use crate::board::Board;
use crate::cadence::Arrivals;
use crate::error::ConfigError;
use crate::faults::{FaultSla, FaultSpec};
use crate::soak::Period;
use crate::span::Span;

/// How slots are assigned to leaves.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each leaf writes only in its own slot: forks are always rebasable, so any unrecoverable
    /// fork is a bug and fails the trial.
    Disjoint,
    /// Every leaf writes in one shared slot: real content conflicts happen and are reported.
    Shared,
}

/// Where the leaves run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Every leaf is a task of the trial's own process (default).
    #[default]
    InProcess,
    /// Every leaf is a `herd leaf` child process of the same binary.
    Process,
}

impl Placement {
    /// The name as flags and files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::InProcess => "in-process",
            Placement::Process => "process",
        }
    }
}

/// How the bus is laid out (see [`herd_bus::BusLayout`]).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// One nats-server; hub and leaves are its clients (default).
    #[default]
    Direct,
    /// The hub's server plus one leaf-node server per `leaves_per_server` leaves.
    Leafnodes,
    /// A 3-node JetStream cluster, replicas 3.
    Cluster3,
}

impl TrialConfig {
    /// The bus layout this config asks for.
    pub fn bus_layout(&self) -> herd_bus::BusLayout {
        match self.bus {
            BusKind::Direct => herd_bus::BusLayout::Direct,
            BusKind::Leafnodes => herd_bus::BusLayout::LeafNodes {
                per: self.leaves_per_server,
            },
            BusKind::Cluster3 => herd_bus::BusLayout::Cluster3,
        }
    }
}

impl BusKind {
    /// The name as flags and files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BusKind::Direct => "direct",
            BusKind::Leafnodes => "leafnodes",
            BusKind::Cluster3 => "cluster3",
        }
    }
}

/// Named gate sets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GatePreset {
    /// The reference project's Phase 2→3 gate: N = 4 at ≤ 4 commits/min in total, 100%
    /// completion, P99 commit < 5 s, zero unrecoverable conflicts.
    Phase2,
}

/// Pass/fail thresholds; a failed gate makes the exit code 1.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Gates {
    /// A named preset whose thresholds apply in addition to the ones below.
    pub preset: Option<GatePreset>,
    /// Fail if the P99 commit latency exceeds this many ms.
    pub max_p99_ms: Option<u64>,
    /// Fail if the herd committed faster than this many commits per minute in total (a gate that
    /// qualifies the run's shape, as the phase2 preset needs).
    pub max_commits_per_min: Option<f64>,
}

/// Everything a trial needs to know.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrialConfig {
    /// Number of leaves (agents). Default 16.
    pub agents: u32,
    /// Tasks each leaf runs. Default 30.
    pub tasks_per_agent: u32,
    /// Files written per task. Default 1-4 (at most 16: a leaf's path limit).
    pub files_per_task: Span,
    /// Bytes per file. Default 50-2000.
    pub bytes_per_file: Span,
    /// Think time between claim and commit, ms. Default 10-100; `0` is a tight loop.
    pub think_ms: Span,
    /// Workload seed. Default 1.
    pub seed: u64,
    /// Slot assignment. Default disjoint.
    pub mode: Mode,
    /// How leaves follow the trunk: `payload` (apply the objects a broadcast carries; default),
    /// `fetch` (fetch on every broadcast) or `on-demand` (fetch before a commit when behind).
    #[serde(default)]
    pub sync: SyncPolicy,
    /// How the hub lands pushes: `race` (compare-and-swap of the tip; default) or `queue`
    /// (merge queue with group commit).
    #[serde(default)]
    pub hub: HubMode,
    /// Largest payload a broadcast carries, bytes (0: none; default 256 KiB).
    #[serde(default = "default_payload_max_bytes")]
    pub payload_max_bytes: u64,
    /// How a leaf that keeps losing the race still lands (race mode): `turn` (a FIFO of turns
    /// on the bus; default) or `backoff` (jittered exponential backoff only).
    #[serde(default)]
    pub fairness: Fairness,
    /// Lost races before a leaf asks for a turn. Default 1.
    #[serde(default = "default_turn_after")]
    pub turn_after: u32,
    /// Content conflicts a task may meet and be redone on the newer tip before it fails by
    /// rule (shared mode's conflict rule). Default 8.
    #[serde(default = "default_conflict_redos")]
    pub conflict_redos: u32,
    /// Where leaves run: in the trial's process (default) or as `herd leaf` child processes.
    #[serde(default)]
    pub leaves: Placement,
    /// Seconds a leaf process may stay silent (no progress line or heartbeat) before the trial
    /// kills it and reports it (process leaves). Default 60.
    #[serde(default = "default_leaf_silence_secs")]
    pub leaf_silence_secs: u64,
    /// Bus layout: `direct` (default), `leafnodes` or `cluster3`.
    #[serde(default)]
    pub bus: BusKind,
    /// Leaves per leaf-node server (`leafnodes` layout). Default 1.
    #[serde(default = "default_leaves_per_server")]
    pub leaves_per_server: u32,
    /// Total commit rate cap for the whole herd, commits per minute (none: unpaced): commit
    /// starts are spaced at least `60 / pace` seconds apart.
    pub pace_per_min: Option<f64>,
    /// Open-model cadence: tasks each agent starts per minute, on schedule whether or not its
    /// previous task finished (none: closed loop, each task starts when the last one ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_agent: Option<f64>,
    /// How the open model spaces due times: `fixed` (default) or `poisson`.
    #[serde(default)]
    pub arrivals: Arrivals,
    /// Who opens tasks and who may take them: `own` (default; each leaf its own) or `shared`
    /// (one pool, leaves compete for every task; see [`crate::board`]).
    #[serde(default)]
    pub board: Board,
    /// Soak: run the open model this long (`30m`); tasks per agent become
    /// ⌈rate_per_agent × minutes⌉, and processes are sampled for growth (see [`crate::soak`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Period>,
    /// Soak: seconds between samples of RSS, open fds and threads. Default 10.
    #[serde(default = "default_sample_secs")]
    pub sample_secs: u64,
    /// Claim lease, seconds. Default 60.
    pub claim_ttl_secs: u64,
    /// How long the drain waits for the hub trunk to hold every reported commit, and how long
    /// it waits on leaves that stop making progress through their backlog of broadcasts,
    /// seconds. Default 60.
    pub drain_timeout_secs: u64,
    /// Output directory (default `target/herd-trials/<timestamp>/`).
    pub out: Option<PathBuf>,
    /// Keep the hub repository, leaf directories and bus store in the output directory.
    pub keep: bool,
    /// Gates.
    pub gates: Gates,
    /// Faults injected during the work (none by default): see [`crate::faults::spec`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
    /// What each fault must meet; a miss fails the trial.
    #[serde(default)]
    pub fault_sla: FaultSla,
}

fn default_sample_secs() -> u64 {
    10
}

fn default_turn_after() -> u32 {
    1
}

fn default_conflict_redos() -> u32 {
    8
}

fn default_leaves_per_server() -> u32 {
    1
}

fn default_leaf_silence_secs() -> u64 {
    60
}

fn default_payload_max_bytes() -> u64 {
    herd_hub::payload::DEFAULT_MAX_BYTES as u64
}

impl Default for TrialConfig {
    fn default() -> Self {
        TrialConfig {
            agents: 16,
            tasks_per_agent: 30,
            files_per_task: Span::new(1, 4),
            bytes_per_file: Span::new(50, 2000),
            think_ms: Span::new(10, 100),
            seed: 1,
            mode: Mode::Disjoint,
            sync: SyncPolicy::default(),
            hub: HubMode::default(),
            payload_max_bytes: default_payload_max_bytes(),
            fairness: Fairness::default(),
            turn_after: default_turn_after(),
            conflict_redos: default_conflict_redos(),
            leaves: Placement::InProcess,
            leaf_silence_secs: default_leaf_silence_secs(),
            bus: BusKind::Direct,
            leaves_per_server: default_leaves_per_server(),
            pace_per_min: None,
            rate_per_agent: None,
            arrivals: Arrivals::Fixed,
            board: Board::Own,
            duration: None,
            sample_secs: default_sample_secs(),
            claim_ttl_secs: 60,
            drain_timeout_secs: 60,
            out: None,
            keep: false,
            gates: Gates::default(),
            faults: Vec::new(),
            fault_sla: FaultSla::default(),
        }
    }
}

/// One source's view of the config: every field optional. TOML files deserialize into it
/// directly (unknown keys are errors); the environment and the CLI build one each.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub agents: Option<u32>,
    pub tasks_per_agent: Option<u32>,
    pub files_per_task: Option<Span>,
    pub bytes_per_file: Option<Span>,
    pub think_ms: Option<Span>,
    pub seed: Option<u64>,
    pub mode: Option<Mode>,
    pub sync: Option<SyncPolicy>,
    pub hub: Option<HubMode>,
    pub payload_max_bytes: Option<u64>,
    pub fairness: Option<Fairness>,
    pub turn_after: Option<u32>,
    pub conflict_redos: Option<u32>,
    pub leaves: Option<Placement>,
    pub leaf_silence_secs: Option<u64>,
    pub bus: Option<BusKind>,
    pub leaves_per_server: Option<u32>,
    pub pace_per_min: Option<f64>,
    pub rate_per_agent: Option<f64>,
    pub arrivals: Option<Arrivals>,
    pub board: Option<Board>,
    pub duration: Option<Period>,
    pub sample_secs: Option<u64>,
    pub claim_ttl_secs: Option<u64>,
    pub drain_timeout_secs: Option<u64>,
    pub out: Option<PathBuf>,
    pub keep: Option<bool>,
    pub gate: Option<GatePreset>,
    pub max_p99_ms: Option<u64>,
    pub max_commits_per_min: Option<f64>,
    pub faults: Option<Vec<FaultSpec>>,
    pub fault_sla: Option<FaultSla>,
}

/// The environment variables read, each the upper-cased field name prefixed by `HERD_`.
pub const ENV_KEYS: &[&str] = &[
    "HERD_AGENTS",
    "HERD_TASKS_PER_AGENT",
    "HERD_FILES_PER_TASK",
    "HERD_BYTES_PER_FILE",
    "HERD_THINK_MS",
    "HERD_SEED",
    "HERD_MODE",
    "HERD_SYNC",
    "HERD_HUB",
    "HERD_PAYLOAD_MAX_BYTES",
    "HERD_FAIRNESS",
    "HERD_TURN_AFTER",
    "HERD_CONFLICT_REDOS",
    "HERD_LEAVES",
    "HERD_LEAF_SILENCE_SECS",
    "HERD_BUS",
    "HERD_LEAVES_PER_SERVER",
    "HERD_PACE_PER_MIN",
    "HERD_RATE_PER_AGENT",
    "HERD_ARRIVALS",
    "HERD_BOARD",
    "HERD_DURATION",
    "HERD_SAMPLE_SECS",
    "HERD_CLAIM_TTL_SECS",
    "HERD_DRAIN_TIMEOUT_SECS",
    "HERD_OUT",
    "HERD_KEEP",
    "HERD_GATE",
    "HERD_MAX_P99_MS",
    "HERD_MAX_COMMITS_PER_MIN",
    "HERD_FAULTS",
    "HERD_FAULT_SLA",
];

impl ConfigLayer {
    /// Reads a TOML file; unknown keys and bad values are errors naming the file.
    pub fn from_toml_file(path: &Path) -> Result<ConfigLayer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Reads the `HERD_*` variables through `get` (so tests need not touch the process env).
    /// Values are parsed as TOML values would be: `HERD_AGENTS=8`, `HERD_THINK_MS=0-50`.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Result<ConfigLayer, ConfigError> {
        let mut table = toml::Table::new();
        for key in ENV_KEYS {
            let Some(raw) = get(key).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let field = key.trim_start_matches("HERD_").to_ascii_lowercase();
            let value = env_value(key, raw.trim())?;
            // Deserialize the key alone first so a range error names the variable.
            let single: toml::Table = [(field.clone(), value.clone())].into_iter().collect();
            ConfigLayer::deserialize(single).map_err(|e| ConfigError::Invalid {
                key: key.to_string(),
                value: raw.clone(),
                reason: e.to_string(),
            })?;
            table.insert(field, value);
        }
        ConfigLayer::deserialize(table).map_err(|e| ConfigError::Env {
            reason: e.to_string(),
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<ConfigLayer, ConfigError> {
        ConfigLayer::from_env_with(|k| std::env::var(k).ok())
    }
}

/// Types each variable the way its field expects, so a bad value's error names the variable.
fn env_value(key: &str, raw: &str) -> Result<toml::Value, ConfigError> {
    use clap::ValueEnum;
    let bad = |expected: &str| ConfigError::Invalid {
        key: key.to_string(),
        value: raw.to_string(),
        reason: format!("expected {expected}"),
    };
    let text = || toml::Value::String(raw.to_string());
    Ok(match key {
        "HERD_FILES_PER_TASK" | "HERD_BYTES_PER_FILE" | "HERD_THINK_MS" => {
            raw.parse::<Span>().map_err(|_| bad("N or MIN-MAX"))?;
            text()
        }
        "HERD_MODE" => {
            Mode::from_str(raw, true).map_err(|_| bad("disjoint or shared"))?;
            toml::Value::String(raw.to_ascii_lowercase())
        }
        "HERD_SYNC" => {
            let policy: SyncPolicy = raw
                .parse()
                .map_err(|_| bad("payload, fetch or on-demand"))?;
            toml::Value::String(policy.as_str().to_string())
        }
        "HERD_HUB" => {
            let mode: HubMode = raw.parse().map_err(|_| bad("race or queue"))?;
            toml::Value::String(mode.as_str().to_string())
        }
        "HERD_FAIRNESS" => {
            let f: Fairness = raw.parse().map_err(|_| bad("turn or backoff"))?;
            toml::Value::String(f.as_str().to_string())
        }
        "HERD_LEAVES" => {
            let p = Placement::from_str(raw, true).map_err(|_| bad("in-process or process"))?;
            toml::Value::String(p.as_str().to_string())
        }
        "HERD_BUS" => {
            let b =
                BusKind::from_str(raw, true).map_err(|_| bad("direct, leafnodes or cluster3"))?;
            toml::Value::String(b.as_str().to_string())
        }
        "HERD_GATE" => {
            GatePreset::from_str(raw, true).map_err(|_| bad("phase2"))?;
            toml::Value::String(raw.to_ascii_lowercase())
        }
        "HERD_FAULTS" => {
            let faults = crate::faults::spec::parse_list(raw).map_err(|e| bad(&e))?;
            toml::Value::Array(
                faults
                    .iter()
                    .map(|f| toml::Value::String(f.to_string()))
                    .collect(),
            )
        }
        "HERD_FAULT_SLA" => {
            let sla: FaultSla = raw.parse().map_err(|e: String| bad(&e))?;
            toml::Value::try_from(sla).map_err(|e| bad(&e.to_string()))?
        }
        "HERD_OUT" => text(),
        "HERD_KEEP" => toml::Value::Boolean(match raw {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            _ => return Err(bad("true or false")),
        }),
        "HERD_BOARD" => {
            let b: Board = raw.parse().map_err(|_| bad("own or shared"))?;
            toml::Value::String(b.as_str().to_string())
        }
        "HERD_DURATION" => {
            raw.parse::<Period>()
                .map_err(|e| bad(&format!("a duration like 30m ({e})")))?;
            text()
        }
        "HERD_ARRIVALS" => {
            let a: Arrivals = raw.parse().map_err(|_| bad("fixed or poisson"))?;
            toml::Value::String(a.as_str().to_string())
        }
        "HERD_PACE_PER_MIN" | "HERD_MAX_COMMITS_PER_MIN" | "HERD_RATE_PER_AGENT" => {
            toml::Value::Float(raw.parse().map_err(|_| bad("a number"))?)
        }
        _ => toml::Value::Integer(raw.parse().map_err(|_| bad("a whole number"))?),
    })
}

impl TrialConfig {
    /// Lays `layer` over `self`: every field the layer sets wins.
    pub fn apply(&mut self, layer: ConfigLayer) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = layer.$field { self.$field = v; } )* };
        }
        set!(
            agents,
            tasks_per_agent,
            files_per_task,
            bytes_per_file,
            think_ms,
            seed,
            mode,
            sync,
            hub,
            payload_max_bytes,
            fairness,
            turn_after,
            conflict_redos,
            leaves,
            leaf_silence_secs,
            bus,
            leaves_per_server,
            arrivals,
            board,
            sample_secs,
            claim_ttl_secs,
            drain_timeout_secs,
            keep
        );
        if layer.pace_per_min.is_some() {
            self.pace_per_min = layer.pace_per_min;
        }
        if layer.rate_per_agent.is_some() {
            self.rate_per_agent = layer.rate_per_agent;
        }
        if layer.duration.is_some() {
            self.duration = layer.duration;
        }
        if layer.out.is_some() {
            self.out = layer.out;
        }
        if let Some(preset) = layer.gate {
            self.gates.preset = Some(preset);
        }
        if layer.max_p99_ms.is_some() {
            self.gates.max_p99_ms = layer.max_p99_ms;
        }
        if layer.max_commits_per_min.is_some() {
            self.gates.max_commits_per_min = layer.max_commits_per_min;
        }
        if let Some(faults) = layer.faults {
            self.faults = faults;
        }
        if let Some(sla) = layer.fault_sla {
            self.fault_sla = sla;
        }
    }

    /// The phase2 preset's workload shape: 4 agents, 3 tasks each, paced to the gate's own
    /// 4 commits/min (commit starts at least 15 s apart; the gate counts commit starts, see
    /// [`crate::gates`]).
    /// Applied before the file, environment and flags, so each can still change it.
    pub fn phase2_defaults() -> ConfigLayer {
        ConfigLayer {
            agents: Some(4),
            tasks_per_agent: Some(3),
            pace_per_min: Some(4.0),
            ..Default::default()
        }
    }

    /// Refuses impossible values, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                value,
                reason: reason.into(),
            })
        };
        if self.agents == 0 {
            return bad("agents", "0".into(), "must be at least 1");
        }
        if self.agents > 1024 {
            return bad("agents", self.agents.to_string(), "must be at most 1024");
        }
        if self.leaf_silence_secs < 5 {
            return bad(
                "leaf_silence_secs",
                self.leaf_silence_secs.to_string(),
                "must be at least 5 (a leaf says something every second)",
            );
        }
        if self.leaves_per_server == 0 {
            return bad("leaves_per_server", "0".into(), "must be at least 1");
        }
        if self.tasks_per_agent == 0 {
            return bad("tasks_per_agent", "0".into(), "must be at least 1");
        }
        for (key, span) in [
            ("files_per_task", self.files_per_task),
            ("bytes_per_file", self.bytes_per_file),
            ("think_ms", self.think_ms),
        ] {
            if span.min > span.max {
                return bad(key, span.to_string(), "min is greater than max");
            }
        }
        if self.files_per_task.min == 0 || self.files_per_task.max > 16 {
            return bad(
                "files_per_task",
                self.files_per_task.to_string(),
                "must lie within 1-16",
            );
        }
        if self.bytes_per_file.max > 16 << 20 {
            return bad(
                "bytes_per_file",
                self.bytes_per_file.to_string(),
                "must be at most 16 MiB",
            );
        }
        if self.hub == HubMode::Queue
            && let Some(f) = self.faults.iter().find(|f| f.cuts_pushes())
        {
            return bad(
                "faults",
                f.to_string(),
                "needs --hub race: the pushes it cuts are unknown outcomes a leaf settles only \
                 under compare-and-swap (the merge queue could land a replayed push twice)",
            );
        }
        for f in self.faults.iter().filter(|f| f.kind.on_leaf()) {
            use crate::faults::FaultKind;
            let killable = matches!(
                f.kind,
                FaultKind::LeafKill | FaultKind::LeafHalt | FaultKind::LeafDamage
            );
            let why = if self.leaves != Placement::InProcess && !killable {
                Some(
                    "needs --leaves in-process (its standby or full disk is set up inside the \
                     trial's process; leaf-kill, leaf-halt and leaf-damage also run on process \
                     leaves)"
                        .to_string(),
                )
            } else if self.board == Board::Shared {
                Some("leaf faults need each leaf on its own slot's tasks (--board own)".to_string())
            } else if let crate::faults::Target::Leaf(k) = f.target
                && k >= self.agents as usize
            {
                Some(format!(
                    "there are {} leaves (leaf-0 to leaf-{})",
                    self.agents,
                    self.agents.saturating_sub(1)
                ))
            } else {
                None
            };
            if let Some(why) = why {
                return bad("faults", f.to_string(), &why);
            }
        }
        if let Some(f) = self.faults.iter().find(|f| {
            f.kind == crate::faults::FaultKind::LeafPause
                && f.hold <= std::time::Duration::from_secs(self.claim_ttl_secs + 1)
        }) {
            return bad(
                "faults",
                f.to_string(),
                &format!(
                    "a leaf-pause must outlast the claim TTL ({} s) by over a second, or no lease lapses",
                    self.claim_ttl_secs
                ),
            );
        }
        // The record and headers travel with the pack; the stream refuses messages over 1 MiB.
        if self.payload_max_bytes > (1 << 20) - (16 << 10) {
            return bad(
                "payload_max_bytes",
                self.payload_max_bytes.to_string(),
                "must be at most 1032192 (the tip stream's 1 MiB message limit, less room for the record)",
            );
        }
        if self.board == Board::Shared {
            let clash = if self.mode == Mode::Shared {
                Some("mode shared (one slot for all) and a shared board do not combine")
            } else if self.rate_per_agent.is_some() {
                Some(
                    "a shared board runs a closed loop (the open model paces each agent's own tasks)",
                )
            } else if self.leaves == Placement::Process {
                Some("a shared board runs with in-process leaves")
            } else {
                None
            };
            if let Some(reason) = clash {
                return bad("board", "shared".into(), reason);
            }
        }
        if let Some(d) = self.duration {
            if self.rate_per_agent.is_none() {
                return bad(
                    "duration",
                    d.to_string(),
                    "a soak runs the open model: give rate_per_agent too",
                );
            }
            if self.sample_secs == 0 {
                return bad("sample_secs", "0".into(), "must be at least 1");
            }
        }
        if self.turn_after == 0 {
            return bad("turn_after", "0".into(), "must be at least 1");
        }
        if self.claim_ttl_secs == 0 {
            return bad("claim_ttl_secs", "0".into(), "must be at least 1");
        }
        if self.drain_timeout_secs == 0 {
            return bad("drain_timeout_secs", "0".into(), "must be at least 1");
        }
        for (key, v) in [
            ("pace_per_min", self.pace_per_min),
            ("rate_per_agent", self.rate_per_agent),
            ("max_commits_per_min", self.gates.max_commits_per_min),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return bad(key, v.to_string(), "must be a positive number");
            }
        }
        Ok(())
    }

    /// Settles what one knob decides for another: a soak's `duration` at `rate_per_agent`
    /// sets the tasks per agent (⌈rate × minutes⌉).
    pub fn settle(&mut self) {
        if let (Some(d), Some(rate)) = (self.duration, self.rate_per_agent) {
            let tasks = (rate * d.0.as_secs_f64() / 60.0).ceil();
            self.tasks_per_agent = (tasks as u32).max(1);
        }
    }

    /// Total tasks in the trial.
    pub fn total_tasks(&self) -> u64 {
        u64::from(self.agents) * u64::from(self.tasks_per_agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn later_sources_win() {
        let mut config = TrialConfig::default();
        config.apply(toml::from_str("agents = 3\nseed = 9\nthink_ms = \"0\"").unwrap());
        config.apply(
            ConfigLayer::from_env_with(env(&[("HERD_SEED", "11"), ("HERD_FILES_PER_TASK", "2-3")]))
                .unwrap(),
        );
        config.apply(ConfigLayer {
            agents: Some(5),
            ..Default::default()
        });
        assert_eq!(
            (
                config.agents,
                config.seed,
                config.think_ms,
                config.files_per_task
            ),
            (5, 11, Span::new(0, 0), Span::new(2, 3))
        );
        assert_eq!(
            config.tasks_per_agent, 30,
            "untouched keys keep their default"
        );
        config.validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = ConfigLayer::from_env_with(env(&[("HERD_AGENTS", "many")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HERD_AGENTS") && err.contains("many"), "{err}");
        let err = ConfigLayer::from_env_with(env(&[("HERD_AGENTS", "-3")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HERD_AGENTS"), "{err}");
        let err = ConfigLayer::from_env_with(env(&[("HERD_MODE", "chaos")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HERD_MODE"), "{err}");
        let err = ConfigLayer::from_env_with(env(&[("HERD_THINK_MS", "5-x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HERD_THINK_MS"), "{err}");
        let err = toml::from_str::<ConfigLayer>("agent = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("agent"), "{err}");
        let err = toml::from_str::<ConfigLayer>("sync = \"gossip\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gossip"), "{err}");
        let layer: ConfigLayer =
            toml::from_str("sync = \"on-demand\"\nhub = \"queue\"\nfairness = \"backoff\"")
                .unwrap();
        assert_eq!(
            (layer.sync, layer.hub, layer.fairness),
            (
                Some(SyncPolicy::OnDemand),
                Some(HubMode::Queue),
                Some(Fairness::Backoff)
            )
        );

        let config = TrialConfig {
            agents: 0,
            ..Default::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("agents")
        );
        let config = TrialConfig {
            bytes_per_file: Span::new(10, 5),
            ..Default::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("bytes_per_file") && err.contains("min is greater than max"),
            "{err}"
        );
    }
}
