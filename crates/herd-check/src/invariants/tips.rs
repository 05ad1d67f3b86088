//! I9: each leaf's observed tips form a descendant chain — a leaf's view of the trunk never
//! moves backwards or sideways. Observed tips are the `oid` of its `pull` lines, in time order.
//! On the linear trunk "descends from" is "comes later", a position lookup; only a tip that is
//! not on the trunk needs a history walk.

use std::collections::{BTreeMap, HashMap};

use git2::{Oid, Repository};

use super::violation;
use crate::history::{HistoryEvent, Op};
use crate::report::Violation;
use crate::trunk::TrunkCommit;

/// I9.
pub fn observed_tips_advance(
    repo: &Repository,
    trunk: &[TrunkCommit],
    events: &[HistoryEvent],
) -> Vec<Violation> {
    let position: HashMap<Oid, usize> = trunk.iter().enumerate().map(|(i, c)| (c.oid, i)).collect();
    let descends = |new: Oid, old: Oid| match (position.get(&new), position.get(&old)) {
        (Some(n), Some(o)) => n >= o,
        _ => repo.graph_descendant_of(new, old).unwrap_or(false),
    };
    let mut by_leaf: BTreeMap<&str, Vec<&HistoryEvent>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.op == Op::Pull && e.oid.is_some())
    {
        by_leaf.entry(e.leaf.as_str()).or_default().push(e);
    }
    let mut out = Vec::new();
    for (leaf, mut pulls) in by_leaf {
        pulls.sort_by_key(|e| e.t_ns);
        let mut last: Option<Oid> = None;
        for e in pulls {
            let text = e.oid.as_deref().unwrap_or_default();
            let Ok(oid) = Oid::from_str(text) else {
                out.push(violation(
                    "I9",
                    format!("leaf {leaf} observed malformed tip {text:?}"),
                ));
                continue;
            };
            if let Some(prev) = last
                && prev != oid
                && !descends(oid, prev)
            {
                out.push(violation("I9", format!("leaf {leaf} observed tip {oid} after {prev}, which is not its ancestor (the tip moved backwards)")));
            }
            last = Some(oid);
        }
    }
    out
}
