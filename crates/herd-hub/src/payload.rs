//! The objects a broadcast carries: a git pack of exactly what a holder of the previous tip
//! lacks to hold the landed commit — the commit, the trees on its changed paths and the new
//! blobs. Built object by object (`PackBuilder::insert_object`), never with `insert_commit` or
//! `insert_tree`, which recurse into the whole snapshot: the cost is O(changed paths), not
//! O(repository).

use std::collections::HashSet;

use git2::{Buf, Oid, Repository};

use crate::tree_diff;

/// Default cap on a payload: under nats-server's default `max_payload` (1 MiB) with room for
/// the record and headers.
pub const DEFAULT_MAX_BYTES: usize = 256 << 10;

/// The pack taking a holder of `prev` to the last commit of `chain` (each commit's parent is
/// the one before it, the first's is `prev`), or `None` when it would exceed `max_bytes` (then
/// leaves fetch instead). `max_bytes == 0` disables payloads.
pub fn build(
    repo: &Repository,
    prev: Oid,
    chain: &[Oid],
    max_bytes: usize,
) -> Result<Option<Vec<u8>>, git2::Error> {
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
    let mut seen = HashSet::new();
    let mut builder = repo.packbuilder()?;
    builder.set_threads(1);
    for oid in objects.into_iter().filter(|o| seen.insert(*o)) {
        builder.insert_object(oid, None)?;
    }
    let mut buf = Buf::new();
    builder.write_buf(&mut buf)?;
    Ok((buf.len() <= max_bytes).then(|| buf.to_vec()))
}
