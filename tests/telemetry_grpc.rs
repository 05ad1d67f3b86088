//! OTLP over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`, collectors on 4317): a smoke trial's
//! spans arrive at an in-test tonic `TraceService`, counted independently of the trial; the
//! pre-flight refuses an endpoint that does not speak OTLP/gRPC; an unsupported protocol is
//! a configuration error naming the variable.

mod common;

use std::process::Output;

use herd::trial::telemetry::grpc_receiver::GrpcReceiver;
use herd::trial::telemetry::receiver::{Mode, OtlpReceiver};

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

async fn herd_grpc(endpoint: String, dir: String, protocol: &'static str) -> Output {
    tokio::task::spawn_blocking(move || {
        common::herd(
            &["--agents", "3", "--tasks-per-agent", "4", "--out", &dir],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ],
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_over_grpc_and_the_summary_equals_their_count() {
    let receiver = GrpcReceiver::start().await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = herd_grpc(
        receiver.endpoint(),
        out.path().to_str().unwrap().to_string(),
        "grpc",
    )
    .await;
    let text = text(&run);
    assert_eq!(run.status.code(), Some(0), "{text}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    let spans = receiver.spans();
    let commits = spans.iter().filter(|s| s.name == "leaf.commit").count() as u64;
    assert_eq!(commits, r["counters"]["hub_commits"].as_u64().unwrap());
    assert_eq!(commits, 12);
    let t = &r["telemetry"];
    assert_eq!(
        t["spans_exported"].as_u64(),
        Some(spans.len() as u64),
        "{t}"
    );
    assert_eq!(t["spans_failed"].as_u64(), Some(0), "{t}");
    assert_eq!(t["endpoint"].as_str(), Some(receiver.endpoint().as_str()));
    assert!(
        spans.iter().filter(|s| s.name == "herd.trial").count() == 1,
        "one trial root span"
    );
    assert!(text.contains("verdict:            PASS"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_preflight_refuses_an_http_only_collector_and_unknown_protocols_exit_2() {
    // An OTLP/HTTP collector answers HTTP/1 only: not a gRPC endpoint.
    let http = OtlpReceiver::start(Mode::Otlp).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap().to_string();
    let run = herd_grpc(http.endpoint(), dir.clone(), "grpc").await;
    let t = text(&run);
    assert_eq!(run.status.code(), Some(2), "{t}");
    assert!(t.contains(&http.endpoint()), "names the endpoint: {t}");
    assert!(!out.path().join("results.json").exists(), "no trial ran");

    let run = herd_grpc(http.endpoint(), dir, "http/json").await;
    let t = text(&run);
    assert_eq!(run.status.code(), Some(2), "{t}");
    assert!(
        t.contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
        "names the variable: {t}"
    );
}
