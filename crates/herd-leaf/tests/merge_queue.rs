//! Leaves against a merge-queue hub: a commit built on a stale tip lands without a fork and
//! the leaf records both oids (pushed and landed); an overlapping one is a fork that, rebased,
//! is a real conflict.

mod common;

use herd_bus::TaskState;
use herd_hub::{HubConfig, HubMode};
use herd_leaf::LeafError;

async fn queue_herd() -> common::Herd {
    common::herd_with(HubConfig {
        mode: HubMode::Queue,
        ..Default::default()
    })
    .await
}

async fn deaf(h: &common::Herd, id: &str, slot: &str) -> herd_leaf::Leaf {
    herd_leaf::Leaf::open(herd_leaf::LeafConfig {
        subscribe: false,
        sync: herd_leaf::SyncPolicy::OnDemand,
        hub_mode: HubMode::Queue,
        ..h.config(id, slot)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_commit_lands_replayed_and_the_leaf_records_both_oids() {
    let h = queue_herd().await;
    let a = deaf(&h, "leaf-a", "slot-a").await;
    let b = deaf(&h, "leaf-b", "slot-b").await;
    let first = common::task(&a, "one", "a\n").await.unwrap();
    // b still holds the seed: its commit is built on a stale tip.
    let second = common::task(&b, "two", "b\n").await.unwrap();
    assert_eq!(second.fork_retries, 0, "no fork: the hub replayed it");
    assert_ne!(second.oid, second.pushed);
    assert_eq!(first.oid, first.pushed, "a fast-forward lands as pushed");
    let trunk: Vec<String> = common::trunk(&h.hub)
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(trunk, vec![first.oid.clone(), second.oid.clone()]);
    let id = b.ledger().tasks().unwrap().remove(0);
    assert_eq!(id.state, TaskState::Closed);
    assert_eq!(id.commit.as_deref(), Some(second.oid.as_str()));
    assert_eq!(id.pushed.as_deref(), Some(second.pushed.as_str()));
    let (record, _) = h.bus.task(&id.id).await.unwrap().unwrap();
    assert_eq!(record.commit.as_deref(), Some(second.oid.as_str()));
    assert_eq!(b.stats().fork_retries, 0);
    assert_eq!(h.hub.stats().commits_replayed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_commit_is_a_fork_then_a_conflict() {
    let h = queue_herd().await;
    let a = deaf(&h, "leaf-a", "slot-s").await;
    let b = deaf(&h, "leaf-b", "slot-s").await;
    common::task(&a, "shared", "written by a\n").await.unwrap();
    let path = "slot-s/shared.txt".to_string();
    let id = b.open_task("shared", vec![path.clone()]).await.unwrap();
    let claim = b.claim(&id).await.unwrap();
    let err = b
        .commit(&claim, vec![(path, b"written by b\n".to_vec())])
        .await
        .unwrap_err();
    assert!(matches!(err, LeafError::Conflict { .. }), "{err:?}");
    assert_eq!(b.stats().fork_retries, 1, "the overlap was refused once");
    assert_eq!(h.hub.stats().rejected_by_reason.get("overlap"), Some(&1));
    assert_eq!(h.hub.trunk_len(), 2);
}
