//! Queue mode: a merge queue with group commit.
//!
//! Pushes that passed the command rules wait in a channel; one *lander* task takes everything
//! waiting (up to [`MAX_GROUP`]) and, on the store thread, stages and checks each push, then:
//!
//! 1. for each push in arrival order: if its base is the running tip it lands as pushed (a
//!    fast-forward); otherwise the *net* change of its commits (base tree → pushed tree) is
//!    checked path by path against the running tip — a path whose entry differs from the base's
//!    is an overlap, refused as a fork — and each pushed commit is replayed onto the running
//!    tip by swapping in its changed entries (`TreeUpdateBuilder`: only the trees on those
//!    paths are rewritten), keeping author, message and trailers, with the hub as committer;
//! 2. writes the accepted pushes' objects and the replayed trees and commits as one pack (all
//!    of it was staged in memory, see [`crate::store`]) and moves main once — from the tip it
//!    started from to the last landed commit (one ref update for the whole group);
//!
//! then publishes one broadcast per landed commit, in trunk order, and answers each pusher with
//! the commit its push became.

use std::sync::Arc;

use git2::{Oid, Repository, Signature};
use tokio::sync::{mpsc, oneshot};

use crate::error::RequestError;
use crate::hub::{Broadcast, Inner, PushContext};
use crate::mode::{HubMode, Landed};
use crate::policy::Update;
use crate::race::Outcome;
use crate::receive_pack::Command;
use crate::refusal::Refusal;
use crate::repo::MAIN;
use crate::store::{Staged, Staging};
use crate::tree_diff;

/// Most pushes landed by one ref update.
pub const MAX_GROUP: usize = 256;

/// A push waiting in the queue.
pub(crate) struct QueueItem {
    pub cmd: Command,
    pub pack: bytes::Bytes,
    pub ctx: PushContext,
    pub reply: oneshot::Sender<Outcome>,
}

/// The lander: runs until every sender is gone.
pub(crate) async fn run(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<QueueItem>) {
    while let Some(first) = rx.recv().await {
        let _gate = inner.queue_gate.lock().await;
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(item) => group.push(item),
                Err(_) => break,
            }
        }
        let (replies, items): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|i| (i.reply, (i.cmd, i.pack, i.ctx)))
            .unzip();
        let me = inner.clone();
        let landed = inner.store.run(move |s| land_group(&me, s, items)).await;
        let (results, outs) = match landed {
            Ok(done) => done,
            Err(_) => {
                let gone = || Err(RequestError::internal("the hub's store stopped"));
                ((0..replies.len()).map(|_| gone()).collect(), Vec::new())
            }
        };
        crate::tips::publish(&inner, outs).await;
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// One item's result before sequence numbers: its landed commits with the chains their
/// payloads cover, and the objects to persist.
type Pending = Result<(Vec<(Landed, Vec<Oid>)>, Staged), Refusal>;

/// Lands a group on the store thread.
fn land_group(
    inner: &Inner,
    s: &mut Staging<'_>,
    items: Vec<(Command, bytes::Bytes, PushContext)>,
) -> (Vec<Outcome>, Vec<Broadcast>) {
    let start = inner.tip();
    let mut running = start;
    let mut pending: Vec<(Result<Pending, RequestError>, PushContext)> = Vec::new();
    let mut replayed = 0u64;
    for (cmd, pack, ctx) in items {
        let result = admit_and_land(inner, s, &mut running, &cmd, &pack, &ctx);
        if let Ok(Ok((landed, _))) = &result {
            replayed += landed.iter().filter(|(l, _)| l.pushed != l.landed).count() as u64;
        }
        pending.push((result, ctx));
    }
    if running != start {
        // Objects first (pushed and replayed, as one pack), the ref last.
        let accepted: Vec<&Staged> = pending
            .iter()
            .filter_map(|(r, _)| match r {
                Ok(Ok((_, staged))) => Some(staged),
                _ => None,
            })
            .collect();
        let stored = s.persist(&accepted).and_then(|()| {
            s.repo
                .reference_matching(MAIN, running, true, start, "herd merge queue")
                .map(|_| ())
        });
        if let Err(e) = stored {
            // Nothing moved: every push of the group is refused, none lost.
            let refusal = Refusal::Storage(format!("landing the group: {}", e.message()));
            let results = pending
                .into_iter()
                .map(|(r, _)| r.map(|_| Err(refusal.clone())))
                .collect();
            return (results, Vec::new());
        }
    }

    // Sequence numbers and broadcasts, in trunk order; overlaps name the tip now on the trunk.
    let mut broadcasts = Vec::new();
    let mut landed_count = 0u64;
    let mut results: Vec<Outcome> = Vec::new();
    for (result, ctx) in pending {
        results.push(result.map(|r| match r {
            Ok((landed, _)) => {
                let mut done = Vec::new();
                for (mut l, chain) in landed {
                    l.seq = inner.advance_trunk(&[l.landed]);
                    landed_count += 1;
                    broadcasts.push(inner.broadcast_for(s.repo, &l, &chain, &ctx));
                    done.push(l);
                }
                Ok(done)
            }
            Err(Refusal::Overlap { path, .. }) => Err(Refusal::Overlap { path, tip: running }),
            Err(other) => Err(other),
        }));
    }
    if landed_count > 0 {
        inner.stats.landed(landed_count, replayed);
    }
    (results, broadcasts)
}

/// Stages one push, checks it, and lands it onto `running` (in memory).
fn admit_and_land(
    inner: &Inner,
    s: &mut Staging<'_>,
    running: &mut Oid,
    cmd: &Command,
    pack: &bytes::Bytes,
    ctx: &PushContext,
) -> Result<Pending, RequestError> {
    let (mut staged, update) = match inner.admit(s, cmd, pack, HubMode::Queue, ctx)? {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let hub = match Signature::now("herd-hub", "hub@herd") {
        Ok(sig) => sig,
        Err(e) => return Ok(Err(Refusal::Storage(e.message().to_string()))),
    };
    Ok(land_one(s, &hub, running, &update, &mut staged).map(|landed| (landed, staged)))
}

/// Lands one update onto `running` (in the view; nothing is persisted here). Returns each
/// landed commit with the chain its payload covers (one commit).
fn land_one(
    s: &Staging<'_>,
    hub: &Signature<'_>,
    running: &mut Oid,
    update: &Update,
    staged: &mut Staged,
) -> Result<Vec<(Landed, Vec<Oid>)>, Refusal> {
    let view: &Repository = s.repo;
    let missing = |oid: Oid| move |_| Refusal::MissingObjects { oid };
    if update.chain.is_empty() {
        return Ok(Vec::new());
    }
    if update.base == *running {
        let mut prev = update.base;
        let landed = update
            .chain
            .iter()
            .map(|c| {
                let l = Landed {
                    pushed: *c,
                    landed: *c,
                    prev,
                    seq: 0,
                };
                prev = *c;
                (l, vec![*c])
            })
            .collect();
        *running = update.new;
        return Ok(landed);
    }
    let tree_of = |oid: Oid| {
        view.find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(missing(oid))
    };
    let base_tree = tree_of(update.base)?;
    let pushed_tree = tree_of(update.new)?;
    let running_tree = tree_of(*running)?;
    let net =
        tree_diff::diff(view, Some(&base_tree), Some(&pushed_tree)).map_err(missing(update.new))?;
    if let Some(c) = net
        .changes
        .iter()
        .find(|c| tree_diff::entry_at(&running_tree, &c.path) != c.old)
    {
        return Err(Refusal::Overlap {
            path: c.path.clone(),
            tip: *running,
        });
    }
    let mut out = Vec::new();
    let mut parent = update.base;
    for commit_id in &update.chain {
        let commit = view.find_commit(*commit_id).map_err(missing(*commit_id))?;
        let changes = tree_diff::diff(view, Some(&tree_of(parent)?), Some(&tree_of(*commit_id)?))
            .map_err(missing(*commit_id))?
            .changes;
        let onto = view.find_commit(*running).map_err(missing(*running))?;
        let onto_tree = onto.tree().map_err(missing(*running))?;
        let replay =
            |e: git2::Error| Refusal::Storage(format!("replaying {commit_id}: {}", e.message()));
        let tree_id = tree_diff::apply(view, &onto_tree, &changes).map_err(replay)?;
        let tree = view.find_tree(tree_id).map_err(missing(tree_id))?;
        let message = String::from_utf8_lossy(commit.message_raw_bytes()).into_owned();
        let landed = view
            .commit(None, &commit.author(), hub, &message, &tree, &[&onto])
            .map_err(replay)?;
        s.track_commit(staged, &onto_tree, landed).map_err(replay)?;
        out.push((
            Landed {
                pushed: *commit_id,
                landed,
                prev: *running,
                seq: 0,
            },
            vec![landed],
        ));
        *running = landed;
        parent = *commit_id;
    }
    Ok(out)
}
