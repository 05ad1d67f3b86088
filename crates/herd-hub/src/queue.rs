//! Queue mode: a merge queue with group commit.
//!
//! Pushes that passed the policy wait in a channel; one *lander* task takes everything waiting
//! (up to [`MAX_GROUP`]) and, on a blocking thread holding the repository:
//!
//! 1. for each push in arrival order: if its base is the running tip it lands as pushed (a
//!    fast-forward); otherwise the *net* change of its commits (base tree → pushed tree) is
//!    checked path by path against the running tip — a path whose entry differs from the base's
//!    is an overlap, refused as a fork — and each pushed commit is replayed onto the running
//!    tip by swapping in its changed entries (`TreeUpdateBuilder`: only the trees on those
//!    paths are rewritten), keeping author, message and trailers, with the hub as committer;
//! 2. writes the replayed trees and commits as one pack (they were built in a memory backend),
//!    moves the accepted pushes' packs in, and moves main once — from the tip it started from
//!    to the last landed commit (one ref update for the whole group);
//!
//! then publishes one broadcast per landed commit, in trunk order, and answers each pusher with
//! the commit its push became.

use std::io::Write;
use std::sync::Arc;

use git2::{Oid, Repository, Signature};
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Broadcast, Inner, PushContext};
use crate::mode::Landed;
use crate::policy::Update;
use crate::quarantine::{self, Quarantine};
use crate::refusal::Refusal;
use crate::repo::{self, MAIN};
use crate::tree_diff;

/// Most pushes landed by one ref update.
pub const MAX_GROUP: usize = 256;

/// A push waiting in the queue.
pub(crate) struct QueueItem {
    pub update: Update,
    pub quarantine: Option<Quarantine>,
    pub ctx: PushContext,
    pub reply: oneshot::Sender<Result<Vec<Landed>, Refusal>>,
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
            .map(|i| (i.reply, (i.update, i.quarantine, i.ctx)))
            .unzip();
        let me = inner.clone();
        let landed = tokio::task::spawn_blocking(move || land_group(&me, items)).await;
        let (results, outs) = match landed {
            Ok(Ok(done)) => done,
            Ok(Err(refusal)) => (vec![Err(refusal); replies.len()], Vec::new()),
            Err(e) => {
                let refusal = Refusal::Storage(format!("merge queue task failed: {e}"));
                (vec![Err(refusal); replies.len()], Vec::new())
            }
        };
        inner.publish(outs).await;
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

type Results = Vec<Result<Vec<Landed>, Refusal>>;

/// Lands a group; an `Err` refuses the whole group (storage failure: nothing moved).
fn land_group(
    inner: &Inner,
    items: Vec<(Update, Option<Quarantine>, PushContext)>,
) -> Result<(Results, Vec<Broadcast>), Refusal> {
    let storage = |what: &str, e: git2::Error| Refusal::Storage(format!("{what}: {}", e.message()));
    let repo = inner.repo.lock().expect("hub repository lock");
    let dir = &inner.config.dir;
    let start = repo::tip(&repo).map_err(|e| storage("reading main", e))?;
    let extra: Vec<&std::path::Path> = items
        .iter()
        .filter_map(|(_, q, _)| q.as_ref().map(Quarantine::path))
        .collect();
    let view = quarantine::view(dir, &extra).map_err(|e| storage("opening the queue view", e))?;
    let odb = view
        .odb()
        .map_err(|e| storage("opening the queue view", e))?;
    let writes = odb
        .add_new_mempack_backend(1000)
        .map_err(|e| storage("memory backend", e))?;
    let hub = Signature::now("herd-hub", "hub@herd").map_err(|e| storage("signature", e))?;

    let mut running = start;
    let mut pending: Vec<(Pending, PushContext)> = Vec::new();
    let mut accepted = Vec::new();
    let mut replayed = 0u64;
    for (update, q, ctx) in items {
        let result = land_one(&view, &hub, &mut running, &update);
        if let Ok(landed) = &result {
            replayed += landed.iter().filter(|(l, _)| l.pushed != l.landed).count() as u64;
            accepted.extend(q);
        }
        pending.push((result, ctx));
    }
    if running != start {
        // Objects first (replayed commits and trees, then the pushed packs), the ref last.
        if replayed > 0 {
            let mut buf = git2::Buf::new();
            writes
                .dump(&view, &mut buf)
                .map_err(|e| storage("writing replayed commits", e))?;
            let main_odb = repo.odb().map_err(|e| storage("object store", e))?;
            let mut writer = main_odb
                .packwriter()
                .map_err(|e| storage("writing replayed commits", e))?;
            writer
                .write_all(&buf)
                .map_err(|e| Refusal::Storage(format!("writing replayed commits: {e}")))?;
            writer
                .commit()
                .map_err(|e| storage("writing replayed commits", e))?;
        }
        for q in accepted {
            q.move_in(dir)
                .map_err(|e| Refusal::Storage(format!("storing pack: {e}")))?;
        }
        repo.reference_matching(MAIN, running, true, start, "herd merge queue")
            .map_err(|e| storage("moving main", e))?;
    }

    // Sequence numbers and broadcasts, in trunk order; overlaps name the tip now on the trunk.
    let mut broadcasts = Vec::new();
    let mut landed_count = 0u64;
    let mut results: Results = Vec::new();
    for (result, ctx) in pending {
        results.push(match result {
            Ok(landed) => {
                let mut done = Vec::new();
                for (mut l, chain) in landed {
                    l.seq = inner.advance_trunk(&[l.landed]);
                    landed_count += 1;
                    broadcasts.push(inner.broadcast_for(&view, &l, &chain, &ctx));
                    done.push(l);
                }
                Ok(done)
            }
            Err(Refusal::Overlap { path, .. }) => Err(Refusal::Overlap { path, tip: running }),
            Err(other) => Err(other),
        });
    }
    if landed_count > 0 {
        inner.stats.landed(landed_count, replayed);
    }
    Ok((results, broadcasts))
}

type Pending = Result<Vec<(Landed, Vec<Oid>)>, Refusal>;

/// Lands one update onto `running` (in the view; nothing is persisted here). Returns each
/// landed commit with the chain its payload covers (one commit).
fn land_one(
    view: &Repository,
    hub: &Signature<'_>,
    running: &mut Oid,
    update: &Update,
) -> Result<Vec<(Landed, Vec<Oid>)>, Refusal> {
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
        let tree_id = tree_diff::apply(view, &onto.tree().map_err(missing(*running))?, &changes)
            .map_err(|e| Refusal::Storage(format!("replaying {commit_id}: {}", e.message())))?;
        let tree = view.find_tree(tree_id).map_err(missing(tree_id))?;
        let message = String::from_utf8_lossy(commit.message_raw_bytes()).into_owned();
        let landed = view
            .commit(None, &commit.author(), hub, &message, &tree, &[&onto])
            .map_err(|e| Refusal::Storage(format!("replaying {commit_id}: {}", e.message())))?;
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
