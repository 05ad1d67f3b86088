//! The deterministic workload: what each leaf will do, generated before the trial starts.
//!
//! Slot `i` draws from its own `ChaCha8Rng` seeded with `seed + i` (as the design notes fix it),
//! so a slot's tasks do not depend on how many other slots there are, and the same seed gives a
//! byte-identical workload on any machine. [`Workload::digest`] (SHA-256 over every path, byte
//! and think time, in order) proves it.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::config::{Mode, TrialConfig};
use crate::span::Span;

/// One file a task writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// Path relative to the repository root, `slot-<i>/task-<k>/file-<j>.txt`.
    pub path: String,
    /// Content.
    pub bytes: Vec<u8>,
}

/// One task of one leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    /// Index within the slot.
    pub index: u32,
    /// Title recorded with the task.
    pub title: String,
    /// Files written by its commit.
    pub files: Vec<FileSpec>,
    /// Pause between claim and commit (the agent "thinking").
    pub think: Duration,
    /// When the task is due, after the start of the work (open model only; see
    /// [`crate::cadence`]). `None`: it starts when the slot's previous task ended.
    pub due: Option<Duration>,
}

/// All tasks of one leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPlan {
    /// Slot index = leaf index.
    pub slot: u32,
    /// The slot directory the leaf may write in.
    pub slot_dir: String,
    /// Its tasks, in order.
    pub tasks: Vec<TaskSpec>,
}

/// The whole trial's work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// One plan per leaf.
    pub slots: Vec<SlotPlan>,
}

/// The slot directory of slot `i`.
pub fn slot_dir(i: u32) -> String {
    format!("slot-{i}")
}

impl Workload {
    /// Generates the workload of `config`.
    pub fn generate(config: &TrialConfig) -> Workload {
        let slots = (0..config.agents).map(|i| plan_slot(config, i)).collect();
        Workload { slots }
    }

    /// SHA-256 over every slot, path, byte and think time, hex-encoded.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for slot in &self.slots {
            h.update(slot.slot_dir.as_bytes());
            for task in &slot.tasks {
                h.update(task.title.as_bytes());
                h.update(task.think.as_nanos().to_le_bytes());
                if let Some(due) = task.due {
                    h.update(due.as_nanos().to_le_bytes());
                }
                for f in &task.files {
                    h.update(f.path.as_bytes());
                    h.update((f.bytes.len() as u64).to_le_bytes());
                    h.update(&f.bytes);
                }
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Number of tasks over all slots.
    pub fn total_tasks(&self) -> usize {
        self.slots.iter().map(|s| s.tasks.len()).sum()
    }
}

fn plan_slot(config: &TrialConfig, slot: u32) -> SlotPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(u64::from(slot)));
    // In shared mode every leaf writes in slot 0's directory, so leaves collide for real.
    let dir_index = match config.mode {
        Mode::Disjoint => slot,
        Mode::Shared => 0,
    };
    let slot_dir = slot_dir(dir_index);
    let due = config.rate_per_agent.map(|rate| {
        crate::cadence::schedule(
            config.seed,
            slot,
            config.tasks_per_agent,
            rate,
            config.arrivals,
        )
    });
    let tasks = (0..config.tasks_per_agent)
        .map(|k| {
            let nfiles = draw(&mut rng, config.files_per_task);
            let files = (0..nfiles)
                .map(|j| {
                    let len = draw(&mut rng, config.bytes_per_file) as usize;
                    // In shared mode every leaf's task k writes the same paths: a real conflict.
                    let path = format!("{slot_dir}/task-{k}/file-{j}.txt");
                    FileSpec {
                        path,
                        bytes: text(&mut rng, len),
                    }
                })
                .collect();
            let think = Duration::from_millis(draw(&mut rng, config.think_ms));
            TaskSpec {
                index: k,
                title: format!("slot {slot} task {k}"),
                files,
                think,
                due: due.as_ref().map(|d| d[k as usize]),
            }
        })
        .collect();
    SlotPlan {
        slot,
        slot_dir,
        tasks,
    }
}

fn draw(rng: &mut ChaCha8Rng, span: Span) -> u64 {
    rng.random_range(span.min..=span.max)
}

/// Printable lines (git diffs and merges behave as with source files), newline-terminated.
fn text(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
    let mut out: Vec<u8> = (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect();
    for (i, b) in out.iter_mut().enumerate() {
        if i % 64 == 63 {
            *b = b'\n';
        }
    }
    if let Some(last) = out.last_mut() {
        *last = b'\n';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> TrialConfig {
        TrialConfig {
            agents: 4,
            tasks_per_agent: 5,
            seed,
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let a = Workload::generate(&config(1));
        let b = Workload::generate(&config(1));
        assert_eq!(a, b);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), Workload::generate(&config(2)).digest());
    }

    #[test]
    fn shape_follows_the_config() {
        let c = config(7);
        let w = Workload::generate(&c);
        assert_eq!(w.total_tasks(), 20);
        for slot in &w.slots {
            for t in &slot.tasks {
                assert!((1..=4).contains(&t.files.len()));
                assert!((10..=100).contains(&(t.think.as_millis() as u64)));
                for f in &t.files {
                    assert!((50..=2000).contains(&f.bytes.len()));
                    assert!(
                        f.path
                            .starts_with(&format!("slot-{}/task-{}/file-", slot.slot, t.index)),
                        "{}",
                        f.path
                    );
                }
            }
        }
    }

    #[test]
    fn a_slot_does_not_depend_on_the_number_of_slots() {
        let small = Workload::generate(&TrialConfig {
            agents: 2,
            ..config(3)
        });
        let large = Workload::generate(&TrialConfig {
            agents: 8,
            ..config(3)
        });
        assert_eq!(small.slots[1], large.slots[1]);
    }
}
