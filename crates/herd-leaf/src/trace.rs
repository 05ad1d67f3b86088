//! The W3C `traceparent` of the current span, forwarded to the hub with each push and fetch.
//! Set by whatever installed OpenTelemetry (see herd-trial's telemetry); `None` otherwise.

use std::sync::OnceLock;

/// Produces the current span's `traceparent`, if tracing is exported.
pub type TraceparentFn = fn() -> Option<String>;

static SOURCE: OnceLock<TraceparentFn> = OnceLock::new();

/// Installs the function that reads the current trace context (once per process).
pub fn set_traceparent_source(f: TraceparentFn) {
    let _ = SOURCE.set(f);
}

/// The current span's `traceparent`, if a source is installed and a trace is active.
pub fn current_traceparent() -> Option<String> {
    SOURCE.get().and_then(|f| f())
}
