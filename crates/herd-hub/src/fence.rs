//! Fencing at the resource: with [`crate::HubConfig::fence_claims`], every pushed commit must
//! carry the trailer `Herd-Claim: <task>@<epoch>` naming the task's *live* claim — checked
//! against the claims bucket on the store thread, after the policy and before the ref moves.
//! A leaf whose lease lapsed (a pause, a partition) and whose task another leaf took over
//! cannot land its stale work, whatever it believes. An epoch below one the hub already
//! accepted for the task is refused too, and the accepted epoch is recorded before the ref
//! moves. The live epoch is read when the push arrives ([`CLAIM_HEADER`]) — again on the store
//! thread if that read is over a second old by then — or, for a task the header does not name,
//! on the store thread; a claim can still move in the moments between the read and the ref
//! update, and epochs only move forward.

use std::collections::HashMap;
use std::sync::Mutex;

use git2::{Oid, Repository};

use crate::refusal::Refusal;

/// The trailer's key.
pub const CLAIM_TRAILER: &str = "Herd-Claim";

/// Header a pusher may send naming the claim its commits carry (`<task>@<epoch>`): the hub
/// reads that claim's live epoch from the bus as the push arrives, before it waits for the
/// store thread, so fencing costs the serial path no bus round trip. The trailers still decide;
/// a commit naming another task is checked against the bus on the store thread.
pub const CLAIM_HEADER: &str = "x-herd-claim";

/// A claim named by [`CLAIM_HEADER`] and its live epoch when the push arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimHint {
    /// The task.
    pub task: String,
    /// Its live claim's epoch (`None`: unclaimed).
    pub live: Option<u64>,
    /// When it was read (a stale read is done again on the store thread).
    pub read_at: std::time::Instant,
}

/// `(task, epoch)` of a `<task>@<epoch>` value.
pub fn parse_claim(value: &str) -> Option<(String, u64)> {
    let (task, epoch) = value.trim().rsplit_once('@')?;
    if task.is_empty() {
        return None;
    }
    Some((task.to_string(), epoch.parse().ok()?))
}

/// The highest epoch accepted per task.
#[derive(Default)]
pub(crate) struct Fences {
    accepted: Mutex<HashMap<String, u64>>,
}

/// `(task, epoch)` of a commit message's last `Herd-Claim:` trailer.
pub fn claim_trailer(message: &str) -> Option<(String, u64)> {
    message
        .lines()
        .rev()
        .find_map(|line| parse_claim(line.strip_prefix(CLAIM_TRAILER)?.strip_prefix(':')?))
}

impl Fences {
    /// Checks every commit of `chain` against the live claims (read with `live`: the claim's
    /// epoch, `None` when unclaimed).
    pub fn check(
        &self,
        repo: &Repository,
        chain: &[Oid],
        live: &dyn Fn(&str) -> Result<Option<u64>, String>,
    ) -> Result<(), Refusal> {
        let mut seen = Vec::new();
        for oid in chain {
            let commit = repo
                .find_commit(*oid)
                .map_err(|_| Refusal::MissingObjects { oid: *oid })?;
            let message = String::from_utf8_lossy(commit.message_bytes());
            let (task, epoch) = claim_trailer(&message).ok_or(Refusal::NoClaim { oid: *oid })?;
            let current =
                live(&task).map_err(|e| Refusal::Storage(format!("reading claim: {e}")))?;
            let highest = self
                .accepted
                .lock()
                .expect("fence lock")
                .get(&task)
                .copied();
            if current != Some(epoch) || highest.is_some_and(|h| epoch < h) {
                return Err(Refusal::StaleClaim {
                    task,
                    epoch,
                    live: current,
                });
            }
            seen.push((task, epoch));
        }
        let mut accepted = self.accepted.lock().expect("fence lock");
        for (task, epoch) in seen {
            let e = accepted.entry(task).or_insert(epoch);
            *e = (*e).max(epoch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_parse_and_the_last_one_wins() {
        assert_eq!(
            claim_trailer("leaf-1: t\n\nHerd-Claim: leaf-1.t0003@42\n"),
            Some(("leaf-1.t0003".into(), 42))
        );
        assert_eq!(
            claim_trailer("x\n\nHerd-Claim: a@1\nHerd-Claim: b@2"),
            Some(("b".into(), 2))
        );
        assert_eq!(claim_trailer("no trailer"), None);
        assert_eq!(claim_trailer("Herd-Claim: a@x"), None);
    }
}
