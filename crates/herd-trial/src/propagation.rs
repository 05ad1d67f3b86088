//! Propagation lag: from the moment the hub landed a commit to the moment each *other* leaf
//! has it. The trunk is linear and tip sequence numbers grow, so a leaf that holds the tip with
//! sequence `s` holds every commit with sequence ≤ `s`; the lag of commit `k` at leaf `X` is the
//! first time X held a tip with sequence ≥ k, minus the time k landed — the earlier of the
//! pusher seeing its push accepted and the trial's own subscriber receiving the broadcast
//! (published before the push is answered, so a leaf can hold a commit before its pusher
//! hears back).
//!
//! A holding is 40 bytes and there is one per broadcast per leaf (N² per trial): leaves are
//! numbered and tips are raw ids.

use std::collections::HashMap;
use std::time::Instant;

use git2::Oid;

use crate::metrics::Latency;

/// One moment a leaf was known to hold a tip (after applying or pulling it, or on a broadcast
/// it already had).
#[derive(Clone, Copy, Debug)]
pub struct Holding {
    /// The leaf's slot number.
    pub leaf: u32,
    /// The tip it held.
    pub oid: Oid,
    /// When.
    pub at: Instant,
}

/// One landed commit.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The hub's sequence number.
    pub seq: u64,
    /// The commit.
    pub oid: Oid,
    /// The slot number of the leaf that pushed it (excluded from its own lag).
    pub leaf: u32,
    /// When it landed (see the module doc).
    pub at: Instant,
}

/// Computes the lag histogram over `leaves` leaves (slot numbers `0..leaves`); commits a leaf
/// never received are not samples (the drain's completeness check reports those).
pub fn lag(accepted: &[Accepted], holdings: &[Holding], leaves: u32) -> Latency {
    let seq_of: HashMap<Oid, u64> = accepted.iter().map(|a| (a.oid, a.seq)).collect();
    let mut per_leaf: HashMap<u32, Vec<(Instant, u64)>> = HashMap::new();
    for h in holdings {
        if let Some(seq) = seq_of.get(&h.oid) {
            per_leaf.entry(h.leaf).or_default().push((h.at, *seq));
        }
    }
    // For each leaf: times in order with the running maximum sequence held.
    for list in per_leaf.values_mut() {
        list.sort_by_key(|(at, _)| *at);
        let mut max = 0;
        for entry in list.iter_mut() {
            max = max.max(entry.1);
            entry.1 = max;
        }
    }
    let mut out = Latency::default();
    for a in accepted {
        for leaf in (0..leaves).filter(|l| *l != a.leaf) {
            let Some(list) = per_leaf.get(&leaf) else {
                continue;
            };
            // First moment with a held sequence ≥ a.seq (running max is monotone: binary search).
            let idx = list.partition_point(|(_, s)| *s < a.seq);
            if let Some((at, _)) = list.get(idx) {
                out.record(at.saturating_duration_since(a.at));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lag_is_first_holding_at_or_past_the_commit() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (a, b) = (
            Oid::from_str(&"a".repeat(40)).unwrap(),
            Oid::from_str(&"b".repeat(40)).unwrap(),
        );
        let accepted = vec![
            Accepted {
                seq: 1,
                oid: a,
                leaf: 0,
                at: ms(0),
            },
            Accepted {
                seq: 2,
                oid: b,
                leaf: 0,
                at: ms(10),
            },
        ];
        // Leaf 1 pulls b at 30 ms (so it holds a too); leaf 0 is the pusher and is excluded.
        let holdings = vec![Holding {
            leaf: 1,
            oid: b,
            at: ms(30),
        }];
        let l = lag(&accepted, &holdings, 2);
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert!(
            (s.max_ms - 30.0).abs() < 0.1 && (s.p50_ms - 20.0).abs() < 0.1,
            "{s:?}"
        );
    }
}
