//! The bus layouts a trial can ask for, on real servers: leaf-node servers that forward a
//! leaf's KV and stream traffic to the hub's JetStream while still enforcing the leaf user's
//! permissions, and a 3-node JetStream cluster holding every stream with 3 replicas.

use std::time::Duration;

use futures::StreamExt;
use herd_bus::{
    Bus, BusLayout, BusOptions, BusServer, ClaimOutcome, Role, TIP_STREAM, TipChanged, TipOut,
};

fn tip(n: u64) -> TipChanged {
    TipChanged {
        oid: format!("{n:040x}"),
        prev: format!("{:040x}", n - 1),
        seq: n,
        slot: None,
        at: 1_700_000_000_000,
        pushed: None,
        pack_bytes: 0,
        pack_index: Vec::new(),
    }
}

/// The hub publishes on its server; a leaf on a local leaf-node server claims and sees the tip.
async fn leaf_sees_hub_traffic(server: &BusServer, replicas: usize, leaf_index: usize) {
    let hub = Bus::connect_with(
        &server.url_as(Role::Hub),
        BusOptions {
            replicas,
            ..BusOptions::default()
        },
    )
    .await
    .unwrap();
    let leaf = Bus::join_domain(&server.leaf_url(leaf_index), server.leaf_domain())
        .await
        .unwrap();
    let mut tips = leaf.tips().await.unwrap();
    assert!(matches!(
        leaf.try_claim("t-1", "leaf-x", Duration::from_secs(30))
            .await
            .unwrap(),
        ClaimOutcome::Won { .. }
    ));
    // The claim the leaf wrote through its server is in the hub's bucket.
    assert!(hub.claim("t-1").await.unwrap().is_some());
    hub.publish_tips(&[TipOut {
        tip: tip(1),
        traceparent: None,
        pack: None,
    }])
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), tips.next())
        .await
        .expect("the tip crossed to the leaf")
        .unwrap()
        .unwrap();
    assert_eq!(got.tip.seq, 1);
    // The leaf user's limits hold on its local server: no stream administration.
    let denied = leaf.jetstream().delete_stream(TIP_STREAM).await;
    assert!(denied.is_err(), "a leaf deleted the tip stream");
    assert!(hub.jetstream().get_stream(TIP_STREAM).await.is_ok());
}

#[tokio::test]
async fn leafnodes_forward_a_leafs_traffic_to_the_hubs_jetstream() {
    let server = BusServer::start(BusLayout::LeafNodes { per: 2 }, 4)
        .await
        .unwrap();
    let BusServer::LeafNodes { locals, .. } = &server else {
        panic!("not a leafnodes layout: {server:?}");
    };
    assert_eq!(locals.len(), 2);
    // Leaves 0 and 1 share the first local server; 3 is on the second; none on the hub's.
    assert_eq!(server.leaf_url(0), server.leaf_url(1));
    assert_ne!(server.leaf_url(1), server.leaf_url(3));
    assert_ne!(server.leaf_url(3), server.url_as(Role::Leaf));
    leaf_sees_hub_traffic(&server, 1, 3).await;
}

#[tokio::test]
async fn cluster3_holds_every_stream_with_three_replicas() {
    let server = BusServer::start(BusLayout::Cluster3, 4).await.unwrap();
    assert_eq!(server.replicas(), 3);
    assert_eq!(server.url_as(Role::Leaf).split(',').count(), 3);
    leaf_sees_hub_traffic(&server, 3, 0).await;
    let hub = Bus::connect_with(
        &server.url(),
        BusOptions {
            replicas: 3,
            ..BusOptions::default()
        },
    )
    .await
    .unwrap();
    for stream in [TIP_STREAM, "KV_herd-claims", "KV_herd-tasks", "HERD_TURN"] {
        let mut s = hub.jetstream().get_stream(stream).await.unwrap();
        let info = s.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3, "{stream}");
        if stream.starts_with("KV_") {
            // Follower reads could miss a write just acknowledged: reads go to the leader.
            assert!(!info.config.allow_direct, "{stream} allows direct gets");
        }
    }
    // Read-your-writes across connections: a task created through one server is found at once
    // through another (a leaf on a different node).
    let leaf = Bus::join(&server.url_as(Role::Leaf)).await.unwrap();
    for i in 0..100 {
        let record = herd_bus::TaskRecord {
            id: format!("t-{i}"),
            title: "x".into(),
            leaf: "leaf-x".into(),
            slot: "slot-0".into(),
            paths: vec![],
            state: herd_bus::TaskState::Open,
            epoch: None,
            commit: None,
            updated: 0,
        };
        leaf.create_task(&record).await.unwrap();
        assert!(
            hub.task(&record.id).await.unwrap().is_some(),
            "{} not read back",
            record.id
        );
    }
}
