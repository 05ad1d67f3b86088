//! I1: every planned task was opened, and every opened task has exactly one successful close.
//! I1b: server-side claim intervals of one task never overlap.

use std::collections::BTreeMap;

use herd_bus::KvRecord;

use super::violation;
use crate::history::{HistoryEvent, Op, Phase};
use crate::report::Violation;

/// I1, against the plan: every leaf opened as many tasks as it was to (a task whose open
/// failed, or a leaf that never ran, is work the run set out to do and did not), and no leaf
/// outside the plan wrote history.
pub fn planned_tasks_opened(
    events: &[HistoryEvent],
    plan: &crate::artifacts::Plan,
) -> Vec<Violation> {
    let mut opened: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.phase == Phase::Ok && e.op == Op::Open)
    {
        if let Some(task) = e.task.as_deref() {
            opened.entry(e.leaf.as_str()).or_default().insert(task);
        }
    }
    let mut out = Vec::new();
    for (leaf, planned) in &plan.tasks_per_leaf {
        let n = opened.get(leaf.as_str()).map_or(0, |s| s.len()) as u64;
        if n != *planned {
            out.push(violation(
                "I1",
                format!("leaf {leaf} opened {n} of its {planned} planned tasks"),
            ));
        }
    }
    for leaf in opened.keys() {
        if !plan.tasks_per_leaf.contains_key(*leaf) {
            out.push(violation(
                "I1",
                format!("leaf {leaf} opened tasks but is not in the plan"),
            ));
        }
    }
    out
}

/// I1.
pub fn each_opened_task_closed_once(events: &[HistoryEvent]) -> Vec<Violation> {
    let mut opened: BTreeMap<&str, u32> = BTreeMap::new();
    let mut closed: BTreeMap<&str, u32> = BTreeMap::new();
    for e in events.iter().filter(|e| e.phase == Phase::Ok) {
        let Some(task) = e.task.as_deref() else {
            continue;
        };
        match e.op {
            Op::Open => *opened.entry(task).or_default() += 1,
            Op::Close => *closed.entry(task).or_default() += 1,
            _ => {}
        }
    }
    let mut out = Vec::new();
    for task in opened.keys() {
        match closed.get(task).copied().unwrap_or(0) {
            1 => {}
            0 => out.push(violation(
                "I1",
                format!("task {task} was opened but never closed"),
            )),
            n => out.push(violation("I1", format!("task {task} was closed {n} times"))),
        }
    }
    for task in closed.keys().filter(|t| !opened.contains_key(*t)) {
        out.push(violation(
            "I1",
            format!("task {task} was closed but never opened"),
        ));
    }
    out
}

/// I1b. A put opens an interval `[created, created + ttl]`; a delete or purge ends it early.
pub fn claim_intervals_disjoint(claims: &[KvRecord]) -> Vec<Violation> {
    let mut by_key: BTreeMap<&str, Vec<&KvRecord>> = BTreeMap::new();
    for r in claims {
        by_key.entry(r.key.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (task, mut records) in by_key {
        records.sort_by_key(|r| r.revision);
        // (holder, revision, end_ms) of the interval currently open.
        let mut open: Option<(String, u64, u64)> = None;
        for r in records {
            if r.operation == "put" {
                let holder = r.value["leaf"].as_str().unwrap_or("?").to_string();
                let ttl_ms = r.value["ttl_secs"].as_u64().unwrap_or(0) * 1000;
                // A renewal re-writes the same claim (its epoch is the claim's first revision):
                // the interval goes on, under the same holder.
                let renews = r.value["epoch"].as_u64();
                if let Some((prev, rev, _)) = &open
                    && renews == Some(*rev)
                    && *prev == holder
                {
                    open = Some((holder, *rev, r.created_ms + ttl_ms));
                    continue;
                }
                if let Some((prev, rev, end)) = &open
                    && r.created_ms < *end
                {
                    out.push(violation(
                        "I1b",
                        format!("task {task}: claim rev {} by {holder} overlaps claim rev {rev} by {prev} (lease until {end} ms, new claim at {} ms)", r.revision, r.created_ms),
                    ));
                }
                open = Some((holder, r.revision, r.created_ms + ttl_ms));
            } else {
                open = None;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(key: &str, revision: u64, operation: &str, leaf: &str, created_ms: u64) -> KvRecord {
        KvRecord {
            key: key.into(),
            revision,
            operation: operation.into(),
            value: json!({"leaf": leaf, "task": key, "at": created_ms, "ttl_secs": 10}),
            created_ms,
            marker_reason: None,
        }
    }

    #[test]
    fn released_then_reclaimed_is_fine_overlap_is_named() {
        let ok = [
            kv("t1", 1, "put", "a", 1000),
            kv("t1", 2, "del", "", 2000),
            kv("t1", 3, "put", "b", 2500),
        ];
        assert!(claim_intervals_disjoint(&ok).is_empty());
        let lapsed = [
            kv("t1", 1, "put", "a", 1000),
            kv("t1", 3, "put", "b", 11_001),
        ];
        assert!(claim_intervals_disjoint(&lapsed).is_empty());
        let mut renewed = kv("t1", 2, "put", "a", 9_000);
        renewed.value["epoch"] = json!(1);
        let renewals = [
            kv("t1", 1, "put", "a", 1000),
            renewed,
            kv("t1", 3, "del", "", 15_000),
        ];
        assert!(claim_intervals_disjoint(&renewals).is_empty());
        let overlap = [kv("t1", 1, "put", "a", 1000), kv("t1", 3, "put", "b", 5000)];
        let v = claim_intervals_disjoint(&overlap);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("task t1")
                && v[0].message.contains("by b")
                && v[0].message.contains("by a"),
            "{v:?}"
        );
    }
}
