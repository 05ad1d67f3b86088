//! `check`: load the artifacts, run every invariant, return the verdict.

use std::collections::BTreeMap;

use crate::artifacts::{Artifacts, load};
use crate::invariants::{
    commits, fencing, hygiene, ledger, reach, spans, tasks, tips, updates, violation,
};
use crate::report::{CheckReport, Verdict};
use crate::trunk;

/// The invariants `check` evaluates, in order.
pub const INVARIANTS: &[&str] = &[
    "I1", "I1b", "I2", "I3", "I4", "I4b", "I6", "I7", "I8", "I9", "I10", "I11", "I12",
];

/// Checks a run's artifacts.
pub fn check(a: &Artifacts) -> CheckReport {
    let loaded = match load(a) {
        Ok(l) => l,
        Err(missing) => {
            return CheckReport {
                verdict: Verdict::Inconclusive,
                invariants: Vec::new(),
                violations: Vec::new(),
                missing,
            };
        }
    };
    let trunk = match trunk::read(&loaded.repo) {
        Ok(t) => t,
        Err(e) => {
            let missing = vec![format!(
                "{}: cannot read refs/heads/main: {}",
                a.hub_repo.display(),
                e.message()
            )];
            return CheckReport {
                verdict: Verdict::Inconclusive,
                invariants: Vec::new(),
                violations: Vec::new(),
                missing,
            };
        }
    };
    let slots: BTreeMap<String, String> = loaded
        .events
        .iter()
        .map(|e| (e.leaf.clone(), e.slot.clone()))
        .collect();
    let seed = loaded.hub.seed_commits;

    let mut v = tasks::planned_tasks_opened(&loaded.events, &loaded.plan);
    let ended = tasks::failed_by_rule(&loaded.events);
    v.extend(tasks::each_opened_task_closed_once(&loaded.events, &ended));
    v.extend(tasks::claim_intervals_disjoint(&loaded.kv_claims));
    v.extend(commits::trunk_shape(&loaded.repo, &trunk, &loaded.hub));
    v.extend(commits::commits_stay_in_slot(&trunk, seed, &slots));
    v.extend(commits::commits_accounted(&loaded.events, &trunk, seed));
    v.extend(tasks::no_task_stuck(
        &loaded.events,
        &loaded.kv_tasks,
        &ended,
    ));
    v.extend(fencing::pushes_fenced(&loaded.events, &trunk, seed));
    v.extend(updates::no_lost_update(&trunk));
    v.extend(reach::tips_reach_every_leaf(
        &trunk,
        &loaded.events,
        &loaded.plan,
    ));
    let roots =
        std::iter::once(a.hub_repo.as_path()).chain(loaded.leaf_dirs.iter().map(|p| p.as_path()));
    v.extend(hygiene::no_leftovers(roots));
    v.extend(tips::observed_tips_advance(
        &loaded.repo,
        &trunk,
        &loaded.events,
    ));
    let bus_states = ledger::final_kv_states(&loaded.kv_tasks);
    let bus_owners = ledger::final_kv_owners(&loaded.kv_tasks);
    let mut ledgers = BTreeMap::new();
    let mut unreadable = std::collections::BTreeSet::new();
    for dir in &loaded.leaf_dirs {
        let leaf = leaf_name(dir);
        match ledger::ledger_states(&dir.join(ledger::LEDGER_FILE)) {
            Ok(states) => {
                v.extend(ledger::ledger_matches_bus(
                    &leaf,
                    &states,
                    &bus_states,
                    &bus_owners,
                ));
                ledgers.insert(leaf, states);
            }
            Err(e) => {
                v.push(violation(
                    "I11",
                    format!("leaf {leaf}: cannot read its ledger: {e}"),
                ));
                unreadable.insert(leaf);
            }
        }
    }
    // The other direction, over this run's leaves (the plan's: a shared external bus holds
    // other runs' tasks too) whose ledgers could be read or are missing altogether (an
    // unreadable one is already a violation above).
    let owners: BTreeMap<String, String> = bus_owners
        .into_iter()
        .filter(|(_, leaf)| loaded.plan.has_leaf(leaf) && !unreadable.contains(leaf))
        .collect();
    v.extend(ledger::bus_tasks_in_ledgers(&owners, &ledgers));
    let mut invariants: Vec<String> = INVARIANTS.iter().map(|s| s.to_string()).collect();
    let mut missing = Vec::new();
    if a.spans.exists() {
        // I5, when the collector's spans are at hand.
        match spans::read_otlp_json(&a.spans) {
            Ok(list) => {
                let mut rows = BTreeMap::new();
                for dir in &loaded.leaf_dirs {
                    let leaf = leaf_name(dir);
                    match spans::ledger_rows(&dir.join(ledger::LEDGER_FILE)) {
                        Ok(r) => {
                            rows.insert(leaf, r);
                        }
                        // Its spans cannot be judged: say so (I11 names the ledger too).
                        Err(e) => missing.push(format!("I5: {e}")),
                    }
                }
                v.extend(spans::spans_match_ledgers(&list, &rows));
                invariants.insert(5, "I5".into());
            }
            Err(e) => missing.push(format!("I5: {e}")),
        }
    }
    CheckReport {
        verdict: match (v.is_empty(), missing.is_empty()) {
            (false, _) => Verdict::Fail,
            (true, true) => Verdict::Pass,
            (true, false) => Verdict::Inconclusive,
        },
        invariants,
        violations: v,
        missing,
    }
}

/// A leaf's id: its directory's name.
fn leaf_name(dir: &std::path::Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
