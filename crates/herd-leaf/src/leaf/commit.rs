//! The commit path of a leaf: write, commit, push, and on a fork get the new tip, rebase and
//! retry — bounded — until the hub accepts, the fork proves unrecoverable, the hub refuses on
//! policy, or the claim is no longer live.
//!
//! Getting the new tip after a fork depends on the sync policy: with payload sync the leaf
//! waits (up to `tip_wait`) until the broadcast of the tip the hub named has been applied — no
//! request to the hub — and fetches only if it does not come; with fetch and on-demand sync it
//! backs off (jittered) and fetches. Before every push the leaf rebases onto the newest tip it
//! already holds, so it never pushes onto a tip it knows is stale.

use std::time::Instant;

use git2::Oid;
use herd_bus::TaskState;
use herd_hub::{HubMode, RefusalKind};

use super::{Claim, CommitOutcome, InstrumentIn, Leaf, fenced};
use crate::error::LeafError;
use crate::git_ops::{PushResult, PushTarget, Rebased};
use crate::paths;
use crate::stats::add;
use crate::tip_sync::SyncPolicy;

/// What one rebase round decided.
enum Next {
    Push,
    Landed,
}

/// A task's work, kept so a conflict can redo it on a newer tip.
struct Work {
    files: Vec<(String, Vec<u8>)>,
    author: String,
    message: String,
}

/// Where a commit is in its retries.
#[derive(Default)]
struct Attempts {
    /// Rejected pushes (forks).
    forks: u32,
    /// Conflicts redone.
    redos: u32,
}
impl Leaf {
    /// Is `claim` still the live claim of its task?
    async fn check_epoch(&self, claim: &Claim) -> Result<(), LeafError> {
        let id = claim.task.0.as_str();
        if self.leases.lapsed(id) {
            return Err(LeafError::EpochStale {
                task: id.into(),
                epoch: claim.epoch,
                live: None,
            });
        }
        // The bus repeats a read that a dying server lost (herd-bus `read_retrying`).
        match self
            .bus
            .claim(id)
            .await
            .map_err(|e| LeafError::bus(id, e))?
        {
            Some((holder, rev)) if rev == claim.epoch && holder.leaf == self.id => Ok(()),
            live => Err(LeafError::EpochStale {
                task: id.into(),
                epoch: claim.epoch,
                live: live.map(|(_, r)| r),
            }),
        }
    }

    /// Writes `files`, commits, and pushes until the hub accepts (rebasing after each fork).
    /// Returns only after the hub accepted the push.
    pub async fn commit(
        &self,
        claim: &Claim,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<CommitOutcome, LeafError> {
        let span = tracing::info_span!(
            "leaf.commit",
            leaf = %self.id,
            task = %claim.task,
            claim.epoch = claim.epoch,
            commit.oid = tracing::field::Empty,
            commit.pushed = tracing::field::Empty,
            commit.fork_retries = tracing::field::Empty,
            commit.fork_retried = tracing::field::Empty,
            commit.fork_retried_succeeded = tracing::field::Empty,
            commit.conflict = tracing::field::Empty,
            commit.conflict_redos = tracing::field::Empty,
            commit.unrecoverable = tracing::field::Empty,
            commit.refused = tracing::field::Empty,
        );
        let mut tries = Attempts::default();
        let result = self
            .commit_inner(claim, files, &mut tries)
            .instrument_in(span.clone())
            .await;
        // A halt or pause set for this commit ends with it, whether or not its push came.
        let _ = (self.take_halt(), self.take_push_pause());
        let retries = tries.forks;
        // Recorded on every exit, so spans count exactly what the leaf counted.
        span.record("commit.fork_retries", retries);
        span.record("commit.conflict_redos", tries.redos);
        span.record("commit.fork_retried", retries > 0);
        match &result {
            Ok(outcome) => {
                span.record("commit.oid", outcome.oid.as_str());
                span.record("commit.pushed", outcome.pushed.as_str());
                span.record("commit.fork_retried_succeeded", retries > 0);
            }
            Err(e) => {
                // A failed commit stops renewing its claim: unless the caller closes or
                // releases it, the claim lapses after `claim_ttl` instead of living as long as
                // the leaf.
                let _ = self.leases.drop_lease(&claim.task.0);
                span.record("commit.fork_retried_succeeded", false);
                span.record("commit.conflict", matches!(e, LeafError::Conflict { .. }));
                span.record("commit.refused", matches!(e, LeafError::Refused { .. }));
                let unrecoverable = matches!(
                    e,
                    LeafError::Conflict { .. } | LeafError::RetriesExhausted { .. }
                );
                span.record("commit.unrecoverable", unrecoverable);
            }
        }
        result
    }

    async fn commit_inner(
        &self,
        claim: &Claim,
        files: Vec<(String, Vec<u8>)>,
        tries: &mut Attempts,
    ) -> Result<CommitOutcome, LeafError> {
        let started = Instant::now();
        let id = claim.task.0.clone();
        let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
        paths::validate(&self.slot, &paths)?;
        // A resumed claim looks for its commit on the trunk first: accepted before the leaf
        // stopped, it is recorded whatever became of the lease since (the hub accepted it
        // under a live claim; pushing again would land the task twice).
        if claim.resumed
            && self.replay_guard
            && let Some(oid) = self.landed_before(claim).await?
        {
            add(&self.counters.commits, 1);
            self.record_landed(&id, claim.epoch, &oid, &oid, 0).await?;
            return Ok(CommitOutcome {
                pushed: oid.clone(),
                oid,
                fork_retries: 0,
                latency: started.elapsed(),
            });
        }
        self.check_epoch(claim).await?;
        if !self.leases.holds(&id) {
            // A claim taken up again after a restart, or committed again after a failed
            // commit (which stopped renewing it): keep its lease alive from here on.
            self.leases
                .hold(&self.bus, &id, claim.epoch, &self.id, self.claim_ttl);
        }
        if self.policy == SyncPolicy::OnDemand && self.sync_ctx.behind().is_some() {
            self.fetch_for(&id).await?;
        }
        let worker = self.worker()?;
        let work = std::sync::Arc::new(Work {
            files,
            author: self.id.clone(),
            message: format!(
                "{}: {}\n\nHerd-Claim: {}@{}\n",
                self.id, id, id, claim.epoch
            ),
        });
        self.write_work(&id, &work).await?;
        let target = match self.hub_mode {
            HubMode::Race => PushTarget::Trunk,
            HubMode::Queue => PushTarget::Queue,
        };
        let mut turn = None;
        let landed = self
            .push_until_landed(claim, target, tries, &mut turn, &work)
            .await;
        if let Some(id) = turn {
            // Give the turn back whatever happened: the others wait on it (up to its lease).
            let done = herd_bus::TurnMsg {
                kind: herd_bus::TurnKind::Done,
                leaf: self.id.clone(),
                id,
            };
            if let Err(e) = self.bus.publish_turn(&done).await {
                tracing::warn!(error = %e, "giving back the turn");
            }
        }
        let landed = landed?;
        let pushed = worker
            .run(|r| r.head().map(|o| o.to_string()))
            .await?
            .map_err(|e| LeafError::git(&id, e))?;
        let oid = landed.map_or_else(|| pushed.clone(), |o| o.to_string());
        if self.take_halt() {
            return Err(LeafError::Halted { task: id, oid });
        }
        add(&self.counters.commits, 1);
        self.record_landed(&id, claim.epoch, &oid, &pushed, tries.forks)
            .await
            .map_err(|source| LeafError::Unrecorded {
                task: id.clone(),
                oid: oid.clone(),
                source: Box::new(source),
            })?;
        Ok(CommitOutcome {
            oid,
            pushed,
            fork_retries: tries.forks,
            latency: started.elapsed(),
        })
    }

    /// Records a landed commit: the task record (fenced by the claim's epoch), then the ledger.
    async fn record_landed(
        &self,
        id: &str,
        epoch: u64,
        oid: &str,
        pushed: &str,
        retries: u32,
    ) -> Result<(), LeafError> {
        let commit = oid.to_string();
        self.update_record(id, move |r| {
            fenced(r, epoch)?;
            r.state = TaskState::Committed;
            r.commit = Some(commit.clone());
            Ok(())
        })
        .await?;
        self.ledger.set_state(
            id,
            TaskState::Committed,
            None,
            Some(oid),
            Some(u64::from(retries)),
        )?;
        if pushed != oid {
            self.ledger.set_pushed(id, pushed)?;
        }
        Ok(())
    }

    /// Pushes (rebasing after each fork) until the hub lands the commit. Returns the landed
    /// oid, or `None` when a rebase found the commit already on the trunk. In race mode with
    /// turns, waits for its turn before each push and asks for one after `turn_after` losses;
    /// `turn` holds its request for the caller to give back.
    async fn push_until_landed(
        &self,
        claim: &Claim,
        target: PushTarget,
        tries: &mut Attempts,
        turn: &mut Option<u64>,
        work: &std::sync::Arc<Work>,
    ) -> Result<Option<Oid>, LeafError> {
        let id = claim.task.0.clone();
        let worker = self.worker()?;
        let retries = &mut tries.forks;
        let redos = &mut tries.redos;
        // Unknown outcomes settled and pushed again (bounded like forks).
        let mut settles: u32 = 0;
        loop {
            if let Some(turns) = &self.turns {
                turns.wait_clear(&self.id, *turn).await;
            }
            if self.policy != SyncPolicy::OnDemand
                && let Next::Landed = self
                    .rebase_to_held_tip(claim, *retries, work, redos)
                    .await?
            {
                return Ok(None);
            }
            if let Some(pause) = self.take_push_pause() {
                self.stall_lease(claim);
                tokio::time::sleep(pause).await;
            }
            let headers = self.push_headers(claim);
            match worker
                .run(move |r| r.push(&as_refs(&headers), target))
                .await?
            {
                PushResult::Accepted { landed } => return Ok(Some(landed)),
                PushResult::Failed {
                    reason,
                    unknown: true,
                    pushed: Some(commit),
                } if self.hub_mode == HubMode::Race && settles < self.retry.max_attempts => {
                    // A cut reply: settle it from the trunk once the hub answers again.
                    settles += 1;
                    if self.settle_unknown(&id, commit).await {
                        add(&self.counters.unknown_settled, 1);
                        if self.worker()?.run(move |r| r.holds_commit(commit)).await? {
                            return Ok(Some(commit));
                        }
                        // Not on the trunk: back off (a hub answering 5xx to every push must
                        // not be hammered), then the loop rebases onto what the fetch brought
                        // and pushes again — at most `max_attempts` times.
                        tokio::time::sleep(self.retry.backoff(settles - 1)).await;
                        continue;
                    }
                    return Err(LeafError::Hub {
                        task: id,
                        reason,
                        unknown: true,
                        pushed: Some(commit.to_string()),
                    });
                }
                PushResult::Failed {
                    reason,
                    unknown,
                    pushed,
                } => {
                    return Err(LeafError::Hub {
                        task: id,
                        reason,
                        unknown,
                        pushed: pushed.map(|o| o.to_string()),
                    });
                }
                PushResult::Rejected {
                    reason,
                    kind: RefusalKind::Policy,
                    ..
                } => {
                    let err = LeafError::Refused { task: id, reason };
                    return Err(self.give_up(claim, err, *retries, false).await);
                }
                PushResult::Rejected { reason, kind, tip } => {
                    *retries += 1;
                    add(&self.counters.fork_retries, 1);
                    self.ledger.event(Some(&id), "fork_retry", Some(&reason))?;
                    if *retries >= self.retry.max_attempts {
                        let err = LeafError::RetriesExhausted {
                            task: id,
                            attempts: *retries,
                        };
                        return Err(self.give_up(claim, err, *retries, true).await);
                    }
                    if self.turns.is_some() && turn.is_none() && *retries >= self.turn_after {
                        *turn = self.request_turn().await;
                    }
                    self.get_tip(&id, kind, tip, *retries).await?;
                    if let Next::Landed = self
                        .rebase_to_held_tip(claim, *retries, work, redos)
                        .await?
                    {
                        return Ok(None);
                    }
                    self.check_epoch(claim).await?;
                }
            }
        }
    }

    /// After a push whose outcome is unknown: fetches the trunk (with backoff) until the hub
    /// answers, up to `resolve_wait`. True when a fetch succeeded — the leaf then holds a tip
    /// at least as new as anything the lost push could have made. In race mode a second push
    /// is then safe: both carry a compare-and-swap, so at most one lands, and a rebase onto a
    /// tip holding the first finds it landed.
    async fn settle_unknown(&self, task: &str, commit: Oid) -> bool {
        let _ = self
            .ledger
            .event(Some(task), "push_unknown", Some(&commit.to_string()));
        let deadline = tokio::time::Instant::now() + self.resolve_wait;
        let mut attempt = 0;
        loop {
            if self.fetch_for(task).await.is_ok() {
                return true;
            }
            let pause = self.retry.backoff(attempt);
            attempt += 1;
            if tokio::time::Instant::now() + pause > deadline {
                return false;
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// The trunk commit carrying `claim`'s `Herd-Claim` trailer, if one landed (after a fetch,
    /// so the leaf holds the trunk's newest tip).
    async fn landed_before(&self, claim: &Claim) -> Result<Option<String>, LeafError> {
        let id = claim.task.0.clone();
        self.fetch_for(&id).await?;
        let trailer = format!("{}: {}@{}", herd_hub::fence::CLAIM_TRAILER, id, claim.epoch);
        let found = self
            .worker()?
            .run(move |r| r.find_trailer(&trailer))
            .await?
            .map_err(|e| LeafError::git(&id, e))?;
        Ok(found.map(|o| o.to_string()))
    }

    /// Joins the turn queue; returns the request id. The queue is advisory: when the request
    /// cannot be published (the bus is down) the leaf goes on without a turn, as with plain
    /// backoff, rather than fail the commit.
    async fn request_turn(&self) -> Option<u64> {
        let id = self
            .next_turn
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let msg = herd_bus::TurnMsg {
            kind: herd_bus::TurnKind::Request,
            leaf: self.id.clone(),
            id,
        };
        match self.bus.publish_turn(&msg).await {
            Ok(()) => {
                add(&self.counters.turns_requested, 1);
                Some(id)
            }
            Err(e) => {
                tracing::warn!(leaf = %self.id, error = %e, "asking for a turn; going on without one");
                None
            }
        }
    }

    /// After a fork: make the leaf hold the trunk tip the hub named (or, when it named none,
    /// any tip newer than the commit's base).
    async fn get_tip(
        &self,
        task: &str,
        kind: RefusalKind,
        tip: Option<Oid>,
        retries: u32,
    ) -> Result<(), LeafError> {
        if self.policy == SyncPolicy::Payload && kind == RefusalKind::Fork {
            // With turns the queue paces the retries; with plain backoff, back off first.
            if self.turns.is_none() && self.hub_mode == HubMode::Race {
                tokio::time::sleep(self.retry.backoff(retries.saturating_sub(1))).await;
            }
            let worker = self.worker()?;
            let base = worker.run(|r| r.built_base()).await?;
            if self.reach(tip, base).await? {
                return Ok(());
            }
        } else {
            tokio::time::sleep(self.retry.backoff(retries.saturating_sub(1))).await;
        }
        self.fetch_for(task).await
    }

    /// Waits until the leaf holds `tip` (or a tip other than `base`), up to `tip_wait`.
    async fn reach(&self, tip: Option<Oid>, base: Option<Oid>) -> Result<bool, LeafError> {
        let deadline = tokio::time::Instant::now() + self.tip_wait;
        let mut rx = self.tip_rx.clone();
        loop {
            let current = *rx.borrow_and_update();
            let done = match tip {
                Some(t) if current == Some(t) => true,
                Some(t) if current != base => {
                    self.worker()?.run(move |r| r.holds_commit(t)).await?
                }
                Some(_) => false,
                None => current != base,
            };
            if done {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Ok(false);
            }
        }
    }

    /// Fetches for the commit path (counted apart from broadcast-driven pulls).
    async fn fetch_for(&self, task: &str) -> Result<(), LeafError> {
        add(&self.counters.commit_fetches, 1);
        let announced = self.sync_ctx.newest_seq();
        crate::tip_sync::fetch(&self.sync_ctx)
            .await
            .map_err(|reason| LeafError::Hub {
                task: task.to_string(),
                reason,
                unknown: false,
                pushed: None,
            })?;
        // The fetch reached the trunk's tip: nothing announced before it is still owed, even a
        // tip the trunk never had (a forged or replayed broadcast must not cost a fetch per
        // commit forever).
        self.sync_ctx.fetched_past(announced);
        Ok(())
    }

    /// Writes the task's files and commits them on the trunk tip the leaf holds.
    async fn write_work(&self, task: &str, work: &std::sync::Arc<Work>) -> Result<(), LeafError> {
        if self.writes_fail() {
            return Err(LeafError::Io {
                what: "writing the task's work",
                path: self.slot.clone(),
                // ENOSPC, as the kernel reports a full disk.
                source: std::io::Error::from_raw_os_error(28),
            });
        }
        let w = work.clone();
        self.worker()?
            .run(move |r| r.commit_files(&w.files, &w.author, &w.message))
            .await?
            .map(|_| ())
            .map_err(|e| LeafError::git(task, e))
    }

    /// Rebases the commit being pushed onto the newest tip the leaf holds, if that moved. A
    /// content conflict redoes the task on that tip while the conflict budget lasts (the rule:
    /// the work is written again against what the trunk holds now), then fails it.
    async fn rebase_to_held_tip(
        &self,
        claim: &Claim,
        retries: u32,
        work: &std::sync::Arc<Work>,
        redos: &mut u32,
    ) -> Result<Next, LeafError> {
        let id = claim.task.0.clone();
        let rebased = self
            .worker()?
            .run(|r| match (r.origin_tip(), r.built_base()) {
                (Ok(tip), Some(base)) if tip != base => r.rebase_onto(tip).map(Some),
                _ => Ok(None),
            })
            .await?
            .map_err(|e| LeafError::git(&id, e))?;
        match rebased {
            None | Some(Rebased::Onto(_)) => Ok(Next::Push),
            Some(Rebased::Landed) => Ok(Next::Landed),
            Some(Rebased::Conflict(paths)) => {
                add(&self.counters.conflicts, 1);
                if *redos >= self.conflict_redos {
                    let err = LeafError::Conflict {
                        task: id,
                        paths,
                        redos: *redos,
                    };
                    return Err(self.give_up(claim, err, retries, true).await);
                }
                *redos += 1;
                add(&self.counters.conflict_redos, 1);
                self.ledger
                    .event(Some(&id), "conflict_redo", Some(&paths.join(" ")))?;
                self.write_work(&id, work).await?;
                Ok(Next::Push)
            }
        }
    }

    /// The task cannot land: a fork that cannot be recovered (a content conflict, or a push
    /// that kept losing until the retry budget ran out) or a policy refusal. The task fails and
    /// its claim is released so others may take it.
    async fn give_up(&self, claim: &Claim, err: LeafError, retries: u32, fork: bool) -> LeafError {
        let id = claim.task.0.clone();
        let counter = if fork {
            &self.counters.fork_unrecoverable
        } else {
            &self.counters.policy_refusals
        };
        add(counter, 1);
        let kind = if fork {
            "fork_unrecoverable"
        } else {
            "refused"
        };
        let _ = self.ledger.event(Some(&id), kind, Some(&err.to_string()));
        let revision = self.leases.drop_lease(&id).unwrap_or(claim.epoch);
        let epoch = claim.epoch;
        let _ = self
            .update_record(&id, move |r| {
                fenced(r, epoch)?;
                r.state = TaskState::Failed;
                Ok(())
            })
            .await;
        let _ = self
            .ledger
            .set_state(&id, TaskState::Failed, None, None, Some(u64::from(retries)));
        let _ = self.bus.release_at(&id, claim.epoch, revision).await;
        err
    }

    fn push_headers(&self, claim: &Claim) -> Vec<(String, String)> {
        let mut headers = vec![
            ("x-herd-slot".to_string(), self.slot.clone()),
            // Lets a fencing hub read the claim before the push waits for its store.
            (
                herd_hub::fence::CLAIM_HEADER.to_string(),
                format!("{}@{}", claim.task.0, claim.epoch),
            ),
        ];
        if let Some(token) = &self.hub_token {
            headers.push(("authorization".to_string(), format!("Bearer {token}")));
        }
        if let Some(tp) = herd_bus::trace::current_traceparent() {
            headers.push(("traceparent".to_string(), tp));
        }
        headers
    }
}

fn as_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
