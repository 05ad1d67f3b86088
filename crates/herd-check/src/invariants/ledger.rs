//! I11: each leaf's ledger ends in the same task states as the `herd-tasks` bucket.

use std::collections::BTreeMap;
use std::path::Path;

use herd_bus::KvRecord;

use super::violation;
use crate::report::Violation;

/// The file name of a leaf's ledger inside its directory.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// Final state per task: the `state` of the last `put` revision.
pub fn final_kv_states(kv_tasks: &[KvRecord]) -> BTreeMap<String, String> {
    final_field(kv_tasks, "state", "?")
}

/// The owner (`leaf` field) of each task's final record in the bucket.
pub fn final_kv_owners(kv_tasks: &[KvRecord]) -> BTreeMap<String, String> {
    final_field(kv_tasks, "leaf", "")
}

/// `field` of each key's last `put` revision (`missing` when the record lacks it).
fn final_field(kv_tasks: &[KvRecord], field: &str, missing: &str) -> BTreeMap<String, String> {
    let mut last: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for r in kv_tasks.iter().filter(|r| r.operation == "put") {
        let value = r.value[field].as_str().unwrap_or(missing).to_string();
        let slot = last.entry(r.key.clone()).or_insert((0, String::new()));
        if r.revision >= slot.0 {
            *slot = (r.revision, value);
        }
    }
    last.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

/// Reads `id → state` from a ledger's `tasks` table.
pub fn ledger_states(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut stmt = conn
        .prepare("SELECT id, state FROM tasks")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// I11 for one leaf: each task in its ledger ends in the bucket's state — or, for a task
/// another leaf took over (its lease lapsed: a paused or stopped holder), `released` in
/// this ledger while the bucket's final owner is that other leaf.
pub fn ledger_matches_bus(
    leaf: &str,
    ledger: &BTreeMap<String, String>,
    bus: &BTreeMap<String, String>,
    owners: &BTreeMap<String, String>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (task, state) in ledger {
        let taken_over = state == "released" && owners.get(task).is_some_and(|o| o != leaf);
        match bus.get(task) {
            Some(s) if s == state || taken_over => {}
            Some(s) => out.push(violation(
                "I11",
                format!("task {task}: ledger of leaf {leaf} says {state}, herd-tasks says {s}"),
            )),
            None => out.push(violation(
                "I11",
                format!("task {task}: in the ledger of leaf {leaf} but not in herd-tasks"),
            )),
        }
    }
    out
}

/// I11, bus → ledgers: every task in `herd-tasks` is in its owner's ledger (a task the bus
/// knows and its leaf forgot is work nobody will finish or account for).
pub fn bus_tasks_in_ledgers(
    owners: &BTreeMap<String, String>,
    ledgers: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (task, leaf) in owners {
        match ledgers.get(leaf) {
            Some(ledger) if ledger.contains_key(task) => {}
            Some(_) => out.push(violation(
                "I11",
                format!("task {task}: in herd-tasks (owner {leaf}) but not in that leaf's ledger"),
            )),
            None => out.push(violation(
                "I11",
                format!("task {task}: in herd-tasks, owned by leaf {leaf:?}, which left no ledger"),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_released_task_passes_only_when_another_leaf_owns_it_at_the_end() {
        let ledger = map(&[("t1", "released")]);
        let bus = map(&[("t1", "closed")]);
        let taken = map(&[("t1", "leaf-b")]);
        assert!(ledger_matches_bus("leaf-a", &ledger, &bus, &taken).is_empty());
        // Still its own at the end: released here, closed there is a mismatch.
        let own = map(&[("t1", "leaf-a")]);
        let v = ledger_matches_bus("leaf-a", &ledger, &bus, &own);
        assert_eq!(v.len(), 1, "{v:?}");
        // Another state than released is compared as before.
        let claimed = map(&[("t1", "claimed")]);
        assert_eq!(
            ledger_matches_bus("leaf-a", &claimed, &bus, &taken).len(),
            1
        );
    }
}
