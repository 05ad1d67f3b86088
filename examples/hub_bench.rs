//! The floor: commits per second of one pusher, alone, through a hub publishing payload
//! broadcasts on a real bus and a leaf's git path (`herd::trial::floor`).
//!
//! `cargo run --release --example hub_bench -- [commits] [race|queue]` (defaults 1000, race).

use std::process::ExitCode;

use herd::trial::TrialConfig;
use herd::trial::floor;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let commits: u64 = match args.next().map(|a| a.parse()) {
        None => 1000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return usage("commits must be a positive whole number"),
    };
    let hub = match args.next().map(|a| a.parse()) {
        None => herd::hub::HubMode::Race,
        Some(Ok(mode)) => mode,
        Some(Err(e)) => return usage(&e),
    };
    let config = TrialConfig {
        hub,
        ..TrialConfig::default()
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return usage(&e.to_string()),
    };
    match runtime.block_on(floor::measure(&config, commits)) {
        Ok(f) => {
            println!(
                "hub bench: one pusher, {} commits, hub {}",
                f.commits,
                f.hub.as_str()
            );
            println!("  floor commits/s:      {:.1}", f.commits_per_sec);
            println!(
                "  commit+push p50 / p99 / max ms: {:.2} / {:.2} / {:.2}",
                f.commit.p50_ms, f.commit.p99_ms, f.commit.max_ms
            );
            println!(
                "  hub receive p50 / p99 µs: {} / {}",
                f.hub_receive_us.0, f.hub_receive_us.1
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hub_bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("hub_bench: {why}\nusage: hub_bench [commits] [race|queue]");
    ExitCode::from(2)
}
