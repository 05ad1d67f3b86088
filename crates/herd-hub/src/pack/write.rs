//! Writes packs without a delta search: what a leaf's flush and the hub's landing need.
//! `Mempack::dump` builds its pack with libgit2's delta search, which profiling put at ~15 % of a
//! 16-leaf trial's CPU. Objects that arrived in packs (pushes, broadcast payloads) are not
//! compressed again: [`Writer::splice`] copies their entries as they are (an offset delta is
//! rewritten as a delta by id, so it means the same in the new pack); only objects made here
//! are deflated, at zlib's fast level. The hub's background repack finds deltas later.

use std::collections::HashSet;

use flate2::{Compress, Compression, FlushCompress, Status};
use git2::{ObjectType, Oid};
use sha1::{Digest, Sha1};

use super::read::Stored;

fn type_code(kind: ObjectType) -> u8 {
    match kind {
        ObjectType::Commit => 1,
        ObjectType::Tree => 2,
        ObjectType::Blob => 3,
        ObjectType::Tag => 4,
        // Callers pass only the four storable kinds.
        _ => 3,
    }
}

/// Builds one version 2 pack, each object at most once (libgit2's indexer refuses a pack that
/// holds an object twice): entries of received packs spliced as they are, objects made here
/// deflated.
pub struct Writer {
    out: Vec<u8>,
    count: u32,
    seen: HashSet<Oid>,
    /// (id, offset, CRC-32 of the entry's bytes) per object: the index.
    index: Vec<(Oid, u64, u32)>,
    z: Compress,
}

/// A finished pack with its index (`.idx`, version 2), ready to install.
#[derive(Debug)]
pub struct Indexed {
    /// The `.pack` bytes.
    pub pack: Vec<u8>,
    /// The `.idx` bytes.
    pub idx: Vec<u8>,
    /// The pack's checksum in hex: its files are `pack-<name>.pack` and `.idx`.
    pub name: String,
}

impl Default for Writer {
    fn default() -> Self {
        let mut out = Vec::new();
        out.extend_from_slice(b"PACK");
        out.extend_from_slice(&2u32.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        Writer {
            out,
            count: 0,
            seen: HashSet::new(),
            index: Vec::new(),
            // One compressor for the whole pack: a fresh one per object costs more than
            // compressing a small object (its tables are allocated and zeroed each time).
            z: Compress::new(Compression::fast(), true),
        }
    }
}

impl Writer {
    /// An empty pack.
    pub fn new() -> Self {
        Writer::default()
    }

    /// Objects added so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Nothing added yet?
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds object `oid` as `pack` stores it (an offset delta becomes a delta by id). A delta
    /// whose base is not already in this pack is not spliced (a pack on disk must not be thin):
    /// returns `false`, and the caller adds the object whole with [`Writer::object`].
    pub fn splice(&mut self, pack: &[u8], oid: Oid, stored: &Stored) -> bool {
        if self.seen.contains(&oid) {
            return true;
        }
        if let Some(base) = stored.base
            && !self.seen.contains(&base)
        {
            return false;
        }
        self.seen.insert(oid);
        let start = self.out.len();
        match stored.base {
            Some(base) => {
                header(&mut self.out, 7, stored.size);
                self.out.extend_from_slice(base.as_bytes());
            }
            None => header(&mut self.out, stored.code, stored.size),
        }
        self.out.extend_from_slice(&pack[stored.zlib.clone()]);
        self.entered(oid, start);
        true
    }

    /// Adds an entry copied whole from another pack this writer's kind wrote (a whole object,
    /// or a delta by id whose base the new pack also holds); `false` when `oid` is already in.
    pub fn entry(&mut self, oid: Oid, bytes: &[u8]) -> bool {
        if !self.seen.insert(oid) {
            return false;
        }
        let start = self.out.len();
        self.out.extend_from_slice(bytes);
        self.entered(oid, start);
        true
    }

    fn entered(&mut self, oid: Oid, start: usize) {
        let crc = crc32fast::hash(&self.out[start..]);
        self.index.push((oid, start as u64, crc));
        self.count += 1;
    }

    /// Adds object `oid` (deflated here).
    pub fn object(&mut self, oid: Oid, kind: ObjectType, data: &[u8]) {
        if !self.seen.insert(oid) {
            return;
        }
        let start = self.out.len();
        header(&mut self.out, type_code(kind), data.len());
        self.z.reset();
        deflate_into(&mut self.z, data, &mut self.out);
        self.entered(oid, start);
    }

    /// The finished pack.
    pub fn finish(self) -> Vec<u8> {
        self.finish_indexed().pack
    }

    /// The finished pack and where each object's entry starts, in pack order: what a reader
    /// needs to take entries out without inflating anything (a broadcast's payload index).
    pub fn finish_listed(self) -> (Vec<u8>, Vec<(Oid, u64)>) {
        let entries = self.index.iter().map(|(oid, at, _)| (*oid, *at)).collect();
        (self.finish_indexed().pack, entries)
    }

    /// The finished pack and its version 2 index, built from what the writer already knows
    /// (ids, offsets, CRCs) — no second pass inflating and hashing every object, which is what
    /// indexing a pack with libgit2 costs.
    pub fn finish_indexed(mut self) -> Indexed {
        self.out[8..12].copy_from_slice(&self.count.to_be_bytes());
        let sum = Sha1::digest(&self.out);
        self.out.extend_from_slice(sum.as_slice());
        let idx = index_v2(self.index, sum.as_slice());
        let name = sum.iter().map(|b| format!("{b:02x}")).collect();
        Indexed {
            pack: self.out,
            idx,
            name,
        }
    }
}

/// The version 2 index of a pack whose checksum is `sum`, from each object's (id, offset,
/// CRC-32 of its entry).
pub(crate) fn index_v2(mut entries: Vec<(Oid, u64, u32)>, sum: &[u8]) -> Vec<u8> {
    {
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut idx = Vec::with_capacity(8 + 1024 + entries.len() * 28 + 40);
        idx.extend_from_slice(b"\xfftOc");
        idx.extend_from_slice(&2u32.to_be_bytes());
        let mut fanout = [0u32; 256];
        for (oid, _, _) in &entries {
            fanout[oid.as_bytes()[0] as usize] += 1;
        }
        let mut running = 0u32;
        for n in fanout {
            running += n;
            idx.extend_from_slice(&running.to_be_bytes());
        }
        for (oid, _, _) in &entries {
            idx.extend_from_slice(oid.as_bytes());
        }
        for (_, _, crc) in &entries {
            idx.extend_from_slice(&crc.to_be_bytes());
        }
        let mut long = Vec::new();
        for (_, offset, _) in &entries {
            let small = match u32::try_from(*offset) {
                Ok(o) if o < 0x8000_0000 => o,
                _ => {
                    long.push(*offset);
                    0x8000_0000 | (long.len() as u32 - 1)
                }
            };
            idx.extend_from_slice(&small.to_be_bytes());
        }
        for offset in long {
            idx.extend_from_slice(&offset.to_be_bytes());
        }
        idx.extend_from_slice(sum);
        let idx_sum = Sha1::digest(&idx);
        idx.extend_from_slice(idx_sum.as_slice());
        idx
    }
}

impl Indexed {
    /// Installs the pack in `<git dir>/objects/pack`: each file written under a temporary name
    /// and renamed, the pack before its index (readers find packs by their index). On failure
    /// (a full disk) no temporary file is left, and no index without its pack.
    pub fn install(&self, objects: &std::path::Path) -> std::io::Result<()> {
        let dir = objects.join("pack");
        std::fs::create_dir_all(&dir)?;
        let mut done = Vec::new();
        for (ext, bytes) in [("pack", &self.pack), ("idx", &self.idx)] {
            let tmp = dir.join(format!(".tmp-herd-{}.{ext}", self.name));
            let target = dir.join(format!("pack-{}.{ext}", self.name));
            if let Err(e) =
                std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &target))
            {
                let _ = std::fs::remove_file(&tmp);
                for installed in &done {
                    let _ = std::fs::remove_file(installed);
                }
                return Err(e);
            }
            done.push(target);
        }
        Ok(())
    }
}

/// Appends an entry header: 3 type bits and 4 size bits, then 7 size bits per byte.
fn header(out: &mut Vec<u8>, code: u8, size: usize) {
    let mut size = size;
    let mut byte = (code << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        out.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(byte);
}

/// A pack of `objects` (duplicates dropped).
pub fn write<'a>(objects: impl Iterator<Item = (ObjectType, &'a [u8])>) -> Vec<u8> {
    let mut w = Writer::new();
    for (kind, data) in objects {
        // Hashing cannot fail for the four object kinds.
        if let Ok(oid) = Oid::hash_object(kind, data) {
            w.object(oid, kind, data);
        }
    }
    w.finish()
}

/// Compresses `data` as one zlib stream appended to `out`.
fn deflate_into(z: &mut Compress, data: &[u8], out: &mut Vec<u8>) {
    let start_in = z.total_in();
    loop {
        out.reserve(data.len() / 2 + 64);
        let consumed = (z.total_in() - start_in) as usize;
        match z.compress_vec(&data[consumed..], out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return,
            // More room needed: the loop reserves it.
            Ok(_) => {}
            // Compressing into a Vec with room cannot fail; stop rather than loop.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_with_the_reader_and_indexes_with_libgit2() {
        let big = vec![7u8; 70_000];
        let objects: Vec<(ObjectType, &[u8])> = vec![
            (ObjectType::Blob, b"hello"),
            (ObjectType::Blob, &big),
            (ObjectType::Blob, b""),
        ];
        let pack = write(objects.iter().copied());
        let back = crate::pack::read(&pack, |_| None).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[1].data, big);
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let odb = repo.odb().unwrap();
        let mut indexer =
            git2::Indexer::new(Some(&odb), &dir.path().join("objects/pack"), 0o444, true).unwrap();
        std::io::Write::write_all(&mut indexer, &pack).unwrap();
        indexer.commit().unwrap();
        let oid = git2::Oid::hash_object(ObjectType::Blob, &big).unwrap();
        assert_eq!(repo.find_blob(oid).unwrap().content(), &big[..]);
    }

    /// Entries of two packs (one with deltas from libgit2, one holding an object of the first
    /// again) spliced with a fresh object: each object once, read back whole, indexed by
    /// libgit2. A delta whose base the new pack lacks is refused (the pack would be thin).
    #[test]
    fn splicing_keeps_each_object_once() {
        let dir = tempfile::tempdir().unwrap();
        let src = git2::Repository::init_bare(dir.path().join("src")).unwrap();
        let base: Vec<u8> = (0..4000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut edited = base.clone();
        edited[10] ^= 1;
        let mut builder = src.packbuilder().unwrap();
        for b in [&base, &edited] {
            builder.insert_object(src.blob(b).unwrap(), None).unwrap();
        }
        let mut with_deltas = git2::Buf::new();
        builder.write_buf(&mut with_deltas).unwrap();
        let again = write([(ObjectType::Blob, &base[..])].into_iter());
        let mut w = Writer::new();
        let entries = crate::pack::read(&with_deltas, |_| None).unwrap();
        if let Some(delta) = entries.iter().find(|e| e.stored.base.is_some()) {
            let oid = Oid::hash_object(delta.kind, &delta.data).unwrap();
            assert!(!Writer::new().splice(&with_deltas, oid, &delta.stored));
        }
        for pack in [&with_deltas[..], &again[..]] {
            for e in crate::pack::read(pack, |_| None).unwrap() {
                let oid = Oid::hash_object(e.kind, &e.data).unwrap();
                assert!(w.splice(pack, oid, &e.stored), "bases come first in a pack");
            }
        }
        let two = Oid::hash_object(ObjectType::Blob, b"two").unwrap();
        w.object(two, ObjectType::Blob, b"two");
        assert_eq!(w.len(), 3, "the repeated object is written once");
        let all = w.finish();
        let back = crate::pack::read(&all, |_| None).unwrap();
        let mut got: Vec<Vec<u8>> = back.into_iter().map(|e| e.data).collect();
        got.sort();
        let mut want = vec![base, edited, b"two".to_vec()];
        want.sort();
        assert_eq!(got, want);
        let dst = git2::Repository::init_bare(dir.path().join("dst")).unwrap();
        let odb = dst.odb().unwrap();
        let mut writer = odb.packwriter().unwrap();
        std::io::Write::write_all(&mut writer, &all).unwrap();
        writer.commit().unwrap();
        assert!(dst.find_blob(two).is_ok());
    }

    /// The index the writer builds itself is the one libgit2 and stock git accept: objects
    /// read back through it, and `git verify-pack` checks every entry against it.
    #[test]
    fn its_own_index_is_a_valid_index() {
        let dir = tempfile::tempdir().unwrap();
        let src = git2::Repository::init_bare(dir.path().join("src")).unwrap();
        let base: Vec<u8> = (0..4000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut edited = base.clone();
        edited[10] ^= 1;
        let mut builder = src.packbuilder().unwrap();
        let ids: Vec<Oid> = [&base, &edited]
            .iter()
            .map(|b| src.blob(b).unwrap())
            .collect();
        for id in &ids {
            builder.insert_object(*id, None).unwrap();
        }
        let mut with_deltas = git2::Buf::new();
        builder.write_buf(&mut with_deltas).unwrap();
        let mut w = Writer::new();
        for e in crate::pack::read(&with_deltas, |_| None).unwrap() {
            let oid = Oid::hash_object(e.kind, &e.data).unwrap();
            assert!(w.splice(&with_deltas, oid, &e.stored));
        }
        let small = Oid::hash_object(ObjectType::Blob, b"small").unwrap();
        w.object(small, ObjectType::Blob, b"small");
        let indexed = w.finish_indexed();
        let dst = git2::Repository::init_bare(dir.path().join("dst")).unwrap();
        indexed.install(&dir.path().join("dst/objects")).unwrap();
        for id in ids.iter().chain([&small]) {
            assert!(dst.find_blob(*id).is_ok(), "{id}");
        }
        let pack = dir
            .path()
            .join(format!("dst/objects/pack/pack-{}.pack", indexed.name));
        let out = std::process::Command::new("git")
            .arg("verify-pack")
            .arg(&pack)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
