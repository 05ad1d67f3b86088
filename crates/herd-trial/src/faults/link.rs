//! F10: the links between the leaves and the hub or bus, as a TCP proxy on loopback that the
//! fault driver steers. With link faults scheduled, every leaf reaches the hub and the bus
//! through one [`Link`] each (the trial's own connections do not), so a fault hits every leaf
//! link at once and nothing else.
//!
//! Modes: pass (bytes forwarded as they come); delay (each chunk held a seeded
//! `base ± jitter` before it is forwarded, in order); stall (a blackhole as TCP sees it: nothing
//! crosses, new connections wait unconnected, and once healed the held bytes flow on — what a
//! short loss of packets looks like to an application, since TCP retransmits); and refuse
//! (a link that is down: every open connection closed at once, new ones closed on arrival).

use std::net::SocketAddr;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a link does to the bytes crossing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    /// Forward as they come.
    Pass,
    /// Hold each chunk `base` plus a seeded draw in `[0, jitter]`.
    Delay {
        /// Least delay.
        base: Duration,
        /// Most extra delay.
        jitter: Duration,
    },
    /// Forward nothing; connect nothing new (until the mode changes).
    Stall,
    /// Close every new connection at once, and any open one that sends (a link that is down:
    /// connections reset). Pair with [`Link::reset`] for the idle ones.
    Refuse,
}

/// One proxied link: leaves connect to [`Link::addr`], the link connects on to its upstream.
pub struct Link {
    addr: SocketAddr,
    mode: watch::Sender<LinkMode>,
    resets: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Listens on a free loopback port and forwards every connection to `upstream`. `seed`
    /// drives the delays' jitter (each connection draws from its own stream).
    pub async fn start(upstream: SocketAddr, seed: u64) -> std::io::Result<Link> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(LinkMode::Pass);
        let (resets, _) = watch::channel(0u64);
        let (m, r) = (mode.clone(), resets.clone());
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            while let Ok((client, _)) = listener.accept().await {
                n += 1;
                let (mode, resets) = (m.subscribe(), r.subscribe());
                tokio::spawn(serve(client, upstream, mode, resets, seed ^ n));
            }
        });
        Ok(Link {
            addr,
            mode,
            resets,
            task,
        })
    }

    /// Where leaves connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the mode for every connection, open or new.
    pub fn set(&self, mode: LinkMode) {
        self.mode.send_replace(mode);
    }

    /// Closes every open connection now.
    pub fn reset(&self) {
        self.resets.send_modify(|n| *n += 1);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits while the link stalls; false when the link itself is gone.
async fn unstalled(mode: &mut watch::Receiver<LinkMode>) -> bool {
    mode.wait_for(|m| *m != LinkMode::Stall).await.is_ok()
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<LinkMode>,
    mut resets: watch::Receiver<u64>,
    seed: u64,
) {
    resets.mark_unchanged();
    if !unstalled(&mut mode).await || *mode.borrow() == LinkMode::Refuse {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, mode.clone(), seed);
    let down = pump(sr, cw, mode, seed.rotate_left(17));
    // Either direction ending, or a reset, ends the connection (both halves dropped: closed).
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = resets.changed() => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<LinkMode>,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        loop {
            let now = *mode.borrow_and_update();
            match now {
                LinkMode::Pass => break,
                LinkMode::Refuse => return,
                LinkMode::Stall => {
                    if !unstalled(&mut mode).await {
                        return;
                    }
                }
                LinkMode::Delay { base, jitter } => {
                    let extra = rng.random_range(0..=jitter.as_micros() as u64);
                    tokio::time::sleep(base + Duration::from_micros(extra)).await;
                    break;
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Connects through `addr`, sends `hello` and waits for the first byte back: true when that
/// took at most `within` (a link that stalls, or delays past it, answers false).
pub async fn probe(addr: SocketAddr, hello: &[u8], within: Duration) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(hello).await.ok()?;
        let mut b = [0u8; 1];
        (s.read(&mut b).await.ok()? == 1).then_some(())
    };
    matches!(tokio::time::timeout(within, attempt).await, Ok(Some(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server: answers every chunk with itself.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn passes_stalls_heals_and_resets() {
        let link = Link::start(echo().await, 7).await.unwrap();
        let quick = Duration::from_millis(500);
        assert!(probe(link.addr(), b"x", quick).await, "pass");
        link.set(LinkMode::Stall);
        assert!(
            !probe(link.addr(), b"x", Duration::from_millis(200)).await,
            "stall"
        );
        // A connection opened during the stall is served once it heals.
        let waiting = tokio::spawn(probe(link.addr(), b"y", Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        link.set(LinkMode::Pass);
        assert!(
            waiting.await.unwrap(),
            "held connection served after the heal"
        );
        // Reset closes open connections: the reader sees the end.
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        s.write_all(b"z").await.unwrap();
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1);
        link.set(LinkMode::Refuse);
        link.reset();
        let closed = tokio::time::timeout(quick, s.read(&mut b)).await.unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        assert!(!probe(link.addr(), b"x", quick).await, "refused");
        link.set(LinkMode::Pass);
        assert!(probe(link.addr(), b"x", quick).await, "back");
    }

    #[tokio::test]
    async fn delay_holds_each_chunk() {
        let link = Link::start(echo().await, 7).await.unwrap();
        link.set(LinkMode::Delay {
            base: Duration::from_millis(150),
            jitter: Duration::from_millis(10),
        });
        // Request and answer each held ≥ 150 ms: no answer within 250 ms.
        assert!(!probe(link.addr(), b"x", Duration::from_millis(250)).await);
        assert!(probe(link.addr(), b"x", Duration::from_secs(2)).await);
    }
}
