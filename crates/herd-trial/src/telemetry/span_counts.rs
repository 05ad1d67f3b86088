//! `SpanCounts`: the trial's counters, computed by a tracing layer from the very spans that are
//! exported — one source of truth, so the summary cannot disagree with the trace.
//!
//! The layer keeps the fields of the spans it counts (`leaf.claim`, `leaf.commit`,
//! `leaf.sync_on_broadcast`, `hub.receive_pack`) in the span's extensions as they are recorded,
//! and folds them into atomic counters when the span closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The span names the layer counts.
pub const COUNTED: &[&str] = &[
    "leaf.claim",
    "leaf.commit",
    "leaf.sync_on_broadcast",
    "hub.receive_pack",
];

#[derive(Default)]
struct Atomics {
    claim_spans: AtomicU64,
    claims_won: AtomicU64,
    claims_lost: AtomicU64,
    commit_spans: AtomicU64,
    commits_ok: AtomicU64,
    fork_retries: AtomicU64,
    fork_unrecoverable: AtomicU64,
    commits_refused: AtomicU64,
    sync_spans: AtomicU64,
    applied: AtomicU64,
    pulled: AtomicU64,
    deferred: AtomicU64,
    skipped_idempotent: AtomicU64,
    skipped_coalesced: AtomicU64,
    receive_pack_spans: AtomicU64,
    pushes_accepted: AtomicU64,
    pushes_rejected: AtomicU64,
}

/// A handle on the counters; clone it into the runner, install [`SpanCounts::layer`] once.
#[derive(Clone, Default)]
pub struct SpanCounts {
    inner: Arc<Atomics>,
}

/// A snapshot of [`SpanCounts`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanTotals {
    /// `leaf.claim` spans closed.
    pub claim_spans: u64,
    /// … with `outcome = "won"`.
    pub claims_won: u64,
    /// … with `outcome = "lost"`.
    pub claims_lost: u64,
    /// `leaf.commit` spans closed.
    pub commit_spans: u64,
    /// … with a `commit.oid`.
    pub commits_ok: u64,
    /// Sum of `commit.fork_retries`.
    pub fork_retries: u64,
    /// … with `commit.unrecoverable = true` (a conflict, or retries exhausted).
    pub fork_unrecoverable: u64,
    /// … with `commit.refused = true` (the hub refused on policy).
    #[serde(default)]
    pub commits_refused: u64,
    /// `leaf.sync_on_broadcast` spans closed.
    pub sync_spans: u64,
    /// … with `pull.applied = true` (a payload written, no request to the hub).
    #[serde(default)]
    pub applied: u64,
    /// … with `pull.success` set (a fetch was attempted).
    pub pulled: u64,
    /// … with `pull.deferred = true` (on-demand sync).
    #[serde(default)]
    pub deferred: u64,
    /// … with `pull.skipped_idempotent = true`.
    pub skipped_idempotent: u64,
    /// … with `pull.skipped_coalesced = true`.
    pub skipped_coalesced: u64,
    /// `hub.receive_pack` spans closed.
    pub receive_pack_spans: u64,
    /// … with `push.accepted = true`.
    pub pushes_accepted: u64,
    /// … with `push.accepted = false`.
    pub pushes_rejected: u64,
}

impl SpanTotals {
    /// What was counted since `before` (the layer is process-wide; a run takes its delta).
    pub fn since(&self, before: &SpanTotals) -> SpanTotals {
        SpanTotals {
            claim_spans: self.claim_spans - before.claim_spans,
            claims_won: self.claims_won - before.claims_won,
            claims_lost: self.claims_lost - before.claims_lost,
            commit_spans: self.commit_spans - before.commit_spans,
            commits_ok: self.commits_ok - before.commits_ok,
            fork_retries: self.fork_retries - before.fork_retries,
            fork_unrecoverable: self.fork_unrecoverable - before.fork_unrecoverable,
            commits_refused: self.commits_refused - before.commits_refused,
            sync_spans: self.sync_spans - before.sync_spans,
            applied: self.applied - before.applied,
            pulled: self.pulled - before.pulled,
            deferred: self.deferred - before.deferred,
            skipped_idempotent: self.skipped_idempotent - before.skipped_idempotent,
            skipped_coalesced: self.skipped_coalesced - before.skipped_coalesced,
            receive_pack_spans: self.receive_pack_spans - before.receive_pack_spans,
            pushes_accepted: self.pushes_accepted - before.pushes_accepted,
            pushes_rejected: self.pushes_rejected - before.pushes_rejected,
        }
    }
}

impl SpanCounts {
    /// The layer feeding these counters.
    pub fn layer(&self) -> CountingLayer {
        CountingLayer {
            counts: self.clone(),
        }
    }

    /// Current totals.
    pub fn totals(&self) -> SpanTotals {
        let a = &self.inner;
        let g = |x: &AtomicU64| x.load(Ordering::Acquire);
        SpanTotals {
            claim_spans: g(&a.claim_spans),
            claims_won: g(&a.claims_won),
            claims_lost: g(&a.claims_lost),
            commit_spans: g(&a.commit_spans),
            commits_ok: g(&a.commits_ok),
            fork_retries: g(&a.fork_retries),
            fork_unrecoverable: g(&a.fork_unrecoverable),
            commits_refused: g(&a.commits_refused),
            sync_spans: g(&a.sync_spans),
            applied: g(&a.applied),
            pulled: g(&a.pulled),
            deferred: g(&a.deferred),
            skipped_idempotent: g(&a.skipped_idempotent),
            skipped_coalesced: g(&a.skipped_coalesced),
            receive_pack_spans: g(&a.receive_pack_spans),
            pushes_accepted: g(&a.pushes_accepted),
            pushes_rejected: g(&a.pushes_rejected),
        }
    }

    fn fold(&self, name: &str, f: &Fields) {
        let a = &self.inner;
        let add = |x: &AtomicU64, n: u64| {
            x.fetch_add(n, Ordering::AcqRel);
        };
        match name {
            "leaf.claim" => {
                add(&a.claim_spans, 1);
                match f.outcome.as_deref() {
                    Some("won") => add(&a.claims_won, 1),
                    Some("lost") => add(&a.claims_lost, 1),
                    _ => {}
                }
            }
            "leaf.commit" => {
                add(&a.commit_spans, 1);
                add(&a.fork_retries, f.fork_retries);
                add(&a.commits_ok, u64::from(f.oid));
                add(
                    &a.fork_unrecoverable,
                    u64::from(f.unrecoverable || f.conflict),
                );
                add(&a.commits_refused, u64::from(f.refused));
            }
            "leaf.sync_on_broadcast" => {
                add(&a.sync_spans, 1);
                // A fetch attempted (pull.success set, true or false) is a pull.
                add(&a.pulled, u64::from(f.pull_success.is_some()));
                add(&a.applied, u64::from(f.applied));
                add(&a.deferred, u64::from(f.deferred));
                add(&a.skipped_idempotent, u64::from(f.skipped_idempotent));
                add(&a.skipped_coalesced, u64::from(f.skipped_coalesced));
            }
            "hub.receive_pack" => {
                add(&a.receive_pack_spans, 1);
                match f.push_accepted {
                    Some(true) => add(&a.pushes_accepted, 1),
                    Some(false) => add(&a.pushes_rejected, 1),
                    None => {}
                }
            }
            _ => {}
        }
    }
}

/// The fields of one counted span, as recorded so far.
#[derive(Default)]
struct Fields {
    outcome: Option<String>,
    fork_retries: u64,
    oid: bool,
    conflict: bool,
    unrecoverable: bool,
    refused: bool,
    applied: bool,
    deferred: bool,
    pull_success: Option<bool>,
    skipped_idempotent: bool,
    skipped_coalesced: bool,
    push_accepted: Option<bool>,
}

impl Visit for Fields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "commit.conflict" => self.conflict = value,
            "commit.unrecoverable" => self.unrecoverable = value,
            "commit.refused" => self.refused = value,
            "pull.applied" => self.applied = value,
            "pull.deferred" => self.deferred = value,
            "pull.success" => self.pull_success = Some(value),
            "pull.skipped_idempotent" => self.skipped_idempotent = value,
            "pull.skipped_coalesced" => self.skipped_coalesced = value,
            "push.accepted" => self.push_accepted = Some(value),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "commit.fork_retries" {
            self.fork_retries = value;
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "outcome" => self.outcome = Some(value.to_string()),
            "commit.oid" => self.oid = !value.is_empty(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%value` / `?value` fields arrive here; strip the quotes Debug adds to strings.
        let text = format!("{value:?}");
        self.record_str(field, text.trim_matches('"'));
    }
}

/// The tracing layer behind [`SpanCounts`].
pub struct CountingLayer {
    counts: SpanCounts,
}

impl<S> Layer<S> for CountingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !COUNTED.contains(&attrs.metadata().name()) {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(fields) = span.extensions().get::<Fields>()
        {
            self.counts.fold(span.name(), fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn counts_come_from_span_fields() {
        let counts = SpanCounts::default();
        let subscriber = tracing_subscriber::registry().with(counts.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("leaf.claim", outcome = "won").in_scope(|| {});
            let lost = tracing::info_span!("leaf.claim", outcome = tracing::field::Empty);
            lost.record("outcome", "lost");
            drop(lost);
            let commit = tracing::info_span!(
                "leaf.commit",
                commit.fork_retries = tracing::field::Empty,
                commit.oid = tracing::field::Empty
            );
            commit.record("commit.fork_retries", 2u64);
            commit.record("commit.oid", "abc");
            drop(commit);
            tracing::info_span!("leaf.sync_on_broadcast", pull.success = true).in_scope(|| {});
            tracing::info_span!("leaf.sync_on_broadcast", pull.skipped_coalesced = true)
                .in_scope(|| {});
            tracing::info_span!("unrelated", pull.success = true).in_scope(|| {});
        });
        let t = counts.totals();
        assert_eq!((t.claim_spans, t.claims_won, t.claims_lost), (2, 1, 1));
        assert_eq!((t.commit_spans, t.commits_ok, t.fork_retries), (1, 1, 2));
        assert_eq!(
            (
                t.sync_spans,
                t.pulled,
                t.skipped_coalesced,
                t.skipped_idempotent
            ),
            (2, 1, 1, 0)
        );
    }
}
