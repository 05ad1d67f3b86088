//! Merges packs herd wrote itself into one, copying entries as they are — no inflating, no
//! compressing, no delta search. A leaf flushes its in-memory objects as one small pack per
//! flush; libgit2 keeps every pack it has read from open, so without merging a long run's open
//! files and mapped memory grow with the trunk.
//!
//! Only packs whose deltas name their base by id and hold that base themselves can be merged
//! this way (what [`crate::pack::Writer`] writes): an entry then means the same at any offset.
//! Where an entry ends is read from the pack's version 2 index (the next entry's offset), so no
//! zlib stream is walked.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use git2::Oid;
use sha1::{Digest, Sha1};

use super::write::index_v2;

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
type Placed = (Oid, std::ops::Range<u64>);

/// One pack's entries in pack order, read from its index; `len` is the pack file's size.
fn entries_of(idx: &[u8], len: u64, path: &str) -> Result<Vec<Placed>, MergeError> {
    let malformed = |why: String| MergeError::Malformed {
        path: path.to_string(),
        why,
    };
    if len < 32 {
        return Err(malformed("not a pack".into()));
    }
    let mut at = index_entries(idx).map_err(malformed)?;
    at.sort_by_key(|(_, off)| *off);
    let end = len - 20;
    let mut out = Vec::with_capacity(at.len());
    for (i, (oid, start)) in at.iter().enumerate() {
        let stop = at.get(i + 1).map_or(end, |(_, o)| *o);
        if *start < 12 || stop <= *start || stop > end {
            return Err(malformed(format!("entry of {oid} out of bounds")));
        }
        out.push((*oid, *start..stop));
    }
    Ok(out)
}

/// The merged pack [`merge`] installed: its name (`pack-<name>.pack`/`.idx`) and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The pack's checksum in hex.
    pub name: String,
    /// The `.pack` file's size in bytes.
    pub bytes: u64,
}

/// Merges packs `names` (`pack-<name>.pack`/`.idx` in `dir`, oldest first) into one pack in
/// `dir` holding each of their objects once, and returns it. Entries are streamed from file
/// to file through one entry-sized buffer: memory stays small however large the packs (a
/// whole-pack read per merge left every leaf thread's heap at the size of its largest merge).
/// The merged files appear by rename, pack before index; the sources are left in place.
pub fn merge(dir: &Path, names: &[String]) -> Result<Merged, MergeError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| MergeError::Io { path, source }
    };
    // Every source's entries, and how many distinct objects there are in all.
    let mut sources = Vec::with_capacity(names.len());
    let mut distinct = HashSet::new();
    for name in names {
        let (pack, idx) = (
            dir.join(format!("pack-{name}.pack")),
            dir.join(format!("pack-{name}.idx")),
        );
        let len = std::fs::metadata(&pack).map_err(io(&pack))?.len();
        let index = std::fs::read(&idx).map_err(io(&idx))?;
        let entries = entries_of(&index, len, name)?;
        distinct.extend(entries.iter().map(|(oid, _)| *oid));
        sources.push((pack, name, entries));
    }
    let count = u32::try_from(distinct.len()).map_err(|_| MergeError::Malformed {
        path: dir.display().to_string(),
        why: "too many objects for one pack".into(),
    })?;
    let tmp = dir.join(format!(".tmp-herd-merge-{}.pack", std::process::id()));
    let result = write_merged(&tmp, count, &sources).and_then(|(sum, index)| {
        let name: String = sum.iter().map(|b| format!("{b:02x}")).collect();
        let idx_tmp = tmp.with_extension("idx");
        std::fs::write(&idx_tmp, index_v2(index, &sum)).map_err(io(&idx_tmp))?;
        let bytes = std::fs::metadata(&tmp).map_err(io(&tmp))?.len();
        let pack = dir.join(format!("pack-{name}.pack"));
        std::fs::rename(&tmp, &pack).map_err(io(&pack))?;
        let idx = dir.join(format!("pack-{name}.idx"));
        std::fs::rename(&idx_tmp, &idx).map_err(io(&idx))?;
        Ok(Merged { name, bytes })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(tmp.with_extension("idx"));
    }
    result
}

/// Writes the merged pack to `tmp`; returns its checksum and (id, offset, CRC) per object.
#[allow(clippy::type_complexity)]
fn write_merged(
    tmp: &Path,
    count: u32,
    sources: &[(std::path::PathBuf, &String, Vec<Placed>)],
) -> Result<(Vec<u8>, Vec<(Oid, u64, u32)>), MergeError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| MergeError::Io { path, source }
    };
    let mut out = BufWriter::new(File::create(tmp).map_err(err(tmp))?);
    let mut sha = Sha1::new();
    let mut put = |bytes: &[u8], out: &mut BufWriter<File>| {
        sha.update(bytes);
        out.write_all(bytes)
    };
    let mut header = Vec::with_capacity(12);
    header.extend_from_slice(b"PACK");
    header.extend_from_slice(&2u32.to_be_bytes());
    header.extend_from_slice(&count.to_be_bytes());
    put(&header, &mut out).map_err(err(tmp))?;
    let mut at = 12u64;
    let mut seen = HashSet::new();
    let mut index = Vec::with_capacity(count as usize);
    let mut buf = Vec::new();
    for (path, name, entries) in sources {
        let mut pack = BufReader::new(File::open(path).map_err(err(path))?);
        let mut pos = 0u64;
        for (oid, range) in entries {
            if range.start != pos {
                pack.seek(SeekFrom::Start(range.start)).map_err(err(path))?;
            }
            buf.resize((range.end - range.start) as usize, 0);
            pack.read_exact(&mut buf).map_err(err(path))?;
            pos = range.end;
            // Type bits of the entry header: 6 is an offset delta.
            if (buf[0] >> 4) & 7 == 6 {
                return Err(MergeError::OffsetDelta {
                    path: name.to_string(),
                });
            }
            if !seen.insert(*oid) {
                continue;
            }
            index.push((*oid, at, crc32fast::hash(&buf)));
            put(&buf, &mut out).map_err(err(tmp))?;
            at += buf.len() as u64;
        }
    }
    let sum = sha.finalize().to_vec();
    out.write_all(&sum).map_err(err(tmp))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_data())
        .map_err(err(tmp))?;
    Ok((sum, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::ObjectType;

    fn packed(objects: &[&[u8]]) -> crate::pack::Indexed {
        let mut w = crate::pack::Writer::new();
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
        let dir = objects.join("pack");
        let merged = merge(&dir, &[a.name.clone(), b.name.clone()]).unwrap();
        let idx = std::fs::read(dir.join(format!("pack-{}.idx", merged.name))).unwrap();
        let entries = index_entries(&idx).unwrap();
        assert_eq!(entries.len(), 3, "the shared object is kept once");
        let pack = std::fs::read(dir.join(format!("pack-{}.pack", merged.name))).unwrap();
        assert_eq!(pack.len() as u64, merged.bytes);

        // A fresh repository holding only the merged pack reads every object back.
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(repo_dir.path()).unwrap();
        let target = repo_dir.path().join("objects/pack");
        for ext in ["pack", "idx"] {
            let file = format!("pack-{}.{ext}", merged.name);
            std::fs::copy(dir.join(&file), target.join(&file)).unwrap();
        }
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
