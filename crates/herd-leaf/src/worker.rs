//! One owner per repository: a dedicated thread owns the leaf's `git2::Repository` (git2 is
//! blocking and not `Sync`) and runs jobs sent over a channel, one at a time. The committer and
//! the tip subscriber both go through it, so a commit can never race the leaf's own pull.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::LeafError;
use crate::git_ops::Repo;

/// A unit of work, or the instruction to stop after the jobs queued before it.
enum Job {
    Run(Box<dyn FnOnce(&mut Repo) + Send>),
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
    pub fn start(name: &str, mut repo: Repo) -> Result<(Worker, WorkerThread), LeafError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name(format!("herd-leaf-{name}"))
            .spawn(move || {
                while let Ok(Job::Run(job)) = rx.recv() {
                    job(&mut repo);
                }
            })
            .map_err(|source| LeafError::Io {
                what: "starting worker thread for",
                path: name.to_string(),
                source,
            })?;
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
        f: impl FnOnce(&mut Repo) -> T + Send + 'static,
    ) -> Result<T, LeafError> {
        let (reply, result) = oneshot::channel();
        self.tx
            .send(Job::Run(Box::new(move |repo: &mut Repo| {
                let _ = reply.send(f(repo));
            })))
            .map_err(|_| LeafError::WorkerGone)?;
        result.await.map_err(|_| LeafError::WorkerGone)
    }
}

impl Worker {
    /// Asks the thread to exit once the jobs queued before this call are done. Later `run`
    /// calls fail with `WorkerGone`.
    pub fn stop(&self) {
        let _ = self.tx.send(Job::Stop);
    }
}

impl WorkerThread {
    /// Waits for the thread to exit (after [`Worker::stop`] or once every handle is dropped).
    pub fn join(mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
