//! Merges packs herd wrote itself into one, copying entries as they are — no inflating, no
//! compressing, no delta search. A leaf flushes its in-memory objects as one small pack per
//! flush; libgit2 keeps every pack it has read from open, so without merging a long run's open
//! files and mapped memory grow with the trunk.
//!
//! Only packs whose deltas name their base by id and hold that base themselves can be merged
//! this way (what [`crate::pack::Writer`] writes): an entry then means the same at any offset.
//! Where an entry ends is read from the pack's version 2 index (the next entry's offset), so no
//! zlib stream is walked.

use std::path::Path;

use git2::Oid;

use super::write::{Indexed, Writer};

/// Why packs could not be merged (nothing was changed on disk).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A pack or index file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An index or pack is not what [`Writer`] writes.
    #[error("{path}: {why}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// An entry is an offset delta: its meaning depends on where it sits.
    #[error("{path}: holds an offset delta; only self-contained id-delta packs merge")]
    OffsetDelta {
        /// The pack.
        path: String,
    },
}

/// Every (object id, offset) of a version 2 pack index, in index order.
pub fn index_entries(idx: &[u8]) -> Result<Vec<(Oid, u64)>, String> {
    if idx.len() < 8 + 1024 + 40 || &idx[..4] != b"\xfftOc" || idx[4..8] != 2u32.to_be_bytes() {
        return Err("not a version 2 pack index".into());
    }
    let be32 = |at: usize| u32::from_be_bytes(idx[at..at + 4].try_into().expect("4 bytes"));
    let n = be32(8 + 255 * 4) as usize;
    let ids = 8 + 1024;
    let crcs = ids + 20 * n;
    let small = crcs + 4 * n;
    let large = small + 4 * n;
    if idx.len() < large + 40 {
        return Err(format!("index of {n} objects is cut short"));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let oid = Oid::from_bytes(&idx[ids + 20 * i..ids + 20 * (i + 1)])
            .map_err(|e| e.message().to_string())?;
        let off = be32(small + 4 * i);
        let offset = if off & 0x8000_0000 == 0 {
            u64::from(off)
        } else {
            let at = large + 8 * (off & 0x7fff_ffff) as usize;
            let bytes = idx
                .get(at..at + 8)
                .ok_or_else(|| "large offset outside the index".to_string())?;
            u64::from_be_bytes(bytes.try_into().expect("8 bytes"))
        };
        out.push((oid, offset));
    }
    Ok(out)
}

/// Where one entry sits in its pack: (id, byte range).
type Placed = (Oid, std::ops::Range<usize>);

/// One pack's entries in pack order, read with its index.
fn entries_of(pack: &[u8], idx: &[u8], path: &str) -> Result<Vec<Placed>, MergeError> {
    let malformed = |why: String| MergeError::Malformed {
        path: path.to_string(),
        why,
    };
    if pack.len() < 32 || &pack[..4] != b"PACK" {
        return Err(malformed("not a pack".into()));
    }
    let mut at = index_entries(idx).map_err(malformed)?;
    at.sort_by_key(|(_, off)| *off);
    let end = pack.len() - 20;
    let mut out = Vec::with_capacity(at.len());
    for (i, (oid, off)) in at.iter().enumerate() {
        let start = usize::try_from(*off).map_err(|_| malformed("offset too large".into()))?;
        let stop = at.get(i + 1).map_or(end, |(_, o)| *o as usize);
        if start < 12 || stop <= start || stop > end {
            return Err(malformed(format!("entry of {oid} out of bounds")));
        }
        // Type bits of the entry header: 6 is an offset delta.
        if (pack[start] >> 4) & 7 == 6 {
            return Err(MergeError::OffsetDelta {
                path: path.to_string(),
            });
        }
        out.push((*oid, start..stop));
    }
    Ok(out)
}

/// Reads packs `names` (`pack-<name>.pack`/`.idx` in `dir`), oldest first, and builds one pack
/// holding each of their objects once. Nothing on disk changes.
pub fn merge(dir: &Path, names: &[String]) -> Result<Indexed, MergeError> {
    let mut out = Writer::new();
    for name in names {
        let read = |ext: &str| {
            let path = dir.join(format!("pack-{name}.{ext}"));
            std::fs::read(&path).map_err(|source| MergeError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let (pack, idx) = (read("pack")?, read("idx")?);
        for (oid, range) in entries_of(&pack, &idx, name)? {
            out.entry(oid, &pack[range]);
        }
    }
    Ok(out.finish_indexed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::ObjectType;

    fn packed(objects: &[&[u8]]) -> Indexed {
        let mut w = Writer::new();
        for data in objects {
            let oid = Oid::hash_object(ObjectType::Blob, data).unwrap();
            w.object(oid, ObjectType::Blob, data);
        }
        w.finish_indexed()
    }

    #[test]
    fn merged_pack_holds_each_object_once_and_libgit2_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let a = packed(&[b"one\n", b"two\n"]);
        let b = packed(&[b"two\n", b"three\n"]);
        a.install(&objects).unwrap();
        b.install(&objects).unwrap();
        let merged = merge(&objects.join("pack"), &[a.name.clone(), b.name.clone()]).unwrap();
        let entries = index_entries(&merged.idx).unwrap();
        assert_eq!(entries.len(), 3, "the shared object is kept once");

        // A fresh repository holding only the merged pack reads every object back.
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(repo_dir.path()).unwrap();
        merged.install(&repo_dir.path().join("objects")).unwrap();
        let odb = repo.odb().unwrap();
        odb.refresh().unwrap();
        for data in [&b"one\n"[..], b"two\n", b"three\n"] {
            let oid = Oid::hash_object(ObjectType::Blob, data).unwrap();
            assert_eq!(odb.read(oid).unwrap().data(), data);
        }
    }

    #[test]
    fn a_truncated_index_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let a = packed(&[b"one\n"]);
        a.install(&objects).unwrap();
        let idx = objects.join("pack").join(format!("pack-{}.idx", a.name));
        std::fs::write(&idx, &a.idx[..100]).unwrap();
        let err = merge(&objects.join("pack"), std::slice::from_ref(&a.name)).unwrap_err();
        assert!(err.to_string().contains(&a.name), "{err}");
    }
}
