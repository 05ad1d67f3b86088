//! Trace-context glue for the libraries, without an OpenTelemetry dependency.
//!
//! Libraries emit `tracing` spans only. To make one trace across leaf → hub → leaves they need
//! three things from whoever installed OpenTelemetry (the trial binary): the current span's W3C
//! `traceparent` (sent with a push), making a span the child of a remote `traceparent` (the
//! hub's `hub.receive_pack`), and linking a span to one (`leaf.sync_on_broadcast` to the push
//! that caused it). [`install`] sets those hooks once per process; without them every call is a
//! no-op and spans stay local.

use std::sync::OnceLock;

/// The hooks an exporter installs.
#[derive(Clone, Copy)]
pub struct TraceHooks {
    /// The current span's `traceparent`, if it is part of an exported trace.
    pub current: fn() -> Option<String>,
    /// Makes `span` a child of the remote `traceparent`.
    pub set_parent: fn(&tracing::Span, &str),
    /// Links `span` to the remote `traceparent`.
    pub add_link: fn(&tracing::Span, &str),
}

static HOOKS: OnceLock<TraceHooks> = OnceLock::new();

/// Installs the hooks (first call wins).
pub fn install(hooks: TraceHooks) {
    let _ = HOOKS.set(hooks);
}

/// The current span's `traceparent`.
pub fn current_traceparent() -> Option<String> {
    HOOKS.get().and_then(|h| (h.current)())
}

/// Makes `span` a child of `traceparent`.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if let Some(h) = HOOKS.get() {
        (h.set_parent)(span, traceparent);
    }
}

/// Links `span` to `traceparent`.
pub fn add_link(span: &tracing::Span, traceparent: &str) {
    if let Some(h) = HOOKS.get() {
        (h.add_link)(span, traceparent);
    }
}
