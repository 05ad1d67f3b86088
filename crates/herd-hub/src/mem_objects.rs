//! An in-memory object store inside a repository's object database, written directly.
//!
//! libgit2's memory backend (`git_mempack`) is what herd stages pushes and applies broadcast
//! payloads into. Written through `git_odb_write`, every new object first *freshens*: it asks
//! every backend whether it already has the object and, when none has, rescans the pack
//! directory (`git_odb_refresh`) and asks again — a directory listing, a stat and a formatted
//! "not found" error per object. Profiled on a 16-leaf trial that was ~12 % of all CPU. Objects
//! herd stages are new by construction (read from a pack that carries them), so this store
//! writes them straight into the memory backend: hash, copy, insert. Reads still go through
//! the repository as usual; the backend sits above the packs, so staged objects are found
//! first.
//!
//! Next to it sits a backend of *kept* pack entries ([`MemObjects::keep`],
//! [`crate::kept_objects`]): a leaf's broadcast payloads, inflated only when read.
//!
//! These two files are the only places herd calls libgit2 directly (through `libgit2-sys`, the
//! bindings git2 itself is built on): git2 exposes the memory backend but not a write that
//! skips the freshen, nor custom backends.

use std::ffi::c_void;

use git2::{ObjectType, Oid, Repository};
use libgit2_sys as raw;

unsafe extern "C" {
    /// The repository a reference belongs to (libgit2 `refs.h`; not bound by libgit2-sys).
    fn git_reference_owner(reference: *const raw::git_reference) -> *mut raw::git_repository;
}

/// Priority of the memory backend: above the pack (2) and loose (1) backends.
const PRIORITY: i32 = 1000;

/// Priority of the kept-entries backend ([`crate::kept_objects`]): under the memory backend,
/// above the packs.
const KEPT_PRIORITY: i32 = 900;

/// A memory backend, and a backend of kept pack entries, added to one repository's object
/// database.
pub struct MemObjects {
    odb: *mut raw::git_odb,
    backend: *mut raw::git_odb_backend,
    kept: *const crate::kept_objects::Backend,
}

// SAFETY: the pointers are used only by the thread that owns the store (the leaf's worker, the
// hub's store thread); libgit2 object databases may be moved between threads.
unsafe impl Send for MemObjects {}

fn check(code: i32, what: &str) -> Result<(), git2::Error> {
    if code < 0 {
        Err(git2::Error::from_str(&format!("{what} failed ({code})")))
    } else {
        Ok(())
    }
}

impl MemObjects {
    /// Adds a memory backend to `repo`'s object database.
    pub fn attach(repo: &Repository) -> Result<MemObjects, git2::Error> {
        // Any reference names the libgit2 repository behind the git2 handle; HEAD always
        // exists.
        let r = repo.find_reference("HEAD")?;
        let mut odb = std::ptr::null_mut();
        let mut backend = std::ptr::null_mut();
        // SAFETY: `r.raw()` is a live reference of `repo`; its owner is `repo`'s libgit2
        // repository. `git_repository_odb` hands out a counted reference to its object
        // database, released in `Drop`. The backend becomes owned by that database once added
        // (libgit2 frees it with the database), so it is never freed here.
        unsafe {
            let owner = git_reference_owner(r.raw());
            check(
                raw::git_repository_odb(&mut odb, owner),
                "git_repository_odb",
            )?;
            if let Err(e) = check(raw::git_mempack_new(&mut backend), "git_mempack_new") {
                raw::git_odb_free(odb);
                return Err(e);
            }
            if let Err(e) = check(
                raw::git_odb_add_backend(odb, backend, PRIORITY),
                "git_odb_add_backend",
            ) {
                if let Some(free) = (*backend).free {
                    free(backend);
                }
                raw::git_odb_free(odb);
                return Err(e);
            }
        }
        // SAFETY: `odb` is the live database taken above; on failure it is released here.
        let kept = match unsafe { crate::kept_objects::attach(odb, KEPT_PRIORITY) } {
            Ok(kept) => kept,
            Err(e) => {
                unsafe { raw::git_odb_free(odb) };
                return Err(e);
            }
        };
        Ok(MemObjects { odb, backend, kept })
    }

    /// Keeps object `oid` as the whole-object entry `stored` of `pack` (shared, not copied),
    /// inflated only when read ([`crate::kept_objects`]): `Some(true)` when kept, `Some(false)`
    /// when it was kept already, `None` for a delta entry (write it instead).
    pub fn keep(
        &self,
        oid: Oid,
        pack: &bytes::Bytes,
        stored: &crate::pack::Stored,
    ) -> Option<bool> {
        // SAFETY: `kept` lives as long as the database, whose reference this store holds.
        unsafe { &*self.kept }.keep(oid, pack, stored)
    }

    /// Writes one object; returns its id, hashed by libgit2 (SHA-1 with collision detection,
    /// as git uses for input it does not trust: the hub staging a push).
    pub fn write(&self, kind: ObjectType, data: &[u8]) -> Result<Oid, git2::Error> {
        self.insert(Oid::hash_object(kind, data)?, kind, data)
    }

    /// Writes one object from a trusted source (a leaf applying the hub's payload), hashed with
    /// plain SHA-1: measured at a third of the collision-detecting hash's cost, which was ~8 %
    /// of a 64-leaf trial's CPU.
    pub fn write_trusted(&self, kind: ObjectType, data: &[u8]) -> Result<Oid, git2::Error> {
        let oid = trusted_id(kind, data)
            .ok_or_else(|| git2::Error::from_str("only commits, trees, blobs and tags"))?;
        self.insert(oid, kind, data)
    }

    fn insert(&self, oid: Oid, kind: ObjectType, data: &[u8]) -> Result<Oid, git2::Error> {
        let code = raw_type(kind)
            .ok_or_else(|| git2::Error::from_str("only commits, trees, blobs and tags"))?;
        let mut id = raw::git_oid {
            id: [0; raw::GIT_OID_MAX_SIZE],
        };
        id.id[..20].copy_from_slice(oid.as_bytes());
        // SAFETY: `backend` is the live memory backend added in `attach`; its `write` copies
        // `data` (len bytes) under `id`, and ignores an id it already holds.
        let written = unsafe {
            match (*self.backend).write {
                Some(write) => write(
                    self.backend,
                    &id,
                    data.as_ptr() as *const c_void,
                    data.len(),
                    code,
                ),
                None => -1,
            }
        };
        check(written, "writing to the memory backend")?;
        Ok(oid)
    }

    /// Is `oid` a kept entry (not dropped by a read that found it bad)?
    pub fn holds_kept(&self, oid: Oid) -> bool {
        // SAFETY: as in `keep`.
        unsafe { &*self.kept }.holds(oid)
    }

    /// Forgets kept entries (a payload that did not verify). Objects written to memory stay:
    /// they were hashed from their content.
    pub fn forget(&self, oids: impl Iterator<Item = Oid>) {
        // SAFETY: as in `keep`.
        unsafe { &*self.kept }.forget(oids);
    }

    /// Drops every object held in memory and every kept entry (after they were written to
    /// disk).
    pub fn reset(&self) -> Result<(), git2::Error> {
        // SAFETY: as in `keep`.
        unsafe { &*self.kept }.reset();
        // SAFETY: `backend` is a memory backend (created by `git_mempack_new`).
        check(
            unsafe { raw::git_mempack_reset(self.backend) },
            "git_mempack_reset",
        )
    }
}

/// libgit2's code for a storable object type (commit, tree, blob, tag).
pub(crate) fn raw_type(kind: ObjectType) -> Option<raw::git_object_t> {
    match kind {
        ObjectType::Commit => Some(raw::GIT_OBJECT_COMMIT),
        ObjectType::Tree => Some(raw::GIT_OBJECT_TREE),
        ObjectType::Blob => Some(raw::GIT_OBJECT_BLOB),
        ObjectType::Tag => Some(raw::GIT_OBJECT_TAG),
        _ => None,
    }
}

/// The id of an object from a trusted source, hashed with plain SHA-1 (a third of the
/// collision-detecting hash's cost); `None` for a type that is not storable.
pub(crate) fn trusted_id(kind: ObjectType, data: &[u8]) -> Option<Oid> {
    use sha1::{Digest, Sha1};
    let name = match kind {
        ObjectType::Commit => "commit",
        ObjectType::Tree => "tree",
        ObjectType::Blob => "blob",
        ObjectType::Tag => "tag",
        _ => return None,
    };
    let mut h = Sha1::new();
    h.update(format!("{name} {}\0", data.len()).as_bytes());
    h.update(data);
    Oid::from_bytes(h.finalize().as_slice()).ok()
}

impl Drop for MemObjects {
    fn drop(&mut self) {
        // SAFETY: releases the reference `git_repository_odb` handed out in `attach`; the
        // backend goes with the database when its last reference is released.
        unsafe { raw::git_odb_free(self.odb) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_objects_are_read_through_the_repository_until_reset() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let seed = repo.blob(b"seed").unwrap();
        let mem = MemObjects::attach(&repo).unwrap();
        let oid = mem.write(ObjectType::Blob, b"in memory").unwrap();
        assert_eq!(
            oid,
            Oid::hash_object(ObjectType::Blob, b"in memory").unwrap()
        );
        assert_eq!(repo.find_blob(oid).unwrap().content(), b"in memory");
        assert_eq!(mem.write(ObjectType::Blob, b"in memory").unwrap(), oid);
        // Nothing reached the disk.
        let loose = dir.path().join("objects").join(&oid.to_string()[..2]);
        assert!(!loose.exists());
        mem.reset().unwrap();
        drop(mem);
        let fresh = Repository::open_bare(dir.path()).unwrap();
        assert!(fresh.find_blob(oid).is_err());
        assert!(fresh.find_blob(seed).is_ok());
    }
}
