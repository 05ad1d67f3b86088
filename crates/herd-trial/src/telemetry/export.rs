//! `CountingExporter`: wraps the OTLP exporter and counts spans exported and spans whose export
//! failed, so a failed export is reported in the summary instead of vanishing into a log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde::{Deserialize, Serialize};

/// Export outcome counters, shared with the trial.
#[derive(Clone, Debug, Default)]
pub struct ExportCounters {
    exported: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    failed_batches: Arc<AtomicU64>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

/// A snapshot of [`ExportCounters`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportTotals {
    /// Where spans went (`None`: no exporter configured).
    pub endpoint: Option<String>,
    /// Spans the collector accepted.
    pub spans_exported: u64,
    /// Spans in batches whose export failed.
    pub spans_failed: u64,
    /// Failed export calls.
    pub batches_failed: u64,
    /// The last export error.
    pub last_error: Option<String>,
}

impl ExportCounters {
    /// Current totals for `endpoint`.
    pub fn totals(&self, endpoint: Option<String>) -> ExportTotals {
        ExportTotals {
            endpoint,
            spans_exported: self.exported.load(Ordering::Acquire),
            spans_failed: self.failed.load(Ordering::Acquire),
            batches_failed: self.failed_batches.load(Ordering::Acquire),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// The wrapper.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    counters: ExportCounters,
}

impl<E> CountingExporter<E> {
    /// Wraps `inner`, counting into `counters`.
    pub fn new(inner: E, counters: ExportCounters) -> Self {
        CountingExporter { inner, counters }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.counters.exported.fetch_add(n, Ordering::AcqRel);
            }
            Err(e) => {
                self.counters.failed.fetch_add(n, Ordering::AcqRel);
                self.counters.failed_batches.fetch_add(1, Ordering::AcqRel);
                if let Ok(mut last) = self.counters.last_error.lock() {
                    *last = Some(e.to_string());
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Runs an exporter's calls on a tokio runtime: the batch processor exports from its own thread
/// with a plain executor, where tonic (OTLP/gRPC) finds no reactor. Each export is spawned on
/// `handle` and awaited through its join handle, which any executor can poll.
#[derive(Debug)]
pub struct OnRuntime<E> {
    inner: Arc<E>,
    handle: tokio::runtime::Handle,
}

impl<E> OnRuntime<E> {
    /// `inner`, exporting on `handle`'s runtime.
    pub fn new(inner: E, handle: tokio::runtime::Handle) -> Self {
        OnRuntime {
            inner: Arc::new(inner),
            handle,
        }
    }
}

impl<E: SpanExporter + Send + Sync + 'static> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let inner = self.inner.clone();
        match self
            .handle
            .spawn(async move { inner.export(batch).await })
            .await
        {
            Ok(result) => result,
            Err(e) => Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                format!("export task: {e}"),
            )),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _runtime = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _runtime = self.handle.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called while the provider is built, before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}
