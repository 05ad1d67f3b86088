//! Two leaves in disjoint slots, 20 tasks each, concurrently: 40 commits on a linear trunk and
//! every task closed in both ledgers and in herd-tasks.

mod common;

use herd_bus::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leaves_twenty_tasks_each() {
    let h = common::herd().await;
    let a = h.leaf("leaf-a", "slot-a").await;
    let b = h.leaf("leaf-b", "slot-b").await;
    let (oa, ob) = tokio::join!(run(&a), run(&b));
    let trunk: Vec<String> = common::trunk(&h.hub)
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(trunk.len(), 40);
    for oid in oa.iter().chain(&ob) {
        assert!(trunk.contains(oid), "commit {oid} not on trunk");
    }
    for leaf in [&a, &b] {
        let tasks = leaf.ledger().tasks().unwrap();
        assert_eq!(tasks.len(), 20);
        for t in tasks {
            assert_eq!(t.state, TaskState::Closed, "{} in ledger", t.id);
            let (record, _) = h.bus.task(&t.id).await.unwrap().unwrap();
            assert_eq!(record.state, TaskState::Closed, "{} in herd-tasks", t.id);
            assert!(
                h.bus.claim(&t.id).await.unwrap().is_none(),
                "claim of {} released",
                t.id
            );
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

async fn run(leaf: &herd_leaf::Leaf) -> Vec<String> {
    let mut oids = Vec::new();
    for i in 0..20 {
        oids.push(
            common::task(leaf, &format!("t{i}"), &format!("{} {i}\n", leaf.id()))
                .await
                .unwrap()
                .oid,
        );
    }
    oids
}
