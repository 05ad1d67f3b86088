//! Shared set-up for hub tests: a real nats-server, a bus, a hub in a temp dir, and git2 client
//! helpers that go through herd-hub's own HTTP transport.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;

use git2::{Oid, PushOptions, RemoteCallbacks, Repository, Signature};
use herd_bus::{Bus, NatsServer};
use herd_hub::{Hub, HubConfig};

pub struct Setup {
    pub server: NatsServer,
    pub bus: Bus,
    pub hub: Hub,
    pub dir: tempfile::TempDir,
}

pub async fn hub() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    hub_in(dir, HubConfig::default()).await
}

pub async fn hub_in(dir: tempfile::TempDir, config: HubConfig) -> Setup {
    herd_hub::client::register().unwrap();
    let server = NatsServer::start().unwrap();
    let bus = Bus::connect(server.url()).await.unwrap();
    let hub = Hub::start(HubConfig {
        dir: dir.path().join("hub.git"),
        bus: Some(bus.clone()),
        ..config
    })
    .await
    .unwrap();
    Setup {
        server,
        bus,
        hub,
        dir,
    }
}

pub fn clone(url: &str, dir: &Path) -> Repository {
    herd_hub::client::register().unwrap();
    git2::build::RepoBuilder::new().clone(url, dir).unwrap()
}

/// Commits `path` = `content` on top of HEAD (main).
pub fn commit_file(repo: &Repository, path: &str, content: &str) -> Oid {
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    let mut index = repo.index().unwrap();
    let full = repo.workdir().unwrap().join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(&full, content).unwrap();
    index.add_path(Path::new(path)).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("tester", "t@herd").unwrap();
    repo.commit(
        Some("HEAD"),
        &sig,
        &sig,
        &format!("write {path}"),
        &tree,
        &[&parent],
    )
    .unwrap()
}

/// Pushes main; `Err(reason)` when the hub refused the ref (checked through the callback,
/// since `Remote::push` returns Ok for a refused ref).
pub fn push(repo: &Repository) -> Result<(), String> {
    push_with(repo, &[])
}

pub fn push_with(repo: &Repository, headers: &[(&str, &str)]) -> Result<(), String> {
    let mut remote = repo.find_remote("origin").unwrap();
    let mut refused = None;
    let result = {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.push_update_reference(|_, status| {
            refused = status.map(str::to_string);
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(callbacks);
        herd_hub::client::with_headers(headers, || {
            remote.push(&["refs/heads/main:refs/heads/main"], Some(&mut opts))
        })
    };
    match (result, refused) {
        (Err(e), _) => Err(e.message().to_string()),
        (Ok(()), Some(reason)) => Err(reason),
        (Ok(()), None) => Ok(()),
    }
}

/// Fetches main into refs/remotes/origin/main and returns its oid.
pub fn fetch(repo: &Repository) -> Oid {
    let mut remote = repo.find_remote("origin").unwrap();
    remote
        .fetch(&["+refs/heads/main:refs/remotes/origin/main"], None, None)
        .unwrap();
    repo.refname_to_id("refs/remotes/origin/main").unwrap()
}

/// Replays HEAD's commit onto origin/main (one local commit ahead) and moves main there.
pub fn rebase_onto_origin(repo: &Repository) {
    let local = repo.head().unwrap().peel_to_commit().unwrap();
    let onto = repo
        .find_commit(repo.refname_to_id("refs/remotes/origin/main").unwrap())
        .unwrap();
    let mut index = repo.cherrypick_commit(&local, &onto, 0, None).unwrap();
    assert!(!index.has_conflicts(), "test commits never conflict");
    let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
    let sig = local.author();
    let oid = repo
        .commit(None, &sig, &sig, local.message().unwrap(), &tree, &[&onto])
        .unwrap();
    repo.reference("refs/heads/main", oid, true, "rebase")
        .unwrap();
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .unwrap();
}

/// Raw HTTP/1.1 request; returns (status, body).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (status, _, body) = http_full(addr, method, path, headers, body);
    (status, body)
}

/// Raw HTTP/1.1 request; returns (status, response head, body).
pub fn http_full(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut resp = Vec::new();
    stream.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_default();
    (status, head, body)
}

/// Every file under the repository (paths and sizes), to prove a refused request changed nothing.
pub fn snapshot(dir: &Path) -> Vec<(String, u64)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, u64)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().display().to_string(),
                    e.metadata().unwrap().len(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A receive-pack request body: `<old> <new> refs/heads/main` plus a pack of `new`'s commit.
pub fn receive_pack_body(repo: &Repository, old: &str, new: &str) -> Vec<u8> {
    receive_pack_body_to(repo, old, new, "refs/heads/main")
}

/// The same, naming `refname` (e.g. the merge queue's `refs/for/main`).
pub fn receive_pack_body_to(repo: &Repository, old: &str, new: &str, refname: &str) -> Vec<u8> {
    let mut builder = repo.packbuilder().unwrap();
    builder.insert_commit(Oid::from_str(new).unwrap()).unwrap();
    let mut pack = git2::Buf::new();
    builder.write_buf(&mut pack).unwrap();
    let mut body = Vec::new();
    herd_hub::pkt_line::write(
        &mut body,
        format!("{old} {new} {refname}\0report-status\n").as_bytes(),
    );
    herd_hub::pkt_line::flush(&mut body);
    body.extend_from_slice(&pack);
    body
}

/// A clone of the hub with one new commit writing `path`: the commit and a receive-pack body
/// pushing it onto the current tip, to send by hand.
pub async fn one_commit_push(s: &Setup, path: &'static str) -> (Oid, Vec<u8>) {
    let (url, work) = (
        s.hub.url(),
        s.dir.path().join(format!("raw-{}", path.len())),
    );
    let seed = s.hub.tip().unwrap();
    tokio::task::spawn_blocking(move || {
        let a = clone(&url, &work);
        let oid = commit_file(&a, path, "a\n");
        (oid, receive_pack_body(&a, &seed, &oid.to_string()))
    })
    .await
    .unwrap()
}

/// Sends a receive-pack request, lets the hub read it, and hangs up without the answer.
pub async fn push_and_hang_up(addr: std::net::SocketAddr, body: Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /herd.git/git-receive-pack HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-git-receive-pack-request\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(stream);
    })
    .await
    .unwrap();
}

/// A hub started again on `dir` with `bus`.
pub async fn restart(dir: &Path, bus: &Bus) -> Hub {
    Hub::start(HubConfig {
        dir: dir.to_path_buf(),
        bus: Some(bus.clone()),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The stock `git` CLI in `dir` (identity set, prompts off); success and stdout + stderr.
pub fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=cli", "-c", "user.email=cli@herd"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .output()
        .expect("git on PATH");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
