//! The full herd trial: `cargo run --release --example herd` runs 16 agents × 30 tasks.
//! `--help` lists every knob; `HERD_*` variables and a `--config` TOML file set them too.
//!
//! Exit codes: 0 every gate passed; 1 a gate failed or work was lost; 2 bad configuration or an
//! unreachable dependency (no trial verdict).

use std::process::ExitCode;

use clap::Parser;
use herd::trial::cli::{Cli, Command, resolve_config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Check { dir }) = &cli.command {
        return ExitCode::from(herd::trial::check_dir(dir));
    }
    let config = match resolve_config(&cli.trial, |k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("herd: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herd: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(herd::trial::run(config)) {
        Ok(outcome) => {
            print!("{}", outcome.results.summary_block());
            println!("  output:             {}", outcome.out_dir.display());
            ExitCode::from(if outcome.results.passed { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("herd: {e}");
            ExitCode::from(2)
        }
    }
}
