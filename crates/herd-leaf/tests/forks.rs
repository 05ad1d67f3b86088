//! Forks: a leaf committing from a stale tip is rejected, rebases and lands (no commit lost);
//! two leaves writing the same path end with exactly one Conflict — or, with a conflict budget,
//! the loser redone on the newer tip; a blind overwrite (mutation) is caught by the checker's I12.

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
        LeafError::Conflict { task, paths, redos } => {
            assert_eq!(task, &id.0);
            assert_eq!(*redos, 0, "the default budget redoes nothing");
            assert_eq!(paths, &vec!["slot-s/shared.txt".to_string()]);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(b.stats().fork_unrecoverable, 1);
    assert_eq!((b.stats().conflicts, b.stats().conflict_redos), (1, 0));
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

/// b (deaf: its base is the clone-time tip) writes the path a already changed.
async fn b_writes_what_a_changed(
    h: &common::Herd,
    b: &herd_leaf::Leaf,
) -> Result<herd_leaf::CommitOutcome, LeafError> {
    let a = h.leaf("leaf-a", "slot-s").await;
    common::task(&a, "shared", "written by a\n").await.unwrap();
    let path = "slot-s/shared.txt".to_string();
    let id = b.open_task("shared", vec![path.clone()]).await.unwrap();
    let claim = b.claim(&id).await.unwrap();
    let out = b
        .commit(&claim, vec![(path, b"written by b\n".to_vec())])
        .await;
    if out.is_ok() {
        b.close(claim).await.unwrap();
    }
    out
}

fn deaf_with(h: &common::Herd, conflict_redos: u32, blind_rebase: bool) -> herd_leaf::LeafConfig {
    herd_leaf::LeafConfig {
        subscribe: false,
        sync: herd_leaf::SyncPolicy::OnDemand,
        conflict_redos,
        blind_rebase,
        ..h.config("leaf-b", "slot-s")
    }
}

fn trunk_commits(h: &common::Herd) -> Vec<herd_check::trunk::TrunkCommit> {
    let repo = git2::Repository::open_bare(h.hub.dir()).unwrap();
    herd_check::trunk::read(&repo).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_within_the_budget_is_redone_on_the_newer_tip_and_lands() {
    let h = common::herd().await;
    let b = herd_leaf::Leaf::open(deaf_with(&h, 1, false))
        .await
        .unwrap();
    let landed = b_writes_what_a_changed(&h, &b).await.unwrap();
    let s = b.stats();
    assert_eq!(
        (s.conflicts, s.conflict_redos, s.fork_unrecoverable),
        (1, 1, 0)
    );
    let trunk = trunk_commits(&h);
    let last = trunk.last().unwrap();
    assert_eq!(last.oid.to_string(), landed.oid);
    // Redone on a's commit: its base is the commit it overwrote, so no update was lost.
    assert_eq!(last.base, Some(trunk[trunk.len() - 2].oid));
    assert_eq!(
        herd_check::invariants::updates::no_lost_update(&trunk),
        vec![]
    );
    let repo = git2::Repository::open_bare(h.hub.dir()).unwrap();
    let blob = repo
        .find_commit(last.oid)
        .unwrap()
        .tree()
        .unwrap()
        .get_path(std::path::Path::new("slot-s/shared.txt"))
        .unwrap()
        .to_object(&repo)
        .unwrap();
    assert_eq!(blob.as_blob().unwrap().content(), b"written by b\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_a_blind_rebase_lands_a_lost_update_that_i12_names() {
    let h = common::herd().await;
    let b = herd_leaf::Leaf::open(deaf_with(&h, 0, true)).await.unwrap();
    b_writes_what_a_changed(&h, &b).await.unwrap();
    assert_eq!(
        b.stats().conflicts,
        0,
        "the mutation hides the conflict from the leaf"
    );
    let v = herd_check::invariants::updates::no_lost_update(&trunk_commits(&h));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].invariant, "I12");
    assert!(
        v[0].message.contains("slot-s/shared.txt"),
        "{}",
        v[0].message
    );
}
