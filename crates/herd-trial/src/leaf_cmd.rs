//! `herd leaf`: one leaf joining a running hub and bus through a join file ([`crate::join`]),
//! running slot `I` of the trial's workload with the same code an in-process leaf runs
//! ([`crate::leaves::open_leaf`], [`crate::slot_runner::run_slot`]).
//!
//! Its history goes to `<out>/leaf-events/<id>.jsonl`, its clone and ledger to
//! `<work>/leaves/<id>`. Started by a trial (`--controlled`) it speaks the line protocol of
//! [`crate::leaves::wire`] on stdin/stdout and waits for the trial's go, drain and stop; started
//! by hand it runs its tasks, settles the broadcasts it has received and prints one summary
//! line. Exit 0 when every task of the slot closed, 1 otherwise, 2 when it could not start.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::error::{ConfigError, TrialError};
use crate::events::EventLog;
use crate::join::{JoinSpec, zero_instant};
use crate::leaves::wire::{FromLeaf, ToLeaf, Usage, WireReport, since};
use crate::leaves::{leaf_id, open_leaf, wait_handled};
use crate::pacer::Pacer;
use crate::progress::Progress;
use crate::propagation::Holding;
use crate::slot_runner::{CrashHook, SlotContext, SlotReport};
use crate::workload::Workload;

/// How often a controlled leaf reports progress; with none to report it still says so once a
/// second (a heartbeat: the trial kills a leaf that stays silent, see `leaf_silence_secs`).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a hand-run leaf waits, without progress, for broadcasts it has received.
const SETTLE_STALL: Duration = Duration::from_secs(10);

/// [`run`] inside a `herd.leaf_process` span whose parent is the `TRACEPARENT` the trial put
/// in this process's environment, so a run with process leaves is still one trace.
pub async fn run_traced(
    join_path: &Path,
    slot: usize,
    controlled: bool,
    restart: Option<Restart>,
) -> Result<bool, TrialError> {
    let span = tracing::info_span!("herd.leaf_process", slot);
    if let Ok(parent) = std::env::var("TRACEPARENT") {
        herd_bus::trace::set_parent(&span, &parent);
    }
    tracing::Instrument::instrument(run(join_path, slot, controlled, restart), span).await
}

/// A leaf process started again by the trial after it killed it (a leaf fault).
#[derive(Clone, Copy, Debug)]
pub struct Restart {
    /// Take the tip stream up after this sequence.
    pub tips_after: u64,
    /// Which start this is (1 for the first restart): names the history part.
    pub incarnation: u32,
}

/// Runs leaf `slot` of the join file at `join_path`. Returns whether every task closed.
pub async fn run(
    join_path: &Path,
    slot: usize,
    controlled: bool,
    restart: Option<Restart>,
) -> Result<bool, TrialError> {
    let join = JoinSpec::read(join_path)?;
    let workload = Workload::generate(&join.config);
    let plan = workload
        .slots
        .get(slot)
        .cloned()
        .ok_or_else(|| ConfigError::Invalid {
            key: "slot".into(),
            value: slot.to_string(),
            reason: format!(
                "the trial has {} slots (0..{})",
                workload.slots.len(),
                workload.slots.len()
            ),
        })?;
    let id = leaf_id(&join.tag, plan.slot);
    let zero = zero_instant(join.zero_unix_ns);
    let events = join.events_part(&id, restart.map_or(0, |r| r.incarnation));
    if let Some(dir) = events.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TrialError::Output {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let (log, writer) = EventLog::create(&events, zero).map_err(|source| TrialError::Output {
        path: events.clone(),
        source,
    })?;
    let holdings = Arc::new(Mutex::new(Vec::<Holding>::new()));
    let hook = crate::sync_log::hook(
        &id,
        &plan.slot_dir,
        slot as u32,
        log.clone(),
        holdings.clone(),
    );
    let leaf = match restart {
        None => open_leaf(&join, slot, &plan, hook).await?,
        Some(r) => {
            let who = crate::leaves::As {
                id: id.clone(),
                on_sync: Some(hook),
                tips_after: Some(r.tips_after),
            };
            crate::leaves::open_leaf_as(&join, slot, &plan, who).await?
        }
    };
    let leaf = Arc::new(leaf);
    let cell = Arc::new(crate::leaves::LeafCell::fixed(leaf.clone()));
    let out = Out::default();
    // The trial's lines: a leaf fault is armed as it arrives (the tasks run meanwhile); the
    // rest waits in the inbox.
    let armory = crate::faults::leaf::Armory::default();
    let (inbox_tx, mut inbox) = tokio::sync::mpsc::unbounded_channel::<ToLeaf>();
    if controlled {
        let (armory, id) = (armory.clone(), id.clone());
        tokio::spawn(async move {
            let mut input = BufReader::new(tokio::io::stdin()).lines();
            while let Some(msg) = next(&mut input).await {
                match msg {
                    ToLeaf::Fault { fault } => {
                        crate::faults::leaf::arm_in_process(&armory, &id, &fault)
                    }
                    other => {
                        if inbox_tx.send(other).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    if controlled {
        out.say(&FromLeaf::Ready {
            leaf: id.clone(),
            rebuilt: leaf.stats().ledger_rebuilds > 0,
        })
        .await;
        if !matches!(inbox.recv().await, Some(ToLeaf::Go)) {
            // The trial went away before the start: leave quietly, nothing ran.
            leaf.shutdown().await;
            return Ok(false);
        }
    }

    let progress = Progress::default();
    let ctx = Arc::new(SlotContext {
        log: log.clone(),
        pacer: Pacer::share(join.config.pace_per_min, slot as u32, join.config.agents),
        progress: progress.clone(),
        zero: std::time::Instant::now(),
        leaf_faults: armory,
        crash: controlled.then(|| crash_hook(out.clone(), zero, log.clone())),
    });
    let ticker = controlled.then(|| {
        let (out, progress) = (out.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                out.progress(&progress).await;
            }
        })
    });
    let mut report = crate::slot_runner::SlotReport {
        leaf: id.clone(),
        ..Default::default()
    };
    let start = match restart {
        None => 0,
        // Started again after a crash: land what the ledger still holds, then go on.
        Some(_) => {
            crate::faults::leaf::land_resumed(&leaf, &plan, &ctx, &mut report).await;
            leaf.tasks_opened() as usize
        }
    };
    let report =
        crate::slot_runner::run_slot_from(cell.clone(), plan.clone(), ctx.clone(), start, report)
            .await;
    let closed_all = match restart {
        None => report.closed == plan.tasks.len() as u64,
        // Its earlier runs closed the others: the ledger knows them all.
        Some(_) => {
            leaf.ledger()
                .tasks()
                .map(|t| {
                    t.iter()
                        .filter(|t| t.state == herd_bus::TaskState::Closed)
                        .count()
                })
                .unwrap_or(0)
                == plan.tasks.len()
        }
    };

    if controlled {
        out.progress(&progress).await;
        out.say(&FromLeaf::Worked(Box::new(WireReport::from_report(
            &report, zero,
        ))))
        .await;
        while let Some(msg) = inbox.recv().await {
            match msg {
                ToLeaf::Drain {
                    broadcasts,
                    stall_secs,
                } => {
                    let stall = Duration::from_secs(stall_secs);
                    let settled =
                        wait_handled(std::slice::from_ref(&cell), broadcasts, stall).await;
                    let held = holdings
                        .lock()
                        .expect("holdings lock")
                        .iter()
                        .map(|h| (h.oid.to_string(), since(zero, h.at)))
                        .collect();
                    out.say(&FromLeaf::Drained {
                        settled,
                        stats: leaf.stats(),
                        holdings: held,
                        usage: Usage::of_self(),
                    })
                    .await;
                }
                ToLeaf::Stop => break,
                // Go is answered once; faults are armed by the reader.
                ToLeaf::Go | ToLeaf::Fault { .. } => {}
            }
        }
    } else {
        let received = leaf.stats().tips_received;
        wait_handled(std::slice::from_ref(&cell), received, SETTLE_STALL).await;
        println!(
            "{id}: {}/{} tasks closed, {} commits, {} starved, history {}",
            report.closed,
            plan.tasks.len(),
            report.commits.len(),
            report.starved,
            events.display()
        );
    }
    if let Some(t) = ticker {
        t.abort();
        let _ = t.await;
    }
    leaf.shutdown().await;
    // The sync hook inside the leaf holds a sender of the history: drop it (and the cell's
    // handle of it) so the writer ends.
    drop(cell);
    drop(leaf);
    drop(ctx);
    drop(log);
    writer.finish().await.map_err(|source| TrialError::Output {
        path: events.clone(),
        source,
    })?;
    Ok(closed_all)
}

/// The hook a controlled leaf hands itself over with at a leaf fault's point: its history up
/// to here on disk (the trial's record of what it did must survive the kill), one `Crashing`
/// line, then it waits for the trial's SIGKILL.
fn crash_hook(out: Out, zero: std::time::Instant, log: EventLog) -> CrashHook {
    Arc::new(
        move |report: &SlotReport, leaf: Arc<herd_leaf::Leaf>, task: &str| {
            let report = Box::new(WireReport::from_report(report, zero));
            let (out, log, task) = (out.clone(), log.clone(), task.to_string());
            Box::pin(async move {
                // Nothing more is taken in (no broadcast is handled twice across the
                // restart), so the counters and the position agree.
                leaf.crash().await;
                let msg = FromLeaf::Crashing {
                    report,
                    stats: leaf.stats(),
                    tip_position: leaf.tip_position(),
                    task,
                };
                log.sync().await;
                let _ = tokio::task::spawn_blocking(crate::telemetry::flush_spans).await;
                out.say(&msg).await;
                std::future::pending::<()>().await
            })
        },
    )
}

/// The next message from the trial; `None` when stdin closed (the trial is gone).
async fn next(input: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>) -> Option<ToLeaf> {
    loop {
        let line = input.next_line().await.ok()??;
        match serde_json::from_str(&line) {
            Ok(msg) => return Some(msg),
            Err(e) => tracing::warn!(%line, error = %e, "unreadable line from the trial"),
        }
    }
}

/// Stdout, shared by the progress ticker and the main flow (one line per message); holds the
/// progress totals already reported and when the last line went out.
#[derive(Clone)]
struct Out(Arc<tokio::sync::Mutex<((u64, u64), std::time::Instant)>>);

impl Default for Out {
    fn default() -> Self {
        Out(Arc::new(tokio::sync::Mutex::new((
            (0, 0),
            std::time::Instant::now(),
        ))))
    }
}

impl Out {
    async fn say(&self, msg: &FromLeaf) {
        let mut state = self.0.lock().await;
        write_line(msg).await;
        state.1 = std::time::Instant::now();
    }

    /// Reports the progress made since the last report, or a heartbeat when there is none
    /// and nothing was said for [`HEARTBEAT_EVERY`].
    async fn progress(&self, progress: &Progress) {
        let mut state = self.0.lock().await;
        let (sent, last) = *state;
        let now = progress.counts();
        if now != sent || last.elapsed() >= HEARTBEAT_EVERY {
            write_line(&FromLeaf::Progress {
                tasks: now.0 - sent.0,
                commits: now.1 - sent.1,
            })
            .await;
            *state = (now, std::time::Instant::now());
        }
    }
}

async fn write_line(msg: &FromLeaf) {
    let mut line = serde_json::to_string(msg).expect("wire messages serialize");
    line.push('\n');
    let mut stdout = tokio::io::stdout();
    // A closed stdout means the trial is gone; the leaf finishes its work regardless.
    let _ = stdout.write_all(line.as_bytes()).await;
    let _ = stdout.flush().await;
}
