//! Invalid paths are typed errors and nothing is written anywhere.

mod common;

use herd_leaf::LeafError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_are_refused_before_anything_is_recorded() {
    let h = common::herd().await;
    let leaf = h.leaf("leaf-a", "slot-a").await;
    let seventeen: Vec<String> = (0..17).map(|i| format!("slot-a/f{i}")).collect();
    for paths in [
        vec!["../x".to_string()],
        vec!["/abs".into()],
        vec!["slot-b/x".into()],
        seventeen,
    ] {
        let err = leaf.open_task("bad", paths.clone()).await.unwrap_err();
        assert!(
            matches!(err, LeafError::InvalidPath { .. }),
            "{paths:?}: {err:?}"
        );
    }
    assert!(
        leaf.ledger().tasks().unwrap().is_empty(),
        "nothing in the ledger"
    );
    assert!(
        h.bus
            .dump_bucket(herd_bus::TASKS_BUCKET)
            .await
            .unwrap()
            .is_empty(),
        "nothing in herd-tasks"
    );
    assert_eq!(h.hub.trunk_len(), 1, "nothing pushed");

    // A commit with a path outside the slot is refused too, before any write.
    let id = leaf
        .open_task("ok", vec!["slot-a/ok.txt".into()])
        .await
        .unwrap();
    let claim = leaf.claim(&id).await.unwrap();
    let err = leaf
        .commit(&claim, vec![("slot-b/evil.txt".into(), b"x".to_vec())])
        .await
        .unwrap_err();
    assert!(matches!(err, LeafError::InvalidPath { .. }), "{err:?}");
    assert_eq!(h.hub.trunk_len(), 1);
}
