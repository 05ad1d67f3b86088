//! `BusServer`: where the bus runs for a trial — an external server or cluster named by
//! `NATS_URL`, or a [`NatsServer`] fixture started for the occasion.

use crate::access::Role;
use crate::error::Result;
use crate::fixture::NatsServer;

/// The environment variable naming an external NATS server; set, no fixture is started.
pub const NATS_URL_ENV: &str = "NATS_URL";

/// The server a trial talks to.
#[derive(Debug)]
pub enum BusServer {
    /// An external server (or cluster seed) we neither start nor stop.
    External {
        /// Its client URL.
        url: String,
    },
    /// A child process this process started; stopped when dropped.
    Fixture(NatsServer),
}

impl BusServer {
    /// `NATS_URL` if set and non-empty, else a freshly started fixture with users and
    /// permissions ([`NatsServer::start_secured`]).
    pub fn from_env() -> Result<BusServer> {
        BusServer::resolve(std::env::var(NATS_URL_ENV).ok().as_deref())
    }

    /// An external server at `url` if given and non-empty, else a freshly started secured
    /// fixture.
    pub fn resolve(url: Option<&str>) -> Result<BusServer> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => Ok(BusServer::External {
                url: url.to_string(),
            }),
            None => Ok(BusServer::Fixture(NatsServer::start_secured()?)),
        }
    }

    /// The client URL for `role` (with its credentials for a secured fixture; an external
    /// server's URL as given, for every role).
    pub fn url_as(&self, role: Role) -> String {
        match self {
            BusServer::External { url } => url.clone(),
            BusServer::Fixture(server) => server.url_as(role),
        }
    }

    /// The hub's client URL ([`url_as`](Self::url_as) `Role::Hub`).
    pub fn url(&self) -> String {
        self.url_as(Role::Hub)
    }

    /// The URL without credentials, for reports.
    pub fn public_url(&self) -> String {
        crate::access::redact(&self.url())
    }

    /// The version of the fixture's binary (`None` for an external server: ask the server).
    pub fn fixture_version(&self) -> Option<String> {
        match self {
            BusServer::External { .. } => None,
            BusServer::Fixture(server) => crate::binary::version_of(server.binary())
                .ok()
                .map(|v| v.to_string()),
        }
    }

    /// Stops a fixture gracefully; an external server is left alone.
    pub fn stop(&mut self) -> Result<()> {
        match self {
            BusServer::External { .. } => Ok(()),
            BusServer::Fixture(server) => server.stop(),
        }
    }
}
