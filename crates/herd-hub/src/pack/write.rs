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
    z: Compress,
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

    /// Adds object `oid` as `pack` stores it (an offset delta becomes a delta by id).
    pub fn splice(&mut self, pack: &[u8], oid: Oid, stored: &Stored) {
        if !self.seen.insert(oid) {
            return;
        }
        match stored.base {
            Some(base) => {
                header(&mut self.out, 7, stored.size);
                self.out.extend_from_slice(base.as_bytes());
            }
            None => header(&mut self.out, stored.code, stored.size),
        }
        self.out.extend_from_slice(&pack[stored.zlib.clone()]);
        self.count += 1;
    }

    /// Adds object `oid` (deflated here).
    pub fn object(&mut self, oid: Oid, kind: ObjectType, data: &[u8]) {
        if !self.seen.insert(oid) {
            return;
        }
        header(&mut self.out, type_code(kind), data.len());
        self.z.reset();
        deflate_into(&mut self.z, data, &mut self.out);
        self.count += 1;
    }

    /// The finished pack.
    pub fn finish(mut self) -> Vec<u8> {
        self.out[8..12].copy_from_slice(&self.count.to_be_bytes());
        let sum = Sha1::digest(&self.out);
        self.out.extend_from_slice(sum.as_slice());
        self.out
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
    /// libgit2.
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
        for pack in [&with_deltas[..], &again[..]] {
            for e in crate::pack::read(pack, |_| None).unwrap() {
                let oid = Oid::hash_object(e.kind, &e.data).unwrap();
                w.splice(pack, oid, &e.stored);
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
}
