//! Tip broadcasts: after the hub accepts a push to the trunk it publishes one [`TipChanged`] on
//! `herd.tip.changed` (stream `HERD_TIP`); every leaf consumes them and pulls or skips.
//!
//! The message carries the W3C `traceparent` of the push in its NATS headers, so a leaf's sync
//! span can link to the push that caused it, and `Nats-Msg-Id` = the new tip oid, so a publish
//! retried after a lost ack is deduplicated by the server instead of broadcast twice.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, TIP_STREAM, TIP_SUBJECT};
use crate::error::{BusError, Result};

/// Header name of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The trunk moved from `prev` to `oid`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TipChanged {
    /// The new tip commit.
    pub oid: String,
    /// The tip it replaced.
    pub prev: String,
    /// The hub's accepted-push sequence number (1 for the first accepted push).
    pub seq: u64,
    /// The slot that pushed, when the push said so.
    pub slot: Option<String>,
    /// When the hub accepted the push, in milliseconds since the Unix epoch.
    pub at: u64,
}

/// One received broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TipEvent {
    /// The message.
    pub tip: TipChanged,
    /// The pusher's W3C trace context, if it sent one.
    pub traceparent: Option<String>,
    /// The message's sequence in the `HERD_TIP` stream.
    pub stream_seq: u64,
}

/// Broadcasts as they arrive. Ends when the connection is closed for good.
pub struct TipStream {
    inner: Pin<Box<dyn Stream<Item = Result<TipEvent>> + Send>>,
}

impl Stream for TipStream {
    type Item = Result<TipEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Bus {
    /// Publishes one broadcast and waits for the stream's ack. Returns the stream sequence.
    pub async fn publish_tip(&self, tip: &TipChanged, traceparent: Option<&str>) -> Result<u64> {
        let payload = serde_json::to_vec(tip).map_err(|source| BusError::Decode {
            what: TIP_SUBJECT.into(),
            source,
        })?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", tip.oid.as_str());
        headers.insert("Content-Type", "application/json");
        if let Some(tp) = traceparent {
            headers.insert(TRACEPARENT, tp);
        }
        let publish = |e: Box<dyn std::error::Error + Send + Sync>| BusError::Publish {
            subject: TIP_SUBJECT,
            source: e,
        };
        let ack = self
            .js
            .publish_with_headers(TIP_SUBJECT, headers, payload.into())
            .await
            .map_err(|e| publish(Box::new(e)))?
            .await
            .map_err(|e| publish(Box::new(e)))?;
        Ok(ack.sequence)
    }

    /// Broadcasts published after this call.
    pub async fn tips(&self) -> Result<TipStream> {
        self.tips_with(DeliverPolicy::New).await
    }

    /// Broadcasts with stream sequence greater than `seq` (resume after a restart).
    pub async fn tips_after(&self, seq: u64) -> Result<TipStream> {
        self.tips_with(DeliverPolicy::ByStartSequence {
            start_sequence: seq + 1,
        })
        .await
    }

    async fn tips_with(&self, deliver_policy: DeliverPolicy) -> Result<TipStream> {
        let err = |op, e: Box<dyn std::error::Error + Send + Sync>| BusError::Stream {
            stream: TIP_STREAM,
            op,
            source: e,
        };
        let stream = self
            .js
            .get_stream(TIP_STREAM)
            .await
            .map_err(|e| err("bind", Box::new(e)))?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: TIP_SUBJECT.to_string(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| err("create ordered consumer", Box::new(e)))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| err("consume", Box::new(e)))?;
        let inner = futures::StreamExt::map(messages, |m| {
            let m = m.map_err(|e| BusError::Stream {
                stream: TIP_STREAM,
                op: "receive",
                source: Box::new(e),
            })?;
            decode(&m)
        });
        Ok(TipStream {
            inner: Box::pin(inner),
        })
    }
}

fn decode(m: &async_nats::jetstream::Message) -> Result<TipEvent> {
    let tip: TipChanged =
        serde_json::from_slice(&m.payload).map_err(|source| BusError::Decode {
            what: TIP_SUBJECT.into(),
            source,
        })?;
    let traceparent = m
        .headers
        .as_ref()
        .and_then(|h| h.get(TRACEPARENT))
        .map(|v| v.as_str().to_string());
    let stream_seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
    Ok(TipEvent {
        tip,
        traceparent,
        stream_seq,
    })
}
