//! A push whose reply is lost: the hub lands it, the leaf hears nothing back. While the hub
//! stays unreachable the leaf must call the outcome unknown (never a failure it could retry as
//! new work) and name the commit it pushed, so the history checker can find it on the trunk;
//! once the hub answers again (race mode) it settles the outcome from the trunk — landed, once.
//!
//! The loss is real: a TCP proxy between leaf and hub forwards every request and, once armed,
//! swallows the hub's answers and closes the leaf's side.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use herd_leaf::{Leaf, LeafConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts the proxy to `hub`; returns its address and the switch that swallows answers.
async fn proxy(hub: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let swallow = Arc::new(AtomicBool::new(false));
    let armed = swallow.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(hub).await.unwrap();
            let armed = armed.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut uw).await;
                });
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match ur.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if armed.load(Ordering::SeqCst) {
                        // The answer is lost: the leaf sees its connection close.
                        let _ = cw.shutdown().await;
                        return;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, swallow)
}

/// A herd, and a leaf reaching its hub through the proxy (settling unknown outcomes for up to
/// `resolve_wait`) with one task claimed: (herd, the proxy's switch, leaf, path, claim).
async fn behind_proxy(
    resolve_wait: std::time::Duration,
) -> (
    common::Herd,
    Arc<AtomicBool>,
    Leaf,
    String,
    herd_leaf::Claim,
) {
    let herd = common::herd().await;
    let (addr, swallow) = proxy(herd.hub.addr()).await;
    let url = herd
        .hub
        .url()
        .replace(&herd.hub.addr().to_string(), &addr.to_string());
    let leaf = Leaf::open(LeafConfig {
        bus: Some(herd.bus.clone()),
        resolve_wait,
        ..LeafConfig::new("leaf-0", "slot-0", herd.dir.path().join("leaf-0"), &url)
    })
    .await
    .unwrap();
    let path = "slot-0/a.txt".to_string();
    let task = leaf.open_task("a", vec![path.clone()]).await.unwrap();
    let claim = leaf.claim(&task).await.unwrap();
    (herd, swallow, leaf, path, claim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_an_unknown_outcome_naming_the_commit_that_landed() {
    // The hub stays unreachable (every answer swallowed): give up settling quickly.
    let (herd, swallow, leaf, path, claim) =
        behind_proxy(std::time::Duration::from_millis(300)).await;

    swallow.store(true, Ordering::SeqCst);
    let err = leaf
        .commit(&claim, vec![(path, b"a\n".to_vec())])
        .await
        .expect_err("the reply was swallowed");
    assert!(err.outcome_unknown(), "{err}");
    let pushed = err
        .pushed()
        .expect("an unknown outcome names its commit")
        .to_string();
    // The hub landed it: the commit the leaf named is the trunk's tip.
    common::eventually("the pushed commit on the trunk", || {
        common::trunk(&herd.hub)
            .last()
            .is_some_and(|tip| tip.to_string() == pushed)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_settled_from_the_trunk_once_the_hub_answers_again() {
    let (herd, swallow, leaf, path, claim) = behind_proxy(std::time::Duration::from_secs(10)).await;

    swallow.store(true, Ordering::SeqCst);
    let heal = {
        let swallow = swallow.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            swallow.store(false, Ordering::SeqCst);
        })
    };
    let landed = leaf
        .commit(&claim, vec![(path, b"a\n".to_vec())])
        .await
        .expect("settled once the hub answers");
    heal.await.unwrap();
    let trunk = common::trunk(&herd.hub);
    assert_eq!(trunk.len(), 1, "landed exactly once");
    assert_eq!(trunk[0].to_string(), landed.oid);
    assert_eq!(leaf.stats().unknown_settled, 1);
}

/// A proxy to `hub` that cuts every push (closes the connection instead of forwarding a
/// `git-receive-pack` POST, on any request of a kept-alive connection) and forwards everything
/// else; counts the pushes it cut.
async fn cutting_pushes(hub: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicU32::new(0));
    let counter = cut.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let upstream = TcpStream::connect(hub).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                let answers = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut ur, &mut cw).await;
                });
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let head = String::from_utf8_lossy(&buf[..n.min(512)]).to_string();
                    if head.starts_with("POST") && head.contains("git-receive-pack") {
                        counter.fetch_add(1, Ordering::SeqCst);
                        break; // the push is never forwarded; the connection closes
                    }
                    if uw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                answers.abort();
            });
        }
    });
    (addr, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_never_answers_pushes_is_not_hammered_forever() {
    let herd = common::herd().await;
    let (addr, cut) = cutting_pushes(herd.hub.addr()).await;
    let url = herd
        .hub
        .url()
        .replace(&herd.hub.addr().to_string(), &addr.to_string());
    let retry = herd_leaf::RetryPolicy {
        max_attempts: 3,
        ..Default::default()
    };
    let leaf = Leaf::open(LeafConfig {
        bus: Some(herd.bus.clone()),
        retry,
        ..LeafConfig::new("leaf-0", "slot-0", herd.dir.path().join("leaf-0"), &url)
    })
    .await
    .unwrap();
    let task = leaf
        .open_task("a", vec!["slot-0/a.txt".into()])
        .await
        .unwrap();
    let claim = leaf.claim(&task).await.unwrap();
    // Bounded: without the bound this would push forever (the test fails at the timeout).
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        leaf.commit(&claim, vec![("slot-0/a.txt".into(), b"a\n".to_vec())]),
    )
    .await
    .expect("the leaf gives up within its retry budget")
    .expect_err("every push is cut");
    assert!(err.outcome_unknown(), "{err}");
    // The first push, then one more after each of the three settles: none landed. (The
    // transport sends a request once more when a kept-alive connection closed before any
    // answer, so each attempt is cut once or twice.)
    assert_eq!(leaf.stats().unknown_settled, 3);
    let cut = cut.load(Ordering::SeqCst);
    assert!((4..=8).contains(&cut), "{cut} pushes cut");
    assert!(common::trunk(&herd.hub).is_empty());
}
