//! [`LeafCell`]: the leaf running one slot, which a leaf fault may stop and open again on its
//! directory (F6, F7, F13), and which may call in a standby leaf on the same slot (F8). The
//! slot runner asks the cell for the current leaf before each step; the drain, the counters
//! and the shutdown read the cell, so a restarted leaf's earlier runs and its standbys still
//! count.

use std::sync::{Arc, Mutex};

use herd_leaf::{Leaf, LeafStats, SyncHook};

use crate::error::TrialError;
use crate::join::JoinSpec;
use crate::workload::SlotPlan;

use super::{As, open_leaf_as};

/// How to open the slot's leaf again (in-process leaves only).
struct Reopen {
    join: JoinSpec,
    index: usize,
    plan: SlotPlan,
    hook: SyncHook,
}

/// One slot's leaf, replaceable.
pub struct LeafCell {
    id: String,
    /// `None` while the leaf is down (between a crash and its restart, or after a restart
    /// that failed).
    current: Mutex<Option<Arc<Leaf>>>,
    reopen: Option<Reopen>,
    /// Counters of the leaf's stopped runs and of its standbys.
    earlier: Mutex<LeafStats>,
}

impl LeafCell {
    /// A cell whose leaf cannot be opened again (a `herd leaf` process runs its one leaf).
    pub fn fixed(leaf: Arc<Leaf>) -> LeafCell {
        LeafCell {
            id: leaf.id().to_string(),
            current: Mutex::new(Some(leaf)),
            reopen: None,
            earlier: Mutex::default(),
        }
    }

    /// A cell that can open `plan`'s leaf (slot `index`) again on its directory.
    pub(crate) fn reopenable(
        leaf: Leaf,
        join: JoinSpec,
        index: usize,
        plan: SlotPlan,
        hook: SyncHook,
    ) -> LeafCell {
        LeafCell {
            id: leaf.id().to_string(),
            current: Mutex::new(Some(Arc::new(leaf))),
            reopen: Some(Reopen {
                join,
                index,
                plan,
                hook,
            }),
            earlier: Mutex::default(),
        }
    }

    /// The slot's leaf id (the same across restarts).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The leaf running now (`None`: down).
    pub fn leaf(&self) -> Option<Arc<Leaf>> {
        self.current.lock().expect("cell lock").clone()
    }

    /// Counters of every run of this slot's leaf and of its standbys.
    pub fn stats(&self) -> LeafStats {
        let mut total = *self.earlier.lock().expect("cell lock");
        if let Some(leaf) = self.leaf() {
            total.absorb(&leaf.stats());
        }
        total
    }

    /// Adds a finished standby's counters.
    pub(crate) fn absorb(&self, stats: &LeafStats) {
        self.earlier.lock().expect("cell lock").absorb(stats);
    }

    /// The leaf's directory (clone and ledger), when it runs here.
    pub fn dir(&self) -> Option<std::path::PathBuf> {
        let reopen = self.reopen.as_ref()?;
        Some(reopen.join.work_dir.join("leaves").join(&self.id))
    }

    /// Can the leaf be stopped and opened again here?
    pub fn restartable(&self) -> bool {
        self.reopen.is_some()
    }

    /// Stops the current leaf as a crash would ([`Leaf::crash`]) and closes it (its ledger
    /// too: nothing of it is open while it is down); returns the tip-stream position it
    /// reached. The caller must hold no handle of it.
    pub(crate) async fn crash(&self) -> u64 {
        let Some(leaf) = self.current.lock().expect("cell lock").take() else {
            return 0;
        };
        leaf.crash().await;
        self.earlier
            .lock()
            .expect("cell lock")
            .absorb(&leaf.stats());
        let position = leaf.tip_position();
        if Arc::strong_count(&leaf) > 1 {
            tracing::warn!(leaf = %self.id, "a crashed leaf is still referenced: its ledger stays open");
        }
        drop(leaf);
        position
    }

    /// Opens the slot's leaf again on its directory (after [`LeafCell::crash`]), taking the
    /// tip stream up after `tips_after`.
    pub(crate) async fn restart(&self, tips_after: u64) -> Result<Arc<Leaf>, TrialError> {
        let reopen = self.reopen.as_ref().ok_or_else(|| not_here(&self.id))?;
        let who = As {
            id: self.id.clone(),
            on_sync: Some(reopen.hook.clone()),
            tips_after: Some(tips_after),
        };
        let leaf = Arc::new(open_leaf_as(&reopen.join, reopen.index, &reopen.plan, who).await?);
        *self.current.lock().expect("cell lock") = Some(leaf.clone());
        Ok(leaf)
    }

    /// Opens a standby leaf on this slot (`<id>-standby`, its own directory; no history
    /// lines for its pulls): the other leaf that takes over a task whose holder's lease
    /// lapsed.
    pub(crate) async fn standby(&self) -> Result<Leaf, TrialError> {
        let reopen = self.reopen.as_ref().ok_or_else(|| not_here(&self.id))?;
        let who = As {
            id: format!("{}-standby", self.id),
            on_sync: None,
            tips_after: None,
        };
        open_leaf_as(&reopen.join, reopen.index, &reopen.plan, who).await
    }
}

fn not_here(id: &str) -> TrialError {
    TrialError::Output {
        path: std::path::PathBuf::from(id),
        source: std::io::Error::other(
            "this leaf runs in another process: it cannot be restarted here",
        ),
    }
}
