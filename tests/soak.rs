//! A short soak through the example: the duration sets the tasks, the trial's process and the
//! bus server are sampled the whole way, growth and coordination-time variation become gates,
//! and report.html draws the RSS and coordination curves (in a real headless browser).
//! (Whether a 12 s soak's CV passes depends on the machine's load, so this test reads the
//! gates' presence and the exact work, not their verdicts; soak.rs tests the bounds.)

mod common;

use common::herd;

#[test]
fn a_short_soak_samples_every_process_and_gates_growth() {
    let dir = tempfile::tempdir().unwrap();
    let out = herd(
        &[
            "--agents",
            "2",
            "--duration",
            "12s",
            "--rate-per-agent",
            "60",
            "--sample-secs",
            "1",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    // 60 tasks/min for 12 s: 12 tasks per agent, every one closed, nothing lost.
    assert_eq!(r["config"]["tasks_per_agent"].as_u64(), Some(12));
    assert_eq!(r["counters"]["tasks_closed"].as_u64(), Some(24));
    assert_eq!(r["counters"]["commits_lost"].as_u64(), Some(0));
    assert_eq!(
        r["history_check"]["verdict"], "pass",
        "{}",
        r["history_check"]
    );
    let soak = &r["soak"];
    let samples = soak["samples"].as_array().unwrap();
    for process in ["herd", "bus"] {
        let n = samples.iter().filter(|s| s["process"] == process).count();
        assert!(n >= 10, "{n} samples of {process}");
    }
    assert!(soak["windows"].as_array().unwrap().len() >= 5, "{soak}");
    let gates: Vec<&str> = r["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for gate in ["soak.cv", "soak.growth.herd", "soak.growth.bus"] {
        assert!(gates.contains(&gate), "{gate} missing: {gates:?}");
    }
    assert!(stdout.contains("soak:"), "{stdout}");
    common::assert_report_renders(
        &dir.path().join("report.html"),
        &[
            "histogram",
            "over-time",
            "timeline",
            "backlog",
            "rss",
            "coordination",
        ],
    );
}

#[test]
fn a_soak_with_process_leaves_samples_each_leaf_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = herd(
        &[
            "--agents",
            "2",
            "--leaves",
            "process",
            "--duration",
            "6s",
            "--rate-per-agent",
            "60",
            "--sample-secs",
            "1",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(r["counters"]["tasks_closed"].as_u64(), Some(12));
    let samples = r["soak"]["samples"].as_array().unwrap();
    for process in ["herd", "bus", "leaf-0", "leaf-1"] {
        let n = samples.iter().filter(|s| s["process"] == process).count();
        assert!(n >= 4, "{n} samples of {process}");
    }
    let growth: Vec<&str> = r["soak"]["growth"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["process"].as_str())
        .collect();
    assert_eq!(growth, ["bus", "herd", "leaf-0", "leaf-1"]);
}
