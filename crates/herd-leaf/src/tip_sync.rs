//! The tip subscriber: how a leaf follows the trunk, one [`SyncPolicy`] chosen at construction.
//!
//! - [`SyncPolicy::Payload`] (default): a broadcast carries the landed commit's objects; a leaf
//!   holding its `prev` writes them into its object store and moves its remote-tracking tip —
//!   **applied**, no request to the hub. A broadcast it already holds is **skipped
//!   (idempotent)**; one it cannot apply (no payload, a gap, a bad pack) is **pulled** over HTTP
//!   as a fallback. Broadcasts are handled one at a time, in stream (= trunk) order.
//! - [`SyncPolicy::Fetch`]: every broadcast is pulled over HTTP, or **skipped (coalesced)**
//!   while a pull is in flight — with a *catch-up* pull when the pull ends if a newer tip was
//!   coalesced into it (counted separately), so no leaf is left on a stale tip. This is the
//!   bones design: ≈ N − 1 fetches per commit.
//! - [`SyncPolicy::OnDemand`]: broadcasts only tell the leaf the newest tip (**deferred**); it
//!   fetches before building a commit when it lacks that tip, and after a refused push.
//!
//! Sequence numbers are the trunk position of the tip. A leaf raises the sequence it holds
//! only for a broadcast whose commit it then verifiably holds (applied on its tip, or reached
//! by a fetch), so a replayed or forged message with a huge `seq` cannot make it skip real
//! ones; a broadcast at or below that sequence naming a commit not on its trunk *moves
//! backwards*: skipped, and counted as such (`backwards`). A gap (a payload whose `prev` the
//! leaf lacks) is fetched across.
//!
//! Exactly one outcome per broadcast, so `applied + pulled + skipped + deferred == received`.
//! Git work goes through the repository worker, never concurrently with the leaf's own commit.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use git2::Oid;
use herd_bus::{TipChanged, TipEvent, TipStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::git_ops::{ApplyError, Held};
use crate::ledger::Ledger;
use crate::stats::{Counters, add};
use crate::worker::Worker;

/// How a leaf follows the trunk.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SyncPolicy {
    /// Apply the objects a broadcast carries; fetch only when that is impossible.
    #[default]
    Payload,
    /// Fetch over HTTP on every broadcast (coalesced).
    Fetch,
    /// Fetch only before a commit (when a newer tip was announced) or after a refused push.
    OnDemand,
}

impl SyncPolicy {
    /// `payload`, `fetch` or `on-demand`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPolicy::Payload => "payload",
            SyncPolicy::Fetch => "fetch",
            SyncPolicy::OnDemand => "on-demand",
        }
    }
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "payload" => Ok(SyncPolicy::Payload),
            "fetch" => Ok(SyncPolicy::Fetch),
            "on-demand" | "ondemand" | "on_demand" => Ok(SyncPolicy::OnDemand),
            _ => Err(format!("{s:?}: expected payload, fetch or on-demand")),
        }
    }
}

/// What a leaf did with one broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Wrote the broadcast's payload into the object store: no request to the hub.
    Applied,
    /// Fetched (`ok` false when the fetch failed).
    Pulled {
        /// Did the fetch succeed?
        ok: bool,
    },
    /// Already held that tip or a newer one.
    SkippedIdempotent,
    /// A pull was in flight.
    SkippedCoalesced,
    /// On-demand sync: noted, fetched before the leaf's next commit if still needed.
    Deferred,
}

impl SyncOutcome {
    /// `applied`, `pulled`, `skipped_idempotent`, `skipped_coalesced` or `deferred`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Applied => "applied",
            SyncOutcome::Pulled { .. } => "pulled",
            SyncOutcome::SkippedIdempotent => "skipped_idempotent",
            SyncOutcome::SkippedCoalesced => "skipped_coalesced",
            SyncOutcome::Deferred => "deferred",
        }
    }

    /// Where the tip came from: `payload`, `fetch` or `none`.
    pub fn source(self) -> &'static str {
        match self {
            SyncOutcome::Applied => "payload",
            SyncOutcome::Pulled { .. } => "fetch",
            _ => "none",
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
    /// The remote-tracking tip after (`None` when unchanged and not yet known).
    pub after: Option<String>,
    /// When the outcome was final.
    pub at: Instant,
}

/// Called for every handled broadcast.
pub type SyncHook = Arc<dyn Fn(&SyncEvent) + Send + Sync>;

#[derive(Default)]
struct SyncState {
    in_flight: bool,
    /// Highest hub sequence number this leaf is known to hold — raised only by a broadcast
    /// whose commit the leaf then verifiably held (applied on its tip, or reached by a fetch),
    /// so a forged or replayed message with a huge `seq` cannot make it skip real ones.
    seq_held: u64,
    /// Newest broadcast coalesced into the in-flight pull (sequence, tip).
    pending: Option<(u64, Oid)>,
    /// Broadcasts coalesced into the in-flight pull, reported when the pull (with its
    /// catch-ups) ends: (the broadcast, the view when it came, its span).
    coalesced: Vec<(TipChanged, Option<String>, tracing::Span)>,
    /// Newest broadcast seen (sequence, tip): what an on-demand leaf fetches up to.
    newest: Option<(u64, Oid)>,
    /// The leaf's own push, reported as its view when its broadcast arrived before the push's
    /// reply moved the view: (that commit, its parent = the view then). While the view is
    /// still that parent, the push is the view reported — so a replay of the parent that
    /// arrives next cannot read as the view moving backwards (found by fault F9).
    ahead: Option<(String, String)>,
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
    /// The highest `HERD_TIP` stream sequence this leaf received: where a restarted leaf
    /// takes the stream up again.
    pub stream_position: std::sync::atomic::AtomicU64,
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
            stream_position: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Does this leaf hold `oid` already (its tip, the commit it built, or one it pushed)?
    fn holds(&self, oid: &str) -> bool {
        let Ok(oid) = Oid::from_str(oid) else {
            return false;
        };
        self.held.lock().expect("held lock").holds(oid)
    }

    fn tip(&self) -> Option<String> {
        self.held
            .lock()
            .expect("held lock")
            .remote_tip
            .map(|o| o.to_string())
    }

    /// Is a pull (or catch-up) still running?
    pub fn busy(&self) -> bool {
        self.state.lock().expect("sync state lock").in_flight
    }

    /// The sequence of the newest announced tip (on-demand sync), 0 if none.
    pub fn newest_seq(&self) -> u64 {
        let state = self.state.lock().expect("sync state lock");
        state.newest.map_or(0, |(seq, _)| seq)
    }

    /// A fetch that began when the newest announced sequence was `seq` ended: forget that
    /// announcement (a newer one that arrived meanwhile stays).
    pub fn fetched_past(&self, seq: u64) {
        let mut state = self.state.lock().expect("sync state lock");
        if state.newest.is_some_and(|(s, _)| s <= seq) {
            state.newest = None;
        }
    }

    /// The newest announced tip, when the leaf does not hold it yet (on-demand sync).
    pub fn behind(&self) -> Option<Oid> {
        let newest = self.state.lock().expect("sync state lock").newest;
        newest
            .map(|(_, oid)| oid)
            .filter(|oid| !self.held.lock().expect("held lock").holds(*oid))
    }

    fn report(
        &self,
        tip: &TipChanged,
        outcome: SyncOutcome,
        before: Option<String>,
        after: Option<String>,
    ) {
        let counter = match outcome {
            SyncOutcome::Applied => &self.counters.applied,
            SyncOutcome::Pulled { .. } => &self.counters.pulled,
            SyncOutcome::SkippedIdempotent => &self.counters.skipped_idempotent,
            SyncOutcome::SkippedCoalesced => &self.counters.skipped_coalesced,
            SyncOutcome::Deferred => &self.counters.deferred,
        };
        add(counter, 1);
        if let SyncOutcome::Pulled { ok: false } = outcome {
            add(&self.counters.pull_failures, 1);
        }
        let span = tracing::Span::current();
        span.record("pull.source", outcome.source());
        match outcome {
            SyncOutcome::Applied => {
                span.record("pull.applied", true);
            }
            SyncOutcome::Pulled { ok } => {
                span.record("pull.success", ok);
            }
            SyncOutcome::SkippedIdempotent => {
                span.record("pull.skipped_idempotent", true);
            }
            SyncOutcome::SkippedCoalesced => {
                span.record("pull.skipped_coalesced", true);
            }
            SyncOutcome::Deferred => {
                span.record("pull.deferred", true);
            }
        }
        if let Err(e) = self.ledger.note(None, outcome.as_str(), Some(&tip.oid)) {
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

    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("x-herd-slot".to_string(), self.slot.clone())];
        if let Some(tp) = herd_bus::trace::current_traceparent() {
            headers.push(("traceparent".to_string(), tp));
        }
        headers
    }
}

/// The running subscriber.
pub(crate) struct TipSync {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl TipSync {
    pub fn spawn(
        tips: TipStream,
        ctx: Arc<SyncContext>,
        policy: SyncPolicy,
        bus: herd_bus::Bus,
    ) -> TipSync {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run(tips, ctx, policy, bus, cancel.clone()));
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

/// Stream messages re-read when resubscribing after a reconnect: a server killed before it
/// wrote its last messages may hand their sequence numbers to new ones. Replays are idempotent.
const RESUME_OVERLAP: u64 = 64;

async fn run(
    mut tips: TipStream,
    ctx: Arc<SyncContext>,
    policy: SyncPolicy,
    bus: herd_bus::Bus,
    cancel: CancellationToken,
) {
    let mut pulls = JoinSet::new();
    // A restarted leaf starts where its previous run stopped receiving.
    let mut last_seq = ctx
        .stream_position
        .load(std::sync::atomic::Ordering::Acquire);
    let mut resume = crate::resume::Resume::new(&bus);
    loop {
        let resume_now = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = pulls.join_next(), if !pulls.is_empty() => false,
            // Reconnected (perhaps to a restarted server that lost our consumer), or a failed
            // resume is due again: take the stream up again from where this leaf was.
            () = resume.due() => true,
            next = tips.next() => { match next {
                Some(Ok(event)) if policy == SyncPolicy::Payload => {
                    // Take whatever else already arrived: a leaf behind applies a run of
                    // payloads in one job on its worker.
                    last_seq = last_seq.max(event.stream_seq);
                    let mut batch = vec![event];
                    while batch.len() < APPLY_BATCH {
                        match tips.next().now_or_never() {
                            Some(Some(Ok(more))) => {
                                last_seq = last_seq.max(more.stream_seq);
                                batch.push(more);
                            }
                            Some(Some(Err(e))) => {
                                tracing::warn!(leaf = %ctx.leaf, error = %e, "tip stream error");
                            }
                            _ => break,
                        }
                    }
                    add(&ctx.counters.tips_received, batch.len() as u64);
                    ctx.stream_position.fetch_max(last_seq, std::sync::atomic::Ordering::AcqRel);
                    on_payloads(&ctx, batch).await;
                }
                Some(Ok(event)) => {
                    last_seq = last_seq.max(event.stream_seq);
                    add(&ctx.counters.tips_received, 1);
                    ctx.stream_position.fetch_max(last_seq, std::sync::atomic::Ordering::AcqRel);
                    let span = sync_span(&ctx, &event);
                    match policy {
                        SyncPolicy::Fetch => span.in_scope(|| on_fetch(&ctx, event, &mut pulls, span.clone())),
                        _ => span.in_scope(|| on_demand(&ctx, event)),
                    }
                }
                Some(Err(e)) => tracing::warn!(leaf = %ctx.leaf, error = %e, "tip stream error"),
                None => break,
            }; false },
        };
        if resume_now {
            let resumed = bus
                .tips_after(last_seq.saturating_sub(RESUME_OVERLAP))
                .await;
            resume.settled(&resumed);
            match resumed {
                Ok(resumed) => {
                    tracing::debug!(leaf = %ctx.leaf, after = last_seq, "tip stream resumed");
                    tips = resumed;
                }
                Err(e) => {
                    tracing::warn!(leaf = %ctx.leaf, error = %e, "resuming the tip stream; trying again");
                }
            }
        }
    }
    while pulls.join_next().await.is_some() {}
}

fn sync_span(ctx: &SyncContext, event: &TipEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "leaf.sync_on_broadcast",
        leaf = %ctx.leaf,
        tip.oid = %event.tip.oid,
        tip.seq = event.tip.seq,
        traceparent = event.traceparent.as_deref().unwrap_or(""),
        pull.source = tracing::field::Empty,
        pull.applied = tracing::field::Empty,
        pull.success = tracing::field::Empty,
        pull.skipped_idempotent = tracing::field::Empty,
        pull.skipped_coalesced = tracing::field::Empty,
        pull.deferred = tracing::field::Empty,
        tip.backwards = tracing::field::Empty,
    );
    if let Some(tp) = event.traceparent.as_deref() {
        herd_bus::trace::add_link(&span, tp);
    }
    span
}

/// What a broadcast is to a leaf before it does anything with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Novelty {
    /// The leaf holds this very commit (its tip, or one it built or pushed).
    Held,
    /// At or below a sequence the leaf verified: an older tip (held as an ancestor) or one
    /// moving backwards — [`settle_old`] tells which.
    Old,
    /// Newer than anything the leaf holds.
    New,
}

fn novelty(ctx: &SyncContext, tip: &TipChanged) -> Novelty {
    if ctx.holds(&tip.oid) {
        return Novelty::Held;
    }
    if tip.seq <= ctx.state.lock().expect("sync state lock").seq_held {
        Novelty::Old
    } else {
        Novelty::New
    }
}

/// An [`Novelty::Old`] broadcast: skipped either way; when its commit is not on the leaf's
/// trunk it moved backwards (a replay, a stale or a forged message) and is counted as such.
async fn settle_old(ctx: &SyncContext, tip: &TipChanged, before: Option<String>) {
    let oid = Oid::from_str(&tip.oid).ok();
    let on_trunk = match oid {
        Some(oid) => ctx
            .worker
            .run(move |r| r.holds_commit(oid))
            .await
            .unwrap_or(false),
        None => false,
    };
    if !on_trunk {
        add(&ctx.counters.backwards, 1);
        tracing::Span::current().record("tip.backwards", true);
        tracing::debug!(leaf = %ctx.leaf, oid = %tip.oid, seq = tip.seq, "broadcast moves backwards: ignored");
    }
    // The view stays what was last reported (its own push, if that was announced ahead).
    let view = {
        let mut state = ctx.state.lock().expect("sync state lock");
        reported_view(ctx, &mut state).or(before)
    };
    ctx.report(tip, SyncOutcome::SkippedIdempotent, view.clone(), view);
}

/// (view before, view after) to report for a broadcast of a commit the leaf holds: as
/// [`held_view`], from the view last reported (its own push announced ahead of its reply, see
/// `SyncState::ahead`, until the view moves).
fn held_report(ctx: &SyncContext, tip: &TipChanged) -> (Option<String>, Option<String>) {
    let mut state = ctx.state.lock().expect("sync state lock");
    let reported = reported_view(ctx, &mut state);
    let after = held_view(tip, &reported);
    if after.as_deref() == Some(tip.oid.as_str()) && reported.as_deref() == Some(tip.prev.as_str())
    {
        state.ahead = Some((tip.oid.clone(), tip.prev.clone()));
    }
    (reported, after)
}

/// The view last reported: the leaf's own push announced ahead of its reply while the view is
/// still its parent (`SyncState::ahead`), else the view.
fn reported_view(ctx: &SyncContext, state: &mut SyncState) -> Option<String> {
    let view = ctx.tip();
    match &state.ahead {
        Some((push, parent)) if view.as_deref() == Some(parent.as_str()) => Some(push.clone()),
        _ => {
            state.ahead = None;
            view
        }
    }
}

/// The view to report after a broadcast of a commit the leaf holds: that tip when it is the
/// view itself or the view's direct successor (its own push, announced before the push's reply
/// moved the view), else the view it already had — a replay of an older tip (a hub
/// re-publishing after a bus restart) must not read as the view moving backwards. Decided by
/// commit ids, not by `seq`: a leaf's held sequence may lag a view reached by a fetch.
fn held_view(tip: &TipChanged, before: &Option<String>) -> Option<String> {
    match before {
        Some(view) if *view != tip.oid && *view != tip.prev => Some(view.clone()),
        _ => Some(tip.oid.clone()),
    }
}

fn hold_seq(ctx: &SyncContext, seq: u64) {
    let mut state = ctx.state.lock().expect("sync state lock");
    state.seq_held = state.seq_held.max(seq);
}

/// Most broadcasts applied in one worker job.
const APPLY_BATCH: usize = 64;

/// Payload sync for a run of broadcasts, in order: a leading run that applies cleanly (or is
/// already held) goes to the worker as one job; the first one that cannot be applied there, and
/// everything after it, is handled one at a time ([`on_payload`]: idempotent, or a fetch).
async fn on_payloads(ctx: &SyncContext, batch: Vec<TipEvent>) {
    let mut plan = Vec::new();
    for event in &batch {
        let tip = &event.tip;
        let ids = Oid::from_str(&tip.prev)
            .ok()
            .zip(Oid::from_str(&tip.oid).ok());
        match (ids, &event.pack) {
            (Some((prev, oid)), Some(pack)) if !ctx.holds(&tip.oid) => {
                plan.push((prev, oid, pack.clone(), payload_index(tip)));
            }
            _ => break,
        }
    }
    let before = ctx.tip();
    let planned = plan.len();
    let applied = if planned > 0 {
        ctx.worker
            .run(move |r| {
                let mut done = 0;
                for (prev, oid, pack, index) in plan {
                    if r.apply_payload(prev, oid, pack, &index).is_err() {
                        break;
                    }
                    done += 1;
                }
                done
            })
            .await
            .unwrap_or(0)
    } else {
        0
    };
    let mut events = batch.into_iter();
    let mut prev_tip = before;
    for event in events.by_ref().take(applied) {
        let span = sync_span(ctx, &event);
        let _in = span.enter();
        hold_seq(ctx, event.tip.seq);
        let after = Some(event.tip.oid.clone());
        ctx.report(&event.tip, SyncOutcome::Applied, prev_tip, after.clone());
        prev_tip = after;
    }
    for event in events {
        let span = sync_span(ctx, &event);
        on_payload(ctx, event).instrument(span).await;
    }
}

/// A broadcast's payload index as ids and offsets; empty (read the pack whole) when the hub
/// sent none or an id is malformed.
fn payload_index(tip: &TipChanged) -> Vec<(Oid, u64)> {
    tip.pack_index
        .iter()
        .map(|(id, at)| Oid::from_str(id).map(|o| (o, *at)))
        .collect::<Result<_, _>>()
        .unwrap_or_default()
}

async fn on_payload(ctx: &SyncContext, event: TipEvent) {
    let tip = event.tip;
    let before = ctx.tip();
    match novelty(ctx, &tip) {
        Novelty::Held => {
            let (before, after) = held_report(ctx, &tip);
            hold_seq(ctx, tip.seq);
            ctx.report(&tip, SyncOutcome::SkippedIdempotent, before, after);
            return;
        }
        Novelty::Old => return settle_old(ctx, &tip, before).await,
        Novelty::New => {}
    }
    let (Ok(prev), Ok(oid)) = (Oid::from_str(&tip.prev), Oid::from_str(&tip.oid)) else {
        tracing::warn!(leaf = %ctx.leaf, oid = %tip.oid, "malformed broadcast ignored");
        ctx.report(&tip, SyncOutcome::SkippedIdempotent, before.clone(), before);
        return;
    };
    let index = payload_index(&tip);
    let applied = match event.pack {
        Some(pack) => ctx
            .worker
            .run(move |r| r.apply_payload(prev, oid, pack, &index))
            .await
            .unwrap_or_else(|e| Err(ApplyError::Bad(e.to_string()))),
        None => Err(ApplyError::Bad("no payload".into())),
    };
    match applied {
        Ok(()) => {
            hold_seq(ctx, tip.seq);
            ctx.report(&tip, SyncOutcome::Applied, before, Some(tip.oid.clone()));
        }
        Err(ApplyError::NotAtBase)
            if ctx
                .worker
                .run(move |r| r.holds_commit(oid))
                .await
                .unwrap_or(false) =>
        {
            // A fetch already went past this tip.
            hold_seq(ctx, tip.seq);
            let after = ctx.tip();
            ctx.report(&tip, SyncOutcome::SkippedIdempotent, before, after);
        }
        Err(why) => {
            // A gap (the leaf lacks `prev`), no payload or a bad one: fetch across it.
            tracing::debug!(leaf = %ctx.leaf, oid = %tip.oid, reason = ?why, "payload not applicable: fetching");
            let fetched = fetch_reaching(ctx, Some(oid)).await;
            if fetched == Ok(true) {
                hold_seq(ctx, tip.seq);
            }
            let ok = fetched.is_ok();
            ctx.report(&tip, SyncOutcome::Pulled { ok }, before, ctx.tip());
        }
    }
}

fn on_demand(ctx: &SyncContext, event: TipEvent) {
    let tip = event.tip;
    let before = ctx.tip();
    if novelty(ctx, &tip) == Novelty::Held {
        let (before, after) = held_report(ctx, &tip);
        hold_seq(ctx, tip.seq);
        ctx.report(&tip, SyncOutcome::SkippedIdempotent, before, after);
        return;
    }
    if let Ok(oid) = Oid::from_str(&tip.oid) {
        let mut state = ctx.state.lock().expect("sync state lock");
        if state.newest.is_none_or(|(s, _)| s < tip.seq) {
            state.newest = Some((tip.seq, oid));
        }
    }
    ctx.report(&tip, SyncOutcome::Deferred, before, None);
}

fn on_fetch(ctx: &Arc<SyncContext>, event: TipEvent, pulls: &mut JoinSet<()>, span: tracing::Span) {
    let tip = event.tip;
    let before = ctx.tip();
    let novelty = novelty(ctx, &tip);
    let held = (novelty == Novelty::Held).then(|| held_report(ctx, &tip));
    let outcome = {
        let mut state = ctx.state.lock().expect("sync state lock");
        if novelty != Novelty::New {
            if novelty == Novelty::Held {
                state.seq_held = state.seq_held.max(tip.seq);
            }
            SyncOutcome::SkippedIdempotent
        } else if state.in_flight {
            if let Ok(oid) = Oid::from_str(&tip.oid)
                && state.pending.is_none_or(|(s, _)| s < tip.seq)
            {
                state.pending = Some((tip.seq, oid));
            }
            // Reported when the pull ends, with the view it reached: a leaf that keeps
            // catching up shows it in its history, and the drain waits for the catch-up.
            state
                .coalesced
                .push((tip.clone(), before.clone(), span.clone()));
            SyncOutcome::SkippedCoalesced
        } else {
            state.in_flight = true;
            state.pending = None;
            SyncOutcome::Pulled { ok: true }
        }
    };
    match (outcome, novelty) {
        (SyncOutcome::SkippedIdempotent, Novelty::Held) => {
            let (before, after) = held.unwrap_or((before, None));
            ctx.report(&tip, outcome, before, after);
        }
        (SyncOutcome::SkippedIdempotent, _) => {
            let ctx = ctx.clone();
            pulls.spawn(async move { settle_old(&ctx, &tip, before).await }.instrument(span));
        }
        (SyncOutcome::SkippedCoalesced, _) => {}
        _ => {
            let ctx = ctx.clone();
            pulls.spawn(async move { pull(&ctx, tip, before).await }.instrument(span));
        }
    }
}

async fn pull(ctx: &SyncContext, tip: TipChanged, before: Option<String>) {
    let fetched = fetch_reaching(ctx, Oid::from_str(&tip.oid).ok()).await;
    let mut held = if fetched == Ok(true) { tip.seq } else { 0 };
    ctx.report(
        &tip,
        SyncOutcome::Pulled {
            ok: fetched.is_ok(),
        },
        before,
        ctx.tip(),
    );
    // Catch up on tips coalesced while this pull ran; after each round, the broadcasts it
    // covered are reported with the view it reached.
    loop {
        let (due, covered) = {
            let mut state = ctx.state.lock().expect("sync state lock");
            state.seq_held = state.seq_held.max(held);
            let covered = std::mem::take(&mut state.coalesced);
            match state.pending.take() {
                Some((seq, oid)) if seq > state.seq_held => (Some((seq, oid)), covered),
                _ => {
                    state.in_flight = false;
                    (None, covered)
                }
            }
        };
        let Some((seq, oid)) = due else {
            // The leaf holds them already.
            report_coalesced(ctx, covered);
            return;
        };
        add(&ctx.counters.catch_up_pulls, 1);
        let fetched = fetch_reaching(ctx, Some(oid)).await;
        // This catch-up covered them: reported with the view it reached.
        report_coalesced(ctx, covered);
        match fetched {
            Ok(true) => held = seq,
            Ok(false) => held = 0,
            Err(_) => {
                // Give up on this round; the next broadcast or commit fetches again.
                let covered = {
                    let mut state = ctx.state.lock().expect("sync state lock");
                    state.in_flight = false;
                    std::mem::take(&mut state.coalesced)
                };
                report_coalesced(ctx, covered);
                return;
            }
        }
    }
}

/// Reports broadcasts coalesced into a pull that ended, each in its own span, with the view
/// the leaf holds now.
fn report_coalesced(ctx: &SyncContext, covered: Vec<(TipChanged, Option<String>, tracing::Span)>) {
    for (tip, before, span) in covered {
        // The view as every other line reports it (a push of its own announced before its
        // reply moved the view counts as the view: it must not read as moving backwards).
        let after = reported_view(ctx, &mut ctx.state.lock().expect("sync state lock"));
        span.in_scope(|| ctx.report(&tip, SyncOutcome::SkippedCoalesced, before, after));
    }
}

/// A fetch, then whether the leaf's trunk now holds `oid`:
/// only then is the broadcast that named it known to be real.
async fn fetch_reaching(ctx: &SyncContext, oid: Option<Oid>) -> Result<bool, String> {
    fetch(ctx).await?;
    match oid {
        Some(oid) => Ok(ctx
            .worker
            .run(move |r| r.holds_commit(oid))
            .await
            .unwrap_or(false)),
        None => Ok(false),
    }
}

/// One fetch through the worker.
pub(crate) async fn fetch(ctx: &SyncContext) -> Result<(), String> {
    let headers = ctx.headers();
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
