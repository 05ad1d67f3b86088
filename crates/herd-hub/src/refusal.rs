//! Why the hub refused a ref update: one type, whose `Display` is the text sent to the client
//! after `ng <ref> `, and whose [`RefusalKind`] tells a pusher what to do — a *fork* (the trunk
//! moved: fetch, rebase, push again) or a *policy* refusal (the same push will never land: fail
//! the task now). [`classify`] reads a reason back on the client side, so a leaf parses the
//! text once instead of guessing from substrings all over its code.

use git2::Oid;

/// What a pusher should do about a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefusalKind {
    /// The trunk moved under the push: rebase onto the new tip and retry.
    Fork,
    /// The push breaks a rule; retrying the same change cannot help.
    Policy,
    /// The hub failed (storage): the push did not land; retrying later may work.
    Internal,
}

/// One refused update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Race mode: the push's old tip is not the trunk tip.
    Stale {
        /// The trunk tip when the push was refused.
        tip: Oid,
    },
    /// Queue mode: a path the push changes also changed on the trunk since the push's base.
    Overlap {
        /// The first overlapping path.
        path: String,
        /// The trunk tip the push was checked against.
        tip: Oid,
    },
    /// A ref other than the trunk.
    NotTrunk {
        /// The ref named.
        refname: String,
        /// What this hub accepts.
        accepted: &'static str,
    },
    /// Deleting the trunk.
    Delete,
    /// A second ref update in one push.
    OneUpdate,
    /// The pushed commit does not descend from the trunk tip it names (a forced push).
    Rewrite {
        /// The trunk tip.
        tip: Oid,
    },
    /// The pushed commit's history does not reach the trunk within the limit.
    NoBase {
        /// The pushed commit.
        new: Oid,
    },
    /// A pushed commit is not a commit with exactly one parent.
    NotLinear {
        /// The commit.
        oid: Oid,
        /// Its parent count.
        parents: usize,
    },
    /// The pack lacks an object the update needs.
    MissingObjects {
        /// The missing object.
        oid: Oid,
    },
    /// A pushed commit changes a path outside the pusher's slot.
    OutsideSlot {
        /// The slot.
        slot: String,
        /// The path.
        path: String,
    },
    /// A pushed tree breaks the tree rules ([`crate::tree_rules`]).
    BadTree {
        /// The entry's path.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Fencing: a pushed commit without a `Herd-Claim` trailer.
    NoClaim {
        /// The commit.
        oid: Oid,
    },
    /// Fencing: the trailer's claim is not the task's live claim (it lapsed or moved on).
    StaleClaim {
        /// The task.
        task: String,
        /// The epoch the commit carries.
        epoch: u64,
        /// The live claim's epoch, if any.
        live: Option<u64>,
    },
    /// The push is over a size or count limit ([`crate::pack::Limits`]).
    TooLarge(String),
    /// Storing the pack or moving the ref failed on the hub.
    Storage(String),
}

/// The leading words of each fork refusal's text; [`classify`] matches on them.
const STALE: &str = "non-fast-forward: the trunk moved to";
const OVERLAP: &str = "fetch first:";
const STORAGE: &str = "hub storage failed:";

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Stale { tip } => write!(f, "{STALE} {tip}; fetch, rebase and push again"),
            Refusal::Overlap { path, tip } => write!(
                f,
                "{OVERLAP} {path} also changed on the trunk (now at {tip}); rebase and push again"
            ),
            Refusal::NotTrunk { refname, accepted } => {
                write!(f, "ref {refname} refused: this hub accepts {accepted}")
            }
            Refusal::Delete => f.write_str("deleting the trunk is refused"),
            Refusal::OneUpdate => f.write_str("one trunk update per push"),
            Refusal::Rewrite { tip } => write!(
                f,
                "rewrite refused: the pushed commit does not descend from the trunk tip {tip}"
            ),
            Refusal::NoBase { new } => write!(
                f,
                "{new} does not build on the trunk (no trunk commit among its first 64 ancestors)"
            ),
            Refusal::NotLinear { oid, parents } => write!(
                f,
                "commit {oid} has {parents} parents: the trunk is linear, push one-parent commits"
            ),
            Refusal::MissingObjects { oid } => write!(f, "missing necessary objects: {oid}"),
            Refusal::OutsideSlot { slot, path } => write!(f, "outside slot {slot}: {path}"),
            Refusal::BadTree { path, why } => write!(f, "bad tree entry {path}: {why}"),
            Refusal::NoClaim { oid } => write!(
                f,
                "commit {oid} carries no Herd-Claim: <task>@<epoch> trailer (this hub fences on claims)"
            ),
            Refusal::StaleClaim { task, epoch, live } => match live {
                Some(live) => write!(
                    f,
                    "stale claim: task {task} epoch {epoch}, the live claim is epoch {live}"
                ),
                None => write!(
                    f,
                    "stale claim: task {task} epoch {epoch}, the task is not claimed now"
                ),
            },
            Refusal::TooLarge(what) => write!(f, "push too large: {what}"),
            Refusal::Storage(reason) => write!(f, "{STORAGE} {reason}"),
        }
    }
}

impl Refusal {
    /// Fork, policy or internal.
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::Stale { .. } | Refusal::Overlap { .. } => RefusalKind::Fork,
            Refusal::Storage(_) => RefusalKind::Internal,
            _ => RefusalKind::Policy,
        }
    }

    /// A short stable name, for counters (`stale`, `overlap`, `outside-slot`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::Stale { .. } => "stale",
            Refusal::Overlap { .. } => "overlap",
            Refusal::NotTrunk { .. } => "not-trunk",
            Refusal::Delete => "delete",
            Refusal::OneUpdate => "one-update",
            Refusal::Rewrite { .. } => "rewrite",
            Refusal::NoBase { .. } => "no-base",
            Refusal::NotLinear { .. } => "not-linear",
            Refusal::MissingObjects { .. } => "missing-objects",
            Refusal::OutsideSlot { .. } => "outside-slot",
            Refusal::BadTree { .. } => "bad-tree",
            Refusal::NoClaim { .. } => "no-claim",
            Refusal::StaleClaim { .. } => "stale-claim",
            Refusal::TooLarge(_) => "too-large",
            Refusal::Storage(_) => "storage",
        }
    }

    /// The trunk tip a fork refusal names (what a rebase must reach).
    pub fn tip(&self) -> Option<Oid> {
        match self {
            Refusal::Stale { tip } | Refusal::Overlap { tip, .. } => Some(*tip),
            _ => None,
        }
    }
}

/// A refusal text as a client received it, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// What to do about it.
    pub kind: RefusalKind,
    /// The trunk tip it names, if it names one.
    pub tip: Option<Oid>,
}

/// Reads an `ng` reason. Texts this hub did not write (another server, libgit2's own local
/// refusals) are forks when they say the push was not a fast-forward, else policy.
pub fn classify(reason: &str) -> Refused {
    let tip = reason
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 40)
        .and_then(|w| Oid::from_str(w).ok());
    let kind = if reason.starts_with(STALE) || reason.starts_with(OVERLAP) {
        RefusalKind::Fork
    } else if reason.starts_with(STORAGE) {
        RefusalKind::Internal
    } else if reason.contains("non-fast-forward")
        || reason.contains("fetch first")
        || reason.contains("not present locally")
        || reason.contains("non-fastforwardable")
    {
        RefusalKind::Fork
    } else {
        RefusalKind::Policy
    };
    Refused {
        kind,
        tip: if kind == RefusalKind::Fork { tip } else { None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_reads_back_as_its_kind_and_tip() {
        let tip = Oid::from_str(&"ab".repeat(20)).unwrap();
        let all = [
            Refusal::Stale { tip },
            Refusal::Overlap {
                path: "slot-1/a".into(),
                tip,
            },
            Refusal::NotTrunk {
                refname: "refs/heads/x".into(),
                accepted: "refs/heads/main",
            },
            Refusal::Delete,
            Refusal::OneUpdate,
            Refusal::Rewrite { tip },
            Refusal::NoBase { new: tip },
            Refusal::NotLinear {
                oid: tip,
                parents: 2,
            },
            Refusal::MissingObjects { oid: tip },
            Refusal::OutsideSlot {
                slot: "slot-1".into(),
                path: "slot-2/x".into(),
            },
            Refusal::BadTree {
                path: "slot-1/.git".into(),
                why: "no",
            },
            Refusal::TooLarge("objects".into()),
            Refusal::NoClaim { oid: tip },
            Refusal::StaleClaim {
                task: "t".into(),
                epoch: 3,
                live: Some(4),
            },
            Refusal::Storage("disk full".into()),
        ];
        for r in &all {
            let back = classify(&r.to_string());
            assert_eq!(back.kind, r.kind(), "{r}");
            assert_eq!(back.tip, r.tip(), "{r}");
        }
        assert_eq!(
            classify("cannot push non-fastforwardable reference").kind,
            RefusalKind::Fork
        );
    }
}
