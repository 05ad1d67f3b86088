//! `herd scenarios FILE`: named trials from one TOML file, run back to back, with one summary
//! table and one exit code.
//!
//! ```toml
//! [[scenario]]
//! name = "default"
//!
//! [[scenario]]
//! name = "open-32"
//! agents = 32
//! rate_per_agent = 30
//! tasks_per_agent = 10
//! max_p99_ms = 2000
//! ```
//!
//! Each table takes every key a `--config` file takes (plus `name`); a scenario starts from the
//! defaults (the phase2 shape first when it names that gate), not from the environment, so the
//! file alone says what runs. Every scenario is validated before the first one runs: a bad key
//! or value is exit 2 naming the scenario and the key. Results go to `<out>/<name>/`, the table
//! to `<out>/scenarios.json` and `scenarios.md`. Exit: 1 if any scenario failed, else 3 if any
//! was inconclusive, else 0.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigLayer, GatePreset, TrialConfig};
use crate::error::{ConfigError, TrialError};
use crate::runner::{RunOptions, run_with};

/// One scenario, ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name (a directory name).
    pub name: String,
    /// The trial it runs.
    pub config: TrialConfig,
}

/// One row of the summary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Scenario name.
    pub name: String,
    /// PASS, FAIL or INCONCLUSIVE.
    pub verdict: String,
    /// The trial's exit code.
    pub exit: u8,
    /// Tasks closed of all.
    pub closed: String,
    /// Commits lost.
    pub lost: u64,
    /// Hub commits per second.
    pub commits_per_sec: f64,
    /// Commit latency p50 / p99, ms.
    pub commit_ms: (f64, f64),
    /// Failed commits.
    pub failed_commits: u64,
    /// Seconds from start to verdict.
    pub runtime_secs: f64,
    /// Gates that failed.
    pub failed_gates: Vec<String>,
}

/// The file: `[[scenario]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scenario: Vec<toml::Table>,
}

/// Reads and validates every scenario of `path`; output directories under `out`.
pub fn load(path: &Path, out: &Path) -> Result<Vec<Scenario>, ConfigError> {
    let file_err = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let file: File = toml::from_str(&text).map_err(|e| file_err(e.to_string()))?;
    if file.scenario.is_empty() {
        return Err(file_err("no [[scenario]] tables".into()));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out_list = Vec::new();
    for (i, mut table) in file.scenario.into_iter().enumerate() {
        let name = match table.remove("name") {
            Some(toml::Value::String(n)) if valid_name(&n) => n,
            other => {
                return Err(ConfigError::Invalid {
                    key: format!("scenario[{i}].name"),
                    value: other.map(|v| v.to_string()).unwrap_or_default(),
                    reason: "every scenario needs a name of letters, digits, '-' or '_'".into(),
                });
            }
        };
        if !seen.insert(name.clone()) {
            return Err(ConfigError::Invalid {
                key: format!("scenario {name}"),
                value: name,
                reason: "names must be unique".into(),
            });
        }
        let named = |e: ConfigError| match e {
            ConfigError::Invalid { key, value, reason } => ConfigError::Invalid {
                key: format!("scenario {name}: {key}"),
                value,
                reason,
            },
            other => ConfigError::Invalid {
                key: format!("scenario {name}"),
                value: String::new(),
                reason: other.to_string(),
            },
        };
        let layer = ConfigLayer::deserialize(table).map_err(|e| {
            named(ConfigError::Invalid {
                key: "keys".into(),
                value: String::new(),
                reason: e.to_string(),
            })
        })?;
        let mut config = TrialConfig::default();
        if layer.gate == Some(GatePreset::Phase2) {
            config.apply(TrialConfig::phase2_defaults());
        }
        config.apply(layer);
        config.out = Some(out.join(&name));
        config.settle();
        config.validate().map_err(named)?;
        out_list.push(Scenario { name, config });
    }
    Ok(out_list)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Runs `scenarios` one after another; writes the summary into `out`. Returns the rows and
/// the exit code (1 any failed, else 3 any inconclusive, else 0).
pub async fn run(
    scenarios: Vec<Scenario>,
    out: &Path,
    quiet: bool,
) -> Result<(Vec<Outcome>, u8), TrialError> {
    std::fs::create_dir_all(out).map_err(|e| output(out, e))?;
    let mut rows = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        if !quiet {
            eprintln!(
                "herd scenarios: [{}/{}] {} ({} agents × {} tasks)",
                i + 1,
                scenarios.len(),
                s.name,
                s.config.agents,
                s.config.tasks_per_agent
            );
        }
        let outcome = run_with(
            s.config.clone(),
            RunOptions {
                quiet: true,
                ..Default::default()
            },
        )
        .await?;
        let r = &outcome.results;
        let (verdict, exit) = r.verdict();
        if !quiet {
            eprintln!("herd scenarios:   {} {verdict}", s.name);
        }
        rows.push(Outcome {
            name: s.name.clone(),
            verdict: verdict.to_string(),
            exit,
            closed: format!("{}/{}", r.counters.tasks_closed, r.counters.tasks_total),
            lost: r.counters.commits_lost,
            commits_per_sec: r.hub_commits_per_sec,
            commit_ms: (r.latency.commit.p50_ms, r.latency.commit.p99_ms),
            failed_commits: r.latency.commit_failed.count,
            runtime_secs: r.runtime_secs,
            failed_gates: r
                .gates
                .iter()
                .filter(|g| !g.passed)
                .map(|g| g.name.clone())
                .collect(),
        });
    }
    let exit = if rows.iter().any(|r| r.exit == 1) {
        1
    } else if rows.iter().any(|r| r.exit == 3) {
        3
    } else {
        0
    };
    let json = serde_json::to_string_pretty(&rows).map_err(|e| output(out, e.into()))?;
    let path = out.join("scenarios.json");
    std::fs::write(&path, json + "\n").map_err(|e| output(&path, e))?;
    let path = out.join("scenarios.md");
    std::fs::write(&path, markdown(&rows)).map_err(|e| output(&path, e))?;
    Ok((rows, exit))
}

/// The summary table.
pub fn markdown(rows: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| scenario | verdict | closed | lost | commits/s | p50 / p99 commit ms | failed commits | runtime s | failed gates |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:.1} / {:.1} | {} | {:.1} | {} |",
            r.name,
            r.verdict,
            r.closed,
            r.lost,
            r.commits_per_sec,
            r.commit_ms.0,
            r.commit_ms.1,
            r.failed_commits,
            r.runtime_secs,
            if r.failed_gates.is_empty() {
                "—".to_string()
            } else {
                r.failed_gates.join(", ")
            }
        );
    }
    s
}

fn output(path: &Path, source: std::io::Error) -> TrialError {
    TrialError::Output {
        path: PathBuf::from(path),
        source,
    }
}
