//! I2: the trunk is linear, only `refs/heads/main` exists, its commit count after the seed
//!     equals the hub's accepted pushes, and the object store reads back whole.
//! I3: each trunk commit changes only paths under its author's slot.
//! I4: every `commit ok` oid is on the trunk; every trunk commit after the seed belongs to
//!     exactly one `commit ok` or `commit info` (an unknown outcome resolved by the trunk).
//! I4b: no task appears in two trunk commits.

use std::collections::{BTreeMap, BTreeSet};

use git2::Repository;

use super::violation;
use crate::artifacts::HubFacts;
use crate::history::{HistoryEvent, Op, Phase};
use crate::report::Violation;
use crate::trunk::TrunkCommit;

/// I2.
pub fn trunk_shape(repo: &Repository, trunk: &[TrunkCommit], hub: &HubFacts) -> Vec<Violation> {
    let mut out = Vec::new();
    match repo.references() {
        Ok(refs) => {
            for r in refs.flatten() {
                let name = r.name().unwrap_or("<non-utf8>");
                if name != "refs/heads/main" {
                    out.push(violation(
                        "I2",
                        format!("unexpected ref {name} in the hub repository"),
                    ));
                }
            }
        }
        Err(e) => out.push(violation(
            "I2",
            format!("cannot list refs: {}", e.message()),
        )),
    }
    for c in trunk.iter().filter(|c| c.parents > 1) {
        out.push(violation(
            "I2",
            format!(
                "merge commit {} ({} parents) on the trunk",
                c.oid, c.parents
            ),
        ));
    }
    let after_seed = (trunk.len() as u64).saturating_sub(hub.seed_commits);
    if after_seed != hub.commits_landed {
        out.push(violation(
            "I2",
            format!(
                "trunk has {after_seed} commits after the seed but the hub landed {}",
                hub.commits_landed
            ),
        ));
    }
    out.extend(integrity(repo));
    out
}

/// Every object in the store reads back, and the tip's tree is complete.
fn integrity(repo: &Repository) -> Vec<Violation> {
    let mut out = Vec::new();
    let odb = match repo.odb() {
        Ok(odb) => odb,
        Err(e) => {
            return vec![violation(
                "I2",
                format!("cannot open the object store: {}", e.message()),
            )];
        }
    };
    let mut oids = Vec::new();
    if let Err(e) = odb.foreach(|oid| {
        oids.push(*oid);
        true
    }) {
        out.push(violation(
            "I2",
            format!("cannot list objects: {}", e.message()),
        ));
    }
    for oid in oids {
        if let Err(e) = odb.read(oid) {
            out.push(violation(
                "I2",
                format!("object {oid} unreadable: {}", e.message()),
            ));
        }
    }
    if let Ok(tip) = repo
        .revparse_single("refs/heads/main")
        .and_then(|o| o.peel_to_tree())
    {
        let _ = tip.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if !odb.exists(entry.id()) {
                out.push(violation(
                    "I2",
                    format!(
                        "tip tree entry {dir}{} points at missing object {}",
                        entry.name().unwrap_or("?"),
                        entry.id()
                    ),
                ));
            }
            git2::TreeWalkResult::Ok
        });
    }
    out
}

/// I3. `slots` maps leaf id → slot directory (from the history).
pub fn commits_stay_in_slot(
    trunk: &[TrunkCommit],
    seed: u64,
    slots: &BTreeMap<String, String>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in trunk.iter().skip(seed as usize) {
        let Some(slot) = slots.get(&c.author) else {
            out.push(violation(
                "I3",
                format!(
                    "commit {} by {:?}: author is no known leaf",
                    c.oid, c.author
                ),
            ));
            continue;
        };
        let prefix = format!("{slot}/");
        for path in c.paths.iter().filter(|p| !p.starts_with(&prefix)) {
            out.push(violation(
                "I3",
                format!(
                    "commit {} by leaf {} changes {path} outside its slot {slot}",
                    c.oid, c.author
                ),
            ));
        }
    }
    out
}

/// I4 and I4b.
pub fn commits_accounted(
    events: &[HistoryEvent],
    trunk: &[TrunkCommit],
    seed: u64,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let on_trunk: BTreeSet<String> = trunk.iter().map(|c| c.oid.to_string()).collect();
    let mut reported: BTreeMap<&str, Vec<&HistoryEvent>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.op == Op::Commit && matches!(e.phase, Phase::Ok | Phase::Info))
    {
        if let Some(oid) = e.oid.as_deref() {
            reported.entry(oid).or_default().push(e);
        }
    }
    for (oid, evs) in &reported {
        let ok = evs.iter().filter(|e| e.phase == Phase::Ok).count();
        if ok > 0 && !on_trunk.contains(*oid) {
            let task = evs[0].task.as_deref().unwrap_or("?");
            out.push(violation(
                "I4",
                format!(
                    "commit {oid} of task {task} (leaf {}) was reported ok but is not on the trunk",
                    evs[0].leaf
                ),
            ));
        }
        if evs.len() > 1 {
            out.push(violation(
                "I4",
                format!("commit {oid} was reported {} times", evs.len()),
            ));
        }
    }
    for c in trunk.iter().skip(seed as usize) {
        if !reported.contains_key(c.oid.to_string().as_str()) {
            out.push(violation(
                "I4",
                format!(
                    "trunk commit {} by {} was reported by no leaf",
                    c.oid, c.author
                ),
            ));
        }
    }
    let mut by_task: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in trunk.iter().skip(seed as usize) {
        if let Some(task) = c.task.as_deref() {
            by_task.entry(task).or_default().push(c.oid.to_string());
        }
    }
    for (task, oids) in by_task.into_iter().filter(|(_, o)| o.len() > 1) {
        out.push(violation(
            "I4b",
            format!(
                "task {task} appears in {} trunk commits: {}",
                oids.len(),
                oids.join(", ")
            ),
        ));
    }
    out
}
