//! `GrpcReceiver`: a minimal OTLP/gRPC traces collector (tonic + opentelemetry-proto's
//! `TraceService`) on 127.0.0.1, for tests: the gRPC twin of [`super::receiver::OtlpReceiver`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::task::JoinHandle;

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<u64>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if let Ok(mut n) = self.requests.lock() {
            *n += 1;
        }
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        if let Ok(mut all) = self.spans.lock() {
            all.extend(spans);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running gRPC receiver; stops on drop.
pub struct GrpcReceiver {
    addr: SocketAddr,
    collector: Collector,
    handle: JoinHandle<()>,
}

impl GrpcReceiver {
    /// Binds 127.0.0.1 on a free port and serves the OTLP `TraceService`.
    pub async fn start() -> std::io::Result<GrpcReceiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        let incoming = tokio_stream_listener(listener);
        let handle = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(GrpcReceiver {
            addr,
            collector,
            handle,
        })
    }

    /// The endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` with `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.collector
            .spans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Export calls received (including the pre-flight's empty one).
    pub fn requests(&self) -> u64 {
        self.collector.requests.lock().map(|r| *r).unwrap_or(0)
    }
}

impl Drop for GrpcReceiver {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The listener's connections as the stream tonic serves.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| stream);
        Some((next, listener))
    })
}
