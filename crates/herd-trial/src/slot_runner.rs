//! Running one leaf's tasks: open → claim → think → commit → close, each step written to the
//! history before (`invoke`) and after (`ok`/`fail`), latencies measured around the calls.
//!
//! A task starts when the previous one ended (closed loop) or when it is due, if it is not
//! late already (open model, [`crate::cadence`]): its task latency runs from the due time, and
//! the tasks due but not started are sampled as the slot's backlog at every start.

use std::sync::Arc;
use std::time::Instant;

use herd_check::history::{Op, Phase};
use herd_leaf::{Leaf, TaskId};

use crate::leaves::LeafCell;

use crate::events::EventLog;
use crate::metrics::Latency;
use crate::pacer::Pacer;
use crate::progress::Progress;
use crate::workload::{SlotPlan, TaskSpec};

/// What one leaf's run produced.
#[derive(Default)]
pub struct SlotReport {
    /// The leaf that ran the slot.
    pub leaf: String,
    /// Claim round trips (won).
    pub claim: Latency,
    /// Claim round trips lost to another leaf (shared board).
    pub claim_lost: Latency,
    /// Start of commit → hub accepted.
    pub commit: Latency,
    /// Start of commit → failure, for commits that did not land.
    pub commit_failed: Latency,
    /// Tasks whose push lost every race until the retry budget ran out.
    pub starved: u64,
    /// Tasks that failed by the conflict rule (one conflict more than the redo budget).
    pub failed_by_rule: u64,
    /// Commits the hub accepted: (oid, accepted at).
    pub commits: Vec<(String, Instant)>,
    /// Tasks opened.
    pub opened: u64,
    /// Tasks closed.
    pub closed: u64,
    /// Tasks that ended without a close.
    pub failed: u64,
    /// Due (or, closed loop, start) → closed, for closed tasks.
    pub task: Latency,
    /// Due → started (open model only): how late the slot began its tasks.
    pub lag: Latency,
    /// The slot's backlog at each task start (open model): (when, tasks due and not started).
    pub backlog: Vec<(Instant, u32)>,
    /// When each commit started (after the pacer's slot, if paced).
    pub commit_starts: Vec<Instant>,
}

impl SlotReport {
    /// Adds what a standby did on this slot (F8) to the slot's report.
    pub(crate) fn absorb(&mut self, other: SlotReport) {
        let SlotReport {
            leaf: _,
            claim,
            claim_lost,
            commit,
            commit_failed,
            starved,
            failed_by_rule,
            commits,
            opened,
            closed,
            failed,
            task,
            lag,
            backlog,
            commit_starts,
        } = other;
        self.claim.merge(&claim);
        self.claim_lost.merge(&claim_lost);
        self.commit.merge(&commit);
        self.commit_failed.merge(&commit_failed);
        self.starved += starved;
        self.failed_by_rule += failed_by_rule;
        self.commits.extend(commits);
        self.opened += opened;
        self.closed += closed;
        self.failed += failed;
        self.task.merge(&task);
        self.lag.merge(&lag);
        self.backlog.extend(backlog);
        self.commit_starts.extend(commit_starts);
    }
}

/// Shared by every slot runner.
pub struct SlotContext {
    /// History sink.
    pub log: EventLog,
    /// Global rate cap.
    pub pacer: Pacer,
    /// Progress counters.
    pub progress: Progress,
    /// The start of the work: due times count from here.
    pub zero: Instant,
    /// Leaf faults armed by the fault driver, taken by the runner of the leaf they name.
    pub leaf_faults: crate::faults::leaf::Armory,
    /// A leaf process hands itself over here at a leaf fault's point, to be killed by the
    /// trial (`None` in-process: the slot's cell stops and reopens the leaf itself).
    pub crash: Option<CrashHook>,
}

/// Stops the leaf taking broadcasts, sends a leaf process's report so far, counters and tip
/// position (`Crashing`) for the task named, then never returns: the trial SIGKILLs the
/// process and starts it again.
pub type CrashHook = Arc<
    dyn Fn(&SlotReport, Arc<Leaf>, &str) -> futures::future::BoxFuture<'static, ()> + Send + Sync,
>;

/// Runs every task of `plan` on `leaf`.
pub async fn run_slot(cell: Arc<LeafCell>, plan: SlotPlan, ctx: Arc<SlotContext>) -> SlotReport {
    let report = SlotReport {
        leaf: cell.id().to_string(),
        ..Default::default()
    };
    run_slot_from(cell, plan, ctx, 0, report).await
}

/// Runs the tasks of `plan` from index `start` on, adding to `report` (a leaf process started
/// again after a crash goes on where its ledger says it was, with what it landed so far).
pub async fn run_slot_from(
    cell: Arc<LeafCell>,
    plan: SlotPlan,
    ctx: Arc<SlotContext>,
    start: usize,
    mut report: SlotReport,
) -> SlotReport {
    for (k, task) in plan.tasks.iter().enumerate().skip(start) {
        let begun = match task.due {
            Some(due) => {
                let due = ctx.zero + due;
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                let now = Instant::now();
                report.lag.record(now - due);
                let late = plan.tasks[k + 1..]
                    .iter()
                    .take_while(|t| t.due.is_some_and(|d| ctx.zero + d <= now))
                    .count();
                report.backlog.push((now, late as u32));
                due
            }
            None => Instant::now(),
        };
        let span = tracing::info_span!("herd.task", leaf = %cell.id(), slot = %plan.slot_dir, index = task.index);
        tracing::Instrument::instrument(
            run_task(&cell, &plan.slot_dir, task, begun, &ctx, &mut report),
            span,
        )
        .await;
        ctx.progress.task_done();
    }
    report
}

/// Runs a shared board on `leaf`: walks the pool in order, takes every task it finds open and
/// wins the claim of, and skips the rest (see [`crate::board`]).
pub async fn run_board(
    cell: Arc<LeafCell>,
    slot_dir: String,
    pool: Arc<Vec<crate::board::PoolTask>>,
    ctx: Arc<SlotContext>,
) -> SlotReport {
    let mut report = SlotReport {
        leaf: cell.id().to_string(),
        ..Default::default()
    };
    for (n, pooled) in pool.iter().enumerate() {
        let task = TaskId(pooled.id.clone());
        // Only open tasks are worth a claim; a failed read is a skip (someone else's task).
        let Some(leaf) = cell.leaf() else {
            break;
        };
        if !matches!(
            leaf.task_state(&task).await,
            Ok(Some(herd_bus::TaskState::Open))
        ) {
            continue;
        }
        let work = Work {
            task: &task,
            files: crate::board::files(pooled, n, &slot_dir),
            think: pooled.spec.think,
            begun: Instant::now(),
            contended: true,
        };
        drop(leaf);
        let span = tracing::info_span!("herd.task", leaf = %cell.id(), slot = %slot_dir, index = n);
        let took = tracing::Instrument::instrument(
            work_task(&cell, &slot_dir, work, &ctx, &mut report),
            span,
        )
        .await;
        if took {
            ctx.progress.task_done();
        }
    }
    report
}

async fn run_task(
    cell: &LeafCell,
    slot: &str,
    spec: &TaskSpec,
    begun: Instant,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let Some(leaf) = cell.leaf() else {
        // The leaf did not come back from a fault: its remaining tasks are not done.
        report.failed += 1;
        return;
    };
    let id = leaf.id().to_string();
    let log = &ctx.log;
    let paths: Vec<String> = spec.files.iter().map(|f| f.path.clone()).collect();

    log.record(Op::Open, Phase::Invoke, &id, slot, |_| {});
    let task = match leaf.open_task(&spec.title, paths).await {
        Ok(task) => task,
        Err(e) => {
            log.record(Op::Open, Phase::Fail, &id, slot, |ev| {
                ev.error = Some(e.to_string())
            });
            report.failed += 1;
            return;
        }
    };
    let task_id = task.to_string();
    report.opened += 1;
    log.record(Op::Open, Phase::Ok, &id, slot, |ev| {
        ev.task = Some(task_id.clone())
    });
    let files = spec
        .files
        .iter()
        .map(|f| (f.path.clone(), f.bytes.clone()))
        .collect();
    let work = Work {
        task: &task,
        files,
        think: spec.think,
        begun,
        contended: false,
    };
    drop(leaf);
    work_task(cell, slot, work, ctx, report).await;
}

/// What [`work_task`] does with one task.
pub(crate) struct Work<'a> {
    pub(crate) task: &'a TaskId,
    pub(crate) files: Vec<(String, Vec<u8>)>,
    pub(crate) think: std::time::Duration,
    /// When it was due or started (task latency counts from here).
    pub(crate) begun: Instant,
    /// Other leaves may claim it too (shared board): a lost claim is not a failure.
    pub(crate) contended: bool,
}

/// Claim → think → commit → close. `false` when the claim went to another leaf (or the task
/// was finished meanwhile) on a contended task. A leaf fault armed for this leaf is injected
/// right after a won claim ([`crate::faults::leaf`]), which then finishes the task.
async fn work_task(
    cell: &LeafCell,
    slot: &str,
    work: Work<'_>,
    ctx: &SlotContext,
    report: &mut SlotReport,
) -> bool {
    let Some(leaf) = cell.leaf() else {
        // The leaf did not come back from a fault: its remaining tasks are not done.
        report.failed += 1;
        return true;
    };
    let id = leaf.id().to_string();
    let log = &ctx.log;
    let task = work.task;
    let task_id = task.to_string();
    log.record(Op::Claim, Phase::Invoke, &id, slot, |ev| {
        ev.task = Some(task_id.clone())
    });
    let t = Instant::now();
    let claim = match leaf.claim(task).await {
        Ok(claim) => claim,
        Err(e) => {
            log.record(Op::Claim, Phase::Fail, &id, slot, |ev| {
                ev.task = Some(task_id.clone());
                ev.error = Some(e.to_string());
            });
            let taken = matches!(
                e,
                herd_leaf::LeafError::AlreadyClaimed { .. } | herd_leaf::LeafError::Done { .. }
            );
            if work.contended && taken {
                report.claim_lost.record(t.elapsed());
                return false;
            }
            report.failed += 1;
            return true;
        }
    };
    report.claim.record(t.elapsed());
    log_claimed(ctx, &id, slot, &claim);
    if let Some(armed) = ctx.leaf_faults.take(cell.id()) {
        drop(leaf);
        crate::faults::leaf::inject(cell, slot, work, claim, armed, ctx, report).await;
        return true;
    }

    tokio::time::sleep(work.think).await;
    if commit_step(&leaf, slot, &claim, work.files, ctx, report)
        .await
        .is_err()
    {
        report.failed += 1;
        return true;
    }
    close_step(&leaf, slot, claim, work.begun, ctx, report).await;
    true
}

/// The history line of a won claim.
pub(crate) fn log_claimed(ctx: &SlotContext, leaf: &str, slot: &str, claim: &herd_leaf::Claim) {
    let (task_id, epoch) = (claim.task().to_string(), claim.epoch());
    ctx.log.record(Op::Claim, Phase::Ok, leaf, slot, |ev| {
        ev.task = Some(task_id);
        ev.claim_rev = Some(epoch);
    });
}

/// Commits `files` under `claim` (paced), with its history lines and latencies. A leaf halted
/// after the hub accepted its push (a crash, F7) writes no outcome line: the history keeps
/// the open `invoke` a killed process would leave.
pub(crate) async fn commit_step(
    leaf: &Leaf,
    slot: &str,
    claim: &herd_leaf::Claim,
    files: Vec<(String, Vec<u8>)>,
    ctx: &SlotContext,
    report: &mut SlotReport,
) -> Result<herd_leaf::CommitOutcome, herd_leaf::LeafError> {
    let id = leaf.id().to_string();
    let log = &ctx.log;
    let task_id = claim.task().to_string();
    let epoch = claim.epoch();
    let t = ctx.pacer.wait().await;
    report.commit_starts.push(t);
    log.record(Op::Commit, Phase::Invoke, &id, slot, |ev| {
        ev.task = Some(task_id.clone());
        ev.claim_rev = Some(epoch);
    });
    match leaf.commit(claim, files).await {
        Ok(outcome) => {
            let accepted = Instant::now();
            report.commit.record(accepted - t);
            report.commits.push((outcome.oid.clone(), accepted));
            ctx.progress.commit();
            log.record(Op::Commit, Phase::Ok, &id, slot, |ev| {
                ev.task = Some(task_id.clone());
                ev.claim_rev = Some(epoch);
                ev.oid = Some(outcome.oid.clone());
                ev.pushed = (outcome.pushed != outcome.oid).then(|| outcome.pushed.clone());
                ev.fork_retries = Some(outcome.fork_retries);
            });
            Ok(outcome)
        }
        Err(e @ herd_leaf::LeafError::Halted { .. }) => Err(e),
        Err(e) => {
            report.commit_failed.record(t.elapsed());
            if matches!(e, herd_leaf::LeafError::RetriesExhausted { .. }) {
                report.starved += 1;
            }
            let by_rule = matches!(e, herd_leaf::LeafError::Conflict { .. });
            if by_rule {
                report.failed_by_rule += 1;
            }
            // A push whose reply was lost may or may not have landed: `info`, resolved by the
            // checker against the trunk. Everything else is a definite failure.
            if let Some(oid) = e.landed() {
                // On the trunk all the same: the drain and the lost-commit count see it.
                report.commits.push((oid.to_string(), Instant::now()));
            }
            // So is a commit that landed but could not be recorded: `info` naming the landed
            // oid, which the checker finds on the trunk.
            let phase = if e.outcome_unknown() || e.landed().is_some() {
                Phase::Info
            } else {
                Phase::Fail
            };
            log.record(Op::Commit, phase, &id, slot, |ev| {
                ev.task = Some(task_id.clone());
                ev.claim_rev = Some(epoch);
                // The commit a lost reply may have landed: the checker resolves it against
                // the trunk (race mode lands it as is; the merge queue may replay it).
                match (e.landed(), leaf.hub_mode()) {
                    (Some(oid), _) => ev.oid = Some(oid.to_string()),
                    (None, herd_hub::HubMode::Race) => ev.oid = e.pushed().map(str::to_string),
                    (None, herd_hub::HubMode::Queue) => ev.pushed = e.pushed().map(str::to_string),
                }
                ev.error = Some(e.to_string());
                // Ended by the conflict rule, not lost: the checker's I1 and I7 read this.
                ev.outcome = by_rule.then(|| herd_check::invariants::tasks::CONFLICT.to_string());
            });
            Err(e)
        }
    }
}

/// Closes the task, with its history lines; `begun`: when it was due or started.
pub(crate) async fn close_step(
    leaf: &Leaf,
    slot: &str,
    claim: herd_leaf::Claim,
    begun: Instant,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let id = leaf.id().to_string();
    let log = &ctx.log;
    let task_id = claim.task().to_string();
    log.record(Op::Close, Phase::Invoke, &id, slot, |ev| {
        ev.task = Some(task_id.clone())
    });
    match leaf.close(claim).await {
        Ok(()) => {
            report.closed += 1;
            report.task.record(begun.elapsed());
            log.record(Op::Close, Phase::Ok, &id, slot, |ev| {
                ev.task = Some(task_id.clone())
            });
        }
        Err(e) => {
            report.failed += 1;
            log.record(Op::Close, Phase::Fail, &id, slot, |ev| {
                ev.task = Some(task_id.clone());
                ev.error = Some(e.to_string());
            });
        }
    }
}
