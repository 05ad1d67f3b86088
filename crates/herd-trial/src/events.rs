//! `EventLog`: the trial's history, streamed to `events.jsonl` as it happens (one line per task
//! phase and per broadcast outcome, format in `docs/history.md` and [`herd_check::history`]).
//!
//! Writers send lines over a channel; one task owns the file, so lines never interleave and a
//! slow disk never blocks a leaf. Lines reach the file whenever the queue runs dry, and
//! [`EventLog::sync`] waits until every line sent before it is on disk (a leaf process about to
//! be killed by a leaf fault); [`EventWriter::finish`] flushes and reports the line count.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use herd_check::history::{HistoryEvent, Op, Phase};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Sends history lines to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tx: mpsc::UnboundedSender<Item>,
    start: Instant,
}

/// What the writer task receives.
enum Item {
    Line(Box<HistoryEvent>),
    /// Flush, then answer.
    Sync(tokio::sync::oneshot::Sender<()>),
}

/// The writer task of an [`EventLog`].
pub struct EventWriter {
    handle: JoinHandle<std::io::Result<u64>>,
    path: PathBuf,
}

impl EventLog {
    /// Creates `path` and starts the writer. `start` is time zero of `t_ns`.
    pub fn create(path: &Path, start: Instant) -> std::io::Result<(EventLog, EventWriter)> {
        let file = std::fs::File::create(path)?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
        let handle = tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufWriter::new(file);
            let mut lines = 0u64;
            while let Some(item) = rx.blocking_recv() {
                let event = match item {
                    Item::Line(event) => event,
                    Item::Sync(done) => {
                        out.flush()?;
                        out.get_ref().sync_data()?;
                        let _ = done.send(());
                        continue;
                    }
                };
                serde_json::to_writer(&mut out, &event)?;
                out.write_all(b"\n")?;
                lines += 1;
                // Written out whenever the queue runs dry: a process killed mid-run leaves
                // its history whole up to its last burst, not up to the last full buffer.
                if rx.is_empty() {
                    out.flush()?;
                }
            }
            out.flush()?;
            Ok(lines)
        });
        Ok((
            EventLog { tx, start },
            EventWriter {
                handle,
                path: path.to_path_buf(),
            },
        ))
    }

    /// Nanoseconds since time zero.
    pub fn now_ns(&self) -> u64 {
        self.t_ns(Instant::now())
    }

    /// `at` as nanoseconds since time zero.
    pub fn t_ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// A line for `op`/`phase` of `leaf` (fields set by the caller through `fill`).
    pub fn record(
        &self,
        op: Op,
        phase: Phase,
        leaf: &str,
        slot: &str,
        fill: impl FnOnce(&mut HistoryEvent),
    ) {
        let mut event = HistoryEvent::new(op, phase, leaf, slot, self.now_ns());
        fill(&mut event);
        self.send(event);
    }

    /// Sends a prepared line. After the writer finished this is a no-op (the trial is over).
    pub fn send(&self, event: HistoryEvent) {
        let _ = self.tx.send(Item::Line(Box::new(event)));
    }

    /// Returns once every line sent before it is written and on disk.
    pub async fn sync(&self) {
        let (done, synced) = tokio::sync::oneshot::channel();
        if self.tx.send(Item::Sync(done)).is_ok() {
            let _ = synced.await;
        }
    }
}

impl EventWriter {
    /// Waits until every sender is dropped, flushes, and returns the number of lines.
    pub async fn finish(self) -> std::io::Result<u64> {
        match self.handle.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(format!(
                "event writer for {} died: {e}",
                self.path.display()
            ))),
        }
    }
}

/// Folds the histories other processes wrote (`parts`, each in its own time order) into
/// `into`, all lines ordered by `t_ns` (stable: a leaf's own lines keep their order). Missing
/// parts are skipped — a leaf that died before writing leaves no file; the checker then sees
/// its tasks unfinished. Returns the number of lines written.
pub fn merge(into: &Path, parts: &[PathBuf]) -> std::io::Result<u64> {
    let mut events: Vec<HistoryEvent> = Vec::new();
    for path in std::iter::once(&into.to_path_buf()).chain(parts) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path != into => continue,
            Err(e) => return Err(e),
        };
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            // A leaf killed mid-write leaves a torn last line: keep what is whole.
            match serde_json::from_str(line) {
                Ok(ev) => events.push(ev),
                Err(e) if i + 1 == text.lines().count() => {
                    tracing::warn!(path = %path.display(), error = %e, "torn last history line dropped");
                }
                Err(e) => {
                    return Err(std::io::Error::other(format!(
                        "{}:{}: {e}",
                        path.display(),
                        i + 1
                    )));
                }
            }
        }
    }
    events.sort_by_key(|e| e.t_ns);
    let mut out = std::io::BufWriter::new(std::fs::File::create(into)?);
    for ev in &events {
        serde_json::to_writer(&mut out, ev)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(events.len() as u64)
}

/// The history in `path`, line by line; an unreadable line is skipped here (the checker
/// reports it) and a missing file reads as empty.
pub fn read(path: &Path) -> Vec<HistoryEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One landed commit as the history tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct Landed<'a> {
    /// The committing leaf.
    pub leaf: &'a str,
    /// When the hub accepted it, seconds since the trial started.
    pub t_s: f64,
    /// Its latency (commit invoke → ok), ms.
    pub ms: f64,
    /// Rebase-and-retry rounds it took.
    pub fork_retries: u32,
}

/// Every `commit ok` of `events`, paired with its leaf's `commit invoke` of the same task.
pub fn landed_commits(events: &[HistoryEvent]) -> Vec<Landed<'_>> {
    let mut started: std::collections::HashMap<(&str, &str), u64> = Default::default();
    let mut out = Vec::new();
    for e in events.iter().filter(|e| e.op == Op::Commit) {
        let key = (e.leaf.as_str(), e.task.as_deref().unwrap_or(""));
        match e.phase {
            Phase::Invoke => {
                started.insert(key, e.t_ns);
            }
            Phase::Ok => {
                let from = started.get(&key).copied().unwrap_or(e.t_ns);
                out.push(Landed {
                    leaf: &e.leaf,
                    t_s: e.t_ns as f64 / 1e9,
                    ms: e.t_ns.saturating_sub(from) as f64 / 1e6,
                    fork_retries: e.fork_retries.unwrap_or(0),
                });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: Op, phase: Phase, leaf: &str, task: &str, t_ms: u64) -> HistoryEvent {
        let mut e = HistoryEvent::new(op, phase, leaf, "slot", t_ms * 1_000_000);
        e.task = Some(task.into());
        e
    }

    #[test]
    fn landed_commits_pair_each_ok_with_its_own_invoke() {
        let mut ok = ev(Op::Commit, Phase::Ok, "leaf-1", "t1", 130);
        ok.fork_retries = Some(2);
        let events = [
            ev(Op::Commit, Phase::Invoke, "leaf-0", "t0", 100),
            ev(Op::Commit, Phase::Invoke, "leaf-1", "t1", 110),
            ev(Op::Commit, Phase::Ok, "leaf-0", "t0", 105),
            ev(Op::Claim, Phase::Ok, "leaf-0", "t2", 106),
            ev(Op::Commit, Phase::Invoke, "leaf-0", "t2", 107),
            ev(Op::Commit, Phase::Fail, "leaf-0", "t2", 120),
            ok,
        ];
        let landed = landed_commits(&events);
        assert_eq!(landed.len(), 2);
        assert_eq!((landed[0].leaf, landed[0].ms), ("leaf-0", 5.0));
        assert_eq!((landed[1].leaf, landed[1].ms), ("leaf-1", 20.0));
        assert_eq!(landed[1].fork_retries, 2);
        assert!((landed[1].t_s - 0.130).abs() < 1e-9);
    }
}
