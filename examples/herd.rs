//! The full herd trial: `cargo run --release --example herd` runs 16 agents × 30 tasks.
//! `--help` lists every knob; `HERD_*` variables and a `--config` TOML file set them too.
//!
//! Telemetry: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) set, spans go to that
//! OTLP/HTTP collector after a pre-flight proves it is one; export failures are counted and
//! printed. Unset, the trial runs without exporting.
//!
//! Exit codes: 0 every gate passed and the history check passed; 1 a gate failed, work was
//! lost or the history check found a violation; 2 bad configuration, a collector that is not
//! one, or an unreachable dependency (no trial verdict); 3 every gate passed but the history
//! could not be checked (INCONCLUSIVE: never a pass); 130 interrupted.

use std::process::ExitCode;

use clap::Parser;
use herd::trial::TrialConfig;
use herd::trial::cli::{Cli, Command, HubArgs, LeafArgs, SweepArgs, resolve_config};
use herd::trial::sweep::SweepConfig;
use herd::trial::telemetry::{Telemetry, TelemetryConfig};
use herd::trial::{RunOptions, TrialError, run_with};

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::Check { dir, spans }) => {
            return ExitCode::from(herd::trial::check_dir(&dir, spans.as_deref()));
        }
        Some(Command::Leaf(args)) => return leaf(args),
        Some(Command::Hub(args)) => return hub(args),
        Some(Command::Diff {
            old,
            new,
            threshold,
        }) => return diff(&old, &new, threshold),
        Some(Command::Scenarios { file }) => return scenarios(&file, cli.trial.out.clone()),
        Some(Command::Trial(args)) => cli.trial = args,
        other => cli.command = other,
    }
    let config = match resolve_config(&cli.trial, |k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if let Some(Command::Sweep(args)) = cli.command {
        return sweep(config, args, cli.trial.tasks_per_agent);
    }
    // Before the runtime: the pre-flight and the batch exporter use blocking HTTP.
    let telemetry = match TelemetryConfig::from_env().and_then(|c| Telemetry::install(&c)) {
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
        leaf_exe: std::env::current_exe().ok(),
    };
    // SIGINT/SIGTERM drop the trial: leaf processes, the hub and the bus stop with it.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run_with(config, opts) => outcome,
            () = interrupted() => Err(TrialError::Interrupted),
        }
    });
    drop(runtime);
    let exports = telemetry.shutdown();
    match outcome {
        Ok(mut outcome) => {
            outcome.results.take_telemetry(exports);
            if let Err(e) = outcome.results.write(&outcome.out_dir) {
                eprintln!(
                    "herd: rewriting results in {}: {e}",
                    outcome.out_dir.display()
                );
            }
            print!("{}", outcome.results.summary_block());
            println!("  output:             {}", outcome.out_dir.display());
            ExitCode::from(outcome.results.verdict().1)
        }
        Err(TrialError::Interrupted) => {
            eprintln!("herd: {}", TrialError::Interrupted);
            ExitCode::from(130)
        }
        Err(e) => fail(&e),
    }
}

/// Resolves when the process gets SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// `herd diff`: the table; exit 1 on a regression.
fn diff(old: &std::path::Path, new: &std::path::Path, threshold: f64) -> ExitCode {
    if !(0.0..10.0).contains(&threshold) {
        return fail(&format!(
            "invalid --threshold {threshold}: a ratio such as 0.1"
        ));
    }
    match herd::trial::diff::diff(old, new, threshold) {
        Ok(rows) => {
            print!("{}", herd::trial::diff::markdown(&rows, threshold));
            ExitCode::from(u8::from(rows.iter().any(|r| r.regression)))
        }
        Err(e) => fail(&e),
    }
}

/// `herd hub`: runs until SIGINT/SIGTERM; exit 0 after a clean stop, 2 when it cannot start.
fn hub(args: HubArgs) -> ExitCode {
    let config = match resolve_config(&args.trial, |k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let (telemetry, runtime) = match telemetry_and_runtime() {
        Ok(both) => both,
        Err(code) => return code,
    };
    let options = herd::trial::hub_cmd::HubOptions {
        bind: args.bind,
        advertise: args.advertise,
    };
    let outcome = runtime.block_on(herd::trial::hub_cmd::run(config, options, interrupted()));
    drop(runtime);
    telemetry.shutdown();
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `herd leaf`: exit 0 every task closed, 1 some did not, 2 it could not start.
fn leaf(args: LeafArgs) -> ExitCode {
    let (telemetry, runtime) = match telemetry_and_runtime() {
        Ok(both) => both,
        Err(code) => return code,
    };
    let restart = args
        .resume_after
        .map(|tips_after| herd::trial::leaf_cmd::Restart {
            tips_after,
            incarnation: args.incarnation.max(1),
        });
    let run = herd::trial::leaf_cmd::run_traced(&args.join, args.slot, args.controlled, restart);
    let outcome = runtime.block_on(run);
    drop(runtime);
    telemetry.shutdown();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => fail(&e),
    }
}

/// The exporter (after its pre-flight; before the runtime, as it uses blocking HTTP) and a
/// runtime, or the exit code of the failure.
fn telemetry_and_runtime() -> Result<(Telemetry, tokio::runtime::Runtime), ExitCode> {
    let telemetry = TelemetryConfig::from_env()
        .and_then(|c| Telemetry::install(&c))
        .map_err(|e| fail(&e))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail(&e))?;
    Ok((telemetry, runtime))
}

/// `herd sweep`: the grid after the floor; prints the index table.
fn sweep(base: TrialConfig, args: SweepArgs, tasks_per_agent: Option<u32>) -> ExitCode {
    let out = base.out.clone().unwrap_or_else(|| {
        std::path::PathBuf::from("target")
            .join("herd-sweeps")
            .join(herd::trial::runner::timestamp())
    });
    let config = SweepConfig {
        base: TrialConfig {
            think_ms: args.think_ms,
            ..base
        },
        agents: args.agents,
        syncs: args.sync,
        hubs: args.hub,
        commits: args.commits,
        rates: args.rate,
        schedule_secs: args.schedule_secs,
        tasks_per_agent,
        default_think: args.default_think,
        floor_commits: args.floor_commits,
        out: out.clone(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(herd::trial::sweep::run(config, false)) {
        Ok(index) => {
            print!("{}", herd::trial::sweep::markdown(&index));
            println!("\noutput: {}", out.display());
            ExitCode::from(if index.rows.iter().all(|r| r.passed) {
                0
            } else {
                1
            })
        }
        Err(e) => fail(&e),
    }
}

fn scenarios(file: &std::path::Path, out: Option<std::path::PathBuf>) -> ExitCode {
    let out = out.unwrap_or_else(|| {
        std::path::PathBuf::from("target")
            .join("herd-scenarios")
            .join(herd::trial::runner::timestamp())
    });
    let list = match herd::trial::scenarios::load(file, &out) {
        Ok(list) => list,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(herd::trial::scenarios::run(list, &out, false)) {
        Ok((rows, exit)) => {
            print!("{}", herd::trial::scenarios::markdown(&rows));
            println!("\noutput: {}", out.display());
            ExitCode::from(exit)
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("herd: {e}");
    ExitCode::from(2)
}
