//! libgit2 through herd-hub's transport: clone, commit, push, fetch; a second clone sees it.

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn clone_commit_push_fetch_and_a_second_clone_sees_it() {
    let s = common::hub().await;
    let url = s.hub.url();
    let seed_len = s.hub.trunk_len();
    assert_eq!(seed_len, 1);
    let work = s.dir.path().to_path_buf();

    let (pushed, fetched_tip, second_has) = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let oid = common::commit_file(&a, "slot-0/hello.txt", "hello\n");
        common::push(&a).unwrap();

        let b = common::clone(&url, &work.join("b"));
        let second_has =
            b.head().unwrap().target() == Some(oid) && work.join("b/slot-0/hello.txt").is_file();
        let oid2 = common::commit_file(&b, "slot-1/more.txt", "more\n");
        common::push(&b).unwrap();
        let fetched = common::fetch(&a);
        assert_eq!(fetched, oid2, "a fetches b's commit");
        (oid, fetched, second_has)
    })
    .await
    .unwrap();

    assert!(second_has, "a second clone sees the first commit");
    assert!(s.hub.trunk_contains(&pushed.to_string()));
    assert_eq!(s.hub.tip().unwrap(), fetched_tip.to_string());
    assert_eq!(s.hub.trunk_len(), seed_len + 2);
    let stats = s.hub.stats();
    assert_eq!((stats.pushes_accepted, stats.pushes_rejected), (2, 0));
    assert!(stats.bytes_in > 0 && stats.bytes_out > 0 && stats.fetches >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_push_fails_for_libgit2() {
    let s = common::hub().await;
    let url = s.hub.url();
    let work = s.dir.path().to_path_buf();
    let refusal = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let b = common::clone(&url, &work.join("b"));
        common::commit_file(&a, "slot-0/a.txt", "a");
        common::push(&a).unwrap();
        common::commit_file(&b, "slot-1/b.txt", "b");
        common::push(&b).unwrap_err()
    })
    .await
    .unwrap();
    // libgit2 refuses locally when the advertised tip is unknown to it; the hub refuses when the
    // tip moved after the advertisement. Either way the push fails and main keeps a's commit.
    assert!(
        refusal.contains("non-fast-forward") || refusal.contains("not present locally"),
        "{refusal}"
    );
    assert_eq!(s.hub.trunk_len(), 2);
}

/// A push built from a real pack whose old tip is stale: the hub's compare-and-swap refuses
/// it with the standard report, counts it, and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_hub_refuses_a_stale_old_tip_with_the_standard_report() {
    let s = common::hub().await;
    let url = s.hub.url();
    let work = s.dir.path().to_path_buf();
    let seed = s.hub.tip().unwrap();
    let stale_old = seed.clone();
    let body = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let b = common::clone(&url, &work.join("b"));
        common::commit_file(&a, "slot-0/a.txt", "a");
        common::push(&a).unwrap();
        let stale = common::commit_file(&b, "slot-1/b.txt", "b");
        common::receive_pack_body(&b, &seed, &stale.to_string())
    })
    .await
    .unwrap();
    let before = common::snapshot(s.hub.dir());
    let tip = s.hub.tip();
    let (status, report) = common::http(
        s.hub.addr(),
        "POST",
        "/herd.git/git-receive-pack",
        &[("Content-Type", "application/x-git-receive-pack-request")],
        &body,
    );
    assert_eq!(status, 200);
    assert!(
        report.contains("ng refs/heads/main non-fast-forward: the trunk moved to"),
        "{report:?}"
    );
    assert_eq!(s.hub.tip(), tip);
    assert_eq!(
        common::snapshot(s.hub.dir()),
        before,
        "a refused push leaves no objects behind"
    );
    assert_eq!(s.hub.stats().rejected_by_reason.get("stale"), Some(&1));

    // A push that cannot win costs no pack: with a stale old tip even a corrupt pack is never
    // read — the answer is the fork refusal, not a 400 for the pack.
    let mut corrupt = Vec::new();
    herd_hub::pkt_line::write(
        &mut corrupt,
        format!(
            "{stale_old} {} refs/heads/main\0report-status\n",
            "4".repeat(40)
        )
        .as_bytes(),
    );
    herd_hub::pkt_line::flush(&mut corrupt);
    corrupt.extend_from_slice(b"PACK\0\0\0\x02\0\0\0\x05not a pack at all");
    let (status, report) = common::http(
        s.hub.addr(),
        "POST",
        "/herd.git/git-receive-pack",
        &[("Content-Type", "application/x-git-receive-pack-request")],
        &corrupt,
    );
    assert_eq!(status, 200, "{report}");
    assert!(
        report.contains(&format!("the trunk moved to {}", tip.unwrap())),
        "{report:?}"
    );
    assert_eq!(common::snapshot(s.hub.dir()), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_outside_its_slot_is_refused() {
    let s = common::hub().await;
    let url = s.hub.url();
    let work = s.dir.path().to_path_buf();
    let tip_before = s.hub.tip();
    let refusal = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        common::commit_file(&a, "slot-1/not-mine.txt", "x");
        common::push_with(&a, &[("x-herd-slot", "slot-0")]).unwrap_err()
    })
    .await
    .unwrap();
    assert!(
        refusal.contains("outside slot slot-0: slot-1/not-mine.txt"),
        "{refusal}"
    );
    assert_eq!(s.hub.tip(), tip_before);
}

/// git sends large request bodies gzip-encoded; the hub inflates them (within the limit).
#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_encoded_push_is_accepted() {
    use std::io::Write;
    let s = common::hub().await;
    let url = s.hub.url();
    let work = s.dir.path().to_path_buf();
    let seed = s.hub.tip().unwrap();
    let (body, new) = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        let new = common::commit_file(&a, "slot-0/zipped.txt", &"compressible ".repeat(500));
        (
            common::receive_pack_body(&a, &seed, &new.to_string()),
            new.to_string(),
        )
    })
    .await
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).unwrap();
    let gz = gz.finish().unwrap();
    let (status, report) = common::http(
        s.hub.addr(),
        "POST",
        "/herd.git/git-receive-pack",
        &[
            ("Content-Type", "application/x-git-receive-pack-request"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(status, 200, "{report}");
    assert!(report.contains("ok refs/heads/main"), "{report:?}");
    assert_eq!(s.hub.tip().unwrap(), new);
}
