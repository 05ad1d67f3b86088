//! The tip subscriber: each `TipChanged` is *pulled* (fetched), *skipped idempotent* (the leaf
//! already holds that tip or a newer one) or *skipped coalesced* (a pull is in flight). Exactly
//! one of the three per broadcast, so `pulled + skipped == received` always holds.
//!
//! A coalesced broadcast may name a tip newer than the one the in-flight pull fetches, so when a
//! pull finishes the leaf fetches once more if a newer tip was coalesced into it (a *catch-up*
//! pull, counted separately): no leaf is left behind on a stale tip. Fetches go through the
//! repository worker, so they never run concurrently with the leaf's own commit.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use git2::Oid;
use herd_bus::{TipChanged, TipEvent, TipStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::git_ops::Held;
use crate::ledger::Ledger;
use crate::stats::{Counters, add};
use crate::worker::Worker;

/// What a leaf did with one broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Fetched (`ok` false when the fetch failed).
    Pulled {
        /// Did the fetch succeed?
        ok: bool,
    },
    /// Already held that tip or a newer one.
    SkippedIdempotent,
    /// A pull was in flight.
    SkippedCoalesced,
}

impl SyncOutcome {
    /// `pulled`, `skipped_idempotent` or `skipped_coalesced`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Pulled { .. } => "pulled",
            SyncOutcome::SkippedIdempotent => "skipped_idempotent",
            SyncOutcome::SkippedCoalesced => "skipped_coalesced",
        }
    }
}

/// One handled broadcast, for observers (the trial's history and propagation lag).
#[derive(Clone, Debug)]
pub struct SyncEvent {
    /// The leaf.
    pub leaf: String,
    /// The broadcast.
    pub tip: TipChanged,
    /// What the leaf did.
    pub outcome: SyncOutcome,
    /// The remote-tracking tip before.
    pub before: Option<String>,
    /// The remote-tracking tip after (`None` for coalesced: unchanged and not yet known).
    pub after: Option<String>,
    /// When the outcome was final.
    pub at: Instant,
}

/// Called for every handled broadcast.
pub type SyncHook = Arc<dyn Fn(&SyncEvent) + Send + Sync>;

#[derive(Default)]
struct SyncState {
    in_flight: bool,
    /// Highest hub sequence number this leaf is known to hold.
    seq_held: u64,
    /// Highest sequence coalesced into the in-flight pull.
    pending: u64,
}

pub(crate) struct SyncContext {
    pub leaf: String,
    pub slot: String,
    pub worker: Worker,
    pub counters: Arc<Counters>,
    pub ledger: Arc<Ledger>,
    pub held: Arc<Mutex<Held>>,
    pub hook: Option<SyncHook>,
    state: Mutex<SyncState>,
}

impl SyncContext {
    pub fn new(
        leaf: String,
        slot: String,
        worker: Worker,
        counters: Arc<Counters>,
        ledger: Arc<Ledger>,
        held: Arc<Mutex<Held>>,
        hook: Option<SyncHook>,
    ) -> Self {
        SyncContext {
            leaf,
            slot,
            worker,
            counters,
            ledger,
            held,
            hook,
            state: Mutex::default(),
        }
    }

    /// Does this leaf hold `oid` already (its tip, the commit it built, or one it pushed)?
    fn holds(&self, oid: &str) -> bool {
        let Ok(oid) = Oid::from_str(oid) else {
            return false;
        };
        self.held.lock().map(|h| h.holds(oid)).unwrap_or(false)
    }

    fn tip(&self) -> Option<String> {
        self.held
            .lock()
            .ok()
            .and_then(|h| h.remote_tip.map(|o| o.to_string()))
    }

    /// Is a pull (or catch-up) still running?
    pub fn busy(&self) -> bool {
        self.state.lock().map(|s| s.in_flight).unwrap_or(false)
    }

    fn report(
        &self,
        tip: &TipChanged,
        outcome: SyncOutcome,
        before: Option<String>,
        after: Option<String>,
    ) {
        let counter = match outcome {
            SyncOutcome::Pulled { .. } => &self.counters.pulled,
            SyncOutcome::SkippedIdempotent => &self.counters.skipped_idempotent,
            SyncOutcome::SkippedCoalesced => &self.counters.skipped_coalesced,
        };
        add(counter, 1);
        if let SyncOutcome::Pulled { ok: false } = outcome {
            add(&self.counters.pull_failures, 1);
        }
        if let Err(e) = self.ledger.event(None, outcome.as_str(), Some(&tip.oid)) {
            tracing::warn!(error = %e, "ledger event");
        }
        if let Some(hook) = &self.hook {
            hook(&SyncEvent {
                leaf: self.leaf.clone(),
                tip: tip.clone(),
                outcome,
                before,
                after,
                at: Instant::now(),
            });
        }
    }
}

/// The running subscriber.
pub(crate) struct TipSync {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl TipSync {
    pub fn spawn(tips: TipStream, ctx: Arc<SyncContext>) -> TipSync {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run(tips, ctx, cancel.clone()));
        TipSync { cancel, handle }
    }

    /// Stops taking broadcasts without waiting (in-flight pulls still finish).
    pub fn cancel(self) {
        self.cancel.cancel();
    }

    /// Stops taking broadcasts, lets in-flight pulls finish, and waits.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.handle.await;
    }
}

async fn run(mut tips: TipStream, ctx: Arc<SyncContext>, cancel: CancellationToken) {
    let mut pulls = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = pulls.join_next(), if !pulls.is_empty() => {}
            next = tips.next() => match next {
                Some(Ok(event)) => handle(&ctx, event, &mut pulls),
                Some(Err(e)) => tracing::warn!(leaf = %ctx.leaf, error = %e, "tip stream error"),
                None => break,
            },
        }
    }
    while pulls.join_next().await.is_some() {}
}

fn handle(ctx: &Arc<SyncContext>, event: TipEvent, pulls: &mut JoinSet<()>) {
    add(&ctx.counters.tips_received, 1);
    let tip = event.tip;
    let span = tracing::info_span!(
        "leaf.sync_on_broadcast",
        leaf = %ctx.leaf,
        tip.oid = %tip.oid,
        tip.seq = tip.seq,
        traceparent = event.traceparent.as_deref().unwrap_or(""),
        pull.success = tracing::field::Empty,
        pull.skipped_idempotent = tracing::field::Empty,
        pull.skipped_coalesced = tracing::field::Empty,
    );
    if let Some(tp) = event.traceparent.as_deref() {
        herd_bus::trace::add_link(&span, tp);
    }
    let before = ctx.tip();
    let holds_it = ctx.holds(&tip.oid);
    let outcome = {
        let Ok(mut state) = ctx.state.lock() else {
            return;
        };
        if holds_it || tip.seq <= state.seq_held {
            state.seq_held = state.seq_held.max(tip.seq);
            SyncOutcome::SkippedIdempotent
        } else if state.in_flight {
            state.pending = state.pending.max(tip.seq);
            SyncOutcome::SkippedCoalesced
        } else {
            state.in_flight = true;
            state.pending = 0;
            SyncOutcome::Pulled { ok: true }
        }
    };
    match outcome {
        SyncOutcome::SkippedIdempotent => {
            span.record("pull.skipped_idempotent", true);
            // Holding this very commit (its own push) means holding this tip; skipped because
            // a newer tip was already pulled means holding that newer one.
            let after = if holds_it {
                Some(tip.oid.clone())
            } else {
                before.clone()
            };
            ctx.report(&tip, outcome, before, after);
        }
        SyncOutcome::SkippedCoalesced => {
            span.record("pull.skipped_coalesced", true);
            ctx.report(&tip, outcome, before, None);
        }
        SyncOutcome::Pulled { .. } => {
            let ctx = ctx.clone();
            pulls.spawn(async move { pull(&ctx, tip, before).await }.instrument(span));
        }
    }
}

async fn pull(ctx: &SyncContext, tip: TipChanged, before: Option<String>) {
    let mut headers = vec![("x-herd-slot".to_string(), ctx.slot.clone())];
    if let Some(tp) = herd_bus::trace::current_traceparent() {
        headers.push(("traceparent".to_string(), tp));
    }
    let fetched = fetch(ctx, headers.clone()).await;
    tracing::Span::current().record("pull.success", fetched.is_ok());
    let ok = fetched.is_ok();
    let mut held = if ok { tip.seq } else { 0 };
    ctx.report(&tip, SyncOutcome::Pulled { ok }, before, ctx.tip());
    // Catch up on tips coalesced while this pull ran.
    loop {
        let due = {
            let Ok(mut state) = ctx.state.lock() else {
                return;
            };
            state.seq_held = state.seq_held.max(held);
            if state.pending > state.seq_held {
                held = state.pending;
                true
            } else {
                state.in_flight = false;
                false
            }
        };
        if !due {
            return;
        }
        add(&ctx.counters.catch_up_pulls, 1);
        if fetch(ctx, headers.clone()).await.is_err() {
            // Give up on this round; the next broadcast or commit fetches again.
            if let Ok(mut state) = ctx.state.lock() {
                state.in_flight = false;
            }
            return;
        }
    }
}

async fn fetch(ctx: &SyncContext, headers: Vec<(String, String)>) -> Result<(), String> {
    let result = ctx
        .worker
        .run(move |repo| {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            repo.fetch(&h)
                .map(|_| ())
                .map_err(|e| e.message().to_string())
        })
        .await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(leaf = %ctx.leaf, error = %e, "pull failed");
            Err(e)
        }
        Err(e) => Err(e.to_string()),
    }
}
