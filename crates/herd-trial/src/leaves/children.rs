//! Leaves as processes: the trial spawns one `herd leaf --join FILE --slot I --controlled` per
//! slot and steps them through the run over their stdin/stdout ([`super::wire`]): ready → go →
//! worked → drain → drained → stop. A child's stderr goes to `leaf-logs/<id>.log`.
//!
//! Never waited on forever: a child that dies closes its stdout, which ends every wait on it,
//! and it is reported by name with its exit status and the tail of its log. Children are
//! killed when the set drops (`kill_on_drop`) — so an error path or a cancelled trial leaves
//! none behind — and, on Linux, when the trial process dies (`PR_SET_PDEATHSIG`).
//!
//! Leaf faults on process leaves are real kills: the trial asks the child to play the fault
//! (`Fault`); at its point (after a won claim, F6/F13; after the hub accepted its push, F7) the
//! child sends its work so far (`Crashing`) and waits; the trial SIGKILLs it, holds (for F13
//! damages its ledger and git index meanwhile) and starts it again with `--resume-after` (its
//! tip-stream position) — it reopens its directory, lands the claims its ledger holds and goes
//! on with the slot. Lines of a killed child's earlier run are ignored (each run has a
//! generation); its reports and counters are added to the new run's.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use herd_leaf::LeafStats;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::wire::{FromLeaf, ToLeaf, Usage, WireReport};
use super::{LeafSetup, leaf_id};
use crate::error::TrialError;
use crate::progress::Progress;
use crate::propagation::Holding;
use crate::slot_runner::SlotReport;

/// How long a child may take to open its leaf (clone, bus join) before the trial gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a child may take to exit after `Stop`, before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A leaf process that failed: died, exited non-zero, or spoke out of turn.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeafFailure {
    /// The leaf id.
    pub leaf: String,
    /// What happened (`exited with signal 9 (SIGKILL) before reporting its work`).
    pub what: String,
}

impl std::fmt::Display for LeafFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.leaf, self.what)
    }
}

struct Kid {
    id: String,
    /// Which run of this slot's leaf (0: the first; each restart after a leaf fault adds 1).
    generation: u32,
    /// Its killed runs' reports and counters.
    partial: Vec<SlotReport>,
    earlier: LeafStats,
    /// A leaf fault in play on it.
    fault: Option<Playing>,
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
    /// Stdout closed: nothing more will come.
    closed: bool,
    /// When the child last said anything (it says something at least once a second).
    heard: Instant,
    stats: LeafStats,
    usage: Option<Usage>,
}

enum Line {
    Msg(FromLeaf),
    Garbage(String),
    Closed,
}

/// A leaf fault being played on a child.
struct Playing {
    armed: crate::faults::leaf::Armed,
    outcome: crate::faults::leaf::LeafOutcome,
}

/// How to start (and start again) a child.
struct Spawner {
    exe: PathBuf,
    join_path: PathBuf,
    logs: PathBuf,
    work_dir: PathBuf,
    traceparent: Option<String>,
    tx: mpsc::UnboundedSender<(usize, u32, Line)>,
}

impl Spawner {
    /// Starts the child of slot `index` (`restart`: its tip position and generation).
    fn spawn(
        &self,
        index: usize,
        id: &str,
        restart: Option<(u64, u32)>,
    ) -> Result<(Child, Option<ChildStdin>, PathBuf), TrialError> {
        let log = self.logs.join(format!("{id}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| TrialError::Output {
                path: log.clone(),
                source,
            })?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("leaf")
            .arg("--join")
            .arg(&self.join_path)
            .arg("--slot")
            .arg(index.to_string())
            .arg("--controlled")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let generation = match restart {
            Some((tips_after, generation)) => {
                cmd.arg("--resume-after")
                    .arg(tips_after.to_string())
                    .arg("--incarnation")
                    .arg(generation.to_string());
                generation
            }
            None => 0,
        };
        match &self.traceparent {
            Some(tp) => cmd.env("TRACEPARENT", tp),
            None => cmd.env_remove("TRACEPARENT"),
        };
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| TrialError::LeafProcess {
            leaf: id.to_string(),
            what: format!("spawning {}: {e}", self.exe.display()),
        })?;
        let stdout = child.stdout.take().expect("stdout piped");
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let msg = match serde_json::from_str::<FromLeaf>(&line) {
                    Ok(msg) => Line::Msg(msg),
                    Err(_) => Line::Garbage(line),
                };
                if tx.send((index, generation, msg)).is_err() {
                    return;
                }
            }
            let _ = tx.send((index, generation, Line::Closed));
        });
        let stdin = child.stdin.take();
        Ok((child, stdin, log))
    }
}

/// The running children.
pub struct Children {
    kids: Vec<Kid>,
    rx: mpsc::UnboundedReceiver<(usize, u32, Line)>,
    spawner: Spawner,
    /// Leaf faults the driver arms (during the work).
    armory: crate::faults::leaf::Armory,
    zero: Instant,
    holdings: std::sync::Arc<std::sync::Mutex<Vec<Holding>>>,
    failures: Vec<LeafFailure>,
    /// How long a child may stay silent during work and drain before it is killed.
    silence: Duration,
}

impl Children {
    /// Each running child's leaf id and process id (what a soak samples).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.kids
            .iter()
            .filter_map(|k| k.child.id().map(|pid| (k.id.clone(), pid)))
            .collect()
    }

    /// Writes the join file, spawns one child per slot and waits until every one is ready.
    pub async fn spawn(setup: LeafSetup<'_>) -> Result<Children, TrialError> {
        let exe = setup.leaf_exe.ok_or_else(|| TrialError::LeafProcess {
            leaf: "*".into(),
            what: "process leaves need the herd binary (RunOptions::leaf_exe)".into(),
        })?;
        setup.join.write(setup.join_path)?;
        let logs = setup.join.out_dir.join("leaf-logs");
        for dir in [&logs, &setup.join.out_dir.join("leaf-events")] {
            std::fs::create_dir_all(dir).map_err(|source| TrialError::Output {
                path: dir.clone(),
                source,
            })?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let spawner = Spawner {
            exe: exe.to_path_buf(),
            join_path: setup.join_path.to_path_buf(),
            logs,
            work_dir: setup.join.work_dir.clone(),
            traceparent: herd_bus::trace::current_traceparent(),
            tx,
        };
        let mut kids = Vec::new();
        for (index, plan) in setup.workload.slots.iter().enumerate() {
            let id = leaf_id(&setup.join.tag, plan.slot);
            let (child, stdin, log) = spawner.spawn(index, &id, None)?;
            kids.push(Kid {
                id,
                generation: 0,
                partial: Vec::new(),
                earlier: LeafStats::default(),
                fault: None,
                stdin,
                child,
                log,
                closed: false,
                heard: Instant::now(),
                stats: LeafStats::default(),
                usage: None,
            });
        }
        let mut children = Children {
            kids,
            rx,
            spawner,
            armory: Default::default(),
            zero: setup.zero,
            holdings: setup.holdings.clone(),
            failures: Vec::new(),
            silence: Duration::from_secs(setup.join.config.leaf_silence_secs),
        };
        let ready = children
            .collect(Some(READY_TIMEOUT), None, false, |m| {
                matches!(m, FromLeaf::Ready { .. })
            })
            .await;
        if let Some(i) = ready.iter().position(Option::is_none) {
            let failure = children
                .failures
                .iter()
                .find(|f| f.leaf == children.kids[i].id)
                .cloned()
                .unwrap_or_else(|| LeafFailure {
                    leaf: children.kids[i].id.clone(),
                    what: format!("not ready after {READY_TIMEOUT:?}"),
                });
            return Err(TrialError::LeafProcess {
                leaf: failure.leaf,
                what: failure.what,
            });
        }
        Ok(children)
    }

    /// Leaf ids in slot order.
    pub fn ids(&self) -> Vec<String> {
        self.kids.iter().map(|k| k.id.clone()).collect()
    }

    /// Starts every child's tasks and collects their reports (with those of runs a leaf
    /// fault killed). Leaf faults armed in `armory` are played meanwhile.
    pub async fn work(
        &mut self,
        progress: &Progress,
        armory: &crate::faults::leaf::Armory,
    ) -> Vec<SlotReport> {
        self.armory = armory.clone();
        self.send_all(&ToLeaf::Go).await;
        let zero = self.zero;
        let worked = self
            .collect(None, Some(progress), true, |m| {
                matches!(m, FromLeaf::Worked(_))
            })
            .await;
        let mut reports = Vec::new();
        for (kid, msg) in self.kids.iter_mut().zip(worked) {
            let mut report = match msg {
                Some(FromLeaf::Worked(report)) => WireReport::into_report(*report, zero),
                // Died after a restart: what its killed runs did still counts.
                _ if !kid.partial.is_empty() => SlotReport {
                    leaf: kid.id.clone(),
                    ..Default::default()
                },
                _ => continue,
            };
            for earlier in kid.partial.drain(..) {
                report.absorb(earlier);
            }
            reports.push(report);
        }
        reports
    }

    /// Asks every child to drain; true when every live one settled.
    pub async fn drain(&mut self, broadcasts: u64, stall: Duration) -> bool {
        // A restarted leaf took its tip stream up where its killed run stopped: it owes the
        // broadcasts that run did not receive.
        for index in 0..self.kids.len() {
            let owed = broadcasts.saturating_sub(self.kids[index].earlier.tips_received);
            self.send_to(
                index,
                &ToLeaf::Drain {
                    broadcasts: owed,
                    stall_secs: stall.as_secs().max(1),
                },
            )
            .await;
        }
        let drained = self
            .collect(None, None, true, |m| matches!(m, FromLeaf::Drained { .. }))
            .await;
        let mut all = true;
        for (index, msg) in drained.into_iter().enumerate() {
            let Some(FromLeaf::Drained {
                settled,
                stats,
                holdings,
                usage,
            }) = msg
            else {
                all = false;
                continue;
            };
            all &= settled;
            let mut total = self.kids[index].earlier;
            total.absorb(&stats);
            self.kids[index].stats = total;
            self.kids[index].usage = Some(usage);
            let mut held = self.holdings.lock().expect("holdings lock");
            for (oid, ns) in holdings {
                if let Ok(oid) = git2::Oid::from_str(&oid) {
                    held.push(Holding {
                        leaf: index as u32,
                        oid,
                        at: super::wire::at(self.zero, ns),
                    });
                }
            }
        }
        all
    }

    /// Each child's counters as its drain reported them (zero for a child that died).
    pub fn stats(&self) -> Vec<LeafStats> {
        self.kids.iter().map(|k| k.stats).collect()
    }

    /// Resource use of every child that drained.
    pub fn usage(&self) -> Vec<Usage> {
        self.kids.iter().filter_map(|k| k.usage).collect()
    }

    /// Stops every child and waits for it (killing it after [`STOP_TIMEOUT`]); returns every
    /// failure seen during the run.
    pub async fn shutdown(mut self) -> Vec<LeafFailure> {
        self.send_all(&ToLeaf::Stop).await;
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        let waits = self.kids.iter_mut().map(|kid| async move {
            kid.stdin = None;
            let what = match tokio::time::timeout_at(deadline, kid.child.wait()).await {
                Ok(Ok(status)) if status.success() => return None,
                Ok(Ok(status)) => format!("{} at stop{}", describe(status), tail(&kid.log)),
                Ok(Err(e)) => format!("waiting for it: {e}"),
                Err(_) => {
                    let _ = kid.child.kill().await;
                    format!("did not exit within {STOP_TIMEOUT:?} of stop; killed")
                }
            };
            Some(LeafFailure {
                leaf: kid.id.clone(),
                what,
            })
        });
        let stopped = futures::future::join_all(waits).await;
        for failure in stopped.into_iter().flatten() {
            // A child that died mid-run is already reported (with its log) once.
            if !self.failures.iter().any(|f| f.leaf == failure.leaf) {
                self.failures.push(failure);
            }
        }
        self.failures
    }

    async fn send_all(&mut self, msg: &ToLeaf) {
        for index in 0..self.kids.len() {
            self.send_to(index, msg).await;
        }
    }

    async fn send_to(&mut self, index: usize, msg: &ToLeaf) {
        let mut line = serde_json::to_string(msg).expect("wire messages serialize");
        line.push('\n');
        let kid = &mut self.kids[index];
        if let Some(stdin) = &mut kid.stdin
            && (stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err())
        {
            kid.stdin = None;
        }
    }

    /// Hands every leaf fault the driver armed to its child.
    async fn deal_faults(&mut self) {
        for index in 0..self.kids.len() {
            if self.kids[index].fault.is_some() {
                continue;
            }
            let Some(armed) = self.armory.take(&self.kids[index].id) else {
                continue;
            };
            use crate::faults::leaf::LeafFault;
            let fault = match armed.fault {
                LeafFault::Kill => "kill",
                LeafFault::Halt => "halt",
                LeafFault::Damage => "damage",
                // Refused by the configuration; never played as another fault.
                LeafFault::Pause | LeafFault::DiskFull => {
                    let outcome = crate::faults::leaf::LeafOutcome {
                        error: Some("not played on a process leaf".into()),
                        ..Default::default()
                    };
                    let _ = armed.report.send(outcome);
                    continue;
                }
            };
            self.send_to(
                index,
                &ToLeaf::Fault {
                    fault: fault.into(),
                },
            )
            .await;
            self.kids[index].fault = Some(Playing {
                armed,
                outcome: Default::default(),
            });
        }
    }

    /// A child reached its leaf fault's point: SIGKILL it, hold (damage its state for F13)
    /// and start it again where it was. The new run's `Ready` completes the fault.
    async fn crash(
        &mut self,
        index: usize,
        report: WireReport,
        stats: LeafStats,
        tip: u64,
        task: String,
    ) {
        let zero = self.zero;
        let kid = &mut self.kids[index];
        let Some(playing) = kid.fault.as_mut() else {
            return;
        };
        let _ = kid.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), kid.child.wait()).await;
        playing.outcome.injected = Some(Instant::now());
        playing.outcome.task = task;
        kid.partial.push(WireReport::into_report(report, zero));
        kid.earlier.absorb(&stats);
        // Until the new run drains, its killed runs' counters are what there is.
        kid.stats = kid.earlier;
        kid.stdin = None;
        let (hold, fault) = (playing.armed.hold, playing.armed.fault);
        if fault == crate::faults::leaf::LeafFault::Damage {
            let dir = self.spawner.work_dir.join("leaves").join(&kid.id);
            if let Err(e) = crate::faults::leaf::damage(&dir) {
                playing.outcome.error = Some(format!("damaging {}: {e}", dir.display()));
            }
        }
        tokio::time::sleep(hold).await;
        kid.generation += 1;
        match self
            .spawner
            .spawn(index, &kid.id, Some((tip, kid.generation)))
        {
            Ok((child, stdin, log)) => {
                kid.child = child;
                kid.stdin = stdin;
                kid.log = log;
                kid.closed = false;
            }
            Err(e) => {
                let mut playing = kid.fault.take().expect("in play");
                playing.outcome.error = Some(format!("restart: {e}"));
                let _ = playing.armed.report.send(playing.outcome);
                self.failures.push(LeafFailure {
                    leaf: kid.id.clone(),
                    what: format!("not started again after a leaf fault: {e}"),
                });
                kid.closed = true;
            }
        }
        // The others spoke meanwhile (their lines wait in the channel).
        for kid in &mut self.kids {
            kid.heard = Instant::now();
        }
    }

    /// Waits for one message matching `want` from every child whose stdout is open; a child
    /// that closes first is reaped and recorded as a failure. Progress lines feed `progress`.
    /// With `watch`, a child silent for longer than the silence limit is killed and recorded.
    async fn collect(
        &mut self,
        timeout: Option<Duration>,
        progress: Option<&Progress>,
        watch: bool,
        want: impl Fn(&FromLeaf) -> bool,
    ) -> Vec<Option<FromLeaf>> {
        let mut got: Vec<Option<FromLeaf>> = self.kids.iter().map(|_| None).collect();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut deal = tokio::time::interval(Duration::from_millis(20));
        for kid in &mut self.kids {
            kid.heard = Instant::now();
        }
        loop {
            let pending = self
                .kids
                .iter()
                .zip(&got)
                .any(|(k, g)| !k.closed && g.is_none());
            if !pending {
                return got;
            }
            let next = tokio::select! {
                next = self.rx.recv() => next,
                () = sleep_until(deadline) => return got,
                _ = tick.tick(), if watch => {
                    self.kill_silent(&got);
                    continue;
                }
                _ = deal.tick(), if progress.is_some() => {
                    self.deal_faults().await;
                    continue;
                }
            };
            let Some((index, generation, line)) = next else {
                return got;
            };
            if generation != self.kids[index].generation {
                // A run a leaf fault killed: its last words (the closing stdout) are moot.
                continue;
            }
            self.kids[index].heard = Instant::now();
            match line {
                Line::Msg(FromLeaf::Crashing {
                    report,
                    stats,
                    tip_position,
                    task,
                }) => {
                    self.crash(index, *report, stats, tip_position, task).await;
                }
                Line::Msg(FromLeaf::Ready { rebuilt, .. }) if self.kids[index].fault.is_some() => {
                    // Started again: go on, and the fault is played out.
                    self.send_to(index, &ToLeaf::Go).await;
                    let kid = &mut self.kids[index];
                    if let Some(mut playing) = kid.fault.take() {
                        let now = Instant::now();
                        playing.outcome.healed = Some(now);
                        let by = if rebuilt {
                            "the restarted leaf process: damaged ledger rebuilt from the bus"
                        } else {
                            "the restarted leaf process: claim resumed from its ledger"
                        };
                        playing.outcome.detected = Some((now, by.into()));
                        let _ = playing.armed.report.send(playing.outcome);
                    }
                }
                Line::Msg(FromLeaf::Progress { tasks, commits }) => {
                    if let Some(p) = progress {
                        p.add(tasks, commits);
                    }
                }
                Line::Msg(msg) if want(&msg) && got[index].is_none() => got[index] = Some(msg),
                Line::Msg(msg) => {
                    tracing::warn!(leaf = %self.kids[index].id, ?msg, "leaf process spoke out of turn");
                }
                Line::Garbage(text) => {
                    tracing::warn!(leaf = %self.kids[index].id, %text, "unreadable line from leaf process");
                }
                Line::Closed => {
                    let kid = &mut self.kids[index];
                    kid.closed = true;
                    kid.stdin = None;
                    if let Some(playing) = kid.fault.take_if(|p| p.outcome.injected.is_some()) {
                        // Started again after the fault, and gone before it was ready.
                        let mut outcome = playing.outcome;
                        outcome.error = Some("the restarted leaf process died".into());
                        let _ = playing.armed.report.send(outcome);
                    }
                    let known = self.failures.iter().any(|f| f.leaf == kid.id);
                    if got[index].is_none() && !known {
                        let status =
                            match tokio::time::timeout(Duration::from_secs(10), kid.child.wait())
                                .await
                            {
                                Ok(Ok(status)) => describe(status),
                                _ => "closed its output but did not exit".to_string(),
                            };
                        self.failures.push(LeafFailure {
                            leaf: kid.id.clone(),
                            what: format!("{status} mid-run{}", tail(&kid.log)),
                        });
                    }
                }
            }
        }
    }
}

impl Children {
    /// Kills every child still owing a message that has been silent past the limit (stopped,
    /// hung, or starved of CPU for that long); its closing stdout then ends the wait on it.
    fn kill_silent(&mut self, got: &[Option<FromLeaf>]) {
        let limit = self.silence;
        for (kid, g) in self.kids.iter_mut().zip(got) {
            let owing = !kid.closed && g.is_none();
            let known = self.failures.iter().any(|f| f.leaf == kid.id);
            if owing && !known && kid.heard.elapsed() > limit {
                let _ = kid.child.start_kill();
                self.failures.push(LeafFailure {
                    leaf: kid.id.clone(),
                    what: format!("silent for {limit:?} (hung or stopped); killed"),
                });
            }
        }
    }
}

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// `exited with code 3` / `killed by signal 9 (SIGKILL)`.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
        _ => format!("ended: {status}"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        _ => "signal",
    }
}

/// The last lines of a child's log, for a failure message.
fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let last = lines[lines.len().saturating_sub(5)..].join("\n    ");
    format!(" (log {}):\n    {last}", log.display())
}

fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
