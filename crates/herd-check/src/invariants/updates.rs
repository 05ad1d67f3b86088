//! I12 (no lost update): a trunk commit may not replace a path whose content changed on the
//! trunk after the tip its work was written against. Each leaf commit names that tip in a
//! `Herd-Base: <oid>` trailer (a rebase keeps it; a task redone after a conflict names the
//! newer tip it was redone on). For a commit C with base B and parent P, the paths C changes
//! must not have changed between B and P. A leaf that "resolved" a conflict by keeping its own
//! version — an overwrite of work it never read — fails here, whatever its counters say.
//!
//! Commits without the trailer (the seed, or another tool's) are not judged; a trailer naming
//! a commit that is not an earlier trunk commit is a violation.

use std::collections::HashMap;

use super::violation;
use crate::report::Violation;
use crate::trunk::TrunkCommit;

/// I12.
pub fn no_lost_update(trunk: &[TrunkCommit]) -> Vec<Violation> {
    let position: HashMap<git2::Oid, usize> =
        trunk.iter().enumerate().map(|(i, c)| (c.oid, i)).collect();
    // For every path, the trunk positions that changed it, ascending.
    let mut changed: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in trunk.iter().enumerate() {
        for p in &c.paths {
            changed.entry(p.as_str()).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (i, c) in trunk.iter().enumerate() {
        let Some(base) = c.base else { continue };
        let Some(&b) = position.get(&base).filter(|&&b| b < i) else {
            out.push(violation(
                "I12",
                format!(
                    "commit {} names base {base}, which is not an earlier trunk commit",
                    c.oid
                ),
            ));
            continue;
        };
        // Changes strictly after the base and before this commit.
        let overwritten: Vec<&str> = c
            .paths
            .iter()
            .filter(|p| {
                let at = &changed[p.as_str()];
                let first_after_base = at.partition_point(|&k| k <= b);
                at.get(first_after_base).is_some_and(|&k| k < i)
            })
            .map(String::as_str)
            .collect();
        if !overwritten.is_empty() {
            out.push(violation(
                "I12",
                format!(
                    "commit {} ({}) overwrote {} changed on the trunk after its base {base} \
                     without reading them: a lost update",
                    c.oid,
                    c.task.as_deref().unwrap_or(&c.author),
                    overwritten.join(", ")
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::Oid;

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn commit(n: u8, base: Option<u8>, paths: &[&str]) -> TrunkCommit {
        TrunkCommit {
            oid: oid(n),
            parents: 1,
            author: "leaf".into(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            task: Some(format!("t{n}")),
            epoch: Some(1),
            base: base.map(oid),
        }
    }

    #[test]
    fn disjoint_and_redone_commits_pass() {
        let trunk = [
            commit(0, None, &["seed"]),
            commit(1, Some(0), &["a"]),
            commit(2, Some(0), &["b"]), // rebased over 1: disjoint paths
            commit(3, Some(2), &["a"]), // redone on 2, after 1 changed "a"
        ];
        assert!(no_lost_update(&trunk).is_empty());
    }

    #[test]
    fn an_overwrite_of_unread_work_is_a_lost_update() {
        let trunk = [
            commit(0, None, &["seed"]),
            commit(1, Some(0), &["a"]),
            commit(2, Some(0), &["a", "b"]),
        ];
        let v = no_lost_update(&trunk);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("a lost update") && v[0].message.contains(" a"));
        assert!(!v[0].message.contains(", b"));
    }

    #[test]
    fn a_base_off_the_trunk_is_a_violation() {
        let trunk = [commit(0, None, &["seed"]), commit(1, Some(9), &["a"])];
        assert_eq!(no_lost_update(&trunk).len(), 1);
    }
}
