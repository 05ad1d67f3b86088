//! `--mode shared` end to end: every leaf writes the same paths, so pushes conflict for real.
//! The rule: a conflicting task is redone on the newer tip while its budget lasts, then fails
//! by rule. The trial passes when every conflict is accounted for (redone or failed by rule),
//! every other task closes, nothing is lost and the history — including I12, no lost update —
//! passes; the tasks failed by rule are named in the history with outcome `conflict`.

mod common;

use common::herd;

/// Runs a shared-mode trial of 6 × 6 tight-loop tasks; returns (exit code, results.json,
/// commit-fail events with outcome `conflict`).
fn shared(conflict_redos: &str) -> (Option<i32>, serde_json::Value, u64, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = herd(
        &[
            "--mode",
            "shared",
            "--agents",
            "6",
            "--tasks-per-agent",
            "6",
            "--think-ms",
            "0",
            "--conflict-redos",
            conflict_redos,
            "--out",
            dir.path().to_str().unwrap(),
            "--keep",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    let by_rule = std::fs::read_to_string(dir.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["op"] == "commit" && e["phase"] == "fail" && e["outcome"] == "conflict")
        .count() as u64;
    (out.status.code(), results, by_rule, stdout)
}

fn accounted(results: &serde_json::Value, by_rule_events: u64, stdout: &str) -> (u64, u64, u64) {
    let c = &results["counters"];
    let n = |k: &str| {
        c[k].as_u64()
            .unwrap_or_else(|| panic!("counter {k} missing"))
    };
    assert_eq!(n("tasks_total"), 36);
    assert_eq!(
        n("tasks_closed") + n("tasks_failed_by_rule"),
        36,
        "{stdout}"
    );
    assert_eq!(
        n("hub_commits"),
        n("tasks_closed"),
        "one commit per closed task"
    );
    assert_eq!(n("commits_lost"), 0);
    assert_eq!(n("tasks_starved"), 0);
    assert_eq!(
        n("conflicts"),
        n("conflict_redos") + n("tasks_failed_by_rule"),
        "every conflict redone or failed by rule"
    );
    assert_eq!(
        by_rule_events,
        n("tasks_failed_by_rule"),
        "the history names each"
    );
    assert_eq!(results["history_check"]["verdict"], "pass", "{stdout}");
    assert!(
        stdout.contains("history check: PASS (13 invariants)"),
        "{stdout}"
    );
    (
        n("conflicts"),
        n("conflict_redos"),
        n("tasks_failed_by_rule"),
    )
}

#[test]
fn shared_mode_fails_conflicting_tasks_by_rule_without_a_budget_and_passes() {
    let (code, results, events, stdout) = shared("0");
    assert_eq!(code, Some(0), "{stdout}");
    let (conflicts, redos, failed) = accounted(&results, events, &stdout);
    // Six leaves writing task k's paths at once from a tight loop: measured 25–30 conflicts
    // of 36 tasks over five seeds; none at all would mean the mode shares nothing.
    assert!(conflicts > 0, "no conflict in shared mode: {stdout}");
    assert_eq!((redos, failed), (0, conflicts));
}

#[test]
fn shared_mode_redoes_conflicting_tasks_within_the_budget_and_passes() {
    let (code, results, events, stdout) = shared("8");
    assert_eq!(code, Some(0), "{stdout}");
    let (conflicts, redos, _) = accounted(&results, events, &stdout);
    assert!(conflicts > 0 && redos > 0, "{stdout}");
    assert!(stdout.contains("conflicts:"), "{stdout}");
}
