//! upload-pack (fetch and clone) runs the stock `git upload-pack --stateless-rpc`: fetches are
//! read-only, git's negotiation and pack generation are well tested, and the measured cost
//! (~18 ms per fetch here) is acceptable next to the push path, which is in process.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::RequestError;

/// `git upload-pack --stateless-rpc --advertise-refs <dir>` output.
pub async fn advertise(dir: &Path) -> Result<Vec<u8>, RequestError> {
    run(dir, &["--advertise-refs"], &[]).await
}

/// `git upload-pack --stateless-rpc <dir>` with `body` on stdin.
pub async fn serve(dir: &Path, body: &[u8]) -> Result<Vec<u8>, RequestError> {
    run(dir, &[], body).await
}

async fn run(dir: &Path, extra: &[&str], stdin: &[u8]) -> Result<Vec<u8>, RequestError> {
    let mut child = Command::new("git")
        .arg("upload-pack")
        .arg("--stateless-rpc")
        .args(extra)
        .arg(dir)
        .env_remove("GIT_PROTOCOL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RequestError::internal(format!("starting git upload-pack: {e}")))?;
    if let Some(mut input) = child.stdin.take() {
        // A client that sends garbage makes upload-pack exit early; a broken pipe is its answer.
        let _ = input.write_all(stdin).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| RequestError::internal(format!("git upload-pack: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let reason = err.lines().last().unwrap_or("failed").trim().to_string();
        return Err(RequestError::bad(format!("upload-pack: {reason}")));
    }
    Ok(out.stdout)
}
