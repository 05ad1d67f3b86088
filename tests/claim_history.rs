//! Every claim revision reaches `kv-claims.jsonl`, even one whose lease expired it from the
//! server before the end-of-run dump: the checker's I1b reads the whole claim history.

mod common;

#[test]
fn claim_writes_that_expired_before_the_dump_are_still_in_the_history() {
    // A 2 s lease renewed every ~0.7 s while each task thinks 3 s: every task's first claim
    // write has expired from the server long before the run ends.
    let (dir, _, stdout) = common::trial_ok(&[
        "--agents",
        "1",
        "--tasks-per-agent",
        "2",
        "--think-ms",
        "3000",
        "--claim-ttl-secs",
        "2",
    ]);
    let records: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("kv-claims.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mut tasks: Vec<&str> = records.iter().filter_map(|r| r["key"].as_str()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    assert_eq!(tasks.len(), 2, "{records:?}");
    for task in tasks {
        let puts: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r["key"] == task && r["operation"] == "put")
            .collect();
        // The first write (no epoch: its own revision is the epoch) and its renewals.
        let first = puts.iter().find(|r| r["value"]["epoch"].is_null());
        let first = first.unwrap_or_else(|| panic!("{task}: first claim write missing: {puts:?}"));
        let epoch = first["revision"].as_u64().unwrap();
        let renewals = puts.iter().filter(|r| r["value"]["epoch"] == epoch).count();
        assert!(
            renewals >= 2,
            "{task}: {renewals} renewals of epoch {epoch}: {puts:?}"
        );
    }
    assert!(stdout.contains("history check: PASS"), "{stdout}");
}
