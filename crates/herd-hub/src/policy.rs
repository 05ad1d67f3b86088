//! The trunk policy: ordered rules over one ref update, first refusal wins. Both hub modes
//! share them; only how an accepted update is integrated differs ([`crate::mode`]).
//!
//! 1. the ref is the trunk (`refs/heads/main`; the merge queue also takes `refs/for/main`) and
//!    the update is not a delete;
//! 2. race mode: the pusher's old tip is the trunk tip (checked before the pack is indexed, so
//!    a push that cannot win costs no pack);
//! 3. the pushed commit is in the store (pack or repository);
//! 4. its history reaches the trunk through commits with exactly one parent (at most
//!    [`MAX_CHAIN`] of them) — in race mode the trunk commit reached must be the tip;
//! 5. every tree a pushed commit adds passes [`crate::tree_rules`] (regular files and
//!    directories only, no `.git`/`..`-like names, git's order);
//! 6. with a slot, every pushed commit changes only paths under `<slot>/` — so the net change
//!    from the base to the pushed tip is inside the slot too.

use git2::{ObjectType, Oid, Repository};

use crate::mode::HubMode;
use crate::receive_pack::Command;
use crate::refusal::Refusal;
use crate::repo::MAIN;
use crate::{tree_diff, tree_rules};

/// The ref a merge-queue push names (Gerrit/AGit style): an unadvertised ref, so a client
/// pushes a commit built on an older tip without forcing.
pub const QUEUE_REF: &str = "refs/for/main";

/// Most pushed commits one update may carry above the trunk.
pub const MAX_CHAIN: usize = 64;

/// An update that passed the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The ref named.
    pub refname: String,
    /// The pusher's idea of the tip (zero for `refs/for/main`).
    pub old: Oid,
    /// The pushed commit.
    pub new: Oid,
    /// The trunk commit the pushed commits build on.
    pub base: Oid,
    /// The pushed commits above `base`, oldest first (`new` last).
    pub chain: Vec<Oid>,
}

/// Rules 1–2: what can be decided from the command alone.
pub fn check_command(cmd: &Command, mode: HubMode, tip: Oid) -> Result<(), Refusal> {
    let accepted = match mode {
        HubMode::Race => MAIN,
        HubMode::Queue => "refs/heads/main or refs/for/main",
    };
    let trunk_ref = cmd.refname == MAIN || (mode == HubMode::Queue && cmd.refname == QUEUE_REF);
    if !trunk_ref {
        return Err(Refusal::NotTrunk {
            refname: cmd.refname.clone(),
            accepted,
        });
    }
    if cmd.new.is_zero() {
        return Err(Refusal::Delete);
    }
    if mode == HubMode::Race && cmd.old != tip {
        return Err(Refusal::Stale { tip });
    }
    Ok(())
}

/// Rules 3–5, reading objects through `view` (the repository with the push staged in it);
/// `on_trunk` answers whether a commit is on the trunk.
pub fn check_update(
    view: &Repository,
    cmd: &Command,
    mode: HubMode,
    on_trunk: &dyn Fn(Oid) -> bool,
    slot: Option<&str>,
) -> Result<Update, Refusal> {
    let is_commit = |oid: Oid| {
        view.odb()
            .and_then(|o| o.read_header(oid))
            .is_ok_and(|(_, k)| k == ObjectType::Commit)
    };
    if !is_commit(cmd.new) {
        return Err(Refusal::MissingObjects { oid: cmd.new });
    }
    let mut chain = Vec::new();
    let mut at = cmd.new;
    let base = loop {
        if on_trunk(at) {
            break at;
        }
        if chain.len() >= MAX_CHAIN {
            return Err(Refusal::NoBase { new: cmd.new });
        }
        let commit = view
            .find_commit(at)
            .map_err(|_| Refusal::MissingObjects { oid: at })?;
        if commit.parent_count() != 1 {
            return Err(Refusal::NotLinear {
                oid: at,
                parents: commit.parent_count(),
            });
        }
        chain.push(at);
        at = commit
            .parent_id(0)
            .map_err(|_| Refusal::MissingObjects { oid: at })?;
        if !is_commit(at) {
            return Err(Refusal::MissingObjects { oid: at });
        }
    };
    chain.reverse();
    // Race mode: the push must build on the tip it names (whether that is still the tip is
    // the compare-and-swap's question, asked under the integration lock).
    if mode == HubMode::Race && base != cmd.old {
        return Err(Refusal::Rewrite { tip: cmd.old });
    }
    check_trees(view, base, &chain, slot)?;
    Ok(Update {
        refname: cmd.refname.clone(),
        old: cmd.old,
        new: cmd.new,
        base,
        chain,
    })
}

/// Rules 5–6: each pushed commit, against its parent, adds only well-formed trees and (with a
/// slot) changes only paths under `<slot>/`.
fn check_trees(
    view: &Repository,
    base: Oid,
    chain: &[Oid],
    slot: Option<&str>,
) -> Result<(), Refusal> {
    let prefix = slot.map(|s| format!("{}/", s.trim_end_matches('/')));
    let odb = view
        .odb()
        .map_err(|_| Refusal::MissingObjects { oid: base })?;
    let mut parent = base;
    for oid in chain {
        let trees = view
            .find_commit(parent)
            .and_then(|p| p.tree())
            .and_then(|pt| {
                view.find_commit(*oid)
                    .and_then(|c| c.tree())
                    .map(|ct| (pt, ct))
            });
        let (pt, ct) = trees.map_err(|_| Refusal::MissingObjects { oid: *oid })?;
        let mut fault = None;
        let mut visit = |path: &str, tree: &git2::Tree<'_>| {
            if tree_rules::depth(path) > tree_rules::MAX_TREE_DEPTH {
                fault = Some(Refusal::BadTree {
                    path: path.chars().take(200).collect(),
                    why: "directories nested deeper than 256 levels",
                });
                return Err(git2::Error::from_str("tree refused"));
            }
            let raw = odb.read(tree.id())?;
            tree_rules::check(raw.data()).map_err(|f| {
                let at = if path.is_empty() {
                    f.name.clone()
                } else {
                    format!("{path}/{}", f.name)
                };
                fault = Some(Refusal::BadTree {
                    path: at,
                    why: f.why,
                });
                git2::Error::from_str("tree refused")
            })
        };
        let diff = tree_diff::diff_visiting(view, Some(&pt), Some(&ct), &mut visit);
        if let Some(refusal) = fault {
            return Err(refusal);
        }
        let diff = diff.map_err(|_| Refusal::MissingObjects { oid: *oid })?;
        // Every file a commit adds or changes must be a blob that is there: an entry naming a
        // missing object, or a tree or commit under a file mode, would break every later
        // clone and fetch of the trunk.
        for c in &diff.changes {
            if let Some((id, _)) = c.new
                && !matches!(odb.read_header(id), Ok((_, git2::ObjectType::Blob)))
            {
                return Err(Refusal::BadTree {
                    path: c.path.clone(),
                    why: "names an object that is missing or not a file",
                });
            }
        }
        if let Some(prefix) = &prefix
            && let Some(c) = diff.changes.iter().find(|c| !c.path.starts_with(prefix))
        {
            return Err(Refusal::OutsideSlot {
                slot: slot.unwrap_or_default().to_string(),
                path: c.path.clone(),
            });
        }
        parent = *oid;
    }
    Ok(())
}
