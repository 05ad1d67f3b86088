//! A broadcast the hub never sent — a forged one with a huge `seq`, or one moving backwards —
//! neither silences a leaf nor moves its view of the trunk. (With the secured bus only the hub
//! may publish tips; these model a compromised or misbehaving publisher, on an open bus.)

mod common;

use herd_bus::TipChanged;
use herd_leaf::SyncPolicy;

fn forged(prev: &str, seq: u64, salt: u8) -> TipChanged {
    TipChanged {
        oid: format!("{salt:02x}").repeat(20),
        prev: prev.to_string(),
        seq,
        slot: Some("slot-w".into()),
        at: 0,
        pushed: None,
        pack_bytes: 0,
        pack_index: Vec::new(),
    }
}

async fn forged_tips_neither_silence_nor_move(sync: SyncPolicy) {
    let h = common::herd().await;
    let writer = h.leaf_with("leaf-w", "slot-w", sync).await;
    let reader = h.leaf_with("leaf-r", "slot-r", sync).await;
    common::task(&writer, "t0", "0").await.unwrap();
    common::handled(&reader, 1).await;
    let held = h.hub.tip().unwrap();
    assert_eq!(reader.remote_tip().as_deref(), Some(held.as_str()));

    // A forged tip far ahead: the leaf looks for it, does not find it, and is not fooled.
    h.bus
        .publish_tip(&forged(&held, 1_000_000, 0xaa), None)
        .await
        .unwrap();
    common::handled(&reader, 2).await;
    assert_eq!(reader.remote_tip().as_deref(), Some(held.as_str()));

    // The next real tip (seq 3, far below the forged one) still reaches it.
    common::task(&writer, "t1", "1").await.unwrap();
    common::handled(&reader, 3).await;
    let tip = h.hub.tip().unwrap();
    assert_eq!(
        reader.remote_tip().as_deref(),
        Some(tip.as_str()),
        "{sync:?}: silenced"
    );

    // A broadcast at an old position naming a commit not on the trunk moves backwards:
    // ignored, and counted.
    h.bus
        .publish_tip(&forged(&held, 2, 0xbb), None)
        .await
        .unwrap();
    common::handled(&reader, 4).await;
    assert_eq!(reader.remote_tip().as_deref(), Some(tip.as_str()));
    assert_eq!(reader.stats().backwards, 1, "{sync:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_leaves_are_not_fooled_by_forged_tips() {
    forged_tips_neither_silence_nor_move(SyncPolicy::Payload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_leaves_are_not_fooled_by_forged_tips() {
    forged_tips_neither_silence_nor_move(SyncPolicy::Fetch).await;
}
