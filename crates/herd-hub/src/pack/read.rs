//! Reads a git pack into objects, in memory. A leaf applies a broadcast's payload by writing
//! each object through its object database (a memory backend) instead of indexing a pack file
//! per broadcast — measured here, indexing cost 0.7 ms per payload and grew with every pack the
//! leaf accumulated (4.9 ms after 500), while reading and writing ~5 objects into memory costs
//! ~60 µs. The hub stages pushed packs the same way.
//!
//! Format (gitformat-pack(5)): `PACK`, version 2 or 3, object count; per object a type/size
//! header, for deltas the base (`OFS_DELTA`: a negative offset into this pack; `REF_DELTA`: an
//! object id, in this pack or — a thin pack — already in the store), then a zlib stream; a
//! SHA-1 trailer over everything before it. Bases are resolved and deltas applied here.

use std::collections::HashMap;

use flate2::{Decompress, FlushDecompress, Status};
use git2::{ObjectType, Oid};
use sha1::{Digest, Sha1};

/// Why a pack could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackError {
    /// Not a version 2/3 pack, or cut short.
    #[error("malformed pack: {0}")]
    Malformed(String),
    /// The trailer does not match the content.
    #[error("pack checksum mismatch")]
    Checksum,
    /// A delta's base is neither in the pack nor in the store.
    #[error("missing delta base {0}")]
    MissingBase(Oid),
    /// Over one of the [`Limits`]; found before the offending object was inflated.
    #[error("{0}")]
    Limit(String),
}

/// What one pack may hold, checked from headers *before* inflating: a pack bomb (a small
/// stream declaring — or a delta producing — gigabytes) is refused, never allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most objects (the pack header's count).
    pub max_objects: usize,
    /// Largest object, inflated (deltas: the object they produce).
    pub max_object_bytes: usize,
    /// Most inflated bytes over the whole pack (objects and delta streams).
    pub max_total_bytes: usize,
}

impl Default for Limits {
    /// 20,000 objects, 32 MiB per object, 128 MiB in all.
    fn default() -> Self {
        Limits {
            max_objects: 20_000,
            max_object_bytes: 32 << 20,
            max_total_bytes: 128 << 20,
        }
    }
}

/// One object: its type and content.
pub type Object = (ObjectType, Vec<u8>);

/// One object of a pack: its content, and how the pack stores it — so a writer can splice it
/// into another pack without compressing it again ([`crate::pack::Writer::splice`]).
#[derive(Clone, Debug)]
pub struct Entry {
    /// The object's type.
    pub kind: ObjectType,
    /// Its content (deltas resolved).
    pub data: Vec<u8>,
    /// How the pack holds it.
    pub stored: Stored,
}

/// Where an entry's compressed bytes sit in its pack, and against what they are a delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The base object, when the pack holds this one as a delta (an offset delta's base is
    /// given by id, so the entry means the same in any pack).
    pub base: Option<Oid>,
    /// The entry's type code in the pack (1–4 for a whole object).
    pub code: u8,
    /// Inflated size of the zlib stream (the object, or the delta).
    pub size: usize,
    /// The zlib stream's byte range in the pack.
    pub zlib: std::ops::Range<usize>,
}

/// Where each object of `pack` sits, from its index (`(id, entry offset)` per object, as
/// [`crate::pack::Writer::finish_listed`] makes it), reading only entry headers: nothing is
/// inflated or hashed. `None` unless the index names every entry of a version 2/3 pack exactly
/// once, its checksum holds, and every entry is a whole object within the default [`Limits`]
/// (a delta needs [`read`]). Each entry's stream ends
/// where the next one starts (the last at the trailer); a stream that is not what its id says
/// is caught when it is read ([`crate::kept_objects`]).
pub fn listed(pack: &[u8], index: &[(Oid, u64)]) -> Option<Vec<(Oid, Stored)>> {
    if pack.len() < 32 || &pack[..4] != b"PACK" {
        return None;
    }
    let version = u32::from_be_bytes([pack[4], pack[5], pack[6], pack[7]]);
    let count = u32::from_be_bytes([pack[8], pack[9], pack[10], pack[11]]) as usize;
    if (version != 2 && version != 3) || count != index.len() {
        return None;
    }
    let end = pack.len() - 20;
    // The trailer: bytes damaged on the way are refused here (one hash over the pack), not
    // spliced into a leaf's pack.
    if Sha1::digest(&pack[..end]).as_slice() != &pack[end..] {
        return None;
    }
    let mut out = Vec::with_capacity(index.len());
    let mut expect = 12usize;
    for (i, (oid, at)) in index.iter().enumerate() {
        let at = usize::try_from(*at).ok()?;
        let next = match index.get(i + 1) {
            Some((_, n)) => usize::try_from(*n).ok()?,
            None => end,
        };
        if at != expect || next <= at || next > end {
            return None;
        }
        let (code, size, header) = entry_header(&pack[at..next])?;
        if !(1..=4).contains(&code)
            || at + header >= next
            || size > Limits::default().max_object_bytes
        {
            return None;
        }
        out.push((
            *oid,
            Stored {
                base: None,
                code,
                size,
                zlib: at + header..next,
            },
        ));
        expect = next;
    }
    (expect == end).then_some(out)
}

/// Reads every object of `pack`, resolving deltas; `lookup` supplies bases a thin pack leaves
/// out. Entries come back in pack order. Within the default [`Limits`].
pub fn read(pack: &[u8], lookup: impl Fn(Oid) -> Option<Object>) -> Result<Vec<Entry>, PackError> {
    read_limited(pack, lookup, Limits::default())
}

/// [`read`] within `limits`.
pub fn read_limited(
    pack: &[u8],
    lookup: impl Fn(Oid) -> Option<Object>,
    limits: Limits,
) -> Result<Vec<Entry>, PackError> {
    let bad = |what: &str| PackError::Malformed(what.to_string());
    if pack.len() < 32 || &pack[..4] != b"PACK" {
        return Err(bad("no PACK header"));
    }
    let version = u32::from_be_bytes([pack[4], pack[5], pack[6], pack[7]]);
    if version != 2 && version != 3 {
        return Err(bad("unsupported pack version"));
    }
    let count = u32::from_be_bytes([pack[8], pack[9], pack[10], pack[11]]) as usize;
    if count > limits.max_objects {
        return Err(PackError::Limit(format!(
            "{count} objects, over the limit of {}",
            limits.max_objects
        )));
    }
    let mut total = 0usize;
    let mut budget = |size: usize, what: &str| -> Result<(), PackError> {
        if size > limits.max_object_bytes {
            return Err(PackError::Limit(format!(
                "{what} of {size} bytes, over the per-object limit of {}",
                limits.max_object_bytes
            )));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(PackError::Limit(format!(
                "over {} inflated bytes in one pack",
                limits.max_total_bytes
            )));
        }
        Ok(())
    };
    let (body, trailer) = pack.split_at(pack.len() - 20);
    if Sha1::digest(body).as_slice() != trailer {
        return Err(PackError::Checksum);
    }
    let mut at = 12;
    let mut by_offset: HashMap<usize, usize> = HashMap::new();
    // Object ids are needed only for delta bases (a REF_DELTA against an earlier object of this
    // pack, an OFS_DELTA's base named by id); hashing every object up front would double the
    // reader's cost for packs without deltas.
    let mut by_oid: Option<HashMap<Oid, usize>> = None;
    let mut ids: Vec<Option<Oid>> = Vec::with_capacity(count.min(1 << 16));
    let mut out: Vec<Entry> = Vec::with_capacity(count.min(1 << 16));
    // One decompressor for the whole pack (reset per object): creating one allocates and zeroes
    // its state, which cost more than inflating a small object.
    let mut z = Decompress::new(true);
    for _ in 0..count {
        let start = at;
        let (kind, size, header) = entry_header(&body[at..]).ok_or_else(|| bad("entry header"))?;
        budget(size, "an object")?;
        at += header;
        let base: Option<(Oid, Object)> = match kind {
            6 => {
                let (back, used) = ofs_back(&body[at..]).ok_or_else(|| bad("delta offset"))?;
                at += used;
                let base_at = start.checked_sub(back).ok_or_else(|| bad("delta offset"))?;
                let idx = *by_offset
                    .get(&base_at)
                    .ok_or_else(|| bad("delta base offset"))?;
                let e = &out[idx];
                let oid = match ids[idx] {
                    Some(oid) => oid,
                    None => {
                        let oid = Oid::hash_object(e.kind, &e.data).map_err(|_| bad("hashing"))?;
                        ids[idx] = Some(oid);
                        oid
                    }
                };
                Some((oid, (e.kind, e.data.clone())))
            }
            7 => {
                let raw = body.get(at..at + 20).ok_or_else(|| bad("delta base id"))?;
                at += 20;
                let oid = Oid::from_bytes(raw).map_err(|_| bad("delta base id"))?;
                let known = by_oid.get_or_insert_with(|| {
                    out.iter()
                        .enumerate()
                        .filter_map(|(i, e)| Oid::hash_object(e.kind, &e.data).ok().map(|o| (o, i)))
                        .collect()
                });
                match known.get(&oid) {
                    Some(idx) => Some((oid, (out[*idx].kind, out[*idx].data.clone()))),
                    None => Some((oid, lookup(oid).ok_or(PackError::MissingBase(oid))?)),
                }
            }
            _ => None,
        };
        z.reset(true);
        let (data, used) = inflate(&mut z, &body[at..], size).ok_or_else(|| bad("zlib stream"))?;
        let zlib = at..at + used;
        at += used;
        let entry = match base {
            Some((base_oid, (base_kind, base_data))) => Entry {
                kind: base_kind,
                data: {
                    let result = delta_result_size(&data).ok_or_else(|| bad("delta"))?;
                    budget(result, "a delta's result")?;
                    apply_delta(&base_data, &data).ok_or_else(|| bad("delta"))?
                },
                stored: Stored {
                    base: Some(base_oid),
                    code: kind,
                    size,
                    zlib,
                },
            },
            None => Entry {
                kind: object_type(kind).ok_or_else(|| bad("object type"))?,
                data,
                stored: Stored {
                    base: None,
                    code: kind,
                    size,
                    zlib,
                },
            },
        };
        by_offset.insert(start, out.len());
        if let Some(known) = by_oid.as_mut() {
            let oid = Oid::hash_object(entry.kind, &entry.data).map_err(|_| bad("hashing"))?;
            known.insert(oid, out.len());
        }
        ids.push(None);
        out.push(entry);
    }
    if at != body.len() {
        return Err(bad("trailing bytes after the last object"));
    }
    Ok(out)
}

/// The object type of a whole-object entry's type code (1–4).
pub(crate) fn object_type(kind: u8) -> Option<ObjectType> {
    match kind {
        1 => Some(ObjectType::Commit),
        2 => Some(ObjectType::Tree),
        3 => Some(ObjectType::Blob),
        4 => Some(ObjectType::Tag),
        _ => None,
    }
}

/// (type, inflated size, header length).
fn entry_header(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let first = *buf.first()?;
    let kind = (first >> 4) & 7;
    let mut size = (first & 0x0f) as usize;
    let mut shift = 4;
    let mut used = 1;
    let mut byte = first;
    while byte & 0x80 != 0 {
        byte = *buf.get(used)?;
        used += 1;
        size |= ((byte & 0x7f) as usize).checked_shl(shift)?;
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some((kind, size, used))
}

/// The `OFS_DELTA` distance back to the base entry, and the bytes it took.
fn ofs_back(buf: &[u8]) -> Option<(usize, usize)> {
    let mut byte = *buf.first()?;
    let mut back = (byte & 0x7f) as usize;
    let mut used = 1;
    while byte & 0x80 != 0 {
        byte = *buf.get(used)?;
        used += 1;
        back = back.checked_add(1)?.checked_shl(7)? | (byte & 0x7f) as usize;
    }
    Some((back, used))
}

/// Inflates one zlib stream of `size` bytes from the start of `buf`; returns the data and the
/// compressed bytes consumed. One call: with the whole input and room for one byte more than
/// declared, zlib either ends the stream or the entry is malformed.
fn inflate(z: &mut Decompress, buf: &[u8], size: usize) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(size + 1);
    match z
        .decompress_vec(buf, &mut out, FlushDecompress::Finish)
        .ok()?
    {
        Status::StreamEnd if out.len() == size => Some((out, z.total_in() as usize)),
        _ => None,
    }
}

fn varint(buf: &[u8], at: &mut usize) -> Option<usize> {
    let mut value = 0usize;
    let mut shift = 0;
    loop {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= ((byte & 0x7f) as usize).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// The size of the object a delta produces (its header's second number).
fn delta_result_size(delta: &[u8]) -> Option<usize> {
    let mut at = 0;
    varint(delta, &mut at)?;
    varint(delta, &mut at)
}

/// Applies a git delta to `base`; never grows past the size the delta declares.
fn apply_delta(base: &[u8], delta: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0;
    if varint(delta, &mut at)? != base.len() {
        return None;
    }
    let size = varint(delta, &mut at)?;
    let mut out = Vec::with_capacity(size);
    while at < delta.len() {
        let op = delta[at];
        at += 1;
        if op & 0x80 != 0 {
            let mut offset = 0usize;
            let mut len = 0usize;
            for i in 0..4 {
                if op & (1 << i) != 0 {
                    offset |= (*delta.get(at)? as usize) << (8 * i);
                    at += 1;
                }
            }
            for i in 0..3 {
                if op & (0x10 << i) != 0 {
                    len |= (*delta.get(at)? as usize) << (8 * i);
                    at += 1;
                }
            }
            if len == 0 {
                len = 0x10000;
            }
            if out.len() + len > size {
                return None;
            }
            out.extend_from_slice(base.get(offset..offset.checked_add(len)?)?);
        } else if op != 0 {
            let n = op as usize;
            if out.len() + n > size {
                return None;
            }
            out.extend_from_slice(delta.get(at..at + n)?);
            at += n;
        } else {
            return None;
        }
    }
    (out.len() == size).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pack libgit2 wrote (with deltas: similar blobs) reads back object for object.
    #[test]
    fn reads_a_libgit2_pack_with_deltas() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let base: Vec<u8> = (0..4000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut edited = base.clone();
        edited[100..110].copy_from_slice(b"0123456789");
        let blobs = [repo.blob(&base).unwrap(), repo.blob(&edited).unwrap()];
        let mut builder = repo.packbuilder().unwrap();
        for b in blobs {
            builder.insert_object(b, None).unwrap();
        }
        let mut buf = git2::Buf::new();
        builder.write_buf(&mut buf).unwrap();
        let objects = read(&buf, |_| None).unwrap();
        let mut got: Vec<Oid> = objects
            .iter()
            .map(|e| Oid::hash_object(e.kind, &e.data).unwrap())
            .collect();
        got.sort();
        let mut want = blobs.to_vec();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn corrupt_and_truncated_packs_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let blob = repo.blob(b"hello payload").unwrap();
        let mut builder = repo.packbuilder().unwrap();
        builder.insert_object(blob, None).unwrap();
        let mut buf = git2::Buf::new();
        builder.write_buf(&mut buf).unwrap();
        let good = buf.to_vec();
        assert_eq!(read(&good, |_| None).unwrap().len(), 1);
        let mut flipped = good.clone();
        flipped[14] ^= 0xff;
        assert_eq!(read(&flipped, |_| None).unwrap_err(), PackError::Checksum);
        for cut in [0, 5, 12, good.len() - 1] {
            assert!(read(&good[..cut], |_| None).is_err());
        }
        // A delta against a base the reader cannot find names that base.
        let mut body = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        body.push(0x70 | 5); // REF_DELTA, size 5
        let missing = Oid::from_str(&"ab".repeat(20)).unwrap();
        body.extend_from_slice(missing.as_bytes());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, &[1, 1, 0x01, b'x', 0]).unwrap();
        body.extend_from_slice(&z.finish().unwrap());
        let sum = Sha1::digest(&body);
        body.extend_from_slice(sum.as_slice());
        assert_eq!(
            read(&body, |_| None).unwrap_err(),
            PackError::MissingBase(missing)
        );
    }

    fn header(kind: u8, mut size: u64) -> Vec<u8> {
        let mut out = vec![(kind << 4) | (size & 0x0f) as u8];
        size >>= 4;
        while size > 0 {
            *out.last_mut().unwrap() |= 0x80;
            out.push((size & 0x7f) as u8);
            size >>= 7;
        }
        out
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, data).unwrap();
        z.finish().unwrap()
    }

    fn sealed(count: u32, entries: &[u8]) -> Vec<u8> {
        let mut body = b"PACK\0\0\0\x02".to_vec();
        body.extend_from_slice(&count.to_be_bytes());
        body.extend_from_slice(entries);
        let sum = Sha1::digest(&body);
        body.extend_from_slice(sum.as_slice());
        body
    }

    /// Pack bombs are refused from their headers, before anything big is allocated.
    #[test]
    fn pack_bombs_are_refused_before_inflating() {
        let limit = |r: Result<Vec<Entry>, PackError>| match r {
            Err(PackError::Limit(why)) => why,
            other => panic!("expected a limit error, got {other:?}"),
        };
        // A blob declaring 1 TiB (its stream is 5 bytes).
        let mut e = header(3, 1 << 40);
        e.extend(zlib(b"small"));
        assert!(limit(read(&sealed(1, &e), |_| None)).contains("per-object"));
        // A header counting a million objects.
        assert!(limit(read(&sealed(1_000_000, &e), |_| None)).contains("objects"));
        // A tiny delta whose result is declared as 1 GiB of copies of its base.
        let base = vec![b'x'; 16];
        let base_oid = Oid::hash_object(ObjectType::Blob, &base).unwrap();
        let mut delta = vec![16, 0x80, 0x80, 0x80, 0x80, 0x04]; // base 16, result 1 GiB
        delta.extend([0x90, 16].repeat(8)); // copy 16 bytes from offset 0, eight times
        let mut e = header(7, delta.len() as u64);
        e.extend_from_slice(base_oid.as_bytes());
        e.extend(zlib(&delta));
        let lookup = |oid: Oid| (oid == base_oid).then(|| (ObjectType::Blob, base.clone()));
        assert!(limit(read(&sealed(1, &e), lookup)).contains("delta"));
        // Many objects under the per-object limit still hit the pack's total.
        let small = Limits {
            max_objects: 100,
            max_object_bytes: 10,
            max_total_bytes: 25,
        };
        let mut e = Vec::new();
        for _ in 0..3 {
            e.extend(header(3, 10));
            e.extend(zlib(b"0123456789"));
        }
        assert!(limit(read_limited(&sealed(3, &e), |_| None, small)).contains("inflated"));
        // And within limits the same pack reads.
        assert_eq!(read(&sealed(3, &e), |_| None).unwrap().len(), 3);
    }
}
