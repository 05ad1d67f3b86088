//! When a stream subscriber (tips, turns) must take its stream up again: the bus reconnected
//! (perhaps to a restarted server that lost the consumer), or a resume that failed is due to
//! be tried again (a cluster electing a stream leader answers "no stream found" for a while).

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The wait before trying a failed resume again.
pub(crate) const RESUME_RETRY: Duration = Duration::from_millis(500);

/// One subscriber's resume schedule.
pub(crate) struct Resume {
    connections: watch::Receiver<u64>,
    watching: bool,
    retry: Option<Instant>,
}

impl Resume {
    /// Watches `bus`'s (re)connections from now on.
    pub(crate) fn new(bus: &herd_bus::Bus) -> Resume {
        let mut connections = bus.connections();
        connections.borrow_and_update();
        Resume {
            connections,
            watching: true,
            retry: None,
        }
    }

    /// Resolves when a resume is due; never, while none is. Cancel-safe (a `select!` branch).
    pub(crate) async fn due(&mut self) {
        loop {
            tokio::select! {
                changed = self.connections.changed(), if self.watching => {
                    if changed.is_ok() {
                        return;
                    }
                    self.watching = false;
                }
                _ = tokio::time::sleep_until(self.retry.unwrap_or_else(Instant::now)), if self.retry.is_some() => {
                    self.retry = None;
                    return;
                }
                else => std::future::pending::<()>().await,
            }
        }
    }

    /// The resume worked (`Ok`) or must be tried again after [`RESUME_RETRY`] (`Err`).
    pub(crate) fn settled<T, E>(&mut self, outcome: &Result<T, E>) {
        self.retry = outcome.is_err().then(|| Instant::now() + RESUME_RETRY);
    }
}
