//! `herd scenarios FILE`: named trials back to back, one table, one exit code; a bad file is
//! refused (exit 2, naming the scenario and the key) before anything runs.

mod common;

use common::herd;

#[test]
fn scenarios_run_back_to_back_and_one_failure_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenarios.toml");
    std::fs::write(
        &file,
        r#"
[[scenario]]
name = "small"
agents = 2
tasks_per_agent = 3

[[scenario]]
name = "open"
agents = 2
tasks_per_agent = 3
rate_per_agent = 600
think_ms = "0"

[[scenario]]
name = "impossible-p99"
agents = 2
tasks_per_agent = 2
max_p99_ms = 0
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = herd(
        &[
            "--out",
            out.to_str().unwrap(),
            "scenarios",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("scenarios.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["small", "open", "impossible-p99"]);
    let verdicts: Vec<&str> = rows.iter().filter_map(|r| r["verdict"].as_str()).collect();
    assert_eq!(verdicts, ["PASS", "PASS", "FAIL"]);
    assert_eq!(rows[2]["failed_gates"][0], "max_p99_ms");
    assert_eq!(rows[0]["closed"], "6/6");
    for name in names {
        let results = out.join(name).join("results.json");
        assert!(results.is_file(), "{}", results.display());
    }
    let open: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("open").join("results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(open["load"]["model"], "open");
    assert!(stdout.contains("| impossible-p99 | FAIL |"), "{stdout}");
}

#[test]
fn a_bad_scenario_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenarios.toml");
    std::fs::write(
        &file,
        "[[scenario]]\nname = \"fine\"\nagents = 2\n\n[[scenario]]\nname = \"typo\"\nagnets = 3\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = herd(
        &[
            "--out",
            out.to_str().unwrap(),
            "scenarios",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("typo") && stderr.contains("agnets"),
        "{stderr}"
    );
    assert!(
        !out.join("fine").exists(),
        "a scenario ran before the file was checked"
    );
    // Unnamed and duplicate scenarios are refused the same way.
    std::fs::write(&file, "[[scenario]]\nagents = 2\n").unwrap();
    let run = herd(&["scenarios", file.to_str().unwrap()], &[]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("name"));
}
