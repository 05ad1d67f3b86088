//! Broadcasts a leaf already handled, delivered again — as a hub re-publishing after a bus
//! restart does (the restarted server has lost its dedupe window): a replayed old tip must not
//! move a leaf's reported view backwards (first seen as I9 violations in a trial whose bus was
//! SIGKILLed for 1 s). And a bus killed and restarted on the same store and port mid-run:
//! new work still reaches every leaf.

mod common;

use std::sync::{Arc, Mutex};

use herd_bus::TipChanged;
use herd_leaf::{Leaf, LeafConfig, SyncEvent, SyncPolicy};

/// A reader that records every sync event.
async fn recording_reader(
    h: &common::Herd,
    sync: SyncPolicy,
) -> (Leaf, Arc<Mutex<Vec<SyncEvent>>>) {
    let seen: Arc<Mutex<Vec<SyncEvent>>> = Arc::default();
    let sink = seen.clone();
    let reader = Leaf::open(LeafConfig {
        sync,
        on_sync: Some(Arc::new(move |ev: &SyncEvent| {
            sink.lock().unwrap().push(ev.clone())
        })),
        ..h.config("leaf-r", "slot-r")
    })
    .await
    .unwrap();
    (reader, seen)
}

/// On the linear trunk position is order: every view a leaf reports is at or after the last.
fn assert_views_advance(h: &common::Herd, seen: &Mutex<Vec<SyncEvent>>, sync: SyncPolicy) {
    let trunk: Vec<String> = common::trunk(&h.hub)
        .iter()
        .map(|o| o.to_string())
        .collect();
    let mut last = 0;
    for ev in seen.lock().unwrap().iter() {
        let Some(after) = ev.after.as_deref() else {
            continue;
        };
        let at = trunk
            .iter()
            .position(|t| t == after)
            .expect("a reported view on the trunk");
        assert!(
            at >= last,
            "{sync:?}: view moved back from trunk position {last} to {at} on {:?} of seq {}",
            ev.outcome,
            ev.tip.seq
        );
        last = at;
    }
}

async fn a_replayed_old_tip_does_not_move_the_view(sync: SyncPolicy) {
    let h = common::herd().await;
    let writer = h.leaf_with("leaf-w", "slot-w", sync).await;
    let (reader, seen) = recording_reader(&h, sync).await;
    // The replayed tip is the reader's own old push: a commit it holds, now behind its view.
    common::task(&reader, "t0", "x").await.unwrap();
    let first = h.hub.tip().unwrap();
    let seed = common::trunk(&h.hub)[0].to_string();
    common::handled(&reader, 1).await;
    common::task(&writer, "t1", "x").await.unwrap();
    common::handled(&reader, 2).await;
    let newest = h.hub.tip().unwrap();

    // The first tip again, without a dedupe id (the restarted server forgot it).
    let old = TipChanged {
        oid: first.clone(),
        prev: seed,
        seq: 1,
        slot: Some("slot-r".into()),
        at: 0,
        pushed: None,
        pack_bytes: 0,
        pack_index: Vec::new(),
    };
    h.bus
        .jetstream()
        .publish("herd.tip.changed", serde_json::to_vec(&old).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    common::handled(&reader, 3).await;
    // The second broadcast of `first` is the replay (a fetch leaf may still be pulling t1 when
    // it arrives, so it need not be the last event): it leaves the reported view where it was.
    let replay = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.tip.oid == first)
        .nth(1)
        .cloned()
        .expect("the replay was handled");
    assert_eq!(
        replay.after, replay.before,
        "{sync:?}: a replayed old tip moved the reported view"
    );
    assert_eq!(reader.remote_tip().as_deref(), Some(newest.as_str()));
    assert_views_advance(&h, &seen, sync);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_leaves_report_their_view_not_a_replayed_tip() {
    a_replayed_old_tip_does_not_move_the_view(SyncPolicy::Payload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_leaves_report_their_view_not_a_replayed_tip() {
    a_replayed_old_tip_does_not_move_the_view(SyncPolicy::Fetch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_bus_restart_new_work_reaches_every_leaf() {
    let mut h = common::herd().await;
    let writer = h.leaf_with("leaf-w", "slot-w", SyncPolicy::Payload).await;
    let (reader, seen) = recording_reader(&h, SyncPolicy::Payload).await;
    for i in 0..3 {
        common::task(&writer, &format!("t{i}"), "x").await.unwrap();
    }
    common::handled(&reader, 3).await;

    h.server.kill().unwrap();
    h.server.restart().unwrap();
    common::task(&writer, "t3", "x").await.unwrap();
    let tip = h.hub.tip().unwrap();
    let started = std::time::Instant::now();
    while reader.remote_tip().as_deref() != Some(tip.as_str()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the reader never saw the tip landed after the restart"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Measured ~15 s here (the reader's tip consumer recovers late; see issue 14's notes).
    eprintln!(
        "new work reached the reader {:?} after the restart",
        started.elapsed()
    );
    assert_views_advance(&h, &seen, SyncPolicy::Payload);
}

/// The pre-push claim check meets a dying bus (its request goes to a frozen server that is then
/// killed, so it is lost and times out while the client reconnects): the read is repeated and
/// the commit lands, instead of the task failing (seen in a trial with the bus killed for 1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_rides_out_a_bus_restart() {
    let mut h = common::herd().await;
    let leaf = h.leaf_with("leaf-0", "slot-0", SyncPolicy::Payload).await;
    let path = "slot-0/a.txt".to_string();
    let task = leaf.open_task("a", vec![path.clone()]).await.unwrap();
    let claim = leaf.claim(&task).await.unwrap();

    // Frozen first: the connection stays up, so the read is sent and never answered.
    let pid = h.server.pid().unwrap().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let server = &mut h.server;
    let (committed, restarted) =
        tokio::join!(leaf.commit(&claim, vec![(path, b"a\n".to_vec())]), async {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            server.kill().unwrap();
            server.restart()
        });
    restarted.unwrap();
    let outcome = committed.expect("the commit lands across the restart");
    assert_eq!(h.hub.tip().unwrap(), outcome.oid);
}
