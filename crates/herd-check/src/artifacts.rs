//! Where a run's raw artifacts live, and loading them. The layout of an output directory:
//!
//! ```text
//! events.jsonl        the history (one HistoryEvent per line)
//! kv-tasks.jsonl      every stored revision of bucket herd-tasks (one KvRecord per line)
//! kv-claims.jsonl     every stored revision of bucket herd-claims
//! hub.json            {"commits_landed": N, "seed_commits": S}
//! plan.json           {"tasks_per_leaf": {"leaf-0": T, ...}} — what the run set out to do
//! spans.jsonl         optional: the run's spans as a collector stored them (OTLP JSON lines)
//! state/hub/           the hub's bare repository          (kept with --keep)
//! state/leaves/<id>/   each leaf's directory: clone + ledger.sqlite (kept with --keep)
//! ```

use std::path::{Path, PathBuf};

use herd_bus::KvRecord;
use serde::{Deserialize, Serialize};

use crate::history::HistoryEvent;

/// What the hub reported about itself at the end of the run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubFacts {
    /// Commits the hub landed on the trunk (`pushes_accepted` in files written before the merge
    /// queue, when one push landed one commit).
    #[serde(alias = "pushes_accepted")]
    pub commits_landed: u64,
    /// Commits on the trunk before the trial (the seed).
    pub seed_commits: u64,
}

/// What the run set out to do, written from the configuration before any leaf starts: the
/// checker's expected task set, so a history that lost tasks (or is empty) cannot pass.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Tasks each opener was to open (and see closed), by id: each leaf its own, or a shared
    /// board's opener all of them.
    pub tasks_per_leaf: std::collections::BTreeMap<String, u64>,
    /// The run's leaves (empty in older plans: then the openers are the leaves).
    #[serde(default)]
    pub leaves: Vec<String>,
}

impl Plan {
    /// Whether `id` is one of this run's leaves.
    pub fn has_leaf(&self, id: &str) -> bool {
        if self.leaves.is_empty() {
            self.tasks_per_leaf.contains_key(id)
        } else {
            self.leaves.iter().any(|l| l == id)
        }
    }
}

/// Paths of every artifact the checker reads.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// `events.jsonl`.
    pub events: PathBuf,
    /// `kv-tasks.jsonl`.
    pub kv_tasks: PathBuf,
    /// `kv-claims.jsonl`.
    pub kv_claims: PathBuf,
    /// `hub.json`.
    pub hub_facts: PathBuf,
    /// `plan.json`.
    pub plan: PathBuf,
    /// The hub's bare repository.
    pub hub_repo: PathBuf,
    /// Directory holding one directory per leaf.
    pub leaves_dir: PathBuf,
    /// The run's spans as a collector stored them (OTLP JSON lines); I5 is checked when the
    /// file exists.
    pub spans: PathBuf,
}

impl Artifacts {
    /// The standard layout of an output directory.
    pub fn in_dir(dir: &Path) -> Artifacts {
        Artifacts::with_work(dir, &dir.join("state"))
    }

    /// Outputs in `out`, hub repo and leaf dirs under `work` (a temp dir when not kept).
    pub fn with_work(out: &Path, work: &Path) -> Artifacts {
        Artifacts {
            events: out.join("events.jsonl"),
            kv_tasks: out.join("kv-tasks.jsonl"),
            kv_claims: out.join("kv-claims.jsonl"),
            hub_facts: out.join("hub.json"),
            plan: out.join("plan.json"),
            hub_repo: work.join("hub"),
            leaves_dir: work.join("leaves"),
            spans: out.join("spans.jsonl"),
        }
    }
}

/// Everything loaded into memory.
pub struct Loaded {
    /// The history, in file order.
    pub events: Vec<HistoryEvent>,
    /// herd-tasks revisions.
    pub kv_tasks: Vec<KvRecord>,
    /// herd-claims revisions.
    pub kv_claims: Vec<KvRecord>,
    /// Hub facts.
    pub hub: HubFacts,
    /// The plan.
    pub plan: Plan,
    /// The hub repository.
    pub repo: git2::Repository,
    /// Leaf directories (`<leaves_dir>/<id>`), sorted.
    pub leaf_dirs: Vec<PathBuf>,
}

/// Loads every artifact; on failure returns the names of what is missing or unreadable.
pub fn load(a: &Artifacts) -> Result<Loaded, Vec<String>> {
    let mut missing = Vec::new();
    let events = jsonl::<HistoryEvent>(&a.events)
        .map_err(|e| missing.push(e))
        .ok();
    let kv_tasks = jsonl::<KvRecord>(&a.kv_tasks)
        .map_err(|e| missing.push(e))
        .ok();
    let kv_claims = jsonl::<KvRecord>(&a.kv_claims)
        .map_err(|e| missing.push(e))
        .ok();
    let hub = std::fs::read_to_string(&a.hub_facts)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<HubFacts>(&t).map_err(|e| e.to_string()))
        .map_err(|e| missing.push(format!("{}: {e}", a.hub_facts.display())))
        .ok();
    let plan = std::fs::read_to_string(&a.plan)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Plan>(&t).map_err(|e| e.to_string()))
        .map_err(|e| missing.push(format!("{}: {e}", a.plan.display())))
        .ok();
    let repo = git2::Repository::open_bare(&a.hub_repo)
        .map_err(|e| missing.push(format!("{}: {}", a.hub_repo.display(), e.message())))
        .ok();
    let leaf_dirs = match std::fs::read_dir(&a.leaves_dir) {
        Ok(rd) => {
            let mut dirs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            dirs
        }
        Err(e) => {
            missing.push(format!("{}: {e}", a.leaves_dir.display()));
            Vec::new()
        }
    };
    match (events, kv_tasks, kv_claims, hub, plan, repo) {
        (Some(events), Some(kv_tasks), Some(kv_claims), Some(hub), Some(plan), Some(repo))
            if missing.is_empty() =>
        {
            Ok(Loaded {
                events,
                kv_tasks,
                kv_claims,
                hub,
                plan,
                repo,
                leaf_dirs,
            })
        }
        _ => Err(missing),
    }
}

fn jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}
