//! I1: every planned task was opened, and every opened task has exactly one successful close.
//! I1b: server-side claim intervals of one task never overlap.
//! I7: liveness — no task is left stuck; each one that did not close is listed with its last
//!     step and the state the bus holds for it.

use std::collections::{BTreeMap, BTreeSet};

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
/// Tasks that failed by rule: a `commit fail` with outcome `conflict` (the leaf met one content
/// conflict more than its redo budget allows) and no later commit that landed. Such a task is
/// ended, not lost: I1 and I7 do not ask it to close (its commit never reached the trunk,
/// which I4 and I4b check).
pub fn failed_by_rule(events: &[HistoryEvent]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in events.iter().filter(|e| e.op == Op::Commit) {
        let Some(task) = e.task.as_deref() else {
            continue;
        };
        match e.phase {
            Phase::Fail if e.outcome.as_deref() == Some(CONFLICT) => {
                out.insert(task.to_string());
            }
            Phase::Ok | Phase::Info => {
                out.remove(task);
            }
            _ => {}
        }
    }
    out
}

/// The `outcome` of a `commit fail` that failed by the conflict rule.
pub const CONFLICT: &str = "conflict";

/// I1 (second half): every opened task closed exactly once, except those in `ended`
/// ([`failed_by_rule`]), which must not close.
pub fn each_opened_task_closed_once(
    events: &[HistoryEvent],
    ended: &BTreeSet<String>,
) -> Vec<Violation> {
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
            0 if ended.contains(*task) => {}
            n if ended.contains(*task) => out.push(violation(
                "I1",
                format!("task {task} failed by rule (conflict) yet was closed {n} times"),
            )),
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

/// I7. Every opened task closed by the end of the run (its drain included); each that did not
/// is named with where it stopped: its last history step and its final `herd-tasks` state.
pub fn no_task_stuck(
    events: &[HistoryEvent],
    kv_tasks: &[KvRecord],
    ended: &BTreeSet<String>,
) -> Vec<Violation> {
    let mut last: BTreeMap<&str, &HistoryEvent> = BTreeMap::new();
    let mut opened = std::collections::BTreeSet::new();
    let mut closed = std::collections::BTreeSet::new();
    for e in events {
        let Some(task) = e.task.as_deref() else {
            continue;
        };
        match (e.op, e.phase) {
            (Op::Open, Phase::Ok) => {
                opened.insert(task);
            }
            (Op::Close, Phase::Ok) => {
                closed.insert(task);
            }
            _ => {}
        }
        let entry = last.entry(task).or_insert(e);
        if e.t_ns >= entry.t_ns {
            *entry = e;
        }
    }
    let mut state: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for r in kv_tasks.iter().filter(|r| r.operation == "put") {
        let s = r.value["state"].as_str().unwrap_or("?");
        let entry = state.entry(r.key.as_str()).or_insert((r.revision, s));
        if r.revision >= entry.0 {
            *entry = (r.revision, s);
        }
    }
    opened
        .difference(&closed)
        .filter(|task| !ended.contains(**task))
        .map(|task| {
            let e = last[task];
            let error = e
                .error
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let bus = state.get(task).map_or("no record", |(_, s)| s);
            violation(
                "I7",
                format!(
                    "task {task} is stuck: last step {} {} by {} at {:.3} s{error}; the bus says {bus}",
                    format!("{:?}", e.op).to_lowercase(),
                    format!("{:?}", e.phase).to_lowercase(),
                    e.leaf,
                    e.t_ns as f64 / 1e9
                ),
            )
        })
        .collect()
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
                // A renewal re-writes the same claim and names its epoch (the claim's first
                // revision): the interval goes on, under the same holder. Intervals are keyed by
                // epoch, so a claim whose first write already expired from the bucket (each
                // record carries the lease as its TTL) still reads as one interval.
                let epoch = r.value["epoch"].as_u64().unwrap_or(r.revision);
                if let Some((prev, open_epoch, _)) = &open
                    && epoch == *open_epoch
                    && *prev == holder
                {
                    open = Some((holder, epoch, r.created_ms + ttl_ms));
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
                open = Some((holder, epoch, r.created_ms + ttl_ms));
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

    fn step(op: Op, phase: Phase, task: &str, t: u64) -> HistoryEvent {
        let mut e = HistoryEvent::new(op, phase, "leaf-0", "slot-0", t);
        e.task = Some(task.into());
        e
    }

    #[test]
    fn a_stuck_task_is_listed_with_where_it_stopped() {
        let mut failed = step(Op::Commit, Phase::Fail, "t2", 5_000_000_000);
        failed.error = Some("bus: timed out".into());
        let events = [
            step(Op::Open, Phase::Ok, "t1", 1),
            step(Op::Close, Phase::Ok, "t1", 2),
            step(Op::Open, Phase::Ok, "t2", 3),
            step(Op::Claim, Phase::Ok, "t2", 4),
            failed,
        ];
        let kv_tasks = [kv_task("t2", 3, "claimed")];
        let v = no_task_stuck(&events, &kv_tasks, &BTreeSet::new());
        assert_eq!(v.len(), 1, "{v:?}");
        let m = &v[0].message;
        assert!(
            m.contains("task t2 is stuck: last step commit fail by leaf-0 at 5.000 s"),
            "{m}"
        );
        assert!(
            m.contains("timed out") && m.ends_with("the bus says claimed"),
            "{m}"
        );
    }

    #[test]
    fn a_task_failed_by_the_conflict_rule_is_ended_not_stuck_and_must_not_close() {
        let mut conflict = step(Op::Commit, Phase::Fail, "t1", 3);
        conflict.outcome = Some(CONFLICT.into());
        let mut other = step(Op::Commit, Phase::Fail, "t2", 3);
        other.error = Some("bus: timed out".into());
        let events = vec![
            step(Op::Open, Phase::Ok, "t1", 1),
            step(Op::Open, Phase::Ok, "t2", 1),
            conflict,
            other,
        ];
        let ended = failed_by_rule(&events);
        assert_eq!(ended, BTreeSet::from(["t1".to_string()]));
        let i1 = each_opened_task_closed_once(&events, &ended);
        assert_eq!(i1.len(), 1, "only t2 is unaccounted for: {i1:?}");
        assert!(i1[0].message.contains("t2"));
        let i7 = no_task_stuck(&events, &[kv_task("t1", 2, "failed")], &ended);
        assert!(i7.iter().all(|v| !v.message.contains("t1")), "{i7:?}");
        // Closing a task that failed by rule is a violation.
        let mut closed = events.clone();
        closed.push(step(Op::Close, Phase::Ok, "t1", 9));
        let v = each_opened_task_closed_once(&closed, &failed_by_rule(&closed));
        assert!(
            v.iter().any(|v| v.message.contains("t1 failed by rule")),
            "{v:?}"
        );
        // A later landed commit of the task means it did not fail.
        let mut landed = events;
        landed.push(step(Op::Commit, Phase::Ok, "t1", 8));
        assert!(failed_by_rule(&landed).is_empty());
    }

    fn kv_task(key: &str, revision: u64, state: &str) -> KvRecord {
        let mut r = kv(key, revision, "put", "leaf-0", 0);
        r.value = json!({ "state": state });
        r
    }

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
        // The first write aged out of the bucket: two renewals of epoch 1 are still one claim.
        let renewal = |rev: u64, at: u64| {
            let mut r = kv("t1", rev, "put", "a", at);
            r.value["epoch"] = json!(1);
            r
        };
        let first_gone = [renewal(2, 9_000), renewal(4, 17_000)];
        assert!(claim_intervals_disjoint(&first_gone).is_empty());
        // ... while another leaf's claim inside that lease is still an overlap.
        let stolen = [renewal(2, 9_000), kv("t1", 3, "put", "b", 12_000)];
        assert_eq!(claim_intervals_disjoint(&stolen).len(), 1);
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
