//! `report.html` loaded in a real headless browser (chromium): the page's script runs with no
//! error and every chart has data — for a trial with a fault (its window shaded) and for a run
//! of the open model (its backlog chart). The sweep page is checked in tests/sweep.rs.

mod common;

use common::assert_report_renders;

fn trial(args: &[&str]) -> tempfile::TempDir {
    common::trial_ok(args).0
}

#[test]
fn a_trial_report_renders_every_chart_with_its_fault_window() {
    let dir = trial(&[
        "--agents",
        "4",
        "--tasks-per-agent",
        "8",
        "--faults",
        "tip-replay@commits=8",
    ]);
    let page = dir.path().join("report.html");
    let Some(dom) = assert_report_renders(&page, &["histogram", "over-time", "timeline"]) else {
        return;
    };
    assert!(dom.contains(r#"class="fault""#), "no fault window drawn");
    // The summary table is the run's own numbers.
    assert!(
        dom.contains("32 / 32"),
        "tasks closed missing from the page"
    );
}

#[test]
fn an_open_model_report_adds_its_backlog_chart() {
    let dir = trial(&[
        "--agents",
        "2",
        "--tasks-per-agent",
        "6",
        "--think-ms",
        "200",
        "--rate-per-agent",
        "600",
    ]);
    let page = dir.path().join("report.html");
    assert_report_renders(&page, &["histogram", "over-time", "timeline", "backlog"]);
}
