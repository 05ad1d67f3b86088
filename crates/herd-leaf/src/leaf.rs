//! `Leaf`: one agent — open → claim → commit → close, against the hub and the bus.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::Oid;
use herd_bus::{Bus, BusError, ClaimOutcome, TaskRecord, TaskState};
use herd_hub::HubMode;
use rand::RngExt;
use tokio::sync::watch;

mod commit;

use crate::error::LeafError;
use crate::git_ops::{Held, RepoState};
use crate::ledger::{Ledger, LedgerTask};
use crate::paths;
use crate::stats::{Counters, LeafStats, add};
use crate::tip_sync::{SyncContext, SyncHook, SyncPolicy, TipSync};
use crate::turns::{Fairness, Turns};
use crate::worker::{Worker, WorkerThread};

/// Bounded, jittered retry of rejected pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Push attempts before giving up (the first push included).
    pub max_attempts: u32,
    /// First backoff; doubles per retry, ±50 % jitter.
    pub base_backoff: Duration,
    /// Backoff ceiling.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 100,
            base_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(100),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .base_backoff
            .saturating_mul(1 << retry.min(16))
            .min(self.max_backoff);
        base.mul_f64(rand::rng().random_range(0.5..1.5))
    }
}

/// Everything a leaf needs.
#[derive(Clone)]
pub struct LeafConfig {
    /// Leaf id (author name, claim holder; `[-_.a-zA-Z0-9]`).
    pub id: String,
    /// The slot directory this leaf may write in (e.g. `slot-3`).
    pub slot: String,
    /// The leaf's directory: `repo/` (clone + worktree) and `ledger.sqlite`.
    pub dir: PathBuf,
    /// The hub's clone URL.
    pub hub_url: String,
    /// The bus (required).
    pub bus: Option<Bus>,
    /// Claim lease.
    pub claim_ttl: Duration,
    /// Push retry policy.
    pub retry: RetryPolicy,
    /// Observer of every handled broadcast.
    pub on_sync: Option<SyncHook>,
    /// How the leaf follows the trunk (default: apply broadcast payloads).
    pub sync: SyncPolicy,
    /// How the hub integrates pushes: race pushes `refs/heads/main` as a compare-and-swap,
    /// queue pushes `refs/for/main` to the merge queue.
    pub hub_mode: HubMode,
    /// How a leaf that keeps losing the race still lands (race mode): turns (default) or plain
    /// backoff.
    pub fairness: Fairness,
    /// Lost races before a leaf asks for a turn.
    pub turn_after: u32,
    /// How long a turn's head may hold it before others drop it (it crashed or hangs).
    pub turn_lease: Duration,
    /// Subscribe to tip broadcasts (default). Off, the leaf learns of a new tip only when its
    /// push is refused (use with on-demand sync): the baseline that shows what broadcasts buy,
    /// and deterministic forks for tests.
    pub subscribe: bool,
    /// How long a leaf whose push lost the race waits for the new tip's broadcast before it
    /// fetches instead (payload sync).
    pub tip_wait: Duration,
    /// Race mode: how long a leaf whose push ended with an unknown outcome (the reply was lost,
    /// the connection cut) keeps trying to reach the hub to settle it — the commit is on the
    /// trunk (landed) or not (rebase and push again; the compare-and-swap lets at most one of
    /// the two land). Past it the outcome stays unknown ([`LeafError::Hub`]). Default 10 s.
    pub resolve_wait: Duration,
    /// The hub token bound to this leaf's slot, sent with every push (`Authorization: Bearer`).
    /// `None` for an open hub.
    pub hub_token: Option<String>,
    /// Content conflicts a task may meet and be redone on the newer tip (its files written
    /// again over what the trunk holds now, with that tip as its `Herd-Base`); one more and the
    /// task fails by rule ([`LeafError::Conflict`]). 0: fail at the first conflict.
    pub conflict_redos: u32,
    /// **Mutation switch, for testing the checker only**: a conflicting rebase keeps the
    /// leaf's version of each path (a blind overwrite of changes it never read) instead of
    /// failing or redoing. The checker's I12 (no lost update) must catch it.
    pub blind_rebase: bool,
    /// Before committing a claim resumed from the ledger, look for its `Herd-Claim` trailer on
    /// the trunk: a leaf that stopped after the hub accepted its push but before it recorded
    /// it finds the commit and records it instead of pushing the task a second time (F7).
    /// Default on; off only as a mutation, to show the checker's I4b catches the replay.
    pub replay_guard: bool,
    /// Take the tip stream up after this `HERD_TIP` sequence instead of at its end: a leaf
    /// restarted on its directory receives the broadcasts sent while it was down (what its
    /// previous run reached: [`Leaf::tip_position`]). `None`: only new broadcasts.
    pub tips_after: Option<u64>,
}

impl LeafConfig {
    /// A config with defaults (claim TTL 60 s, default retry) and no bus set yet.
    pub fn new(id: &str, slot: &str, dir: PathBuf, hub_url: &str) -> LeafConfig {
        LeafConfig {
            id: id.into(),
            slot: slot.into(),
            dir,
            hub_url: hub_url.into(),
            bus: None,
            claim_ttl: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            on_sync: None,
            sync: SyncPolicy::default(),
            hub_mode: HubMode::default(),
            subscribe: true,
            fairness: Fairness::default(),
            turn_after: 1,
            turn_lease: Duration::from_secs(2),
            tip_wait: Duration::from_secs(2),
            resolve_wait: Duration::from_secs(10),
            hub_token: None,
            conflict_redos: 0,
            blind_rebase: false,
            replay_guard: true,
            tips_after: None,
        }
    }
}

/// A task id (`<leaf>.t<NNNN>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(pub String);

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A held claim: the task and the claim's epoch (its KV revision, a fencing token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    task: TaskId,
    epoch: u64,
    /// Taken up again from the ledger after a stop ([`Leaf::resumable`]): its commit may
    /// already be on the trunk.
    resumed: bool,
}

impl Claim {
    /// The task.
    pub fn task(&self) -> &TaskId {
        &self.task
    }

    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// A commit the hub accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The commit on the trunk.
    pub oid: String,
    /// The commit the leaf pushed: `oid` itself, or (merge queue) the commit the hub replayed
    /// onto a newer tip as `oid`.
    pub pushed: String,
    /// Rebase-and-retry rounds it took.
    pub fork_retries: u32,
    /// From the start of `commit` to the hub's acceptance.
    pub latency: Duration,
}

/// One agent.
pub struct Leaf {
    id: String,
    slot: String,
    hub_token: Option<String>,
    bus: Bus,
    claim_ttl: Duration,
    retry: RetryPolicy,
    policy: SyncPolicy,
    hub_mode: HubMode,
    tip_wait: Duration,
    resolve_wait: Duration,
    tip_rx: watch::Receiver<Option<Oid>>,
    turns: Option<Turns>,
    turn_after: u32,
    next_turn: AtomicU64,
    worker: Mutex<Option<Worker>>,
    thread: Mutex<Option<WorkerThread>>,
    sync: tokio::sync::Mutex<Option<TipSync>>,
    sync_ctx: Arc<SyncContext>,
    ledger: Arc<Ledger>,
    counters: Arc<Counters>,
    held: Arc<Mutex<Held>>,
    next_task: AtomicU64,
    leases: crate::lease::Leases,
    conflict_redos: u32,
    /// F8 hook: the next push pauses this long after its epoch check ([`Leaf::pause_next_push`]).
    pause_push: Mutex<Option<Duration>>,
    /// F7 hook: the next accepted push is not recorded ([`Leaf::halt_after_next_push`]).
    halt_after_push: std::sync::atomic::AtomicBool,
    fail_writes: std::sync::atomic::AtomicBool,
    replay_guard: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A task already committed or closed cannot be claimed again.
fn done(task: &str, state: TaskState) -> Result<(), LeafError> {
    match state {
        TaskState::Committed | TaskState::Closed => Err(LeafError::Done {
            task: task.to_string(),
            state: state.as_str(),
        }),
        _ => Ok(()),
    }
}

/// A task record moves only under the claim that holds it: its epoch must be `epoch`.
pub(crate) fn fenced(record: &TaskRecord, epoch: u64) -> Result<(), LeafError> {
    if record.epoch == Some(epoch) {
        Ok(())
    } else {
        Err(LeafError::EpochStale {
            task: record.id.clone(),
            epoch,
            live: record.epoch,
        })
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Leaf {
    /// Clones the hub into `dir/repo` (or reopens it and its ledger) and starts the tip
    /// subscriber.
    pub async fn open(config: LeafConfig) -> Result<Leaf, LeafError> {
        let bus = config
            .bus
            .clone()
            .ok_or_else(|| LeafError::Config("a leaf needs a bus".into()))?;
        for (what, value) in [("id", &config.id), ("slot", &config.slot)] {
            if !valid_name(value) {
                return Err(LeafError::Config(format!(
                    "leaf {what} {value:?}: one name of [-_.a-zA-Z0-9]"
                )));
            }
        }
        std::fs::create_dir_all(&config.dir).map_err(|source| LeafError::Io {
            what: "creating",
            path: config.dir.display().to_string(),
            source,
        })?;
        let (ledger, rebuilt) =
            crate::rebuild::open_or_rebuild(&config.dir, &config.id, &bus).await?;
        let ledger = Arc::new(ledger);
        let (url, repo_dir) = (config.hub_url.clone(), config.dir.join("repo"));
        let blind = config.blind_rebase;
        let (repo, state) = tokio::task::spawn_blocking(move || {
            RepoState::open_or_clone(&url, &repo_dir).map(|(r, s)| (r, s.blind_rebase(blind)))
        })
        .await
        .map_err(|_| LeafError::WorkerGone)?
        .map_err(|e| LeafError::Hub {
            task: String::new(),
            reason: format!("cloning {}: {}", config.hub_url, e.message()),
            unknown: false,
            pushed: None,
        })?;
        let held = state.held.clone();
        let tip_rx = state.watch_tip();
        let counters = Arc::new(Counters::default());
        add(&counters.ledger_rebuilds, u64::from(rebuilt));
        let (worker, thread) = Worker::start(&config.id, repo, state)?;
        let sync_ctx = Arc::new(SyncContext::new(
            config.id.clone(),
            config.slot.clone(),
            worker.clone(),
            counters.clone(),
            ledger.clone(),
            held.clone(),
            config.on_sync.clone(),
        ));
        let turns = if config.hub_mode == HubMode::Race && config.fairness == Fairness::Turn {
            let stream = bus.turns().await.map_err(|e| LeafError::bus("", e))?;
            Some(Turns::spawn(bus.clone(), stream, config.turn_lease))
        } else {
            None
        };
        let sync = if config.subscribe {
            let tips = match config.tips_after {
                Some(seq) => {
                    sync_ctx
                        .stream_position
                        .store(seq, std::sync::atomic::Ordering::Release);
                    bus.tips_after(seq).await
                }
                None => bus.tips().await,
            }
            .map_err(|e| LeafError::bus("", e))?;
            Some(TipSync::spawn(
                tips,
                sync_ctx.clone(),
                config.sync,
                bus.clone(),
            ))
        } else {
            None
        };
        if held.lock().expect("held lock").remote_tip.is_none() {
            // Reopened after a crash that lost the tip's objects: start from the trunk again.
            crate::tip_sync::fetch(&sync_ctx)
                .await
                .map_err(|reason| LeafError::Hub {
                    task: String::new(),
                    reason: format!("fetching {}: {reason}", config.hub_url),
                    unknown: false,
                    pushed: None,
                })?;
        }
        Ok(Leaf {
            next_task: AtomicU64::new(ledger.task_count()?),
            id: config.id,
            slot: config.slot,
            hub_token: config.hub_token,
            bus,
            claim_ttl: config.claim_ttl,
            retry: config.retry,
            policy: config.sync,
            hub_mode: config.hub_mode,
            tip_wait: config.tip_wait,
            resolve_wait: config.resolve_wait,
            tip_rx,
            turns,
            turn_after: config.turn_after.max(1),
            next_turn: AtomicU64::new(0),
            worker: Mutex::new(Some(worker)),
            thread: Mutex::new(Some(thread)),
            sync: tokio::sync::Mutex::new(sync),
            sync_ctx,
            ledger,
            counters,
            held,
            leases: crate::lease::Leases::default(),
            conflict_redos: config.conflict_redos,
            pause_push: Mutex::new(None),
            halt_after_push: std::sync::atomic::AtomicBool::new(false),
            fail_writes: std::sync::atomic::AtomicBool::new(false),
            replay_guard: config.replay_guard,
        })
    }

    /// The leaf id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The slot directory.
    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// Counters.
    pub fn stats(&self) -> LeafStats {
        self.counters.snapshot()
    }

    /// Is a pull still in flight?
    pub fn pulling(&self) -> bool {
        self.sync_ctx.busy()
    }

    /// The remote-tracking trunk tip this leaf holds.
    pub fn remote_tip(&self) -> Option<String> {
        self.held
            .lock()
            .expect("held lock")
            .remote_tip
            .map(|o| o.to_string())
    }

    /// How many tasks this leaf has opened (its ledger's count; the next task's number).
    pub fn tasks_opened(&self) -> u64 {
        self.next_task.load(Ordering::Acquire)
    }

    /// The highest tip-stream sequence this leaf received: open it again with
    /// [`LeafConfig::tips_after`] set to this and it misses no broadcast.
    pub fn tip_position(&self) -> u64 {
        self.sync_ctx
            .stream_position
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// How this leaf follows the trunk.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.policy
    }

    /// How the hub this leaf pushes to lands pushes.
    pub fn hub_mode(&self) -> HubMode {
        self.hub_mode
    }

    /// Local main (its last commit, or the trunk tip it was reset to).
    pub async fn head(&self) -> Result<String, LeafError> {
        self.worker()?
            .run(|r| r.head().map(|o| o.to_string()))
            .await?
            .map_err(|e| LeafError::git("", e))
    }

    /// The ledger (read access for tests and reports).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Claims this leaf held when it last stopped (state `claimed` in its ledger), to resume.
    pub fn resumable(&self) -> Result<Vec<Claim>, LeafError> {
        Ok(self
            .ledger
            .tasks()?
            .into_iter()
            .filter(|t| t.state == TaskState::Claimed)
            .filter_map(|t: LedgerTask| {
                t.epoch.map(|epoch| Claim {
                    task: TaskId(t.id),
                    epoch,
                    resumed: true,
                })
            })
            .collect())
    }

    fn worker(&self) -> Result<Worker, LeafError> {
        self.worker
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .ok_or(LeafError::WorkerGone)
    }

    /// Records a new task in the bus and the ledger. Paths are validated first.
    pub async fn open_task(&self, title: &str, paths: Vec<String>) -> Result<TaskId, LeafError> {
        let span = tracing::info_span!("leaf.open", leaf = %self.id, task = tracing::field::Empty);
        // Instrument, never `enter()` across an await: the task may resume on another thread.
        self.open_task_inner(title, paths, &span)
            .instrument_in(span.clone())
            .await
    }

    async fn open_task_inner(
        &self,
        title: &str,
        paths: Vec<String>,
        span: &tracing::Span,
    ) -> Result<TaskId, LeafError> {
        paths::validate(&self.slot, &paths)?;
        let n = self.next_task.fetch_add(1, Ordering::AcqRel);
        let id = format!("{}.t{n:04}", self.id);
        span.record("task", id.as_str());
        let record = TaskRecord {
            id: id.clone(),
            title: title.to_string(),
            leaf: self.id.clone(),
            slot: self.slot.clone(),
            paths: paths.clone(),
            state: TaskState::Open,
            epoch: None,
            commit: None,
            updated: now_ms(),
        };
        self.bus
            .create_task(&record)
            .await
            .map_err(|e| LeafError::bus(&id, e))?;
        self.ledger.insert_task(&id, title, &paths)?;
        Ok(TaskId(id))
    }

    /// Claims `task`; `AlreadyClaimed` names the holder.
    pub async fn claim(&self, task: &TaskId) -> Result<Claim, LeafError> {
        let span = tracing::info_span!("leaf.claim", leaf = %self.id, task = %task, outcome = tracing::field::Empty, claim.epoch = tracing::field::Empty);
        async {
            let id = task.0.as_str();
            match self
                .bus
                .try_claim(id, &self.id, self.claim_ttl)
                .await
                .map_err(|e| LeafError::bus(id, e))?
            {
                ClaimOutcome::Won { revision } => {
                    let leaf = self.id.clone();
                    // The record moves only if the task exists and nobody finished it: a claim
                    // won on a missing, committed or closed task is given back at once. (No
                    // read before the claim: the move reads the record anyway.)
                    let seen = std::sync::Mutex::new(None);
                    let moved = self
                        .update_record(id, |r| {
                            done(&r.id, r.state)?;
                            r.state = TaskState::Claimed;
                            r.epoch = Some(revision);
                            r.leaf = leaf.clone();
                            *seen.lock().expect("claim record") =
                                Some((r.title.clone(), r.paths.clone()));
                            Ok(())
                        })
                        .await;
                    if let Err(e) = moved {
                        let _ = self.bus.release_at(id, revision, revision).await;
                        return Err(e);
                    }
                    add(&self.counters.claims_won, 1);
                    tracing::Span::current()
                        .record("outcome", "won")
                        .record("claim.epoch", revision);
                    self.leases
                        .hold(&self.bus, id, revision, &self.id, self.claim_ttl);
                    if self.ledger.task(id)?.is_none() {
                        let (title, paths) =
                            seen.into_inner().expect("claim record").unwrap_or_default();
                        self.ledger.insert_task(id, &title, &paths)?;
                    }
                    self.ledger
                        .set_state(id, TaskState::Claimed, Some(revision), None, None)?;
                    Ok(Claim {
                        task: task.clone(),
                        epoch: revision,
                        resumed: false,
                    })
                }
                ClaimOutcome::Lost { holder } => {
                    add(&self.counters.claims_lost, 1);
                    tracing::Span::current().record("outcome", "lost");
                    self.ledger.event(Some(id), "claim_lost", Some(&holder))?;
                    Err(LeafError::AlreadyClaimed {
                        task: id.into(),
                        holder,
                    })
                }
            }
        }
        .instrument_in(span)
        .await
    }

    /// The task's state on the bus (`None`: no such task) — what a leaf picking work from a
    /// shared board reads before it tries to claim.
    pub async fn task_state(&self, task: &TaskId) -> Result<Option<TaskState>, LeafError> {
        let id = task.0.as_str();
        let record = self.bus.task(id).await.map_err(|e| LeafError::bus(id, e))?;
        Ok(record.map(|(r, _)| r.state))
    }

    /// Stops renewing `claim`'s lease without giving it back: the leaf behaves as one that
    /// stalled (a long pause, a stopped process) while holding it, so the claim lapses after
    /// `claim_ttl` and another leaf may take the task. For fault trials and tests.
    pub fn stall_lease(&self, claim: &Claim) {
        let _ = self.leases.drop_lease(&claim.task.0);
    }

    /// Makes the leaf's next push stop for `pause` after its claim's epoch was checked, with
    /// the lease no longer renewed: a holder paused past its lease (F8) that then pushes
    /// stale work. Only the hub's fencing stands between that push and the trunk. For fault
    /// trials and tests.
    pub fn pause_next_push(&self, pause: Duration) {
        *self.pause_push.lock().expect("pause lock") = Some(pause);
    }

    /// Makes the leaf stop right after the hub accepts its next push, before it records the
    /// commit anywhere (ledger, task record): a leaf killed between acceptance and its ledger
    /// row (F7). The commit fails with [`LeafError::Halted`]; shut the leaf down and open it
    /// again on its directory to resume. For fault trials and tests.
    pub fn halt_after_next_push(&self) {
        self.halt_after_push
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// An ENOSPC fail point (F11 where no small filesystem can be mounted): while on, writing
    /// a task's work fails as on a full disk (`No space left on device`), before anything is
    /// written or pushed. For fault trials and tests.
    pub fn fail_writes(&self, on: bool) {
        self.fail_writes
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Is the ENOSPC fail point on?
    pub(crate) fn writes_fail(&self) -> bool {
        self.fail_writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes the halt [`Leaf::halt_after_next_push`] set.
    pub(crate) fn take_halt(&self) -> bool {
        self.halt_after_push
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes the pause [`Leaf::pause_next_push`] set, if any.
    pub(crate) fn take_push_pause(&self) -> Option<Duration> {
        self.pause_push.lock().expect("pause lock").take()
    }

    /// Marks the task closed (bus and ledger) and releases the claim.
    pub async fn close(&self, claim: Claim) -> Result<(), LeafError> {
        let span = tracing::info_span!("leaf.close", leaf = %self.id, task = %claim.task);
        self.finish(claim, TaskState::Closed)
            .instrument_in(span)
            .await
    }

    /// Abandons the task: marks it released and releases the claim so others may take it.
    pub async fn release(&self, claim: Claim) -> Result<(), LeafError> {
        let span = tracing::info_span!("leaf.release", leaf = %self.id, task = %claim.task);
        self.finish(claim, TaskState::Released)
            .instrument_in(span)
            .await
    }

    async fn finish(&self, claim: Claim, state: TaskState) -> Result<(), LeafError> {
        let id = claim.task.0.as_str();
        let revision = self.leases.drop_lease(id).unwrap_or(claim.epoch);
        let epoch = claim.epoch;
        self.update_record(id, move |r| {
            fenced(r, epoch)?;
            r.state = state;
            Ok(())
        })
        .await?;
        self.ledger.set_state(id, state, None, None, None)?;
        self.bus
            .release_at(id, claim.epoch, revision)
            .await
            .map_err(|e| LeafError::bus(id, e))?;
        Ok(())
    }

    /// Read-modify-CAS of the task record, retried when another writer got in between.
    async fn update_record(
        &self,
        id: &str,
        change: impl Fn(&mut TaskRecord) -> Result<(), LeafError>,
    ) -> Result<u64, LeafError> {
        for _ in 0..8 {
            let (mut record, rev) = self
                .bus
                .task(id)
                .await
                .map_err(|e| LeafError::bus(id, e))?
                .ok_or_else(|| LeafError::NotFound { task: id.into() })?;
            change(&mut record)?;
            record.updated = now_ms();
            match self.bus.update_task(&record, rev).await {
                Ok(rev) => return Ok(rev),
                Err(BusError::Conflict { .. }) => continue,
                Err(e) => return Err(LeafError::bus(id, e)),
            }
        }
        Err(LeafError::bus(
            id,
            BusError::Conflict {
                bucket: herd_bus::TASKS_BUCKET,
                key: id.into(),
                expected: 0,
            },
        ))
    }

    /// Stops the leaf as a crash would (F6/F7 in an in-process trial): no claim is given
    /// back and none is renewed any more (each lapses after its lease), buffered ledger
    /// events are not flushed, the subscriber stops taking broadcasts and the repository
    /// worker ends after its current job (so a leaf opened again on the same directory never
    /// shares the repository with it). The leaf is unusable afterwards; drop it.
    pub async fn crash(&self) {
        self.leases.abandon_all();
        self.stop_running().await;
    }

    /// Stops the tip subscriber (in-flight pulls finish), then the worker, and waits for its
    /// thread.
    async fn stop_running(&self) {
        if let Some(sync) = self.sync.lock().await.take() {
            sync.stop().await;
        }
        if let Some(worker) = self.worker.lock().ok().and_then(|mut w| w.take()) {
            worker.stop();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// After a commit refused for its claim (`EpochStale`, or the hub's fencing): when the
    /// task now belongs to another leaf, or to nobody, the ledger lets it go (state
    /// `released`, an event `taken_over` naming the new owner) so a restart never resumes
    /// it. Returns the new owner, if another leaf took it; `Ok(None)` and no change when
    /// the claim is still this leaf's live one.
    pub async fn let_go(&self, claim: &Claim) -> Result<Option<String>, LeafError> {
        let id = claim.task.0.as_str();
        let live = self
            .bus
            .claim(id)
            .await
            .map_err(|e| LeafError::bus(id, e))?;
        if live
            .as_ref()
            .is_some_and(|(holder, rev)| *rev == claim.epoch && holder.leaf == self.id)
        {
            return Ok(None);
        }
        let _ = self.leases.drop_lease(id);
        // The task record names whoever took it over (the claim is gone once they closed it).
        let record = self.bus.task(id).await.map_err(|e| LeafError::bus(id, e))?;
        let owner = record
            .map(|(r, _)| r.leaf)
            .into_iter()
            .chain(live.map(|(holder, _)| holder.leaf))
            .find(|leaf| *leaf != self.id);
        self.ledger
            .set_state(id, TaskState::Released, None, None, None)?;
        self.ledger
            .event(Some(id), "taken_over", owner.as_deref())?;
        Ok(owner)
    }

    /// Stops the tip subscriber (letting in-flight pulls finish), then the worker; the ledger
    /// is closed when the leaf is dropped.
    pub async fn shutdown(&self) {
        self.stop_running().await;
        if let Err(e) = self.ledger.flush() {
            tracing::warn!(leaf = %self.id, error = %e, "flushing the ledger");
        }
    }
}

impl Drop for Leaf {
    /// A leaf dropped without `shutdown` still stops its worker thread and subscriber.
    fn drop(&mut self) {
        if let Some(worker) = self.worker.get_mut().ok().and_then(Option::take) {
            worker.stop();
        }
        if let Some(sync) = self.sync.get_mut().take() {
            sync.cancel();
        }
    }
}

/// `future.instrument_in(span)`: tracing's `Instrument`, named to read in order.
trait InstrumentIn: Sized + std::future::Future {
    fn instrument_in(self, span: tracing::Span) -> tracing::instrument::Instrumented<Self> {
        tracing::Instrument::instrument(self, span)
    }
}

impl<F: std::future::Future> InstrumentIn for F {}
