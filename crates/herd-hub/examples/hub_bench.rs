//! Hub benchmark: serialized push floor, push/fetch latency, and whether push latency grows
//! with history (2,000 sequential pushes: p50 of the last 100 vs the first 100).
//!
//! `cargo run --release -p herd-hub --example hub_bench -- [pushes] [repack_every]`
//! (defaults 2000 and the hub's default policy). No bus: this measures the git path alone.

use std::path::Path;
use std::time::{Duration, Instant};

use git2::{PushOptions, RemoteCallbacks, Repository, Signature};
use herd_hub::{Hub, HubConfig, RepackPolicy};

fn commit(repo: &Repository, i: usize) -> git2::Oid {
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    let path = format!("slot-0/f{}/{i}.txt", i % 50);
    let full = repo.workdir().unwrap().join(&path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(&full, format!("commit {i}\n").repeat(8)).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new(&path)).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("bench", "bench@herd").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "bench", &tree, &[&parent])
        .unwrap()
}

fn push(repo: &Repository) {
    let mut remote = repo.find_remote("origin").unwrap();
    let mut refused = None;
    {
        let mut cb = RemoteCallbacks::new();
        cb.push_update_reference(|_, s| {
            refused = s.map(str::to_string);
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        remote
            .push(&["refs/heads/main:refs/heads/main"], Some(&mut opts))
            .unwrap();
    }
    assert!(refused.is_none(), "push refused: {refused:?}");
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}

fn summary(samples: &[Duration]) -> (f64, f64) {
    let mut s = samples.to_vec();
    s.sort();
    (pct(&s, 0.5), pct(&s, 0.99))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pushes: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let repack = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .map_or(RepackPolicy::default(), |every| RepackPolicy { every });
    herd_hub::client::register().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(HubConfig {
        dir: dir.path().join("hub.git"),
        repack,
        ..Default::default()
    })
    .await
    .unwrap();
    let url = hub.url();
    let work = dir.path().to_path_buf();
    let (push_lat, commit_lat, fetch_lat, total) = tokio::task::spawn_blocking(move || {
        let a = git2::build::RepoBuilder::new()
            .clone(&url, &work.join("a"))
            .unwrap();
        let b = git2::build::RepoBuilder::new()
            .clone(&url, &work.join("b"))
            .unwrap();
        let (mut push_lat, mut commit_lat, mut fetch_lat) = (Vec::new(), Vec::new(), Vec::new());
        let started = Instant::now();
        for i in 0..pushes {
            let t = Instant::now();
            commit(&a, i);
            let c = t.elapsed();
            let t = Instant::now();
            push(&a);
            push_lat.push(t.elapsed());
            commit_lat.push(c + push_lat[i]);
            if i % 10 == 9 {
                let t = Instant::now();
                b.find_remote("origin")
                    .unwrap()
                    .fetch(&["+refs/heads/main:refs/remotes/origin/main"], None, None)
                    .unwrap();
                fetch_lat.push(t.elapsed());
            }
        }
        (push_lat, commit_lat, fetch_lat, started.elapsed())
    })
    .await
    .unwrap();
    let (push50, push99) = summary(&push_lat);
    let (fetch50, fetch99) = summary(&fetch_lat);
    let (first50, _) = summary(&push_lat[..100.min(pushes)]);
    let (last50, _) = summary(&push_lat[pushes.saturating_sub(100)..]);
    let serial: f64 = commit_lat.iter().map(Duration::as_secs_f64).sum();
    println!(
        "hub bench: {pushes} sequential pushes, repack every {} accepted pushes",
        repack.every
    );
    println!("  push  p50 / p99 ms:        {push50:.2} / {push99:.2}");
    println!(
        "  fetch p50 / p99 ms:        {fetch50:.2} / {fetch99:.2}  ({} fetches, every 10th push)",
        fetch_lat.len()
    );
    println!(
        "  serialized commits/s:      {:.1}  (local commit + push, back to back)",
        pushes as f64 / serial
    );
    println!(
        "  wall commits/s (incl. fetches): {:.1}",
        pushes as f64 / total.as_secs_f64()
    );
    println!(
        "  push p50 first 100 / last 100: {first50:.2} / {last50:.2} ms  (ratio {:.2})",
        last50 / first50
    );
    let stats = hub.stats();
    println!(
        "  hub: accepted {}, rejected {}, repacks {}, receive p50/p99 {} / {} µs",
        stats.pushes_accepted,
        stats.pushes_rejected,
        stats.repacks,
        stats.receive_p50_us,
        stats.receive_p99_us
    );
    hub.shutdown().await;
}
