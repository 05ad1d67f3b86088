//! `herd sweep`: a grid of trials — agent counts × sync policies × hub modes — run one after
//! another on the same machine, after measuring the floor ([`crate::floor`]) in the same run,
//! so every cell's throughput is also a ratio that does not depend on the machine's speed.
//!
//! Every cell writes its own `results.json` (and events, report) under `<out>/<cell>/`; the
//! sweep writes `<out>/index.json` (the floor, every cell's row, the binary's git revision, the
//! machine) and `<out>/index.md` (the same as a table). Cells run with a tight loop (think 0)
//! unless the base configuration says otherwise; `--default-think` adds the default think time
//! at N = 16 for each hub mode. With `rates` each cell runs the open model at that per-agent
//! cadence instead ([`crate::cadence`]), for `schedule_secs` of schedule.
//!
//! The index names each series' *knee* ([`crate::knee`]): the first agent count where the
//! herd stops keeping up.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use herd_hub::HubMode;
use herd_leaf::SyncPolicy;
use serde::{Deserialize, Serialize};

use crate::config::TrialConfig;
use crate::error::TrialError;
use crate::floor::{self, Floor};
use crate::results::{Environment, TrialResults};
use crate::runner::{RunOptions, run_with};
use crate::span::Span;

/// What a sweep runs.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// Every other knob of each cell (seed, sizes, gates, ...).
    pub base: TrialConfig,
    /// Agent counts.
    pub agents: Vec<u32>,
    /// Sync policies.
    pub syncs: Vec<SyncPolicy>,
    /// Hub modes.
    pub hubs: Vec<HubMode>,
    /// Commits each cell aims at: tasks per agent = max(1, ⌈commits / agents⌉), unless the
    /// base configuration's tasks per agent is given explicitly (`tasks_per_agent`).
    pub commits: u64,
    /// Tasks per agent for every cell, overriding `commits`.
    pub tasks_per_agent: Option<u32>,
    /// Open-model cadences, tasks per minute per agent (empty: closed loop).
    pub rates: Vec<f64>,
    /// Open model: seconds of schedule per cell (tasks per agent = ⌈rate × secs ÷ 60⌉) unless
    /// `tasks_per_agent` is given.
    pub schedule_secs: u64,
    /// Add the default think time (10–100 ms) at N = 16, one cell per hub mode.
    pub default_think: bool,
    /// Commits of the floor run.
    pub floor_commits: u64,
    /// Output directory.
    pub out: PathBuf,
}

/// One cell's row.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Row {
    /// Directory name under the sweep's output (`n16-payload-race`).
    pub cell: String,
    /// Agents.
    pub agents: u32,
    /// Tasks per agent.
    pub tasks_per_agent: u32,
    /// Think time.
    pub think_ms: String,
    /// Sync policy.
    pub sync: String,
    /// Hub mode.
    pub hub: String,
    /// Open model: tasks per minute per agent (none: closed loop).
    #[serde(default)]
    pub rate_per_agent: Option<f64>,
    /// Open model: tasks per minute offered to the herd.
    #[serde(default)]
    pub offered_per_min: f64,
    /// Tasks per minute the herd closed.
    #[serde(default)]
    pub closed_per_min: f64,
    /// Open model: due → start lag, ms: p99.
    #[serde(default)]
    pub lag_p99_ms: f64,
    /// Open model: most tasks due and not started at once.
    #[serde(default)]
    pub backlog_max: u32,
    /// Open model: the p99 lag stayed under one interval.
    #[serde(default = "yes")]
    pub kept_up: bool,
    /// Task latency (due or start → close), ms: p99.
    #[serde(default)]
    pub task_p99_ms: f64,
    /// Hub commits per second over the work phase.
    pub commits_per_sec: f64,
    /// … ÷ the floor of the same run.
    pub ratio_to_floor: f64,
    /// Commit latency of landed commits, ms: p50, p90, p99, max.
    pub commit_ms: [f64; 4],
    /// Failed or starved commits and their latency (p50, p99, max), in their own columns.
    pub failed_commits: u64,
    /// Latency of failed commits, ms: p50, p99, max.
    pub failed_commit_ms: [f64; 3],
    /// Fork retries per landed commit.
    pub fork_retries_per_commit: f64,
    /// Hub HTTP requests per landed commit (work phase).
    pub hub_requests_per_commit: f64,
    /// Broadcasts applied from payloads.
    pub broadcasts_applied: u64,
    /// Broadcasts fetched over HTTP.
    pub broadcasts_pulled: u64,
    /// Broadcasts pulled per landed commit (the N² pattern of fetch sync).
    pub pulls_per_commit: f64,
    /// Tasks starved (retry budget exhausted).
    pub starved: u64,
    /// Tasks closed of all.
    pub closed: String,
    /// Peak memory per leaf (upper bound), KiB.
    pub rss_per_leaf_kib: u64,
    /// Work phase ÷ think floor (0 in a tight loop, which has no think floor).
    pub work_to_think_floor: f64,
    /// Seconds of the work phase.
    pub work_secs: f64,
    /// History check verdict.
    pub history: String,
    /// Every gate passed.
    pub passed: bool,
}

/// The sweep's index.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SweepIndex {
    /// The binary's git revision.
    pub revision: String,
    /// Where it ran.
    pub environment: Environment,
    /// The floors measured first (one per hub mode in the grid).
    pub floors: Vec<Floor>,
    /// One row per cell, in run order.
    pub rows: Vec<Row>,
    /// Each series' knee (or that it had none), in series order.
    #[serde(default)]
    pub knees: Vec<crate::knee::Knee>,
}

fn yes() -> bool {
    true
}

/// One cell of the grid.
#[derive(Clone, Copy)]
struct Cell {
    agents: u32,
    sync: SyncPolicy,
    hub: HubMode,
    think: Span,
    rate: Option<f64>,
}

impl Cell {
    fn name(&self) -> String {
        let think = if self.think.max == 0 {
            String::new()
        } else {
            format!("-think{}", self.think)
        };
        let rate = self.rate.map(|r| format!("-r{r}")).unwrap_or_default();
        format!(
            "n{}-{}-{}{think}{rate}",
            self.agents,
            self.sync.as_str(),
            self.hub.as_str()
        )
    }

    fn tasks_per_agent(&self, config: &SweepConfig) -> u32 {
        let tasks = match (config.tasks_per_agent, self.rate) {
            (Some(t), _) => u64::from(t),
            (None, Some(rate)) => (rate * config.schedule_secs as f64 / 60.0).ceil() as u64,
            (None, None) => config.commits.div_ceil(u64::from(self.agents)),
        };
        u32::try_from(tasks.max(1)).unwrap_or(u32::MAX)
    }
}

/// Runs the sweep; returns its index (also written to `<out>/index.json` and `index.md`).
pub async fn run(config: SweepConfig, quiet: bool) -> Result<SweepIndex, TrialError> {
    std::fs::create_dir_all(&config.out).map_err(|e| output(&config.out, e))?;
    let mut floors = Vec::new();
    for hub in &config.hubs {
        let mut base = config.base.clone();
        base.hub = *hub;
        let f = floor::measure(&base, config.floor_commits).await?;
        if !quiet {
            eprintln!(
                "herd sweep: floor ({}) {:.1} commits/s",
                hub.as_str(),
                f.commits_per_sec
            );
        }
        floors.push(f);
    }
    let floor_of = |hub: HubMode| {
        floors
            .iter()
            .find(|f| f.hub == hub)
            .map_or(0.0, |f| f.commits_per_sec)
    };
    let rates: Vec<Option<f64>> = if config.rates.is_empty() {
        vec![config.base.rate_per_agent]
    } else {
        config.rates.iter().map(|r| Some(*r)).collect()
    };
    let mut cells: Vec<Cell> = Vec::new();
    for &rate in &rates {
        for &agents in &config.agents {
            for &sync in &config.syncs {
                for &hub in &config.hubs {
                    cells.push(Cell {
                        agents,
                        sync,
                        hub,
                        think: config.base.think_ms,
                        rate,
                    });
                }
            }
        }
    }
    if config.default_think {
        for &hub in &config.hubs {
            cells.push(Cell {
                agents: 16,
                sync: SyncPolicy::Payload,
                hub,
                think: TrialConfig::default().think_ms,
                rate: None,
            });
        }
    }
    // Every cell's configuration is checked before the first one runs.
    let trials: Vec<(String, TrialConfig)> = cells
        .iter()
        .map(|cell| {
            let name = cell.name();
            let trial = TrialConfig {
                agents: cell.agents,
                tasks_per_agent: cell.tasks_per_agent(&config),
                think_ms: cell.think,
                sync: cell.sync,
                hub: cell.hub,
                rate_per_agent: cell.rate,
                out: Some(config.out.join(&name)),
                keep: false,
                ..config.base.clone()
            };
            trial.validate().map(|()| (name, trial))
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let mut environment = None;
    for (name, trial) in trials {
        let (agents, tasks, hub) = (trial.agents, trial.tasks_per_agent, trial.hub);
        if !quiet {
            eprintln!("herd sweep: {name} ({agents} × {tasks})");
        }
        let outcome = run_with(
            trial,
            RunOptions {
                quiet: true,
                ..Default::default()
            },
        )
        .await?;
        let r = &outcome.results;
        environment.get_or_insert_with(|| r.environment.clone());
        let row = row(&name, r, floor_of(hub));
        if !quiet {
            eprintln!(
                "herd sweep:   {:.1} commits/s = {:.2} x floor, p99 {:.1} ms, {}",
                row.commits_per_sec,
                row.ratio_to_floor,
                row.commit_ms[2],
                if row.passed { "pass" } else { "FAIL" }
            );
        }
        rows.push(row);
    }
    let knees = crate::knee::find(&rows, config.base.gates.max_p99_ms);
    if !quiet {
        for k in &knees {
            eprintln!("herd sweep: {}", k.line());
        }
    }
    let index = SweepIndex {
        revision: crate::environment::REVISION.to_string(),
        environment: environment.unwrap_or_else(|| crate::environment::probe(String::new(), None)),
        floors,
        rows,
        knees,
    };
    let json = serde_json::to_string_pretty(&index).map_err(|e| output(&config.out, e.into()))?;
    let path = config.out.join("index.json");
    std::fs::write(&path, json + "\n").map_err(|e| output(&path, e))?;
    let path = config.out.join("index.md");
    std::fs::write(&path, markdown(&index)).map_err(|e| output(&path, e))?;
    crate::html::write_sweep(&config.out, &index).map_err(|e| output(&config.out, e))?;
    Ok(index)
}

fn row(cell: &str, r: &TrialResults, floor: f64) -> Row {
    let c = &r.counters;
    let (l, f, k) = (&r.latency.commit, &r.latency.commit_failed, &r.scale);
    let landed = c.hub_commits.max(1) as f64;
    Row {
        cell: cell.to_string(),
        agents: r.config.agents,
        tasks_per_agent: r.config.tasks_per_agent,
        think_ms: r.config.think_ms.to_string(),
        sync: r.config.sync.as_str().to_string(),
        hub: r.config.hub.as_str().to_string(),
        rate_per_agent: r.config.rate_per_agent,
        offered_per_min: r.load.offered_per_min,
        closed_per_min: r.load.closed_per_min,
        lag_p99_ms: r.load.lag.p99_ms,
        backlog_max: r.load.backlog_max,
        kept_up: r.load.kept_up,
        task_p99_ms: r.latency.task.p99_ms,
        commits_per_sec: r.hub_commits_per_sec,
        ratio_to_floor: if floor > 0.0 {
            r.hub_commits_per_sec / floor
        } else {
            0.0
        },
        commit_ms: [l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms],
        failed_commits: f.count,
        failed_commit_ms: [f.p50_ms, f.p99_ms, f.max_ms],
        fork_retries_per_commit: c.fork_retries as f64 / landed,
        hub_requests_per_commit: k.hub_requests_per_commit,
        broadcasts_applied: c.broadcasts_applied,
        broadcasts_pulled: c.broadcasts_pulled,
        pulls_per_commit: c.broadcasts_pulled as f64 / landed,
        starved: c.tasks_starved,
        closed: format!("{}/{}", c.tasks_closed, c.tasks_total),
        rss_per_leaf_kib: k.rss_per_leaf_kib,
        work_to_think_floor: k.work_to_think_floor,
        work_secs: r.work_secs,
        history: format!("{:?}", r.history_check.verdict).to_lowercase(),
        passed: r.passed,
    }
}

/// The index as a Markdown table.
pub fn markdown(index: &SweepIndex) -> String {
    let mut s = String::new();
    let e = &index.environment;
    let _ = writeln!(s, "# herd sweep\n");
    let _ = writeln!(
        s,
        "herd {} · nats-server {} · {} · {} cores · {}\n",
        index.revision, e.nats_server, e.git, e.cores, e.platform
    );
    for f in &index.floors {
        let _ = writeln!(
            s,
            "Floor ({}): {:.1} commits/s — one pusher, {} commits, commit+push p50 {:.2} ms, p99 {:.2} ms.\n",
            f.hub.as_str(),
            f.commits_per_sec,
            f.commits,
            f.commit.p50_ms,
            f.commit.p99_ms
        );
    }
    let _ = writeln!(
        s,
        "| cell | N × tasks | think ms | commits/s | × floor | p50 / p90 / p99 / max commit ms | failed (p50 / p99 / max ms) | retries/commit | hub req/commit | applied | pulled (/commit) | starved | closed | KiB/leaf | work ÷ think floor | history |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &index.rows {
        let failed = if r.failed_commits == 0 {
            "0".to_string()
        } else {
            format!(
                "{} ({:.1} / {:.1} / {:.1})",
                r.failed_commits,
                r.failed_commit_ms[0],
                r.failed_commit_ms[1],
                r.failed_commit_ms[2]
            )
        };
        let think_ratio = if r.work_to_think_floor > 0.0 {
            format!("{:.2}", r.work_to_think_floor)
        } else {
            "—".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} × {} | {} | {:.1} | {:.2} | {:.1} / {:.1} / {:.1} / {:.1} | {} | {:.2} | {:.2} | {} | {} ({:.1}) | {} | {} | {} | {} | {} |",
            r.cell,
            r.agents,
            r.tasks_per_agent,
            r.think_ms,
            r.commits_per_sec,
            r.ratio_to_floor,
            r.commit_ms[0],
            r.commit_ms[1],
            r.commit_ms[2],
            r.commit_ms[3],
            failed,
            r.fork_retries_per_commit,
            r.hub_requests_per_commit,
            r.broadcasts_applied,
            r.broadcasts_pulled,
            r.pulls_per_commit,
            r.starved,
            r.closed,
            r.rss_per_leaf_kib,
            think_ratio,
            if r.passed {
                r.history.clone()
            } else {
                format!("{} (gate FAIL)", r.history)
            },
        );
    }
    let open: Vec<&Row> = index
        .rows
        .iter()
        .filter(|r| r.rate_per_agent.is_some())
        .collect();
    if !open.is_empty() {
        let _ = writeln!(
            s,
            "\n## Open model\n\nTask latency runs from when the task was due; lag is due → start.\n"
        );
        let _ = writeln!(
            s,
            "| cell | rate/agent/min | offered/min | closed/min | task p99 ms | lag p99 ms | backlog max | kept up |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for r in open {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
                r.cell,
                r.rate_per_agent.unwrap_or_default(),
                r.offered_per_min,
                r.closed_per_min,
                r.task_p99_ms,
                r.lag_p99_ms,
                r.backlog_max,
                if r.kept_up { "yes" } else { "**no**" }
            );
        }
    }
    if !index.knees.is_empty() {
        let _ = writeln!(
            s,
            "\n## Knees\n\nThe first cell of each series that did not close every task, crossed the p99 gate, fell behind its schedule, or grew its throughput < {:.0} % for a doubling of N.\n",
            (crate::knee::MIN_GROWTH_PER_DOUBLING - 1.0) * 100.0
        );
        for k in &index.knees {
            let _ = writeln!(s, "- {}", k.line());
        }
    }
    s
}

fn output(path: &Path, source: std::io::Error) -> TrialError {
    TrialError::Output {
        path: path.to_path_buf(),
        source,
    }
}
