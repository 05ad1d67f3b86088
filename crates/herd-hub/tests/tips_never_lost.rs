//! Every trunk commit is broadcast, in order, even when the pusher hangs up mid-push or the hub
//! stops between moving the ref and publishing; `seq` is the trunk position, durable across
//! restarts.

mod common;

use std::time::Duration;

use futures::StreamExt;
use herd_hub::{Hub, HubConfig};

async fn next_tip(tips: &mut herd_bus::TipStream) -> herd_bus::TipEvent {
    tokio::time::timeout(Duration::from_secs(10), tips.next())
        .await
        .expect("a broadcast within 10 s")
        .unwrap()
        .unwrap()
}

/// A client that sends its push and hangs up before the answer: the push still lands and is
/// broadcast (it runs in its own task, not in the request's).
#[tokio::test(flavor = "multi_thread")]
async fn a_push_whose_client_hangs_up_still_lands_and_is_broadcast() {
    let s = common::hub().await;
    let mut tips = s.bus.tips().await.unwrap();
    let (oid, body) = common::one_commit_push(&s, "slot-0/a.txt").await;

    // Nothing can land while the store is held: the push is in flight when the client leaves.
    let hold = s.hub.hold_store().await;
    let addr = s.hub.addr();
    common::push_and_hang_up(addr, body).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(hold);

    let ev = next_tip(&mut tips).await;
    assert_eq!(ev.tip.oid, oid.to_string());
    assert_eq!(ev.tip.seq, 2);
    assert_eq!(s.hub.tip().unwrap(), oid.to_string());
}

/// Commits that reached the trunk without a broadcast (a hub that stopped between the ref
/// update and the publish — here, one running without a bus) are broadcast when the hub
/// starts again, in order, with their payloads and their trunk positions.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_hub_publishes_the_tips_the_stream_missed() {
    let s = common::hub().await;
    let dir = s.hub.dir().to_path_buf();
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let first = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let oid = common::commit_file(&a, "slot-0/a.txt", "a\n");
        common::push(&a).unwrap();
        oid.to_string()
    })
    .await
    .unwrap();
    s.hub.shutdown().await;

    // The "crash": two commits land with no broadcast.
    let quiet = Hub::start(HubConfig {
        dir: dir.clone(),
        bus: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let (url, work) = (quiet.url(), s.dir.path().to_path_buf());
    let missed = tokio::task::spawn_blocking(move || {
        let b = common::clone(&url, &work.join("b"));
        let one = common::commit_file(&b, "slot-1/b.txt", "b\n");
        common::push(&b).unwrap();
        let two = common::commit_file(&b, "slot-1/c.txt", "c\n");
        common::push(&b).unwrap();
        vec![one.to_string(), two.to_string()]
    })
    .await
    .unwrap();
    quiet.shutdown().await;

    let last = s
        .bus
        .last_tip()
        .await
        .unwrap()
        .expect("the first broadcast");
    assert_eq!((last.seq, last.oid.as_str()), (2, first.as_str()));
    let mut tips = s.bus.tips_after(0).await.unwrap();
    assert_eq!(next_tip(&mut tips).await.tip.oid, first);

    let hub = common::restart(&dir, &s.bus).await;
    let got = [next_tip(&mut tips).await, next_tip(&mut tips).await];
    assert_eq!(
        got.iter().map(|e| e.tip.oid.clone()).collect::<Vec<_>>(),
        missed
    );
    assert_eq!(
        got.iter().map(|e| e.tip.seq).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(got[0].tip.prev, first);
    assert!(got.iter().all(|e| e.pack.is_some()), "with payloads");
    assert_eq!(hub.stats().republished, 2);

    // A second restart owes nothing.
    hub.shutdown().await;
    let again = common::restart(&dir, &s.bus).await;
    assert_eq!(again.stats().republished, 0);
}
