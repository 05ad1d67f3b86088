//! The environment block of `results.json`: versions and machine facts, read at run time.

use std::process::Command;

use crate::results::Environment;

/// `git describe --always --dirty` of the source this binary was built from.
pub const REVISION: &str = env!("HERD_GIT_REVISION");

/// Reads versions and core count. `nats_server` is supplied by the caller (fixture or external).
pub fn probe(nats_server: String) -> Environment {
    let git = Command::new("git")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "git not found".into());
    Environment {
        herd_version: env!("CARGO_PKG_VERSION").to_string(),
        herd_revision: REVISION.to_string(),
        nats_server,
        git,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }
}
