//! Exactly one TipChanged per accepted push, in trunk order, carrying the commit's objects;
//! none for refused pushes.

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
        vec![2, 3, 4],
        "seq is the commit's position on the trunk (the seed is 1)"
    );
    assert_eq!(got[1].tip.prev, oids[0]);
    assert!(
        got.iter().all(
            |e| e.traceparent.as_deref() == Some(tp) && e.tip.slot.as_deref() == Some("slot-0")
        )
    );
    // Each carries its commit's objects: a pack a holder of `prev` can index on its own, and
    // its index — every entry's id and offset, in pack order — so a leaf can keep the entries
    // without inflating them: the ids are what the entries hash to, the commit among them.
    for ev in &got {
        let pack = ev.pack.as_ref().expect("a payload under the cap");
        assert_eq!(pack.len() as u64, ev.tip.pack_bytes);
        assert!(pack.starts_with(b"PACK"));
        let index: Vec<(git2::Oid, u64)> = ev
            .tip
            .pack_index
            .iter()
            .map(|(id, at)| (git2::Oid::from_str(id).unwrap(), *at))
            .collect();
        let listed = herd_hub::pack::listed(pack, &index).expect("an index of every entry");
        let read = herd_hub::pack::read(pack, |_| None).unwrap();
        assert_eq!(listed.len(), read.len());
        for ((oid, stored), entry) in listed.iter().zip(&read) {
            assert_eq!(
                *oid,
                git2::Oid::hash_object(entry.kind, &entry.data).unwrap()
            );
            assert_eq!(*stored, entry.stored);
        }
        assert!(index.iter().any(|(o, _)| o.to_string() == ev.tip.oid));
    }
    let holder = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init_bare(holder.path()).unwrap();
    let index = |bytes: &[u8]| {
        let odb = repo.odb().unwrap();
        let dir = holder.path().join("objects/pack");
        let mut indexer = git2::Indexer::new(Some(&odb), &dir, 0o444, true).unwrap();
        std::io::Write::write_all(&mut indexer, bytes).unwrap();
        indexer.commit().unwrap();
    };
    // Start from a full copy of the seed, then apply the three payloads in order.
    let hub = git2::Repository::open_bare(s.hub.dir()).unwrap();
    let mut builder = hub.packbuilder().unwrap();
    let mut walk = hub.revwalk().unwrap();
    walk.push(git2::Oid::from_str(&got[0].tip.prev).unwrap())
        .unwrap();
    builder.insert_walk(&mut walk).unwrap();
    let mut seed_pack = git2::Buf::new();
    builder.write_buf(&mut seed_pack).unwrap();
    index(&seed_pack);
    for ev in &got {
        index(ev.pack.as_ref().unwrap());
    }
    let tip = repo
        .find_commit(git2::Oid::from_str(&oids[2]).unwrap())
        .unwrap();
    let odb = repo.odb().unwrap();
    tip.tree()
        .unwrap()
        .walk(git2::TreeWalkMode::PreOrder, |_, e| {
            assert!(odb.exists(e.id()), "{:?}", e.name());
            git2::TreeWalkResult::Ok
        })
        .unwrap();

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
