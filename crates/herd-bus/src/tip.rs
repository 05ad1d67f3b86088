//! Tip broadcasts: for each commit the hub lands on the trunk it publishes one [`TipChanged`] on
//! `herd.tip.changed` (stream `HERD_TIP`), in trunk order; every leaf consumes them.
//!
//! The message carries the W3C `traceparent` of the push in its NATS headers, so a leaf's sync
//! span can link to the push that caused it, and `Nats-Msg-Id` = the new tip oid, so a publish
//! retried after a lost ack is deduplicated by the server instead of broadcast twice.
//!
//! **Payload.** A broadcast may carry the landed commit's objects: a git pack of exactly what a
//! holder of `prev` lacks to hold `oid`. The body is then the JSON record, one `\n`, and the
//! pack bytes (`pack_bytes` says how many), and the record lists each object's id and entry offset
//! (`pack_index`); a leaf that holds `prev` keeps the objects locally and never asks the hub. Without a pack (over the hub's size cap, or payloads off) the body is the
//! JSON alone and leaves fetch.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, TIP_STREAM, TIP_SUBJECT};
use crate::error::{BusError, Result};

/// Most broadcasts a subscriber asks the server for at once.
pub const TIP_PULL_BATCH: i64 = 16;

/// Header name of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The trunk moved from `prev` to `oid`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TipChanged {
    /// The new tip commit.
    pub oid: String,
    /// The tip it replaced.
    pub prev: String,
    /// The new tip's position on the trunk (the seed commit is 1): durable across hub
    /// restarts, consecutive along the stream.
    pub seq: u64,
    /// The slot that pushed, when the push said so.
    pub slot: Option<String>,
    /// When the hub accepted the push, in milliseconds since the Unix epoch.
    pub at: u64,
    /// The commit the leaf pushed, when the hub landed it as a different commit (the merge
    /// queue rebases a push built on an older tip); `None` when `oid` is the pushed commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    /// Bytes of the pack that follows the JSON record in the message body (0: no payload).
    #[serde(default)]
    pub pack_bytes: u64,
    /// The pack's index: each object's id and the offset of its entry, in pack order, so a
    /// leaf can keep the entries without inflating them. Empty when the hub sent none (then a
    /// leaf reads the pack whole).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pack_index: Vec<(String, u64)>,
}

/// One broadcast to publish: the record, the pusher's trace context and an optional pack.
#[derive(Clone, Debug)]
pub struct TipOut {
    /// The record (`pack_bytes` is set from `pack` when published).
    pub tip: TipChanged,
    /// The pusher's W3C trace context.
    pub traceparent: Option<String>,
    /// The landed commit's objects, as a git pack.
    pub pack: Option<bytes::Bytes>,
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
    /// The landed commit's objects, when the broadcast carries them.
    pub pack: Option<bytes::Bytes>,
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
    /// Publishes one broadcast (no payload) and waits for the stream's ack. Returns the stream
    /// sequence.
    pub async fn publish_tip(&self, tip: &TipChanged, traceparent: Option<&str>) -> Result<u64> {
        let out = TipOut {
            tip: tip.clone(),
            traceparent: traceparent.map(str::to_string),
            pack: None,
        };
        let mut seqs = self.publish_tips(std::slice::from_ref(&out)).await?;
        Ok(seqs.pop().unwrap_or(0))
    }

    /// Publishes broadcasts in order, pipelined: every message is sent before the first ack is
    /// awaited (the stream keeps publish order on one connection). Returns the stream sequences.
    pub async fn publish_tips(&self, tips: &[TipOut]) -> Result<Vec<u64>> {
        let publish = |e: Box<dyn std::error::Error + Send + Sync>| BusError::Publish {
            subject: TIP_SUBJECT,
            source: e,
        };
        let mut acks = Vec::with_capacity(tips.len());
        for out in tips {
            let (headers, body) = encode(out)?;
            let ack = self
                .js
                .publish_with_headers(TIP_SUBJECT, headers, body)
                .await
                .map_err(|e| publish(Box::new(e)))?;
            acks.push(ack);
        }
        let mut seqs = Vec::with_capacity(acks.len());
        for ack in acks {
            seqs.push(ack.await.map_err(|e| publish(Box::new(e)))?.sequence);
        }
        Ok(seqs)
    }

    /// The tip stream, bound (its info fresh).
    async fn tip_stream(&self) -> Result<async_nats::jetstream::stream::Stream> {
        self.js
            .get_stream(TIP_STREAM)
            .await
            .map_err(|e| stream_err("bind", Box::new(e)))
    }

    /// The newest broadcast in the stream, if any (a hub starting up compares it with its
    /// trunk and re-publishes what is missing).
    pub async fn last_tip(&self) -> Result<Option<TipChanged>> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let stream = self.tip_stream().await?;
        let message = match stream.get_last_raw_message_by_subject(TIP_SUBJECT).await {
            Ok(m) => m,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(stream_err("read last message", Box::new(e))),
        };
        let body = &message.payload;
        let split = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
        serde_json::from_slice(&body[..split])
            .map(Some)
            .map_err(|source| BusError::Decode {
                what: TIP_SUBJECT.into(),
                source,
            })
    }

    /// Publishes the broadcast stored `back` messages before the stream's newest again, as a
    /// new message (its `Nats-Msg-Id` gets a `~replay-<copy>` suffix, so the stream keeps it):
    /// a duplicated and, to a leaf that has moved on, reordered tip (fault F9). Returns the
    /// new message's sequence, or `None` when there is no such broadcast.
    pub async fn replay_tip(&self, back: u64, copy: u64) -> Result<Option<u64>> {
        let stream = self.tip_stream().await?;
        let last = stream.cached_info().state.last_sequence;
        let Some(seq) = last.checked_sub(back).filter(|s| *s > 0) else {
            return Ok(None);
        };
        let Ok(message) = stream.get_raw_message(seq).await else {
            return Ok(None);
        };
        let mut headers = message.headers.clone();
        let id = headers
            .get("Nats-Msg-Id")
            .map_or_else(|| format!("seq-{seq}"), |v| v.as_str().to_string());
        headers.insert("Nats-Msg-Id", format!("{id}~replay-{copy}").as_str());
        let ack = self
            .js
            .publish_with_headers(TIP_SUBJECT, headers, message.payload)
            .await
            .map_err(|e| stream_err("replay", Box::new(e)))?
            .await
            .map_err(|e| stream_err("replay", Box::new(e)))?;
        Ok(Some(ack.sequence))
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
        let stream = self.tip_stream().await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: TIP_SUBJECT.to_string(),
                deliver_policy,
                // Bounds what one subscriber buffers: with payloads of up to the hub's cap a
                // default batch of 500 could hold over 100 MiB per leaf.
                max_batch: TIP_PULL_BATCH,
                max_expires: crate::bus::PULL_MAX_EXPIRES,
                ..Default::default()
            })
            .await
            .map_err(|e| stream_err("create ordered consumer", Box::new(e)))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| stream_err("consume", Box::new(e)))?;
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

fn stream_err(op: &'static str, source: crate::error::Cause) -> BusError {
    BusError::Stream {
        stream: TIP_STREAM,
        op,
        source,
    }
}

fn encode(out: &TipOut) -> Result<(HeaderMap, bytes::Bytes)> {
    let mut tip = out.tip.clone();
    tip.pack_bytes = out.pack.as_ref().map_or(0, |p| p.len() as u64);
    let mut body = serde_json::to_vec(&tip).map_err(|source| BusError::Decode {
        what: TIP_SUBJECT.into(),
        source,
    })?;
    if let Some(pack) = &out.pack {
        // serde_json never writes a raw newline, so the first one ends the record.
        body.push(b'\n');
        body.extend_from_slice(pack);
    }
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", tip.oid.as_str());
    headers.insert("Content-Type", "application/json");
    if let Some(tp) = &out.traceparent {
        headers.insert(TRACEPARENT, tp.as_str());
    }
    Ok((headers, body.into()))
}

fn decode(m: &async_nats::jetstream::Message) -> Result<TipEvent> {
    let body = &m.payload;
    let split = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
    let tip: TipChanged =
        serde_json::from_slice(&body[..split]).map_err(|source| BusError::Decode {
            what: TIP_SUBJECT.into(),
            source,
        })?;
    let pack = (tip.pack_bytes > 0)
        .then(|| body.slice((split + 1).min(body.len())..))
        .filter(|p| p.len() as u64 == tip.pack_bytes);
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
        pack,
    })
}
