//! F8: a holder paused past its lease while another leaf reclaims the task. The paused leaf
//! checked its epoch before the pause, so only the hub's fencing stands between its stale
//! push and the trunk: with fencing the push is refused and the task lands once, under the
//! live claim; with fencing switched off (the mutation) the stale push lands after the newer
//! claim's commit, and the checker's I8 names it.

mod common;

use std::time::Duration;

use herd_hub::{HubConfig, HubMode};
use herd_leaf::{Leaf, LeafConfig, LeafError};

/// Runs the scenario on a merge-queue hub (which replays a stale but disjoint push, so the
/// paused leaf's push is judged by fencing alone); returns the paused push's result and the
/// trunk.
async fn paused_holder(
    fence: bool,
) -> (
    Result<herd_leaf::CommitOutcome, LeafError>,
    Vec<herd_check::trunk::TrunkCommit>,
) {
    let h = common::herd_with(HubConfig {
        mode: HubMode::Queue,
        fence_claims: fence,
        ..Default::default()
    })
    .await;
    let leaf = |id: &str| {
        Leaf::open(LeafConfig {
            claim_ttl: Duration::from_secs(1),
            hub_mode: HubMode::Queue,
            ..h.config(id, "slot-s")
        })
    };
    let (a, b) = (leaf("leaf-a").await.unwrap(), leaf("leaf-b").await.unwrap());
    let id = a
        .open_task("paused", vec!["slot-s/a.txt".into()])
        .await
        .unwrap();
    let stale = a.claim(&id).await.unwrap();
    a.pause_next_push(Duration::from_millis(3500));
    let paused = tokio::spawn(async move {
        let out = a
            .commit(&stale, vec![("slot-s/a.txt".into(), b"stale\n".to_vec())])
            .await;
        (a, out)
    });
    // The lease lapses during the pause; b takes the task over and lands it.
    let mut taken = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(c) = b.claim(&id).await {
            taken = Some(c);
            break;
        }
    }
    let live = taken.expect("the paused holder's claim lapses");
    b.commit(&live, vec![("slot-s/b.txt".into(), b"live\n".to_vec())])
        .await
        .unwrap();
    b.close(live).await.unwrap();
    let (_a, out) = paused.await.unwrap();
    let repo = git2::Repository::open_bare(h.hub.dir()).unwrap();
    (out, herd_check::trunk::read(&repo).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_refuses_a_paused_holders_stale_push() {
    let (out, trunk) = paused_holder(true).await;
    assert!(matches!(out, Err(LeafError::Refused { .. })), "{out:?}");
    assert_eq!(trunk.len(), 2, "seed and the live claim's commit only");
    assert!(herd_check::invariants::fencing::epochs_move_forward(&trunk, 1).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_without_fencing_the_stale_push_lands_and_i8_names_it() {
    let (out, trunk) = paused_holder(false).await;
    // The queue replays it onto the trunk; only the task record, fenced by epoch on the bus,
    // refuses the stale holder.
    assert!(
        matches!(out, Err(LeafError::Unrecorded { .. })),
        "landed but not recorded: {out:?}"
    );
    assert_eq!(trunk.len(), 3);
    let v = herd_check::invariants::fencing::epochs_move_forward(&trunk, 1);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].invariant, "I8");
    assert!(
        v[0].message.contains("a stale claim was accepted"),
        "{}",
        v[0].message
    );
}
