//! Forks: a leaf committing from a stale tip is rejected, rebases and lands (no commit lost);
//! two leaves writing the same path end with exactly one Conflict.

mod common;

use herd_bus::TaskState;
use herd_leaf::LeafError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_from_a_stale_tip_is_rebased_and_lands() {
    let h = common::herd().await;
    let a = h.leaf("leaf-a", "slot-a").await;
    // b ignores broadcasts, so its base is the clone-time tip: every commit after a's is a fork.
    let b = h.deaf_leaf("leaf-b", "slot-b").await;
    let first = common::task(&a, "one", "a\n").await.unwrap();
    let second = common::task(&b, "two", "b\n").await.unwrap();
    assert_eq!(first.fork_retries, 0);
    assert!(
        second.fork_retries >= 1,
        "b's push from the stale tip must fork"
    );
    assert_eq!(b.stats().fork_retries, u64::from(second.fork_retries));
    let trunk: Vec<String> = common::trunk(&h.hub)
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(trunk, vec![first.oid, second.oid]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_from_one_tip_all_land() {
    let h = common::herd().await;
    let a = h.deaf_leaf("leaf-a", "slot-a").await;
    let b = h.deaf_leaf("leaf-b", "slot-b").await;
    let mut oids = Vec::new();
    for i in 0..5 {
        let (na, nb) = (format!("a{i}"), format!("b{i}"));
        let (x, y) = tokio::join!(common::task(&a, &na, "a"), common::task(&b, &nb, "b"));
        oids.push(x.unwrap().oid);
        oids.push(y.unwrap().oid);
    }
    assert!(a.stats().fork_retries + b.stats().fork_retries > 0);
    let trunk: Vec<String> = common::trunk(&h.hub)
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(trunk.len(), 10);
    assert!(oids.iter().all(|o| trunk.contains(o)), "no commit lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_path_written_twice_is_exactly_one_conflict() {
    let h = common::herd().await;
    let a = h.leaf("leaf-a", "slot-s").await;
    let b = h.deaf_leaf("leaf-b", "slot-s").await;
    let winner = common::task(&a, "shared", "written by a\n").await.unwrap();

    let path = "slot-s/shared.txt".to_string();
    let id = b.open_task("shared", vec![path.clone()]).await.unwrap();
    let claim = b.claim(&id).await.unwrap();
    let err = b
        .commit(&claim, vec![(path, b"written by b\n".to_vec())])
        .await
        .unwrap_err();
    match &err {
        LeafError::Conflict { task, paths } => {
            assert_eq!(task, &id.0);
            assert_eq!(paths, &vec!["slot-s/shared.txt".to_string()]);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(b.stats().fork_unrecoverable, 1);
    assert_eq!(a.stats().fork_unrecoverable, 0);
    assert_eq!(
        common::trunk(&h.hub)
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>(),
        vec![winner.oid]
    );
    assert!(
        h.bus.claim(&id.0).await.unwrap().is_none(),
        "the loser's claim is released"
    );
    assert_eq!(
        h.bus.task(&id.0).await.unwrap().unwrap().0.state,
        TaskState::Failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_exhausts_its_retries_fails_the_task_and_releases_the_claim() {
    let h = common::herd().await;
    let a = h.leaf("leaf-a", "slot-a").await;
    let retry = herd_leaf::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    };
    let b = herd_leaf::Leaf::open(herd_leaf::LeafConfig {
        subscribe: false,
        sync: herd_leaf::SyncPolicy::OnDemand,
        retry,
        ..h.config("leaf-b", "slot-b")
    })
    .await
    .unwrap();
    common::task(&a, "first", "a").await.unwrap();
    let id = b
        .open_task("starved", vec!["slot-b/s.txt".into()])
        .await
        .unwrap();
    let claim = b.claim(&id).await.unwrap();
    let err = b
        .commit(&claim, vec![("slot-b/s.txt".into(), b"b".to_vec())])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LeafError::RetriesExhausted { task, attempts: 1 } if task == &id.0),
        "{err:?}"
    );
    assert_eq!(
        b.stats().fork_unrecoverable,
        1,
        "starvation is an unrecoverable fork"
    );
    assert!(
        h.bus.claim(&id.0).await.unwrap().is_none(),
        "the claim is released for others"
    );
    assert_eq!(
        h.bus.task(&id.0).await.unwrap().unwrap().0.state,
        TaskState::Failed
    );
    assert_eq!(
        b.ledger().task(&id.0).unwrap().unwrap().state,
        TaskState::Failed
    );
    assert_eq!(h.hub.trunk_len(), 2, "nothing of b's was pushed");
}

/// A push that landed though the leaf took it for refused must not be replayed (it would put
/// the task on the trunk twice): the rebase sees the trunk already holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_already_on_the_trunk_is_not_replayed() {
    use herd_leaf::git_ops::{PushResult, PushTarget, Rebased, Repo};
    let h = common::herd().await;
    let (url, dir) = (h.hub.url(), h.dir.path().join("raw"));
    let outcome = tokio::task::spawn_blocking(move || {
        Repo::scoped(&url, &dir, |repo| {
            repo.commit_files(
                &[("slot-a/x.txt".into(), b"x".to_vec())],
                "leaf-a",
                "leaf-a: t\n",
            )
            .unwrap();
            assert!(matches!(
                repo.push(&[], PushTarget::Trunk),
                PushResult::Accepted { .. }
            ));
            let tip = repo.fetch(&[]).unwrap();
            repo.rebase_onto(tip).unwrap()
        })
        .unwrap()
    })
    .await
    .unwrap();
    assert!(matches!(outcome, Rebased::Landed), "{outcome:?}");
    assert_eq!(h.hub.trunk_len(), 2);
}
