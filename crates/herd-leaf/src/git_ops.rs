//! The git side of a leaf, run only on its worker thread: clone or reopen, build a commit on
//! top of the latest known trunk tip, push (checking both the push error and the
//! `push_update_reference` callback — `Remote::push` returns Ok for a refused ref), fetch, and
//! rebase a rejected commit onto the new tip (`cherrypick_commit`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::build::CheckoutBuilder;
use git2::{
    ErrorCode, FetchOptions, Oid, PushOptions, RemoteCallbacks, Repository, ResetType, Signature,
};

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

/// The leaf's repository and the shared [`Held`] view.
pub struct Repo {
    repo: Repository,
    workdir: PathBuf,
    /// Shared with the tip subscriber.
    pub held: Arc<Mutex<Held>>,
}

/// How a push ended.
#[derive(Debug)]
pub enum PushResult {
    /// The hub accepted it.
    Accepted,
    /// Refused (stale tip: a fork), with the reason.
    Rejected(String),
    /// Transport or hub failure; `unknown` when the push may have landed.
    Failed { reason: String, unknown: bool },
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

impl Repo {
    /// Clones `url` into `dir` or reopens an existing clone there.
    pub fn open_or_clone(url: &str, dir: &Path) -> Result<Repo, git2::Error> {
        herd_hub::client::register().map_err(|e| git2::Error::from_str(&e))?;
        let repo = if dir.join(".git").is_dir() {
            Repository::open(dir)?
        } else {
            git2::build::RepoBuilder::new()
                .branch("main")
                .clone(url, dir)?
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
        let held = Held {
            remote_tip: repo.refname_to_id(ORIGIN_MAIN).ok(),
            local_head: repo.refname_to_id(MAIN).ok(),
            pushed: Default::default(),
        };
        Ok(Repo {
            repo,
            workdir: dir.to_path_buf(),
            held: Arc::new(Mutex::new(held)),
        })
    }

    fn update(&self, f: impl FnOnce(&mut Held)) {
        if let Ok(mut held) = self.held.lock() {
            f(&mut held);
        }
    }

    fn set_local_head(&self, oid: Oid) {
        self.update(|h| h.local_head = Some(oid));
    }

    fn set_remote_tip(&self, oid: Oid) {
        self.update(|h| h.remote_tip = Some(oid));
    }

    /// The remote-tracking tip.
    pub fn origin_tip(&self) -> Result<Oid, git2::Error> {
        self.repo.refname_to_id(ORIGIN_MAIN)
    }

    /// Local main.
    pub fn head(&self) -> Result<Oid, git2::Error> {
        self.repo.refname_to_id(MAIN)
    }

    /// Resets the worktree to the trunk tip, writes `files`, and commits them on top of it.
    pub fn commit_files(
        &mut self,
        files: &[(String, Vec<u8>)],
        author: &str,
        message: &str,
    ) -> Result<Oid, git2::Error> {
        let base = self.repo.find_commit(self.origin_tip()?)?;
        self.repo.reset(
            base.as_object(),
            ResetType::Hard,
            Some(CheckoutBuilder::new().force()),
        )?;
        let mut index = self.repo.index()?;
        for (path, bytes) in files {
            let full = self.workdir.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    git2::Error::from_str(&format!("mkdir {}: {e}", parent.display()))
                })?;
            }
            std::fs::write(&full, bytes)
                .map_err(|e| git2::Error::from_str(&format!("write {}: {e}", full.display())))?;
            index.add_path(Path::new(path))?;
        }
        index.write()?;
        let tree = self.repo.find_tree(index.write_tree()?)?;
        let sig = Signature::now(author, &format!("{author}@herd"))?;
        let oid = self
            .repo
            .commit(Some(MAIN), &sig, &sig, message, &tree, &[&base])?;
        self.set_local_head(oid);
        Ok(oid)
    }

    /// Pushes local main with extra request headers (slot, traceparent).
    pub fn push(&mut self, headers: &[(&str, &str)]) -> PushResult {
        let mut refused: Option<String> = None;
        let result = {
            let mut remote = match self.repo.find_remote("origin") {
                Ok(r) => r,
                Err(e) => {
                    return PushResult::Failed {
                        reason: e.message().to_string(),
                        unknown: false,
                    };
                }
            };
            let mut callbacks = RemoteCallbacks::new();
            callbacks.push_update_reference(|_, status| {
                refused = status.map(str::to_string);
                Ok(())
            });
            let mut opts = PushOptions::new();
            opts.remote_callbacks(callbacks);
            herd_hub::client::with_headers(headers, || {
                remote.push(&[&format!("{MAIN}:{MAIN}")], Some(&mut opts))
            })
        };
        match (result, refused) {
            (Ok(()), None) => match self.head() {
                Ok(head) => {
                    let _ = self.repo.reference(ORIGIN_MAIN, head, true, "pushed");
                    self.update(|h| {
                        h.remote_tip = Some(head);
                        h.pushed.push_back(head);
                        if h.pushed.len() > PUSHED_MEMORY {
                            h.pushed.pop_front();
                        }
                    });
                    PushResult::Accepted
                }
                Err(e) => PushResult::Failed {
                    reason: e.message().to_string(),
                    unknown: true,
                },
            },
            (Ok(()), Some(reason)) => PushResult::Rejected(reason),
            // libgit2 refuses locally when the advertised tip is not in the local store.
            (Err(e), _)
                if e.code() == ErrorCode::NotFastForward
                    || e.message().contains("not present locally") =>
            {
                PushResult::Rejected(e.message().to_string())
            }
            // The request may have reached the hub before the connection failed.
            (Err(e), _) => PushResult::Failed {
                reason: e.message().to_string(),
                unknown: e.class() == git2::ErrorClass::Net || e.class() == git2::ErrorClass::Http,
            },
        }
    }

    /// Fetches the trunk; returns the new remote-tracking tip.
    pub fn fetch(&mut self, headers: &[(&str, &str)]) -> Result<Oid, git2::Error> {
        let mut remote = self.repo.find_remote("origin")?;
        let mut opts = FetchOptions::new();
        opts.update_fetchhead(false);
        herd_hub::client::with_headers(headers, || {
            remote.fetch(&[&format!("+{MAIN}:{ORIGIN_MAIN}")], Some(&mut opts), None)
        })?;
        let tip = self.origin_tip()?;
        self.set_remote_tip(tip);
        Ok(tip)
    }

    /// Fetches, then replays local main's commit onto the new trunk tip.
    pub fn fetch_and_rebase(&mut self, headers: &[(&str, &str)]) -> Result<Rebased, git2::Error> {
        let tip = self.fetch(headers)?;
        let onto = self.repo.find_commit(tip)?;
        let local = self.repo.find_commit(self.head()?)?;
        if onto.id() == local.id() || self.repo.graph_descendant_of(onto.id(), local.id())? {
            return Ok(Rebased::Landed);
        }
        let mut index = self.repo.cherrypick_commit(&local, &onto, 0, None)?;
        if index.has_conflicts() {
            let paths = index
                .conflicts()?
                .filter_map(|c| c.ok())
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                .collect();
            self.repo.reset(
                onto.as_object(),
                ResetType::Hard,
                Some(CheckoutBuilder::new().force()),
            )?;
            return Ok(Rebased::Conflict(paths));
        }
        let tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
        let author = local.author();
        let oid = self.repo.commit(
            None,
            &author,
            &local.committer(),
            local.message().unwrap_or(""),
            &tree,
            &[&onto],
        )?;
        self.repo.reference(MAIN, oid, true, "herd rebase")?;
        self.set_local_head(oid);
        let commit = self.repo.find_commit(oid)?;
        self.repo.reset(
            commit.as_object(),
            ResetType::Hard,
            Some(CheckoutBuilder::new().force()),
        )?;
        Ok(Rebased::Onto(oid))
    }
}
