//! The task board: who opens the tasks and who may take them.
//!
//! `own` (default): each leaf opens its own slot's tasks and claims only those — claims are
//! never contended, so "claims lost: 0" says nothing. `shared`: the trial opens every task of
//! the workload into one pool before the work (as the opener `<tag>board`), and every leaf
//! walks the pool in the same order, reading each task's state and claiming the open ones: the
//! claim is the arbiter, a lost claim is counted and the leaf moves on, so claims lost, claim
//! latency under contention and claim-interval disjointness (I1b) are measured for real. A
//! leaf writes a pool task's files in its own slot (`<slot>/board-<n>/file-<j>.txt`).

use herd_bus::{Bus, TaskRecord, TaskState};
use herd_check::history::{Op, Phase};
use serde::{Deserialize, Serialize};

use crate::events::EventLog;
use crate::workload::{TaskSpec, Workload};

/// Who opens tasks and who may take them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Board {
    /// Each leaf opens and claims its own tasks.
    #[default]
    Own,
    /// One pool opened by the trial; leaves compete for every task.
    Shared,
}

impl Board {
    /// The name used in configs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Board::Own => "own",
            Board::Shared => "shared",
        }
    }
}

impl std::str::FromStr for Board {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "own" => Ok(Board::Own),
            "shared" => Ok(Board::Shared),
            other => Err(format!("unknown board {other:?} (own or shared)")),
        }
    }
}

/// One task of the shared pool.
#[derive(Clone, Debug)]
pub struct PoolTask {
    /// Its id on the bus (`<tag>board.t0007`).
    pub id: String,
    /// What it writes and how long it thinks (paths are rewritten into the taker's slot).
    pub spec: TaskSpec,
}

/// The opener of a shared board's tasks.
pub fn opener(tag: &str) -> String {
    format!("{tag}board")
}

/// The pool: every slot's tasks, interleaved (slot 0's first, slot 1's first, ..., then every
/// slot's second, ...), so the order does not favour any slot's work.
pub fn pool(workload: &Workload, tag: &str) -> Vec<PoolTask> {
    let rounds = workload
        .slots
        .iter()
        .map(|s| s.tasks.len())
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for k in 0..rounds {
        for slot in &workload.slots {
            if let Some(spec) = slot.tasks.get(k) {
                out.push(PoolTask {
                    id: format!("{}.t{:04}", opener(tag), out.len()),
                    spec: spec.clone(),
                });
            }
        }
    }
    out
}

/// Pool task `n`'s files, placed in `slot_dir` (the taker's slot).
pub fn files(task: &PoolTask, n: usize, slot_dir: &str) -> Vec<(String, Vec<u8>)> {
    task.spec
        .files
        .iter()
        .map(|f| {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path);
            (format!("{slot_dir}/board-{n:04}/{name}"), f.bytes.clone())
        })
        .collect()
}

/// Opens every pool task on the bus (state `open`, owner the board), each written to the
/// history as the board's `open`. Stops at the first task the bus refuses (the history says
/// which; the checker then finds the plan short). Returns how many it opened.
pub async fn open(bus: &Bus, pool: &[PoolTask], log: &EventLog, tag: &str) -> usize {
    let board = opener(tag);
    for (n, task) in pool.iter().enumerate() {
        let paths: Vec<String> = files(task, n, "")
            .into_iter()
            .map(|(p, _)| p.trim_start_matches('/').to_string())
            .collect();
        log.record(Op::Open, Phase::Invoke, &board, "board", |_| {});
        let record = TaskRecord {
            id: task.id.clone(),
            title: task.spec.title.clone(),
            leaf: board.clone(),
            slot: String::new(),
            paths,
            state: TaskState::Open,
            epoch: None,
            commit: None,
            updated: now_ms(),
        };
        match bus.create_task(&record).await {
            Ok(_) => log.record(Op::Open, Phase::Ok, &board, "board", |ev| {
                ev.task = Some(task.id.clone())
            }),
            Err(e) => {
                tracing::error!(task = %task.id, error = %e, "opening the shared board");
                log.record(Op::Open, Phase::Fail, &board, "board", |ev| {
                    ev.error = Some(e.to_string())
                });
                return n;
            }
        }
    }
    pool.len()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TrialConfig;

    #[test]
    fn the_pool_interleaves_slots_and_places_files_in_the_takers_slot() {
        let w = Workload::generate(&TrialConfig {
            agents: 3,
            tasks_per_agent: 2,
            ..Default::default()
        });
        let p = pool(&w, "");
        assert_eq!(p.len(), 6);
        assert_eq!(p[0].id, "board.t0000");
        assert_eq!(p[1].spec, w.slots[1].tasks[0]);
        assert_eq!(p[3].spec, w.slots[0].tasks[1]);
        let f = files(&p[4], 4, "slot-2");
        assert!(f[0].0.starts_with("slot-2/board-0004/file-0"), "{f:?}");
        assert_eq!(f.len(), p[4].spec.files.len());
    }
}
