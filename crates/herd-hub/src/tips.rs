//! Tips are never lost: every commit on the trunk is broadcast once, in trunk order, even
//! across a failed publish, a client that hangs up mid-push or a hub restart.
//!
//! - A broadcast's `seq` is the commit's trunk position (the seed is 1), so it is durable: a
//!   restarted hub continues where it left off, and a leaf can tell a gap from a replay.
//! - The hub remembers the highest position published in order (`Published`). A batch of
//!   broadcasts that does not continue it (an earlier publish failed) is replaced by a
//!   *catch-up*: every position after it, rebuilt from the repository, in order.
//! - A publish is retried with the same `Nats-Msg-Id` (the oid: the stream drops a duplicate);
//!   each attempt waits at most [`ACK_WAIT`] for its ack, and none is made while the client is
//!   disconnected. If it still fails the push is answered anyway (the commit *is* on the
//!   trunk) and a background task catches up as soon as the bus answers (at once on a
//!   reconnect); pushes meanwhile leave their broadcasts to it instead of waiting.
//! - At start the hub reads the stream's last broadcast and, when it is this trunk's commit at
//!   that position, catches up from there (a crash between the ref update and the publish).
//!
//! Every publish runs under the integration lock (race: the push lock; queue: the lander's
//! gate), so broadcasts leave in trunk order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::hub::{Broadcast, Inner, PushContext};
use crate::mode::Landed;

/// Publish attempts per batch before the background task takes over.
const ATTEMPTS: u32 = 2;
/// The longest one publish attempt waits for the stream's ack. Publishes run under the
/// integration lock, so this bounds how long a dead or frozen bus stalls the trunk: with the
/// client's 5 s request timeout a publish sent into a killed server held every push for 5 s
/// (F1, measured). A publish cut short is repeated with the same message ids, so nothing is
/// doubled.
const ACK_WAIT: Duration = Duration::from_secs(1);
/// Most broadcasts one catch-up publishes at once.
const CATCH_UP_BATCH: u64 = 256;

/// The highest trunk position published in order (0: unknown yet).
#[derive(Default)]
pub(crate) struct Published(AtomicU64);

impl Published {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, seq: u64) {
        self.0.store(seq, Ordering::Release);
    }
}

/// Publishes `broadcasts` (consecutive positions, oldest first), or catches up if they do not
/// continue what was published. Call with the integration lock held.
pub(crate) async fn publish(inner: &Arc<Inner>, broadcasts: Vec<Broadcast>) {
    let Some(first) = broadcasts.first() else {
        return;
    };
    if inner.config.bus.is_none() {
        return;
    }
    if first.seq() != inner.published.get() + 1 {
        // Something before these is missing from the stream: the repairer publishes it all
        // from the trunk, in order, as soon as the bus answers (this push does not wait).
        inner.repair_due.notify_one();
        return;
    }
    if send(inner, &broadcasts).await.is_err() {
        inner.repair_due.notify_one();
    }
}

/// Sends one in-order batch, retrying with the same message ids.
async fn send(inner: &Inner, broadcasts: &[Broadcast]) -> Result<(), ()> {
    let Some(bus) = &inner.config.bus else {
        return Ok(());
    };
    let outs: Vec<_> = broadcasts.iter().map(|b| b.out.clone()).collect();
    let mut delay = Duration::from_millis(25);
    for attempt in 1..=ATTEMPTS {
        if !bus.is_connected() {
            // Nothing can be acked until the client is back; the repairer waits for that.
            break;
        }
        let sent = tokio::time::timeout(ACK_WAIT, bus.publish_tips(&outs))
            .await
            .unwrap_or_else(|_| {
                Err(herd_bus::BusError::Publish {
                    subject: "herd.tip.changed",
                    source: format!("no ack within {ACK_WAIT:?}").into(),
                })
            });
        match sent {
            Ok(_) => {
                for b in broadcasts {
                    inner
                        .stats
                        .broadcast(b.out.pack.as_ref().map(|p| p.len()), b.over_cap);
                }
                if let Some(last) = broadcasts.last() {
                    inner.published.set(last.seq());
                }
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "tip broadcast failed");
                if attempt < ATTEMPTS {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
            }
        }
    }
    for _ in broadcasts {
        inner.stats.publish_failed();
    }
    Err(())
}

/// Publishes every trunk position after the last one published, rebuilt from the repository.
/// Call with the integration lock held. Returns how many it published.
pub(crate) async fn catch_up(inner: &Arc<Inner>) -> Result<u64, ()> {
    let mut sent = 0;
    loop {
        let from = inner.published.get() + 1;
        let to = inner.trunk_len().min(from + CATCH_UP_BATCH - 1);
        if from > to {
            return Ok(sent);
        }
        let landed: Vec<Landed> = (from..=to)
            .filter_map(|seq| {
                let landed = inner.trunk_at(seq)?;
                let prev = inner.trunk_at(seq - 1)?;
                Some(Landed {
                    pushed: landed,
                    landed,
                    prev,
                    seq,
                })
            })
            .collect();
        let me = inner.clone();
        let built = inner
            .store
            .run(move |s| {
                let ctx = PushContext::default();
                landed
                    .iter()
                    .map(|l| me.broadcast_for(s.repo, l, &[l.landed], &ctx))
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| ())?;
        if built.is_empty() {
            return Ok(sent);
        }
        let n = built.len() as u64;
        send(inner, &built).await?;
        inner.stats.republished(n);
        sent += n;
    }
}

/// At start: where the stream left off. A stream whose last broadcast is not this trunk's
/// commit at that position (another repository's, or a forgery) is not trusted: nothing is
/// re-published before the trunk's current tip.
pub(crate) async fn resume(inner: &Arc<Inner>) {
    let Some(bus) = &inner.config.bus else {
        return;
    };
    let len = inner.trunk_len();
    let from = match bus.last_tip().await {
        // A stream that never held this trunk owes it nothing.
        Ok(None) => len,
        Ok(Some(last)) => {
            let ours = inner.trunk_at(last.seq).map(|o| o.to_string());
            if ours.as_deref() == Some(last.oid.as_str()) {
                last.seq
            } else {
                tracing::warn!(
                    seq = last.seq,
                    oid = %last.oid,
                    "the tip stream's last broadcast is not on this trunk: not re-publishing history"
                );
                len
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the tip stream at start: not re-publishing");
            len
        }
    };
    inner.published.set(from.min(len));
    let _gate = inner.integration_gate().await;
    if catch_up(inner).await.is_err() {
        inner.repair_due.notify_one();
    }
}

/// Background: after a failed publish, catch up (under the integration lock) until the stream
/// holds every trunk position. Aborted when the hub stops.
pub(crate) async fn repairer(inner: Arc<Inner>) {
    let Some(bus) = inner.config.bus.clone() else {
        return;
    };
    let mut connections = bus.connections();
    loop {
        inner.repair_due.notified().await;
        let mut delay = Duration::from_millis(100);
        loop {
            let done = bus.is_connected() && {
                let _gate = inner.integration_gate().await;
                catch_up(&inner).await.is_ok()
            };
            if done {
                break;
            }
            // Again after a backoff, or at once when the client reconnects.
            connections.borrow_and_update();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = connections.changed() => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}
