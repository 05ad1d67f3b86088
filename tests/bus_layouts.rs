//! Trials on each bus layout through the example: exact counts and a passing history check on
//! a leaf-node mesh (in-process and process leaves) and on a 3-node JetStream cluster.

mod common;

use common::herd;

fn trial(extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--agents", "4", "--tasks-per-agent", "5", "--out"];
    args.push(dir.path().to_str().unwrap());
    args.extend_from_slice(extra);
    let out = herd(&args, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{extra:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    let c = &results["counters"];
    for key in [
        "tasks_closed",
        "hub_commits",
        "claims_won",
        "commits_on_trunk",
    ] {
        assert_eq!(c[key].as_u64(), Some(20), "{extra:?}: {key} in {c}");
    }
    assert_eq!(c["commits_lost"].as_u64(), Some(0));
    assert_eq!(results["history_check"]["verdict"], "pass");
    results
}

#[test]
fn leafnodes_in_process_and_process_leaves_pass_exactly() {
    let r = trial(&["--bus", "leafnodes", "--leaves-per-server", "2"]);
    assert_eq!(r["config"]["bus"], "leafnodes");
    let r = trial(&["--bus", "leafnodes", "--leaves", "process"]);
    assert_eq!(r["config"]["leaves"], "process");
}

#[test]
fn cluster3_passes_exactly() {
    let r = trial(&["--bus", "cluster3"]);
    assert_eq!(r["config"]["bus"], "cluster3");
}

#[test]
fn a_layout_over_an_external_bus_is_a_config_error() {
    let out = herd(
        &["--bus", "cluster3"],
        &[("NATS_URL", "nats://127.0.0.1:1")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--bus direct"), "{stderr}");
}
