//! The stock `git` CLI against the hub: clone, commit, push, fetch; forced push refused.

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn git_cli_clone_commit_push_fetch_and_forced_push_refused() {
    let s = common::hub().await;
    let url = s.hub.url();
    let work = s.dir.path().to_path_buf();
    let seed = s.hub.tip().unwrap();
    let (pushed, forced) = tokio::task::spawn_blocking(move || {
        let (ok, out) = common::git(&work, &["clone", &url, "a"]);
        assert!(ok, "clone: {out}");
        let a = work.join("a");
        std::fs::create_dir_all(a.join("slot-0")).unwrap();
        std::fs::write(a.join("slot-0/cli.txt"), "from the git CLI\n").unwrap();
        assert!(common::git(&a, &["add", "."]).0);
        assert!(common::git(&a, &["commit", "-m", "cli commit"]).0);
        let (ok, out) = common::git(&a, &["push", "origin", "main"]);
        assert!(ok, "push: {out}");
        let (_, head) = common::git(&a, &["rev-parse", "HEAD"]);

        // A second clone fetches it.
        let (ok, out) = common::git(&work, &["clone", &url, "b"]);
        assert!(ok, "clone b: {out}");
        let b = work.join("b");
        assert!(b.join("slot-0/cli.txt").is_file());
        std::fs::write(a.join("slot-0/cli2.txt"), "second\n").unwrap();
        assert!(
            common::git(&a, &["add", "."]).0
                && common::git(&a, &["commit", "-m", "second"]).0
                && common::git(&a, &["push"]).0
        );
        let (ok, out) = common::git(&b, &["fetch", "origin"]);
        assert!(ok, "fetch: {out}");
        let (_, fetched) = common::git(&b, &["rev-parse", "origin/main"]);
        let (_, a_head) = common::git(&a, &["rev-parse", "HEAD"]);
        assert_eq!(fetched.trim(), a_head.trim());

        // Rewrite history and force it: the hub must refuse.
        assert!(common::git(&b, &["reset", "--hard", &seed]).0);
        std::fs::write(b.join("rewrite.txt"), "rewrite\n").unwrap();
        assert!(
            common::git(&b, &["add", "."]).0 && common::git(&b, &["commit", "-m", "rewrite"]).0
        );
        let (ok, out) = common::git(&b, &["push", "--force", "origin", "main"]);
        assert!(!ok, "forced push must fail: {out}");
        (head.trim().to_string(), out)
    })
    .await
    .unwrap();
    assert!(
        forced.contains("non-fast-forward") || forced.contains("rejected"),
        "{forced}"
    );
    assert!(s.hub.trunk_contains(&pushed));
    assert_eq!(s.hub.trunk_len(), 3);
    assert_eq!(
        s.hub.stats().rejected_by_reason.get("rewrite"),
        Some(&1),
        "the forced push reached the hub and was refused there"
    );
    // Thin packs from the CLI were stored whole: stock git finds the hub's store complete.
    let (ok, out) = common::git(s.hub.dir(), &["fsck", "--full", "--strict"]);
    assert!(ok, "fsck: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn git_cli_cannot_delete_main() {
    let s = common::hub().await;
    let url = s.hub.url();
    let work = s.dir.path().to_path_buf();
    let tip = s.hub.tip();
    let out = tokio::task::spawn_blocking(move || {
        assert!(common::git(&work, &["clone", &url, "a"]).0);
        common::git(&work.join("a"), &["push", "origin", ":main"])
    })
    .await
    .unwrap();
    assert!(!out.0, "delete must fail: {}", out.1);
    assert_eq!(s.hub.tip(), tip);
}
