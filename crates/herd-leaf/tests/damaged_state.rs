//! F13: a leaf's state damaged while it was stopped — its SQLite ledger overwritten with
//! garbage, a stale `index.lock` and a garbage git index left in its worktree. Opened again, the
//! leaf detects the ledger damage, sets the file aside, rebuilds the ledger from the bus (task
//! states, epochs and commits as they were), pushes nothing while doing so, and resumes its
//! claimed task to land it once.

mod common;

use herd_bus::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_ledger_and_worktree_are_detected_and_rebuilt_and_nothing_is_pushed_twice() {
    let h = common::herd().await;
    let dir = h.dir.path().join("leaf-a");
    let (done, interrupted) = {
        let leaf = h.leaf("leaf-a", "slot-a").await;
        let done = common::task(&leaf, "done", "x\n").await.unwrap();
        let id = leaf
            .open_task("interrupted", vec!["slot-a/late.txt".into()])
            .await
            .unwrap();
        leaf.claim(&id).await.unwrap();
        leaf.shutdown().await;
        (done, id)
    };
    let trunk_before = h.hub.trunk_len();
    // The damage, done while the leaf is stopped.
    std::fs::write(dir.join(herd_leaf::LEDGER_FILE), vec![0x5a; 8192]).unwrap();
    for stale in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{}{stale}", herd_leaf::LEDGER_FILE)));
    }
    std::fs::write(dir.join("repo/.git/index.lock"), b"stale").unwrap();
    std::fs::write(dir.join("repo/.git/index"), b"not an index").unwrap();

    let leaf = h.leaf("leaf-a", "slot-a").await;
    assert_eq!(leaf.stats().ledger_rebuilds, 1, "the damage was detected");
    assert!(
        !dir.join("repo/.git/index.lock").exists(),
        "the stale lock is removed, not left behind"
    );
    assert_eq!(
        h.hub.trunk_len(),
        trunk_before,
        "nothing pushed while rebuilding"
    );
    let aside = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".damaged-")
        })
        .count();
    assert!(
        aside >= 1,
        "the damaged ledger is kept aside for a post-mortem"
    );
    // The rebuilt ledger says what the bus says.
    let first = leaf.ledger().task("leaf-a.t0000").unwrap().unwrap();
    assert_eq!(first.state, TaskState::Closed);
    assert_eq!(first.commit.as_deref(), Some(done.oid.as_str()));
    let claims = leaf.resumable().unwrap();
    assert_eq!(claims.len(), 1);
    let claim = claims.into_iter().next().unwrap();
    assert_eq!(claim.task(), &interrupted);
    let landed = leaf
        .commit(&claim, vec![("slot-a/late.txt".into(), b"late\n".to_vec())])
        .await
        .unwrap();
    leaf.close(claim).await.unwrap();
    assert!(h.hub.trunk_contains(&landed.oid));
    assert_eq!(h.hub.trunk_len(), trunk_before + 1, "landed once");
    // A new task does not reuse a number the bus already has.
    let next = leaf
        .open_task("after", vec!["slot-a/after.txt".into()])
        .await
        .unwrap();
    assert_eq!(next.0, "leaf-a.t0002");
}

/// A ledger that lost its newest rows (a killed process's write-ahead log gone) reads back
/// whole — SQLite cannot tell — but is behind the bus: the leaf's next task number is
/// already on the bus. Detected on opening and rebuilt, so the leaf neither forgets its claim
/// nor numbers a new task over an old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_behind_the_bus_is_rebuilt_and_its_claim_resumed() {
    let h = common::herd().await;
    let dir = h.dir.path().join("leaf-a");
    let interrupted = {
        let leaf = h.leaf("leaf-a", "slot-a").await;
        common::task(&leaf, "done", "x\n").await.unwrap();
        let id = leaf
            .open_task("interrupted", vec!["slot-a/late.txt".into()])
            .await
            .unwrap();
        leaf.claim(&id).await.unwrap();
        leaf.shutdown().await;
        id
    };
    // The newest row lost: a valid database that no longer knows the claimed task.
    let conn = rusqlite::Connection::open(dir.join(herd_leaf::LEDGER_FILE)).unwrap();
    conn.execute("DELETE FROM tasks WHERE id = ?1", [&interrupted.0])
        .unwrap();
    drop(conn);
    let leaf = h.leaf("leaf-a", "slot-a").await;
    assert_eq!(leaf.stats().ledger_rebuilds, 1, "the loss was detected");
    let claims = leaf.resumable().unwrap();
    assert_eq!(claims.len(), 1, "the claim is known again");
    assert_eq!(claims[0].task(), &interrupted);
    assert_eq!(leaf.tasks_opened(), 2, "the next task gets a new number");
}
