//! A trial's rig and its phases: **start** (bus, hub, observer, history, leaves), **work**
//! (every slot's tasks), **drain** (every reported commit on the trunk, every broadcast
//! handled), **snapshot** (counters, bucket dumps, hub facts while everything is up),
//! **teardown** (leaves, history, hub, check, bus — in that order). The verdict is built by
//! the runner from what the phases return. Any error after start goes through [`Rig::abort`],
//! which tears down the same way (leaves stopped, hub shut down, bus stopped) before the error
//! is returned; a dropped rig (a cancelled trial) still kills every child process it started.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herd_bus::{Bus, BusOptions, BusServer, Role};
use herd_check::{Artifacts, CheckReport, HubFacts};
use herd_hub::{Access, Hub, HubConfig, HubStats, Tokens};
use herd_leaf::LeafStats;

use crate::config::{Placement, TrialConfig};
use crate::error::TrialError;
use crate::events::{EventLog, EventWriter};
use crate::join::{JoinSpec, unix_ns};
use crate::leaves::wire::UsageSummary;
use crate::leaves::{LeafFailure, LeafSet, LeafSetup};
use crate::observer::{Observer, Seen};
use crate::pacer::Pacer;
use crate::progress::Progress;
use crate::propagation::Holding;
use crate::runner::{
    RunOptions, absolute, default_out_dir, dump_kv, mkdir, output_err, tempdir, write_json,
};
use crate::slot_runner::{SlotContext, SlotReport};
use crate::telemetry::{SpanCounts, SpanTotals};
use crate::workload::Workload;

/// Seconds per trial phase, in order (`start`, `snapshot`, `teardown`, `check`; the work and
/// drain phases have their own fields).
#[derive(Default)]
pub(crate) struct Phases(pub(crate) Vec<(String, f64)>);

impl Phases {
    fn mark(&mut self, name: &str, since: Instant) {
        self.0
            .push((name.to_string(), since.elapsed().as_secs_f64()));
    }
}

/// The bus and hub of a run, with one push token per slot: what a trial and `herd hub` both
/// start before any leaf.
pub(crate) struct Core {
    pub(crate) server: BusServer,
    pub(crate) bus: Bus,
    pub(crate) hub: Hub,
    /// The hub's fail points, when a hub restart is scheduled.
    pub(crate) fail_points: Option<Arc<herd_hub::failpoint::FailPoints>>,
    pub(crate) tokens: Tokens,
    pub(crate) seed_commits: u64,
    /// Prefix of this run's leaf ids (see [`run_tag`]); fixed once, used everywhere.
    pub(crate) tag: String,
}

impl Core {
    /// Starts the bus in the config's layout and the hub on `bind` in `work_dir/hub`.
    pub(crate) async fn start(
        config: &TrialConfig,
        workload: &Workload,
        work_dir: &std::path::Path,
        bind: std::net::SocketAddr,
    ) -> Result<Core, TrialError> {
        let server = BusServer::start(config.bus_layout(), config.agents).await?;
        let bus = Bus::connect_with(
            &server.url(),
            BusOptions {
                replicas: server.replicas(),
                ..BusOptions::default()
            },
        )
        .await?;
        // Every leaf pushes with a token bound to its slot; the hub takes the slot from it.
        let slots: Vec<&str> = workload.slots.iter().map(|p| p.slot_dir.as_str()).collect();
        let tokens = Tokens::generate(&slots).map_err(|e| output_err(work_dir, e))?;
        // Fail points only when a hub restart is scheduled.
        let fail_points = config
            .faults
            .iter()
            .any(|f| f.kind == crate::faults::FaultKind::HubRestart)
            .then(|| Arc::new(herd_hub::failpoint::FailPoints::default()));
        let hub = Hub::start(HubConfig {
            dir: work_dir.join("hub"),
            bind,
            bus: Some(bus.clone()),
            mode: config.hub,
            payload_max_bytes: usize::try_from(config.payload_max_bytes).unwrap_or(usize::MAX),
            access: Access::Tokens(tokens.clone()),
            fence_claims: true,
            fail_points: fail_points.clone(),
            ..Default::default()
        })
        .await?;
        let seed_commits = hub.trunk_len();
        let tag = run_tag(&server);
        Ok(Core {
            server,
            bus,
            hub,
            fail_points,
            tokens,
            seed_commits,
            tag,
        })
    }

    /// Writes `plan.json`, the checker's expected task set, from the workload (before any
    /// leaf starts: what the run set out to do, whatever happens next).
    pub(crate) fn write_plan(
        &self,
        workload: &Workload,
        board: crate::board::Board,
        out_dir: &std::path::Path,
    ) -> Result<(), TrialError> {
        let leaves: Vec<String> = workload
            .slots
            .iter()
            .map(|p| crate::leaves::leaf_id(&self.tag, p.slot))
            .collect();
        // Who opens what: each leaf its slot's tasks, or the board all of them.
        let tasks_per_leaf = match board {
            crate::board::Board::Own => leaves
                .iter()
                .zip(&workload.slots)
                .map(|(id, p)| (id.clone(), p.tasks.len() as u64))
                .collect(),
            crate::board::Board::Shared => [(
                crate::board::opener(&self.tag),
                workload.total_tasks() as u64,
            )]
            .into_iter()
            .collect(),
        };
        let plan = herd_check::Plan {
            tasks_per_leaf,
            leaves,
        };
        write_json(&out_dir.join("plan.json"), &plan)
    }

    /// The join file of this run: leaves reach the hub at `hub_url`.
    pub(crate) fn join_spec(
        &self,
        config: &TrialConfig,
        workload: &Workload,
        hub_url: String,
        dirs: (PathBuf, PathBuf),
        zero_unix_ns: u64,
    ) -> JoinSpec {
        let (out_dir, work_dir) = dirs;
        JoinSpec {
            hub_url,
            bus_url: self.server.url_as(Role::Leaf),
            slot_bus_urls: slot_bus_urls(&self.server, workload.slots.len()),
            bus_domain: self.server.leaf_domain().map(str::to_string),
            tokens: workload
                .slots
                .iter()
                .filter_map(|p| {
                    let token = self.tokens.token_for(&p.slot_dir)?;
                    Some((p.slot_dir.clone(), token))
                })
                .collect(),
            config: config.clone(),
            zero_unix_ns,
            out_dir,
            work_dir,
            tag: self.tag.clone(),
        }
    }
}

/// What the verdict needs from the run besides the phases' results; outlives the rig.
pub(crate) struct Facts {
    pub(crate) config: TrialConfig,
    pub(crate) workload: Workload,
    pub(crate) out_dir: PathBuf,
    pub(crate) nats_version: String,
    pub(crate) holdings: Arc<Mutex<Vec<Holding>>>,
    pub(crate) leaf_ids: Vec<String>,
    pub(crate) phases: Phases,
    pub(crate) started: Instant,
    pub(crate) rss_before_leaves_kib: u64,
    /// The span-counting layer, for in-process leaves (a process's spans are its own).
    pub(crate) counts: Option<SpanCounts>,
}

/// Everything a running trial holds.
pub(crate) struct Rig {
    pub(crate) facts: Facts,
    work_dir: PathBuf,
    temp_work: Option<tempfile::TempDir>,
    core: Core,
    observer: Observer,
    log: EventLog,
    writer: EventWriter,
    leaves: LeafSet,
    join: JoinSpec,
    ctx: Option<Arc<SlotContext>>,
    /// The fault schedule, run beside the work.
    faults: Vec<crate::faults::driver::Planned>,
    /// The leaves' proxied links, when link faults are scheduled.
    links: Option<crate::faults::driver::Links>,
    /// Tmpfs mounts of disk-full targets (unmounted after the check; dropped: lazily).
    mounts: Vec<crate::faults::disk::Tmpfs>,
}

/// What the work phase produced.
pub(crate) struct Work {
    pub(crate) reports: Vec<SlotReport>,
    /// When the work began (due times count from here).
    pub(crate) work_started: Instant,
    pub(crate) work_secs: f64,
    pub(crate) hub_before: HubStats,
    pub(crate) spans_before: Option<SpanTotals>,
    /// What the fault driver did.
    pub(crate) faults: Vec<crate::faults::FaultRecord>,
    /// Soak: process samples taken during the work.
    pub(crate) samples: Vec<crate::soak::Sample>,
    /// Tasks the shared board opened (0 when leaves open their own).
    pub(crate) board_opened: u64,
}

/// What the drain found.
pub(crate) struct Drain {
    pub(crate) reported: Vec<String>,
    pub(crate) on_trunk: u64,
    pub(crate) settled: bool,
    pub(crate) drain_secs: f64,
}

/// What was read while everything was up.
pub(crate) struct Snapshot {
    pub(crate) hub_stats: HubStats,
    pub(crate) hub_commits: u64,
    pub(crate) leaf_stats: Vec<LeafStats>,
    pub(crate) tips: Vec<Seen>,
    pub(crate) leaf_processes: Option<UsageSummary>,
}

/// What teardown leaves for the verdict.
pub(crate) struct Torn {
    pub(crate) facts: Facts,
    pub(crate) leaf_failures: Vec<LeafFailure>,
    pub(crate) check: CheckReport,
    pub(crate) temp_work: Option<tempfile::TempDir>,
}

impl Rig {
    /// Brings up bus, hub, observer, history and leaves. On failure, whatever started is
    /// dropped (servers and child processes die with their handles).
    pub(crate) async fn start(config: TrialConfig, opts: &RunOptions) -> Result<Rig, TrialError> {
        let started = Instant::now();
        let zero_unix_ns = unix_ns();
        config.validate()?;
        let workload = Workload::generate(&config);
        let out_dir = config.out.clone().unwrap_or_else(default_out_dir);
        mkdir(&out_dir)?;
        let temp_work = if config.keep { None } else { Some(tempdir()?) };
        let work_dir = temp_work
            .as_ref()
            .map_or_else(|| out_dir.join("state"), |t| t.path().to_path_buf());
        mkdir(&work_dir.join("leaves"))?;

        let mut core =
            Core::start(&config, &workload, &work_dir, ([127, 0, 0, 1], 0).into()).await?;
        let faults = crate::faults::driver::plan(
            &config.faults,
            config.seed,
            &mut core.server,
            workload.slots.len(),
        )?;
        let nats_version = core
            .server
            .fixture_version()
            .unwrap_or_else(|| format!("external ({})", core.server.public_url()));
        // F11: each disk-full target's directory on a tmpfs of its own, before it opens.
        let mut mounts = Vec::new();
        let targets = if crate::faults::disk::can_mount() {
            crate::faults::driver::disk_full_targets(&faults)
        } else {
            Vec::new() // the leaf's ENOSPC fail point stands in
        };
        for k in targets {
            let id = crate::leaves::leaf_id(&core.tag, workload.slots[k].slot);
            let dir = work_dir.join("leaves").join(id);
            mounts.push(crate::faults::disk::Tmpfs::mount(&dir).map_err(|e| output_err(&dir, e))?);
        }
        let observer = Observer::start(&core.bus).await?;
        let (log, writer) = EventLog::create(&out_dir.join("events.jsonl"), started)
            .map_err(|e| output_err(&out_dir, e))?;
        let holdings = Arc::new(Mutex::new(Vec::<Holding>::new()));
        let (rss_before_leaves_kib, _) = crate::scale::rss_kib();
        let dirs = (absolute(&out_dir)?, absolute(&work_dir)?);
        let mut join = core.join_spec(&config, &workload, core.hub.url(), dirs, zero_unix_ns);
        let links = proxy_links(&faults, &core, config.seed, &mut join).await?;
        core.write_plan(&workload, config.board, &out_dir)?;
        let leaves = LeafSet::open(
            config.leaves,
            LeafSetup {
                join: &join,
                join_path: &out_dir.join("join.json"),
                workload: &workload,
                log: &log,
                holdings: &holdings,
                leaf_exe: opts.leaf_exe.as_deref(),
                zero: started,
            },
        )
        .await?;
        let mut phases = Phases::default();
        phases.mark("start", started);
        let leaf_ids = leaves.ids();
        let counts = opts
            .counts
            .clone()
            .filter(|_| config.leaves == Placement::InProcess);
        Ok(Rig {
            facts: Facts {
                config,
                workload,
                out_dir,
                nats_version,
                holdings,
                leaf_ids,
                phases,
                started,
                rss_before_leaves_kib,
                counts,
            },
            work_dir,
            temp_work,
            core,
            observer,
            log,
            writer,
            leaves,
            join,
            ctx: None,
            faults,
            links,
            mounts,
        })
    }

    /// Runs every slot's tasks.
    pub(crate) async fn work(&mut self, quiet: bool) -> Work {
        // A shared board: the trial opens every task into one pool before any leaf starts.
        let (board, board_opened) = if self.facts.config.board == crate::board::Board::Shared {
            let pool = crate::board::pool(&self.facts.workload, &self.core.tag);
            let opened = crate::board::open(&self.core.bus, &pool, &self.log, &self.core.tag).await;
            (Some(Arc::new(pool)), opened as u64)
        } else {
            (None, 0)
        };
        let progress = Progress::default();
        let reporter = progress.report(self.facts.config.total_tasks(), quiet);
        let ctx = Arc::new(SlotContext {
            log: self.log.clone(),
            pacer: Pacer::new(self.facts.config.pace_per_min),
            progress,
            zero: Instant::now(),
            leaf_faults: crate::faults::leaf::Armory::default(),
            crash: None,
        });
        self.ctx = Some(ctx.clone());
        let hub_before = self.core.hub.stats();
        let spans_before = self.facts.counts.as_ref().map(SpanCounts::totals);
        let work_started = ctx.zero;
        let (done_tx, done) = tokio::sync::watch::channel(false);
        // Soak: this process (hub, in-process leaves), each leaf process, every bus server.
        let sampler = self.facts.config.duration.map(|_| {
            let mut processes = vec![("herd".to_string(), std::process::id())];
            processes.extend(self.leaves.pids());
            processes.extend(
                crate::faults::driver::servers(&mut self.core.server)
                    .into_iter()
                    .filter_map(|(name, s)| s.pid().map(|pid| (name, pid))),
            );
            let every = Duration::from_secs(self.facts.config.sample_secs);
            tokio::spawn(crate::soak::sample(
                processes,
                every,
                work_started,
                done.clone(),
            ))
        });
        let driver = crate::faults::driver::run(
            std::mem::take(&mut self.faults),
            &mut self.core.server,
            crate::faults::driver::DriverInput {
                bus: &self.core.bus,
                progress: &ctx.progress,
                log: &self.log,
                zero: self.facts.started,
                work_started,
                done,
                links: self.links.as_ref(),
                hub: &mut self.core.hub,
                fail_points: self.core.fail_points.clone(),
                armory: &ctx.leaf_faults,
                leaves: &self.facts.leaf_ids,
            },
        );
        let work = async {
            let reports = self
                .leaves
                .work(&self.facts.workload, board, ctx.clone())
                .await;
            let _ = done_tx.send(true);
            (reports, work_started.elapsed().as_secs_f64())
        };
        let ((reports, work_secs), faults) = tokio::join!(work, driver);
        let samples = match sampler {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        reporter.finish().await;
        Work {
            reports,
            work_started,
            work_secs,
            hub_before,
            spans_before,
            faults,
            samples,
            board_opened,
        }
    }

    /// Waits until every reported commit is on the trunk and every leaf handled every
    /// broadcast (and, with span counting, every sync span closed).
    pub(crate) async fn drain(&mut self, work: &Work) -> Drain {
        let drain_started = Instant::now();
        let stall = Duration::from_secs(self.facts.config.drain_timeout_secs);
        let reported: Vec<String> = work
            .reports
            .iter()
            .flat_map(|r| r.commits.iter().map(|(oid, _)| oid.clone()))
            .collect();
        let on_trunk = wait_on_trunk(&self.core.hub, &reported, drain_started + stall).await;
        let broadcasts = self.core.hub.stats().broadcasts;
        let mut settled = self.leaves.drain(broadcasts, stall).await;
        if let (Some(counts), Some(before)) = (&self.facts.counts, &work.spans_before) {
            let received: u64 = self.leaves.stats().iter().map(|s| s.tips_received).sum();
            settled &= wait_spans_closed(counts, before, received, Instant::now() + stall).await;
        }
        Drain {
            reported,
            on_trunk,
            settled,
            drain_secs: drain_started.elapsed().as_secs_f64(),
        }
    }

    /// Reads counters and writes the bucket dumps and hub facts while everything is up.
    pub(crate) async fn snapshot(&mut self) -> Result<Snapshot, TrialError> {
        let snapshot_started = Instant::now();
        let hub_stats = self.core.hub.stats();
        let hub_commits = self
            .core
            .hub
            .trunk_len()
            .saturating_sub(self.core.seed_commits);
        let leaf_stats = self.leaves.stats();
        let live_claims = self.observer.claims().await;
        dump_kv(&self.core.bus, &self.facts.out_dir, live_claims).await?;
        write_json(
            &self.facts.out_dir.join("hub.json"),
            &HubFacts {
                commits_landed: hub_stats.commits_landed,
                seed_commits: self.core.seed_commits,
            },
        )?;
        let leaf_processes = self.leaves.usage();
        self.facts.phases.mark("snapshot", snapshot_started);
        Ok(Snapshot {
            hub_stats,
            hub_commits,
            leaf_stats,
            tips: Vec::new(),
            leaf_processes,
        })
    }

    /// Stops leaves (ledgers flushed), finishes and merges the history, shuts the hub down,
    /// checks the history and stops the bus. Returns the observer's broadcasts too.
    pub(crate) async fn teardown(mut self, snapshot: &mut Snapshot) -> Result<Torn, TrialError> {
        let teardown_started = Instant::now();
        snapshot.tips = self.observer.stop().await;
        let leaf_failures = self.leaves.shutdown().await;
        drop(self.ctx);
        drop(self.log);
        let lines = self
            .writer
            .finish()
            .await
            .map_err(|e| output_err(&self.facts.out_dir, e))?;
        tracing::debug!(lines, "history written");
        if self.facts.config.leaves == Placement::Process {
            // Every leaf's part, and the parts of its runs after a leaf fault restarted it.
            let mut parts: Vec<PathBuf> = Vec::new();
            for id in &self.facts.leaf_ids {
                for n in 0.. {
                    let part = self.join.events_part(id, n);
                    if n > 0 && !part.exists() {
                        break;
                    }
                    parts.push(part);
                }
            }
            let events = self.facts.out_dir.join("events.jsonl");
            let merged =
                crate::events::merge(&events, &parts).map_err(|e| output_err(&events, e))?;
            tracing::debug!(merged, "leaf histories merged");
        }
        self.core.hub.shutdown().await;
        self.facts.phases.mark("teardown", teardown_started);
        let check_started = Instant::now();
        let check = herd_check::check(&Artifacts::with_work(&self.facts.out_dir, &self.work_dir));
        self.facts.phases.mark("check", check_started);
        for mount in self.mounts.drain(..) {
            if let Err(e) = mount.release(self.facts.config.keep) {
                tracing::warn!(error = %e, "unmounting a disk-full tmpfs");
            }
        }
        self.core.server.stop()?;
        Ok(Torn {
            facts: self.facts,
            leaf_failures,
            check,
            temp_work: self.temp_work,
        })
    }

    /// The error path after start: the same teardown order, errors ignored, then `error`.
    pub(crate) async fn abort(self, error: TrialError) -> TrialError {
        let Rig {
            core,
            leaves,
            observer,
            ctx,
            log,
            writer,
            ..
        } = self;
        let _ = observer.stop().await;
        let _ = leaves.shutdown().await;
        drop(ctx);
        drop(log);
        let _ = writer.finish().await;
        let Core {
            mut server, hub, ..
        } = core;
        hub.shutdown().await;
        let _ = server.stop();
        error
    }
}

/// Waits until every `leaf.sync_on_broadcast` span of the run has closed (the leaf counts an
/// outcome a moment before its span ends).
async fn wait_spans_closed(
    counts: &SpanCounts,
    before: &SpanTotals,
    received: u64,
    deadline: Instant,
) -> bool {
    loop {
        if counts.totals().since(before).sync_spans >= received {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Each slot's bus URL when leaves sit on their own leaf-node servers (else none: all share one).
fn slot_bus_urls(server: &BusServer, slots: usize) -> Vec<String> {
    match server {
        BusServer::LeafNodes { .. } => (0..slots).map(|i| server.leaf_url(i)).collect(),
        _ => Vec::new(),
    }
}

fn run_tag(server: &BusServer) -> String {
    match server {
        BusServer::Fixture(_) | BusServer::LeafNodes { .. } | BusServer::Cluster(_) => {
            String::new()
        }
        BusServer::External { .. } => {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            format!("r{ms:x}-")
        }
    }
}

/// Polls the hub until every reported oid is on the trunk or the deadline passes; returns how
/// many are on the trunk.
async fn wait_on_trunk(hub: &Hub, oids: &[String], deadline: Instant) -> u64 {
    loop {
        let present = oids.iter().filter(|oid| hub.trunk_contains(oid)).count() as u64;
        if present == oids.len() as u64 || Instant::now() >= deadline {
            return present;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With link faults scheduled, puts a proxy on every leaf's link to the hub and to the bus and
/// points the join file at them (the trial's own connections stay direct).
async fn proxy_links(
    planned: &[crate::faults::driver::Planned],
    core: &Core,
    seed: u64,
    join: &mut JoinSpec,
) -> Result<Option<crate::faults::driver::Links>, TrialError> {
    let hub = core.hub.addr();
    let bus_port = match &core.server {
        BusServer::Fixture(s) => s.port(),
        // Link faults on the bus are refused for other layouts (plan); hub links need no port.
        _ => 0,
    };
    let bus: std::net::SocketAddr = ([127, 0, 0, 1], bus_port).into();
    let links = crate::faults::driver::Links::start(planned, hub, bus, seed)
        .await
        .map_err(TrialError::Links)?;
    if let Some(l) = &links {
        join.hub_url = join
            .hub_url
            .replace(&hub.to_string(), &l.hub.addr().to_string());
        if bus_port != 0 {
            let direct = format!("127.0.0.1:{bus_port}");
            join.bus_url = join.bus_url.replace(&direct, &l.bus.addr().to_string());
        }
    }
    Ok(links)
}
