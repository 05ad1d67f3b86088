//! The hub's store: one thread owns the push path's repository handle (git2 is blocking and not
//! `Sync`) and runs integration jobs one at a time — the single writer of the trunk.
//!
//! **Staging in memory.** The thread's object database has a memory backend
//! ([`MemObjects`]) at the highest priority. A pushed pack is read into it ([`crate::pack::read()`], thin bases from the
//! store) — that is the quarantine: policy checks read the pushed objects through the same
//! handle as the trunk's, and nothing reaches the disk unless the update is accepted. An
//! accepted update's objects (and, in queue mode, the trees and commits the hub replayed) are
//! written as one pack, *then* the ref moves; the memory backend is emptied after every job.
//! A refused push costs no file at all.
//!
//! After a repack the thread reopens the repository (`Store::reopen`): the packs its handle
//! had mapped were merged away.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use git2::{Oid, Repository, Tree};
use tokio::sync::oneshot;

use crate::error::HubError;
use crate::mem_objects::MemObjects;
use crate::tree_diff;

type JobFn = Box<dyn for<'s> FnOnce(&mut Staging<'s>) + Send>;

enum Job {
    Run(JobFn),
    Reopen(oneshot::Sender<Result<(), git2::Error>>),
    /// Answered once every job sent before it is done (runs even when dead).
    Barrier(oneshot::Sender<()>),
}

/// The async side's handle on the store thread. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    tx: mpsc::Sender<Job>,
    /// Set by a crash ([`crate::Hub::crash`]): the thread runs no further job.
    dead: Arc<AtomicBool>,
}

/// What a job sees: the repository (trunk objects plus whatever is staged) and the staging area.
pub(crate) struct Staging<'s> {
    /// The push path's repository handle; its object database reads the staging area first.
    pub repo: &'s Repository,
    mem: &'s MemObjects,
}

impl Store {
    /// Starts the thread owning the repository at `dir`.
    /// The thread ends when every handle is dropped.
    pub fn start(dir: PathBuf) -> Result<Store, HubError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let dead = Arc::new(AtomicBool::new(false));
        let flag = dead.clone();
        std::thread::Builder::new()
            .name("herd-hub-store".into())
            .spawn(move || serve(dir, rx, ready_tx, flag))
            .map_err(|e| HubError::GitCli {
                what: "store thread",
                reason: e.to_string(),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Store { tx, dead }),
            Ok(Err(e)) => Err(HubError::Git(e)),
            Err(_) => Err(HubError::GitCli {
                what: "store thread",
                reason: "exited before it was ready".into(),
            }),
        }
    }

    /// Runs `f` on the store thread; the staging area is emptied afterwards.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl for<'s> FnOnce(&mut Staging<'s>) -> T + Send + 'static,
    ) -> Result<T, StoreGone> {
        let (reply, result) = oneshot::channel();
        self.tx
            .send(Job::Run(Box::new(move |s: &mut Staging<'_>| {
                let _ = reply.send(f(s));
            })))
            .map_err(|_| StoreGone)?;
        result.await.map_err(|_| StoreGone)
    }

    /// Stops the thread from running any further job and waits until the one it is running
    /// (if any) is done: after this the store writes nothing more, as if the process died
    /// right after its last job.
    pub async fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let (reply, done) = oneshot::channel();
        if self.tx.send(Job::Barrier(reply)).is_ok() {
            let _ = done.await;
        }
    }

    /// Reopens the repository (after a repack).
    pub async fn reopen(&self) -> Result<(), HubError> {
        let (reply, result) = oneshot::channel();
        self.tx.send(Job::Reopen(reply)).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?.map_err(HubError::Git)
    }
}

fn gone() -> HubError {
    HubError::GitCli {
        what: "store thread",
        reason: "stopped".into(),
    }
}

/// The store thread is gone (the hub is stopping).
#[derive(Debug)]
pub(crate) struct StoreGone;

fn serve(
    dir: PathBuf,
    rx: mpsc::Receiver<Job>,
    ready: mpsc::Sender<Result<(), git2::Error>>,
    dead: Arc<AtomicBool>,
) {
    let mut ready = Some(ready);
    let mut reopened: Option<oneshot::Sender<Result<(), git2::Error>>> = None;
    loop {
        // The odb handle and the memory backend borrow `repo`; all three live in this frame.
        let repo = match Repository::open_bare(&dir) {
            Ok(repo) => repo,
            Err(e) => {
                report(&mut ready, &mut reopened, Err(e));
                return;
            }
        };
        let mem = match MemObjects::attach(&repo) {
            Ok(mem) => mem,
            Err(e) => {
                report(&mut ready, &mut reopened, Err(e));
                return;
            }
        };
        report(&mut ready, &mut reopened, Ok(()));
        loop {
            match rx.recv() {
                // A killed store drops the job unrun: its caller sees the store gone.
                Ok(Job::Run(_)) if dead.load(Ordering::SeqCst) => {}
                Ok(Job::Barrier(reply)) => {
                    let _ = reply.send(());
                }
                Ok(Job::Run(job)) => {
                    let mut staging = Staging {
                        repo: &repo,
                        mem: &mem,
                    };
                    job(&mut staging);
                    if let Err(e) = mem.reset() {
                        tracing::warn!(error = %e.message(), "emptying the staging area");
                    }
                }
                Ok(Job::Reopen(reply)) => {
                    reopened = Some(reply);
                    break;
                }
                Err(_) => return,
            }
        }
    }
}

fn report(
    ready: &mut Option<mpsc::Sender<Result<(), git2::Error>>>,
    reopened: &mut Option<oneshot::Sender<Result<(), git2::Error>>>,
    result: Result<(), git2::Error>,
) {
    if let Some(r) = ready.take() {
        let _ = r.send(result);
    } else if let Some(r) = reopened.take() {
        let _ = r.send(result);
    }
}

/// Why a pack was not staged.
#[derive(Debug)]
pub(crate) enum StageError {
    /// Not a readable pack (the request is bad: a 4xx).
    Malformed(String),
    /// A readable pack the policy refuses (an `ng`).
    Refused(crate::refusal::Refusal),
}

/// What one update staged (in memory until persisted).
#[derive(Debug, Default, Clone)]
pub(crate) struct Staged {
    /// The pack it brought, as received, with each object's id and place in it (written to
    /// disk spliced, never compressed again).
    pub brought: Option<(bytes::Bytes, Vec<(Oid, crate::pack::Stored)>)>,
    /// Objects the hub made for it (replayed trees and commits).
    pub made: Vec<Oid>,
}

impl Staging<'_> {
    /// Reads a pushed pack into memory within `limits`. A malformed pack or one whose thin
    /// bases the store lacks is [`StageError::Malformed`]; one over a limit is a refusal.
    pub fn stage(
        &mut self,
        pack: &bytes::Bytes,
        limits: crate::pack::Limits,
    ) -> Result<Staged, StageError> {
        // No pack, or a pack of no objects (a push of objects the hub already has).
        if pack.is_empty() || (pack.len() >= 12 && pack[8..12] == [0, 0, 0, 0]) {
            return Ok(Staged::default());
        }
        let malformed = |e: git2::Error| StageError::Malformed(e.message().to_string());
        let odb = self.repo.odb().map_err(malformed)?;
        let entries = crate::pack::read_limited(
            pack,
            |base| odb.read(base).ok().map(|o| (o.kind(), o.data().to_vec())),
            limits,
        )
        .map_err(|e| match e {
            crate::pack::PackError::Limit(what) => {
                StageError::Refused(crate::refusal::Refusal::TooLarge(what))
            }
            other => StageError::Malformed(other.to_string()),
        })?;
        let mut placed = Vec::with_capacity(entries.len());
        for e in entries {
            let oid = self.mem.write(e.kind, &e.data).map_err(malformed)?;
            placed.push((oid, e.stored));
        }
        Ok(Staged {
            brought: Some((pack.clone(), placed)),
            made: Vec::new(),
        })
    }

    /// Records the trees and commit a replay wrote (everything new relative to `parent_tree`).
    pub fn track_commit(
        &self,
        staged: &mut Staged,
        parent_tree: &Tree<'_>,
        commit: Oid,
    ) -> Result<(), git2::Error> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let diff = tree_diff::diff(self.repo, Some(parent_tree), Some(&tree))?;
        staged.made.extend(diff.new_trees);
        staged.made.push(commit);
        Ok(())
    }

    /// Writes what `staged` holds to disk as one pack: the received packs spliced as they are,
    /// the hub's own objects deflated.
    pub fn persist(&self, staged: &[&Staged]) -> Result<(), git2::Error> {
        let odb = self.repo.odb()?;
        let mut writer = crate::pack::Writer::new();
        let whole = |writer: &mut crate::pack::Writer, oid: Oid| -> Result<(), git2::Error> {
            let object = odb.read(oid)?;
            writer.object(oid, object.kind(), object.data());
            Ok(())
        };
        for s in staged {
            if let Some((pack, placed)) = &s.brought {
                for (oid, stored) in placed {
                    // A thin push's deltas against trunk objects are stored whole.
                    if !writer.splice(pack, *oid, stored) {
                        whole(&mut writer, *oid)?;
                    }
                }
            }
        }
        for oid in staged.iter().flat_map(|s| s.made.iter()) {
            whole(&mut writer, *oid)?;
        }
        if writer.is_empty() {
            return Ok(());
        }
        writer
            .finish_indexed()
            .install(&self.repo.path().join("objects"))
            .map_err(|e| git2::Error::from_str(&format!("writing pack: {e}")))?;
        // The new pack is found on the next lookup miss; refresh now so the ref that moves next
        // never names an object this handle cannot see.
        odb.refresh()?;
        Ok(())
    }
}
