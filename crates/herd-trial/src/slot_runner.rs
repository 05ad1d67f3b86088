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
}

/// Runs every task of `plan` on `leaf`.
pub async fn run_slot(leaf: Arc<Leaf>, plan: SlotPlan, ctx: Arc<SlotContext>) -> SlotReport {
    let mut report = SlotReport {
        leaf: leaf.id().to_string(),
        ..Default::default()
    };
    for (k, task) in plan.tasks.iter().enumerate() {
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
        let span = tracing::info_span!("herd.task", leaf = %leaf.id(), slot = %plan.slot_dir, index = task.index);
        tracing::Instrument::instrument(
            run_task(&leaf, &plan.slot_dir, task, begun, &ctx, &mut report),
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
    leaf: Arc<Leaf>,
    slot_dir: String,
    pool: Arc<Vec<crate::board::PoolTask>>,
    ctx: Arc<SlotContext>,
) -> SlotReport {
    let mut report = SlotReport {
        leaf: leaf.id().to_string(),
        ..Default::default()
    };
    for (n, pooled) in pool.iter().enumerate() {
        let task = TaskId(pooled.id.clone());
        // Only open tasks are worth a claim; a failed read is a skip (someone else's task).
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
        let span = tracing::info_span!("herd.task", leaf = %leaf.id(), slot = %slot_dir, index = n);
        let took = tracing::Instrument::instrument(
            work_task(&leaf, &slot_dir, work, &ctx, &mut report),
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
    leaf: &Leaf,
    slot: &str,
    spec: &TaskSpec,
    begun: Instant,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
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
    work_task(leaf, slot, work, ctx, report).await;
}

/// What [`work_task`] does with one task.
struct Work<'a> {
    task: &'a TaskId,
    files: Vec<(String, Vec<u8>)>,
    think: std::time::Duration,
    /// When it was due or started (task latency counts from here).
    begun: Instant,
    /// Other leaves may claim it too (shared board): a lost claim is not a failure.
    contended: bool,
}

/// Claim → think → commit → close. `false` when the claim went to another leaf (or the task
/// was finished meanwhile) on a contended task.
async fn work_task(
    leaf: &Leaf,
    slot: &str,
    work: Work<'_>,
    ctx: &SlotContext,
    report: &mut SlotReport,
) -> bool {
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
    let epoch = claim.epoch();
    log.record(Op::Claim, Phase::Ok, &id, slot, |ev| {
        ev.task = Some(task_id.clone());
        ev.claim_rev = Some(epoch);
    });

    tokio::time::sleep(work.think).await;

    let files = work.files;
    let t = ctx.pacer.wait().await;
    report.commit_starts.push(t);
    log.record(Op::Commit, Phase::Invoke, &id, slot, |ev| {
        ev.task = Some(task_id.clone());
        ev.claim_rev = Some(epoch);
    });
    match leaf.commit(&claim, files).await {
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
        }
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
            report.failed += 1;
            return true;
        }
    }

    log.record(Op::Close, Phase::Invoke, &id, slot, |ev| {
        ev.task = Some(task_id.clone())
    });
    match leaf.close(claim).await {
        Ok(()) => {
            report.closed += 1;
            report.task.record(work.begun.elapsed());
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
    true
}
