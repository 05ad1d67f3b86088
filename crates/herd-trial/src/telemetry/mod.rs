//! Telemetry for the trial binary: the tracing subscriber, OTLP export and the pre-flight.
//!
//! Libraries only emit `tracing` spans; this module (called from the example, never from a
//! library) installs the subscriber: the [`SpanCounts`] layer (always — the trial's counters come
//! from it), an OpenTelemetry layer exporting over OTLP (HTTP/protobuf, or gRPC on a runtime of
//! its own, by `OTEL_EXPORTER_OTLP_PROTOCOL`) with a batch processor when an endpoint is
//! configured, and a `RUST_LOG` fmt layer on stderr. The endpoint must pass the
//! [`preflight`] first. [`Telemetry::shutdown`] flushes with a timeout and returns the export
//! counters, which the summary prints.

pub mod context;
pub mod endpoint;
pub mod export;
pub mod grpc_receiver;
pub mod preflight;
pub mod receiver;
pub mod span_counts;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use export::{ExportCounters, ExportTotals};
pub use preflight::PreflightError;
pub use span_counts::{SpanCounts, SpanTotals};

/// How long the pre-flight and each export may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors setting telemetry up (all exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The endpoint is not an OTLP collector.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The exporter could not be built.
    #[error("building the OTLP exporter for {url}: {reason}")]
    Exporter {
        /// The traces URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The OTLP environment names something herd cannot do.
    #[error("OTLP configuration: {0}")]
    Config(String),
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// The provider this process installed, for [`flush_spans`].
static INSTALLED: std::sync::OnceLock<SdkTracerProvider> = std::sync::OnceLock::new();

/// Exports every finished span now (blocking; bounded by the exporter's timeout): a leaf
/// process about to be killed by a leaf fault sends its trace first, so the collector holds
/// what its ledger holds (I5).
pub fn flush_spans() {
    if let Some(provider) = INSTALLED.get() {
        let _ = provider.force_flush();
    }
}

/// The installed telemetry.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// The gRPC exporter's runtime (OTLP/gRPC only); outlives the provider.
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: Option<String>,
    /// The trial's counters, from spans.
    pub counts: SpanCounts,
    /// Export counters.
    pub exports: ExportCounters,
}

/// What to install.
#[derive(Clone, Debug, Default)]
pub struct TelemetryConfig {
    /// Traces URL (`None`: no exporter).
    pub endpoint: Option<String>,
    /// How spans travel.
    pub protocol: endpoint::OtlpProtocol,
    /// `service.name`.
    pub service_name: String,
}

impl TelemetryConfig {
    /// From the standard OTLP environment; an unsupported protocol is an error.
    pub fn from_env() -> Result<TelemetryConfig, TelemetryError> {
        let get = |k: &str| std::env::var(k).ok();
        let protocol = endpoint::protocol(get).map_err(TelemetryError::Config)?;
        Ok(TelemetryConfig {
            endpoint: endpoint::traces_endpoint(get, protocol),
            protocol,
            service_name: endpoint::service_name(get),
        })
    }
}

impl Telemetry {
    /// Pre-flights the endpoint (if any) and installs the global subscriber.
    pub fn install(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let counts = SpanCounts::default();
        let exports = ExportCounters::default();
        let mut runtime = None;
        let provider = match (&config.endpoint, config.protocol) {
            (Some(url), endpoint::OtlpProtocol::HttpProtobuf) => {
                preflight::check(url, EXPORT_TIMEOUT)?;
                Some(provider(
                    http_exporter(url)?,
                    &config.service_name,
                    exports.clone(),
                ))
            }
            (Some(url), endpoint::OtlpProtocol::Grpc) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("otlp-grpc")
                    .enable_all()
                    .build()
                    .map_err(|e| TelemetryError::Exporter {
                        url: url.clone(),
                        reason: format!("starting the gRPC exporter's runtime: {e}"),
                    })?;
                preflight::check_grpc(url, EXPORT_TIMEOUT, &rt)?;
                let exporter = {
                    let _inside = rt.enter();
                    grpc_exporter(url)?
                };
                let exporter = export::OnRuntime::new(exporter, rt.handle().clone());
                let provider = provider(exporter, &config.service_name, exports.clone());
                runtime = Some(rt);
                Some(provider)
            }
            (None, _) => None,
        };
        let otel = provider
            .as_ref()
            .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("herd")));
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
            );
        tracing_subscriber::registry()
            .with(counts.layer())
            .with(otel)
            .with(fmt)
            .try_init()
            .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
        if let Some(p) = &provider {
            context::install_hooks();
            let _ = INSTALLED.set(p.clone());
        }
        Ok(Telemetry {
            provider,
            runtime,
            endpoint: config.endpoint.clone(),
            counts,
            exports,
        })
    }

    /// Flushes pending spans (bounded by [`EXPORT_TIMEOUT`]) and returns the export totals.
    pub fn shutdown(self) -> ExportTotals {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
            let _ = provider.shutdown_with_timeout(EXPORT_TIMEOUT);
        }
        if let Some(runtime) = self.runtime {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        self.exports.totals(self.endpoint.clone())
    }

    /// Export totals so far.
    pub fn export_totals(&self) -> ExportTotals {
        self.exports.totals(self.endpoint.clone())
    }
}

fn http_exporter(url: &str) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

/// Built inside the gRPC runtime (tonic binds its channel to the current one).
fn grpc_exporter(url: &str) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

fn provider<E: opentelemetry_sdk::trace::SpanExporter + 'static>(
    exporter: E,
    service_name: &str,
    counters: ExportCounters,
) -> SdkTracerProvider {
    let batch = BatchSpanProcessor::builder(export::CountingExporter::new(exporter, counters))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(1 << 16)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_millis(500))
                .build(),
        )
        .build();
    let resource = Resource::builder()
        .with_service_name(service_name.to_string())
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(resource)
        .build()
}
