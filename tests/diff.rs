//! `herd diff` on committed run artifacts: identical runs pass, an injected 20 % throughput
//! drop is a named regression (exit 1), sweeps compare cell by cell, unreadable input exits 2.

mod common;

use std::path::{Path, PathBuf};

use common::herd;

fn committed(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/trials/2026-11-26-topologies")
        .join(run)
        .join("results.json")
}

/// A copy of `from` with `hub_commits_per_sec` scaled by `factor`, written to `to`.
fn scaled(from: &Path, to: &Path, factor: f64) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from).unwrap()).unwrap();
    let rate = v["hub_commits_per_sec"].as_f64().unwrap();
    v["hub_commits_per_sec"] = serde_json::json!(rate * factor);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::write(to, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = herd(args, &[]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn identical_runs_pass_and_a_20_percent_drop_is_named() {
    let old = committed("default-in-process-direct-1");
    let old_s = old.to_str().unwrap();
    let (code, text) = run(&["diff", old_s, old_s]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("0 regression(s)"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let slower = dir.path().join("results.json");
    scaled(&old, &slower, 0.8);
    let (code, text) = run(&["diff", old_s, slower.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("hub_commits_per_sec"))
        .unwrap();
    assert!(
        line.contains("-20.0 %") && line.contains("REGRESSION"),
        "{line}"
    );
    assert!(text.contains("1 regression(s)"), "{text}");
    // A looser threshold lets the same drop through.
    let (code, _) = run(&[
        "diff",
        old_s,
        slower.to_str().unwrap(),
        "--threshold",
        "0.25",
    ]);
    assert_eq!(code, Some(0));
}

#[test]
fn sweeps_compare_cell_by_cell_and_bad_input_exits_2() {
    let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for cell in ["default-process-direct-1", "default-process-leafnodes-1"] {
        let src = committed(cell);
        scaled(&src, &old.path().join(cell).join("results.json"), 1.0);
        let factor = if cell.ends_with("leafnodes-1") {
            0.5
        } else {
            1.0
        };
        scaled(&src, &new.path().join(cell).join("results.json"), factor);
    }
    let (code, text) = run(&[
        "diff",
        old.path().to_str().unwrap(),
        new.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{text}");
    let regressions: Vec<&str> = text.lines().filter(|l| l.contains("REGRESSION")).collect();
    assert_eq!(regressions.len(), 1, "{text}");
    assert!(regressions[0].starts_with("| default-process-leafnodes-1 | hub_commits_per_sec"));

    let missing = old.path().join("nothing.json");
    let (code, text) = run(&["diff", missing.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{text}");
}
