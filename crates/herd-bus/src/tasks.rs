//! Task records in bucket `herd-tasks`: key = task id, value = [`TaskRecord`] as JSON.
//!
//! Every change after creation is a compare-and-swap on the key's revision
//! ([`Bus::update_task`]); a writer that lost the race gets [`BusError::Conflict`] and must
//! re-read, so two leaves can never silently overwrite each other's state transition.

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, Settled, TASKS_BUCKET, write_settling};
use crate::error::{BusError, Result};

/// Where a task is in its life: open → claimed → committed → closed (or released / failed).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Recorded, nobody works on it.
    Open,
    /// A leaf holds the claim.
    Claimed,
    /// Its commit is on the trunk.
    Committed,
    /// Done and its claim released.
    Closed,
    /// Abandoned; the claim was released and the task may be claimed again.
    Released,
    /// Gave up (e.g. an unrecoverable conflict).
    Failed,
}

impl TaskState {
    /// The lowercase name used in JSON, the ledger and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Open => "open",
            TaskState::Claimed => "claimed",
            TaskState::Committed => "committed",
            TaskState::Closed => "closed",
            TaskState::Released => "released",
            TaskState::Failed => "failed",
        }
    }
}

/// The shared record of one task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaskRecord {
    /// Task id (a valid KV key).
    pub id: String,
    /// Human title.
    pub title: String,
    /// The leaf that opened it (or last moved it).
    pub leaf: String,
    /// The slot directory the task writes in.
    pub slot: String,
    /// Paths the task will write, relative to the repository root.
    pub paths: Vec<String>,
    /// Current state.
    pub state: TaskState,
    /// The claim epoch (claim revision) of the current or last holder.
    pub epoch: Option<u64>,
    /// The trunk commit, once committed.
    pub commit: Option<String>,
    /// Last change, ms since the Unix epoch.
    pub updated: u64,
}

impl Bus {
    /// Records a new task. [`BusError::TaskExists`] if the id is taken. A create whose reply
    /// was lost is settled by reading the key back (see [`write_settling`]).
    pub async fn create_task(&self, record: &TaskRecord) -> Result<u64> {
        check_key(TASKS_BUCKET, &record.id)?;
        let value = encode(record)?;
        let exists = || BusError::TaskExists {
            task: record.id.clone(),
        };
        let create = || async {
            self.tasks
                .create(&record.id, value.clone().into())
                .await
                .map_err(|e| match e.kind() {
                    CreateErrorKind::AlreadyExists => exists(),
                    _ => key_err(&record.id, "create", Box::new(e)),
                })
        };
        let settle = || async {
            Ok(match self.task(&record.id).await? {
                Some((now, revision)) if now == *record => Settled::Done(revision),
                Some(_) => Settled::Lost(exists()),
                None => Settled::Again,
            })
        };
        write_settling(create, settle).await
    }

    /// The task record and its revision, if it exists (deleted records read as absent).
    pub async fn task(&self, id: &str) -> Result<Option<(TaskRecord, u64)>> {
        check_key(TASKS_BUCKET, id)?;
        let entry = crate::bus::read_retrying(|| async {
            self.tasks
                .entry(id)
                .await
                .map_err(|e| key_err(id, "read", Box::new(e)))
        })
        .await?;
        match entry {
            Some(e) if e.operation == Operation::Put => {
                let record =
                    serde_json::from_slice(&e.value).map_err(|source| BusError::Decode {
                        what: format!("{TASKS_BUCKET}/{id}"),
                        source,
                    })?;
                Ok(Some((record, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Replaces the record if the key is still at `expected_revision`; returns the new revision.
    /// An update whose reply was lost is settled by reading the key back.
    pub async fn update_task(&self, record: &TaskRecord, expected_revision: u64) -> Result<u64> {
        check_key(TASKS_BUCKET, &record.id)?;
        let value = encode(record)?;
        let conflict = || BusError::Conflict {
            bucket: TASKS_BUCKET,
            key: record.id.clone(),
            expected: expected_revision,
        };
        let update = || async {
            self.tasks
                .update(&record.id, value.clone().into(), expected_revision)
                .await
                .map_err(|e| match e.kind() {
                    UpdateErrorKind::WrongLastRevision => conflict(),
                    _ => key_err(&record.id, "update", Box::new(e)),
                })
        };
        let settle = || async {
            Ok(match self.task(&record.id).await? {
                Some((now, revision)) if now == *record => Settled::Done(revision),
                Some((_, revision)) if revision == expected_revision => Settled::Again,
                _ => Settled::Lost(conflict()),
            })
        };
        write_settling(update, settle).await
    }
}

fn encode(record: &TaskRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|source| BusError::Decode {
        what: format!("{TASKS_BUCKET}/{}", record.id),
        source,
    })
}

fn key_err(key: &str, op: &'static str, source: crate::error::Cause) -> BusError {
    BusError::Key {
        bucket: TASKS_BUCKET,
        key: key.to_string(),
        op,
        source,
    }
}

/// Rejects keys NATS KV cannot hold, before a round trip and with the bucket named.
pub(crate) fn check_key(bucket: &'static str, key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidKey {
            bucket,
            key: key.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_before_any_round_trip() {
        assert!(check_key(TASKS_BUCKET, "slot-3.t0001").is_ok());
        for bad in ["", ".x", "x.", "a b", "a*b", "a>b", "ü"] {
            assert!(
                matches!(
                    check_key(TASKS_BUCKET, bad),
                    Err(BusError::InvalidKey { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn state_names_match_serde() {
        for s in [
            TaskState::Open,
            TaskState::Claimed,
            TaskState::Committed,
            TaskState::Closed,
            TaskState::Released,
            TaskState::Failed,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
