//! Broadcast accounting: every tip message a leaf receives is pulled, skipped idempotent or
//! skipped coalesced — exactly one of the three.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_plus_skipped_equals_received() {
    let h = common::herd().await;
    let writer = h.leaf("leaf-w", "slot-w").await;
    let readers = [
        h.leaf("leaf-r1", "slot-r1").await,
        h.leaf("leaf-r2", "slot-r2").await,
    ];
    for i in 0..15 {
        common::task(&writer, &format!("t{i}"), &format!("{i}"))
            .await
            .unwrap();
    }
    let tip = h.hub.tip().unwrap();
    for leaf in readers.iter().chain([&writer]) {
        common::eventually("every broadcast handled", || {
            let s = leaf.stats();
            s.tips_received == 15
                && s.pulled + s.skipped_idempotent + s.skipped_coalesced == 15
                && !leaf.pulling()
        })
        .await;
        assert_eq!(
            leaf.remote_tip().as_deref(),
            Some(tip.as_str()),
            "{} ends on the trunk tip",
            leaf.id()
        );
        let s = leaf.stats();
        assert_eq!(s.pulled, leaf.ledger().count_events("pulled").unwrap());
        assert_eq!(
            s.skipped_idempotent,
            leaf.ledger().count_events("skipped_idempotent").unwrap()
        );
    }
    // The writer already holds each tip it pushed: all of its own broadcasts are idempotent.
    assert_eq!(writer.stats().skipped_idempotent, 15);
    assert!(readers.iter().all(|r| r.stats().pulled >= 1));
}
