//! `herd sweep` with the open model, as a user runs it: every cell's results.json under one
//! directory, an index, and the knee named (here a herd offered far more than it can do, so
//! the first cell of the series is the knee, whatever the machine's speed).

mod common;

use common::herd;

#[test]
fn an_open_model_sweep_writes_every_cell_and_names_its_knee() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let run = herd(
        &[
            "--out",
            out,
            "sweep",
            "--agents",
            "2,4",
            "--sync",
            "payload",
            "--hub",
            "race",
            "--rate",
            "600",
            "--schedule-secs",
            "1",
            "--grid-think-ms",
            "300",
            "--floor-commits",
            "20",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    // Every cell passes its gates (nothing lost, every task closed): falling behind is a
    // finding, not a failure.
    assert_eq!(run.status.code(), Some(0), "{stdout}{stderr}");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("index.json")).unwrap())
            .unwrap();
    let rows = index["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{index}");
    for (row, n) in rows.iter().zip([2, 4]) {
        let cell = row["cell"].as_str().unwrap();
        assert_eq!(cell, format!("n{n}-payload-race-think300-r600"));
        assert_eq!(row["rate_per_agent"].as_f64(), Some(600.0));
        // ⌈600/min × 1 s⌉ = 10 tasks per agent.
        assert_eq!(
            row["closed"].as_str(),
            Some(format!("{0}/{0}", n * 10).as_str())
        );
        assert_eq!(row["kept_up"], false, "{row}");
        let cell_results = dir.path().join(cell).join("results.json");
        assert!(cell_results.is_file(), "{}", cell_results.display());
    }
    let knees = index["knees"].as_array().unwrap();
    assert_eq!(knees.len(), 1, "{index}");
    assert_eq!(knees[0]["agents"].as_u64(), Some(2), "{index}");
    assert!(
        knees[0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("fell behind"),
        "{index}"
    );
    let md = std::fs::read_to_string(dir.path().join("index.md")).unwrap();
    assert!(
        md.contains("## Knees") && md.contains("knee of payload/race"),
        "{md}"
    );
    assert!(stdout.contains("## Open model"), "{stdout}");
    // The sweep's page: the curve with its knee, loaded in a real browser.
    if let Some(dom) =
        common::assert_report_renders(&dir.path().join("report.html"), &["throughput", "p99"])
    {
        assert!(dom.contains(r#"class="knee""#), "no knee drawn");
    }
}
