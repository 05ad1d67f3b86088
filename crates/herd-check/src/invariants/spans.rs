//! I5: the trace equals the ledgers. Spans as a collector stored them — OTLP JSON, one
//! `ExportTraceServiceRequest` per line (what the OpenTelemetry Collector's `file` exporter
//! writes; `spans.jsonl` beside the run's artifacts, or `herd check --spans FILE`) — are
//! deduplicated by span id (OTLP permits a batch to arrive twice) and compared with every
//! leaf's ledger:
//!
//! - each task a ledger records a commit for has a successful `leaf.commit` span of that leaf
//!   naming the same commit (`commit.oid`), and each such span's task is recorded with that
//!   commit in the leaf's ledger;
//! - each claim epoch a ledger holds was won in a `leaf.claim` span of that leaf
//!   (`outcome = won`, `claim.epoch`), and each task a leaf won a claim of is in its ledger.
//!
//! Spans the exporter could not deliver make the whole check inconclusive (the trial's
//! exporter totals say so); this invariant judges the spans that did arrive.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::violation;
use crate::report::Violation;

/// One span: its id, name and attributes (values as text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanFacts {
    /// Span id (hex, as OTLP JSON writes it).
    pub id: String,
    /// Span name.
    pub name: String,
    /// Attributes, every value as text.
    pub attrs: BTreeMap<String, String>,
}

impl SpanFacts {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

/// One ledger row as I5 reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerRow {
    /// Task id.
    pub task: String,
    /// Its claim epoch.
    pub epoch: Option<u64>,
    /// The commit it landed as.
    pub commit: Option<String>,
}

/// Reads a file of OTLP JSON lines; spans with the same id count once. Errors name the line.
pub fn read_otlp_json(path: &Path) -> Result<Vec<SpanFacts>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut by_id: BTreeMap<String, SpanFacts> = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let request: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
        let resources = request["resourceSpans"]
            .as_array()
            .ok_or_else(|| format!("{} line {}: no resourceSpans", path.display(), n + 1))?;
        for scope in resources
            .iter()
            .filter_map(|r| r["scopeSpans"].as_array())
            .flatten()
        {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let id = span["spanId"].as_str().unwrap_or_default().to_string();
                if id.is_empty() {
                    return Err(format!(
                        "{} line {}: a span without spanId",
                        path.display(),
                        n + 1
                    ));
                }
                let attrs = span["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| Some((a["key"].as_str()?.to_string(), text_of(&a["value"])?)))
                    .collect();
                by_id.entry(id.clone()).or_insert(SpanFacts {
                    id,
                    name: span["name"].as_str().unwrap_or_default().to_string(),
                    attrs,
                });
            }
        }
    }
    Ok(by_id.into_values().collect())
}

/// An OTLP JSON `AnyValue` as text (64-bit integers are strings in OTLP JSON).
fn text_of(value: &serde_json::Value) -> Option<String> {
    let (kind, v) = value.as_object()?.iter().next()?;
    match kind.as_str() {
        "stringValue" => v.as_str().map(str::to_string),
        "intValue" => v
            .as_str()
            .map(str::to_string)
            .or_else(|| v.as_i64().map(|i| i.to_string())),
        "boolValue" => v.as_bool().map(|b| b.to_string()),
        "doubleValue" => v.as_f64().map(|d| d.to_string()),
        _ => None,
    }
}

/// Reads the rows I5 needs from a ledger file.
pub fn ledger_rows(path: &Path) -> Result<Vec<LedgerRow>, String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut stmt = conn
        .prepare("SELECT id, epoch, commit_oid FROM tasks")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(LedgerRow {
                task: r.get(0)?,
                epoch: r.get::<_, Option<i64>>(1)?.map(|e| e as u64),
                commit: r.get(2)?,
            })
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// I5: `spans` (deduplicated) against each leaf's ledger rows.
pub fn spans_match_ledgers(
    spans: &[SpanFacts],
    ledgers: &BTreeMap<String, Vec<LedgerRow>>,
) -> Vec<Violation> {
    // (leaf, task) → commits its successful leaf.commit spans name; → epochs it won.
    let mut commits: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    let mut won: BTreeMap<(&str, &str), BTreeSet<u64>> = BTreeMap::new();
    for s in spans {
        let (Some(leaf), Some(task)) = (s.attr("leaf"), s.attr("task")) else {
            continue;
        };
        match s.name.as_str() {
            "leaf.commit" => {
                if let Some(oid) = s.attr("commit.oid") {
                    commits.entry((leaf, task)).or_default().insert(oid);
                }
            }
            "leaf.claim" if s.attr("outcome") == Some("won") => {
                if let Some(epoch) = s.attr("claim.epoch").and_then(|e| e.parse().ok()) {
                    won.entry((leaf, task)).or_default().insert(epoch);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (leaf, rows) in ledgers {
        let rows: BTreeMap<&str, &LedgerRow> = rows.iter().map(|r| (r.task.as_str(), r)).collect();
        for (task, row) in &rows {
            let key = (leaf.as_str(), *task);
            if let Some(oid) = &row.commit
                && !commits.get(&key).is_some_and(|c| c.contains(oid.as_str()))
            {
                out.push(violation(
                    "I5",
                    format!("task {task}: ledger of {leaf} records commit {oid}, no leaf.commit span of {leaf} names it"),
                ));
            }
            if let Some(epoch) = row.epoch
                && !won.get(&key).is_some_and(|w| w.contains(&epoch))
            {
                out.push(violation(
                    "I5",
                    format!("task {task}: ledger of {leaf} holds claim epoch {epoch}, no leaf.claim span of {leaf} won it"),
                ));
            }
        }
        for ((l, task), oids) in commits.range((leaf.as_str(), "")..) {
            if *l != leaf.as_str() {
                break;
            }
            for oid in oids {
                if rows.get(task).and_then(|r| r.commit.as_deref()) != Some(*oid) {
                    out.push(violation(
                        "I5",
                        format!("task {task}: a leaf.commit span of {leaf} landed {oid}, its ledger does not record it"),
                    ));
                }
            }
        }
        for ((l, task), _) in won.range((leaf.as_str(), "")..) {
            if *l != leaf.as_str() {
                break;
            }
            if !rows.contains_key(task) {
                out.push(violation(
                    "I5",
                    format!("task {task}: {leaf} won a claim of it (span) but its ledger does not hold the task"),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, name: &str, attrs: &[(&str, &str)]) -> SpanFacts {
        SpanFacts {
            id: id.into(),
            name: name.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn ledgers(rows: &[(&str, Option<u64>, Option<&str>)]) -> BTreeMap<String, Vec<LedgerRow>> {
        let rows = rows
            .iter()
            .map(|(t, e, c)| LedgerRow {
                task: t.to_string(),
                epoch: *e,
                commit: c.map(str::to_string),
            })
            .collect();
        [("leaf-a".to_string(), rows)].into_iter().collect()
    }

    fn trace() -> Vec<SpanFacts> {
        vec![
            span(
                "1",
                "leaf.claim",
                &[
                    ("leaf", "leaf-a"),
                    ("task", "t1"),
                    ("outcome", "won"),
                    ("claim.epoch", "7"),
                ],
            ),
            span(
                "2",
                "leaf.commit",
                &[("leaf", "leaf-a"), ("task", "t1"), ("commit.oid", "abc")],
            ),
            // A failed commit names no oid; another leaf's spans are its own business.
            span("3", "leaf.commit", &[("leaf", "leaf-a"), ("task", "t1")]),
            span(
                "4",
                "leaf.claim",
                &[
                    ("leaf", "leaf-b"),
                    ("task", "t9"),
                    ("outcome", "won"),
                    ("claim.epoch", "3"),
                ],
            ),
        ]
    }

    #[test]
    fn a_trace_equal_to_the_ledger_passes() {
        let v = spans_match_ledgers(&trace(), &ledgers(&[("t1", Some(7), Some("abc"))]));
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_ledger_commit_without_its_span_and_a_span_without_its_row_are_named() {
        let v = spans_match_ledgers(&trace(), &ledgers(&[("t1", Some(7), Some("def"))]));
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].message.contains("records commit def"));
        assert!(v[1].message.contains("landed abc"));
        let mut dropped = trace();
        dropped.remove(0);
        let v = spans_match_ledgers(&dropped, &ledgers(&[("t1", Some(7), Some("abc"))]));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("claim epoch 7"));
        let v = spans_match_ledgers(&trace(), &ledgers(&[]));
        assert_eq!(v.len(), 2, "both spans of t1 lack their row: {v:?}");
    }

    #[test]
    fn otlp_json_lines_are_read_and_duplicates_count_once() {
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"0a","name":"leaf.claim","attributes":[{"key":"leaf","value":{"stringValue":"leaf-a"}},{"key":"task","value":{"stringValue":"t1"}},{"key":"outcome","value":{"stringValue":"won"}},{"key":"claim.epoch","value":{"intValue":"7"}}]}]}]}]}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spans.jsonl");
        // The same batch delivered twice (an OTLP retry).
        std::fs::write(&path, format!("{line}\n{line}\n")).unwrap();
        let spans = read_otlp_json(&path).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].attrs["claim.epoch"], "7");
        std::fs::write(&path, "{\"resourceSpans\": 3}\n").unwrap();
        assert!(read_otlp_json(&path).unwrap_err().contains("line 1"));
    }
}
