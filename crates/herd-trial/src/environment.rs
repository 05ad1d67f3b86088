//! The environment block of `results.json`: versions and machine facts, read at run time.

use std::path::Path;
use std::process::Command;

use crate::results::Environment;

/// `git describe --always --dirty` of the source this binary was built from.
pub const REVISION: &str = env!("HERD_GIT_REVISION");

/// Reads versions, core count and the file system under `scratch` (where the trial's
/// repositories and ledgers live). `nats_server` is supplied by the caller (fixture or
/// external).
pub fn probe(nats_server: String, scratch: Option<&Path>) -> Environment {
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
        scratch_fs: scratch.and_then(filesystem).unwrap_or_default(),
    }
}

/// The type of the file system `path` is on, from the longest mount point in
/// `/proc/self/mounts` that holds it; `None` where that cannot be read.
pub fn filesystem(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            // Mount points escape spaces as \040.
            let point = point.replace("\\040", " ");
            path.starts_with(&point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_file_system_is_named() {
        // /proc is procfs wherever /proc/self/mounts can be read.
        assert_eq!(filesystem(Path::new("/proc/self")).as_deref(), Some("proc"));
        let dir = tempfile::tempdir().unwrap();
        let kind = filesystem(dir.path()).expect("the temp dir's file system");
        assert!(!kind.is_empty() && kind != "proc", "{kind}");
        assert_eq!(filesystem(&dir.path().join("missing")), None);
    }
}
