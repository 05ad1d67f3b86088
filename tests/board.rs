//! A shared task board through the example: the trial opens one pool, leaves compete for every
//! task, each task is claimed and closed exactly once, lost claims are counted exactly (spans,
//! histogram and history agree), and the checker reads the whole claim history (I1b).

mod common;

use common::herd;

#[test]
fn leaves_compete_for_one_pool_and_every_task_closes_once() {
    let (dir, r, stdout) = common::trial_ok(&[
        "--agents",
        "6",
        "--tasks-per-agent",
        "5",
        "--think-ms",
        "0-30",
        "--board",
        "shared",
        "--keep",
    ]);
    let c = &r["counters"];
    let n = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(n("tasks_opened"), 30);
    assert_eq!(n("tasks_closed"), 30);
    assert_eq!(n("claims_won"), 30, "each task claimed once");
    assert_eq!(n("hub_commits"), 30);
    // Lost claims: the spans' count, the runner's histogram and the history agree.
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lost_events = events
        .iter()
        .filter(|e| e["op"] == "claim" && e["phase"] == "fail")
        .count() as u64;
    assert_eq!(n("claims_lost"), lost_events);
    assert_eq!(
        r["latency"]["claim_lost"]["count"].as_u64(),
        Some(lost_events)
    );
    // The board opened every task; leaves opened none.
    let opens: Vec<&str> = events
        .iter()
        .filter(|e| e["op"] == "open" && e["phase"] == "ok")
        .filter_map(|e| e["leaf"].as_str())
        .collect();
    assert_eq!(opens.len(), 30);
    assert!(opens.iter().all(|l| *l == "board"), "{opens:?}");
    // Work spread over leaves, each writing in its own slot.
    let closers: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e["op"] == "close" && e["phase"] == "ok")
        .filter_map(|e| e["leaf"].as_str())
        .collect();
    assert!(closers.len() >= 2, "one leaf did everything: {closers:?}");
    assert!(stdout.contains("history check: PASS"), "{stdout}");
    assert!(stdout.contains("shared board:"), "{stdout}");
    // `herd check` on the kept run agrees (every invariant over the same artifacts).
    let check = herd(&["check", dir.path().to_str().unwrap()], &[]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn a_shared_board_refuses_what_it_cannot_mean() {
    for (args, reason) in [
        (vec!["--board", "shared", "--mode", "shared"], "mode shared"),
        (
            vec!["--board", "shared", "--rate-per-agent", "6"],
            "closed loop",
        ),
        (
            vec!["--board", "shared", "--leaves", "process"],
            "in-process",
        ),
    ] {
        let out = herd(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("board") && stderr.contains(reason),
            "{args:?}: {stderr}"
        );
    }
    let out = herd(&["hub", "--board", "shared"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "herd hub: {stderr}");
    assert!(stderr.contains("board"), "herd hub: {stderr}");
    let out = herd(&[], &[("HERD_BOARD", "commons")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HERD_BOARD"));
}
