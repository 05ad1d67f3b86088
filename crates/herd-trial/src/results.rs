//! `TrialResults`: every number a trial reports, as written to `results.json`, the stdout
//! summary block and `report.md`. All three are rendered from this one value, so they agree.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::config::TrialConfig;
use crate::gates::GateResult;
use crate::metrics::Summary;
use crate::telemetry::{ExportTotals, SpanTotals};

/// Exact counts. Each is counted once, where it happens; none is derived from another.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Tasks the workload holds.
    pub tasks_total: u64,
    /// Tasks opened (recorded in the bus and a ledger).
    pub tasks_opened: u64,
    /// Tasks closed.
    pub tasks_closed: u64,
    /// Tasks that ended failed or released.
    pub tasks_failed: u64,
    /// Commits the hub trunk gained during the trial (trunk length − length before).
    pub hub_commits: u64,
    /// Pushes the hub refused (stale tip, ...).
    pub hub_pushes_rejected: u64,
    /// Commits the leaves reported as accepted.
    pub commits_reported: u64,
    /// Reported commits found on the hub trunk after the drain.
    pub commits_on_trunk: u64,
    /// Reported commits missing from the trunk after the drain (lost work).
    pub commits_lost: u64,
    /// Rebase-and-retry rounds after a rejected push, over all commits.
    pub fork_retries: u64,
    /// Forks that could not be recovered: a real content conflict, or a push that lost every
    /// race until the retry budget ran out (those are also in `tasks_starved`).
    pub fork_unrecoverable: u64,
    /// Tasks whose push lost every race until the retry budget ran out.
    #[serde(default)]
    pub tasks_starved: u64,
    /// Pushes the hub refused on policy (the task failed at once).
    #[serde(default)]
    pub commits_refused: u64,
    /// Content conflicts leaves found rebasing (each then redone or failed by rule).
    #[serde(default)]
    pub conflicts: u64,
    /// Of the conflicts: tasks redone on the newer tip.
    #[serde(default)]
    pub conflict_redos: u64,
    /// Pushes whose outcome was unknown (reply lost, link cut) that leaves settled from the
    /// trunk (race hub): landed, or pushed again.
    #[serde(default)]
    pub pushes_settled: u64,
    /// Tasks that failed by the conflict rule (a conflict past the redo budget): ended, not
    /// lost; in `tasks_failed` too.
    #[serde(default)]
    pub tasks_failed_by_rule: u64,
    /// Claims won.
    pub claims_won: u64,
    /// Claims lost to another holder.
    pub claims_lost: u64,
    /// Tip broadcasts delivered to leaves (sum over leaves).
    pub broadcasts_delivered: u64,
    /// Broadcasts whose payload a leaf applied (no request to the hub).
    #[serde(default)]
    pub broadcasts_applied: u64,
    /// Broadcasts that made a leaf fetch.
    pub broadcasts_pulled: u64,
    /// Broadcasts skipped because the leaf already had the tip.
    pub broadcasts_skipped_idempotent: u64,
    /// Broadcasts skipped because a pull was already in flight.
    pub broadcasts_skipped_coalesced: u64,
    /// Broadcasts noted for a later fetch (on-demand sync).
    #[serde(default)]
    pub broadcasts_deferred: u64,
    /// Fetches a leaf made on its commit path (before a commit, or after a fork whose tip did
    /// not arrive), apart from broadcast-driven pulls.
    #[serde(default)]
    pub commit_fetches: u64,
}

/// Where and with what the trial ran.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Environment {
    /// herd's version.
    pub herd_version: String,
    /// The git revision the binary was built from (`-dirty` when the tree had changes).
    #[serde(default)]
    pub herd_revision: String,
    /// nats-server version (or "external" with the URL's host).
    pub nats_server: String,
    /// `git --version`.
    pub git: String,
    /// Logical CPUs.
    pub cores: usize,
    /// `std::env::consts::OS`/`ARCH`.
    pub platform: String,
    /// The file system the hub's repository, the leaves' clones and ledgers lived on (`ext4`,
    /// `tmpfs`, …; the system temp directory unless `--keep`): file creation there is part of
    /// every commit's cost. Empty when unknown.
    #[serde(default)]
    pub scratch_fs: String,
}

/// Latency summaries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Latencies {
    /// Start of `commit` → hub accepted (includes fork retries), commits that landed.
    pub commit: Summary,
    /// Start of `commit` → failure, for commits that did not land (starved, conflicting,
    /// refused): their own row, never dropped.
    #[serde(default)]
    pub commit_failed: Summary,
    /// One claim round trip (won).
    pub claim: Summary,
    /// A claim lost to another leaf (shared board): the round trip that found the task taken.
    #[serde(default)]
    pub claim_lost: Summary,
    /// A closed task from when it was due (open model) or started (closed loop) to its close:
    /// queueing behind a late slot counts.
    #[serde(default)]
    pub task: Summary,
    /// Hub accepted → another leaf has the tip (one sample per commit per other leaf).
    pub propagation: Summary,
}

/// The full result of one trial.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrialResults {
    /// The effective configuration.
    pub config: TrialConfig,
    /// SHA-256 of the generated workload.
    pub workload_digest: String,
    /// Where it ran.
    pub environment: Environment,
    /// Exact counts.
    pub counters: Counters,
    /// Latencies.
    pub latency: Latencies,
    /// Closed tasks / total tasks, 0–1.
    pub completion: f64,
    /// Hub commits per second of the work phase.
    pub hub_commits_per_sec: f64,
    /// Seconds from the first leaf start to the last task's end.
    pub work_secs: f64,
    /// Seconds the drain took.
    pub drain_secs: f64,
    /// Seconds from start to verdict.
    pub runtime_secs: f64,
    /// Whether the drain saw every reported commit on the trunk before its timeout.
    pub drained: bool,
    /// Seconds of the other phases: `start` (bus, hub, leaves), `snapshot`, `teardown`, `check`.
    #[serde(default)]
    pub phases: Vec<(String, f64)>,
    /// What the coordination cost: hub requests per commit, think floor, memory per leaf.
    #[serde(default)]
    pub scale: crate::scale::Scale,
    /// The hub's own counters at the end of the run.
    #[serde(default)]
    pub hub: herd_hub::HubStats,
    /// Each gate and its outcome.
    pub gates: Vec<GateResult>,
    /// The history checker's report over this run's raw artifacts.
    pub history_check: herd_check::CheckReport,
    /// Leaf processes that died or exited non-zero (process leaves only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaf_failures: Vec<crate::leaves::LeafFailure>,
    /// Resource use per leaf process (process leaves only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_processes: Option<crate::leaves::wire::UsageSummary>,
    /// Span totals of the run, when the counters came from spans (the same spans exported).
    pub spans: Option<SpanTotals>,
    /// Span export outcome (set by the binary after the final flush).
    pub telemetry: Option<ExportTotals>,
    /// `true` when every gate passed and no work was lost.
    pub passed: bool,
    /// The load model and how the herd kept to it.
    #[serde(default)]
    pub load: crate::cadence::Load,
    /// Soak (`duration`): process samples, growth and coordination-time variation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<crate::soak::Soak>,
    /// Each injected fault, measured against the SLA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::faults::FaultResult>,
}

impl Counters {
    /// Takes the span-derived counters (fork retries, claims, broadcast outcomes).
    pub fn take_spans(&mut self, t: &SpanTotals) {
        self.fork_retries = t.fork_retries;
        self.fork_unrecoverable = t.fork_unrecoverable;
        self.commits_refused = t.commits_refused;
        self.claims_won = t.claims_won;
        self.claims_lost = t.claims_lost;
        self.broadcasts_delivered = t.sync_spans;
        self.broadcasts_applied = t.applied;
        self.broadcasts_pulled = t.pulled;
        self.broadcasts_deferred = t.deferred;
        self.broadcasts_skipped_idempotent = t.skipped_idempotent;
        self.broadcasts_skipped_coalesced = t.skipped_coalesced;
    }
}

impl TrialResults {
    /// Writes `results.json`, `report.md` and `report.html` (which also reads the run's
    /// `events.jsonl` from `dir`) into `dir`.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("results.json"), json + "\n")?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        crate::html::write_trial(dir, self)
    }

    /// The stdout summary block (labels fixed by the design notes; extra lines below them).
    pub fn summary_block(&self) -> String {
        let c = &self.counters;
        let cfg = &self.config;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "herd trial: agents={} tasks={} total={}",
            cfg.agents, cfg.tasks_per_agent, c.tasks_total
        );
        let _ = writeln!(s, "  hub commits:        {}", c.hub_commits);
        let _ = writeln!(s, "  fork retries:       {}", c.fork_retries);
        let _ = writeln!(s, "  fork unrecoverable: {}", c.fork_unrecoverable);
        let _ = writeln!(s, "  claims won:         {}", c.claims_won);
        let _ = writeln!(s, "  claims lost:        {}", c.claims_lost);
        let _ = writeln!(s, "  broadcasts pulled:  {}", c.broadcasts_pulled);
        let _ = writeln!(
            s,
            "  broadcasts skipped (idempotent): {}",
            c.broadcasts_skipped_idempotent
        );
        let _ = writeln!(
            s,
            "  broadcasts skipped (coalesced):  {}",
            c.broadcasts_skipped_coalesced
        );
        let _ = writeln!(
            s,
            "  P50/P99 commit ms:  {:.1} / {:.1}",
            self.latency.commit.p50_ms, self.latency.commit.p99_ms
        );
        let _ = writeln!(s, "  total runtime:      {:.1}s", self.runtime_secs);
        let _ = writeln!(
            s,
            "  tasks closed:       {} / {} ({:.1}%)",
            c.tasks_closed,
            c.tasks_total,
            self.completion * 100.0
        );
        let _ = writeln!(
            s,
            "  commits lost:       {} (reported {}, on trunk {})",
            c.commits_lost, c.commits_reported, c.commits_on_trunk
        );
        let _ = writeln!(s, "  hub pushes rejected: {}", c.hub_pushes_rejected);
        let _ = writeln!(s, "  hub commits/s:      {:.1}", self.hub_commits_per_sec);
        self.scale_lines(&mut s);
        let p = &self.latency.propagation;
        let _ = writeln!(
            s,
            "  P50/P99 propagation ms: {:.1} / {:.1}",
            p.p50_ms, p.p99_ms
        );
        let _ = writeln!(
            s,
            "  P50/P99 claim ms:   {:.2} / {:.2}",
            self.latency.claim.p50_ms, self.latency.claim.p99_ms
        );
        if self.config.board == crate::board::Board::Shared {
            let l = &self.latency.claim_lost;
            let _ = writeln!(
                s,
                "  shared board:       {} claims lost to another leaf (P50/P99 {:.2} / {:.2} ms)",
                l.count, l.p50_ms, l.p99_ms
            );
        }
        self.load_lines(&mut s);
        if let Some(soak) = &self.soak {
            let _ = writeln!(
                s,
                "  soak:               {} sampled every {} s ({} samples); coordination CV {:.2} over {} windows",
                soak.duration,
                soak.sample_secs,
                soak.samples.len(),
                soak.cv,
                soak.windows.len()
            );
            for g in &soak.growth {
                let _ = writeln!(s, "    {} (middle → last third)", g.describe());
            }
        }
        if let Some(t) = &self.telemetry {
            match &t.endpoint {
                Some(url) => {
                    let _ = writeln!(s, "  spans exported:     {} to {url}", t.spans_exported);
                    let last = t
                        .last_error
                        .as_deref()
                        .map(|e| format!("; last: {e}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "  spans failed:       {} ({} failed exports{last})",
                        t.spans_failed, t.batches_failed
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  spans exported:     none (OTEL_EXPORTER_OTLP_ENDPOINT unset)"
                    );
                }
            }
        }
        crate::faults::report::summary_lines(&self.faults, &self.config, &mut s);
        let _ = writeln!(s, "  {}", self.history_check.summary_line());
        for v in &self.history_check.violations {
            let _ = writeln!(s, "    {}: {}", v.invariant, v.message);
        }
        for g in &self.gates {
            let _ = writeln!(
                s,
                "  gate {}: {} ({})",
                g.name,
                if g.passed { "pass" } else { "FAIL" },
                g.detail
            );
        }
        let _ = writeln!(s, "  verdict:            {}", self.verdict().0);
        s
    }

    /// Takes the exporter's totals once it has flushed. Spans that never reached the collector
    /// leave the trace short of the ledger (I5), so nothing can be claimed about the trace: a
    /// passing history check becomes INCONCLUSIVE (exit 3) — never a pass. (That the spans
    /// which did arrive equal the ledger is checked against a real receiver in the
    /// telemetry tests; the trial cannot read its collector back.)
    pub fn take_telemetry(&mut self, exports: ExportTotals) {
        if let Some(endpoint) = &exports.endpoint
            && exports.spans_failed > 0
            && self.history_check.verdict == herd_check::Verdict::Pass
        {
            self.history_check.verdict = herd_check::Verdict::Inconclusive;
            self.history_check.missing.push(format!(
                "I5: {} spans never reached {endpoint} (the trace cannot be checked against the ledger)",
                exports.spans_failed
            ));
        }
        self.telemetry = Some(exports);
        self.passed = self.verdict().1 == 0;
    }

    /// The verdict word and the exit code ([`crate::gates::verdict`]).
    pub fn verdict(&self) -> (&'static str, u8) {
        crate::gates::verdict(
            self.gates.iter().all(|g| g.passed),
            self.history_check.verdict,
        )
    }

    /// The lines that say what coordination cost (below the fixed labels).
    fn scale_lines(&self, s: &mut String) {
        let (c, k, cfg) = (&self.counters, &self.scale, &self.config);
        let _ = writeln!(
            s,
            "  sync / hub:         {} / {} (fairness {}, turn after {})",
            cfg.sync.as_str(),
            cfg.hub.as_str(),
            cfg.fairness.as_str(),
            cfg.turn_after
        );
        let per = if cfg.bus == crate::config::BusKind::Leafnodes {
            format!(" ({} leaves per leaf-node server)", cfg.leaves_per_server)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  leaves / bus:       {} / {}{per}",
            cfg.leaves.as_str(),
            cfg.bus.as_str()
        );
        let _ = writeln!(
            s,
            "  broadcasts applied (payload): {}",
            c.broadcasts_applied
        );
        if c.broadcasts_deferred > 0 {
            let _ = writeln!(
                s,
                "  broadcasts deferred (on-demand): {}",
                c.broadcasts_deferred
            );
        }
        let _ = writeln!(
            s,
            "  hub requests/commit: {:.2} ({} requests: {} pushes, {} fetches; {} commit-path fetches)",
            k.hub_requests_per_commit,
            k.hub_requests,
            k.hub_push_requests,
            k.hub_fetches,
            c.commit_fetches
        );
        if k.commits_replayed > 0 || cfg.hub == herd_hub::HubMode::Queue {
            let _ = writeln!(
                s,
                "  merge queue:        {} ref updates (largest {}), {} commits replayed",
                k.landing_batches, k.largest_batch, k.commits_replayed
            );
        }
        let _ = writeln!(
            s,
            "  tasks starved:      {} (refused on policy: {})",
            c.tasks_starved, c.commits_refused
        );
        if c.pushes_settled > 0 {
            let _ = writeln!(
                s,
                "  pushes settled:     {} (outcome unknown, settled from the trunk)",
                c.pushes_settled
            );
        }
        if cfg.mode == crate::config::Mode::Shared || c.conflicts > 0 {
            let _ = writeln!(
                s,
                "  conflicts:          {} detected, {} redone, {} failed by rule (budget {} redos)",
                c.conflicts, c.conflict_redos, c.tasks_failed_by_rule, cfg.conflict_redos
            );
        }
        if self.latency.commit_failed.count > 0 {
            let f = &self.latency.commit_failed;
            let _ = writeln!(
                s,
                "  P50/P99 failed commit ms: {:.1} / {:.1} ({} failed)",
                f.p50_ms, f.p99_ms, f.count
            );
        }
        let _ = writeln!(
            s,
            "  think floor:        {:.2}s (work {:.2}s = {:.2} x floor)",
            k.think_floor_secs, self.work_secs, k.work_to_think_floor
        );
        match &self.leaf_processes {
            Some(u) => {
                let _ = writeln!(
                    s,
                    "  leaf processes:     {} (peak RSS p50/max {} / {} KiB, CPU p50/max {} / {} ms)",
                    u.processes, u.rss_peak_kib_p50, u.rss_peak_kib_max, u.cpu_ms_p50, u.cpu_ms_max
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  memory per leaf:    {} KiB (process peak {} KiB)",
                    k.rss_per_leaf_kib, k.rss_peak_kib
                );
            }
        }
    }

    fn load_lines(&self, s: &mut String) {
        let (l, t) = (&self.load, &self.latency.task);
        let from = if l.model == "open" { "due" } else { "start" };
        let _ = writeln!(
            s,
            "  P50/P99 task ms:    {:.1} / {:.1} (from its {from} to its close)",
            t.p50_ms, t.p99_ms
        );
        if let (Some(rate), Some(arrivals)) = (l.rate_per_agent, &l.arrivals) {
            let _ = writeln!(
                s,
                "  open model:         {rate}/min per agent, {arrivals}: offered {:.1} tasks/min (last due at {:.1}s), closed {:.1}/min",
                l.offered_per_min, l.schedule_secs, l.closed_per_min
            );
            let _ = writeln!(
                s,
                "  start lag ms:       p50 {:.1}, p99 {:.1}, max {:.1}; backlog max {}, at the last start {} ({})",
                l.lag.p50_ms,
                l.lag.p99_ms,
                l.lag.max_ms,
                l.backlog_max,
                l.backlog_last,
                if l.kept_up {
                    "kept up"
                } else {
                    "FELL BEHIND: p99 lag over one interval"
                }
            );
        }
        if let Some(pace) = self.config.pace_per_min {
            let _ = writeln!(
                s,
                "  commit starts:      at most {} in any 60 s window (paced to {pace}/min)",
                l.commit_starts_max_per_min
            );
        }
    }

    /// `report.md`: the summary block plus the configuration and environment, for humans.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let cfg = &self.config;
        let _ = writeln!(s, "# herd trial — {}\n", self.verdict().0);
        let _ = writeln!(s, "```\n{}```\n", self.summary_block());
        let _ = writeln!(s, "## Configuration\n");
        let _ = writeln!(s, "| knob | value |\n|---|---|");
        let _ = writeln!(
            s,
            "| agents | {} |\n| tasks per agent | {} |",
            cfg.agents, cfg.tasks_per_agent
        );
        let _ = writeln!(
            s,
            "| files per task | {} |\n| bytes per file | {} |",
            cfg.files_per_task, cfg.bytes_per_file
        );
        let _ = writeln!(
            s,
            "| think ms | {} |\n| seed | {} |\n| mode | {:?} |",
            cfg.think_ms, cfg.seed, cfg.mode
        );
        let _ = writeln!(
            s,
            "| pace per min | {} |",
            cfg.pace_per_min.map_or("unpaced".into(), |p| p.to_string())
        );
        let _ = writeln!(
            s,
            "| load model | {} |",
            cfg.rate_per_agent.map_or("closed loop".into(), |r| format!(
                "open: {r} tasks/min per agent, {} arrivals",
                cfg.arrivals.as_str()
            ))
        );
        let _ = writeln!(s, "| workload digest | `{}` |\n", self.workload_digest);
        let e = &self.environment;
        let _ = writeln!(s, "## Environment\n");
        let _ = writeln!(
            s,
            "herd {} ({}) · nats-server {} · {} · {} cores · {} · scratch on {}\n",
            e.herd_version,
            e.herd_revision,
            e.nats_server,
            e.git,
            e.cores,
            e.platform,
            if e.scratch_fs.is_empty() {
                "?"
            } else {
                &e.scratch_fs
            }
        );
        let _ = writeln!(
            s,
            "## Latency (ms)\n\n| what | count | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|"
        );
        for (name, l) in [
            ("commit", &self.latency.commit),
            ("commit (failed)", &self.latency.commit_failed),
            ("claim", &self.latency.claim),
            ("claim (lost)", &self.latency.claim_lost),
            ("propagation", &self.latency.propagation),
            ("task (due or start → close)", &self.latency.task),
            ("start lag (open model)", &self.load.lag),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        crate::faults::report::markdown(&self.faults, cfg, &mut s);
        s
    }
}
