//! `report.html`: one self-contained page per trial or sweep (no network: the data, the
//! script and the style are inline; charts are SVG drawn by the page's own script).
//!
//! A trial's page holds the commit-latency histogram with its percentiles, p50/p99 over time
//! (fault windows shaded), a per-agent timeline of claims, commits, forks and broadcasts, and
//! the open model's backlog. A sweep's page holds throughput and p99 against N per series, each
//! knee marked. The numbers come from the run's own artifacts (`events.jsonl`, `results.json`,
//! `index.json`) so the page shows exactly what the reports count.
//!
//! Each chart, once drawn, carries `data-points` (how many marks it drew); the page sets
//! `data-rendered="ok"` on `<body>` when every chart was drawn, and records any script error in
//! `data-errors` — what the headless-browser test reads.

mod data;

use std::path::Path;

pub use data::{SweepPage, TrialPage};

const SCRIPT: &str = include_str!("report.js");
const STYLE: &str = include_str!("report.css");

/// Writes `<dir>/report.html` for the trial whose artifacts are in `dir`.
pub fn write_trial(dir: &Path, results: &crate::TrialResults) -> std::io::Result<()> {
    let events = crate::events::read(&dir.join("events.jsonl"));
    let page = TrialPage::new(results, &events);
    let title = format!(
        "herd trial — {} — {} agents × {} tasks",
        results.verdict().0,
        results.config.agents,
        results.config.tasks_per_agent
    );
    write(dir, &title, "trial", &page)
}

/// Writes `<dir>/report.html` for a sweep.
pub fn write_sweep(dir: &Path, index: &crate::sweep::SweepIndex) -> std::io::Result<()> {
    let page = SweepPage::new(index);
    let title = format!("herd sweep — {} cells", index.rows.len());
    write(dir, &title, "sweep", &page)
}

fn write(dir: &Path, title: &str, kind: &str, data: &impl serde::Serialize) -> std::io::Result<()> {
    let json = serde_json::to_string(data).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.html"), page(title, kind, &json))
}

/// The page: the error trap first (so a failure of the main script is still recorded), then
/// the data, then the script that draws it.
fn page(title: &str, kind: &str, json: &str) -> String {
    // Inside <script>, only "</" can end the element early: escape it (and U+2028/9 for old
    // parsers). JSON.parse reads "<\/" as "</".
    let json = json
        .replace("</", "<\\/")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
<script>
window.herdErrors = [];
window.addEventListener("error", function (e) {{
  window.herdErrors.push(String(e.message || e));
  document.body && document.body.setAttribute("data-errors", window.herdErrors.join(" | "));
}});
</script>
</head>
<body data-kind="{kind}">
<h1>{title}</h1>
<main id="herd"></main>
<script type="application/json" id="herd-data">{json}</script>
<script>{SCRIPT}</script>
</body>
</html>
"#,
        title = escape(title),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_its_script_element() {
        let html = page("a <b> & c", "trial", r#"{"x":"</script><script>alert(1)"}"#);
        assert!(!html.contains("</script><script>alert"), "{html}");
        assert!(html.contains(r#"<\/script>"#));
        assert!(html.contains("<title>a &lt;b&gt; &amp; c</title>"));
    }
}
