//! The commit path of a leaf: write, commit, push, and on a fork fetch, rebase and retry —
//! bounded and jittered — until the hub accepts, the fork proves unrecoverable, or the claim
//! is no longer live.

use std::time::Instant;

use herd_bus::TaskState;

use super::{Claim, CommitOutcome, InstrumentIn, Leaf};
use crate::error::LeafError;
use crate::git_ops::{PushResult, Rebased};
use crate::paths;
use crate::stats::add;

impl Leaf {
    /// Is `claim` still the live claim of its task?
    async fn check_epoch(&self, claim: &Claim) -> Result<(), LeafError> {
        let id = claim.task.0.as_str();
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
            commit.fork_retries = tracing::field::Empty,
            commit.fork_retried = tracing::field::Empty,
            commit.fork_retried_succeeded = tracing::field::Empty,
            commit.conflict = tracing::field::Empty,
            commit.unrecoverable = tracing::field::Empty,
        );
        let mut retries: u32 = 0;
        let result = self
            .commit_inner(claim, files, &mut retries)
            .instrument_in(span.clone())
            .await;
        // Recorded on every exit, so spans count exactly what the leaf counted.
        span.record("commit.fork_retries", retries);
        span.record("commit.fork_retried", retries > 0);
        match &result {
            Ok(outcome) => {
                span.record("commit.oid", outcome.oid.as_str());
                span.record("commit.fork_retried_succeeded", retries > 0);
            }
            Err(e) => {
                span.record("commit.fork_retried_succeeded", false);
                span.record("commit.conflict", matches!(e, LeafError::Conflict { .. }));
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
        retries: &mut u32,
    ) -> Result<CommitOutcome, LeafError> {
        let started = Instant::now();
        let id = claim.task.0.clone();
        let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
        paths::validate(&self.slot, &paths)?;
        self.check_epoch(claim).await?;
        let worker = self.worker()?;
        let (author, message) = (
            self.id.clone(),
            format!(
                "{}: {}\n\nHerd-Claim: {}@{}\n",
                self.id, id, id, claim.epoch
            ),
        );
        worker
            .run(move |r| r.commit_files(&files, &author, &message))
            .await?
            .map_err(|e| LeafError::git(&id, e))?;
        loop {
            let headers = self.push_headers();
            match worker.run(move |r| r.push(&as_refs(&headers))).await? {
                PushResult::Accepted => break,
                PushResult::Failed { reason, unknown } => {
                    return Err(LeafError::Hub {
                        task: id,
                        reason,
                        unknown,
                    });
                }
                PushResult::Rejected(reason) => {
                    *retries += 1;
                    add(&self.counters.fork_retries, 1);
                    self.ledger.event(Some(&id), "fork_retry", Some(&reason))?;
                    if *retries >= self.retry.max_attempts {
                        let err = LeafError::RetriesExhausted {
                            task: id,
                            attempts: *retries,
                        };
                        return Err(self.unrecoverable(claim, err, *retries).await);
                    }
                    tokio::time::sleep(self.retry.backoff(*retries - 1)).await;
                    let headers = self.push_headers();
                    match worker
                        .run(move |r| r.fetch_and_rebase(&as_refs(&headers)))
                        .await?
                        .map_err(|e| LeafError::git(&id, e))?
                    {
                        Rebased::Onto(_) => self.check_epoch(claim).await?,
                        Rebased::Landed => break,
                        Rebased::Conflict(paths) => {
                            let err = LeafError::Conflict { task: id, paths };
                            return Err(self.unrecoverable(claim, err, *retries).await);
                        }
                    }
                }
            }
        }
        let oid = worker
            .run(|r| r.head().map(|o| o.to_string()))
            .await?
            .map_err(|e| LeafError::git(&id, e))?;
        add(&self.counters.commits, 1);
        let commit = oid.clone();
        self.update_record(&id, move |r| {
            r.state = TaskState::Committed;
            r.commit = Some(commit.clone());
        })
        .await?;
        self.ledger.set_state(
            &id,
            TaskState::Committed,
            None,
            Some(&oid),
            Some(u64::from(*retries)),
        )?;
        Ok(CommitOutcome {
            oid,
            fork_retries: *retries,
            latency: started.elapsed(),
        })
    }

    /// A fork that cannot be recovered (a content conflict, or a push that kept losing until the
    /// retry budget ran out): the task fails, its claim is released so others may take it.
    async fn unrecoverable(&self, claim: &Claim, err: LeafError, retries: u32) -> LeafError {
        let id = claim.task.0.clone();
        add(&self.counters.fork_unrecoverable, 1);
        let _ = self
            .ledger
            .event(Some(&id), "fork_unrecoverable", Some(&err.to_string()));
        let _ = self
            .update_record(&id, |r| r.state = TaskState::Failed)
            .await;
        let _ = self
            .ledger
            .set_state(&id, TaskState::Failed, None, None, Some(u64::from(retries)));
        let _ = self.bus.release(&id, claim.epoch).await;
        err
    }

    fn push_headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("x-herd-slot".to_string(), self.slot.clone())];
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
