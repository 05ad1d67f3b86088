//! The hub's bare repository: created with `HEAD → refs/heads/main` and one seed commit, or
//! reopened as it was. Trunk queries (`len`, `contains`) read `refs/heads/main`.

use std::path::Path;

use git2::{Oid, Repository, Signature};

use crate::error::HubError;

/// The only branch.
pub const MAIN: &str = "refs/heads/main";

/// Opens the bare repository at `dir`, or creates it with a seed commit.
pub fn open_or_init(dir: &Path) -> Result<Repository, HubError> {
    let repo_err = |source| HubError::Repo {
        path: dir.to_path_buf(),
        source,
    };
    if dir.join("HEAD").is_file() {
        return Repository::open_bare(dir).map_err(repo_err);
    }
    let repo = Repository::init_bare(dir).map_err(repo_err)?;
    repo.set_head(MAIN).map_err(repo_err)?;
    seed(&repo).map_err(repo_err)?;
    Ok(repo)
}

fn seed(repo: &Repository) -> Result<Oid, git2::Error> {
    let blob =
        repo.blob(b"# herd hub\n\nThe trunk of a herd trial. Leaves write under slot-<i>/.\n")?;
    let mut tree = repo.treebuilder(None)?;
    tree.insert("README.md", blob, 0o100644)?;
    let tree = repo.find_tree(tree.write()?)?;
    let sig = Signature::new("herd-hub", "hub@herd", &git2::Time::new(0, 0))?;
    repo.commit(Some(MAIN), &sig, &sig, "seed\n", &tree, &[])
}

/// The current tip of main.
pub fn tip(repo: &Repository) -> Result<Oid, git2::Error> {
    repo.refname_to_id(MAIN)
}

/// Commits on main, seed included (main is linear, so this is the first-parent length).
pub fn trunk_len(repo: &Repository) -> Result<u64, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(tip(repo)?)?;
    walk.simplify_first_parent()?;
    Ok(walk.count() as u64)
}

/// Every commit on main, oldest first (main is linear: the first-parent chain).
pub fn trunk_commits(repo: &Repository) -> Result<Vec<Oid>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(tip(repo)?)?;
    walk.simplify_first_parent()?;
    let mut commits = walk.collect::<Result<Vec<_>, _>>()?;
    commits.reverse();
    Ok(commits)
}

/// Is `oid` on main (the tip or an ancestor of it)?
pub fn trunk_contains(repo: &Repository, oid: Oid) -> Result<bool, git2::Error> {
    let tip = tip(repo)?;
    Ok(tip == oid || repo.graph_descendant_of(tip, oid).unwrap_or(false))
}
