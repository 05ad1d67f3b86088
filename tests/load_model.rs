//! The open-model cadence through the example: a herd offered more than it can do shows its
//! backlog and the latency its tasks waited (measured from when they were due, so the slow
//! loop cannot hide it); one offered little keeps up with no backlog.

mod common;

fn run(args: &[&str]) -> (serde_json::Value, String) {
    let (_dir, results, stdout) = common::trial_ok(args);
    (results, stdout)
}

#[test]
fn an_overloaded_open_model_reports_its_backlog_and_the_wait_from_the_due_time() {
    // A task due every 100 ms on each of 2 leaves, each task thinking 300 ms: a slot's task k
    // cannot start before 300·k ms, while it was due at 100·k ms (plus a phase under 100 ms).
    let (r, stdout) = run(&[
        "--agents",
        "2",
        "--tasks-per-agent",
        "8",
        "--think-ms",
        "300",
        "--rate-per-agent",
        "600",
    ]);
    let load = &r["load"];
    assert_eq!(load["model"], "open");
    assert_eq!(load["arrivals"], "fixed");
    assert_eq!(load["offered_per_min"].as_f64(), Some(1200.0));
    // At slot task 2's start (≥ 600 ms), tasks 3–6 are due already: 4 per slot, at least.
    assert!(load["backlog_max"].as_u64().unwrap() >= 4, "{load}");
    assert_eq!(load["kept_up"], false, "{load}");
    // The last task was due by 800 ms and cannot close before 2400 ms: ≥ 1.6 s from its due.
    let task = &r["latency"]["task"];
    assert!(task["max_ms"].as_f64().unwrap() >= 1600.0, "{task}");
    assert!(load["lag"]["max_ms"].as_f64().unwrap() >= 1400.0, "{load}");
    // Work is still exact: every task closed, nothing lost, the history passes.
    assert_eq!(r["counters"]["tasks_closed"].as_u64(), Some(16));
    assert_eq!(r["counters"]["commits_lost"].as_u64(), Some(0));
    assert!(stdout.contains("FELL BEHIND"), "{stdout}");
    assert!(stdout.contains("(from its due to its close)"), "{stdout}");
}

#[test]
fn an_open_model_with_room_keeps_up_with_no_backlog() {
    // A task due every 4 s per leaf; a task takes milliseconds.
    let (r, stdout) = run(&[
        "--agents",
        "2",
        "--tasks-per-agent",
        "2",
        "--think-ms",
        "0",
        "--rate-per-agent",
        "15",
        "--arrivals",
        "poisson",
    ]);
    let load = &r["load"];
    assert_eq!(load["arrivals"], "poisson");
    assert_eq!(load["backlog_max"].as_u64(), Some(0), "{load}");
    assert_eq!(load["kept_up"], true, "{load}");
    assert_eq!(r["counters"]["tasks_closed"].as_u64(), Some(4));
    assert!(stdout.contains("kept up"), "{stdout}");
}
