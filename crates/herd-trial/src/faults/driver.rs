//! The fault driver: runs beside the work phase, waits for each fault's trigger in schedule
//! order, injects it on the server it names, holds it, heals it, and records when each of
//! those happened and when the trial's own bus connection first noticed.
//!
//! Every start time, jitter and `any` target comes from the trial's seed, so the same seed
//! and spec inject the same faults in the same places (the repro line reruns it). A fault whose
//! trigger the work never reached is recorded as not injected (its gate fails); a fault that
//! was injected is always healed, even when the work ended meanwhile.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herd_bus::{Bus, BusServer, NatsServer};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use std::sync::Arc;

use herd_hub::failpoint::{FailPoint, FailPoints};

use super::link::{Link, LinkMode};
use super::spec::{FaultKind, FaultSpec, Target, When};
use crate::error::ConfigError;
use crate::events::EventLog;
use crate::progress::Progress;
use herd_check::{Op, Phase};

/// One fault as it will run: its spec with the seeded parts drawn.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    spec: FaultSpec,
    /// `Commits(n)`, or the start since the work began.
    trigger: Trigger,
    /// Which server: an index into [`servers`].
    server: usize,
    /// Its name in reports (`bus`, `node-1`, `local-0`).
    server_name: String,
    /// Seeds what the fault draws while it lasts (which broadcasts a replay repeats).
    seed: u64,
}

#[derive(Clone, Copy, Debug)]
enum Trigger {
    Commits(u64),
    After(Duration),
}

/// What happened to one fault, times in seconds since the trial started (the history's
/// clock).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct FaultRecord {
    /// The spec as given (one `--faults` item).
    pub spec: String,
    /// F1, F2, … (RELIABILITY.md's matrix).
    pub class: String,
    /// The server it hit.
    pub target: String,
    /// When it was injected (none: the work ended before its trigger).
    pub injected_s: Option<f64>,
    /// When it was healed.
    pub healed_s: Option<f64>,
    /// When the trial's own bus connection first noticed (a failed probe or a lost
    /// connection), if it did.
    pub probe_detected_s: Option<f64>,
    /// Broadcasts published again (tip-replay).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replayed: u64,
    /// The leaves the fault hits directly (a leaf fault's leaf and its standby; the leaves on
    /// a `local-K` server): recovery is timed on their operations. Empty: the whole herd.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaves: Vec<String>,
    /// The task a leaf fault hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Who noticed a leaf fault first (the restarted leaf, its replay guard, the standby).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_by: Option<String>,
    /// What became of a leaf fault's task (the paused push's refusal, a claim taken again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why an injection or heal failed.
    pub error: Option<String>,
}

/// The servers of `bus` that faults can hit, in target order, with their names.
pub(crate) fn servers(bus: &mut BusServer) -> Vec<(String, &mut NatsServer)> {
    match bus {
        BusServer::External { .. } => Vec::new(),
        BusServer::Fixture(s) => vec![("bus".to_string(), s)],
        BusServer::LeafNodes { hub, locals, .. } => {
            let mut out = vec![("bus".to_string(), hub)];
            out.extend(
                locals
                    .iter_mut()
                    .enumerate()
                    .map(|(k, s)| (format!("local-{k}"), s)),
            );
            out
        }
        BusServer::Cluster(nodes) => nodes
            .iter_mut()
            .enumerate()
            .map(|(k, s)| (format!("node-{k}"), s))
            .collect(),
    }
}

/// The leaves (slot indexes) whose directory a `disk-full` fault fills: each gets a tmpfs.
pub(crate) fn disk_full_targets(planned: &[Planned]) -> Vec<usize> {
    planned
        .iter()
        .filter(|p| p.spec.kind == FaultKind::DiskFull)
        .map(|p| p.server)
        .collect()
}

/// Draws the schedule from `seed`; refuses targets the bus layout does not have (naming the
/// `faults` key).
pub(crate) fn plan(
    specs: &[FaultSpec],
    seed: u64,
    bus: &mut BusServer,
    leaves: usize,
) -> Result<Vec<Planned>, ConfigError> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let cluster = matches!(bus, BusServer::Cluster(_));
    let names: Vec<String> = servers(bus).into_iter().map(|(n, _)| n).collect();
    let bad = |spec: &FaultSpec, reason: String| ConfigError::Invalid {
        key: "faults".into(),
        value: spec.to_string(),
        reason,
    };
    // Its own stream, apart from the workload's: adding a fault changes no task.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6661_756c_7473);
    let mut out = Vec::new();
    for spec in specs {
        if names.is_empty() {
            return Err(bad(
                spec,
                "faults need a bus herd starts (NATS_URL names an external one)".into(),
            ));
        }
        let trigger = match spec.at {
            When::Commits(n) => Trigger::Commits(n),
            When::After { at, jitter } => {
                let extra = rng.random_range(0..=jitter.as_millis() as u64);
                Trigger::After(at + Duration::from_millis(extra))
            }
        };
        // JetStream lives on the first server, or on every cluster node.
        let holders = if cluster { names.len() } else { 1 };
        if spec.kind.on_leaf() {
            let k = match spec.target {
                Target::Leaf(k) if k < leaves => k,
                Target::AnyLeaf if leaves > 0 => rng.random_range(0..leaves),
                _ => return Err(bad(spec, format!("this trial has {leaves} leaves"))),
            };
            out.push(Planned {
                spec: *spec,
                trigger,
                // Not a server: the leaf of slot k.
                server: k,
                server_name: format!("leaf-{k}"),
                seed: rng.random(),
            });
            continue;
        }
        if spec.kind == FaultKind::HubRestart {
            out.push(Planned {
                spec: *spec,
                trigger,
                server: 0,
                server_name: "hub".into(),
                seed: rng.random(),
            });
            continue;
        }
        if spec.kind.on_links() {
            if spec.target == Target::Bus && !matches!(bus, BusServer::Fixture(_)) {
                return Err(bad(
                    spec,
                    "link faults on the bus need --bus direct (one server)".into(),
                ));
            }
            let hub = spec.target == Target::Hub;
            out.push(Planned {
                spec: *spec,
                trigger,
                // Not a server: the link is the spec's target.
                server: 0,
                server_name: if hub { "hub-links" } else { "bus-links" }.into(),
                seed: rng.random(),
            });
            continue;
        }
        let server = match spec.target {
            Target::Bus => 0,
            Target::Any => rng.random_range(0..holders),
            Target::Node(k) if cluster && k < names.len() => k,
            Target::Local(k) if !cluster && k + 1 < names.len() => k + 1,
            Target::Node(_)
            | Target::Local(_)
            | Target::Hub
            | Target::PackWritten
            | Target::RefUpdated
            | Target::Leaf(_)
            | Target::AnyLeaf => {
                return Err(bad(
                    spec,
                    format!("this bus has servers {}", names.join(", ")),
                ));
            }
        };
        if spec.kind == FaultKind::TipReplay && server != 0 {
            return Err(bad(
                spec,
                "tip-replay publishes through the trial's bus: its target is bus".into(),
            ));
        }
        out.push(Planned {
            spec: *spec,
            trigger,
            server,
            server_name: names[server].clone(),
            seed: rng.random(),
        });
    }
    Ok(out)
}

/// Everything the driver reads while it runs.
pub(crate) struct DriverInput<'a> {
    pub(crate) bus: &'a Bus,
    pub(crate) progress: &'a Progress,
    pub(crate) log: &'a EventLog,
    /// The trial's time zero (the history's `t_ns` zero).
    pub(crate) zero: Instant,
    /// When the work began (time triggers count from here).
    pub(crate) work_started: Instant,
    /// Turns true when the work is over.
    pub(crate) done: watch::Receiver<bool>,
    /// The leaves' links, when link faults are scheduled.
    pub(crate) links: Option<&'a Links>,
    /// The hub (crashed and restarted by `hub-restart`), and its fail points.
    pub(crate) hub: &'a mut herd_hub::Hub,
    pub(crate) fail_points: Option<Arc<FailPoints>>,
    /// Where leaf faults are armed for the slot runners.
    pub(crate) armory: &'a super::leaf::Armory,
    /// Leaf ids in slot order.
    pub(crate) leaves: &'a [String],
}

/// What a probe of the hub sends: any request gets an answer.
const HUB_PROBE: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

/// Every leaf's link to the hub and to the bus, proxied (F10).
pub(crate) struct Links {
    /// To the hub.
    pub(crate) hub: Link,
    /// To the bus.
    pub(crate) bus: Link,
}

impl Links {
    /// Starts both proxies when `planned` holds a link fault.
    pub(crate) async fn start(
        planned: &[Planned],
        hub: SocketAddr,
        bus: SocketAddr,
        seed: u64,
    ) -> std::io::Result<Option<Links>> {
        if !planned.iter().any(|p| p.spec.kind.on_links()) {
            return Ok(None);
        }
        Ok(Some(Links {
            hub: Link::start(hub, seed ^ 0x68_7562).await?,
            bus: Link::start(bus, seed ^ 0x62_7573).await?,
        }))
    }

    /// The link a fault's target names, and what a probe sends through it.
    fn side(&self, target: Target) -> (&Link, &'static [u8]) {
        match target {
            // Any request gets an answer from the hub; a NATS server speaks first.
            Target::Hub => (&self.hub, HUB_PROBE),
            _ => (&self.bus, b""),
        }
    }
}

/// Runs the schedule against `bus_server`; returns one record per planned fault.
pub(crate) async fn run(
    planned: Vec<Planned>,
    bus_server: &mut BusServer,
    mut input: DriverInput<'_>,
) -> Vec<FaultRecord> {
    let mut out = Vec::new();
    for p in planned {
        let mut record = FaultRecord {
            spec: p.spec.to_string(),
            class: p.spec.kind.class().to_string(),
            target: p.server_name.clone(),
            ..Default::default()
        };
        if !wait_trigger(p.trigger, &mut input).await {
            out.push(record);
            continue;
        }
        let (zero, log) = (input.zero, input.log);
        let secs = |at: Instant| at.saturating_duration_since(zero).as_secs_f64();
        let log_line = |phase: Phase, error: Option<String>| {
            log.record(Op::Fault, phase, "herd-faults", &p.server_name, |ev| {
                ev.outcome = Some(p.spec.to_string());
                ev.error = error;
            });
        };
        // The closing line: `fail` naming the error, or `ok`.
        let log_outcome = |error: &Option<String>| {
            let phase = if error.is_some() {
                Phase::Fail
            } else {
                Phase::Ok
            };
            log_line(phase, error.clone());
        };
        let injected = Instant::now();
        if p.spec.kind.on_leaf() {
            let leaf = input.leaves.get(p.server).cloned().unwrap_or_default();
            record.leaves = vec![leaf.clone(), format!("{leaf}-standby")];
            log_line(Phase::Invoke, None);
            let outcome = leaf_fault(&p, &leaf, &mut input).await;
            if let Some(o) = outcome {
                record.task = Some(o.task);
                record.injected_s = o.injected.map(secs);
                record.healed_s = o.healed.map(secs);
                if let Some((at, by)) = o.detected {
                    record.probe_detected_s = Some(secs(at));
                    record.detected_by = Some(by);
                }
                record.error = o.error;
                record.note = o.note;
            } else {
                record.error = Some("the leaf took no claim again before the work ended".into());
            }
            log_outcome(&record.error);
            tracing::info!(fault = %p.spec, leaf = %leaf, "leaf fault played out");
            out.push(record);
            continue;
        }
        if p.spec.kind == FaultKind::HubRestart {
            let point = match p.spec.target {
                Target::PackWritten => Some(FailPoint::PackWritten),
                Target::RefUpdated => Some(FailPoint::RefUpdated),
                _ => None,
            };
            if let (Some(point), Some(fp)) = (point, &input.fail_points) {
                fp.arm(point);
                // The next push stops there; the crash follows at once.
                if tokio::time::timeout(Duration::from_secs(10), fp.hit())
                    .await
                    .is_err()
                {
                    record.error = Some(format!("fail point {point:?} not reached within 10 s"));
                }
            }
            let crashed = Instant::now();
            input.hub.crash().await;
            log_line(Phase::Invoke, None);
            record.injected_s = Some(secs(crashed));
            let addr = input.hub.addr();
            let noticed = notice_probe(addr, HUB_PROBE, p.spec.hold).await;
            record.probe_detected_s = noticed.map(secs);
            let restarted = input.hub.restart().await;
            record.healed_s = Some(secs(Instant::now()));
            match restarted {
                Ok(()) => log_line(Phase::Ok, None),
                Err(e) => {
                    record.error = Some(format!("restart: {e}"));
                    log_line(Phase::Fail, record.error.clone());
                }
            }
            tracing::info!(fault = %p.spec, "hub restarted");
            out.push(record);
            continue;
        }
        if p.spec.kind.on_links() {
            let Some(links) = input.links else {
                record.error = Some("inject: no links were proxied".into());
                log_line(Phase::Fail, record.error.clone());
                out.push(record);
                continue;
            };
            let (link, hello) = links.side(p.spec.target);
            match p.spec.kind {
                FaultKind::LinkDelay => link.set(LinkMode::Delay {
                    base: Duration::from_millis(200),
                    jitter: Duration::from_millis(100),
                }),
                FaultKind::LinkStall => link.set(LinkMode::Stall),
                _ => {
                    link.set(LinkMode::Refuse);
                    link.reset();
                }
            }
            log_line(Phase::Invoke, None);
            record.injected_s = Some(secs(injected));
            let noticed = notice_probe(link.addr(), hello, p.spec.hold).await;
            record.probe_detected_s = noticed.map(secs);
            link.set(LinkMode::Pass);
            record.healed_s = Some(secs(Instant::now()));
            log_line(Phase::Ok, None);
            tracing::info!(fault = %p.spec, target = %p.server_name, "fault healed");
            out.push(record);
            continue;
        }
        if p.spec.kind == FaultKind::TipReplay {
            log_line(Phase::Invoke, None);
            record.injected_s = Some(secs(injected));
            let (replayed, error) = replay(input.bus, p.spec.hold, p.seed).await;
            record.replayed = replayed;
            record.healed_s = Some(secs(Instant::now()));
            record.error = error.map(|e| format!("replay: {e}"));
            log_outcome(&record.error);
            out.push(record);
            continue;
        }
        if let Target::Local(k) = p.spec.target {
            // The leaves on that leaf-node server: its fault is timed on their operations.
            record.leaves = (0..input.leaves.len())
                .filter(|&i| bus_server.local_of(i) == Some(k))
                .map(|i| input.leaves[i].clone())
                .collect();
        }
        let mut list = servers(bus_server);
        let server = &mut *list[p.server].1;
        if let Err(e) = inject(p.spec.kind, server) {
            record.error = Some(format!("inject: {e}"));
            log_line(Phase::Fail, record.error.clone());
            out.push(record);
            continue;
        }
        log_line(Phase::Invoke, None);
        record.injected_s = Some(secs(injected));
        let noticed = match p.spec.target {
            // A leaf-node server the trial's own connection does not go through: probe its
            // client port (a NATS server speaks first).
            Target::Local(_) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], server.port()));
                notice_probe(addr, b"", p.spec.hold).await
            }
            _ => notice(input.bus, p.spec.hold).await,
        };
        record.probe_detected_s = noticed.map(secs);
        let healed = heal(p.spec.kind, server);
        record.healed_s = Some(secs(Instant::now()));
        match healed {
            Ok(()) => log_line(Phase::Ok, None),
            Err(e) => {
                record.error = Some(format!("heal: {e}"));
                log_line(Phase::Fail, record.error.clone());
            }
        }
        tracing::info!(fault = %p.spec, target = %p.server_name, "fault healed");
        out.push(record);
    }
    out
}

/// Arms a leaf fault for `leaf` and waits for its runner's account of it (`None`: the work
/// ended before the leaf won another claim).
async fn leaf_fault(
    p: &Planned,
    leaf: &str,
    input: &mut DriverInput<'_>,
) -> Option<super::leaf::LeafOutcome> {
    use super::leaf::{Armed, LeafFault};
    let fault = match p.spec.kind {
        FaultKind::LeafKill => LeafFault::Kill,
        FaultKind::LeafHalt => LeafFault::Halt,
        FaultKind::LeafPause => LeafFault::Pause,
        FaultKind::DiskFull => LeafFault::DiskFull,
        _ => LeafFault::Damage,
    };
    let (report, mut rx) = tokio::sync::oneshot::channel();
    input.armory.arm(
        leaf,
        Armed {
            fault,
            hold: p.spec.hold,
            report,
        },
    );
    loop {
        tokio::select! {
            biased;
            outcome = &mut rx => return outcome.ok(),
            _ = input.done.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if *input.done.borrow() {
            // Every runner has finished: an outcome is already sent, or none will be.
            input.armory.disarm(leaf);
            return rx.try_recv().ok();
        }
    }
}

/// Waits for the trigger; false when the work ended first.
async fn wait_trigger(trigger: Trigger, input: &mut DriverInput<'_>) -> bool {
    loop {
        if *input.done.borrow() {
            return false;
        }
        let reached = match trigger {
            Trigger::Commits(n) => input.progress.counts().1 >= n,
            Trigger::After(at) => input.work_started.elapsed() >= at,
        };
        if reached {
            return true;
        }
        tokio::select! {
            _ = input.done.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
}

fn inject(kind: FaultKind, server: &mut NatsServer) -> Result<(), String> {
    match kind {
        FaultKind::BusKill => server.kill().map_err(|e| e.to_string()),
        FaultKind::BusStop => signal(server, libc::SIGSTOP),
        _ => Ok(()),
    }
}

fn heal(kind: FaultKind, server: &mut NatsServer) -> Result<(), String> {
    match kind {
        // Same store, same port; blocks until the server answers (other workers run on).
        FaultKind::BusKill => {
            tokio::task::block_in_place(|| server.restart()).map_err(|e| e.to_string())
        }
        FaultKind::BusStop => signal(server, libc::SIGCONT),
        _ => Ok(()),
    }
}

fn signal(server: &NatsServer, sig: libc::c_int) -> Result<(), String> {
    let pid = server.pid().ok_or("the server is not running")?;
    // SAFETY: kill(2) on a child process this trial started.
    match unsafe { libc::kill(pid as libc::pid_t, sig) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().to_string()),
    }
}

/// For `hold`, every 50 ms publishes one of the last 32 broadcasts again (a seeded pick, the
/// newest most often: duplicates, and older ones arriving after newer — reordered). Returns
/// how many were replayed and the first error, if any.
async fn replay(bus: &Bus, hold: Duration, seed: u64) -> (u64, Option<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let until = Instant::now() + hold;
    let (mut replayed, mut error) = (0, None);
    while Instant::now() < until {
        // Squaring a uniform draw favours small distances: mostly duplicates of recent tips.
        let u: f64 = rng.random();
        let back = (u * u * 32.0) as u64;
        match bus.replay_tip(back, replayed).await {
            Ok(Some(_)) => replayed += 1,
            Ok(None) => {}
            Err(e) => {
                error.get_or_insert(e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (replayed, error)
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Holds a fault for `hold` while probing `addr` every 50 ms (connect, ask, first byte back
/// within 250 ms: a link, or the hub itself); returns when a probe first failed.
async fn notice_probe(addr: SocketAddr, hello: &[u8], hold: Duration) -> Option<Instant> {
    let until = Instant::now() + hold;
    let within = Duration::from_millis(250);
    let mut noticed = None;
    while Instant::now() + within <= until {
        if !super::link::probe(addr, hello, within).await {
            noticed = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    noticed
}

/// Holds the fault for `hold` while probing the trial's own bus connection every 50 ms (a
/// lost connection, or a read that takes over 250 ms); returns when it first noticed.
async fn notice(bus: &Bus, hold: Duration) -> Option<Instant> {
    let until = Instant::now() + hold;
    let mut noticed = None;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        if noticed.is_none() && left >= Duration::from_millis(250) {
            let lost = !bus.is_connected();
            let probe =
                tokio::time::timeout(Duration::from_millis(250), bus.task("herd-fault-probe"));
            if lost || !matches!(probe.await, Ok(Ok(_))) {
                noticed = Some(Instant::now());
            }
        }
        tokio::time::sleep(
            Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
        )
        .await;
    }
    noticed
}
