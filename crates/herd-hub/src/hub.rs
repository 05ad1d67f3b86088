//! `Hub`: the bare repository, its HTTP server and the push pipeline.
//!
//! A push goes: parse ([`crate::receive_pack`]) → the command rules, including race mode's
//! "old must be the tip", before anything is read from the pack ([`crate::policy`]) → the
//! integration the hub was built with ([`HubMode`]: [`crate::race`] or [`crate::queue`]), which
//! on the store thread ([`crate::store`]) stages the pack in memory, applies the update rules,
//! writes the accepted objects, moves main, and publishes one `TipChanged` per landed commit
//! (with its objects as a payload under the size cap) before the push is answered.
//!
//! Fetches and advertisements read through their own handles ([`ReadPool`]) and never wait on
//! the push path; repacks run in a background task, never under the push path's lock.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{Oid, Repository};
use herd_bus::{Bus, TipChanged, TipOut};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{HubError, RequestError};
use crate::mode::{HubMode, Landed};
use crate::payload;
use crate::policy;
use crate::read_pool::ReadPool;
use crate::receive_pack::{self, PushOutcome};
use crate::refusal::Refusal;
use crate::repack::{self, RepackPolicy};
use crate::repo;
use crate::stats::{HubStats, Stats};
use crate::store::Store;

/// Hub settings. `HubConfig::new(dir)` gives the defaults.
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
    /// How accepted pushes land on the trunk (default race).
    pub mode: HubMode,
    /// Largest payload pack a broadcast carries, bytes (default 256 KiB; 0 = no payloads).
    pub payload_max_bytes: usize,
    /// What one pushed pack may hold (objects, inflated bytes), checked before inflating.
    pub push_limits: crate::pack::Limits,
    /// Who may push, into which slot (default open: the `x-herd-slot` header is trusted).
    pub access: crate::auth::Access,
    /// Fence on claims ([`crate::fence`]): every pushed commit must name its task's live claim
    /// in a `Herd-Claim` trailer (needs `bus`). Default off.
    pub fence_claims: bool,
    /// Connection limits: header-read/idle and write-stall timeouts.
    pub conn_limits: crate::serve::ConnLimits,
    /// Git requests served at once; one more gets `503` with `Retry-After` at once, never a
    /// wait (default 512: a body may be up to `body_limit`, so this bounds their memory).
    pub max_in_flight: usize,
    /// Longest time to compute one upload-pack (fetch) response (default 120 s; then `503`).
    pub upload_time_limit: Duration,
    /// Fail points (race mode) for restart-mid-push faults ([`crate::failpoint`]); `None` in
    /// normal use.
    pub fail_points: Option<Arc<crate::failpoint::FailPoints>>,
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
            mode: HubMode::default(),
            payload_max_bytes: payload::DEFAULT_MAX_BYTES,
            push_limits: crate::pack::Limits::default(),
            access: crate::auth::Access::default(),
            fence_claims: false,
            conn_limits: crate::serve::ConnLimits::default(),
            max_in_flight: 512,
            upload_time_limit: Duration::from_secs(120),
            fail_points: None,
        }
    }
}

/// How landed pushes reach the trunk.
pub(crate) enum Integrator {
    Race {
        serial: tokio::sync::Mutex<()>,
    },
    Queue {
        tx: mpsc::UnboundedSender<crate::queue::QueueItem>,
    },
}

/// State shared by the handlers.
pub(crate) struct Inner {
    pub(crate) config: HubConfig,
    /// The push path: the one writer of the repository.
    pub(crate) store: Store,
    /// Handles for fetches and advertisements.
    pub(crate) reads: ReadPool,
    pub(crate) stats: Stats,
    /// The trunk as the integrator last moved it.
    trunk: Mutex<Trunk>,
    integrator: Integrator,
    repack_due: Notify,
    /// Held while the merge queue lands a group; [`Hub::hold_queue`] holds it from outside.
    pub(crate) queue_gate: Arc<tokio::sync::Mutex<()>>,
    /// The highest trunk position broadcast in order ([`crate::tips`]).
    pub(crate) published: crate::tips::Published,
    /// Wakes the background catch-up after a failed publish.
    pub(crate) repair_due: Notify,
    /// Epochs accepted per task ([`crate::fence`]).
    pub(crate) fences: crate::fence::Fences,
    /// The runtime, for the store thread's claim reads.
    runtime: tokio::runtime::Handle,
}

/// How old a claim read on a push's arrival may be when the push reaches the store.
const HINT_FRESH: Duration = Duration::from_secs(1);

/// Holds the store thread ([`Hub::hold_store`]) until dropped.
pub struct StoreHold {
    _release: std::sync::mpsc::Sender<()>,
}

/// A running hub.
pub struct Hub {
    inner: Arc<Inner>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    swept: crate::leftovers::Swept,
}

impl Hub {
    /// Opens or creates the repository and starts serving.
    pub async fn start(config: HubConfig) -> Result<Hub, HubError> {
        crate::libgit2_opts::tune();
        let swept = crate::leftovers::sweep(&config.dir).map_err(|e| HubError::Repo {
            path: config.dir.clone(),
            source: git2::Error::from_str(&format!("removing a dead hub's leftovers: {e}")),
        })?;
        if swept.any() {
            tracing::warn!(?swept, dir = %config.dir.display(), "removed a dead hub's leftovers");
        }
        let repo = repo::open_or_init(&config.dir)?;
        let trunk = Trunk::read(&repo).map_err(HubError::Git)?;
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
        let (integrator, queue_rx) = match config.mode {
            HubMode::Race => (
                Integrator::Race {
                    serial: tokio::sync::Mutex::new(()),
                },
                None,
            ),
            HubMode::Queue => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Integrator::Queue { tx }, Some(rx))
            }
        };
        drop(repo);
        let store = Store::start(config.dir.clone())?;
        let inner = Arc::new(Inner {
            reads: ReadPool::new(config.dir.clone()),
            config,
            store,
            stats: Stats::default(),
            trunk: Mutex::new(trunk),
            integrator,
            repack_due: Notify::new(),
            queue_gate: Arc::new(tokio::sync::Mutex::new(())),
            published: crate::tips::Published::default(),
            repair_due: Notify::new(),
            fences: crate::fence::Fences::default(),
            runtime: tokio::runtime::Handle::current(),
        });
        // Before serving: re-publish what a crash left unbroadcast.
        crate::tips::resume(&inner).await;
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(crate::tips::repairer(inner.clone())));
        if let Some(rx) = queue_rx {
            tasks.push(tokio::spawn(crate::queue::run(inner.clone(), rx)));
        }
        tasks.push(tokio::spawn(repacker(inner.clone())));
        let app = crate::routes::router(inner.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = inner.config.conn_limits;
        tasks.push(tokio::spawn(crate::serve::serve(
            listener, app, limits, stopped,
        )));
        Ok(Hub {
            inner,
            addr,
            stop: Some(stop),
            tasks,
            swept,
        })
    }

    /// The clone URL, `http://127.0.0.1:<port>/herd.git`.
    pub fn url(&self) -> String {
        format!("http://{}/{}", self.addr, self.inner.config.name)
    }

    /// What a dead hub left in the directory and this one removed at start.
    pub fn swept(&self) -> &crate::leftovers::Swept {
        &self.swept
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        &self.inner.config.dir
    }

    /// How this hub integrates pushes.
    pub fn mode(&self) -> HubMode {
        self.inner.config.mode
    }

    /// Holds the merge queue: pushes wait (accepted into the queue, not yet landed) until the
    /// guard is dropped, then land as one group. For tests and fault injection.
    pub async fn hold_queue(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.inner.queue_gate.clone().lock_owned().await
    }

    /// Blocks the store thread until the guard is dropped: pushes are taken in and wait,
    /// nothing lands. For tests and fault injection.
    pub async fn hold_store(&self) -> StoreHold {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            let _ = store
                .run(move |_| {
                    let _ = started.send(());
                    let _ = released.recv();
                })
                .await;
        });
        let _ = running.await;
        StoreHold { _release: release }
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        self.inner.stats.snapshot()
    }

    /// Commits on main, seed included.
    pub fn trunk_len(&self) -> u64 {
        self.inner.trunk_len()
    }

    /// Is `oid` (hex) on main?
    pub fn trunk_contains(&self, oid: &str) -> bool {
        Oid::from_str(oid).is_ok_and(|oid| self.inner.on_trunk(oid))
    }

    /// The tip of main.
    pub fn tip(&self) -> Option<String> {
        Some(self.inner.tip().to_string())
    }

    /// Stops the hub as a crash would: every connection cut at once (requests unanswered),
    /// the background tasks aborted, and the store thread stopped after the job it is running
    /// — so nothing more is written. The directory is left as it is; [`Hub::restart`] starts
    /// the hub again on it and on the same port.
    pub async fn crash(&mut self) {
        self.stop.take();
        // The server task owns the connections: aborting it drops (aborts) every one.
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
        self.inner.store.kill().await;
    }

    /// Starts the hub again on its directory and port (after [`Hub::crash`]): the start
    /// sweeps what the crash left and re-publishes tips it left unbroadcast. The counters
    /// carry on from the previous run.
    pub async fn restart(&mut self) -> Result<(), HubError> {
        let mut config = self.inner.config.clone();
        config.bind = self.addr;
        let before = self.inner.stats.snapshot();
        let next = Hub::start(config).await?;
        next.inner.stats.absorb(&before);
        *self = next;
        Ok(())
    }

    /// Graceful stop: in-flight requests finish, then the listener closes and the queue and
    /// repack tasks end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The server task ends first; it owned the last router clone of `inner`.
        let mut tasks = std::mem::take(&mut self.tasks);
        if let Some(server) = tasks.pop() {
            let _ = server.await;
        }
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Repacks when the landed-commit count crosses the policy's period, off the push path.
/// Aborted by [`Hub::shutdown`] (or when the hub is dropped).
async fn repacker(inner: Arc<Inner>) {
    loop {
        inner.repack_due.notified().await;
        let dir = inner.config.dir.clone();
        let result = tokio::task::spawn_blocking(move || repack::repack(&dir)).await;
        match result {
            Ok(Ok(())) => {
                // Fresh handles: the packs the old ones mapped were merged away.
                if let Err(e) = inner.store.reopen().await {
                    tracing::warn!(error = %e, "reopening the store after a repack");
                }
                inner.reads.invalidate();
                inner.stats.repacked();
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "repack failed"),
            Err(e) => tracing::warn!(error = %e, "repack task failed"),
        }
    }
}

/// What the HTTP layer passes to a push.
#[derive(Clone, Debug, Default)]
pub(crate) struct PushContext {
    pub(crate) slot: Option<String>,
    pub(crate) traceparent: Option<String>,
    /// The claim the pusher named (`x-herd-claim`) and its live epoch, read from the bus when
    /// the push arrived — so fencing does not wait on the bus on the store thread.
    pub(crate) claim: Option<crate::fence::ClaimHint>,
    /// The request's `max_in_flight` slot, held (never read) until the push task ends.
    #[allow(dead_code)]
    pub(crate) in_flight: Option<crate::routes::InFlight>,
}

/// The trunk in memory: its commits by position (the seed is 1), so "is this commit on the
/// trunk" is a lookup rather than a history walk (proving a commit is *not* an ancestor walks
/// the whole history). ~60 bytes per commit.
struct Trunk {
    tip: Oid,
    index: std::collections::HashMap<Oid, u64>,
    /// The commits in order (`order[0]` is the seed, position 1).
    order: Vec<Oid>,
}

impl Trunk {
    fn read(repo: &Repository) -> Result<Trunk, git2::Error> {
        let commits = repo::trunk_commits(repo)?;
        let tip = *commits
            .last()
            .ok_or_else(|| git2::Error::from_str("empty trunk"))?;
        let index = commits
            .iter()
            .enumerate()
            .map(|(i, oid)| (*oid, i as u64 + 1))
            .collect();
        Ok(Trunk {
            tip,
            index,
            order: commits,
        })
    }

    fn len(&self) -> u64 {
        self.index.len() as u64
    }
}

/// A broadcast ready to publish, and whether its payload was dropped for size.
pub(crate) struct Broadcast {
    pub(crate) out: TipOut,
    pub(crate) over_cap: bool,
}

impl Broadcast {
    /// Its trunk position.
    pub(crate) fn seq(&self) -> u64 {
        self.out.tip.seq
    }
}

/// Held while nothing integrates ([`Inner::integration_gate`]).
pub(crate) struct IntegrationGate<'a> {
    _serial: Option<tokio::sync::MutexGuard<'a, ()>>,
    _queue: tokio::sync::MutexGuard<'a, ()>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Inner {
    /// The trunk tip as last moved.
    pub(crate) fn tip(&self) -> Oid {
        self.trunk.lock().expect("trunk lock").tip
    }

    /// Is `oid` on the trunk?
    pub(crate) fn on_trunk(&self, oid: Oid) -> bool {
        self.trunk
            .lock()
            .expect("trunk lock")
            .index
            .contains_key(&oid)
    }

    /// Where `oid` sits on the trunk (the seed is 1).
    pub(crate) fn trunk_position(&self, oid: Oid) -> Option<u64> {
        self.trunk
            .lock()
            .expect("trunk lock")
            .index
            .get(&oid)
            .copied()
    }

    /// Records that main grew by `commits` (oldest first); returns the sequence number of the
    /// last. Called by the integrator only, in trunk order, after the ref moved.
    pub(crate) fn advance_trunk(&self, commits: &[Oid]) -> u64 {
        let mut trunk = self.trunk.lock().expect("trunk lock");
        let before = trunk.len();
        for oid in commits {
            let next = trunk.len() + 1;
            trunk.index.insert(*oid, next);
            trunk.order.push(*oid);
            trunk.tip = *oid;
        }
        if self.config.repack.crossed(before, trunk.len()) {
            self.repack_due.notify_one();
        }
        trunk.len()
    }

    /// The broadcast of one landed commit (on a blocking thread: builds its payload).
    pub(crate) fn broadcast_for(
        &self,
        repo: &Repository,
        landed: &Landed,
        chain: &[Oid],
        ctx: &PushContext,
    ) -> Broadcast {
        let cap = self.config.payload_max_bytes;
        let payload = match payload::build(repo, landed.prev, chain, cap) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(error = %e.message(), oid = %landed.landed, "building payload");
                None
            }
        };
        let over_cap = payload.is_none() && cap > 0 && !chain.is_empty();
        let (pack, pack_index) = match payload {
            Some(p) => (
                Some(p.pack),
                p.index.iter().map(|(o, at)| (o.to_string(), *at)).collect(),
            ),
            None => (None, Vec::new()),
        };
        Broadcast {
            out: TipOut {
                tip: TipChanged {
                    oid: landed.landed.to_string(),
                    prev: landed.prev.to_string(),
                    seq: landed.seq,
                    slot: ctx.slot.clone(),
                    at: now_ms(),
                    pushed: (landed.pushed != landed.landed).then(|| landed.pushed.to_string()),
                    pack_bytes: 0,
                    pack_index,
                },
                traceparent: ctx.traceparent.clone(),
                pack: pack.map(bytes::Bytes::from),
            },
            over_cap,
        }
    }

    /// Everything both hub modes check before integrating a push, in order, on the store
    /// thread: the pack staged within the limits, the trunk policy for `mode`, then fencing.
    /// `Ok(Err(_))` is a refusal for the pusher; `Err(_)` a malformed request.
    pub(crate) fn admit(
        &self,
        s: &mut crate::store::Staging<'_>,
        cmd: &receive_pack::Command,
        pack: &bytes::Bytes,
        mode: HubMode,
        ctx: &PushContext,
    ) -> Result<Result<(crate::store::Staged, policy::Update), Refusal>, RequestError> {
        use crate::store::StageError;
        let staged = match s.stage(pack, self.config.push_limits) {
            Ok(staged) => staged,
            Err(StageError::Refused(r)) => return Ok(Err(r)),
            Err(StageError::Malformed(reason)) => {
                return Err(RequestError::bad(format!(
                    "receive-pack: bad pack: {reason}"
                )));
            }
        };
        let on_trunk = |oid| self.on_trunk(oid);
        let update = match policy::check_update(s.repo, cmd, mode, &on_trunk, ctx.slot.as_deref()) {
            Ok(u) => u,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if let Err(refusal) = self.fence(s.repo, &update.chain, ctx.claim.as_ref()) {
            return Ok(Err(refusal));
        }
        Ok(Ok((staged, update)))
    }

    /// Fencing (when on): every commit of `chain` carries its task's live claim. Runs on the
    /// store thread, which waits for the bus reads.
    fn fence(
        &self,
        repo: &Repository,
        chain: &[Oid],
        hint: Option<&crate::fence::ClaimHint>,
    ) -> Result<(), Refusal> {
        let (true, Some(bus)) = (self.config.fence_claims, self.config.bus.as_ref()) else {
            return Ok(());
        };
        let live = |task: &str| match hint {
            // Read as the push arrived; a read older than a second (a long wait for the store)
            // is done again.
            Some(h) if h.task == task && h.read_at.elapsed() < HINT_FRESH => Ok(h.live),
            _ => self
                .runtime
                .block_on(bus.claim(task))
                .map(|c| c.map(|(_, epoch)| epoch))
                .map_err(|e| e.to_string()),
        };
        self.fences.check(repo, chain, &live)
    }

    /// Commits on main, seed included.
    pub(crate) fn trunk_len(&self) -> u64 {
        self.trunk.lock().expect("trunk lock").len()
    }

    /// The trunk commit at `position` (the seed is 1).
    pub(crate) fn trunk_at(&self, position: u64) -> Option<Oid> {
        let trunk = self.trunk.lock().expect("trunk lock");
        let i = usize::try_from(position.checked_sub(1)?).ok()?;
        trunk.order.get(i).copied()
    }

    /// Excludes every integration (race: the push lock; queue: the lander's gate), so what
    /// the holder publishes cannot interleave with a landing's broadcasts.
    pub(crate) async fn integration_gate(&self) -> IntegrationGate<'_> {
        let serial = match &self.integrator {
            Integrator::Race { serial } => Some(serial.lock().await),
            Integrator::Queue { .. } => None,
        };
        IntegrationGate {
            _serial: serial,
            _queue: self.queue_gate.lock().await,
        }
    }

    /// Runs one push end to end; returns the report-status body and the outcome.
    pub(crate) async fn push(
        self: &Arc<Self>,
        body: bytes::Bytes,
        ctx: PushContext,
    ) -> Result<(Vec<u8>, PushOutcome), RequestError> {
        let started = Instant::now();
        let req = receive_pack::parse(&body)?;
        let sideband = req.sideband();
        let first = req.commands[0].clone();
        let pack = body.slice_ref(req.pack);
        let extra: Vec<String> = req.commands[1..]
            .iter()
            .map(|c| c.refname.clone())
            .collect();
        let result = match policy::check_command(&first, self.config.mode, self.tip()) {
            Err(refusal) => Err(refusal),
            Ok(()) => {
                // Its own task: a client that hangs up cannot cancel a push half way (the ref
                // moved but the broadcast not sent).
                let (me, cmd, push_ctx) = (self.clone(), first.clone(), ctx.clone());
                let integration = async move { me.integrate(cmd, pack, &push_ctx).await };
                tokio::spawn(tracing::Instrument::in_current_span(integration))
                    .await
                    .map_err(|e| RequestError::internal(format!("push task failed: {e}")))??
            }
        };
        match &result {
            Ok(_) => self.stats.accepted(started.elapsed()),
            Err(r) => self.stats.rejected(r.name(), started.elapsed()),
        }
        let mut statuses = vec![(first.refname.clone(), result)];
        statuses.extend(extra.into_iter().map(|r| (r, Err(Refusal::OneUpdate))));
        let outcome = PushOutcome { statuses };
        Ok((outcome.report(sideband), outcome))
    }

    async fn integrate(
        self: &Arc<Self>,
        cmd: receive_pack::Command,
        pack: bytes::Bytes,
        ctx: &PushContext,
    ) -> crate::race::Outcome {
        match &self.integrator {
            Integrator::Race { serial } => crate::race::land(self, serial, cmd, pack, ctx).await,
            Integrator::Queue { tx } => {
                let (reply, answer) = oneshot::channel();
                let item = crate::queue::QueueItem {
                    cmd,
                    pack,
                    ctx: ctx.clone(),
                    reply,
                };
                let stopped = || Ok(Err(Refusal::Storage("the merge queue stopped".into())));
                if tx.send(item).is_err() {
                    return stopped();
                }
                answer.await.unwrap_or_else(|_| stopped())
            }
        }
    }
}
