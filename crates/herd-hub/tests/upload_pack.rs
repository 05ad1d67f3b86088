//! The in-process upload-pack against real clients: a stock `git` clone, then an incremental
//! `git fetch` whose haves make the hub send only the new commit's objects (measured by the
//! bytes the hub answered with), and the same for libgit2 through herd's transport.

mod common;

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=cli", "-c", "user.email=cli@herd"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git on PATH");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "git {args:?}: {text}");
    text
}

/// 200 KB of bytes that do not compress: a history a full fetch cannot hide.
fn noise(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stock_git_clones_then_fetches_only_what_is_new() {
    let s = common::hub().await;
    let url = s.hub.url();
    let work = s.dir.path().to_path_buf();
    let stats_before_fetch = {
        let (url, work) = (url.clone(), work.clone());
        tokio::task::spawn_blocking(move || {
            let a = common::clone(&url, &work.join("a"));
            std::fs::create_dir_all(work.join("a/slot-0")).unwrap();
            std::fs::write(work.join("a/slot-0/big.bin"), noise(7)).unwrap();
            let mut index = a.index().unwrap();
            index.add_path(Path::new("slot-0/big.bin")).unwrap();
            index.write().unwrap();
            let tree = a.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = git2::Signature::now("t", "t@herd").unwrap();
            let parent = a.head().unwrap().peel_to_commit().unwrap();
            a.commit(Some("HEAD"), &sig, &sig, "big", &tree, &[&parent])
                .unwrap();
            common::push(&a).unwrap();
            git(&work, &["clone", "-q", &url, "cli"]);
            assert_eq!(
                std::fs::read(work.join("cli/slot-0/big.bin")).unwrap(),
                noise(7)
            );
            common::commit_file(&a, "slot-0/small.txt", "small\n");
            common::push(&a).unwrap();
        })
        .await
        .unwrap();
        s.hub.stats()
    };
    let fetched = {
        let work = work.clone();
        tokio::task::spawn_blocking(move || {
            git(&work.join("cli"), &["fetch", "-q", "origin"]);
            git(&work.join("cli"), &["rev-parse", "origin/main"])
        })
        .await
        .unwrap()
    };
    let after = s.hub.stats();
    assert_eq!(fetched.trim(), s.hub.tip().unwrap());
    let fetch_bytes = after.bytes_out - stats_before_fetch.bytes_out;
    assert!(
        after.fetches > stats_before_fetch.fetches,
        "the CLI fetched from the hub"
    );
    // The history holds 200 KB that does not compress; the increment is one small commit.
    assert!(
        fetch_bytes < 4_000,
        "an incremental fetch sent {fetch_bytes} bytes"
    );

    // A fetch when already up to date sends no pack at all.
    let before = s.hub.stats().bytes_out;
    let work2 = work.clone();
    tokio::task::spawn_blocking(move || git(&work2.join("cli"), &["fetch", "-q", "origin"]))
        .await
        .unwrap();
    assert!(s.hub.stats().bytes_out - before < 1_000);

    // libgit2 through herd's transport: the same increment, the same small answer.
    let before = s.hub.stats().bytes_out;
    let tip = tokio::task::spawn_blocking(move || {
        let b = common::clone(&url, &work.join("b"));
        let a = git2::Repository::open(work.join("a")).unwrap();
        common::commit_file(&a, "slot-0/again.txt", "again\n");
        common::push(&a).unwrap();
        let clone_done = common::fetch(&b);
        (clone_done, a.head().unwrap().target().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(tip.0, tip.1, "libgit2 fetched the new tip");
    let spent = s.hub.stats().bytes_out - before;
    assert!(
        spent > 200_000 && spent < 210_000,
        "one clone (~200 KB) plus one small fetch, got {spent}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_want_that_is_not_on_the_trunk_is_refused() {
    let s = common::hub().await;
    let body = {
        let mut b = Vec::new();
        herd_hub::pkt_line::write(
            &mut b,
            format!("want {} multi_ack_detailed side-band-64k\n", "3".repeat(40)).as_bytes(),
        );
        herd_hub::pkt_line::flush(&mut b);
        herd_hub::pkt_line::write(&mut b, b"done\n");
        b
    };
    let (status, reason) = common::http(
        s.hub.addr(),
        "POST",
        "/herd.git/git-upload-pack",
        &[("Content-Type", "application/x-git-upload-pack-request")],
        &body,
    );
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("not our ref"), "{reason}");
}
