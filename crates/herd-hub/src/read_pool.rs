//! Read-only repository handles for fetches and advertisements, so a fetch never waits on the
//! push path's handle. Handles are reused (opening one reads config files); a repack
//! invalidates them all, since the packs they may have mapped were merged away.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use git2::Repository;

/// Most idle handles kept.
const IDLE: usize = 8;

/// A pool of handles on one bare repository.
pub struct ReadPool {
    dir: PathBuf,
    idle: Mutex<Vec<(u64, Repository)>>,
    generation: AtomicU64,
}

impl ReadPool {
    /// A pool for the repository at `dir`.
    pub fn new(dir: PathBuf) -> Self {
        ReadPool {
            dir,
            idle: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Runs `f` with a handle (blocking: call from a blocking thread).
    pub fn with<T>(&self, f: impl FnOnce(&Repository) -> T) -> Result<T, git2::Error> {
        let generation = self.generation.load(Ordering::Acquire);
        let reused = self
            .idle
            .lock()
            .expect("read pool lock")
            .pop()
            .filter(|(g, _)| *g == generation);
        let repo = match reused {
            Some((_, repo)) => repo,
            None => Repository::open_bare(&self.dir)?,
        };
        let out = f(&repo);
        let mut idle = self.idle.lock().expect("read pool lock");
        if idle.len() < IDLE && generation == self.generation.load(Ordering::Acquire) {
            idle.push((generation, repo));
        }
        Ok(out)
    }

    /// Drops every idle handle; handles in use are dropped when returned.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.idle.lock().expect("read pool lock").clear();
    }
}
