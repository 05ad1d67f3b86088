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

/// F7: a leaf stops right after the hub accepted its push, before recording anything, and is
/// opened again on its directory; it resumes the claim from its ledger and commits. Returns
/// the resumed commit's result and the trunk.
async fn halted_after_accept(
    replay_guard: bool,
) -> (
    Result<herd_leaf::CommitOutcome, herd_leaf::LeafError>,
    String,
    Vec<herd_check::trunk::TrunkCommit>,
) {
    let h = common::herd().await;
    let config = || herd_leaf::LeafConfig {
        replay_guard,
        ..h.config("leaf-a", "slot-a")
    };
    let accepted = {
        let leaf = herd_leaf::Leaf::open(config()).await.unwrap();
        let id = leaf
            .open_task("halted", vec!["slot-a/x.txt".into()])
            .await
            .unwrap();
        let claim = leaf.claim(&id).await.unwrap();
        leaf.halt_after_next_push();
        let err = leaf
            .commit(&claim, vec![("slot-a/x.txt".into(), b"first\n".to_vec())])
            .await
            .unwrap_err();
        let herd_leaf::LeafError::Halted { oid, .. } = err else {
            panic!("expected Halted, got {err:?}");
        };
        leaf.shutdown().await;
        oid
    };
    let leaf = herd_leaf::Leaf::open(config()).await.unwrap();
    let claim = leaf
        .resumable()
        .unwrap()
        .into_iter()
        .next()
        .expect("resumable");
    // The work done again after the restart (an agent would not write the same bytes).
    let out = leaf
        .commit(&claim, vec![("slot-a/x.txt".into(), b"again\n".to_vec())])
        .await;
    if out.is_ok() {
        leaf.close(claim).await.unwrap();
    }
    let repo = git2::Repository::open_bare(h.hub.dir()).unwrap();
    (out, accepted, herd_check::trunk::read(&repo).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_halted_after_the_hub_accepted_finds_its_commit_and_lands_the_task_once() {
    let (out, accepted, trunk) = halted_after_accept(true).await;
    let out = out.unwrap();
    assert_eq!(
        out.oid, accepted,
        "the accepted commit is recorded, not pushed again"
    );
    assert_eq!(trunk.len(), 2, "seed and one commit");
    let v = herd_check::invariants::commits::commits_accounted(&[], &trunk, 1);
    assert!(v.iter().all(|v| v.invariant != "I4b"), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_without_the_replay_guard_the_task_lands_twice_and_i4b_names_it() {
    let (out, accepted, trunk) = halted_after_accept(false).await;
    assert_ne!(out.unwrap().oid, accepted, "pushed a second time");
    assert_eq!(trunk.len(), 3);
    let v = herd_check::invariants::commits::commits_accounted(&[], &trunk, 1);
    assert!(
        v.iter()
            .any(|v| v.invariant == "I4b" && v.message.contains("appears in 2 trunk commits")),
        "{v:?}"
    );
}
