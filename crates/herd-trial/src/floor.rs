//! The floor: how many commits per second one pusher lands, alone, through the same parts a
//! herd uses — a hub in the given mode publishing payload broadcasts on a real bus, and a
//! leaf's git path (commit on the tip it holds, one receive-pack request) with slot 0's
//! workload — back to back, no think time and no task bookkeeping. A herd's throughput divided
//! by the floor measured on the same machine in the same run says what coordination costs (or
//! buys) independent of how fast the machine is.
//!
//! `cargo run --release --example hub_bench` prints it; `herd sweep` measures it first.

use std::time::{Duration, Instant};

use herd_bus::{Bus, BusServer};
use herd_hub::{Access, Hub, HubConfig, HubMode, Tokens};
use herd_leaf::git_ops::{PushResult, PushTarget, Repo};
use serde::{Deserialize, Serialize};

use crate::config::TrialConfig;
use crate::error::TrialError;
use crate::metrics::{Latency, Summary};
use crate::workload::Workload;

/// What the floor run measured.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Floor {
    /// Hub mode of the run.
    pub hub: HubMode,
    /// Commits landed.
    pub commits: u64,
    /// Wall-clock seconds from the first commit to the last accepted push.
    pub secs: f64,
    /// Commits per second: the floor.
    pub commits_per_sec: f64,
    /// One commit + push, ms.
    pub commit: Summary,
    /// The hub's receive time per push, µs (p50, p99).
    pub hub_receive_us: (u64, u64),
}

/// Lands `commits` commits (slot 0's files of `config`'s workload, cycled) one after another.
pub async fn measure(config: &TrialConfig, commits: u64) -> Result<Floor, TrialError> {
    let dir = tempfile::Builder::new()
        .prefix("herd-floor-")
        .tempdir()
        .map_err(|e| output(std::env::temp_dir(), e))?;
    let mut server = BusServer::from_env()?;
    let bus = Bus::connect(&server.url()).await?;
    let tokens = Tokens::generate(&["slot-0"]).map_err(|e| output(dir.path().to_path_buf(), e))?;
    let bearer = format!("Bearer {}", tokens.token_for("slot-0").unwrap_or_default());
    let hub = Hub::start(HubConfig {
        dir: dir.path().join("hub"),
        bus: Some(bus.clone()),
        mode: config.hub,
        payload_max_bytes: usize::try_from(config.payload_max_bytes).unwrap_or(usize::MAX),
        access: Access::Tokens(tokens),
        ..Default::default()
    })
    .await?;
    let mut shape = config.clone();
    shape.agents = 1;
    shape.tasks_per_agent = u32::try_from(commits.clamp(1, 100_000)).unwrap_or(1);
    let workload = Workload::generate(&shape);
    let (url, leaf_dir) = (hub.url(), dir.path().join("leaf"));
    let target = match config.hub {
        HubMode::Race => PushTarget::Trunk,
        HubMode::Queue => PushTarget::Queue,
    };
    let tasks = workload.slots[0].tasks.clone();
    let measured = tokio::task::spawn_blocking(move || {
        Repo::scoped(&url, &leaf_dir, |repo| {
            let mut latency = Latency::default();
            let started = Instant::now();
            for (i, task) in tasks.iter().enumerate() {
                let files: Vec<(String, Vec<u8>)> = task
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.bytes.clone()))
                    .collect();
                let t = Instant::now();
                repo.commit_files(&files, "leaf-0", &format!("floor {i}\n"))?;
                match repo.push(
                    &[("x-herd-slot", "slot-0"), ("authorization", &bearer)],
                    target,
                ) {
                    PushResult::Accepted { .. } => {}
                    other => {
                        return Err(git2::Error::from_str(&format!(
                            "the floor's push {i} did not land: {other:?}"
                        )));
                    }
                }
                // The next commit builds on this one: alone, every push lands as pushed.
                latency.record(t.elapsed());
            }
            Ok((started.elapsed(), latency))
        })
    })
    .await
    .map_err(|e| output(dir.path().to_path_buf(), std::io::Error::other(e)))?;
    let (elapsed, latency): (Duration, Latency) = measured.and_then(|r| r).map_err(|e| {
        output(
            dir.path().to_path_buf(),
            std::io::Error::other(e.message().to_string()),
        )
    })?;
    let stats = hub.stats();
    hub.shutdown().await;
    server.stop()?;
    let secs = elapsed.as_secs_f64();
    Ok(Floor {
        hub: config.hub,
        commits: latency.count(),
        secs,
        commits_per_sec: if secs > 0.0 {
            latency.count() as f64 / secs
        } else {
            0.0
        },
        commit: latency.summary(),
        hub_receive_us: (stats.receive_p50_us, stats.receive_p99_us),
    })
}

fn output(path: std::path::PathBuf, source: std::io::Error) -> TrialError {
    TrialError::Output { path, source }
}
