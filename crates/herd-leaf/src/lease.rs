//! Claim leases kept alive while a task runs. A claim is a lease (`claim_ttl`); a task that runs
//! longer than that would lose it silently and push under a dead claim. So each won claim gets a
//! renewer that re-writes it every third of the lease ([`herd_bus::Bus::renew`], same epoch).
//! A renewal that finds the claim gone or taken marks the task *lapsed*: the leaf's next check
//! refuses to push (`EpochStale`), and the hub's fencing would refuse it anyway.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herd_bus::Bus;
use tokio::task::JoinHandle;

/// The leaf's live leases.
#[derive(Default)]
pub(crate) struct Leases {
    renewers: Mutex<HashMap<String, JoinHandle<()>>>,
    lapsed: Arc<Mutex<HashSet<String>>>,
    /// Each held claim's latest revision (its epoch, then each renewal's), so a release is
    /// one request.
    revisions: Arc<Mutex<HashMap<String, u64>>>,
}

impl Leases {
    /// Starts renewing `leaf`'s claim of `epoch` on `task`.
    pub fn hold(&self, bus: &Bus, task: &str, epoch: u64, leaf: &str, ttl: Duration) {
        let (bus, id, leaf) = (bus.clone(), task.to_string(), leaf.to_string());
        let lapsed = self.lapsed.clone();
        lapsed.lock().expect("lease lock").remove(task);
        let revisions = self.revisions.clone();
        revisions
            .lock()
            .expect("lease lock")
            .insert(task.to_string(), epoch);
        let every = (ttl / 3).max(Duration::from_millis(300));
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match bus.renew(&id, epoch, &leaf, ttl).await {
                    Ok(Some(revision)) => {
                        revisions
                            .lock()
                            .expect("lease lock")
                            .insert(id.clone(), revision);
                    }
                    Ok(None) => {
                        tracing::warn!(task = %id, epoch, "claim lapsed before the task finished");
                        lapsed.lock().expect("lease lock").insert(id);
                        return;
                    }
                    // A bus hiccup: try again next round; the lease still has two thirds left.
                    Err(e) => tracing::warn!(task = %id, error = %e, "renewing a claim"),
                }
            }
        });
        if let Some(old) = self
            .renewers
            .lock()
            .expect("lease lock")
            .insert(task.to_string(), renewer)
        {
            old.abort();
        }
    }

    /// Stops renewing `task` (closed, released or failed); the claim's latest known revision.
    pub fn drop_lease(&self, task: &str) -> Option<u64> {
        if let Some(renewer) = self.renewers.lock().expect("lease lock").remove(task) {
            renewer.abort();
        }
        self.revisions.lock().expect("lease lock").remove(task)
    }

    /// Stops renewing every claim without giving any back (the leaf crashed).
    pub fn abandon_all(&self) {
        for (_, renewer) in self.renewers.lock().expect("lease lock").drain() {
            renewer.abort();
        }
    }

    /// Is `task`'s claim being renewed?
    pub fn holds(&self, task: &str) -> bool {
        self.renewers.lock().expect("lease lock").contains_key(task)
    }

    /// Did `task`'s claim lapse while it ran?
    pub fn lapsed(&self, task: &str) -> bool {
        self.lapsed.lock().expect("lease lock").contains(task)
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        for (_, renewer) in self.renewers.lock().expect("lease lock").drain() {
            renewer.abort();
        }
    }
}
