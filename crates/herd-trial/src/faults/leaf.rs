//! Leaf faults, injected by the runner of the leaf they name (in-process leaves): the fault
//! driver arms one in the [`Armory`]; the slot runner takes it right after that leaf's next
//! won claim and plays it out on the task (`inject`), reporting back when it was injected,
//! noticed and healed.
//!
//! - **F6 `leaf-kill`**: the leaf crashes between claim and commit ([`herd_leaf::Leaf::crash`]:
//!   leases no longer renewed, ledger closed, nothing flushed), stays down for the hold, is
//!   opened again on its directory and resumes the claim from its ledger — or, when the lease
//!   lapsed meanwhile, claims the task again — and lands it.
//! - **F7 `leaf-halt`**: the leaf crashes right after the hub accepted its push, before it
//!   recorded anything; opened again after the hold, its replay guard finds the commit on the
//!   trunk and records it instead of pushing the task twice.
//! - **F8 `leaf-pause`**: the leaf's push stops for the hold after its epoch check, its lease
//!   no longer renewed; a standby leaf on the same slot takes the lapsed claim over and lands
//!   the task; the hub's fencing refuses the paused push and the paused leaf's ledger lets the
//!   task go.
//! - **F11 `disk-full`**: the leaf's own tmpfs is filled to the last byte right after the
//!   claim, and freed after the hold; its commits fail naming ENOSPC (nothing pushed) and are
//!   tried again every 250 ms until one lands.
//! - **F13 `leaf-damage`**: as F6, and while the leaf is down its ledger is truncated, a stale
//!   `index.lock` and a garbage git index are left in its worktree; opened again, it detects
//!   the damage, rebuilds the ledger from the bus and lands the task once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herd_check::{Op, Phase};
use herd_leaf::{Claim, Leaf, LeafError};
use tokio::sync::oneshot;

use crate::leaves::LeafCell;
use crate::slot_runner::{SlotContext, SlotReport, Work, close_step, commit_step, log_claimed};

/// What a leaf fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafFault {
    /// F6: crash between claim and commit.
    Kill,
    /// F7: crash after the hub accepted the push, before the ledger row.
    Halt,
    /// F8: paused past the lease at the push; a standby takes over.
    Pause,
    /// F13: crash, state damaged while down.
    Damage,
    /// F11: the leaf's disk full for the hold.
    DiskFull,
}

/// A fault armed for one leaf.
pub(crate) struct Armed {
    pub(crate) fault: LeafFault,
    pub(crate) hold: Duration,
    pub(crate) report: oneshot::Sender<LeafOutcome>,
}

/// What the runner saw of a leaf fault.
#[derive(Debug, Default)]
pub(crate) struct LeafOutcome {
    /// The task it hit.
    pub(crate) task: String,
    pub(crate) injected: Option<Instant>,
    /// When and by whom the fault was noticed: the restarted leaf (its ledger, its replay
    /// guard) or the standby winning the lapsed claim.
    pub(crate) detected: Option<(Instant, String)>,
    /// The leaf is back (restarted), or the paused push came back.
    pub(crate) healed: Option<Instant>,
    pub(crate) error: Option<String>,
    /// What became of the task (the paused push's refusal, a claim taken again).
    pub(crate) note: Option<String>,
}

/// Leaf faults armed by the driver, by leaf id.
#[derive(Clone, Default)]
pub struct Armory(Arc<Mutex<HashMap<String, Armed>>>);

impl Armory {
    pub(crate) fn arm(&self, leaf: &str, armed: Armed) {
        self.0
            .lock()
            .expect("armory lock")
            .insert(leaf.to_string(), armed);
    }

    /// The fault armed for `leaf`, once.
    pub(crate) fn take(&self, leaf: &str) -> Option<Armed> {
        let mut armed = self.0.lock().expect("armory lock");
        if armed.is_empty() {
            return None;
        }
        armed.remove(leaf)
    }

    /// Drops what was armed for `leaf` and never taken (the work ended first).
    pub(crate) fn disarm(&self, leaf: &str) {
        self.0.lock().expect("armory lock").remove(leaf);
    }
}

/// Arms `fault` (`kill`, `halt`, `damage`) inside a leaf process, as its trial asked: the
/// process only reaches the fault's point and hands itself over ([`SlotContext::crash`]); the
/// trial kills it, holds, (damages its state) and starts it again.
pub(crate) fn arm_in_process(armory: &Armory, leaf: &str, fault: &str) {
    let fault = match fault {
        "kill" => LeafFault::Kill,
        "halt" => LeafFault::Halt,
        "damage" => LeafFault::Damage,
        other => {
            tracing::warn!(fault = other, "a leaf process cannot play this fault");
            return;
        }
    };
    let (report, _) = oneshot::channel();
    armory.arm(
        leaf,
        Armed {
            fault,
            hold: Duration::ZERO,
            report,
        },
    );
}

/// In a leaf process started again after a crash: lands each claim its ledger still holds
/// (the work done again — the same task's files — after its think time), as the in-process
/// restart does.
pub(crate) async fn land_resumed(
    leaf: &Leaf,
    plan: &crate::workload::SlotPlan,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let claims = match leaf.resumable() {
        Ok(claims) => claims,
        Err(e) => {
            tracing::warn!(leaf = %leaf.id(), error = %e, "reading the ledger's claims");
            return;
        }
    };
    for claim in claims {
        // `<leaf>.tNNNN`: the slot's task NNNN (a slot opens its tasks in order).
        let spec = claim
            .task()
            .0
            .rsplit_once(".t")
            .and_then(|(_, n)| n.parse::<usize>().ok())
            .and_then(|n| plan.tasks.get(n));
        let Some(spec) = spec else {
            tracing::warn!(task = %claim.task(), "a resumed claim the plan does not name");
            continue;
        };
        let task = claim.task().clone();
        let work = Work {
            task: &task,
            files: spec
                .files
                .iter()
                .map(|f| (f.path.clone(), f.bytes.clone()))
                .collect(),
            think: spec.think,
            begun: Instant::now(),
            contended: false,
        };
        tokio::time::sleep(work.think).await;
        let mut out = LeafOutcome::default();
        land(leaf, &plan.slot_dir, claim, work, &mut out, ctx, report).await;
        ctx.progress.task_done();
    }
}

/// Plays `armed` out on the task `claim` holds, then finishes the task.
pub(crate) async fn inject(
    cell: &LeafCell,
    slot: &str,
    work: Work<'_>,
    claim: Claim,
    armed: Armed,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let mut out = LeafOutcome {
        task: claim.task().to_string(),
        ..Default::default()
    };
    match armed.fault {
        LeafFault::Kill | LeafFault::Damage => {
            if let (Some(crash), Some(leaf)) = (&ctx.crash, cell.leaf()) {
                // A leaf process: the trial kills it here.
                crash(report, leaf, &out.task).await;
            }
            out.injected = Some(Instant::now());
            let position = cell.crash().await;
            if armed.fault == LeafFault::Damage
                && let Some(dir) = cell.dir()
                && let Err(e) = damage(&dir)
            {
                out.error = Some(format!("damaging {}: {e}", dir.display()));
            }
            tokio::time::sleep(armed.hold).await;
            resume(cell, slot, work, claim, position, &mut out, ctx, report).await;
        }
        LeafFault::Halt => halt(cell, slot, work, claim, armed.hold, &mut out, ctx, report).await,
        LeafFault::Pause => pause(cell, slot, work, claim, armed.hold, &mut out, ctx, report).await,
        LeafFault::DiskFull => {
            disk_full(cell, slot, work, claim, armed.hold, &mut out, ctx, report).await
        }
    }
    let _ = armed.report.send(out);
}

/// The restart after a crash: opens the leaf again, takes the claim up from its ledger (a
/// rebuilt one too) and lands the task — claiming it again if its lease lapsed meanwhile.
#[allow(clippy::too_many_arguments)]
async fn resume(
    cell: &LeafCell,
    slot: &str,
    work: Work<'_>,
    claim: Claim,
    position: u64,
    out: &mut LeafOutcome,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let leaf = match cell.restart(position).await {
        Ok(leaf) => leaf,
        Err(e) => {
            out.error = Some(format!("restart: {e}"));
            report.failed += 1;
            return;
        }
    };
    let now = Instant::now();
    out.healed = Some(now);
    let resumed = leaf
        .resumable()
        .ok()
        .and_then(|c| c.into_iter().find(|c| c.task() == claim.task()));
    let by = match (leaf.stats().ledger_rebuilds > 0, resumed.is_some()) {
        (true, _) => "the restarted leaf: damaged ledger rebuilt from the bus",
        (false, true) => "the restarted leaf: claim resumed from its ledger",
        (false, false) => "the restarted leaf: claim not in its ledger",
    };
    out.detected = Some((now, by.into()));
    // The agent does its work again after the restart.
    tokio::time::sleep(work.think).await;
    let claim = resumed.unwrap_or(claim);
    land(&leaf, slot, claim, work, out, ctx, report).await;
}

/// Commits under `claim` and closes; a claim that lapsed while the leaf was away is taken
/// again (a new epoch) first.
async fn land(
    leaf: &Leaf,
    slot: &str,
    claim: Claim,
    work: Work<'_>,
    out: &mut LeafOutcome,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let files = work.files;
    let claim = match commit_step(leaf, slot, &claim, files.clone(), ctx, report).await {
        Ok(_) => claim,
        Err(LeafError::EpochStale { .. }) => {
            let id = leaf.id().to_string();
            let task_id = claim.task().to_string();
            ctx.log.record(Op::Claim, Phase::Invoke, &id, slot, |ev| {
                ev.task = Some(task_id.clone())
            });
            let again = match leaf.claim(claim.task()).await {
                Ok(again) => again,
                Err(e) => {
                    ctx.log.record(Op::Claim, Phase::Fail, &id, slot, |ev| {
                        ev.task = Some(task_id.clone());
                        ev.error = Some(e.to_string());
                    });
                    out.error = Some(format!("claiming {task_id} again: {e}"));
                    report.failed += 1;
                    return;
                }
            };
            log_claimed(ctx, &id, slot, &again);
            out.note = Some(format!(
                "the lease lapsed while the leaf was down: claimed again (epoch {} → {})",
                claim.epoch(),
                again.epoch()
            ));
            if let Err(e) = commit_step(leaf, slot, &again, files, ctx, report).await {
                out.error = Some(format!("commit after the restart: {e}"));
                report.failed += 1;
                return;
            }
            again
        }
        Err(e) => {
            out.error = Some(format!("commit after the restart: {e}"));
            report.failed += 1;
            return;
        }
    };
    close_step(leaf, slot, claim, work.begun, ctx, report).await;
}

/// F7: the push lands, the leaf stops before recording it, and is opened again.
#[allow(clippy::too_many_arguments)]
async fn halt(
    cell: &LeafCell,
    slot: &str,
    work: Work<'_>,
    claim: Claim,
    hold: Duration,
    out: &mut LeafOutcome,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let Some(leaf) = cell.leaf() else {
        report.failed += 1;
        return;
    };
    tokio::time::sleep(work.think).await;
    leaf.halt_after_next_push();
    let files = work.files.clone();
    match commit_step(&leaf, slot, &claim, files, ctx, report).await {
        Err(LeafError::Halted { oid, .. }) => {
            if let Some(crash) = &ctx.crash {
                // A leaf process: the trial kills it here.
                crash(report, leaf.clone(), &out.task).await;
            }
            out.injected = Some(Instant::now());
            drop(leaf);
            let position = cell.crash().await;
            tokio::time::sleep(hold).await;
            resume(cell, slot, work, claim, position, out, ctx, report).await;
            // The replay guard found the accepted commit and recorded it: nothing was pushed
            // for the task again.
            if report
                .commits
                .last()
                .is_some_and(|(landed, _)| *landed == oid)
            {
                out.detected = Some((
                    Instant::now(),
                    "the replay guard: accepted commit found on the trunk".into(),
                ));
            }
        }
        Ok(_) => {
            out.error = Some("the halt was not reached (the commit landed without a push)".into());
            close_step(&leaf, slot, claim, work.begun, ctx, report).await;
        }
        Err(e) => {
            out.error = Some(format!("commit before the halt: {e}"));
            report.failed += 1;
        }
    }
}

/// F8: the push pauses past the lease while a standby on the slot takes the task over.
#[allow(clippy::too_many_arguments)]
async fn pause(
    cell: &LeafCell,
    slot: &str,
    work: Work<'_>,
    claim: Claim,
    hold: Duration,
    out: &mut LeafOutcome,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let Some(leaf) = cell.leaf() else {
        report.failed += 1;
        return;
    };
    let standby = match cell.standby().await {
        Ok(standby) => standby,
        Err(e) => {
            out.error = Some(format!("opening the standby: {e}"));
            report.failed += 1;
            return;
        }
    };
    tokio::time::sleep(work.think).await;
    leaf.pause_next_push(hold);
    out.injected = Some(Instant::now());
    let mut rescued = SlotReport::default();
    let files = work.files.clone();
    let deadline = Instant::now() + hold + Duration::from_secs(30);
    let (paused, taken) = tokio::join!(
        commit_step(&leaf, slot, &claim, files, ctx, report),
        take_over(&standby, slot, &claim, &work, deadline, ctx, &mut rescued),
    );
    out.healed = Some(Instant::now());
    out.detected = taken;
    match paused {
        Ok(_) => {
            // The pause ended inside the lease (no takeover): the task is this leaf's still.
            close_step(&leaf, slot, claim, work.begun, ctx, report).await;
        }
        Err(e) => match leaf.let_go(&claim).await {
            Ok(Some(owner)) if rescued.closed == 1 => {
                out.note = Some(format!(
                    "paused push stopped: {e}; the task went to {owner}"
                ));
            }
            Ok(owner) => {
                out.error = Some(format!(
                    "the paused push was refused but the task was not taken over (owner {owner:?}, standby closed {})",
                    rescued.closed
                ));
                report.failed += 1;
            }
            Err(e) => {
                out.error = Some(format!("letting the task go: {e}"));
                report.failed += 1;
            }
        },
    }
    standby.shutdown().await;
    // Its task counters only: the broadcasts it handled are not the slot leaf's (the drain
    // waits for the slot leaf's own).
    cell.absorb(&herd_leaf::LeafStats {
        tips_received: 0,
        applied: 0,
        pulled: 0,
        skipped_idempotent: 0,
        skipped_coalesced: 0,
        backwards: 0,
        deferred: 0,
        catch_up_pulls: 0,
        pull_failures: 0,
        ..standby.stats()
    });
    report.absorb(rescued);
}

/// The standby's side of F8: claims the task as soon as the paused holder's lease lapses,
/// lands the same work and closes it. Returns when it took the claim (`None`: it never
/// did — the task was finished first, or the deadline passed).
async fn take_over(
    standby: &Leaf,
    slot: &str,
    claim: &Claim,
    work: &Work<'_>,
    deadline: Instant,
    ctx: &SlotContext,
    report: &mut SlotReport,
) -> Option<(Instant, String)> {
    let id = standby.id().to_string();
    let task_id = claim.task().to_string();
    let taken = loop {
        // Polls are not logged: waiting for a lease to lapse is not a failure.
        match standby.claim(claim.task()).await {
            Ok(taken) => break taken,
            Err(LeafError::AlreadyClaimed { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => return None,
        }
    };
    let at = Instant::now();
    ctx.log.record(Op::Claim, Phase::Invoke, &id, slot, |ev| {
        ev.task = Some(task_id.clone())
    });
    log_claimed(ctx, &id, slot, &taken);
    if commit_step(standby, slot, &taken, work.files.clone(), ctx, report)
        .await
        .is_ok()
    {
        close_step(standby, slot, taken, work.begun, ctx, report).await;
    } else {
        report.failed += 1;
    }
    Some((at, format!("{id}: took the lapsed claim over")))
}

/// F11: fills the leaf's disk for `hold` (freed by a task of its own) while the leaf tries
/// its commit again every 250 ms, for at most the hold and 30 s more.
#[allow(clippy::too_many_arguments)]
async fn disk_full(
    cell: &LeafCell,
    slot: &str,
    work: Work<'_>,
    claim: Claim,
    hold: Duration,
    out: &mut LeafOutcome,
    ctx: &SlotContext,
    report: &mut SlotReport,
) {
    let (Some(leaf), Some(dir)) = (cell.leaf(), cell.dir()) else {
        report.failed += 1;
        return;
    };
    let tmpfs = super::disk::can_mount();
    let filler = if tmpfs {
        let filled = tokio::task::spawn_blocking(move || super::disk::fill(&dir)).await;
        match filled.map_err(std::io::Error::other).and_then(|r| r) {
            Ok(filler) => Some(filler),
            Err(e) => {
                out.error = Some(format!("filling the disk: {e}"));
                return land(&leaf, slot, claim, work, out, ctx, report).await;
            }
        }
    } else {
        // Not root: no tmpfs to fill; the leaf's ENOSPC fail point stands in.
        leaf.fail_writes(true);
        None
    };
    out.injected = Some(Instant::now());
    let held = leaf.clone();
    let freed = tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        let removed = match filler {
            Some(filler) => tokio::task::spawn_blocking(move || std::fs::remove_file(&filler))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r),
            None => {
                held.fail_writes(false);
                Ok(())
            }
        };
        (Instant::now(), removed)
    });
    tokio::time::sleep(work.think).await;
    let deadline = Instant::now() + hold + Duration::from_secs(30);
    let mut failures = 0u32;
    let landed = loop {
        match commit_step(&leaf, slot, &claim, work.files.clone(), ctx, report).await {
            Ok(_) => break true,
            Err(e) if super::disk::is_disk_full(&e) && Instant::now() < deadline => {
                failures += 1;
                out.detected.get_or_insert_with(|| {
                    (
                        Instant::now(),
                        format!("{}'s commit: no space left", leaf.id()),
                    )
                });
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                out.error = Some(format!("commit on a full disk: {e}"));
                break false;
            }
        }
    };
    match freed.await {
        Ok((at, Ok(()))) => out.healed = Some(at),
        Ok((_, Err(e))) => out.error = Some(format!("freeing the disk: {e}")),
        Err(e) => out.error = Some(format!("freeing the disk: {e}")),
    }
    out.note = Some(format!(
        "{failures} commit attempts failed for want of space ({}), then it landed",
        if tmpfs {
            "its tmpfs filled to the last byte"
        } else {
            "ENOSPC fail point: not root, no tmpfs"
        }
    ));
    if landed {
        close_step(&leaf, slot, claim, work.begun, ctx, report).await;
    } else {
        report.failed += 1;
    }
}

/// F13's damage to a stopped leaf's directory: the ledger truncated mid-page and its
/// write-ahead log lost (a killed process leaves one), a stale `index.lock` and a garbage git
/// index in its worktree.
pub(crate) fn damage(dir: &Path) -> std::io::Result<()> {
    let ledger = dir.join(herd_leaf::LEDGER_FILE);
    let len = std::fs::metadata(&ledger)?.len();
    let file = std::fs::OpenOptions::new().write(true).open(&ledger)?;
    // Mid-page: SQLite finds the pages it needs missing or cut.
    file.set_len((len / 2).max(1) | 1)?;
    file.sync_all()?;
    for lost in ["-wal", "-shm"] {
        let path = dir.join(format!("{}{lost}", herd_leaf::LEDGER_FILE));
        if path.exists() {
            std::fs::remove_file(path)?;
        }
    }
    let git = dir.join("repo").join(".git");
    std::fs::write(git.join("index.lock"), b"stale")?;
    std::fs::write(git.join("index"), b"not an index")?;
    Ok(())
}
