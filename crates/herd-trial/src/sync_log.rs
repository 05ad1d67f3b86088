//! The leaf sync hook the runner installs: each handled broadcast becomes a `pull` line in the
//! history and, when the leaf holds a tip afterwards, a sample point for propagation lag.

use std::sync::{Arc, Mutex};

use herd_check::history::{Op, Phase};
use herd_leaf::{SyncEvent, SyncHook, SyncOutcome};

use crate::events::EventLog;
use crate::propagation::Holding;

/// A hook for leaf `leaf` writing in `slot`.
pub fn hook(
    leaf: &str,
    slot: &str,
    number: u32,
    log: EventLog,
    holdings: Arc<Mutex<Vec<Holding>>>,
) -> SyncHook {
    let (leaf, slot) = (leaf.to_string(), slot.to_string());
    Arc::new(move |ev: &SyncEvent| {
        log.record(Op::Pull, Phase::Ok, &leaf, &slot, |line| {
            line.oid = ev.after.clone();
            line.prev_tip = ev.before.clone();
            line.outcome = Some(ev.outcome.as_str().to_string());
            if ev.outcome == (SyncOutcome::Pulled { ok: false }) {
                line.error = Some(format!("fetch after broadcast of {} failed", ev.tip.oid));
            }
        });
        if let Some(oid) = ev
            .after
            .as_deref()
            .and_then(|o| git2::Oid::from_str(o).ok())
        {
            holdings.lock().expect("holdings lock").push(Holding {
                leaf: number,
                oid,
                at: ev.at,
            });
        }
    })
}
