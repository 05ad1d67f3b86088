//! I10: every accepted tip reaches every live leaf within a bound. A tip is accepted when its
//! pusher's `commit ok` (or resolved `info`) line says so; a leaf holds it from its first line
//! naming that tip or a later trunk commit (a `pull` — applied, fetched or skipped because it
//! already held it — or its own landed commit). Each leaf of the plan that was still running
//! after the tip was accepted must hold it within [`REACH_BOUND`]; a leaf that never does is
//! named with the tip, and so is one that took longer.
//!
//! A leaf whose broadcasts were deferred (on-demand sync: it follows the trunk only when it
//! commits) is not judged: reaching it is not its design. Commits no line names (the seed)
//! have no acceptance time and are skipped.

use std::collections::{BTreeMap, HashMap};

use git2::Oid;

use super::violation;
use crate::artifacts::Plan;
use crate::history::{HistoryEvent, Op, Phase};
use crate::report::Violation;
use crate::trunk::TrunkCommit;

/// How long an accepted tip may take to reach a live leaf, ns (30 s: far above a healthy
/// herd's propagation, which is milliseconds, and above every fault hold herd injects by
/// default — a leaf that stopped following the trunk is what this catches).
pub const REACH_BOUND_NS: u64 = 30_000_000_000;

/// I10 (bound [`REACH_BOUND_NS`]).
pub fn tips_reach_every_leaf(
    trunk: &[TrunkCommit],
    events: &[HistoryEvent],
    plan: &Plan,
) -> Vec<Violation> {
    tips_reach_within(trunk, events, plan, REACH_BOUND_NS)
}

/// I10 with an explicit bound.
pub fn tips_reach_within(
    trunk: &[TrunkCommit],
    events: &[HistoryEvent],
    plan: &Plan,
    bound_ns: u64,
) -> Vec<Violation> {
    let position: HashMap<Oid, usize> = trunk.iter().enumerate().map(|(i, c)| (c.oid, i)).collect();
    let pos = |e: &HistoryEvent| {
        e.oid
            .as_deref()
            .and_then(|o| Oid::from_str(o).ok())
            .and_then(|o| position.get(&o).copied())
    };
    // When each trunk position was accepted.
    let mut accepted: Vec<Option<u64>> = vec![None; trunk.len()];
    // Per leaf: earliest time it held each position; its last line; whether it deferred.
    let mut held: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    let mut deferring: std::collections::BTreeSet<&str> = Default::default();
    for e in events {
        let leaf = e.leaf.as_str();
        let t = last.entry(leaf).or_insert(0);
        *t = (*t).max(e.t_ns);
        let landed = e.op == Op::Commit && matches!(e.phase, Phase::Ok | Phase::Info);
        let pulled = e.op == Op::Pull && e.phase == Phase::Ok;
        if pulled && e.outcome.as_deref() == Some("deferred") {
            deferring.insert(leaf);
        }
        let Some(p) = pos(e).filter(|_| landed || pulled) else {
            continue;
        };
        if landed {
            let a = &mut accepted[p];
            *a = Some(a.map_or(e.t_ns, |x| x.min(e.t_ns)));
        }
        let times = held
            .entry(leaf)
            .or_insert_with(|| vec![u64::MAX; trunk.len()]);
        times[p] = times[p].min(e.t_ns);
    }
    let mut out = Vec::new();
    let leaves: Vec<&str> = if plan.leaves.is_empty() {
        plan.tasks_per_leaf.keys().map(String::as_str).collect()
    } else {
        plan.leaves.iter().map(String::as_str).collect()
    };
    for leaf in leaves {
        if deferring.contains(leaf) {
            continue;
        }
        let Some(&end) = last.get(leaf) else {
            continue; // no line at all: I1 names a leaf that did nothing
        };
        // Earliest time the leaf held position p or any later one.
        let mut from = held
            .get(leaf)
            .cloned()
            .unwrap_or_else(|| vec![u64::MAX; trunk.len()]);
        for p in (0..from.len().saturating_sub(1)).rev() {
            from[p] = from[p].min(from[p + 1]);
        }
        let mut missed = 0;
        let mut first = None;
        for (p, accepted) in accepted.iter().enumerate() {
            let Some(at) = *accepted else { continue };
            // Not running after the acceptance: nothing to reach.
            if end < at {
                continue;
            }
            let reached = from[p];
            let late = reached == u64::MAX || reached.saturating_sub(at) > bound_ns;
            if late {
                missed += 1;
                first.get_or_insert((p, at, reached));
            }
        }
        if let Some((p, at, reached)) = first {
            let how = if reached == u64::MAX {
                "never held it".to_string()
            } else {
                format!(
                    "held it {:.1} s later",
                    reached.saturating_sub(at) as f64 / 1e9
                )
            };
            out.push(violation(
                "I10",
                format!(
                    "leaf {leaf}: tip {} accepted at {:.3} s {how} (bound {} s); {missed} tip(s) \
                     in all did not reach it in time",
                    trunk[p].oid,
                    at as f64 / 1e9,
                    bound_ns / 1_000_000_000
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn trunk(n: u8) -> Vec<TrunkCommit> {
        (0..n)
            .map(|i| TrunkCommit {
                oid: oid(i),
                parents: 1,
                author: "a".into(),
                paths: Vec::new(),
                task: None,
                epoch: None,
                base: None,
            })
            .collect()
    }

    fn ev(op: Op, leaf: &str, n: u8, t_s: u64, outcome: Option<&str>) -> HistoryEvent {
        let mut e = HistoryEvent::new(op, Phase::Ok, leaf, "s", t_s * 1_000_000_000);
        e.oid = Some(oid(n).to_string());
        e.outcome = outcome.map(str::to_string);
        e
    }

    fn plan() -> Plan {
        Plan {
            tasks_per_leaf: Default::default(),
            leaves: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn a_tip_held_in_time_passes_one_never_held_or_late_is_named() {
        let t = trunk(3);
        // a lands 1 and 2; b pulls 2 (holding 1 too) within the bound.
        let ok = [
            ev(Op::Commit, "a", 1, 1, None),
            ev(Op::Commit, "a", 2, 2, None),
            ev(Op::Pull, "b", 2, 3, Some("applied")),
        ];
        assert!(tips_reach_within(&t, &ok, &plan(), 5_000_000_000).is_empty());
        // b keeps running but never holds 2.
        let never = [
            ev(Op::Commit, "a", 1, 1, None),
            ev(Op::Commit, "a", 2, 2, None),
            ev(Op::Pull, "b", 1, 3, Some("applied")),
            ev(Op::Pull, "b", 1, 9, Some("skipped_idempotent")),
        ];
        let v = tips_reach_within(&t, &never, &plan(), 5_000_000_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("leaf b") && v[0].message.contains("never held it"));
        // b holds 2 only 8 s after it was accepted.
        let late = [
            ev(Op::Commit, "a", 1, 1, None),
            ev(Op::Commit, "a", 2, 2, None),
            ev(Op::Pull, "b", 2, 10, Some("pulled")),
        ];
        let v = tips_reach_within(&t, &late, &plan(), 5_000_000_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("9.0 s later") && v[0].message.contains("2 tip(s)"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn deferring_leaves_and_leaves_that_ended_before_are_not_judged() {
        let t = trunk(3);
        let deferred = [
            ev(Op::Commit, "a", 2, 2, None),
            ev(Op::Pull, "b", 1, 20, Some("deferred")),
        ];
        assert!(tips_reach_within(&t, &deferred, &plan(), 5_000_000_000).is_empty());
        let ended = [
            ev(Op::Pull, "b", 1, 1, Some("applied")),
            ev(Op::Commit, "a", 2, 2, None),
        ];
        assert!(tips_reach_within(&t, &ended, &plan(), 5_000_000_000).is_empty());
    }
}
