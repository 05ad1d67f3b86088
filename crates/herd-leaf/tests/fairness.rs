//! Race mode cannot starve a leaf: a leaf that lost K races asks for a turn, and while turns
//! are queued only the head pushes. Eight leaves in a tight loop against one hub, with a small
//! retry budget: every commit lands, forks happened, turns were taken and given back.

mod common;

use herd_leaf::{Fairness, Leaf, LeafConfig, RetryPolicy, SyncPolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_that_keep_losing_take_turns_and_land() {
    let h = common::herd().await;
    let mut leaves = Vec::new();
    for i in 0..8 {
        let id = format!("leaf-{i}");
        let leaf = Leaf::open(LeafConfig {
            sync: SyncPolicy::Payload,
            fairness: Fairness::Turn,
            turn_after: 2,
            retry: RetryPolicy {
                max_attempts: 12,
                ..Default::default()
            },
            ..h.config(&id, &format!("slot-{i}"))
        })
        .await
        .unwrap();
        leaves.push(leaf);
    }
    let runs = leaves.iter().map(|leaf| async move {
        for t in 0..8 {
            common::task(leaf, &format!("t{t}"), &format!("{} {t}", leaf.id()))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", leaf.id()));
        }
    });
    futures::future::join_all(runs).await;
    assert_eq!(common::trunk(&h.hub).len(), 64, "every commit landed");
    let stats: Vec<_> = leaves.iter().map(|l| l.stats()).collect();
    assert_eq!(stats.iter().map(|s| s.fork_unrecoverable).sum::<u64>(), 0);
    assert!(
        stats.iter().map(|s| s.fork_retries).sum::<u64>() > 0,
        "eight leaves in a tight loop race for the tip"
    );
    assert!(
        stats.iter().map(|s| s.turns_requested).sum::<u64>() > 0,
        "leaves that lost twice asked for turns"
    );
    // Every turn asked for was given back: the turn stream holds a `done` for each `request`.
    let stream = h
        .bus
        .jetstream()
        .get_stream(herd_bus::TURN_STREAM)
        .await
        .unwrap();
    let last = stream.get_info().await.unwrap().state.last_sequence;
    let mut open = std::collections::HashSet::new();
    let mut requests = 0;
    for seq in 1..=last {
        let raw = stream.get_raw_message(seq).await.unwrap();
        let msg: herd_bus::TurnMsg = serde_json::from_slice(&raw.payload).unwrap();
        match msg.kind {
            herd_bus::TurnKind::Request => {
                requests += 1;
                assert!(open.insert((msg.leaf, msg.id)));
            }
            herd_bus::TurnKind::Done => {
                assert!(open.remove(&(msg.leaf, msg.id)), "a done for a request");
            }
        }
    }
    assert_eq!(
        requests,
        stats.iter().map(|s| s.turns_requested).sum::<u64>()
    );
    assert!(open.is_empty(), "turns never given back: {open:?}");
}
