//! The hub's error type. Request-level problems become 4xx responses with a one-line reason
//! ([`RequestError`]); [`HubError`] is what `Hub::start` and the repository layer return.

use std::path::PathBuf;

/// Starting or running the hub failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The repository could not be created or opened.
    #[error("hub repository {path}: {source}")]
    Repo {
        /// The repository directory.
        path: PathBuf,
        /// The git2 error.
        #[source]
        source: git2::Error,
    },
    /// The listener could not bind.
    #[error("hub cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A git operation failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// Running the `git` CLI (upload-pack, repack) failed.
    #[error("running git {what}: {reason}")]
    GitCli {
        /// Which command.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// A refused HTTP request: status and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct RequestError {
    /// HTTP status (4xx, or 500 for internal failures).
    pub status: u16,
    /// One line saying why.
    pub reason: String,
}

impl RequestError {
    /// A 400 Bad Request.
    pub fn bad(reason: impl Into<String>) -> Self {
        RequestError {
            status: 400,
            reason: reason.into(),
        }
    }

    /// A 503: the hub is overloaded, try again later.
    pub fn busy(reason: impl Into<String>) -> Self {
        RequestError {
            status: 503,
            reason: reason.into(),
        }
    }

    /// A 500, for failures of the hub itself.
    pub fn internal(reason: impl Into<String>) -> Self {
        RequestError {
            status: 500,
            reason: reason.into(),
        }
    }
}
