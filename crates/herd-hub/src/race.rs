//! Race mode: the trunk moves only by compare-and-swap of its tip. One push at a time (a lock
//! per hub), on the store thread: re-check that the push's old tip is still the tip, stage the
//! pack in memory, check the policy, write the objects, `reference_matching` (the CAS); then
//! publish the broadcast — before the push is answered, so when a leaf's push returns its
//! broadcast is already in the stream, and broadcasts arrive in trunk order.

use std::sync::Arc;

use crate::error::RequestError;
use crate::failpoint::FailPoint;
use crate::hub::{Broadcast, Inner, PushContext};
use crate::mode::{HubMode, Landed};
use crate::receive_pack::Command;
use crate::refusal::Refusal;
use crate::repo::MAIN;
use crate::store::Staging;

/// What one push became: landed commits, a refusal (`ng`), or a malformed request (4xx).
pub(crate) type Outcome = Result<Result<Vec<Landed>, Refusal>, RequestError>;

/// Lands `cmd` with `pack` if the trunk tip is still its old tip.
pub(crate) async fn land(
    inner: &Arc<Inner>,
    serial: &tokio::sync::Mutex<()>,
    cmd: Command,
    pack: bytes::Bytes,
    ctx: &PushContext,
) -> Outcome {
    let _serial = serial.lock().await;
    let (me, job_ctx) = (inner.clone(), ctx.clone());
    let job = inner
        .store
        .run(move |s| cas(&me, s, &cmd, &pack, &job_ctx))
        .await
        .map_err(|_| RequestError::internal("the hub's store stopped"))?;
    if matches!(&job, Err(e) if e.reason == HALTED) {
        halt().await;
    }
    let done = job?;
    if done.is_ok() && fail_at(inner, FailPoint::RefUpdated) {
        halt().await;
    }
    match done {
        Ok((landed, broadcasts)) => {
            crate::tips::publish(inner, broadcasts).await;
            Ok(Ok(landed))
        }
        Err(refusal) => Ok(Err(refusal)),
    }
}

type Landing = Result<(Vec<Landed>, Vec<Broadcast>), Refusal>;

/// The reason a store job gives when it stopped at [`FailPoint::PackWritten`].
const HALTED: &str = "halted at fail point pack-written";

fn fail_at(inner: &Inner, point: FailPoint) -> bool {
    inner
        .config
        .fail_points
        .as_ref()
        .is_some_and(|f| f.take(point))
}

/// A push stopped at a fail point: never answered, until the hub is crashed.
async fn halt() {
    std::future::pending::<()>().await;
}

/// The compare-and-swap, on the store thread.
fn cas(
    inner: &Inner,
    s: &mut Staging<'_>,
    cmd: &Command,
    pack: &bytes::Bytes,
    ctx: &PushContext,
) -> Result<Landing, RequestError> {
    let tip = inner.tip();
    if cmd.old != tip {
        return Ok(Err(Refusal::Stale { tip }));
    }
    let (staged, update) = match inner.admit(s, cmd, pack, HubMode::Race, ctx)? {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if update.chain.is_empty() {
        return Ok(Ok((Vec::new(), Vec::new())));
    }
    let storage = |what: &str, e: git2::Error| Refusal::Storage(format!("{what}: {}", e.message()));
    if let Err(e) = s.persist(&[&staged]) {
        return Ok(Err(storage("storing pack", e)));
    }
    if fail_at(inner, FailPoint::PackWritten) {
        return Err(RequestError::internal(HALTED));
    }
    if s.repo
        .reference_matching(MAIN, update.new, true, update.old, "herd push")
        .is_err()
    {
        return Ok(Err(Refusal::Stale { tip: inner.tip() }));
    }
    let seq = inner.advance_trunk(&update.chain);
    inner.stats.landed(update.chain.len() as u64, 0);
    let landed = Landed {
        pushed: update.new,
        landed: update.new,
        prev: update.old,
        seq,
    };
    let broadcast = inner.broadcast_for(s.repo, &landed, &update.chain, ctx);
    Ok(Ok((vec![landed], vec![broadcast])))
}
