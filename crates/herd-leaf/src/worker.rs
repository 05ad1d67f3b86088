//! One owner per repository: a dedicated thread owns the leaf's `git2::Repository` (git2 is
//! blocking and not `Sync`) and runs jobs sent over a channel, one at a time. The committer and
//! the tip subscriber both go through it, so a commit can never race the leaf's own pull.
//!
//! Writes go to memory: the thread adds a memory backend ([`MemObjects`]) to the object database
//! at the highest priority, so the objects of the leaf's commits, rebases and applied broadcast
//! payloads cost no file each. Every object written is tracked; after a job that leaves more
//! than [`FLUSH_BYTES`] unflushed, and when the thread stops, they are written as one pack with
//! its index (applied payload entries spliced as they arrived, no recompression, no delta
//! search: [`herd_hub::pack::Writer`]) and then the refs are saved ([`Repo::flush`]), so refs on
//! disk never name an object that exists only in memory. After a flush the newest packs may be
//! merged ([`crate::compact`]); the thread then reopens the repository, so the files libgit2
//! held for the merged packs are closed.

use std::sync::mpsc;
use std::thread::JoinHandle;

use git2::Repository;
use tokio::sync::oneshot;

use herd_hub::mem_objects::MemObjects;

use crate::error::LeafError;
use crate::git_ops::{Repo, RepoState};

/// Unflushed object bytes that trigger a flush after a job: what a leaf holds in memory beyond
/// its pack files is bounded by about twice this (the objects, and the payloads they came in).
pub const FLUSH_BYTES: usize = 512 << 10;

type JobFn = Box<dyn for<'r> FnOnce(&mut Repo<'r>) + Send>;

/// A unit of work, or the instruction to stop after the jobs queued before it.
enum Job {
    Run(JobFn),
    Stop,
}

/// The async side's handle on the worker. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    tx: mpsc::Sender<Job>,
}

/// Joins the worker thread when the last [`Worker`] handle is gone.
pub struct WorkerThread {
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread that owns `repo`.
    pub fn start(
        name: &str,
        repo: Repository,
        state: RepoState,
    ) -> Result<(Worker, WorkerThread), LeafError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), git2::Error>>();
        let handle = std::thread::Builder::new()
            .name(format!("herd-leaf-{name}"))
            .spawn(move || serve(repo, state, rx, ready_tx))
            .map_err(|source| LeafError::Io {
                what: "starting worker thread for",
                path: name.to_string(),
                source,
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(LeafError::git("", e)),
            Err(_) => return Err(LeafError::WorkerGone),
        }
        Ok((
            Worker { tx },
            WorkerThread {
                handle: Some(handle),
            },
        ))
    }

    /// Runs `f` on the worker thread and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl for<'r> FnOnce(&mut Repo<'r>) -> T + Send + 'static,
    ) -> Result<T, LeafError> {
        let (reply, result) = oneshot::channel();
        self.tx
            .send(Job::Run(Box::new(move |repo: &mut Repo<'_>| {
                let _ = reply.send(f(repo));
            })))
            .map_err(|_| LeafError::WorkerGone)?;
        result.await.map_err(|_| LeafError::WorkerGone)
    }

    /// Asks the thread to flush and exit once the jobs queued before this call are done.
    /// Later `run` calls fail with `WorkerGone`.
    pub fn stop(&self) {
        let _ = self.tx.send(Job::Stop);
    }
}

fn serve(
    repo: Repository,
    mut state: RepoState,
    rx: mpsc::Receiver<Job>,
    ready: mpsc::Sender<Result<(), git2::Error>>,
) {
    let mut repo = repo;
    let mut writes = match MemObjects::attach(&repo) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while let Ok(Job::Run(job)) = rx.recv() {
        let mut r = Repo::new(&repo, &writes, &mut state);
        job(&mut r);
        if r.unflushed() <= FLUSH_BYTES {
            continue;
        }
        if let Err(e) = r.flush() {
            tracing::warn!(error = %e.message(), "flushing leaf objects");
            continue;
        }
        match r.compact() {
            Ok(true) => match reopen(&repo) {
                // Memory is empty right after a flush: nothing is lost with the old backend.
                Ok((new_repo, new_writes)) => {
                    writes = new_writes;
                    repo = new_repo;
                }
                Err(e) => tracing::warn!(error = %e.message(), "reopening after a pack merge"),
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "merging leaf packs"),
        }
    }
    if let Err(e) = Repo::new(&repo, &writes, &mut state).flush() {
        tracing::warn!(error = %e.message(), "flushing leaf objects at stop");
    }
}

/// Opens `repo` again with a fresh memory backend; dropping the old handles closes the packs a
/// merge removed (libgit2 never forgets a pack while its object database lives).
fn reopen(repo: &Repository) -> Result<(Repository, MemObjects), git2::Error> {
    let again = Repository::open(repo.path())?;
    let writes = MemObjects::attach(&again)?;
    Ok((again, writes))
}

impl WorkerThread {
    /// Waits for the thread to exit (after [`Worker::stop`] or once every handle is dropped).
    pub fn join(mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
