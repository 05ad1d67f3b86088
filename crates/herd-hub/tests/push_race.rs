//! Four pushers race 50 commits each; every loser fetches, rebases and retries. The trunk ends
//! with exactly seed + 200 commits in a line, and the races were real.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_pushers_fifty_commits_each_all_land_linearly() {
    let s = common::hub().await;
    let seed_len = s.hub.trunk_len();
    let client_rejections = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for p in 0..4 {
        let (url, dir, rejections) = (
            s.hub.url(),
            s.dir.path().join(format!("p{p}")),
            client_rejections.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let repo = common::clone(&url, &dir);
            for i in 0..50 {
                common::commit_file(&repo, &format!("slot-{p}/c{i}.txt"), &format!("{p}/{i}\n"));
                let mut attempts = 0;
                while let Err(reason) =
                    common::push_with(&repo, &[("x-herd-slot", &format!("slot-{p}"))])
                {
                    assert!(
                        reason.contains("non-fast-forward")
                            || reason.contains("not present locally"),
                        "{reason}"
                    );
                    rejections.fetch_add(1, Ordering::Relaxed);
                    attempts += 1;
                    assert!(attempts < 500, "pusher {p} starved");
                    common::fetch(&repo);
                    common::rebase_onto_origin(&repo);
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.hub.trunk_len(), seed_len + 200);
    let stats = s.hub.stats();
    assert_eq!(stats.pushes_accepted, 200);
    let forks = client_rejections.load(Ordering::Relaxed);
    assert!(forks > 0, "four pushers never raced");
    // Rejections the hub saw are a subset of those the pushers saw (libgit2 also refuses locally).
    assert!(
        stats.pushes_rejected <= forks,
        "{} > {forks}",
        stats.pushes_rejected
    );

    let repo = git2::Repository::open_bare(s.hub.dir()).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_ref("refs/heads/main").unwrap();
    for oid in walk {
        assert!(
            repo.find_commit(oid.unwrap()).unwrap().parent_count() <= 1,
            "history must be linear"
        );
    }
}
