//! `herd diff OLD NEW`: a regression table between two runs — two `results.json` files, or two
//! directories of runs (a sweep's output, or any directory whose subdirectories hold a
//! `results.json`), paired by subdirectory name. A metric regresses when it moves the wrong
//! way by more than the threshold (a ratio, default 10 %); completion falling, lost commits
//! rising or a pass turning into a fail are regressions at any size. Exit 0 no regression,
//! 1 a regression, 2 unreadable input.
//!
//! Results are read as JSON values, not as [`crate::TrialResults`], so files written by older
//! versions still compare on the metrics they have; a metric missing on either side is shown
//! and not judged.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Throughput.
    Higher,
    /// Time, latency.
    Lower,
    /// Any drop is a regression (completion).
    NeverLower,
    /// Any rise is a regression (lost work).
    NeverHigher,
}

/// A compared metric: its name and where it lives in results.json.
pub struct Metric {
    /// Name in the table.
    pub name: &'static str,
    /// JSON pointer into results.json.
    pub pointer: &'static str,
    /// Which way is better.
    pub better: Better,
}

/// The metrics `herd diff` compares, in table order.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "hub_commits_per_sec",
        pointer: "/hub_commits_per_sec",
        better: Better::Higher,
    },
    Metric {
        name: "runtime_secs",
        pointer: "/runtime_secs",
        better: Better::Lower,
    },
    Metric {
        name: "work_secs",
        pointer: "/work_secs",
        better: Better::Lower,
    },
    Metric {
        name: "commit_p50_ms",
        pointer: "/latency/commit/p50_ms",
        better: Better::Lower,
    },
    Metric {
        name: "commit_p99_ms",
        pointer: "/latency/commit/p99_ms",
        better: Better::Lower,
    },
    Metric {
        name: "claim_p99_ms",
        pointer: "/latency/claim/p99_ms",
        better: Better::Lower,
    },
    Metric {
        name: "propagation_p99_ms",
        pointer: "/latency/propagation/p99_ms",
        better: Better::Lower,
    },
    Metric {
        name: "fork_retries",
        pointer: "/counters/fork_retries",
        better: Better::Lower,
    },
    Metric {
        name: "completion",
        pointer: "/completion",
        better: Better::NeverLower,
    },
    Metric {
        name: "commits_lost",
        pointer: "/counters/commits_lost",
        better: Better::NeverHigher,
    },
    Metric {
        name: "passed",
        pointer: "/passed",
        better: Better::NeverLower,
    },
];

/// One compared metric of one run pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The run pair (`.` for two files, else the subdirectory name).
    pub run: String,
    /// The metric.
    pub metric: &'static str,
    /// Old value.
    pub old: Option<f64>,
    /// New value.
    pub new: Option<f64>,
    /// Did it regress?
    pub regression: bool,
}

/// Why a diff could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A file that cannot be read or parsed.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Two directories with no run in common, or a file against a directory.
    #[error("nothing to compare: {0}")]
    Unpaired(String),
}

fn value(v: &Value, pointer: &str) -> Option<f64> {
    match v.pointer(pointer)? {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        other => other.as_f64(),
    }
}

/// Compares one pair of results.
pub fn compare(run: &str, old: &Value, new: &Value, threshold: f64) -> Vec<Row> {
    METRICS
        .iter()
        .map(|m| {
            let (o, n) = (value(old, m.pointer), value(new, m.pointer));
            let regression = match (o, n) {
                (Some(o), Some(n)) => match m.better {
                    Better::Higher => n < o * (1.0 - threshold),
                    Better::Lower => n > o * (1.0 + threshold) && n - o > f64::EPSILON,
                    Better::NeverLower => n < o,
                    Better::NeverHigher => n > o,
                },
                _ => false,
            };
            Row {
                run: run.to_string(),
                metric: m.name,
                old: o,
                new: n,
                regression,
            }
        })
        .collect()
}

fn read(path: &Path) -> Result<Value, DiffError> {
    let text = std::fs::read_to_string(path).map_err(|e| DiffError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| DiffError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The runs under `path`: itself (a results.json, or a directory holding one) or its
/// subdirectories that hold one, by name.
fn runs(path: &Path) -> Result<Vec<(String, PathBuf)>, DiffError> {
    if path.is_file() {
        return Ok(vec![(".".into(), path.to_path_buf())]);
    }
    if path.join("results.json").is_file() {
        return Ok(vec![(".".into(), path.join("results.json"))]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| DiffError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("results.json").is_file())
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), p.join("results.json"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Compares every run of `old` with the run of the same name in `new`.
pub fn diff(old: &Path, new: &Path, threshold: f64) -> Result<Vec<Row>, DiffError> {
    let (old_runs, new_runs) = (runs(old)?, runs(new)?);
    let mut rows = Vec::new();
    for (name, old_file) in &old_runs {
        let Some((_, new_file)) = new_runs.iter().find(|(n, _)| n == name) else {
            continue;
        };
        rows.extend(compare(name, &read(old_file)?, &read(new_file)?, threshold));
    }
    if rows.is_empty() {
        return Err(DiffError::Unpaired(format!(
            "{} and {} share no run (a results.json each, or subdirectories of the same names)",
            old.display(),
            new.display()
        )));
    }
    Ok(rows)
}

/// The table: one line per metric and run, regressions marked.
pub fn markdown(rows: &[Row], threshold: f64) -> String {
    use std::fmt::Write as _;
    let fmt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.3}"));
    let mut s = "| run | metric | old | new | change | |\n|---|---|---|---|---|---|\n".to_string();
    for r in rows {
        let change = match (r.old, r.new) {
            (Some(o), Some(n)) if o != 0.0 => format!("{:+.1} %", (n / o - 1.0) * 100.0),
            _ => "—".into(),
        };
        let mark = if r.regression { "REGRESSION" } else { "" };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {change} | {mark} |",
            r.run,
            r.metric,
            fmt(r.old),
            fmt(r.new)
        );
    }
    let n = rows.iter().filter(|r| r.regression).count();
    let _ = writeln!(
        s,
        "\n{n} regression(s) beyond {:.0} % (completion, lost commits and pass/fail: any change)",
        threshold * 100.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(rate: f64, p99: f64, completion: f64, passed: bool) -> Value {
        serde_json::json!({
            "hub_commits_per_sec": rate,
            "runtime_secs": 5.0,
            "work_secs": 4.0,
            "latency": {"commit": {"p50_ms": 50.0, "p99_ms": p99}},
            "completion": completion,
            "counters": {"commits_lost": 0, "fork_retries": 10},
            "passed": passed,
        })
    }

    fn regressed(rows: &[Row]) -> Vec<&str> {
        rows.iter()
            .filter(|r| r.regression)
            .map(|r| r.metric)
            .collect()
    }

    #[test]
    fn a_20_percent_throughput_drop_is_a_regression_and_noise_is_not() {
        let old = results(100.0, 150.0, 1.0, true);
        assert_eq!(
            regressed(&compare(".", &old, &results(80.0, 150.0, 1.0, true), 0.1)),
            ["hub_commits_per_sec"]
        );
        assert!(regressed(&compare(".", &old, &results(95.0, 160.0, 1.0, true), 0.1)).is_empty());
        assert_eq!(
            regressed(&compare(".", &old, &results(100.0, 200.0, 1.0, true), 0.1)),
            ["commit_p99_ms"]
        );
    }

    #[test]
    fn completion_and_pass_regress_at_any_size_and_missing_metrics_are_not_judged() {
        let old = results(100.0, 150.0, 1.0, true);
        assert_eq!(
            regressed(&compare(
                ".",
                &old,
                &results(100.0, 150.0, 0.999, false),
                0.1
            )),
            ["completion", "passed"]
        );
        let rows = compare(".", &old, &serde_json::json!({}), 0.1);
        assert!(regressed(&rows).is_empty());
        assert!(rows.iter().all(|r| r.new.is_none()));
    }
}
