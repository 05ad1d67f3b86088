//! Reading back a bucket's stored history, every key and every revision still on the server,
//! for the history checker (`kv-tasks.jsonl`, `kv-claims.jsonl`). Revisions that expired (each
//! claim write carries its lease as a TTL) are gone from the server and so from the dump, so a
//! [`BucketRecorder`] follows the bucket while the run goes on and keeps every revision as it
//! is written; [`merge`] joins what it saw with the final dump.

use serde::{Deserialize, Serialize};

use crate::bus::Bus;
use crate::error::{BusError, Result};

/// One stored revision of one key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KvRecord {
    /// The key.
    pub key: String,
    /// Its revision (the stream sequence).
    pub revision: u64,
    /// `put`, `del` or `purge`.
    pub operation: String,
    /// The value as JSON (null for deletes, or when it is not JSON).
    pub value: serde_json::Value,
    /// Server time of the write, ms since the Unix epoch.
    pub created_ms: u64,
    /// Why the server wrote a marker (`MaxAge` for a lapsed TTL), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker_reason: Option<String>,
}

impl Bus {
    /// Every stored revision of bucket `bucket` (`herd-tasks` or `herd-claims`), oldest first.
    pub async fn dump_bucket(&self, bucket: &'static str) -> Result<Vec<KvRecord>> {
        let err = |op, e: crate::error::Cause| BusError::Bucket {
            bucket,
            op,
            source: e,
        };
        let stream_name = format!("KV_{bucket}");
        let stream = self
            .js
            .get_stream(&stream_name)
            .await
            .map_err(|e| err("bind stream", Box::new(e)))?;
        let info = stream
            .get_info()
            .await
            .map_err(|e| err("stream info", Box::new(e)))?;
        let prefix = format!("$KV.{bucket}.");
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return Ok(out);
        }
        for seq in info.state.first_sequence..=info.state.last_sequence {
            // Gaps are revisions that expired or were purged; they have no message any more.
            let Ok(m) = stream.get_raw_message(seq).await else {
                continue;
            };
            out.push(record(
                &prefix,
                m.subject.as_str(),
                &m.headers,
                &m.payload,
                m.sequence,
                m.time,
            ));
        }
        Ok(out)
    }

    /// Starts following bucket `bucket` from its first stored revision: every revision written
    /// from now on is kept, even one that expires before the run ends.
    pub async fn record_bucket(&self, bucket: &'static str) -> Result<BucketRecorder> {
        use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
        use futures::StreamExt;
        let err = |op, e: crate::error::Cause| BusError::Bucket {
            bucket,
            op,
            source: e,
        };
        let stream = self
            .js
            .get_stream(format!("KV_{bucket}"))
            .await
            .map_err(|e| err("bind stream", Box::new(e)))?;
        let prefix = format!("$KV.{bucket}.");
        let mut messages = stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("{prefix}>"),
                deliver_policy: DeliverPolicy::All,
                max_expires: crate::bus::PULL_MAX_EXPIRES,
                ..Default::default()
            })
            .await
            .map_err(|e| err("create ordered consumer", Box::new(e)))?
            .messages()
            .await
            .map_err(|e| err("consume", Box::new(e)))?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => return seen,
                    next = messages.next() => match next {
                        Some(Ok(m)) => {
                            let Ok(info) = m.info() else { continue };
                            let (seq, time) = (info.stream_sequence, info.published);
                            let empty = async_nats::HeaderMap::new();
                            let headers = m.headers.as_ref().unwrap_or(&empty);
                            seen.push(record(&prefix, m.subject.as_str(), headers, &m.payload, seq, time));
                        }
                        // The ordered consumer recreates itself after a lost connection.
                        Some(Err(_)) => continue,
                        None => return seen,
                    },
                }
            }
        });
        Ok(BucketRecorder { handle, stop })
    }
}

/// A bucket followed live ([`Bus::record_bucket`]).
pub struct BucketRecorder {
    handle: tokio::task::JoinHandle<Vec<KvRecord>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl BucketRecorder {
    /// Stops following; every revision seen, oldest first.
    pub async fn stop(self) -> Vec<KvRecord> {
        let _ = self.stop.send(());
        self.handle.await.unwrap_or_default()
    }
}

/// Every revision of `live` and `dump`, once each, by revision.
pub fn merge(live: Vec<KvRecord>, dump: Vec<KvRecord>) -> Vec<KvRecord> {
    let mut all: std::collections::BTreeMap<u64, KvRecord> =
        live.into_iter().map(|r| (r.revision, r)).collect();
    for r in dump {
        all.insert(r.revision, r);
    }
    all.into_values().collect()
}

fn record(
    prefix: &str,
    subject: &str,
    headers: &async_nats::HeaderMap,
    payload: &[u8],
    revision: u64,
    time: time::OffsetDateTime,
) -> KvRecord {
    let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
    let operation = match header("KV-Operation").as_deref() {
        Some("DEL") => "del",
        Some("PURGE") => "purge",
        _ if header("Nats-Marker-Reason").is_some() => "purge",
        _ => "put",
    };
    KvRecord {
        key: subject.trim_start_matches(prefix).to_string(),
        revision,
        operation: operation.to_string(),
        value: serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null),
        created_ms: (time.unix_timestamp_nanos() / 1_000_000) as u64,
        marker_reason: header("Nats-Marker-Reason"),
    }
}
