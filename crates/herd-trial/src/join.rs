//! The join file: everything a `herd leaf` needs to join a running hub and bus — URLs, its
//! slot's push token, the trial configuration its workload derives from, the run's time zero
//! and where its artifacts go. Written by `herd hub` and by a trial whose leaves are processes;
//! read by `herd leaf --join FILE`. It holds secrets (tokens, the bus password): written 0600.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::TrialConfig;
use crate::error::TrialError;

/// The join file's contents.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JoinSpec {
    /// The hub's repository URL.
    pub hub_url: String,
    /// The bus URL with the leaf user's credentials (a comma-separated list for a cluster).
    pub bus_url: String,
    /// Per slot, a different bus URL (each leaf's own leaf-node server); empty: `bus_url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slot_bus_urls: Vec<String>,
    /// The JetStream domain leaves address the hub's JetStream through (leaf-node layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_domain: Option<String>,
    /// Push token per slot directory.
    pub tokens: BTreeMap<String, String>,
    /// The trial configuration (agents, seed, sizes, ...): leaf `i` runs slot `i` of its workload.
    pub config: TrialConfig,
    /// The run's time zero, ns since the Unix epoch: history lines count from it.
    pub zero_unix_ns: u64,
    /// Where the run's outputs go (`leaf-events/<id>.jsonl` for each leaf's history).
    pub out_dir: PathBuf,
    /// Where leaf directories go (`leaves/<id>`).
    pub work_dir: PathBuf,
    /// Prefix of leaf ids (a run tag against a shared external bus; empty otherwise).
    pub tag: String,
}

impl JoinSpec {
    /// Writes the file readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), TrialError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_string_pretty(self).map_err(|e| output(path, e))?;
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| output(path, e))
    }

    /// Reads a join file.
    pub fn read(path: &Path) -> Result<JoinSpec, TrialError> {
        let text = std::fs::read_to_string(path).map_err(|e| output(path, e))?;
        serde_json::from_str(&text).map_err(|e| output(path, e))
    }

    /// The bus URL of the leaf running slot `index`.
    pub fn bus_url_for(&self, index: usize) -> &str {
        self.slot_bus_urls
            .get(index)
            .map_or(self.bus_url.as_str(), String::as_str)
    }

    /// The history file of leaf `id`.
    pub fn events_path(&self, id: &str) -> PathBuf {
        self.out_dir.join("leaf-events").join(format!("{id}.jsonl"))
    }

    /// The history part of start `incarnation` of leaf `id` (0: [`JoinSpec::events_path`]).
    pub fn events_part(&self, id: &str, incarnation: u32) -> PathBuf {
        match incarnation {
            0 => self.events_path(id),
            n => self
                .out_dir
                .join("leaf-events")
                .join(format!("{id}.{n}.jsonl")),
        }
    }
}

/// Now, as ns since the Unix epoch.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The local instant of `zero_unix_ns` (now minus how long ago it was).
pub fn zero_instant(zero_unix_ns: u64) -> std::time::Instant {
    let ago = std::time::Duration::from_nanos(unix_ns().saturating_sub(zero_unix_ns));
    let now = std::time::Instant::now();
    now.checked_sub(ago).unwrap_or(now)
}

fn output(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> TrialError {
    TrialError::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}
