//! Tip broadcasts round-trip with their trace header; setting up the bus twice is harmless.

mod common;

use futures::StreamExt;
use herd_bus::{Bus, TipChanged};
use std::time::Duration;

fn tip(n: u64) -> TipChanged {
    TipChanged {
        oid: format!("{n:040x}"),
        prev: format!("{:040x}", n - 1),
        seq: n,
        slot: Some("slot-1".into()),
        at: 1_700_000_000_000 + n,
        pushed: None,
        pack_bytes: 0,
        pack_index: Vec::new(),
    }
}

/// A payload travels after the record, byte for byte, in a pipelined batch, in order.
#[tokio::test]
async fn payloads_round_trip_in_publish_order() {
    let (_server, bus) = common::bus().await;
    let mut tips = bus.tips().await.unwrap();
    let outs: Vec<herd_bus::TipOut> = (1..=5)
        .map(|n| herd_bus::TipOut {
            tip: tip(n),
            traceparent: None,
            // Bytes including newlines: only the first newline ends the record.
            pack: (n % 2 == 1).then(|| bytes::Bytes::from(vec![b'\n'; n as usize * 1000])),
        })
        .collect();
    bus.publish_tips(&outs).await.unwrap();
    for n in 1..=5u64 {
        let ev = tokio::time::timeout(Duration::from_secs(5), tips.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.tip.seq, n);
        match ev.pack {
            Some(pack) => {
                assert_eq!(n % 2, 1);
                assert_eq!(pack.len() as u64, n * 1000);
                assert_eq!(ev.tip.pack_bytes, n * 1000);
            }
            None => assert_eq!((n % 2, ev.tip.pack_bytes), (0, 0)),
        }
    }
}

#[tokio::test]
async fn tip_changed_round_trips_with_traceparent() {
    let (_server, bus) = common::bus().await;
    let mut tips = bus.tips().await.unwrap();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let seq1 = bus.publish_tip(&tip(1), Some(tp)).await.unwrap();
    let seq2 = bus.publish_tip(&tip(2), None).await.unwrap();
    assert!(seq2 > seq1);

    let first = tokio::time::timeout(Duration::from_secs(5), tips.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.tip, tip(1));
    assert_eq!(first.traceparent.as_deref(), Some(tp));
    assert_eq!(first.stream_seq, seq1);
    let second = tokio::time::timeout(Duration::from_secs(5), tips.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.tip, tip(2));
    assert_eq!(second.traceparent, None);
}

#[tokio::test]
async fn a_retried_publish_of_the_same_tip_is_not_broadcast_twice() {
    let (_server, bus) = common::bus().await;
    let mut tips = bus.tips().await.unwrap();
    bus.publish_tip(&tip(7), None).await.unwrap();
    bus.publish_tip(&tip(7), None).await.unwrap();
    bus.publish_tip(&tip(8), None).await.unwrap();
    let a = tokio::time::timeout(Duration::from_secs(5), tips.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), tips.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((a.tip.seq, b.tip.seq), (7, 8));
}

#[tokio::test]
async fn stream_and_bucket_setup_is_idempotent() {
    let (server, bus) = common::bus().await;
    bus.publish_tip(&tip(1), None).await.unwrap();
    // Connecting again re-runs the ensure step on existing stream and buckets; nothing is lost.
    let again = Bus::connect(server.url()).await.unwrap();
    let third = Bus::connect(server.url()).await.unwrap();
    let mut replay = again.tips_after(0).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), replay.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.tip, tip(1));
    assert!(matches!(
        third
            .try_claim("x", "leaf", Duration::from_secs(5))
            .await
            .unwrap(),
        herd_bus::ClaimOutcome::Won { .. }
    ));
}

#[tokio::test]
async fn concurrent_first_connects_all_succeed() {
    let server = herd_bus::NatsServer::start().unwrap();
    let url = server.url().to_string();
    let joins: Vec<_> = (0..6)
        .map(|_| {
            let u = url.clone();
            tokio::spawn(async move { Bus::connect(&u).await })
        })
        .collect();
    for j in joins {
        j.await
            .unwrap()
            .expect("each racing connect binds the stream and buckets");
    }
}
