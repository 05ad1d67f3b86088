//! How leaves follow the trunk, per sync policy, with exact accounting: every broadcast a leaf
//! receives has exactly one outcome, and the hub's own request counters show what each policy
//! costs it.

mod common;

use herd_hub::HubConfig;
use herd_leaf::SyncPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_broadcasts_are_applied_with_zero_hub_requests() {
    let h = common::herd().await;
    let writer = h.leaf_with("leaf-w", "slot-w", SyncPolicy::Payload).await;
    let readers = [
        h.leaf_with("leaf-r1", "slot-r1", SyncPolicy::Payload).await,
        h.leaf_with("leaf-r2", "slot-r2", SyncPolicy::Payload).await,
    ];
    let before = h.hub.stats();
    for i in 0..15 {
        common::task(&writer, &format!("t{i}"), &format!("{i}"))
            .await
            .unwrap();
    }
    let tip = h.hub.tip().unwrap();
    for leaf in readers.iter().chain([&writer]) {
        common::handled(leaf, 15).await;
        assert_eq!(leaf.remote_tip().as_deref(), Some(tip.as_str()));
    }
    let after = h.hub.stats();
    // The writer's 15 pushes are one request each; the readers asked the hub for nothing.
    assert_eq!(after.requests - before.requests, 15, "{after:?}");
    assert_eq!(after.fetches, before.fetches);
    assert_eq!(after.payloads - before.payloads, 15);
    for r in &readers {
        let s = r.stats();
        assert_eq!((s.applied, s.pulled), (15, 0), "{}", r.id());
        assert_eq!(s.applied, r.ledger().count_events("applied").unwrap());
    }
    // The writer holds each tip it pushed: all of its own broadcasts are idempotent.
    assert_eq!(writer.stats().skipped_idempotent, 15);
    // A reader builds on the applied tip and lands without a fork or a fetch.
    let landed = common::task(&readers[0], "after", "x").await.unwrap();
    assert_eq!(landed.fork_retries, 0);
    assert_eq!(h.hub.stats().fetches, before.fetches);
    // Objects applied in memory are flushed whole when the leaf stops: stock git finds the
    // repository complete and the saved tips where the leaf held them.
    for r in &readers {
        r.shutdown().await;
    }
    let repo = h.dir.path().join("leaf-r1/repo");
    let fsck = std::process::Command::new("git")
        .args(["fsck", "--full", "--no-dangling"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    let origin = std::process::Command::new("git")
        .args(["rev-parse", "refs/remotes/origin/main", "refs/heads/main"])
        .current_dir(&repo)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&origin.stdout);
    assert_eq!(text.lines().next(), Some(landed.oid.as_str()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_missing_the_base_falls_back_to_a_fetch() {
    let h = common::herd().await;
    let writer = h.leaf_with("leaf-w", "slot-w", SyncPolicy::Payload).await;
    {
        // The reader clones at the seed, then goes away while two commits land.
        let reader = h.leaf_with("leaf-r", "slot-r", SyncPolicy::Payload).await;
        reader.shutdown().await;
    }
    for i in 0..2 {
        common::task(&writer, &format!("gap{i}"), "x")
            .await
            .unwrap();
    }
    // Back on its old tip, subscribed from now on: the next broadcast's base is one it lacks.
    let reader = h.leaf_with("leaf-r", "slot-r", SyncPolicy::Payload).await;
    let fetches = h.hub.stats().fetches;
    common::task(&writer, "after-gap", "y").await.unwrap();
    common::handled(&reader, 1).await;
    let s = reader.stats();
    assert_eq!((s.applied, s.pulled, s.pull_failures), (0, 1, 0), "{s:?}");
    assert!(
        h.hub.stats().fetches > fetches,
        "the fallback went to the hub"
    );
    assert_eq!(reader.remote_tip(), h.hub.tip());
    // From the fetched tip on, payloads apply again.
    common::task(&writer, "next", "z").await.unwrap();
    common::handled(&reader, 2).await;
    assert_eq!(reader.stats().applied, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_without_payload_are_fetched() {
    let h = common::herd_with(HubConfig {
        payload_max_bytes: 0,
        ..Default::default()
    })
    .await;
    let writer = h.leaf_with("leaf-w", "slot-w", SyncPolicy::Payload).await;
    let reader = h.leaf_with("leaf-r", "slot-r", SyncPolicy::Payload).await;
    for i in 0..3 {
        common::task(&writer, &format!("t{i}"), "x").await.unwrap();
    }
    common::handled(&reader, 3).await;
    let s = reader.stats();
    assert_eq!(s.applied, 0);
    assert_eq!(s.pulled + s.skipped_idempotent, 3);
    assert!(s.pulled >= 1);
    assert_eq!(h.hub.stats().payloads, 0);
    assert_eq!(reader.remote_tip(), h.hub.tip());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_sync_pulls_every_broadcast_over_http() {
    let h = common::herd().await;
    let writer = h.leaf_with("leaf-w", "slot-w", SyncPolicy::Fetch).await;
    let reader = h.leaf_with("leaf-r", "slot-r", SyncPolicy::Fetch).await;
    let fetches = h.hub.stats().fetches;
    for i in 0..10 {
        common::task(&writer, &format!("t{i}"), "x").await.unwrap();
    }
    common::handled(&reader, 10).await;
    let s = reader.stats();
    assert_eq!(s.applied, 0);
    assert_eq!(s.pulled + s.skipped_coalesced + s.skipped_idempotent, 10);
    assert!(s.pulled >= 1);
    assert!(h.hub.stats().fetches - fetches >= s.pulled);
    assert_eq!(reader.remote_tip(), h.hub.tip());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_broadcasts_are_reported_with_the_view_their_catch_up_reached() {
    let h = common::herd().await;
    let writer = h.leaf_with("leaf-w", "slot-w", SyncPolicy::Fetch).await;
    // The reader's first pull stays in flight for a second (its report blocks): every
    // broadcast meanwhile is coalesced into it, and a catch-up pull follows.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let hook: herd_leaf::SyncHook = std::sync::Arc::new(move |e: &herd_leaf::SyncEvent| {
        let first = {
            let mut seen = record.lock().unwrap();
            seen.push(e.clone());
            seen.len() == 1
        };
        if first {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    });
    let reader = herd_leaf::Leaf::open(herd_leaf::LeafConfig {
        sync: SyncPolicy::Fetch,
        on_sync: Some(hook),
        ..h.config("leaf-r", "slot-r")
    })
    .await
    .unwrap();
    for i in 0..6 {
        common::task(&writer, &format!("t{i}"), "x").await.unwrap();
    }
    common::handled(&reader, 6).await;
    let s = reader.stats();
    assert!(s.skipped_coalesced >= 1, "{s:?}");
    assert!(s.catch_up_pulls >= 1, "{s:?}");
    let trunk: Vec<String> = common::trunk(&h.hub)
        .iter()
        .map(|o| o.to_string())
        .collect();
    let position = |oid: &str| trunk.iter().position(|t| t == oid);
    let seen = seen.lock().unwrap();
    for e in seen
        .iter()
        .filter(|e| e.outcome == herd_leaf::SyncOutcome::SkippedCoalesced)
    {
        // Reported once the catch-up covering it ended: the view then holds the broadcast's
        // tip (its history line shows the leaf reaching it, which I10 reads).
        let after = e
            .after
            .as_deref()
            .expect("a coalesced broadcast names the view");
        assert!(position(after) >= position(&e.tip.oid), "{e:?}");
    }
    let last = seen.last().unwrap();
    assert_eq!(last.after.as_deref(), h.hub.tip().as_deref());
    assert_eq!(reader.remote_tip(), h.hub.tip());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_sync_fetches_once_before_its_next_commit() {
    let h = common::herd().await;
    let writer = h.leaf_with("leaf-w", "slot-w", SyncPolicy::OnDemand).await;
    let reader = h.leaf_with("leaf-r", "slot-r", SyncPolicy::OnDemand).await;
    let fetches = h.hub.stats().fetches;
    for i in 0..5 {
        common::task(&writer, &format!("t{i}"), "x").await.unwrap();
    }
    common::handled(&reader, 5).await;
    assert_eq!(reader.stats().deferred, 5);
    assert_eq!(
        h.hub.stats().fetches,
        fetches,
        "nothing fetched on broadcasts"
    );
    let landed = common::task(&reader, "mine", "y").await.unwrap();
    assert_eq!(landed.fork_retries, 0, "it fetched before building");
    assert_eq!(reader.stats().commit_fetches, 1);
    assert!(h.hub.stats().fetches > fetches);
}
