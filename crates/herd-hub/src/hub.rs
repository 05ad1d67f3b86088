//! `Hub`: the bare repository, its HTTP server and the push pipeline.
//!
//! Pushes are serialized by one async lock held from parsing to broadcast: the in-process
//! receive-pack (on a blocking thread), the compare-and-swap of main, and then exactly one
//! `TipChanged` on the bus — published before the push is answered, so when a leaf's push
//! returns its broadcast is already in the stream, and broadcasts arrive in trunk order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{Oid, Repository};
use herd_bus::{Bus, TipChanged};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{HubError, RequestError};
use crate::receive_pack::{self, PushOutcome};
use crate::repack::{self, RepackPolicy};
use crate::repo;
use crate::stats::{HubStats, Stats};

/// Hub settings; `dir` is required, the rest has defaults.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// The bare repository directory (created if missing).
    pub dir: PathBuf,
    /// Listen address (default 127.0.0.1, a free port).
    pub bind: SocketAddr,
    /// Where to broadcast tip changes (`None`: no broadcasts).
    pub bus: Option<Bus>,
    /// Largest request body, wire or inflated bytes (default 8 MiB).
    pub body_limit: usize,
    /// Longest time to receive a request body (default 30 s).
    pub body_timeout: Duration,
    /// Repack policy.
    pub repack: RepackPolicy,
    /// The repository name in the URL (`http://host:port/<name>`), default `herd.git`.
    pub name: String,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            dir: PathBuf::new(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            bus: None,
            body_limit: 8 << 20,
            body_timeout: Duration::from_secs(30),
            repack: RepackPolicy::default(),
            name: "herd.git".into(),
        }
    }
}

/// State shared by the handlers.
pub(crate) struct Inner {
    pub(crate) config: HubConfig,
    pub(crate) repo: Mutex<Repository>,
    pub(crate) push_lock: tokio::sync::Mutex<()>,
    pub(crate) stats: Stats,
}

/// A running hub.
pub struct Hub {
    inner: Arc<Inner>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Hub {
    /// Opens or creates the repository and starts serving.
    pub async fn start(config: HubConfig) -> Result<Hub, HubError> {
        let repo = repo::open_or_init(&config.dir)?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| HubError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| HubError::Bind {
            addr: config.bind,
            source,
        })?;
        let inner = Arc::new(Inner {
            config,
            repo: Mutex::new(repo),
            push_lock: tokio::sync::Mutex::new(()),
            stats: Stats::default(),
        });
        let app = crate::routes::router(inner.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            // Small request/response exchanges: Nagle + delayed ACK would add ~40 ms each.
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Hub {
            inner,
            addr,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// The clone URL, `http://127.0.0.1:<port>/herd.git`.
    pub fn url(&self) -> String {
        format!("http://{}/{}", self.addr, self.inner.config.name)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        &self.inner.config.dir
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        self.inner.stats.snapshot()
    }

    /// Commits on main, seed included.
    pub fn trunk_len(&self) -> u64 {
        self.with_repo(repo::trunk_len).unwrap_or(0)
    }

    /// Is `oid` (hex) on main?
    pub fn trunk_contains(&self, oid: &str) -> bool {
        let Ok(oid) = Oid::from_str(oid) else {
            return false;
        };
        self.with_repo(|r| repo::trunk_contains(r, oid))
            .unwrap_or(false)
    }

    /// The tip of main.
    pub fn tip(&self) -> Option<String> {
        self.with_repo(repo::tip).ok().map(|o| o.to_string())
    }

    fn with_repo<T>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, git2::Error>,
    ) -> Result<T, git2::Error> {
        let repo = self
            .inner
            .repo
            .lock()
            .map_err(|_| git2::Error::from_str("hub repository lock poisoned"))?;
        f(&repo)
    }

    /// Graceful stop: in-flight requests finish, then the listener closes.
    pub async fn shutdown(mut self) {
        self.stop_server().await;
    }

    async fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the HTTP layer passes to a push.
pub(crate) struct PushContext {
    pub(crate) slot: Option<String>,
    pub(crate) traceparent: Option<String>,
}

impl Inner {
    /// Runs one push end to end; returns the report-status body and the outcome.
    pub(crate) async fn push(
        self: &Arc<Self>,
        body: bytes::Bytes,
        ctx: PushContext,
    ) -> Result<(Vec<u8>, PushOutcome), RequestError> {
        let _serial = self.push_lock.lock().await;
        let started = Instant::now();
        let me = self.clone();
        let slot = ctx.slot.clone();
        let (outcome, sideband) = tokio::task::spawn_blocking(move || {
            let req = receive_pack::parse(&body)?;
            let repo = me
                .repo
                .lock()
                .map_err(|_| RequestError::internal("hub repository lock poisoned"))?;
            let outcome = receive_pack::apply(&repo, &me.config.dir, &req, slot.as_deref())?;
            Ok::<_, RequestError>((outcome, req.sideband()))
        })
        .await
        .map_err(|e| RequestError::internal(format!("receive task failed: {e}")))??;
        match (&outcome.accepted, outcome.reject_reason()) {
            (Some((prev, new)), _) => {
                self.stats.accepted(started.elapsed());
                let seq = self.stats.accepted_count();
                self.broadcast(*prev, *new, seq, &ctx).await;
                self.maybe_repack(seq).await;
            }
            (None, reason) => self
                .stats
                .rejected(reason.unwrap_or("rejected"), started.elapsed()),
        }
        Ok((outcome.report(sideband), outcome))
    }

    async fn broadcast(&self, prev: Oid, new: Oid, seq: u64, ctx: &PushContext) {
        let Some(bus) = &self.config.bus else { return };
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let tip = TipChanged {
            oid: new.to_string(),
            prev: prev.to_string(),
            seq,
            slot: ctx.slot.clone(),
            at,
        };
        if let Err(e) = bus.publish_tip(&tip, ctx.traceparent.as_deref()).await {
            self.stats.publish_failed();
            tracing::warn!(error = %e, oid = %new, "tip broadcast failed");
        }
    }

    async fn maybe_repack(self: &Arc<Self>, accepted: u64) {
        if !self.config.repack.due(accepted) {
            return;
        }
        let me = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            repack::repack(&me.config.dir)?;
            // Reopen so libgit2 drops its handles on the packs that were merged away.
            let fresh = Repository::open_bare(&me.config.dir)?;
            if let Ok(mut repo) = me.repo.lock() {
                *repo = fresh;
            }
            Ok::<_, HubError>(())
        })
        .await;
        match result {
            Ok(Ok(())) => self.stats.repacked(),
            Ok(Err(e)) => tracing::warn!(error = %e, "repack failed"),
            Err(e) => tracing::warn!(error = %e, "repack task failed"),
        }
    }
}
