//! The quarantine a pushed pack waits in until its update is accepted.
//!
//! The pack is indexed (`git2::Indexer`, verified, thin packs completed from the object store)
//! into `objects/incoming-*/pack/`. Checks read it through a *view*: a repository over an
//! in-memory object database with the hub's store and the quarantine as alternates (no config
//! read, no second open of the repository). Only an accepted update moves the pack into
//! `objects/pack/` (`.pack` first, `.idx` last, so a reader never sees an index without its
//! pack); a refused or broken push drops the quarantine and leaves nothing behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use git2::{Odb, Repository};

use crate::error::RequestError;

/// A pushed pack, indexed but not yet part of the repository.
pub struct Quarantine {
    dir: tempfile::TempDir,
}

impl Quarantine {
    /// Indexes `pack` into a fresh quarantine under `<repo>/objects/`; `None` for an empty
    /// pack (a push of objects the hub already has).
    pub fn index(repo: &Repository, dir: &Path, pack: &[u8]) -> Result<Option<Self>, RequestError> {
        // PACK header: "PACK", version (4 bytes), object count (4 bytes, big endian).
        if pack.len() < 12 {
            return if pack.is_empty() {
                Ok(None)
            } else {
                Err(RequestError::bad("receive-pack: truncated pack header"))
            };
        }
        if u32::from_be_bytes([pack[8], pack[9], pack[10], pack[11]]) == 0 {
            return Ok(None);
        }
        let quarantine = tempfile::Builder::new()
            .prefix("incoming-")
            .tempdir_in(dir.join("objects"))
            .map_err(|e| RequestError::internal(format!("creating quarantine: {e}")))?;
        let pack_dir = quarantine.path().join("pack");
        std::fs::create_dir(&pack_dir)
            .map_err(|e| RequestError::internal(format!("creating quarantine: {e}")))?;
        let odb = repo
            .odb()
            .map_err(|e| RequestError::internal(e.message().to_string()))?;
        let mut indexer = git2::Indexer::new(Some(&odb), &pack_dir, 0o444, true)
            .map_err(|e| RequestError::internal(format!("indexer: {}", e.message())))?;
        indexer
            .write_all(pack)
            .map_err(|e| RequestError::bad(format!("receive-pack: bad pack: {e}")))?;
        indexer.commit().map_err(|e| {
            RequestError::bad(format!(
                "receive-pack: bad or truncated pack: {}",
                e.message()
            ))
        })?;
        Ok(Some(Quarantine { dir: quarantine }))
    }

    /// The quarantine's object directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the pack into `<repo>/objects/pack/`.
    pub fn move_in(self, repo_dir: &Path) -> std::io::Result<()> {
        let target = repo_dir.join("objects").join("pack");
        std::fs::create_dir_all(&target)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("pack"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        // .pack (and .rev) before .idx: libgit2 and git discover packs by their index.
        files.sort_by_key(|p| p.extension().is_some_and(|x| x == "idx"));
        for file in files {
            if let Some(name) = file.file_name() {
                std::fs::rename(&file, target.join(name)).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("moving {} into {}: {e}", file.display(), target.display()),
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// A view of the repository's objects plus `extra` object directories (quarantines), over an
/// in-memory object database whose backends are all alternates: read-only until the caller
/// adds a memory backend for writes (the merge queue does, see [`crate::queue`]).
pub fn view(repo_dir: &Path, extra: &[&Path]) -> Result<Repository, git2::Error> {
    let odb = Odb::new()?;
    odb.add_disk_alternate(&repo_dir.join("objects").to_string_lossy())?;
    for dir in extra {
        odb.add_disk_alternate(&dir.to_string_lossy())?;
    }
    Repository::from_odb(odb)
}
