//! Exactly one TipChanged per accepted push, in trunk order; none for refused pushes.

mod common;

use futures::StreamExt;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn one_broadcast_per_accepted_push_none_for_refusals() {
    let s = common::hub().await;
    let mut tips = s.bus.tips().await.unwrap();
    let seed = s.hub.tip().unwrap();
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (oids, stale_body) = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let b = common::clone(&url, &work.join("b"));
        let mut oids = Vec::new();
        for i in 0..3 {
            oids.push(common::commit_file(&a, &format!("slot-0/{i}.txt"), "x").to_string());
            common::push_with(&a, &[("x-herd-slot", "slot-0"), ("traceparent", tp)]).unwrap();
        }
        let stale = common::commit_file(&b, "slot-1/s.txt", "s");
        (
            oids,
            common::receive_pack_body(&b, &seed, &stale.to_string()),
        )
    })
    .await
    .unwrap();
    let (status, report) = common::http(
        s.hub.addr(),
        "POST",
        "/herd.git/git-receive-pack",
        &[("Content-Type", "application/x-git-receive-pack-request")],
        &stale_body,
    );
    assert_eq!(status, 200);
    assert!(report.contains("non-fast-forward"));

    let mut got = Vec::new();
    for _ in 0..3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), tips.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push(ev);
    }
    assert_eq!(
        got.iter().map(|e| e.tip.oid.clone()).collect::<Vec<_>>(),
        oids
    );
    assert_eq!(
        got.iter().map(|e| e.tip.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(got[1].tip.prev, oids[0]);
    assert!(
        got.iter().all(
            |e| e.traceparent.as_deref() == Some(tp) && e.tip.slot.as_deref() == Some("slot-0")
        )
    );
    // Nothing for the refused push.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), tips.next())
            .await
            .is_err(),
        "a refused push was broadcast"
    );
    let info = s
        .bus
        .jetstream()
        .get_stream(herd_bus::TIP_STREAM)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.state.messages, 3);
}
