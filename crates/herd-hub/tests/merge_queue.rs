//! Queue mode: a push built on an older tip lands when the paths it changes did not change on
//! the trunk since its base — replayed onto the tip with author, message and trailers kept and
//! the hub as committer — and pushes that wait together land in one ref update, one broadcast
//! per landed commit, in trunk order. An overlapping push is refused as a fork.

mod common;

use std::time::Duration;

use futures::StreamExt;
use git2::Oid;
use herd_hub::{HubConfig, HubMode, LANDED_HEADER, QUEUE_REF};

const RECEIVE: &str = "application/x-git-receive-pack-request";

async fn queue_hub() -> common::Setup {
    let dir = tempfile::tempdir().unwrap();
    common::hub_in(
        dir,
        HubConfig {
            mode: HubMode::Queue,
            ..Default::default()
        },
    )
    .await
}

fn push(addr: std::net::SocketAddr, body: &[u8]) -> (String, String) {
    let (status, head, report) = common::http_full(
        addr,
        "POST",
        "/herd.git/git-receive-pack",
        &[("Content-Type", RECEIVE)],
        body,
    );
    assert_eq!(status, 200, "{report}");
    (head, report)
}

fn landed_header(head: &str) -> Option<Oid> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{LANDED_HEADER}: ")))
        .map(|v| Oid::from_str(v.trim()).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_disjoint_push_is_replayed_onto_the_tip_without_a_fork() {
    let s = queue_hub().await;
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let zero = "0".repeat(40);
    let (first, stale) = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let b = common::clone(&url, &work.join("b"));
        let first = common::commit_file(&a, "slot-a/a.txt", "a\n");
        common::push(&a).unwrap();
        let msg_commit = {
            let parent = b.head().unwrap().peel_to_commit().unwrap();
            let mut index = b.index().unwrap();
            std::fs::create_dir_all(work.join("b/slot-b")).unwrap();
            std::fs::write(work.join("b/slot-b/b.txt"), "b\n").unwrap();
            index
                .add_path(std::path::Path::new("slot-b/b.txt"))
                .unwrap();
            let tree = b.find_tree(index.write_tree().unwrap()).unwrap();
            let author =
                git2::Signature::new("leaf-b", "leaf-b@herd", &git2::Time::new(1000, 0)).unwrap();
            b.commit(
                None,
                &author,
                &author,
                "leaf-b: task\n\nHerd-Claim: leaf-b.t0000@7\n",
                &tree,
                &[&parent],
            )
            .unwrap()
        };
        (first, (msg_commit, b))
    })
    .await
    .unwrap();
    let (stale_oid, b) = stale;
    let body = common::receive_pack_body_to(&b, &zero, &stale_oid.to_string(), QUEUE_REF);
    let addr = s.hub.addr();
    let (head, report) = tokio::task::spawn_blocking(move || push(addr, &body))
        .await
        .unwrap();
    assert!(report.contains(&format!("ok {QUEUE_REF}")), "{report:?}");
    let landed = landed_header(&head).expect("the landed header");
    assert_ne!(landed, stale_oid, "replayed onto the newer tip");
    assert_eq!(s.hub.tip().unwrap(), landed.to_string());
    let hub = git2::Repository::open_bare(s.hub.dir()).unwrap();
    let c = hub.find_commit(landed).unwrap();
    assert_eq!(
        c.parent_id(0).unwrap(),
        first,
        "on top of the tip it missed"
    );
    assert_eq!(c.author().name().unwrap(), "leaf-b");
    assert_eq!(c.author().when().seconds(), 1000);
    assert_eq!(c.committer().name().unwrap(), "herd-hub");
    assert_eq!(
        c.message().unwrap(),
        "leaf-b: task\n\nHerd-Claim: leaf-b.t0000@7\n"
    );
    let tree = c.tree().unwrap();
    assert!(tree.get_path(std::path::Path::new("slot-a/a.txt")).is_ok());
    assert!(tree.get_path(std::path::Path::new("slot-b/b.txt")).is_ok());
    let stats = s.hub.stats();
    assert_eq!((stats.commits_landed, stats.commits_replayed), (2, 1));
    assert_eq!(stats.pushes_rejected, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overlapping_push_is_refused_as_a_fork() {
    let s = queue_hub().await;
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let zero = "0".repeat(40);
    let body = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let b = common::clone(&url, &work.join("b"));
        common::commit_file(&a, "slot-s/shared.txt", "a\n");
        common::push(&a).unwrap();
        let stale = common::commit_file(&b, "slot-s/shared.txt", "b\n");
        common::receive_pack_body_to(&b, &zero, &stale.to_string(), QUEUE_REF)
    })
    .await
    .unwrap();
    let tip = s.hub.tip().unwrap();
    let before = common::snapshot(s.hub.dir());
    let addr = s.hub.addr();
    let (head, report) = tokio::task::spawn_blocking(move || push(addr, &body))
        .await
        .unwrap();
    assert!(
        report.contains("ng refs/for/main fetch first: slot-s/shared.txt also changed"),
        "{report:?}"
    );
    assert!(landed_header(&head).is_none());
    let refused = herd_hub::classify(report.split("refs/for/main ").nth(1).unwrap());
    assert_eq!(refused.kind, herd_hub::RefusalKind::Fork);
    assert_eq!(refused.tip.map(|t| t.to_string()), Some(tip.clone()));
    assert_eq!(s.hub.tip().unwrap(), tip);
    assert_eq!(common::snapshot(s.hub.dir()), before, "nothing stored");
    assert_eq!(s.hub.stats().rejected_by_reason.get("overlap"), Some(&1));
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_waiting_together_land_in_one_ref_update_in_order() {
    let s = queue_hub().await;
    let mut tips = s.bus.tips().await.unwrap();
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let zero = "0".repeat(40);
    // Five clones of the seed, one commit each in its own slot: all built on the same tip.
    let bodies = tokio::task::spawn_blocking(move || {
        (0..5)
            .map(|i| {
                let r = common::clone(&url, &work.join(format!("c{i}")));
                let oid = common::commit_file(&r, &format!("slot-{i}/f.txt"), "x\n");
                common::receive_pack_body_to(&r, &zero, &oid.to_string(), QUEUE_REF)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let hold = s.hub.hold_queue().await;
    let addr = s.hub.addr();
    let pushes: Vec<_> = bodies
        .into_iter()
        .map(|body| tokio::task::spawn_blocking(move || push(addr, &body)))
        .collect();
    // Every push is parsed, checked and waiting in the queue before the hold is released.
    for _ in 0..500 {
        if s.hub.stats().push_requests == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.hub.stats().commits_landed, 0, "held");
    drop(hold);
    let mut landed = Vec::new();
    for p in pushes {
        let (head, report) = p.await.unwrap();
        assert!(report.contains("ok refs/for/main"), "{report:?}");
        landed.push(landed_header(&head).unwrap());
    }
    let stats = s.hub.stats();
    assert_eq!(stats.commits_landed, 5);
    assert_eq!(stats.landing_batches, 1, "one ref update for the group");
    assert_eq!(stats.largest_batch, 5);
    assert_eq!(stats.commits_replayed, 4, "the first was a fast-forward");
    // One broadcast per landed commit, in trunk order, each naming its predecessor.
    let trunk = common_trunk(&s);
    let mut prev = trunk[0];
    for (i, oid) in trunk[1..].iter().enumerate() {
        let ev = tokio::time::timeout(Duration::from_secs(5), tips.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.tip.oid, oid.to_string());
        assert_eq!(ev.tip.prev, prev.to_string());
        assert_eq!(ev.tip.seq, i as u64 + 2);
        assert!(ev.pack.is_some());
        prev = *oid;
    }
    let mut sorted = landed.clone();
    sorted.sort();
    let mut on_trunk = trunk[1..].to_vec();
    on_trunk.sort();
    assert_eq!(sorted, on_trunk);
}

fn common_trunk(s: &common::Setup) -> Vec<Oid> {
    let repo = git2::Repository::open_bare(s.hub.dir()).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_ref("refs/heads/main").unwrap();
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .unwrap();
    walk.map(|o| o.unwrap()).collect()
}
