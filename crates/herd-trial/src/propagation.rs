//! Propagation lag: from the moment the hub accepted a commit to the moment each *other* leaf
//! has it. The trunk is linear and tip sequence numbers grow, so a leaf that holds the tip with
//! sequence `s` holds every commit with sequence ≤ `s`; the lag of commit `k` at leaf `X` is the
//! first time X held a tip with sequence ≥ k, minus the accept time of k.

use std::collections::HashMap;
use std::time::Instant;

use crate::metrics::Latency;

/// One moment a leaf was known to hold a tip (after a pull, or on a broadcast it already had).
#[derive(Clone, Debug)]
pub struct Holding {
    /// The leaf.
    pub leaf: String,
    /// The tip oid it held.
    pub oid: String,
    /// When.
    pub at: Instant,
}

/// One accepted commit.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The hub's sequence number.
    pub seq: u64,
    /// The commit.
    pub oid: String,
    /// The leaf that pushed it (excluded from its own lag).
    pub leaf: String,
    /// When the pusher saw it accepted.
    pub at: Instant,
}

/// Computes the lag histogram; commits a leaf never received are not samples (the drain's
/// completeness check reports those).
pub fn lag(accepted: &[Accepted], holdings: &[Holding], leaves: &[String]) -> Latency {
    let seq_of: HashMap<&str, u64> = accepted.iter().map(|a| (a.oid.as_str(), a.seq)).collect();
    let mut per_leaf: HashMap<&str, Vec<(Instant, u64)>> = HashMap::new();
    for h in holdings {
        if let Some(seq) = seq_of.get(h.oid.as_str()) {
            per_leaf
                .entry(h.leaf.as_str())
                .or_default()
                .push((h.at, *seq));
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
        for leaf in leaves.iter().filter(|l| **l != a.leaf) {
            let Some(list) = per_leaf.get(leaf.as_str()) else {
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
        let accepted = vec![
            Accepted {
                seq: 1,
                oid: "a".into(),
                leaf: "l0".into(),
                at: ms(0),
            },
            Accepted {
                seq: 2,
                oid: "b".into(),
                leaf: "l0".into(),
                at: ms(10),
            },
        ];
        // l1 pulls b at 30 ms (so it holds a too); l0 is the pusher and is excluded.
        let holdings = vec![Holding {
            leaf: "l1".into(),
            oid: "b".into(),
            at: ms(30),
        }];
        let l = lag(&accepted, &holdings, &["l0".into(), "l1".into()]);
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert!(
            (s.max_ms - 30.0).abs() < 0.1 && (s.p50_ms - 20.0).abs() < 0.1,
            "{s:?}"
        );
    }
}
