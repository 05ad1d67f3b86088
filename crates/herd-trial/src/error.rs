//! Errors of the trial room, and the exit code each maps to.

use std::path::PathBuf;

/// A configuration that cannot run. Always exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value out of range or of the wrong type; `key` is the field or variable name.
    #[error("invalid config: {key} = {value:?}: {reason}")]
    Invalid {
        /// The field (`agents`) or environment variable (`HERD_AGENTS`).
        key: String,
        /// The offending value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `HERD_*` variable that does not fit its field.
    #[error("invalid config in environment: {reason}")]
    Env {
        /// The deserializer's message (names the field).
        reason: String,
    },
    /// The `--config` file cannot be read or parsed.
    #[error("invalid config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the key for unknown or mistyped keys).
        reason: String,
    },
}

/// Everything that can stop a trial before it has a verdict.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// Bad configuration (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The bus could not be started or reached (exit 2).
    #[error("bus unavailable: {0}")]
    Bus(#[from] herd_bus::BusError),
    /// The hub could not be started (exit 2).
    #[error("hub unavailable: {0}")]
    Hub(#[from] herd_hub::HubError),
    /// A leaf could not be opened (exit 2).
    #[error("leaf {leaf} could not start: {source}")]
    Leaf {
        /// The leaf id.
        leaf: String,
        /// Why.
        #[source]
        source: herd_leaf::LeafError,
    },
    /// A leaf process could not be started or died before it was ready (exit 2).
    #[error("leaf process {leaf}: {what}")]
    LeafProcess {
        /// The leaf id (`*` when no leaf could start).
        leaf: String,
        /// What happened, with the tail of its log.
        what: String,
    },
    /// The trial was interrupted (SIGINT/SIGTERM) and tore down (exit 130).
    #[error("interrupted: every leaf, the hub and the bus were stopped")]
    Interrupted,
    /// A link proxy (link faults) could not listen on loopback.
    #[error("starting the link proxies: {0}")]
    Links(#[source] std::io::Error),
    /// Writing the outputs failed (exit 2).
    #[error("writing {path}: {source}")]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
