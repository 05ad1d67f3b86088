//! A leaf's packs stay few: every flush writes one pack, the newest are merged geometrically
//! and the repository reopened, so neither the pack files nor the files libgit2 holds open grow
//! with the trunk — and every commit stays readable.

mod common;

use std::path::Path;

/// `.pack` files in `repo`'s pack directory.
fn packs(repo: &Path) -> usize {
    std::fs::read_dir(repo.join(".git/objects/pack"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pack")
        })
        .count()
}

/// Files this process holds open under `dir` that were removed (what libgit2 keeps of a merged
/// pack while the repository that read it lives).
fn removed_but_open(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.to_string_lossy().to_string())
        .filter(|t| t.starts_with(&prefix) && t.ends_with("(deleted)"))
        .collect()
}

/// Incompressible-ish text of `len` bytes, different per `seed`.
fn body(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if i % 64 == 63 {
                '\n'
            } else {
                (b'a' + (x >> 59) as u8 % 26) as char
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leafs_packs_are_merged_and_released_and_every_commit_stays_readable() {
    let h = common::herd().await;
    let writer = h.leaf("leaf-a", "slot-a").await;
    let reader = h.leaf("leaf-b", "slot-b").await;
    // 40 commits of 200 KiB: a flush (512 KiB) every few commits in both leaves — the writer's
    // own objects, the reader's applied payloads.
    const N: u64 = 40;
    for i in 0..N {
        common::task(&writer, &format!("t{i}"), &body(i, 200 << 10))
            .await
            .unwrap();
    }
    common::handled(&reader, N).await;
    let (a, b) = (h.dir.path().join("leaf-a"), h.dir.path().join("leaf-b"));
    // While the leaves run: no merged pack is still held open.
    common::eventually("merged packs let go", || {
        removed_but_open(&a).is_empty() && removed_but_open(&b).is_empty()
    })
    .await;
    writer.shutdown().await;
    reader.shutdown().await;
    for dir in [&a, &b] {
        let repo = dir.join("repo");
        // Without merging: one pack per flush, about N * 200 KiB / 512 KiB = 16, plus the clone's.
        let n = packs(&repo);
        assert!(n <= 6, "{}: {n} packs", repo.display());
        // Every commit on the trunk is in the leaf's repository, with its tree and blobs.
        let git = git2::Repository::open(&repo).unwrap();
        for oid in common::trunk(&h.hub) {
            let commit = git.find_commit(oid).unwrap();
            commit
                .tree()
                .unwrap()
                .walk(git2::TreeWalkMode::PreOrder, |_, e| {
                    e.to_object(&git).unwrap();
                    git2::TreeWalkResult::Ok
                })
                .unwrap();
        }
    }
}
