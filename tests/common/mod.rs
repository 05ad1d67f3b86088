//! Shared by the root tests: locating (and if stale, rebuilding) the `herd` example, and
//! running it with a clean herd environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The example binary cargo built next to this test (`cargo test` builds examples).
pub fn herd_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("herd");
    // `cargo test` builds the example; `cargo test --test <name>` does not. Rebuild only when a
    // source is newer (an unconditional nested build flips features with the outer cargo).
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if built.is_none_or(|b| newest_source(root) > b) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "herd"])
            .status()
            .unwrap();
        assert!(status.success(), "building the herd example failed");
    }
    bin
}

pub fn newest_source(root: &Path) -> std::time::SystemTime {
    fn walk(dir: &Path, newest: &mut std::time::SystemTime) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") {
                walk(&path, newest);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "toml")
                && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            {
                *newest = (*newest).max(modified);
            }
        }
    }
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for dir in ["src", "crates", "examples"] {
        walk(&root.join(dir), &mut newest);
    }
    newest
}

/// Runs the example with a clean herd environment (no HERD_*, NATS_URL or OTEL_* from outside,
/// except where nats-server comes from).
pub fn herd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(herd_bin());
    for (key, _) in std::env::vars() {
        let keep =
            ["HERD_CACHE_DIR", "HERD_NATS_SERVER", "HERD_NATS_NO_INSTALL"].contains(&key.as_str());
        if (key.starts_with("HERD_") && !keep) || key == "NATS_URL" || key.starts_with("OTEL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.args(args).envs(env.iter().copied()).output().unwrap()
}
