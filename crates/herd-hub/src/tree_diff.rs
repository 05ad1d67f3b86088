//! What changed between two trees, visiting only subtrees whose ids differ: O(changed paths ×
//! depth), never O(snapshot). The hub uses it three ways — the objects a broadcast payload must
//! carry, the paths a queued push changes (and whether the trunk changed them too), and the
//! slot policy — and leaves use it to replay their own change onto a new tip.

use git2::{FileMode, ObjectType, Oid, Repository, Tree, TreeEntry};

/// One leaf-level change (a blob, symlink or gitlink added, removed or replaced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Path from the root, `/`-separated.
    pub path: String,
    /// The entry before (id, mode), if any.
    pub old: Option<(Oid, i32)>,
    /// The entry after (id, mode), if any.
    pub new: Option<(Oid, i32)>,
}

/// The result of a diff: leaf changes, and every tree id present in `new` but not in `old`
/// (the root included when it differs).
#[derive(Debug, Default)]
pub struct TreeDiff {
    /// Changed paths, in tree order.
    pub changes: Vec<Change>,
    /// New tree objects.
    pub new_trees: Vec<Oid>,
}

const TREE_MODE: i32 = 0o040000;

fn is_tree(mode: i32) -> bool {
    mode & 0o170000 == TREE_MODE
}

/// Diffs `old` → `new` (either may be absent: everything added or removed).
pub fn diff(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: Option<&Tree<'_>>,
) -> Result<TreeDiff, git2::Error> {
    diff_visiting(repo, old, new, &mut |_, _| Ok(()))
}

/// Called with each new tree's path (`""` for the root) and the tree, before the diff reads
/// its entries.
pub type Visit<'v> = dyn FnMut(&str, &Tree<'_>) -> Result<(), git2::Error> + 'v;

/// [`diff`], calling `visit` on every new tree first (the policy checks raw trees this way,
/// before anything parses their entries); an error from `visit` ends the diff.
pub fn diff_visiting(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: Option<&Tree<'_>>,
    visit: &mut Visit<'_>,
) -> Result<TreeDiff, git2::Error> {
    let mut out = TreeDiff::default();
    walk(repo, "", old, new, &mut out, visit)?;
    Ok(out)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

fn entry_name(e: &TreeEntry<'_>) -> Result<String, git2::Error> {
    e.name()
        .map(str::to_string)
        .map_err(|_| git2::Error::from_str("tree entry name is not UTF-8"))
}

type Entries = std::collections::HashMap<String, (Oid, i32)>;

fn entries(tree: Option<&Tree<'_>>) -> Result<Entries, git2::Error> {
    let Some(tree) = tree else {
        return Ok(Entries::new());
    };
    tree.iter()
        .map(|e| Ok((entry_name(&e)?, (e.id(), e.filemode()))))
        .collect()
}

fn walk(
    repo: &Repository,
    prefix: &str,
    old: Option<&Tree<'_>>,
    new: Option<&Tree<'_>>,
    out: &mut TreeDiff,
    visit: &mut Visit<'_>,
) -> Result<(), git2::Error> {
    // Policy refuses deeper trees before they land; this only keeps a walk of anything else
    // from recursing without bound.
    if crate::tree_rules::depth(prefix) > crate::tree_rules::MAX_TREE_DEPTH + 1 {
        return Err(git2::Error::from_str("tree nested too deep"));
    }
    if let (Some(o), Some(n)) = (old, new)
        && o.id() == n.id()
    {
        return Ok(());
    }
    if let Some(n) = new {
        visit(prefix, n)?;
        out.new_trees.push(n.id());
    }
    let olds = entries(old)?;
    let news = entries(new)?;
    let names: std::collections::BTreeSet<&str> =
        olds.keys().chain(news.keys()).map(String::as_str).collect();
    for name in names {
        let o = olds.get(name).copied();
        let n = news.get(name).copied();
        if o == n {
            continue;
        }
        let path = join(prefix, name);
        let o_tree = o.filter(|(_, m)| is_tree(*m));
        let n_tree = n.filter(|(_, m)| is_tree(*m));
        if o_tree.is_some() || n_tree.is_some() {
            let ot = o_tree.map(|(id, _)| repo.find_tree(id)).transpose()?;
            let nt = n_tree.map(|(id, _)| repo.find_tree(id)).transpose()?;
            walk(repo, &path, ot.as_ref(), nt.as_ref(), out, visit)?;
        }
        let o_leaf = o.filter(|(_, m)| !is_tree(*m));
        let n_leaf = n.filter(|(_, m)| !is_tree(*m));
        if o_leaf.is_some() || n_leaf.is_some() {
            out.changes.push(Change {
                path,
                old: o_leaf,
                new: n_leaf,
            });
        }
    }
    Ok(())
}

/// The entry (id, mode) at `path` in `tree`, if any.
pub fn entry_at(tree: &Tree<'_>, path: &str) -> Option<(Oid, i32)> {
    tree.get_path(std::path::Path::new(path))
        .ok()
        .map(|e| (e.id(), e.filemode()))
}

/// `git2::FileMode` for a raw mode (unknown modes are refused).
pub fn file_mode(mode: i32) -> Result<FileMode, git2::Error> {
    Ok(match mode {
        0o100644 => FileMode::Blob,
        0o100755 => FileMode::BlobExecutable,
        0o120000 => FileMode::Link,
        0o160000 => FileMode::Commit,
        0o040000 => FileMode::Tree,
        other => {
            return Err(git2::Error::from_str(&format!(
                "unsupported file mode {other:o}"
            )));
        }
    })
}

/// `baseline` with `changes` applied (their `new` side: upsert or remove), written to the
/// repository's object database; returns the new root tree id.
pub fn apply(
    repo: &Repository,
    baseline: &Tree<'_>,
    changes: &[Change],
) -> Result<Oid, git2::Error> {
    let mut update = git2::build::TreeUpdateBuilder::new();
    for c in changes {
        match c.new {
            Some((id, mode)) => {
                update.upsert(c.path.as_str(), id, file_mode(mode)?);
            }
            None => {
                update.remove(c.path.as_str());
            }
        }
    }
    update.create_updated(repo, baseline)
}

/// The kind of object `id` is, without reading it whole.
pub fn kind(repo: &Repository, id: Oid) -> Option<ObjectType> {
    repo.odb()
        .ok()
        .and_then(|o| o.read_header(id).ok())
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(repo: &Repository, files: &[(&str, &str)]) -> Oid {
        let empty = repo.treebuilder(None).unwrap().write().unwrap();
        let base = repo.find_tree(empty).unwrap();
        let changes: Vec<Change> = files
            .iter()
            .map(|(p, c)| Change {
                path: p.to_string(),
                old: None,
                new: Some((repo.blob(c.as_bytes()).unwrap(), 0o100644)),
            })
            .collect();
        apply(repo, &base, &changes).unwrap()
    }

    #[test]
    fn diff_visits_only_changed_subtrees_and_apply_replays_it() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let a = tree(&repo, &[("s1/a.txt", "a"), ("s2/b.txt", "b"), ("top", "t")]);
        let b = tree(
            &repo,
            &[("s1/a.txt", "a"), ("s2/b.txt", "B"), ("s2/n/c.txt", "c")],
        );
        let (ta, tb) = (repo.find_tree(a).unwrap(), repo.find_tree(b).unwrap());
        let d = diff(&repo, Some(&ta), Some(&tb)).unwrap();
        let paths: Vec<&str> = d.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, vec!["s2/b.txt", "s2/n/c.txt", "top"]);
        // New trees: the root, s2 and s2/n — never s1 (unchanged).
        let s1 = entry_at(&tb, "s1").unwrap().0;
        assert_eq!(d.new_trees.len(), 3);
        assert!(!d.new_trees.contains(&s1));
        // Replaying the change onto the old tree gives the new tree.
        assert_eq!(apply(&repo, &ta, &d.changes).unwrap(), b);
        assert_eq!(diff(&repo, Some(&tb), Some(&tb)).unwrap().changes, vec![]);
    }
}
