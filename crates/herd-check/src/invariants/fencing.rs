//! I8: fencing — no accepted push carries a claim epoch that was not its task's live claim.
//!
//! Every trunk commit names its claim in a `Herd-Claim: <task>@<epoch>` trailer. The epoch must
//! be one a `claim ok` of that task returned to the commit's author, and no newer claim of the
//! task may have succeeded (a higher epoch, another holder or a re-claim) before the push
//! began (its `commit invoke`): such a push came from a holder whose lease had lapsed, and a
//! fencing hub refuses it. The history is the record used (claim records expire from the
//! bucket with their lease; the history keeps every claim of the run).

use std::collections::BTreeMap;

use super::violation;
use crate::history::{HistoryEvent, Op, Phase};
use crate::report::Violation;
use crate::trunk::TrunkCommit;

/// I8 from the trunk alone: along the trunk a task's claim epochs only move forward. A commit
/// landing a task under an older epoch than one already landed was accepted when its claim
/// was no longer live — whatever the history's times say (a push that began before a newer
/// claim, and was paused past its lease, is found here).
pub fn epochs_move_forward(trunk: &[TrunkCommit], seed: u64) -> Vec<Violation> {
    let mut newest: BTreeMap<&str, (u64, git2::Oid)> = BTreeMap::new();
    let mut out = Vec::new();
    for c in trunk.iter().skip(seed as usize) {
        let (Some(task), Some(epoch)) = (c.task.as_deref(), c.epoch) else {
            continue;
        };
        match newest.get(task) {
            Some(&(seen, by)) if epoch < seen => out.push(violation(
                "I8",
                format!(
                    "commit {} landed task {task} with epoch {epoch} after commit {by} had \
                     landed it with epoch {seen}: a stale claim was accepted",
                    c.oid
                ),
            )),
            _ => {
                newest.insert(task, (epoch, c.oid));
            }
        }
    }
    out
}

/// I8 over the trunk after the seed.
pub fn pushes_fenced(events: &[HistoryEvent], trunk: &[TrunkCommit], seed: u64) -> Vec<Violation> {
    // task → every successful claim: (epoch, holder, when).
    let mut claims: BTreeMap<&str, Vec<(u64, &str, u64)>> = BTreeMap::new();
    // (task, epoch) → when its first push began.
    let mut pushes: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    for e in events {
        let (Some(task), Some(epoch)) = (e.task.as_deref(), e.claim_rev) else {
            continue;
        };
        match (e.op, e.phase) {
            (Op::Claim, Phase::Ok) => {
                claims
                    .entry(task)
                    .or_default()
                    .push((epoch, e.leaf.as_str(), e.t_ns))
            }
            (Op::Commit, Phase::Invoke) => {
                let t = pushes.entry((task, epoch)).or_insert(e.t_ns);
                *t = (*t).min(e.t_ns);
            }
            _ => {}
        }
    }
    let mut out = epochs_move_forward(trunk, seed);
    for c in trunk.iter().skip(seed as usize) {
        let (Some(task), Some(epoch)) = (c.task.as_deref(), c.epoch) else {
            continue;
        };
        let held = claims.get(task).map(Vec::as_slice).unwrap_or_default();
        if !held
            .iter()
            .any(|(e, leaf, _)| *e == epoch && *leaf == c.author)
        {
            out.push(violation(
                "I8",
                format!(
                    "commit {} landed task {task} with epoch {epoch}, which no claim of {} returned",
                    c.oid, c.author
                ),
            ));
            continue;
        }
        let Some(began) = pushes.get(&(task, epoch)) else {
            continue;
        };
        if let Some((newer, holder, at)) = held
            .iter()
            .filter(|(e, _, at)| *e > epoch && at < began)
            .min_by_key(|(_, _, at)| *at)
        {
            out.push(violation(
                "I8",
                format!(
                    "commit {} landed task {task} with epoch {epoch}, but {holder} held it with epoch {newer} since {:.3} s, before the push began at {:.3} s",
                    c.oid,
                    *at as f64 / 1e9,
                    *began as f64 / 1e9
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: Op, phase: Phase, leaf: &str, epoch: u64, t: u64) -> HistoryEvent {
        let mut e = HistoryEvent::new(op, phase, leaf, "slot-0", t);
        e.task = Some("slot-0.t1".into());
        e.claim_rev = Some(epoch);
        e
    }

    fn commit(author: &str, epoch: u64) -> TrunkCommit {
        TrunkCommit {
            oid: git2::Oid::ZERO_SHA1,
            parents: 1,
            author: author.into(),
            paths: Vec::new(),
            task: Some("slot-0.t1".into()),
            epoch: Some(epoch),
            base: None,
        }
    }

    #[test]
    fn a_push_under_the_live_claim_passes() {
        let events = [
            ev(Op::Claim, Phase::Ok, "a", 5, 10),
            ev(Op::Commit, Phase::Invoke, "a", 5, 20),
        ];
        assert!(pushes_fenced(&events, &[commit("a", 5)], 0).is_empty());
    }

    #[test]
    fn a_push_after_the_task_was_reclaimed_is_named() {
        // a's lease lapsed while it was paused; b claimed (epoch 9) before a pushed.
        let events = [
            ev(Op::Claim, Phase::Ok, "a", 5, 10),
            ev(Op::Claim, Phase::Ok, "b", 9, 30),
            ev(Op::Commit, Phase::Invoke, "a", 5, 40),
        ];
        let v = pushes_fenced(&events, &[commit("a", 5)], 0);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("b held it with epoch 9"), "{v:?}");
        // A re-claim that came only after the push began is not the push's fault.
        let later = [
            ev(Op::Claim, Phase::Ok, "a", 5, 10),
            ev(Op::Commit, Phase::Invoke, "a", 5, 20),
            ev(Op::Claim, Phase::Ok, "b", 9, 30),
        ];
        assert!(pushes_fenced(&later, &[commit("a", 5)], 0).is_empty());
    }

    #[test]
    fn an_epoch_no_claim_returned_is_named() {
        let events = [ev(Op::Claim, Phase::Ok, "a", 5, 10)];
        let v = pushes_fenced(&events, &[commit("a", 6), commit("b", 5)], 0);
        // Neither epoch was returned to its author, and epoch 5 landed after epoch 6.
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v.iter()
                .any(|v| v.message.contains("a stale claim was accepted"))
        );
    }
}
