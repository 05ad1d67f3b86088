//! F11: one leaf's disk fills up mid-run (its directory on a small tmpfs, filled to the last
//! byte). Its commit fails with a typed error naming the cause, nothing of it is pushed, no
//! temporary pack is left half-written, and once space is freed the same leaf commits again.
//! Mounting needs root (as `.ci/run` has); elsewhere the test says why it cannot run.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `mib` MiB mounted on `dir` for as long as it lives (lazily unmounted on drop:
/// the leaf's files may still be open).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u32) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` to the last byte; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 16 << 10];
    while f.write_all(&chunk).is_ok() {}
    let mut byte = [0u8; 1];
    while f.write_all(&byte).is_ok() {
        byte[0] = byte[0].wrapping_add(1);
    }
    filler
}

fn temp_packs(repo: &Path) -> Vec<String> {
    std::fs::read_dir(repo.join(".git/objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tmp"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_commit_cleanly_and_the_leaf_commits_again_once_freed() {
    let h = common::herd().await;
    let dir = h.dir.path().join("leaf-a");
    let _tmpfs = match Tmpfs::mount(&dir, 4) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED: F11 needs a tmpfs mount (root): {why}");
            return;
        }
    };
    let leaf = h.leaf("leaf-a", "slot-a").await;
    common::task(&leaf, "before", "x\n").await.unwrap();
    let trunk = h.hub.trunk_len();
    let id = leaf
        .open_task("full", vec!["slot-a/full.txt".into()])
        .await
        .unwrap();
    let claim = leaf.claim(&id).await.unwrap();

    let filler = fill(&dir);
    let err = leaf
        .commit(
            &claim,
            vec![("slot-a/full.txt".into(), vec![b'y'; 64 << 10])],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("No space left on device"),
        "a typed error naming the cause: {err}"
    );
    assert_eq!(h.hub.trunk_len(), trunk, "nothing of it was pushed");
    // Meanwhile another leaf lands 600 KiB: applying its broadcasts, the full leaf's flush
    // (over 512 KiB) fails — and must lose none of those objects.
    let other = h.leaf("leaf-b", "slot-b").await;
    for i in 0..3u8 {
        let body: String = (0..200 << 10)
            .map(|k: u32| (b'a' + ((k * 7 + u32::from(i) * 13) % 26) as u8) as char)
            .collect();
        common::task(&other, &format!("big{i}"), &body)
            .await
            .unwrap();
    }
    // Its own first commit's broadcast and the other's three, each handled once.
    common::handled(&leaf, 4).await;
    assert_eq!(leaf.stats().applied, 3, "{:?}", leaf.stats());
    assert_eq!(temp_packs(&dir.join("repo")), Vec::<String>::new());

    // Writable again: the same leaf carries on.
    std::fs::remove_file(filler).unwrap();
    let after = common::task(&leaf, "after", "z\n").await.unwrap();
    assert!(h.hub.trunk_contains(&after.oid));
    assert_eq!(
        h.hub.trunk_len(),
        trunk + 4,
        "the other's three and this one"
    );
    leaf.shutdown().await;
    assert_eq!(temp_packs(&dir.join("repo")), Vec::<String>::new());
    // Every trunk commit reached the full leaf's disk once it had room.
    let repo = git2::Repository::open(dir.join("repo")).unwrap();
    for oid in common::trunk(&h.hub) {
        let tree = repo.find_commit(oid).unwrap().tree().unwrap();
        tree.walk(git2::TreeWalkMode::PreOrder, |_, e| {
            e.to_object(&repo).unwrap();
            git2::TreeWalkResult::Ok
        })
        .unwrap();
    }
}

/// F11 without root: the ENOSPC fail point fails the task's write as a full disk would —
/// a typed error naming the cause, nothing pushed — until it is switched off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enospc_fail_point_fails_the_commit_like_a_full_disk_and_pushes_nothing() {
    let h = common::herd().await;
    let leaf = h.leaf("leaf-a", "slot-a").await;
    let trunk = h.hub.trunk_len();
    let id = leaf
        .open_task("full", vec!["slot-a/full.txt".into()])
        .await
        .unwrap();
    let claim = leaf.claim(&id).await.unwrap();
    leaf.fail_writes(true);
    let files = || vec![("slot-a/full.txt".into(), b"y\n".to_vec())];
    let err = leaf.commit(&claim, files()).await.unwrap_err();
    assert!(
        err.to_string().contains("No space left on device"),
        "a typed error naming the cause: {err}"
    );
    assert_eq!(h.hub.trunk_len(), trunk, "nothing of it was pushed");
    leaf.fail_writes(false);
    let landed = leaf.commit(&claim, files()).await.unwrap();
    leaf.close(claim).await.unwrap();
    assert!(h.hub.trunk_contains(&landed.oid));
    assert_eq!(h.hub.trunk_len(), trunk + 1);
}
