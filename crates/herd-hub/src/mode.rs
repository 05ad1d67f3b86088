//! How the hub integrates an accepted update into the trunk — one type chosen at construction.
//!
//! - [`HubMode::Race`] (default): compare-and-swap of the tip ([`crate::race`]). A push built
//!   on an older tip is a *fork*: refused before its pack is indexed; the leaf rebases and
//!   retries.
//! - [`HubMode::Queue`]: a merge queue ([`crate::queue`]). A push built on an older tip lands
//!   when none of the paths it changes changed on the trunk since its base: the hub replays the
//!   same tree change onto the current tip (author, message and trailers kept; committer = the
//!   hub). Pushes waiting together land in one ref update (group commit), one broadcast per
//!   landed commit, in trunk order. A real overlap is refused as a fork.

use git2::Oid;

/// Which integration the hub runs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum HubMode {
    /// Compare-and-swap of the tip; stale pushes are forks.
    #[default]
    Race,
    /// Merge queue: disjoint stale pushes are rebased by the hub and landed in groups.
    Queue,
}

impl HubMode {
    /// `race` or `queue`.
    pub fn as_str(self) -> &'static str {
        match self {
            HubMode::Race => "race",
            HubMode::Queue => "queue",
        }
    }
}

impl std::str::FromStr for HubMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "race" => Ok(HubMode::Race),
            "queue" => Ok(HubMode::Queue),
            _ => Err(format!("{s:?}: expected race or queue")),
        }
    }
}

/// One commit a push put on the trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Landed {
    /// The commit the client pushed.
    pub pushed: Oid,
    /// The commit on the trunk: `pushed` itself, or its replay onto a newer tip.
    pub landed: Oid,
    /// The trunk tip before it.
    pub prev: Oid,
    /// Its position on the trunk (the seed is 1): the broadcast sequence.
    pub seq: u64,
}

/// Response header naming the commit a push became on the trunk (the last one, for a push of
/// several commits). herd's client transport reads it; stock git shows the side-band line
/// `remote: herd: landed <pushed> as <landed>` instead.
pub const LANDED_HEADER: &str = "x-herd-landed";
