//! Claim contention between leaves, lease expiry, and the epoch fence.

mod common;

use std::time::Duration;

use herd_leaf::{LeafConfig, LeafError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leaves_claim_one_task_one_wins() {
    let h = common::herd().await;
    let a = h.leaf("leaf-a", "slot-a").await;
    let b = h.leaf("leaf-b", "slot-b").await;
    let id = a
        .open_task("contested", vec!["slot-a/x.txt".into()])
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(a.claim(&id), b.claim(&id));
    let (won, lost) = match (ra, rb) {
        (Ok(c), Err(e)) | (Err(e), Ok(c)) => (c, e),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert!(
        matches!(&lost, LeafError::AlreadyClaimed { task, .. } if task == &id.0),
        "{lost:?}"
    );
    assert_eq!(a.stats().claims_won + b.stats().claims_won, 1);
    assert_eq!(a.stats().claims_lost + b.stats().claims_lost, 1);
    assert!(won.epoch() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_holders_claim_lapses_and_is_fenced_a_running_one_is_renewed() {
    let h = common::herd().await;
    let short = |id: &str, slot: &str| LeafConfig {
        claim_ttl: Duration::from_secs(1),
        ..h.config(id, slot)
    };
    let a = herd_leaf::Leaf::open(short("leaf-a", "slot-a"))
        .await
        .unwrap();
    let b = herd_leaf::Leaf::open(short("leaf-b", "slot-a"))
        .await
        .unwrap();
    let id = a
        .open_task("lapsing", vec!["slot-a/x.txt".into()])
        .await
        .unwrap();
    let old = a.claim(&id).await.unwrap();
    // A holder that keeps running renews its lease: nobody else gets the task.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        matches!(b.claim(&id).await, Err(LeafError::AlreadyClaimed { .. })),
        "a renewed lease was taken"
    );
    // A holder that stalls does not.
    a.stall_lease(&old);
    let mut reclaimed = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(c) = b.claim(&id).await {
            reclaimed = Some(c);
            break;
        }
    }
    let new = reclaimed.expect("claim not re-claimable after its TTL");
    assert!(new.epoch() > old.epoch());
    // The lapsed holder may not push: its epoch is stale.
    let err = a
        .commit(&old, vec![("slot-a/x.txt".into(), b"late".to_vec())])
        .await
        .unwrap_err();
    assert!(
        matches!(err, LeafError::EpochStale { live: Some(e), .. } if e == new.epoch()),
        "{err:?}"
    );
    assert_eq!(h.hub.trunk_len(), 1, "nothing was pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_outliving_its_lease_still_lands_and_closed_tasks_stay_closed() {
    let h = common::herd().await;
    let a = herd_leaf::Leaf::open(LeafConfig {
        claim_ttl: Duration::from_secs(1),
        ..h.config("leaf-a", "slot-a")
    })
    .await
    .unwrap();
    let b = h.leaf("leaf-b", "slot-b").await;
    let id = a
        .open_task("long", vec!["slot-a/long.txt".into()])
        .await
        .unwrap();
    let claim = a.claim(&id).await.unwrap();
    // Three leases long.
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.commit(&claim, vec![("slot-a/long.txt".into(), b"done".to_vec())])
        .await
        .expect("a renewed claim still pushes");
    a.close(claim).await.unwrap();
    assert_eq!(h.hub.trunk_len(), 2);
    // Closed is final: a late claimer cannot reopen the task.
    let err = b.claim(&id).await.unwrap_err();
    assert!(matches!(err, LeafError::Done { .. }), "{err:?}");
}
