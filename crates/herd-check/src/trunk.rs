//! Reading the hub trunk once: every commit on `refs/heads/main`, oldest first, with what the
//! invariants need (parents, author, changed paths, the task its `Herd-Claim` trailer names).

use git2::{Oid, Repository, Sort};

/// One commit of the trunk.
#[derive(Clone, Debug)]
pub struct TrunkCommit {
    /// Its oid.
    pub oid: Oid,
    /// Parent count (1 on a linear trunk; 0 for the root).
    pub parents: usize,
    /// Author name (the leaf id).
    pub author: String,
    /// Paths added, modified or deleted relative to the first parent.
    pub paths: Vec<String>,
    /// Task named by a `Herd-Claim: <task>@<epoch>` trailer, if any.
    pub task: Option<String>,
    /// The claim epoch that trailer names.
    pub epoch: Option<u64>,
    /// The trunk tip the commit's work was written against (`Herd-Base: <oid>` trailer).
    pub base: Option<Oid>,
}

/// The trunk, oldest first.
pub fn read(repo: &Repository) -> Result<Vec<TrunkCommit>, git2::Error> {
    let tip = repo.refname_to_id("refs/heads/main")?;
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.push(tip)?;
    let mut out = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let tree = commit.tree()?;
        let parent_tree = match commit.parent(0) {
            Ok(p) => Some(p.tree()?),
            Err(_) => None,
        };
        let diff = repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)?;
        let paths = diff
            .deltas()
            .flat_map(|d| [d.old_file().path(), d.new_file().path()])
            .flatten()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let message = commit.message().unwrap_or("");
        out.push(TrunkCommit {
            oid: commit.id(),
            parents: commit.parent_count(),
            author: commit.author().name().unwrap_or("").to_string(),
            paths,
            task: claim_trailer(message),
            epoch: claim_epoch(message),
            base: base_trailer(message),
        });
    }
    Ok(out)
}

/// The task of a `Herd-Claim: <task>@<epoch>` trailer.
pub fn claim_trailer(message: &str) -> Option<String> {
    message.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("Herd-Claim:")?.trim();
        Some(
            rest.rsplit_once('@')
                .map_or(rest, |(task, _)| task)
                .to_string(),
        )
    })
}

/// The oid of a `Herd-Base: <oid>` trailer.
pub fn base_trailer(message: &str) -> Option<Oid> {
    message.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("Herd-Base:")?.trim();
        Oid::from_str(rest).ok()
    })
}

/// The epoch of a `Herd-Claim: <task>@<epoch>` trailer.
pub fn claim_epoch(message: &str) -> Option<u64> {
    message.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("Herd-Claim:")?.trim();
        rest.rsplit_once('@')?.1.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::{claim_epoch, claim_trailer};

    #[test]
    fn trailer_names_the_task() {
        assert_eq!(
            claim_trailer("leaf-1: t7\n\nHerd-Claim: leaf-1.t7@42\n").as_deref(),
            Some("leaf-1.t7")
        );
        assert_eq!(claim_trailer("seed"), None);
        assert_eq!(claim_epoch("x\n\nHerd-Claim: leaf-1.t7@42\n"), Some(42));
        assert_eq!(claim_epoch("Herd-Claim: leaf-1.t7"), None);
    }
}
