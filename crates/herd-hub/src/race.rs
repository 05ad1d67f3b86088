//! Race mode: the trunk moves only by compare-and-swap of its tip. Under one lock per hub:
//! re-check that the push's old tip is still the tip, move the pack in, `reference_matching`
//! (the CAS), then publish the broadcast — before the push is answered, so when a leaf's push
//! returns its broadcast is already in the stream, and broadcasts arrive in trunk order.

use std::sync::Arc;

use crate::hub::{Broadcast, Inner, PushContext};
use crate::mode::Landed;
use crate::policy::Update;
use crate::quarantine::Quarantine;
use crate::refusal::Refusal;
use crate::repo::{self, MAIN};

/// Lands `update` if the trunk tip is still its old tip.
pub(crate) async fn land(
    inner: &Arc<Inner>,
    serial: &tokio::sync::Mutex<()>,
    update: Update,
    quarantine: Option<Quarantine>,
    ctx: &PushContext,
) -> Result<Vec<Landed>, Refusal> {
    let _serial = serial.lock().await;
    let (me, ctx) = (inner.clone(), ctx.clone());
    let landed = tokio::task::spawn_blocking(move || cas(&me, update, quarantine, &ctx))
        .await
        .map_err(|e| Refusal::Storage(format!("push task failed: {e}")))??;
    let (landed, outs): (Vec<Landed>, Vec<Broadcast>) = landed.into_iter().unzip();
    inner.publish(outs).await;
    Ok(landed)
}

/// The compare-and-swap, on a blocking thread. Returns the landed tip and its broadcast.
fn cas(
    inner: &Inner,
    update: Update,
    quarantine: Option<Quarantine>,
    ctx: &PushContext,
) -> Result<Vec<(Landed, Broadcast)>, Refusal> {
    let repo = inner.repo.lock().expect("hub repository lock");
    let storage = |what: &str, e: String| Refusal::Storage(format!("{what}: {e}"));
    let tip = repo::tip(&repo).map_err(|e| storage("reading main", e.message().into()))?;
    if update.old != tip {
        return Err(Refusal::Stale { tip });
    }
    if update.chain.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(q) = quarantine {
        q.move_in(&inner.config.dir)
            .map_err(|e| storage("storing pack", e.to_string()))?;
    }
    repo.reference_matching(MAIN, update.new, true, update.old, "herd push")
        .map_err(|_| Refusal::Stale {
            tip: repo::tip(&repo).unwrap_or(tip),
        })?;
    let seq = inner.advance_trunk(&update.chain);
    inner.stats.landed(update.chain.len() as u64, 0);
    let landed = Landed {
        pushed: update.new,
        landed: update.new,
        prev: update.old,
        seq,
    };
    let broadcast = inner.broadcast_for(&repo, &landed, &update.chain, ctx);
    Ok(vec![(landed, broadcast)])
}
