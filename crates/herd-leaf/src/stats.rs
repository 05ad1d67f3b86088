//! `LeafStats`: the leaf's own counters (each is also a ledger event).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeafStats {
    /// Tip broadcasts received.
    pub tips_received: u64,
    /// Broadcasts whose payload the leaf applied (no request to the hub).
    pub applied: u64,
    /// Broadcasts that made the leaf fetch.
    pub pulled: u64,
    /// Broadcasts skipped: the leaf already had that tip (or a newer one).
    pub skipped_idempotent: u64,
    /// Broadcasts skipped: a pull was already in flight.
    pub skipped_coalesced: u64,
    /// Of the skipped: broadcasts below a tip the leaf verified that name a commit not on its
    /// trunk (moving backwards: replayed, stale or forged) — ignored.
    pub backwards: u64,
    /// Broadcasts noted for a later on-demand fetch.
    pub deferred: u64,
    /// Fetches before a commit (on-demand sync) or after a fork whose tip never arrived.
    pub commit_fetches: u64,
    /// Extra fetches after an in-flight pull, for tips that were coalesced into it.
    pub catch_up_pulls: u64,
    /// Fetches that failed.
    pub pull_failures: u64,
    /// Rebase-and-retry rounds after rejected pushes.
    pub fork_retries: u64,
    /// Forks that could not be rebased.
    pub fork_unrecoverable: u64,
    /// Content conflicts found rebasing onto a newer tip (each is then redone or fails).
    pub conflicts: u64,
    /// Of the conflicts: tasks redone on the newer tip (within the conflict budget).
    pub conflict_redos: u64,
    /// Pushes the hub refused on policy (the task failed at once).
    pub policy_refusals: u64,
    /// Race-mode pushes whose outcome was unknown (reply lost, connection cut) and that the
    /// leaf settled by reading the trunk: landed, or pushed again.
    pub unknown_settled: u64,
    /// Turns asked for after lost races (race mode with turns).
    pub turns_requested: u64,
    /// Claims won.
    pub claims_won: u64,
    /// Claims lost.
    pub claims_lost: u64,
    /// Commits the hub accepted.
    pub commits: u64,
    /// Times the leaf found its ledger damaged on opening and rebuilt it from the bus.
    #[serde(default)]
    pub ledger_rebuilds: u64,
}

impl LeafStats {
    /// Adds `other`'s counts (a leaf's runs before a restart, a standby's).
    pub fn absorb(&mut self, other: &LeafStats) {
        let LeafStats {
            tips_received,
            applied,
            pulled,
            skipped_idempotent,
            skipped_coalesced,
            backwards,
            deferred,
            commit_fetches,
            catch_up_pulls,
            pull_failures,
            fork_retries,
            fork_unrecoverable,
            conflicts,
            conflict_redos,
            policy_refusals,
            unknown_settled,
            turns_requested,
            claims_won,
            claims_lost,
            commits,
            ledger_rebuilds,
        } = other;
        self.tips_received += tips_received;
        self.applied += applied;
        self.pulled += pulled;
        self.skipped_idempotent += skipped_idempotent;
        self.skipped_coalesced += skipped_coalesced;
        self.backwards += backwards;
        self.deferred += deferred;
        self.commit_fetches += commit_fetches;
        self.catch_up_pulls += catch_up_pulls;
        self.pull_failures += pull_failures;
        self.fork_retries += fork_retries;
        self.fork_unrecoverable += fork_unrecoverable;
        self.conflicts += conflicts;
        self.conflict_redos += conflict_redos;
        self.policy_refusals += policy_refusals;
        self.unknown_settled += unknown_settled;
        self.turns_requested += turns_requested;
        self.claims_won += claims_won;
        self.claims_lost += claims_lost;
        self.commits += commits;
        self.ledger_rebuilds += ledger_rebuilds;
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub tips_received: AtomicU64,
    pub applied: AtomicU64,
    pub pulled: AtomicU64,
    pub skipped_idempotent: AtomicU64,
    pub skipped_coalesced: AtomicU64,
    pub backwards: AtomicU64,
    pub deferred: AtomicU64,
    pub commit_fetches: AtomicU64,
    pub catch_up_pulls: AtomicU64,
    pub pull_failures: AtomicU64,
    pub fork_retries: AtomicU64,
    pub fork_unrecoverable: AtomicU64,
    pub conflicts: AtomicU64,
    pub conflict_redos: AtomicU64,
    pub policy_refusals: AtomicU64,
    pub unknown_settled: AtomicU64,
    pub turns_requested: AtomicU64,
    pub claims_won: AtomicU64,
    pub claims_lost: AtomicU64,
    pub commits: AtomicU64,
    pub ledger_rebuilds: AtomicU64,
}

pub(crate) fn add(x: &AtomicU64, n: u64) {
    x.fetch_add(n, Ordering::AcqRel);
}

impl Counters {
    pub fn snapshot(&self) -> LeafStats {
        let g = |x: &AtomicU64| x.load(Ordering::Acquire);
        LeafStats {
            tips_received: g(&self.tips_received),
            applied: g(&self.applied),
            pulled: g(&self.pulled),
            skipped_idempotent: g(&self.skipped_idempotent),
            skipped_coalesced: g(&self.skipped_coalesced),
            backwards: g(&self.backwards),
            deferred: g(&self.deferred),
            commit_fetches: g(&self.commit_fetches),
            catch_up_pulls: g(&self.catch_up_pulls),
            pull_failures: g(&self.pull_failures),
            fork_retries: g(&self.fork_retries),
            fork_unrecoverable: g(&self.fork_unrecoverable),
            conflicts: g(&self.conflicts),
            conflict_redos: g(&self.conflict_redos),
            policy_refusals: g(&self.policy_refusals),
            unknown_settled: g(&self.unknown_settled),
            turns_requested: g(&self.turns_requested),
            claims_won: g(&self.claims_won),
            claims_lost: g(&self.claims_lost),
            commits: g(&self.commits),
            ledger_rebuilds: g(&self.ledger_rebuilds),
        }
    }
}
