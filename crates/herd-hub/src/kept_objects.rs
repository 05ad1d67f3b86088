//! Objects kept as the pack entries they arrived in, inflated only when read.
//!
//! A leaf receives every commit of the trunk as a broadcast payload, but reads few of those
//! objects: the tip's commit and the trees on its own slot's path when it commits. Inflating
//! and hashing every object of every payload into memory ([`crate::mem_objects`]) was the
//! leaves' largest CPU cost (zlib and SHA-1, ~10 % of a 16-leaf trial) and kept each object
//! twice until the flush (the inflated copy and the payload bytes). This backend, added to the
//! repository's object database next to the memory backend, maps each id to its entry in the
//! payload bytes (shared, not copied) and answers libgit2's reads from there: `exists` and
//! `read_header` from the entry header, `read` by inflating the entry and checking it hashes to
//! the id it was filed under (plain SHA-1; a mismatch drops the entry — it is never spliced
//! into a pack — and the read falls through to the other backends: never wrong content).
//! An entry never read is spliced into the leaf's pack under the id the hub's index gave it:
//! the payload's pack checksum was verified ([`crate::pack::listed`]), and the index comes
//! from the same hub as the objects, on a subject only the hub may publish to.
//! Entries are whole objects only (a delta needs its base resolved: such payloads are read
//! whole, as before). The leaf's flush splices the same entries into its pack and then empties
//! the backend.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

use flate2::{Decompress, FlushDecompress, Status};
use git2::Oid;
use libgit2_sys as raw;

use crate::mem_objects::{raw_type, trusted_id};
use crate::pack::read::object_type;
use crate::pack::{Limits, Stored};

/// One kept object: the bytes holding its entry and where its zlib stream lies.
#[derive(Clone)]
struct Kept {
    pack: bytes::Bytes,
    stored: Stored,
}

/// The backend as libgit2 sees it: its vtable first (libgit2 hands back a pointer to it).
#[repr(C)]
pub(crate) struct Backend {
    parent: raw::git_odb_backend,
    objects: Mutex<HashMap<Oid, Kept>>,
}

const NOT_FOUND: i32 = raw::GIT_ENOTFOUND;
const ERROR: i32 = raw::GIT_ERROR;

/// libgit2's type of a whole-object entry's type code.
fn kind_of(code: u8) -> Option<raw::git_object_t> {
    object_type(code).and_then(raw_type)
}

impl Backend {
    /// A backend with no objects, its vtable filled in.
    pub(crate) fn new() -> Box<Backend> {
        // SAFETY: an all-zero git_odb_backend is a valid "no callbacks" table (null pointers
        // and `None`s); `git_odb_init_backend` then sets the version as libgit2 expects.
        let mut parent: raw::git_odb_backend = unsafe { std::mem::zeroed() };
        unsafe { raw::git_odb_init_backend(&mut parent, raw::GIT_ODB_BACKEND_VERSION) };
        parent.read = Some(read);
        parent.read_header = Some(read_header);
        parent.exists = Some(exists);
        parent.free = Some(free);
        Box::new(Backend {
            parent,
            objects: Mutex::new(HashMap::new()),
        })
    }

    /// Keeps `oid` as the whole-object entry `stored` of `pack`: `Some(true)` when kept,
    /// `Some(false)` when it was kept already (the first entry stays), `None` for a delta entry
    /// or a range outside `pack`.
    pub(crate) fn keep(&self, oid: Oid, pack: &bytes::Bytes, stored: &Stored) -> Option<bool> {
        if stored.base.is_some()
            || kind_of(stored.code).is_none()
            || stored.zlib.start > stored.zlib.end
            || stored.zlib.end > pack.len()
            || stored.size > Limits::default().max_object_bytes
        {
            return None;
        }
        let mut objects = self.objects.lock().expect("kept objects");
        if objects.contains_key(&oid) {
            return Some(false);
        }
        let kept = Kept {
            pack: pack.clone(),
            stored: stored.clone(),
        };
        objects.insert(oid, kept);
        Some(true)
    }

    /// Forgets these objects.
    pub(crate) fn forget(&self, oids: impl Iterator<Item = Oid>) {
        let mut objects = self.objects.lock().expect("kept objects");
        for oid in oids {
            objects.remove(&oid);
        }
    }

    /// Is `oid` kept (and not found bad by a read)?
    pub(crate) fn holds(&self, oid: Oid) -> bool {
        self.objects
            .lock()
            .is_ok_and(|objects| objects.contains_key(&oid))
    }

    /// Forgets every object (after they were written to disk).
    pub(crate) fn reset(&self) {
        self.objects.lock().expect("kept objects").clear();
    }

    fn get(&self, oid: *const raw::git_oid) -> Option<(Oid, Kept)> {
        // SAFETY: libgit2 passes a valid id; the first 20 bytes are a SHA-1.
        let oid = unsafe { &*oid };
        let id = Oid::from_bytes(&oid.id[..20]).ok()?;
        let kept = self.objects.lock().ok()?.get(&id).cloned()?;
        Some((id, kept))
    }
}

/// Inflates a kept entry and checks it is the object `id`.
fn inflate(id: Oid, kept: &Kept) -> Option<Vec<u8>> {
    let kind = object_type(kept.stored.code)?;
    let mut data = Vec::with_capacity(kept.stored.size);
    let mut z = Decompress::new(true);
    let input = &kept.pack[kept.stored.zlib.clone()];
    match z.decompress_vec(input, &mut data, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) if data.len() == kept.stored.size => {}
        _ => return None,
    }
    (trusted_id(kind, &data)? == id).then_some(data)
}

fn backend<'a>(b: *mut raw::git_odb_backend) -> &'a Backend {
    // SAFETY: libgit2 calls back only with the pointer it was given in `attach`, which is the
    // first field of a live, boxed `Backend` (repr(C)), freed only by `free`.
    unsafe { &*(b as *const Backend) }
}

/// Runs a callback body; a panic becomes an error instead of unwinding into libgit2.
fn guarded(body: impl FnOnce() -> i32) -> i32 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(ERROR)
}

/// Sets libgit2's error message for the calling thread.
fn set_error(message: &str) {
    if let Ok(text) = std::ffi::CString::new(message) {
        // SAFETY: libgit2 copies the NUL-terminated string.
        unsafe { raw::git_error_set_str(raw::GIT_ERROR_ODB as i32, text.as_ptr()) };
    }
}

extern "C" fn read(
    data_out: *mut *mut c_void,
    len_out: *mut usize,
    type_out: *mut raw::git_object_t,
    b: *mut raw::git_odb_backend,
    oid: *const raw::git_oid,
) -> i32 {
    guarded(|| read_kept(data_out, len_out, type_out, b, oid))
}

fn read_kept(
    data_out: *mut *mut c_void,
    len_out: *mut usize,
    type_out: *mut raw::git_object_t,
    b: *mut raw::git_odb_backend,
    oid: *const raw::git_oid,
) -> i32 {
    let Some((id, kept)) = backend(b).get(oid) else {
        return NOT_FOUND;
    };
    let (Some(data), Some(kind)) = (inflate(id, &kept), kind_of(kept.stored.code)) else {
        // Not what its id says: dropped (never spliced into a pack), and the lower backends
        // are asked instead — a pack may hold a good copy.
        backend(b).forget(std::iter::once(id));
        set_error(&format!(
            "kept object {id} does not hash to its id; dropped"
        ));
        return NOT_FOUND;
    };
    // SAFETY: libgit2 owns the buffer it allocates for a backend's read (freed with the object);
    // it is `data.len()` bytes (at least one, so an empty object has a valid pointer).
    unsafe {
        let buf = raw::git_odb_backend_data_alloc(b, data.len().max(1)) as *mut u8;
        if buf.is_null() {
            return ERROR;
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        *data_out = buf as *mut c_void;
        *len_out = data.len();
        *type_out = kind;
    }
    0
}

extern "C" fn read_header(
    len_out: *mut usize,
    type_out: *mut raw::git_object_t,
    b: *mut raw::git_odb_backend,
    oid: *const raw::git_oid,
) -> i32 {
    guarded(|| {
        let Some((_, kept)) = backend(b).get(oid) else {
            return NOT_FOUND;
        };
        let Some(kind) = kind_of(kept.stored.code) else {
            return ERROR;
        };
        // SAFETY: libgit2 passes valid out pointers.
        unsafe {
            *len_out = kept.stored.size;
            *type_out = kind;
        }
        0
    })
}

extern "C" fn exists(b: *mut raw::git_odb_backend, oid: *const raw::git_oid) -> i32 {
    guarded(|| i32::from(backend(b).get(oid).is_some()))
}

extern "C" fn free(b: *mut raw::git_odb_backend) {
    // SAFETY: `b` came from `Box::into_raw` in `attach`; libgit2 calls `free` once, when the
    // object database that owns the backend is freed.
    let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(b as *mut Backend) }));
}

/// Hands `backend` to libgit2 as a backend of `odb` at `priority`; returns the pointer kept to
/// reach it (owned by the database from then on).
///
/// # Safety
/// `odb` must be a live object database.
pub(crate) unsafe fn attach(
    odb: *mut raw::git_odb,
    priority: i32,
) -> Result<*const Backend, git2::Error> {
    let ptr = Box::into_raw(Backend::new());
    // SAFETY: `ptr` is a live backend whose first field is its vtable; on success the database
    // owns it and frees it through `free`.
    let code = unsafe { raw::git_odb_add_backend(odb, ptr as *mut raw::git_odb_backend, priority) };
    if code < 0 {
        drop(unsafe { Box::from_raw(ptr) });
        return Err(git2::Error::from_str(&format!(
            "git_odb_add_backend failed ({code})"
        )));
    }
    Ok(ptr)
}

#[cfg(test)]
mod tests {
    use git2::{ObjectType, Repository};

    use crate::mem_objects::MemObjects;
    use crate::pack::{Writer, listed, read};

    fn pack_of(objects: &[(ObjectType, &[u8])]) -> (bytes::Bytes, Vec<(git2::Oid, u64)>) {
        let mut w = Writer::new();
        for (kind, data) in objects {
            w.object(git2::Oid::hash_object(*kind, data).unwrap(), *kind, data);
        }
        let (pack, index) = w.finish_listed();
        (pack.into(), index)
    }

    #[test]
    fn listed_entries_match_a_full_read_and_bad_indexes_are_refused() {
        let (pack, index) = pack_of(&[
            (ObjectType::Blob, b"one"),
            (ObjectType::Blob, &[7u8; 5000]),
            (ObjectType::Blob, b""),
        ]);
        let placed = listed(&pack, &index).expect("listed");
        let full = read(&pack, |_| None).unwrap();
        assert_eq!(placed.len(), 3);
        for ((oid, stored), entry) in placed.iter().zip(&full) {
            assert_eq!(*stored, entry.stored);
            assert_eq!(
                *oid,
                git2::Oid::hash_object(entry.kind, &entry.data).unwrap()
            );
        }
        // One entry missing, the first entry not at the start, entries out of order, a cut
        // pack: not listed. (An offset that still parses as an entry header is caught when the
        // object is read: its stream does not hash to its id.)
        assert!(listed(&pack, &index[..2]).is_none());
        let mut shifted = index.clone();
        shifted[0].1 += 1;
        assert!(listed(&pack, &shifted).is_none());
        let mut swapped = index.clone();
        swapped.swap(0, 1);
        assert!(listed(&pack, &swapped).is_none());
        assert!(listed(&pack[..index[2].1 as usize + 20], &index).is_none());
        // One byte damaged on the way: the pack's checksum no longer holds.
        let mut damaged = pack.to_vec();
        damaged[index[1].1 as usize + 4] ^= 0x40;
        assert!(listed(&damaged, &index).is_none());
    }

    #[test]
    fn kept_objects_are_read_through_the_repository_checked_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let mem = MemObjects::attach(&repo).unwrap();
        let big = vec![b'x'; 70_000];
        let (pack, index) = pack_of(&[(ObjectType::Blob, b"kept"), (ObjectType::Blob, &big)]);
        let placed = listed(&pack, &index).unwrap();
        for (oid, stored) in &placed {
            assert_eq!(mem.keep(*oid, &pack, stored), Some(true));
            assert_eq!(mem.keep(*oid, &pack, stored), Some(false));
        }
        let (small, large) = (placed[0].0, placed[1].0);
        assert_eq!(repo.find_blob(small).unwrap().content(), b"kept");
        assert_eq!(repo.find_blob(large).unwrap().content(), &big[..]);
        let odb = repo.odb().unwrap();
        assert!(odb.exists(large));
        assert_eq!(odb.read_header(large).unwrap(), (70_000, ObjectType::Blob));
        // Nothing reached the disk.
        assert!(
            !dir.path()
                .join("objects")
                .join(&small.to_string()[..2])
                .exists()
        );

        // An entry filed under the wrong id is never the wrong content: the read finds it
        // bad, drops it (a flush leaves it out) and names why.
        let wrong = git2::Oid::hash_object(ObjectType::Blob, b"something else").unwrap();
        assert_eq!(mem.keep(wrong, &pack, &placed[0].1), Some(true));
        assert!(mem.holds_kept(wrong));
        let err = repo.find_blob(wrong).unwrap_err();
        assert!(!mem.holds_kept(wrong), "{err}");
        assert!(mem.holds_kept(small));

        // Forgotten, and after a reset, objects are gone (these two were never read, so no
        // cache of libgit2's holds them).
        let (more, more_index) = pack_of(&[(ObjectType::Blob, b"one"), (ObjectType::Blob, b"two")]);
        let more_placed = listed(&more, &more_index).unwrap();
        for (oid, stored) in &more_placed {
            assert_eq!(mem.keep(*oid, &more, stored), Some(true));
        }
        let (one, two) = (more_placed[0].0, more_placed[1].0);
        mem.forget([one].into_iter());
        assert!(!odb.exists(one));
        assert!(odb.exists(two));
        mem.reset().unwrap();
        assert!(!odb.exists(two));
    }

    #[test]
    fn delta_entries_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let mem = MemObjects::attach(&repo).unwrap();
        let (pack, index) = pack_of(&[(ObjectType::Blob, b"base")]);
        let mut stored = listed(&pack, &index).unwrap()[0].1.clone();
        stored.base = Some(index[0].0);
        assert_eq!(mem.keep(index[0].0, &pack, &stored), None);
        stored.base = None;
        let good = stored.clone();
        stored.zlib.end = pack.len() + 1;
        assert_eq!(mem.keep(index[0].0, &pack, &stored), None);
        // A range backwards, or a size over the per-object limit: refused, never read.
        let mut backwards = good.clone();
        backwards.zlib = good.zlib.end..good.zlib.start;
        assert_eq!(mem.keep(index[0].0, &pack, &backwards), None);
        let mut huge = good;
        huge.size = usize::MAX;
        assert_eq!(mem.keep(index[0].0, &pack, &huge), None);
    }
}
