//! A hub restarted on the same directory keeps its history and keeps accepting pushes.

mod common;

use herd_hub::{Hub, HubConfig};

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

    let hub = Hub::start(HubConfig {
        dir,
        bus: Some(s.bus.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
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
