//! Pre-flight: before a trial, prove the traces endpoint answers like an OTLP collector.
//!
//! opentelemetry-otlp counts any 2xx as a successful export — an HTML page answering 200
//! swallowed eight trials of spans in the reference project. So: POST an empty
//! `ExportTraceServiceRequest` (zero bytes, `application/x-protobuf`) and require status 200, a
//! response `Content-Type` starting with `application/x-protobuf`, and a body that decodes as
//! `ExportTraceServiceResponse` without rejected spans.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

/// Why an endpoint is not a collector.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// No answer at all.
    #[error("OTLP endpoint {url} unreachable: {reason}")]
    Unreachable {
        /// The traces URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// A gRPC endpoint whose `TraceService/Export` call failed.
    #[error("OTLP/gRPC endpoint {url} does not answer like an OTLP collector: {reason}")]
    NotOtlpGrpc {
        /// The endpoint.
        url: String,
        /// The gRPC status or what was wrong.
        reason: String,
    },
    /// An answer, but not an OTLP one.
    #[error(
        "OTLP endpoint {url} does not answer like an OTLP collector: status {status}, content-type {content_type:?}: {reason}"
    )]
    NotOtlp {
        /// The traces URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Response content type.
        content_type: String,
        /// What was wrong.
        reason: String,
    },
}

/// The gRPC pre-flight: one `TraceService/Export` call with an empty request on `runtime`,
/// which must succeed without rejected spans (a port that speaks anything but OTLP/gRPC fails
/// the call). Blocking; at most about `timeout`.
pub fn check_grpc(
    url: &str,
    timeout: Duration,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), PreflightError> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let unreachable = |reason: String| PreflightError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let not_otlp = |reason: String| PreflightError::NotOtlpGrpc {
        url: url.to_string(),
        reason,
    };
    runtime.block_on(async {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(format!("{e}: {e:?}")))?;
        let response = TraceServiceClient::new(channel)
            .export(ExportTraceServiceRequest::default())
            .await
            .map_err(|status| not_otlp(format!("{}: {}", status.code(), status.message())))?;
        if let Some(partial) = response.into_inner().partial_success
            && partial.rejected_spans > 0
        {
            return Err(not_otlp(format!(
                "collector rejected spans: {}",
                partial.error_message
            )));
        }
        Ok(())
    })
}

/// Runs the pre-flight (blocking; at most `timeout`).
pub fn check(url: &str, timeout: Duration) -> Result<(), PreflightError> {
    let unreachable = |e: reqwest::Error| PreflightError::Unreachable {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(unreachable)?;
    let response = client
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .body(Vec::<u8>::new())
        .send()
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.bytes().map_err(unreachable)?;
    let not_otlp = |reason: String| PreflightError::NotOtlp {
        url: url.to_string(),
        status,
        content_type: content_type.clone(),
        reason,
    };
    if status != 200 {
        return Err(not_otlp("expected status 200".into()));
    }
    if !content_type.starts_with("application/x-protobuf") {
        return Err(not_otlp(
            "expected content-type application/x-protobuf".into(),
        ));
    }
    let decoded = ExportTraceServiceResponse::decode(body.as_ref())
        .map_err(|e| not_otlp(format!("body is not an ExportTraceServiceResponse: {e}")))?;
    if let Some(partial) = decoded.partial_success
        && partial.rejected_spans > 0
    {
        return Err(not_otlp(format!(
            "collector rejected spans: {}",
            partial.error_message
        )));
    }
    Ok(())
}
