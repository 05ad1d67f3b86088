//! The leaf's one error type. Every variant that concerns a task names it.

/// Everything a leaf operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    /// Another leaf holds the claim.
    #[error("task {task} is already claimed by {holder}")]
    AlreadyClaimed {
        /// The task.
        task: String,
        /// The holder's leaf id.
        holder: String,
    },
    /// The task is not in the bus (or not in this leaf's ledger).
    #[error("task {task} not found")]
    NotFound {
        /// The task.
        task: String,
    },
    /// The claim lapsed or was taken over: the epoch is no longer the live claim's.
    #[error("task {task}: claim epoch {epoch} is stale (live claim: {live:?}); nothing was pushed")]
    EpochStale {
        /// The task.
        task: String,
        /// The epoch the caller holds.
        epoch: u64,
        /// The live claim's epoch, if any.
        live: Option<u64>,
    },
    /// The task is already done (committed or closed): it cannot be claimed again.
    #[error("task {task} is {state} already; it cannot be claimed again")]
    Done {
        /// The task.
        task: String,
        /// Its state (`committed` or `closed`).
        state: &'static str,
    },
    /// The rebase after a fork hit a real content conflict once more than the conflict budget
    /// allows redoing the task; it failed by rule and the claim was released.
    #[error(
        "task {task}: unrecoverable fork, content conflict in {paths:?} after {redos} redos; claim released"
    )]
    Conflict {
        /// The task.
        task: String,
        /// Conflicting paths.
        paths: Vec<String>,
        /// Times the task was redone on a newer tip before this conflict.
        redos: u32,
    },
    /// The push kept losing the race until the retry budget ran out (a fork unrecoverable by
    /// starvation); the claim was released.
    #[error("task {task}: push still rejected after {attempts} attempts; claim released")]
    RetriesExhausted {
        /// The task.
        task: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The hub refused the push on policy (outside the slot, not linear, ...): retrying the same
    /// change cannot help; the task failed and its claim was released.
    #[error("task {task}: refused by the hub: {reason}; claim released")]
    Refused {
        /// The task.
        task: String,
        /// The hub's reason.
        reason: String,
    },
    /// A path a task wants to write is not allowed.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The hub refused or failed a request. `unknown` is true when the push may or may not
    /// have landed (the connection failed after the request was sent).
    #[error("task {task}: hub: {reason}")]
    Hub {
        /// The task (empty when opening the leaf).
        task: String,
        /// What happened.
        reason: String,
        /// The outcome of a push is unknown.
        unknown: bool,
        /// With an unknown outcome: the commit pushed (it is on the trunk if the push landed).
        pushed: Option<String>,
    },
    /// The commit landed on the trunk, but recording it (task record, ledger) failed after: the
    /// work is done and must not be redone; the task is left `claimed` for its lease to lapse.
    #[error("task {task}: commit {oid} landed on the trunk, but recording it failed: {source}")]
    Unrecorded {
        /// The task.
        task: String,
        /// The commit on the trunk.
        oid: String,
        /// What failed.
        #[source]
        source: Box<LeafError>,
    },
    /// The bus failed.
    #[error("task {task}: bus: {source}")]
    Bus {
        /// The task (empty when not about one).
        task: String,
        /// The cause.
        #[source]
        source: Box<herd_bus::BusError>,
    },
    /// A local git operation failed.
    #[error("task {task}: git: {source}")]
    Git {
        /// The task (empty when not about one).
        task: String,
        /// The cause.
        #[source]
        source: git2::Error,
    },
    /// The ledger failed.
    #[error("task {task}: ledger: {source}")]
    Ledger {
        /// The task (empty when not about one).
        task: String,
        /// The cause.
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// The leaf stopped at a fault hook ([`crate::Leaf::halt_after_next_push`]) after the hub
    /// accepted `oid`, recording nothing.
    #[error("task {task}: halted after the hub accepted {oid}, before recording it")]
    Halted {
        /// The task.
        task: String,
        /// The commit the hub accepted.
        oid: String,
    },
    /// The leaf's repository worker is gone (the leaf was shut down).
    #[error("leaf worker stopped")]
    WorkerGone,
    /// The leaf was configured wrongly.
    #[error("invalid leaf config: {0}")]
    Config(String),
    /// A local file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl LeafError {
    /// True when the outcome is unknown (a push whose reply was lost): the commit may be on the
    /// trunk. History checkers resolve it against the repository.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, LeafError::Hub { unknown: true, .. })
    }

    /// The commit on the trunk of a commit whose recording failed ([`LeafError::Unrecorded`]).
    pub fn landed(&self) -> Option<&str> {
        match self {
            LeafError::Unrecorded { oid, .. } => Some(oid),
            _ => None,
        }
    }

    /// The commit a push with an unknown outcome tried to land.
    pub fn pushed(&self) -> Option<&str> {
        match self {
            LeafError::Hub {
                unknown: true,
                pushed,
                ..
            } => pushed.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn bus(task: &str, source: herd_bus::BusError) -> LeafError {
        LeafError::Bus {
            task: task.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn git(task: &str, source: git2::Error) -> LeafError {
        LeafError::Git {
            task: task.to_string(),
            source,
        }
    }

    pub(crate) fn ledger(task: &str, source: rusqlite::Error) -> LeafError {
        LeafError::Ledger {
            task: task.to_string(),
            source: Box::new(source),
        }
    }
}
