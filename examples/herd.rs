//! The full herd trial: `cargo run --release --example herd` runs 16 agents × 30 tasks.
//! `--help` lists every knob; `HERD_*` variables and a `--config` TOML file set them too.
//!
//! Telemetry: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) set, spans go to that
//! OTLP/HTTP collector after a pre-flight proves it is one; export failures are counted and
//! printed. Unset, the trial runs without exporting.
//!
//! Exit codes: 0 every gate passed; 1 a gate failed or work was lost; 2 bad configuration, a
//! collector that is not one, or an unreachable dependency (no trial verdict).

use std::process::ExitCode;

use clap::Parser;
use herd::trial::cli::{Cli, Command, resolve_config};
use herd::trial::telemetry::{Telemetry, TelemetryConfig};
use herd::trial::{RunOptions, run_with};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Check { dir }) = &cli.command {
        return ExitCode::from(herd::trial::check_dir(dir));
    }
    let config = match resolve_config(&cli.trial, |k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    // Before the runtime: the pre-flight and the batch exporter use blocking HTTP.
    let telemetry = match Telemetry::install(&TelemetryConfig::from_env()) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let opts = RunOptions {
        quiet: false,
        counts: Some(telemetry.counts.clone()),
    };
    let outcome = runtime.block_on(run_with(config, opts));
    drop(runtime);
    let exports = telemetry.shutdown();
    match outcome {
        Ok(mut outcome) => {
            outcome.results.telemetry = Some(exports);
            if let Err(e) = outcome.results.write(&outcome.out_dir) {
                eprintln!(
                    "herd: rewriting results in {}: {e}",
                    outcome.out_dir.display()
                );
            }
            print!("{}", outcome.results.summary_block());
            println!("  output:             {}", outcome.out_dir.display());
            ExitCode::from(if outcome.results.passed { 0 } else { 1 })
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("herd: {e}");
    ExitCode::from(2)
}
