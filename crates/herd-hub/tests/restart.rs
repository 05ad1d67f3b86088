//! A hub restarted on the same directory keeps its history and keeps accepting pushes.

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn restart_on_the_same_dir_keeps_history() {
    let s = common::hub().await;
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let pushed = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let oid = common::commit_file(&a, "slot-0/a.txt", "a");
        common::push(&a).unwrap();
        oid.to_string()
    })
    .await
    .unwrap();
    let dir = s.hub.dir().to_path_buf();
    s.hub.shutdown().await;

    let hub = common::restart(&dir, &s.bus).await;
    assert_eq!(hub.trunk_len(), 2);
    assert!(hub.trunk_contains(&pushed));
    let (url, work) = (hub.url(), s.dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let b = common::clone(&url, &work.join("b"));
        common::commit_file(&b, "slot-1/b.txt", "b");
        common::push(&b).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(hub.trunk_len(), 3);
}

/// What a hub killed mid-write leaves (a temporary pack, a quarantine, a stale lock on main)
/// is swept at start; left alone, the lock would refuse every push.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_hubs_leftovers_are_swept_at_start() {
    let s = common::hub().await;
    let dir = s.hub.dir().to_path_buf();
    s.hub.shutdown().await;
    let pack = dir.join("objects/pack");
    std::fs::write(pack.join(".tmp-herd-0123.pack"), b"half a pack").unwrap();
    std::fs::write(pack.join(".tmp-herd-0123.idx"), b"half an index").unwrap();
    std::fs::create_dir_all(dir.join("objects/incoming-Ab12/pack")).unwrap();
    std::fs::write(dir.join("refs/heads/main.lock"), b"0000\n").unwrap();
    std::fs::write(dir.join("packed-refs.lock"), b"").unwrap();

    let hub = common::restart(&dir, &s.bus).await;
    assert_eq!(
        *hub.swept(),
        herd_hub::leftovers::Swept {
            temp_packs: 2,
            quarantines: 1,
            locks: 2
        }
    );
    assert!(!dir.join("refs/heads/main.lock").exists());
    assert!(!dir.join("objects/incoming-Ab12").exists());
    let (url, work) = (hub.url(), s.dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let b = common::clone(&url, &work.join("b"));
        common::commit_file(&b, "slot-1/b.txt", "b");
        common::push(&b).expect("pushes land after the sweep");
    })
    .await
    .unwrap();
    assert_eq!(hub.trunk_len(), 2);
}
