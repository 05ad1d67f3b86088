//! The objects a broadcast carries: a git pack of exactly what a holder of the previous tip
//! lacks to hold the landed commit — the commit, the trees on its changed paths and the new
//! blobs — listed object by object (the cost is O(changed paths), not O(repository)).
//!
//! The pack is written by herd's own [`Writer`]: whole objects at zlib's fast level, no delta
//! search (libgit2's `PackBuilder` searched for deltas on the hub's serial store thread, where
//! a payload of one commit has nothing to delta against). Next to the pack goes its *index*:
//! each object's id and where its entry starts, in pack order. A leaf keeps the entries as
//! they are and inflates only the objects it reads (herd-leaf `apply_payload`): most of what a
//! broadcast carries — other slots' trees and blobs — is never read by a leaf, only spliced
//! into its next pack.

use std::collections::HashSet;

use git2::{Oid, Repository};

use crate::pack::Writer;

use crate::tree_diff;

/// Default cap on a payload: under nats-server's default `max_payload` (1 MiB) with room for
/// the record and headers.
pub const DEFAULT_MAX_BYTES: usize = 256 << 10;

/// What one object's index entry adds to a broadcast record, at most: a 40-digit id, an offset
/// and JSON punctuation.
pub const INDEX_BYTES_PER_OBJECT: usize = 64;

/// A broadcast's pack and its index: each object's id and the offset of its entry, in pack
/// order.
pub struct Payload {
    /// The pack bytes.
    pub pack: Vec<u8>,
    /// (id, entry offset) per object, in pack order.
    pub index: Vec<(Oid, u64)>,
}

/// The pack taking a holder of `prev` to the last commit of `chain` (each commit's parent is
/// the one before it, the first's is `prev`), or `None` when it would exceed `max_bytes` (then
/// leaves fetch instead). `max_bytes == 0` disables payloads.
pub fn build(
    repo: &Repository,
    prev: Oid,
    chain: &[Oid],
    max_bytes: usize,
) -> Result<Option<Payload>, git2::Error> {
    if max_bytes == 0 || chain.is_empty() {
        return Ok(None);
    }
    let mut objects = Vec::new();
    let mut parent_tree = repo.find_commit(prev)?.tree()?;
    for commit in chain {
        let tree = repo.find_commit(*commit)?.tree()?;
        let diff = tree_diff::diff(repo, Some(&parent_tree), Some(&tree))?;
        objects.push(*commit);
        objects.extend(diff.new_trees);
        // Gitlinks (mode 160000) name commits of another repository: never objects of this one.
        objects.extend(
            diff.changes
                .iter()
                .filter_map(|c| c.new)
                .filter(|(_, mode)| *mode != 0o160000)
                .map(|(id, _)| id),
        );
        parent_tree = tree;
    }
    let odb = repo.odb()?;
    let mut out = Writer::new();
    let mut seen = HashSet::new();
    for oid in objects.into_iter().filter(|o| seen.insert(*o)) {
        let object = odb.read(oid)?;
        out.object(oid, object.kind(), object.data());
    }
    let (pack, index) = out.finish_listed();
    // The index travels in the record (~60 bytes of JSON per object): counted against the
    // cap, so a commit of thousands of tiny objects cannot push a message past the server's
    // max_payload.
    let bytes = pack.len() + INDEX_BYTES_PER_OBJECT * index.len();
    Ok((bytes <= max_bytes).then_some(Payload { pack, index }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_counts_against_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t@herd").unwrap();
        let empty = repo.treebuilder(None).unwrap().write().unwrap();
        let seed = repo
            .commit(
                None,
                &sig,
                &sig,
                "seed",
                &repo.find_tree(empty).unwrap(),
                &[],
            )
            .unwrap();
        // Many tiny objects: the index outweighs the pack.
        let mut tree = repo.treebuilder(None).unwrap();
        for i in 0..200 {
            let blob = repo.blob(format!("{i}").as_bytes()).unwrap();
            tree.insert(format!("f{i}"), blob, 0o100644).unwrap();
        }
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let parent = repo.find_commit(seed).unwrap();
        let commit = repo
            .commit(None, &sig, &sig, "many", &tree, &[&parent])
            .unwrap();
        let full = build(&repo, seed, &[commit], usize::MAX).unwrap().unwrap();
        assert_eq!(full.index.len(), 202);
        let with_index = full.pack.len() + INDEX_BYTES_PER_OBJECT * full.index.len();
        assert!(with_index > 2 * full.pack.len());
        assert!(build(&repo, seed, &[commit], with_index).unwrap().is_some());
        assert!(
            build(&repo, seed, &[commit], with_index - 1)
                .unwrap()
                .is_none()
        );
        // The index's JSON in a broadcast record stays within what the cap counted.
        let json = serde_json::to_string(
            &full
                .index
                .iter()
                .map(|(o, at)| (o.to_string(), *at))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(json.len() <= INDEX_BYTES_PER_OBJECT * full.index.len());
    }
}
