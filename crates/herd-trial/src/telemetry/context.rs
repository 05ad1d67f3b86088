//! The trace-context hooks ([`herd_bus::trace`]) backed by tracing-opentelemetry and the W3C
//! trace-context propagator: what lets `hub.receive_pack` be a child of the `leaf.commit` that
//! pushed, and `leaf.sync_on_broadcast` link to the push that caused the broadcast.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Installs the hooks into herd-bus (once per process).
pub fn install_hooks() {
    herd_bus::trace::install(herd_bus::trace::TraceHooks {
        current,
        set_parent,
        add_link,
    });
}

fn current() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

fn extract(traceparent: &str) -> Context {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    TraceContextPropagator::new().extract(&carrier)
}

fn set_parent(span: &tracing::Span, traceparent: &str) {
    let cx = extract(traceparent);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

fn add_link(span: &tracing::Span, traceparent: &str) {
    let sc = extract(traceparent).span().span_context().clone();
    if sc.is_valid() {
        span.add_link(sc);
    }
}
