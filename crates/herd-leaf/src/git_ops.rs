//! The git side of a leaf, run only on its worker thread ([`crate::worker`]).
//!
//! - **The worktree holds the leaf's slot only.** A commit writes the task's files there and
//!   builds its tree by swapping those entries into the base tip's tree (`TreeUpdateBuilder`:
//!   only the trees on the changed paths are rewritten), so its cost does not grow with the
//!   other slots — a full `reset --hard` per commit touched every file of every slot.
//! - **A rebase after a fork** replays the same entries onto the new tip when the trunk did not
//!   touch them since the old base, and falls back to a three-way `cherrypick_commit` (which
//!   finds real content conflicts) otherwise.
//! - **A push** is one receive-pack request with exactly the objects the commit adds to its
//!   base, naming `refs/heads/main` with the base as old tip (race) or `refs/for/main` (merge
//!   queue); the report is parsed and refusals are read once ([`herd_hub::classify`]).
//! - **Payloads** from tip broadcasts are kept as the pack entries they arrived in, listed by
//!   the broadcast's index ([`herd_hub::pack::listed`], [`herd_hub::kept_objects`]): nothing is
//!   inflated until read, and a read checks the object's id. A payload without an index, or
//!   with deltas, is read whole ([`herd_hub::pack::read()`]) into the memory backend, hashed
//!   with plain SHA-1 (the hub verified them with collision detection); a fetch is the
//!   fallback.
//!
//! What the leaf holds of the trunk lives in memory ([`Held`], shared with the async side, plus
//! a watch channel that wakes a committer waiting for a tip); refs are written by [`Repo::flush`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{FetchOptions, ObjectType, Oid, Repository};
use herd_hub::mem_objects::MemObjects;
use herd_hub::tree_diff::{self, Change};
use herd_hub::{RefusalKind, classify};
use tokio::sync::watch;

use herd_hub::pack;

/// Where the trunk's tip is tracked locally.
pub const ORIGIN_MAIN: &str = "refs/remotes/origin/main";
const MAIN: &str = "refs/heads/main";

/// What the leaf holds of the trunk, readable by the async side without a worker round trip.
#[derive(Default)]
pub struct Held {
    /// The remote-tracking tip.
    pub remote_tip: Option<Oid>,
    /// The commit this leaf built last (being pushed, or pushed).
    pub local_head: Option<Oid>,
    /// Commits this leaf pushed recently (their broadcasts are nothing new to it).
    pub pushed: std::collections::VecDeque<Oid>,
}

/// How many own pushes [`Held::pushed`] remembers.
const PUSHED_MEMORY: usize = 256;

impl Held {
    /// Does the leaf hold `oid`?
    pub fn holds(&self, oid: Oid) -> bool {
        self.remote_tip == Some(oid) || self.local_head == Some(oid) || self.pushed.contains(&oid)
    }
}

/// The commit being pushed: what it was built on and the entries it sets.
#[derive(Clone, Debug)]
struct Built {
    commit: Oid,
    base: Oid,
    changes: Vec<Change>,
}

/// Everything the worker keeps between jobs.
pub struct RepoState {
    /// The hub's clone URL.
    url: String,
    workdir: PathBuf,
    /// Shared with the tip subscriber.
    pub held: Arc<Mutex<Held>>,
    tip_tx: watch::Sender<Option<Oid>>,
    unflushed: usize,
    /// Objects this leaf made (blobs, trees, commits) since the last flush.
    pending: Vec<Oid>,
    /// Payloads applied since the last flush: each pack with its objects' ids and places, so
    /// the flush splices them instead of compressing them again, and whether its entries are
    /// kept unread (then one a read found bad is left out).
    applied: Vec<Applied>,
    built: Option<Built>,
    /// Packs this leaf flushed since it opened the repository, oldest first: (name, bytes).
    /// Merged geometrically after each flush ([`crate::compact`]).
    flushed: Vec<(String, u64)>,
    /// Mutation switch ([`crate::LeafConfig::blind_rebase`]).
    blind_rebase: bool,
}

/// One applied payload, kept for the next flush.
struct Applied {
    /// The payload's pack.
    pack: bytes::Bytes,
    /// Its objects' ids and places in `pack`.
    placed: Vec<(Oid, pack::Stored)>,
    /// Kept unread in the kept-objects backend (rather than read whole into memory).
    kept: bool,
}

/// The repository as a job sees it.
pub struct Repo<'r> {
    git: &'r Repository,
    writes: &'r MemObjects,
    st: &'r mut RepoState,
}

/// Which ref a push targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushTarget {
    /// `refs/heads/main`: a compare-and-swap of the tip (race mode).
    Trunk,
    /// `refs/for/main`: the merge queue.
    Queue,
}

/// How a push ended.
#[derive(Debug)]
pub enum PushResult {
    /// The hub landed it; `landed` is the commit on the trunk (the pushed one, or its replay).
    Accepted {
        /// The commit on the trunk.
        landed: Oid,
    },
    /// Refused: a fork (rebase and retry) or a policy refusal (give up), with the reason and
    /// the trunk tip the hub named, if any.
    Rejected {
        /// The hub's (or libgit2's) reason.
        reason: String,
        /// What to do about it.
        kind: RefusalKind,
        /// The trunk tip to rebase onto, when known.
        tip: Option<Oid>,
    },
    /// Transport or hub failure; `unknown` when the push may have landed, and then `pushed`
    /// names the commit that may now be on the trunk.
    Failed {
        reason: String,
        unknown: bool,
        pushed: Option<Oid>,
    },
}

/// How a rebase after a fork ended.
#[derive(Debug)]
pub enum Rebased {
    /// The commit now sits on the new tip.
    Onto(Oid),
    /// A real content conflict in these paths.
    Conflict(Vec<String>),
    /// The trunk already holds the commit (the push landed though it looked refused): nothing
    /// to replay, and replaying would duplicate it.
    Landed,
}

/// Why a payload was not applied.
#[derive(Debug)]
pub enum ApplyError {
    /// The leaf does not hold the payload's base tip: fetch instead.
    NotAtBase,
    /// The pack or its objects were unusable (missing base, corrupt): fetch instead.
    Bad(String),
}

impl RepoState {
    /// Clones `url` into `dir` (or reopens the clone there) and reads what it holds.
    pub fn open_or_clone(url: &str, dir: &Path) -> Result<(Repository, RepoState), git2::Error> {
        herd_hub::client::register().map_err(|e| git2::Error::from_str(&e))?;
        let repo = if dir.join(".git").is_dir() {
            // Only this leaf uses its clone, and it is opening it: a lock file left in it
            // belongs to a run that stopped mid-write (F13). Removed, or every later write of
            // that file would fail (and the lock would be a leftover).
            for lock in ["index.lock", "HEAD.lock", "config.lock"] {
                let path = dir.join(".git").join(lock);
                if path.exists() {
                    tracing::warn!(path = %path.display(), "removing a stale lock file");
                    std::fs::remove_file(&path)
                        .map_err(|e| git2::Error::from_str(&format!("{}: {e}", path.display())))?;
                }
            }
            Repository::open(dir)?
        } else {
            let repo = git2::build::RepoBuilder::new()
                .branch("main")
                .clone(url, dir)?;
            // No configured fetch refspec: after each push libgit2 would rewrite the
            // remote-tracking ref file through it (a lock file and a rename per commit). The
            // leaf tracks the tip in memory, saves it on flush, and fetches with an explicit
            // refspec.
            repo.config()?
                .remove_multivar("remote.origin.fetch", ".*")?;
            repo
        };
        // A clone of an empty repository would point HEAD at master; the trunk is main.
        if repo
            .head()
            .ok()
            .and_then(|h| h.name().ok().map(str::to_string))
            .as_deref()
            != Some(MAIN)
        {
            repo.set_head(MAIN)?;
        }
        // A ref naming an object that never reached disk (a crash before a flush) is dropped;
        // the leaf fetches the trunk again.
        let valid = |name: &str| {
            repo.refname_to_id(name)
                .ok()
                .filter(|oid| repo.find_commit(*oid).is_ok())
        };
        let held = Held {
            remote_tip: valid(ORIGIN_MAIN),
            local_head: valid(MAIN),
            pushed: Default::default(),
        };
        let (tip_tx, _) = watch::channel(held.remote_tip);
        let state = RepoState {
            url: url.to_string(),
            workdir: dir.to_path_buf(),
            held: Arc::new(Mutex::new(held)),
            tip_tx,
            unflushed: 0,
            pending: Vec::new(),
            applied: Vec::new(),
            built: None,
            flushed: Vec::new(),
            blind_rebase: false,
        };
        Ok((repo, state))
    }

    /// Sets the mutation switch [`crate::LeafConfig::blind_rebase`].
    pub fn blind_rebase(mut self, on: bool) -> RepoState {
        self.blind_rebase = on;
        self
    }

    /// A receiver that sees every change of the remote-tracking tip.
    pub fn watch_tip(&self) -> watch::Receiver<Option<Oid>> {
        self.tip_tx.subscribe()
    }
}

impl Repo<'_> {
    /// Opens (or clones) a leaf repository at `dir` and runs `f` on it on this thread, with the
    /// same memory backend the worker uses; flushes afterwards. For tools and tests that drive
    /// the git side without a leaf.
    pub fn scoped<T>(
        url: &str,
        dir: &Path,
        f: impl FnOnce(&mut Repo<'_>) -> T,
    ) -> Result<T, git2::Error> {
        let (git, mut state) = RepoState::open_or_clone(url, dir)?;
        let writes = MemObjects::attach(&git)?;
        let mut repo = Repo::new(&git, &writes, &mut state);
        let out = f(&mut repo);
        repo.flush()?;
        Ok(out)
    }
}

impl<'r> Repo<'r> {
    pub(crate) fn new(git: &'r Repository, writes: &'r MemObjects, st: &'r mut RepoState) -> Self {
        Repo { git, writes, st }
    }

    fn update(&self, f: impl FnOnce(&mut Held)) {
        f(&mut self.st.held.lock().expect("held lock"));
    }

    fn set_remote_tip(&self, oid: Oid) {
        self.update(|h| h.remote_tip = Some(oid));
        self.st.tip_tx.send_replace(Some(oid));
    }

    /// Object bytes written to memory since the last flush.
    pub fn unflushed(&self) -> usize {
        self.st.unflushed
    }

    /// The remote-tracking tip.
    pub fn origin_tip(&self) -> Result<Oid, git2::Error> {
        self.st
            .held
            .lock()
            .expect("held lock")
            .remote_tip
            .ok_or_else(|| git2::Error::from_str("the leaf holds no trunk tip"))
    }

    /// The commit this leaf built last, or the trunk tip.
    pub fn head(&self) -> Result<Oid, git2::Error> {
        let held = self.st.held.lock().expect("held lock");
        held.local_head
            .or(held.remote_tip)
            .ok_or_else(|| git2::Error::from_str("the leaf holds no commit"))
    }

    /// Is `ancestor` the tip the leaf holds, or an ancestor of it?
    pub fn holds_commit(&self, ancestor: Oid) -> bool {
        match self.origin_tip() {
            Ok(tip) => {
                tip == ancestor || self.git.graph_descendant_of(tip, ancestor).unwrap_or(false)
            }
            Err(_) => false,
        }
    }

    /// Writes the memory backend's objects as one pack, then saves the refs.
    pub fn flush(&mut self) -> Result<(), git2::Error> {
        if !self.st.pending.is_empty() || !self.st.applied.is_empty() {
            let odb = self.git.odb()?;
            let mut out = pack::Writer::new();
            let whole = |out: &mut pack::Writer, oid: Oid| -> Result<(), git2::Error> {
                let object = odb.read(oid)?;
                out.object(oid, object.kind(), object.data());
                Ok(())
            };
            // What is tracked stays tracked until the pack is installed: a flush that fails
            // (a full disk) loses nothing and is tried again after the next job.
            for Applied { pack, placed, kept } in &self.st.applied {
                for (oid, stored) in placed {
                    if *kept && !self.writes.holds_kept(*oid) {
                        // Dropped by a read: it did not hash to its id.
                        continue;
                    }
                    if !out.splice(pack, *oid, stored) {
                        whole(&mut out, *oid)?;
                    }
                }
            }
            for oid in &self.st.pending {
                whole(&mut out, *oid)?;
            }
            let indexed = out.finish_indexed();
            indexed
                .install(&self.git.path().join("objects"))
                .map_err(|e| git2::Error::from_str(&format!("writing leaf pack: {e}")))?;
            self.st.applied.clear();
            self.st.pending.clear();
            self.st
                .flushed
                .push((indexed.name.clone(), indexed.pack.len() as u64));
            odb.refresh()?;
            self.writes.reset()?;
            self.st.unflushed = 0;
        }
        self.save_refs()
    }

    /// Merges this leaf's newest packs when they are due ([`crate::compact`]). Returns whether
    /// packs were merged: the caller must then reopen the repository so libgit2 closes the
    /// removed files.
    pub fn compact(&mut self) -> Result<bool, herd_hub::pack::merge::MergeError> {
        let dir = self.git.path().join("objects").join("pack");
        crate::compact::settle(&dir, &mut self.st.flushed)
    }

    /// Records the trees and commit a commit creation wrote (everything new under `parent`).
    fn track_commit(
        &mut self,
        parent_tree: &git2::Tree<'_>,
        commit: Oid,
    ) -> Result<(), git2::Error> {
        let tree = self.git.find_commit(commit)?.tree()?;
        let diff = tree_diff::diff(self.git, Some(parent_tree), Some(&tree))?;
        self.st.unflushed += 256 * diff.new_trees.len() + 512;
        self.st.pending.extend(diff.new_trees);
        self.st.pending.push(commit);
        Ok(())
    }

    fn save_refs(&self) -> Result<(), git2::Error> {
        let (tip, head) = {
            let held = self.st.held.lock().expect("held lock");
            (held.remote_tip, held.local_head)
        };
        if let Some(tip) = tip {
            self.git
                .reference(ORIGIN_MAIN, tip, true, "herd: trunk tip")?;
        }
        if let Some(head) = head.or(tip) {
            self.git.reference(MAIN, head, true, "herd: last commit")?;
        }
        Ok(())
    }

    fn write(&mut self, kind: ObjectType, data: &[u8]) -> Result<Oid, git2::Error> {
        self.st.unflushed += data.len();
        let oid = self.writes.write(kind, data)?;
        self.st.pending.push(oid);
        Ok(oid)
    }

    /// Writes `files` into the worktree and commits them on top of the trunk tip the leaf holds.
    /// The message gains a `Herd-Base: <tip>` trailer: the trunk the work was written against,
    /// which the checker's I12 (no lost update) reads.
    pub fn commit_files(
        &mut self,
        files: &[(String, Vec<u8>)],
        author: &str,
        message: &str,
    ) -> Result<Oid, git2::Error> {
        let base = self.origin_tip()?;
        let mut changes = Vec::with_capacity(files.len());
        for (path, bytes) in files {
            let full = self.st.workdir.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    git2::Error::from_str(&format!("mkdir {}: {e}", parent.display()))
                })?;
            }
            std::fs::write(&full, bytes)
                .map_err(|e| git2::Error::from_str(&format!("write {}: {e}", full.display())))?;
            let blob = self.write(ObjectType::Blob, bytes)?;
            changes.push(Change {
                path: path.clone(),
                old: None,
                new: Some((blob, 0o100644)),
            });
        }
        let sig = git2::Signature::now(author, &format!("{author}@herd"))?;
        let sep = if message.ends_with('\n') { "" } else { "\n" };
        let message = format!("{message}{sep}Herd-Base: {base}\n");
        let commit = self.commit_onto(base, &changes, &sig, &sig, &message)?;
        self.st.built = Some(Built {
            commit,
            base,
            changes,
        });
        self.update(|h| h.local_head = Some(commit));
        Ok(commit)
    }

    fn commit_onto(
        &mut self,
        base: Oid,
        changes: &[Change],
        author: &git2::Signature<'_>,
        committer: &git2::Signature<'_>,
        message: &str,
    ) -> Result<Oid, git2::Error> {
        let parent = self.git.find_commit(base)?;
        let parent_tree = parent.tree()?;
        let tree_id = tree_diff::apply(self.git, &parent_tree, changes)?;
        let tree = self.git.find_tree(tree_id)?;
        let commit = self
            .git
            .commit(None, author, committer, message, &tree, &[&parent])?;
        self.track_commit(&parent_tree, commit)?;
        Ok(commit)
    }

    /// Replays the commit being pushed onto `onto` (a newer trunk tip the leaf holds).
    pub fn rebase_onto(&mut self, onto: Oid) -> Result<Rebased, git2::Error> {
        let built = self
            .st
            .built
            .clone()
            .ok_or_else(|| git2::Error::from_str("nothing to rebase"))?;
        if onto == built.commit || self.git.graph_descendant_of(onto, built.commit)? {
            return Ok(Rebased::Landed);
        }
        if onto == built.base {
            return Ok(Rebased::Onto(built.commit));
        }
        let local = self.git.find_commit(built.commit)?;
        let (author, committer) = (local.author().to_owned(), local.committer().to_owned());
        let message = local.message().unwrap_or("").to_string();
        let onto_tree = self.git.find_commit(onto)?.tree()?;
        let base_tree = self.git.find_commit(built.base)?.tree()?;
        let untouched = built.changes.iter().all(|c| {
            tree_diff::entry_at(&onto_tree, &c.path) == tree_diff::entry_at(&base_tree, &c.path)
        });
        let commit = if untouched {
            self.commit_onto(onto, &built.changes, &author, &committer, &message)?
        } else {
            let onto_commit = self.git.find_commit(onto)?;
            let index = self.git.cherrypick_commit(&local, &onto_commit, 0, None)?;
            if index.has_conflicts() && self.st.blind_rebase {
                let changes = built.changes.clone();
                self.commit_onto(onto, &changes, &author, &committer, &message)?
            } else if index.has_conflicts() {
                let paths = index
                    .conflicts()?
                    .filter_map(|c| c.ok())
                    .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                    .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                    .collect();
                return Ok(Rebased::Conflict(paths));
            } else {
                let mut index = index;
                let tree = self.git.find_tree(index.write_tree_to(self.git)?)?;
                let commit =
                    self.git
                        .commit(None, &author, &committer, &message, &tree, &[&onto_commit])?;
                self.track_commit(&onto_tree, commit)?;
                commit
            }
        };
        self.st.built = Some(Built {
            commit,
            base: onto,
            changes: built.changes,
        });
        self.update(|h| h.local_head = Some(commit));
        Ok(Rebased::Onto(commit))
    }

    /// The newest commit on the trunk the leaf holds whose message has the line `trailer`.
    pub fn find_trailer(&self, trailer: &str) -> Result<Option<Oid>, git2::Error> {
        let mut walk = self.git.revwalk()?;
        walk.push(self.origin_tip()?)?;
        for oid in walk {
            let oid = oid?;
            let commit = self.git.find_commit(oid)?;
            if commit
                .message()
                .is_ok_and(|m| m.lines().any(|l| l.trim() == trailer))
            {
                return Ok(Some(oid));
            }
        }
        Ok(None)
    }

    /// The base of the commit being pushed.
    pub fn built_base(&self) -> Option<Oid> {
        self.st.built.as_ref().map(|b| b.base)
    }

    /// Pushes the commit being built to `target`, with extra request headers (slot,
    /// traceparent): one `POST git-receive-pack` carrying exactly the objects the commit adds
    /// to its base (the commit, its new trees and blobs). libgit2's own push computes the pack
    /// by walking the whole snapshot, and against `refs/for/main` — a ref the hub does not
    /// advertise — it sends the entire history whenever the leaf lags the tip (measured: 55 %
    /// of a queue-mode trial's CPU went into its delta search).
    pub fn push(&mut self, headers: &[(&str, &str)], target: PushTarget) -> PushResult {
        let Some(built) = self.st.built.clone() else {
            return PushResult::Failed {
                reason: "nothing to push".into(),
                unknown: false,
                pushed: None,
            };
        };
        let (old, dst) = match target {
            PushTarget::Trunk => (built.base, MAIN),
            PushTarget::Queue => (Oid::ZERO_SHA1, herd_hub::QUEUE_REF),
        };
        let pack = match self.push_pack(&built) {
            Ok(pack) => pack,
            Err(e) => {
                return PushResult::Failed {
                    reason: format!("building the pack: {}", e.message()),
                    unknown: false,
                    pushed: None,
                };
            }
        };
        let mut body = Vec::with_capacity(pack.len() + 160);
        let command = format!(
            "{old} {} {dst}\0report-status side-band-64k agent=herd-leaf\n",
            built.commit
        );
        herd_hub::pkt_line::write(&mut body, command.as_bytes());
        herd_hub::pkt_line::flush(&mut body);
        body.extend_from_slice(&pack);
        let (answer, exchange) = match herd_hub::client::receive_pack(&self.st.url, headers, body) {
            Ok(answered) => answered,
            Err(e) => {
                let reason = e.to_string();
                // A refusal before the push was read (4xx) changed nothing; any other failure
                // may have come after the hub landed it.
                let unknown = !reason.starts_with("hub answered 4");
                return PushResult::Failed {
                    reason,
                    unknown,
                    pushed: unknown.then_some(built.commit),
                };
            }
        };
        let status = match herd_hub::receive_pack::parse_report(&answer) {
            Ok(report) => report.refs.into_iter().next().map(|(_, status)| status),
            Err(reason) => {
                return PushResult::Failed {
                    reason,
                    unknown: true,
                    pushed: Some(built.commit),
                };
            }
        };
        match status {
            Some(Ok(())) => {
                let landed = exchange.landed.unwrap_or(built.commit);
                if landed == built.commit {
                    // The trunk is now this very commit, which the leaf holds.
                    self.update(|h| {
                        h.pushed.push_back(built.commit);
                        if h.pushed.len() > PUSHED_MEMORY {
                            h.pushed.pop_front();
                        }
                    });
                    self.set_remote_tip(built.commit);
                }
                PushResult::Accepted { landed }
            }
            Some(Err(reason)) => {
                let refused = classify(&reason);
                PushResult::Rejected {
                    tip: refused.tip,
                    kind: refused.kind,
                    reason,
                }
            }
            None => PushResult::Failed {
                reason: "the hub's report names no ref".into(),
                unknown: true,
                pushed: Some(built.commit),
            },
        }
    }

    /// The objects `built` adds to its base, as a pack: the commit, the trees on its changed
    /// paths and their new blobs.
    fn push_pack(&self, built: &Built) -> Result<Vec<u8>, git2::Error> {
        let commit = self.git.find_commit(built.commit)?;
        let base_tree = self.git.find_commit(built.base)?.tree()?;
        let diff = tree_diff::diff(self.git, Some(&base_tree), Some(&commit.tree()?))?;
        let odb = self.git.odb()?;
        let mut out = pack::Writer::new();
        let blobs = diff
            .changes
            .iter()
            .filter_map(|c| c.new)
            .filter(|(_, mode)| *mode != 0o160000)
            .map(|(oid, _)| oid);
        for oid in std::iter::once(built.commit)
            .chain(diff.new_trees)
            .chain(blobs)
        {
            let object = odb.read(oid)?;
            out.object(oid, object.kind(), object.data());
        }
        Ok(out.finish())
    }

    /// Fetches the trunk; returns the new remote-tracking tip.
    pub fn fetch(&mut self, headers: &[(&str, &str)]) -> Result<Oid, git2::Error> {
        // Saved refs are the fetch's haves: stale ones would make the hub send more.
        self.save_refs()?;
        let mut remote = self.git.find_remote("origin")?;
        let mut opts = FetchOptions::new();
        opts.update_fetchhead(false);
        herd_hub::client::with_headers(headers, || {
            remote.fetch(&[format!("+{MAIN}:{ORIGIN_MAIN}")], Some(&mut opts), None)
        })?;
        let tip = self.git.refname_to_id(ORIGIN_MAIN)?;
        self.set_remote_tip(tip);
        Ok(tip)
    }

    /// Applies a broadcast payload taking the leaf from `prev` to `oid`. With the payload's
    /// index (each object's id and entry offset) its entries are *kept* as they are, inflated
    /// only if read ([`herd_hub::kept_objects`]); without one, or for a pack with deltas, every
    /// object is read and written into memory.
    pub fn apply_payload(
        &mut self,
        prev: Oid,
        oid: Oid,
        payload: bytes::Bytes,
        index: &[(Oid, u64)],
    ) -> Result<(), ApplyError> {
        if self.origin_tip().ok() != Some(prev) {
            return Err(ApplyError::NotAtBase);
        }
        // A copy, not the slice: the payload is a view into the bus client's read buffer, and
        // holding it until the flush would pin that whole buffer.
        let payload = bytes::Bytes::copy_from_slice(&payload);
        let mut kept = Vec::new();
        let listed = pack::listed(&payload, index);
        let keeping = listed.is_some();
        let placed = match listed {
            Some(placed) => {
                for (oid, stored) in &placed {
                    match self.writes.keep(*oid, &payload, stored) {
                        Some(true) => kept.push(*oid),
                        Some(false) => {}
                        None => {
                            self.writes.forget(kept.into_iter());
                            return Err(ApplyError::Bad(format!("cannot keep object {oid}")));
                        }
                    }
                }
                self.st.unflushed += payload.len();
                placed
            }
            None => self.read_payload(&payload)?,
        };
        // Read through the object database: a kept commit is inflated and checked against its
        // id here.
        let holds = matches!(self.git.find_commit(oid), Ok(c) if c.parent_id(0).ok() == Some(prev));
        if !holds {
            if keeping {
                // Nothing of a payload that does not verify reaches the leaf's pack.
                self.writes.forget(kept.into_iter());
            } else {
                // Read whole, its objects are in memory and hashed from their content: they
                // are flushed like any other, so nothing in memory is left untracked.
                self.st.applied.push(Applied {
                    pack: payload,
                    placed,
                    kept: false,
                });
            }
            return Err(ApplyError::Bad(format!(
                "the payload does not hold commit {oid} on {prev}"
            )));
        }
        self.st.applied.push(Applied {
            pack: payload,
            placed,
            kept: keeping,
        });
        self.set_remote_tip(oid);
        Ok(())
    }

    /// Reads every object of `payload` (resolving deltas) into memory.
    fn read_payload(&mut self, payload: &[u8]) -> Result<Vec<(Oid, pack::Stored)>, ApplyError> {
        let bad = |e: git2::Error| ApplyError::Bad(e.message().into());
        let odb = self.git.odb().map_err(bad)?;
        let entries = pack::read(payload, |base| {
            odb.read(base).ok().map(|o| (o.kind(), o.data().to_vec()))
        })
        .map_err(|e| ApplyError::Bad(e.to_string()))?;
        let mut placed = Vec::with_capacity(entries.len());
        for e in entries {
            self.st.unflushed += e.data.len();
            let oid = self.writes.write_trusted(e.kind, &e.data).map_err(bad)?;
            placed.push((oid, e.stored));
        }
        Ok(placed)
    }
}
