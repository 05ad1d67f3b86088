//! Where leaves run — the runner's one seam for it. [`LeafSet`] opens N leaves, runs their
//! slots, drains them, reads their counters and shuts them down, either as tasks of this
//! process or as `herd leaf` children ([`children`]). Both drive the same code: [`open_leaf`]
//! and [`crate::slot_runner::run_slot`]; a child is that code behind a line protocol ([`wire`]).

pub mod cell;
pub mod children;
pub mod wire;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herd_bus::Bus;
use herd_leaf::{Leaf, LeafConfig, LeafStats, SyncHook};
use tokio::task::JoinSet;

use crate::config::Placement;
use crate::error::TrialError;
use crate::events::EventLog;
use crate::join::JoinSpec;
use crate::propagation::Holding;
use crate::slot_runner::{SlotContext, SlotReport, run_board, run_slot};
use crate::workload::{SlotPlan, Workload};

pub use cell::LeafCell;
pub use children::LeafFailure;

/// The id of the leaf in slot `i`. Against an external bus every run's ids carry a run tag
/// (`r<ms>-leaf-3`): task ids derive from leaf ids, and a second trial on the same server must
/// not collide with the first one's task records.
pub fn leaf_id(run_tag: &str, i: u32) -> String {
    format!("{run_tag}leaf-{i}")
}

/// Opens the leaf running `plan` (slot `index`) as the join file describes: its own clone under
/// `work_dir/leaves/<id>`, its slot's token, its own bus connection as the leaf user.
pub async fn open_leaf(
    join: &JoinSpec,
    index: usize,
    plan: &SlotPlan,
    on_sync: SyncHook,
) -> Result<Leaf, TrialError> {
    let id = leaf_id(&join.tag, plan.slot);
    open_leaf_as(
        join,
        index,
        plan,
        As {
            id,
            on_sync: Some(on_sync),
            tips_after: None,
        },
    )
    .await
}

/// Who [`open_leaf_as`] opens: the slot's leaf again after a restart, or a standby.
pub(crate) struct As {
    /// Its id (its directory is `work_dir/leaves/<id>`).
    pub(crate) id: String,
    /// Its sync hook (history lines), if any.
    pub(crate) on_sync: Option<SyncHook>,
    /// Where its tip stream starts ([`LeafConfig::tips_after`]).
    pub(crate) tips_after: Option<u64>,
}

/// [`open_leaf`] with the id, hook and tip-stream start given.
pub(crate) async fn open_leaf_as(
    join: &JoinSpec,
    index: usize,
    plan: &SlotPlan,
    who: As,
) -> Result<Leaf, TrialError> {
    let As {
        id,
        on_sync,
        tips_after,
    } = who;
    let config = &join.config;
    let bus = Bus::join_domain(join.bus_url_for(index), join.bus_domain.as_deref()).await?;
    let cfg = LeafConfig {
        hub_token: join.tokens.get(&plan.slot_dir).cloned(),
        claim_ttl: Duration::from_secs(config.claim_ttl_secs),
        sync: config.sync,
        hub_mode: config.hub,
        fairness: config.fairness,
        turn_after: config.turn_after,
        conflict_redos: config.conflict_redos,
        bus: Some(bus),
        on_sync,
        tips_after,
        ..LeafConfig::new(
            &id,
            &plan.slot_dir,
            join.work_dir.join("leaves").join(&id),
            &join.hub_url,
        )
    };
    Leaf::open(cfg)
        .await
        .map_err(|source| TrialError::Leaf { leaf: id, source })
}

/// Waits until each leaf has handled `expected` broadcasts. Leaves far behind (N² broadcasts
/// at large N) may take long, so this gives up only after `stall` without any leaf handling
/// another broadcast.
/// Counts a restarted leaf's runs together (each run takes the tip stream up where the last
/// one stopped, so together they receive every broadcast once).
pub async fn wait_handled(leaves: &[Arc<LeafCell>], expected: u64, stall: Duration) -> bool {
    let mut handled_before = 0;
    let mut deadline = Instant::now() + stall;
    loop {
        let mut done = true;
        let mut handled = 0;
        for l in leaves {
            let s = l.stats();
            let outcomes =
                s.applied + s.pulled + s.skipped_idempotent + s.skipped_coalesced + s.deferred;
            handled += outcomes;
            let pulling = l.leaf().is_some_and(|l| l.pulling());
            done &= s.tips_received >= expected && outcomes == s.tips_received && !pulling;
        }
        if done {
            return true;
        }
        if handled > handled_before {
            handled_before = handled;
            deadline = Instant::now() + stall;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What every leaf of a run shares when the set opens.
pub struct LeafSetup<'a> {
    /// The run's join file contents (URLs, tokens, config, dirs).
    pub join: &'a JoinSpec,
    /// Where the join file is written (process leaves read it).
    pub join_path: &'a Path,
    /// The workload (leaf `i` runs slot `i`).
    pub workload: &'a Workload,
    /// The trial's history (in-process leaves write to it).
    pub log: &'a EventLog,
    /// Propagation samples.
    pub holdings: &'a Arc<Mutex<Vec<Holding>>>,
    /// The `herd` binary, for process leaves.
    pub leaf_exe: Option<&'a Path>,
    /// The trial's time zero on this process's clock.
    pub zero: Instant,
}

/// N leaves, wherever they run.
pub enum LeafSet {
    /// Tasks of this process (each slot's leaf in a cell: leaf faults restart it).
    InProcess(Vec<Arc<LeafCell>>),
    /// `herd leaf` children.
    Processes(Box<children::Children>),
}

impl LeafSet {
    /// Opens every leaf of the workload where `placement` says.
    pub async fn open(placement: Placement, setup: LeafSetup<'_>) -> Result<LeafSet, TrialError> {
        match placement {
            Placement::InProcess => open_in_process(setup).await.map(LeafSet::InProcess),
            Placement::Process => children::Children::spawn(setup)
                .await
                .map(|c| LeafSet::Processes(Box::new(c))),
        }
    }

    /// Leaf ids in slot order.
    pub fn ids(&self) -> Vec<String> {
        match self {
            LeafSet::InProcess(cells) => cells.iter().map(|c| c.id().to_string()).collect(),
            LeafSet::Processes(c) => c.ids(),
        }
    }

    /// Runs every slot; returns the reports of the leaves that finished.
    /// With `board`, every leaf works the shared pool instead of its own slot's tasks.
    pub async fn work(
        &mut self,
        workload: &Workload,
        board: Option<Arc<Vec<crate::board::PoolTask>>>,
        ctx: Arc<SlotContext>,
    ) -> Vec<SlotReport> {
        match self {
            LeafSet::InProcess(cells) => {
                let mut set = JoinSet::new();
                for (leaf, plan) in cells.iter().zip(workload.slots.iter()) {
                    let span = tracing::Span::current();
                    match &board {
                        Some(pool) => set.spawn(tracing::Instrument::instrument(
                            run_board(
                                leaf.clone(),
                                plan.slot_dir.clone(),
                                pool.clone(),
                                ctx.clone(),
                            ),
                            span,
                        )),
                        None => set.spawn(tracing::Instrument::instrument(
                            run_slot(leaf.clone(), plan.clone(), ctx.clone()),
                            span,
                        )),
                    };
                }
                let mut reports = Vec::new();
                while let Some(joined) = set.join_next().await {
                    // A panicking slot runner is a bug; its tasks count as not closed.
                    if let Ok(report) = joined {
                        reports.push(report);
                    }
                }
                reports
            }
            LeafSet::Processes(c) => c.work(&ctx.progress, &ctx.leaf_faults).await,
        }
    }

    /// Waits until every leaf handled `broadcasts` tips (see [`wait_handled`]).
    pub async fn drain(&mut self, broadcasts: u64, stall: Duration) -> bool {
        match self {
            LeafSet::InProcess(cells) => wait_handled(cells, broadcasts, stall).await,
            LeafSet::Processes(c) => c.drain(broadcasts, stall).await,
        }
    }

    /// Each leaf's counters (after the drain: final).
    pub fn stats(&self) -> Vec<LeafStats> {
        match self {
            LeafSet::InProcess(cells) => cells.iter().map(|c| c.stats()).collect(),
            LeafSet::Processes(c) => c.stats(),
        }
    }

    /// Leaf processes (id, pid); none for in-process leaves, which are this process.
    pub fn pids(&self) -> Vec<(String, u32)> {
        match self {
            LeafSet::InProcess(_) => Vec::new(),
            LeafSet::Processes(c) => c.pids(),
        }
    }

    /// Resource use per leaf process (`None` for in-process leaves, which share one).
    pub fn usage(&self) -> Option<wire::UsageSummary> {
        match self {
            LeafSet::InProcess(_) => None,
            LeafSet::Processes(c) => wire::UsageSummary::of(&c.usage()),
        }
    }

    /// Stops every leaf (ledgers flushed); returns the leaves that failed as processes.
    pub async fn shutdown(self) -> Vec<LeafFailure> {
        match self {
            LeafSet::InProcess(cells) => {
                // Leaves flush their objects as they stop; let them do it side by side.
                let leaves: Vec<Arc<Leaf>> = cells.iter().filter_map(|c| c.leaf()).collect();
                futures::future::join_all(leaves.iter().map(|l| l.shutdown())).await;
                Vec::new()
            }
            LeafSet::Processes(c) => c.shutdown().await,
        }
    }
}

async fn open_in_process(setup: LeafSetup<'_>) -> Result<Vec<Arc<LeafCell>>, TrialError> {
    let mut set = JoinSet::new();
    for (index, plan) in setup.workload.slots.iter().enumerate() {
        let id = leaf_id(&setup.join.tag, plan.slot);
        let hook = crate::sync_log::hook(
            &id,
            &plan.slot_dir,
            index as u32,
            setup.log.clone(),
            setup.holdings.clone(),
        );
        let (join, plan) = (setup.join.clone(), plan.clone());
        set.spawn(async move {
            let leaf = open_leaf(&join, index, &plan, hook.clone()).await?;
            let cell = LeafCell::reopenable(leaf, join, index, plan, hook);
            Ok::<_, TrialError>((index, Arc::new(cell)))
        });
    }
    // In slot order: leaves[i] runs workload.slots[i].
    let mut leaves: Vec<Option<Arc<LeafCell>>> = vec![None; setup.workload.slots.len()];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((index, cell))) => leaves[index] = Some(cell),
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                return Err(TrialError::Output {
                    path: setup.join.work_dir.clone(),
                    source: std::io::Error::other(e),
                });
            }
        }
    }
    Ok(leaves.into_iter().flatten().collect())
}
