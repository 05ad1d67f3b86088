//! `OtlpReceiver`: a minimal OTLP/HTTP traces collector (axum + opentelemetry-proto) on
//! 127.0.0.1, for tests and for checking that spans really arrive. It decodes every
//! `ExportTraceServiceRequest`, keeps the spans, and answers as a collector does (200,
//! `application/x-protobuf`, an `ExportTraceServiceResponse`). Modes let tests play the
//! collector's failures: an HTML page answering 200, or a port that goes away.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A real collector.
    Otlp,
    /// A web page answering `200 text/html` (the reference project's silent failure).
    Html,
}

#[derive(Clone)]
struct Shared {
    mode: Mode,
    closed: Arc<std::sync::atomic::AtomicBool>,
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<u64>>,
}

/// A running receiver; stops on drop.
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Shared,
    handle: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Binds 127.0.0.1 on a free port and serves `POST /v1/traces`.
    pub async fn start(mode: Mode) -> std::io::Result<OtlpReceiver> {
        let shared = Shared {
            mode,
            closed: Arc::default(),
            spans: Arc::default(),
            requests: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(OtlpReceiver {
            addr,
            shared,
            handle,
        })
    }

    /// The base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The traces URL.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.shared
            .spans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Export requests received (including empty pre-flight ones).
    pub fn requests(&self) -> u64 {
        self.shared.requests.lock().map(|r| *r).unwrap_or(0)
    }

    /// Goes away: new connections are refused and kept-alive ones get 503 with
    /// `Connection: close`, as a collector that dies mid-run would.
    pub fn stop(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.handle.abort();
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

async fn export(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Ok(mut n) = shared.requests.lock() {
        *n += 1;
    }
    if shared.closed.load(std::sync::atomic::Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONNECTION, "close")],
            "gone",
        )
            .into_response();
    }
    if shared.mode == Mode::Html {
        return (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>not a collector</body></html>",
        )
            .into_response();
    }
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-protobuf"));
    if !protobuf {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-protobuf",
        )
            .into_response();
    }
    let request = match ExportTraceServiceRequest::decode(body.as_ref()) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad protobuf: {e}")).into_response(),
    };
    let spans = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans);
    if let Ok(mut all) = shared.spans.lock() {
        all.extend(spans);
    }
    let response = ExportTraceServiceResponse {
        partial_success: None,
    }
    .encode_to_vec();
    ([(header::CONTENT_TYPE, "application/x-protobuf")], response).into_response()
}

/// Writes `spans` as one OTLP JSON `ExportTraceServiceRequest` per line — the file format the
/// OpenTelemetry Collector's `file` exporter writes and `herd check` reads for I5 — `batch`
/// spans per line.
pub fn write_otlp_json(
    spans: &[Span],
    batch: usize,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut text = String::new();
    for chunk in spans.chunks(batch.max(1)) {
        let list: Vec<serde_json::Value> = chunk
            .iter()
            .map(|s| {
                let attributes: Vec<serde_json::Value> = s
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        let value = match kv.value.as_ref()?.value.as_ref()? {
                            Value::StringValue(v) => serde_json::json!({ "stringValue": v }),
                            Value::BoolValue(v) => serde_json::json!({ "boolValue": v }),
                            Value::IntValue(v) => serde_json::json!({ "intValue": v.to_string() }),
                            Value::DoubleValue(v) => serde_json::json!({ "doubleValue": v }),
                            _ => return None,
                        };
                        Some(serde_json::json!({ "key": kv.key, "value": value }))
                    })
                    .collect();
                serde_json::json!({
                    "traceId": hex(&s.trace_id),
                    "spanId": hex(&s.span_id),
                    "parentSpanId": hex(&s.parent_span_id),
                    "name": s.name,
                    "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                    "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                    "attributes": attributes,
                })
            })
            .collect();
        let request =
            serde_json::json!({ "resourceSpans": [{ "scopeSpans": [{ "spans": list }] }] });
        text.push_str(&request.to_string());
        text.push('\n');
    }
    std::fs::write(path, text)
}

/// An attribute of `span` as text (strings, bools and ints), if present.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(Value::BoolValue(b)) => Some(b.to_string()),
            Some(Value::IntValue(i)) => Some(i.to_string()),
            Some(Value::DoubleValue(d)) => Some(d.to_string()),
            _ => None,
        })
}
