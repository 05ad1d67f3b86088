//! Claims: who works on a task. Key = task id in bucket `herd-claims`; a successful create wins.
//!
//! The create is a compare-and-swap on the key's last revision (0, or the revision of the delete
//! marker a release or an expiry left), so exactly one of any number of concurrent claimers wins.
//! The winning revision is the claim's **epoch**: it only grows, so it works as a fencing token.
//! The lease is a per-message TTL (`Nats-TTL`, whole seconds, at least 1 s) on the claim entry.
//! A holder renews it ([`Bus::renew`]) by re-writing the entry (a CAS on its current revision)
//! with the same record and `epoch` set to the claim's first revision, so the epoch a holder
//! and the hub's fencing check compare never changes while the claim lives.
//! async-nats' own `create_with_ttl` drops the TTL when it re-creates a deleted key, so the CAS
//! publish is done here directly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, CLAIMS_BUCKET, Settled, write_settling};
use crate::error::{BusError, Result};
use crate::tasks::check_key;

/// The value stored under a claimed task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The leaf holding the claim.
    pub leaf: String,
    /// The claimed task.
    pub task: String,
    /// When it was claimed, ms since the Unix epoch.
    pub at: u64,
    /// The lease in whole seconds, as the server applies it (so a dump shows the interval).
    #[serde(default)]
    pub ttl_secs: u64,
    /// On a renewal: the claim's epoch (its first revision). Absent on the first write, whose
    /// own revision is the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

impl ClaimRecord {
    /// The claim's epoch, given the revision this record was read at. A renewal's record names
    /// its epoch itself; a value above the record's own revision cannot be one (a writer could
    /// otherwise name `u64::MAX` and make every real epoch look stale to a fencing hub), so the
    /// revision stands instead. Whoever may write claims can still overwrite a live one with
    /// compare-and-swap — a malicious leaf, beyond what epochs can stop (docs/security.md).
    pub fn epoch_at(&self, revision: u64) -> u64 {
        self.epoch.filter(|e| *e <= revision).unwrap_or(revision)
    }
}

/// The result of [`Bus::try_claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This leaf holds the claim; `revision` is its epoch.
    Won {
        /// The claim entry's KV revision.
        revision: u64,
    },
    /// Another leaf holds it.
    Lost {
        /// The holder's leaf id.
        holder: String,
    },
}

/// Attempts of read-then-CAS before giving up on a key that keeps changing under us.
const CLAIM_ROUNDS: u32 = 4;

impl Bus {
    /// Claims `task` for `leaf` with a lease of `ttl` (rounded up to whole seconds, minimum 1 s).
    pub async fn try_claim(&self, task: &str, leaf: &str, ttl: Duration) -> Result<ClaimOutcome> {
        check_key(CLAIMS_BUCKET, task)?;
        let record = ClaimRecord {
            leaf: leaf.to_string(),
            task: task.to_string(),
            at: now_ms(),
            ttl_secs: ttl_secs(ttl),
            epoch: None,
        };
        let value = serde_json::to_vec(&record).map_err(|source| decode_err(task, source))?;
        for _ in 0..CLAIM_ROUNDS {
            let expected = match self.claim_entry(task).await? {
                Current::Free { revision } => revision,
                // Our own write, landed by a try whose reply was lost.
                Current::Held {
                    record: held,
                    revision,
                } if held == record => {
                    return Ok(ClaimOutcome::Won {
                        revision: held.epoch_at(revision),
                    });
                }
                Current::Held { record, .. } => {
                    return Ok(ClaimOutcome::Lost {
                        holder: record.leaf,
                    });
                }
            };
            let publish = || async {
                let revision = self
                    .cas_publish(task, expected, ttl, value.clone(), "claim")
                    .await?;
                Ok(ClaimOutcome::Won { revision })
            };
            // A lost race is settled here too: its read names the winner.
            let settle = || async {
                Ok(match self.claim_entry(task).await? {
                    Current::Held {
                        record: held,
                        revision,
                    } if held == record => Settled::Done(ClaimOutcome::Won { revision }),
                    Current::Held { record: held, .. } => {
                        Settled::Done(ClaimOutcome::Lost { holder: held.leaf })
                    }
                    Current::Free { revision } if revision == expected => Settled::Again,
                    Current::Free { .. } => Settled::Lost(moved(task, expected)),
                })
            };
            match write_settling(publish, settle).await {
                Err(BusError::Conflict { .. }) => continue,
                outcome => return outcome,
            }
        }
        match self.claim_entry(task).await? {
            Current::Held { record, .. } => Ok(ClaimOutcome::Lost {
                holder: record.leaf,
            }),
            Current::Free { revision } => Err(BusError::Conflict {
                bucket: CLAIMS_BUCKET,
                key: task.into(),
                expected: revision,
            }),
        }
    }

    /// Releases the claim on `task` if it is still the one of `epoch`. Returns `false` when the
    /// claim had already lapsed or moved on (nothing is changed then).
    pub async fn release(&self, task: &str, epoch: u64) -> Result<bool> {
        check_key(CLAIMS_BUCKET, task)?;
        let revision = match self.claim_entry(task).await? {
            Current::Held { record, revision } if record.epoch_at(revision) == epoch => revision,
            _ => return Ok(false),
        };
        match self.delete_claim(task, revision).await {
            Ok(()) => Ok(true),
            Err(BusError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// [`release`](Self::release) in one request when the holder knows the claim's latest
    /// revision (its epoch, or its last renewal): a delete expecting that revision. When the
    /// claim moved since, falls back to reading it.
    pub async fn release_at(&self, task: &str, epoch: u64, revision: u64) -> Result<bool> {
        check_key(CLAIMS_BUCKET, task)?;
        match self.delete_claim(task, revision).await {
            Ok(()) => Ok(true),
            Err(BusError::Conflict { .. }) => self.release(task, epoch).await,
            Err(e) => Err(e),
        }
    }

    /// Deletes the claim if it is still at `revision` ([`BusError::Conflict`] if not). A
    /// delete whose reply was lost is settled by reading the key back: a claim that is gone
    /// is released.
    async fn delete_claim(&self, task: &str, revision: u64) -> Result<()> {
        let delete = || async {
            match self
                .claims
                .delete_expect_revision(task, Some(revision))
                .await
            {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    Err(moved(task, revision))
                }
                Err(e) => Err(BusError::Key {
                    bucket: CLAIMS_BUCKET,
                    key: task.into(),
                    op: "release",
                    source: Box::new(e),
                }),
            }
        };
        let settle = || async {
            Ok(match self.claim_entry(task).await? {
                Current::Free { .. } => Settled::Done(()),
                Current::Held { revision: now, .. } if now == revision => Settled::Again,
                Current::Held { .. } => Settled::Lost(moved(task, revision)),
            })
        };
        write_settling(delete, settle).await
    }

    /// Renews `leaf`'s claim of `epoch` on `task` for another `ttl`: the claim's new revision,
    /// or `None` when the claim lapsed or moved on meanwhile (the holder has lost it and must
    /// not push).
    pub async fn renew(
        &self,
        task: &str,
        epoch: u64,
        leaf: &str,
        ttl: Duration,
    ) -> Result<Option<u64>> {
        check_key(CLAIMS_BUCKET, task)?;
        let (mut record, revision) = match self.claim_entry(task).await? {
            Current::Held { record, revision }
                if record.epoch_at(revision) == epoch && record.leaf == leaf =>
            {
                (record, revision)
            }
            _ => return Ok(None),
        };
        record.epoch = Some(epoch);
        record.at = now_ms();
        record.ttl_secs = ttl_secs(ttl);
        let value = serde_json::to_vec(&record).map_err(|source| decode_err(task, source))?;
        let publish = || self.cas_publish(task, revision, ttl, value.clone(), "renew");
        let settle = || async {
            Ok(match self.claim_entry(task).await? {
                Current::Held {
                    record: held,
                    revision: now,
                } if held == record => Settled::Done(now),
                Current::Held { revision: now, .. } if now == revision => Settled::Again,
                _ => Settled::Lost(moved(task, revision)),
            })
        };
        match write_settling(publish, settle).await {
            Ok(revision) => Ok(Some(revision)),
            Err(BusError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The live claim on `task` and its epoch, if any (see [`ClaimRecord::epoch_at`]).
    pub async fn claim(&self, task: &str) -> Result<Option<(ClaimRecord, u64)>> {
        check_key(CLAIMS_BUCKET, task)?;
        Ok(match self.claim_entry(task).await? {
            Current::Held { record, revision } => {
                let epoch = record.epoch_at(revision);
                Some((record, epoch))
            }
            Current::Free { .. } => None,
        })
    }

    async fn claim_entry(&self, task: &str) -> Result<Current> {
        let entry = crate::bus::read_retrying(|| async {
            self.claims.entry(task).await.map_err(|e| BusError::Key {
                bucket: CLAIMS_BUCKET,
                key: task.into(),
                op: "read",
                source: Box::new(e),
            })
        })
        .await?;
        Ok(match entry {
            None => Current::Free { revision: 0 },
            Some(e) if matches!(e.operation, Operation::Delete | Operation::Purge) => {
                Current::Free {
                    revision: e.revision,
                }
            }
            Some(e) => {
                let record =
                    serde_json::from_slice(&e.value).map_err(|source| decode_err(task, source))?;
                Current::Held {
                    record,
                    revision: e.revision,
                }
            }
        })
    }

    /// Publishes `value` as the claim entry if the key is still at `expected`
    /// ([`BusError::Conflict`] if not), with the lease as the message's TTL.
    async fn cas_publish(
        &self,
        task: &str,
        expected: u64,
        ttl: Duration,
        value: Vec<u8>,
        op: &'static str,
    ) -> Result<u64> {
        let key_err = |source: crate::error::Cause| BusError::Key {
            bucket: CLAIMS_BUCKET,
            key: task.into(),
            op,
            source,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        headers.insert("Nats-TTL", ttl_secs(ttl).to_string().as_str());
        let subject = self.kv_subject(CLAIMS_BUCKET, task);
        let ack = self
            .js
            .publish_with_headers(subject, headers, value.into())
            .await
            .map_err(|e| key_err(Box::new(e)))?;
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(moved(task, expected)),
            Err(e) => Err(key_err(Box::new(e))),
        }
    }
}

enum Current {
    Free { revision: u64 },
    Held { record: ClaimRecord, revision: u64 },
}

/// The claim on `task` is no longer at the `expected` revision.
fn moved(task: &str, expected: u64) -> BusError {
    BusError::Conflict {
        bucket: CLAIMS_BUCKET,
        key: task.into(),
        expected,
    }
}

/// The lease in the whole seconds the server understands (`Nats-TTL`), at least 1.
pub fn ttl_secs(ttl: Duration) -> u64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    secs.max(1)
}

fn decode_err(task: &str, source: serde_json::Error) -> BusError {
    BusError::Decode {
        what: format!("{CLAIMS_BUCKET}/{task}"),
        source,
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::ttl_secs;
    use std::time::Duration;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(ttl_secs(Duration::ZERO), 1);
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::from_secs(30)), 30);
    }
}
