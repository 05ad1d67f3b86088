//! Shared set-up: a real nats-server, bus, hub, and leaves in one temp dir.
#![allow(dead_code)]

use std::time::Duration;

use herd_bus::{Bus, NatsServer};
use herd_hub::{Hub, HubConfig};
use herd_leaf::{Leaf, LeafConfig};

pub struct Herd {
    pub server: NatsServer,
    pub bus: Bus,
    pub hub: Hub,
    pub dir: tempfile::TempDir,
}

pub async fn herd() -> Herd {
    herd_with(HubConfig::default()).await
}

/// A herd whose hub has `config` (its directory and bus are filled in).
pub async fn herd_with(config: HubConfig) -> Herd {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start().unwrap();
    let bus = Bus::connect(server.url()).await.unwrap();
    let hub = Hub::start(HubConfig {
        dir: dir.path().join("hub.git"),
        bus: Some(bus.clone()),
        ..config
    })
    .await
    .unwrap();
    Herd {
        server,
        bus,
        hub,
        dir,
    }
}

impl Herd {
    pub fn config(&self, id: &str, slot: &str) -> LeafConfig {
        LeafConfig {
            bus: Some(self.bus.clone()),
            ..LeafConfig::new(id, slot, self.dir.path().join(id), &self.hub.url())
        }
    }

    pub async fn leaf(&self, id: &str, slot: &str) -> Leaf {
        Leaf::open(self.config(id, slot)).await.unwrap()
    }

    /// A leaf with the given sync policy, pushing the way this hub integrates.
    pub async fn leaf_with(&self, id: &str, slot: &str, sync: herd_leaf::SyncPolicy) -> Leaf {
        Leaf::open(LeafConfig {
            sync,
            hub_mode: self.hub.mode(),
            ..self.config(id, slot)
        })
        .await
        .unwrap()
    }

    /// A leaf that ignores broadcasts: its view of the trunk stays where it was until a push
    /// is rejected, which makes forks deterministic.
    pub async fn deaf_leaf(&self, id: &str, slot: &str) -> Leaf {
        Leaf::open(LeafConfig {
            subscribe: false,
            sync: herd_leaf::SyncPolicy::OnDemand,
            ..self.config(id, slot)
        })
        .await
        .unwrap()
    }
}

/// Runs one task to the end: open, claim, commit, close. Returns the commit.
pub async fn task(
    leaf: &Leaf,
    name: &str,
    body: &str,
) -> Result<herd_leaf::CommitOutcome, herd_leaf::LeafError> {
    let path = format!("{}/{name}.txt", leaf.slot());
    let id = leaf.open_task(name, vec![path.clone()]).await?;
    let claim = leaf.claim(&id).await?;
    let outcome = leaf
        .commit(&claim, vec![(path, body.as_bytes().to_vec())])
        .await?;
    leaf.close(claim).await?;
    Ok(outcome)
}

/// Waits (bounded) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not reached within 5 s: {what}");
}

/// Commits on main after the seed, oldest first; panics on a merge.
pub fn trunk(hub: &Hub) -> Vec<git2::Oid> {
    let repo = git2::Repository::open_bare(hub.dir()).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_ref("refs/heads/main").unwrap();
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .unwrap();
    let all: Vec<_> = walk.map(|o| o.unwrap()).collect();
    for oid in &all {
        assert!(
            repo.find_commit(*oid).unwrap().parent_count() <= 1,
            "merge on trunk: {oid}"
        );
    }
    all[1..].to_vec()
}

/// Waits until `leaf` handled `n` broadcasts (exactly one outcome each).
pub async fn handled(leaf: &Leaf, n: u64) {
    eventually("every broadcast handled", || {
        let s = leaf.stats();
        s.tips_received == n
            && s.applied + s.pulled + s.skipped_idempotent + s.skipped_coalesced + s.deferred == n
            && !leaf.pulling()
    })
    .await;
}
