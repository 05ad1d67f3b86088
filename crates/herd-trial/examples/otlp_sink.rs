//! A local OTLP/HTTP sink for overhead measurements: accepts and decodes every export, prints
//! the span count when it stops. Stops by itself after the given seconds (default 600).
//!
//! `cargo run --release -p herd-trial --example otlp_sink -- [seconds]`; it prints its endpoint.

use herd_trial::telemetry::receiver::{Mode, OtlpReceiver};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(600);
    let receiver = OtlpReceiver::start(Mode::Otlp).await?;
    println!("{}", receiver.endpoint());
    tokio::select! {
        _ = tokio::time::sleep(std::time::Duration::from_secs(secs)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!(
        "otlp_sink: {} spans in {} requests",
        receiver.spans().len(),
        receiver.requests()
    );
    Ok(())
}
