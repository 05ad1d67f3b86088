//! `herd hub`: a standalone hub and bus for leaves started elsewhere (`herd leaf`, by hand or by
//! a scheduler, on this machine or others). It brings up the bus (a nats-server child, or
//! `NATS_URL`) and the hub with one push token per slot of the configured workload, writes the
//! join file (`<out>/join.json`, 0600: tokens and the bus password) and prints what to run.
//! On SIGINT/SIGTERM it snapshots the bus buckets and hub facts, folds the leaves' histories
//! into `events.jsonl`, and stops — leaving an output directory `herd check` can re-check.

use std::net::SocketAddr;
use std::path::PathBuf;

use herd_check::HubFacts;

use crate::config::TrialConfig;
use crate::error::TrialError;
use crate::join::unix_ns;
use crate::leaves::leaf_id;
use crate::rig::Core;
use crate::runner::{dump_kv, output_err, write_json};
use crate::workload::Workload;

/// Where the hub listens and how leaves reach it.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// Listen address of the hub's HTTP server.
    pub bind: SocketAddr,
    /// Host leaves use to reach the hub (default: the bind address's IP).
    pub advertise: Option<String>,
}

/// Runs the hub until `stop` resolves; returns the output directory.
pub async fn run(
    config: TrialConfig,
    options: HubOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<PathBuf, TrialError> {
    config.validate()?;
    if config.board == crate::board::Board::Shared {
        // The pool is opened by a trial's rig; hand-started leaves work their own slots.
        return Err(crate::error::ConfigError::Invalid {
            key: "board".into(),
            value: "shared".into(),
            reason: "a shared board runs in a trial; herd hub serves leaves their own tasks".into(),
        }
        .into());
    }
    let workload = Workload::generate(&config);
    let out_dir = std::path::absolute(config.out.clone().unwrap_or_else(|| {
        PathBuf::from("target")
            .join("herd-hubs")
            .join(crate::runner::timestamp())
    }))
    .map_err(|e| output_err(&std::env::current_dir().unwrap_or_default(), e))?;
    let work_dir = out_dir.join("state");
    for dir in [
        &out_dir,
        &work_dir.join("leaves"),
        &out_dir.join("leaf-events"),
    ] {
        std::fs::create_dir_all(dir).map_err(|e| output_err(dir, e))?;
    }
    let core = Core::start(&config, &workload, &work_dir, options.bind).await?;
    let hub_url = match &options.advertise {
        Some(host) => format!(
            "http://{host}:{}/{}",
            core.hub.addr().port(),
            core.hub.url().rsplit('/').next().unwrap_or("herd")
        ),
        None => core.hub.url(),
    };
    let dirs = (out_dir.clone(), work_dir.clone());
    let join = core.join_spec(&config, &workload, hub_url.clone(), dirs, unix_ns());
    core.write_plan(&workload, config.board, &out_dir)?;
    let Core {
        mut server,
        bus,
        hub,
        seed_commits,
        ..
    } = core;
    // Claim revisions expire with their leases: follow the bucket so `herd check` sees them all.
    let claims = bus.record_bucket(herd_bus::CLAIMS_BUCKET).await?;
    let join_path = out_dir.join("join.json");
    join.write(&join_path)?;
    // An empty history the leaves' histories are folded into at stop.
    std::fs::write(out_dir.join("events.jsonl"), "").map_err(|e| output_err(&out_dir, e))?;

    println!(
        "herd hub: {} slots, seed {}",
        workload.slots.len(),
        config.seed
    );
    println!("  repository: {hub_url}");
    println!(
        "  bus:        {} ({})",
        server.public_url(),
        server.layout_name()
    );
    println!(
        "  join file:  {} (tokens and bus password; keep private)",
        join_path.display()
    );
    println!(
        "  run each leaf: herd leaf --join {} --slot I   (I = 0..{})",
        join_path.display(),
        workload.slots.len()
    );
    println!(
        "  stop with Ctrl-C or SIGTERM, then: herd check {}",
        out_dir.display()
    );

    stop.await;

    dump_kv(&bus, &out_dir, claims.stop().await).await?;
    let stats = hub.stats();
    write_json(
        &out_dir.join("hub.json"),
        &HubFacts {
            commits_landed: stats.commits_landed,
            seed_commits,
        },
    )?;
    let parts: Vec<PathBuf> = workload
        .slots
        .iter()
        .map(|p| join.events_path(&leaf_id(&join.tag, p.slot)))
        .collect();
    let events = out_dir.join("events.jsonl");
    crate::events::merge(&events, &parts).map_err(|e| output_err(&events, e))?;
    hub.shutdown().await;
    server.stop()?;
    println!(
        "herd hub: stopped after {} commits; re-check with: herd check {}",
        stats.commits_landed,
        out_dir.display()
    );
    Ok(out_dir)
}
