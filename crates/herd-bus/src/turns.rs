//! Turns: a FIFO of leaves that kept losing the race for the trunk.
//!
//! In race mode every push is a compare-and-swap of the tip, so a leaf whose retry cycle is
//! slower than the herd's commit interval can lose every race. A leaf that lost K races asks
//! for a turn ([`TurnMsg`] `request` on `herd.turn.request`); every leaf consumes the turn
//! stream (`HERD_TURN`) in order and keeps the same queue: requests in stream order, removed by
//! their `done`. While the queue is not empty only its head pushes; the others wait. The stream
//! sequence is the order, so the queue is first-come first-served without any compare-and-swap.
//!
//! The queue is advisory: correctness never depends on it (the hub's compare-and-swap decides),
//! so a leaf that has not yet seen a request may still push. A head that never says `done` (it
//! crashed) is dropped by each leaf after a lease.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::stream;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::bus::Bus;
use crate::error::{BusError, Result};

/// The stream of turn messages.
pub const TURN_STREAM: &str = "HERD_TURN";
/// Subjects of turn messages (`herd.turn.request`, `herd.turn.done`).
pub const TURN_SUBJECTS: &str = "herd.turn.>";

/// Asking for, or giving back, a turn.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TurnKind {
    /// Join the queue.
    Request,
    /// Leave it (the push landed, or the leaf gave up).
    Done,
}

/// One turn message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TurnMsg {
    /// Request or done.
    pub kind: TurnKind,
    /// The leaf.
    pub leaf: String,
    /// The request this is about (unique per request of a leaf).
    pub id: u64,
}

/// Turn messages as they arrive, in stream order.
pub struct TurnStream {
    inner: Pin<Box<dyn Stream<Item = Result<TurnMsg>> + Send>>,
    last_seq: Arc<AtomicU64>,
}

impl TurnStream {
    /// The stream sequence of the last message received (0: none yet): where
    /// [`Bus::turns_after`] takes up after a reconnect.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }
}

impl Stream for TurnStream {
    type Item = Result<TurnMsg>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Creates the turn stream if it is missing (idempotent).
pub(crate) async fn ensure_turn_stream(
    js: &async_nats::jetstream::Context,
    replicas: usize,
) -> Result<()> {
    let config = stream::Config {
        name: TURN_STREAM.to_string(),
        subjects: vec![TURN_SUBJECTS.to_string()],
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(3600),
        max_bytes: 64 << 20,
        discard: stream::DiscardPolicy::Old,
        num_replicas: replicas,
        ..Default::default()
    };
    crate::bus::create_stream_fitting(js, TURN_STREAM, config).await
}

impl Bus {
    /// Publishes a turn message and waits for the stream's ack. The message carries an id
    /// (`Nats-Msg-Id`: kind, leaf, request), so the stream keeps one copy however often it is
    /// sent: a publish whose ack was lost to a dying or frozen server is sent again.
    pub async fn publish_turn(&self, msg: &TurnMsg) -> Result<()> {
        crate::bus::read_retrying(|| self.publish_turn_once(msg)).await
    }

    async fn publish_turn_once(&self, msg: &TurnMsg) -> Result<()> {
        let subject = match msg.kind {
            TurnKind::Request => "herd.turn.request",
            TurnKind::Done => "herd.turn.done",
        };
        let payload = serde_json::to_vec(msg).map_err(|source| BusError::Decode {
            what: subject.into(),
            source,
        })?;
        let publish = |e: Box<dyn std::error::Error + Send + Sync>| BusError::Publish {
            subject: "herd.turn",
            source: e,
        };
        let mut headers = async_nats::HeaderMap::new();
        let kind = match msg.kind {
            TurnKind::Request => "request",
            TurnKind::Done => "done",
        };
        let id = format!("turn-{kind}-{}-{}", msg.leaf, msg.id);
        headers.insert("Nats-Msg-Id", id.as_str());
        self.js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| publish(Box::new(e)))?
            .await
            .map_err(|e| publish(Box::new(e)))?;
        Ok(())
    }

    /// Turn messages published after this call.
    pub async fn turns(&self) -> Result<TurnStream> {
        self.turns_with(DeliverPolicy::New).await
    }

    /// Turn messages with stream sequence greater than `seq` (resume after a reconnect).
    pub async fn turns_after(&self, seq: u64) -> Result<TurnStream> {
        self.turns_with(DeliverPolicy::ByStartSequence {
            start_sequence: seq + 1,
        })
        .await
    }

    async fn turns_with(&self, deliver_policy: DeliverPolicy) -> Result<TurnStream> {
        let err = |op, e: Box<dyn std::error::Error + Send + Sync>| BusError::Stream {
            stream: TURN_STREAM,
            op,
            source: e,
        };
        let stream = self
            .js
            .get_stream(TURN_STREAM)
            .await
            .map_err(|e| err("bind", Box::new(e)))?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: TURN_SUBJECTS.to_string(),
                deliver_policy,
                max_expires: crate::bus::PULL_MAX_EXPIRES,
                ..Default::default()
            })
            .await
            .map_err(|e| err("create ordered consumer", Box::new(e)))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| err("consume", Box::new(e)))?;
        let last_seq = Arc::new(AtomicU64::new(0));
        let seen = last_seq.clone();
        let inner = futures::StreamExt::map(messages, move |m| {
            let m = m.map_err(|e| BusError::Stream {
                stream: TURN_STREAM,
                op: "receive",
                source: Box::new(e),
            })?;
            if let Ok(info) = m.info() {
                seen.fetch_max(info.stream_sequence, Ordering::Relaxed);
            }
            serde_json::from_slice(&m.payload).map_err(|source| BusError::Decode {
                what: "herd.turn".into(),
                source,
            })
        });
        Ok(TurnStream {
            inner: Box::pin(inner),
            last_seq,
        })
    }
}
