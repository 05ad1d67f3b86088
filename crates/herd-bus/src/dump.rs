//! Reading back a bucket's stored history, every key and every revision still on the server,
//! for the history checker (`kv-tasks.jsonl`, `kv-claims.jsonl`). Revisions that expired (a
//! lapsed claim) are gone from the server and so from the dump; the claim record carries its
//! TTL so an interval can still be bounded.

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
            let header = |name: &str| m.headers.get(name).map(|v| v.as_str().to_string());
            let operation = match header("KV-Operation").as_deref() {
                Some("DEL") => "del",
                Some("PURGE") => "purge",
                _ if header("Nats-Marker-Reason").is_some() => "purge",
                _ => "put",
            };
            out.push(KvRecord {
                key: m.subject.as_str().trim_start_matches(&prefix).to_string(),
                revision: m.sequence,
                operation: operation.to_string(),
                value: serde_json::from_slice(&m.payload).unwrap_or(serde_json::Value::Null),
                created_ms: (m.time.unix_timestamp_nanos() / 1_000_000) as u64,
                marker_reason: header("Nats-Marker-Reason"),
            });
        }
        Ok(out)
    }
}
