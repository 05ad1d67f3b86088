//! A leaf dropped after claiming (before committing) resumes from its ledger and closes.

mod common;

use herd_bus::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_reopened_on_its_dir_resumes_its_claim_and_closes() {
    let h = common::herd().await;
    let id = {
        let leaf = h.leaf("leaf-a", "slot-a").await;
        common::task(&leaf, "before", "x").await.unwrap();
        let id = leaf
            .open_task("interrupted", vec!["slot-a/late.txt".into()])
            .await
            .unwrap();
        leaf.claim(&id).await.unwrap();
        leaf.shutdown().await;
        id
    };
    let leaf = h.leaf("leaf-a", "slot-a").await;
    let claims = leaf.resumable().unwrap();
    assert_eq!(claims.len(), 1);
    let claim = claims.into_iter().next().unwrap();
    assert_eq!(claim.task(), &id);
    let outcome = leaf
        .commit(
            &claim,
            vec![("slot-a/late.txt".into(), b"resumed\n".to_vec())],
        )
        .await
        .unwrap();
    leaf.close(claim).await.unwrap();
    assert!(h.hub.trunk_contains(&outcome.oid));
    assert_eq!(
        leaf.ledger().task(&id.0).unwrap().unwrap().state,
        TaskState::Closed
    );
    assert_eq!(
        h.bus.task(&id.0).await.unwrap().unwrap().0.state,
        TaskState::Closed
    );
    // Task numbering continues after the restart: the next id is new.
    let next = leaf
        .open_task("after", vec!["slot-a/after.txt".into()])
        .await
        .unwrap();
    assert_eq!(next.0, "leaf-a.t0002");
}
