//! The trial runner: drives the rig's phases ([`crate::rig`]: start, work, drain, snapshot,
//! teardown) and turns what they return into the verdict — counters, latencies, gates,
//! `results.json` — plus the output helpers the phases share.
//!
//! Order matters for exactness: the observer subscribes to tip broadcasts before any leaf
//! starts; after the work phase the **drain** waits until the hub trunk holds every commit a
//! leaf reported and every leaf has handled every broadcast, so the counters read afterwards
//! are final; leaves are shut down (ledgers closed) before the history is checked; the bus and
//! hub stop last. Nothing is left running: every task is joined, the fixture is stopped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use herd_bus::{Bus, CLAIMS_BUCKET, TASKS_BUCKET};
use herd_check::CheckReport;

use crate::config::TrialConfig;
use crate::error::TrialError;
use crate::gates::{self, GateInput};
use crate::metrics::Latency;
use crate::observer::Seen;
use crate::propagation::{self, Accepted};
use crate::results::{Counters, Latencies, TrialResults};
use crate::rig::{Drain, Facts, Rig, Snapshot, Torn, Work};
use crate::slot_runner::SlotReport;
use crate::telemetry::SpanCounts;

/// A finished trial.
pub struct TrialOutcome {
    /// Every number.
    pub results: TrialResults,
    /// The history checker's verdict.
    pub check: CheckReport,
    /// Where the outputs are.
    pub out_dir: PathBuf,
}

/// Knobs that do not change what is measured.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// No progress output.
    pub quiet: bool,
    /// The span-counting layer, if installed: then the trial's counters (fork retries, claims,
    /// broadcast outcomes) are read from the spans themselves — the same spans that are
    /// exported — instead of the leaves' own counters.
    pub counts: Option<SpanCounts>,
    /// The `herd` binary, which process leaves run as `herd leaf` (the example passes itself).
    pub leaf_exe: Option<PathBuf>,
}

/// Runs a trial with default options.
pub async fn run(config: TrialConfig) -> Result<TrialOutcome, TrialError> {
    run_with(config, RunOptions::default()).await
}

/// Runs a trial inside a `herd.trial` span.
pub async fn run_with(config: TrialConfig, opts: RunOptions) -> Result<TrialOutcome, TrialError> {
    let span = tracing::info_span!(
        "herd.trial",
        agents = config.agents,
        tasks_per_agent = config.tasks_per_agent,
        seed = config.seed,
        mode = ?config.mode,
    );
    tracing::Instrument::instrument(run_trial(config, opts), span).await
}

async fn run_trial(config: TrialConfig, opts: RunOptions) -> Result<TrialOutcome, TrialError> {
    let mut rig = Rig::start(config, &opts).await?;
    let work = rig.work(opts.quiet).await;
    let drain = rig.drain(&work).await;
    let mut snapshot = match rig.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(e) => return Err(rig.abort(e).await),
    };
    let torn = rig.teardown(&mut snapshot).await?;
    verdict(work, drain, snapshot, torn)
}

/// Counters, latencies, gates and the results file from what the phases returned.
fn verdict(
    work: Work,
    drain: Drain,
    snapshot: Snapshot,
    torn: Torn,
) -> Result<TrialOutcome, TrialError> {
    let Torn {
        facts,
        leaf_failures,
        check,
        temp_work,
    } = torn;
    let Facts {
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
    } = facts;
    let Work {
        reports,
        work_started,
        work_secs,
        hub_before,
        spans_before,
        faults,
        samples,
        board_opened,
    } = work;
    let Drain {
        reported,
        on_trunk,
        settled,
        drain_secs,
    } = drain;
    let Snapshot {
        hub_stats,
        hub_commits,
        leaf_stats,
        tips,
        leaf_processes,
    } = snapshot;
    let mut counters = Counters {
        tasks_total: workload.total_tasks() as u64,
        hub_commits,
        hub_pushes_rejected: hub_stats.pushes_rejected,
        commits_reported: reported.len() as u64,
        commits_on_trunk: on_trunk,
        commits_lost: reported.len() as u64 - on_trunk,
        ..Default::default()
    };
    let (mut claim, mut claim_lost, mut commit, mut commit_failed, mut task) = (
        Latency::default(),
        Latency::default(),
        Latency::default(),
        Latency::default(),
        Latency::default(),
    );
    counters.tasks_opened += board_opened;
    for r in &reports {
        add_slot(&mut counters, r);
        claim.merge(&r.claim);
        claim_lost.merge(&r.claim_lost);
        commit.merge(&r.commit);
        commit_failed.merge(&r.commit_failed);
        task.merge(&r.task);
    }
    let span_totals = counts
        .as_ref()
        .zip(spans_before)
        .map(|(c, before)| c.totals().since(&before));
    match &span_totals {
        Some(t) => counters.take_spans(t),
        None => {
            for s in &leaf_stats {
                counters.fork_retries += s.fork_retries;
                counters.fork_unrecoverable += s.fork_unrecoverable;
                counters.commits_refused += s.policy_refusals;
                counters.claims_won += s.claims_won;
                counters.claims_lost += s.claims_lost;
                counters.broadcasts_delivered += s.tips_received;
                counters.broadcasts_applied += s.applied;
                counters.broadcasts_pulled += s.pulled;
                counters.broadcasts_skipped_idempotent += s.skipped_idempotent;
                counters.broadcasts_skipped_coalesced += s.skipped_coalesced;
                counters.broadcasts_deferred += s.deferred;
            }
        }
    }
    let accepted = accepted_commits(&reports, &tips, &leaf_ids);
    let holdings = std::mem::take(&mut *holdings.lock().expect("holdings lock"));
    let propagation = propagation::lag(&accepted, &holdings, leaf_ids.len() as u32);
    drop(holdings);

    counters.commit_fetches = leaf_stats.iter().map(|s| s.commit_fetches).sum();
    counters.conflicts = leaf_stats.iter().map(|s| s.conflicts).sum();
    counters.pushes_settled = leaf_stats.iter().map(|s| s.unknown_settled).sum();
    counters.conflict_redos = leaf_stats.iter().map(|s| s.conflict_redos).sum();
    let scale = crate::scale::Scale::new(&crate::scale::ScaleInput {
        hub_before: &hub_before,
        hub_after: &hub_stats,
        think_floor: crate::scale::think_floor(&workload),
        work_secs,
        fork_retries: counters.fork_retries,
        leaves: leaf_ids.len() as u64,
        rss_before_leaves_kib,
    });
    let commit_summary = commit.summary();
    let commits_per_min = commit_rate_per_min(&reports);
    let load = crate::cadence::measure(&config, &workload, &reports, work_started, work_secs);
    let drained = on_trunk == reported.len() as u64 && settled;
    // The history is whole by now (teardown merged it); read once for what needs it.
    let history = if faults.is_empty() && config.duration.is_none() {
        Vec::new()
    } else {
        crate::events::read(&out_dir.join("events.jsonl"))
    };
    let faults = measure_faults(&faults, &reports, started, &history, config.fault_sla);
    let soak = config.duration.map(|d| {
        let since_work = work_started
            .saturating_duration_since(started)
            .as_secs_f64();
        let commits: Vec<(f64, f64)> = crate::events::landed_commits(&history)
            .iter()
            .map(|c| (c.t_s - since_work, c.ms))
            .collect();
        crate::soak::analyse(d, config.sample_secs, samples, &commits)
    });
    let gate_results = gates::evaluate(&GateInput {
        config: &config,
        counters: &counters,
        p99_commit_ms: commit_summary.p99_ms,
        commits_per_min,
        commit_starts_max_per_min: load.commit_starts_max_per_min,
        drained,
        leaf_failures: &leaf_failures,
        faults: &faults,
        soak: soak.as_ref(),
    });
    // Inconclusive is never a pass: nothing could be claimed about the history.
    let passed =
        gate_results.iter().all(|g| g.passed) && check.verdict == herd_check::Verdict::Pass;
    let results = TrialResults {
        workload_digest: workload.digest(),
        environment: crate::environment::probe(
            nats_version,
            Some(
                temp_work
                    .as_ref()
                    .map_or_else(|| out_dir.join("state"), |t| t.path().to_path_buf())
                    .as_path(),
            ),
        ),
        completion: counters.tasks_closed as f64 / counters.tasks_total.max(1) as f64,
        counters,
        latency: Latencies {
            commit: commit_summary,
            commit_failed: commit_failed.summary(),
            claim: claim.summary(),
            claim_lost: claim_lost.summary(),
            task: task.summary(),
            propagation: propagation.summary(),
        },
        hub_commits_per_sec: if work_secs > 0.0 {
            hub_commits as f64 / work_secs
        } else {
            0.0
        },
        work_secs,
        drain_secs,
        runtime_secs: started.elapsed().as_secs_f64(),
        drained,
        phases: phases.0,
        scale,
        hub: hub_stats,
        gates: gate_results,
        history_check: check.clone(),
        leaf_failures,
        leaf_processes,
        spans: span_totals,
        telemetry: None,
        passed,
        load,
        soak,
        faults,
        config,
    };
    results
        .write(&out_dir)
        .map_err(|e| output_err(&out_dir, e))?;
    drop(temp_work);
    Ok(TrialOutcome {
        results,
        check,
        out_dir,
    })
}

/// Measures each fault the driver ran against the merged history and the commit times.
fn measure_faults(
    records: &[crate::faults::FaultRecord],
    reports: &[SlotReport],
    started: Instant,
    history: &[herd_check::HistoryEvent],
    sla: crate::faults::FaultSla,
) -> Vec<crate::faults::FaultResult> {
    if records.is_empty() {
        return Vec::new();
    }
    let commits: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.commits.iter())
        .map(|(_, at)| at.saturating_duration_since(started).as_secs_f64())
        .collect();
    crate::faults::measure(records, history, &commits, sla)
}

/// The herd's commit rate between its first and last accepted commit: n commits span n − 1
/// intervals, so dividing n by the work time would overstate a paced run's rate.
fn commit_rate_per_min(reports: &[SlotReport]) -> f64 {
    let times: Vec<Instant> = reports
        .iter()
        .flat_map(|r| r.commits.iter().map(|(_, at)| *at))
        .collect();
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return 0.0;
    };
    let span = last.saturating_duration_since(*first).as_secs_f64();
    if times.len() < 2 || span <= 0.0 {
        0.0
    } else {
        (times.len() - 1) as f64 * 60.0 / span
    }
}

fn add_slot(c: &mut Counters, r: &SlotReport) {
    c.tasks_opened += r.opened;
    c.tasks_closed += r.closed;
    c.tasks_failed += r.failed;
    c.tasks_starved += r.starved;
    c.tasks_failed_by_rule += r.failed_by_rule;
}

/// Landed commits with the pushing leaf's slot number and the earlier of the two times the
/// trial learned of them (the pusher's accept, the observer's broadcast).
fn accepted_commits(reports: &[SlotReport], tips: &[Seen], leaf_ids: &[String]) -> Vec<Accepted> {
    let seen: std::collections::HashMap<&str, &Seen> =
        tips.iter().map(|s| (s.oid.as_str(), s)).collect();
    let mut out = Vec::new();
    for r in reports {
        // Reports come back in completion order; the leaf's number is its slot's.
        let Some(number) = leaf_ids.iter().position(|id| *id == r.leaf) else {
            continue;
        };
        for (oid, at) in &r.commits {
            let (Some(s), Ok(id)) = (seen.get(oid.as_str()), git2::Oid::from_str(oid)) else {
                continue;
            };
            out.push(Accepted {
                seq: s.seq,
                oid: id,
                leaf: number as u32,
                at: (*at).min(s.at),
            });
        }
    }
    out
}

/// Writes both buckets' histories: what is on the server now, joined for the claims with
/// `live_claims` (every claim revision seen while the run went on, some expired since).
pub(crate) async fn dump_kv(
    bus: &Bus,
    out_dir: &Path,
    live_claims: Vec<herd_bus::KvRecord>,
) -> Result<(), TrialError> {
    let mut live_claims = Some(live_claims);
    for (bucket, file) in [
        (TASKS_BUCKET, "kv-tasks.jsonl"),
        (CLAIMS_BUCKET, "kv-claims.jsonl"),
    ] {
        let mut records = bus.dump_bucket(bucket).await?;
        if bucket == CLAIMS_BUCKET {
            records = herd_bus::dump::merge(live_claims.take().unwrap_or_default(), records);
        }
        let mut text = String::new();
        for r in &records {
            text.push_str(&serde_json::to_string(r).unwrap_or_default());
            text.push('\n');
        }
        std::fs::write(out_dir.join(file), text).map_err(|e| output_err(out_dir, e))?;
    }
    Ok(())
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrialError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| output_err(path, std::io::Error::other(e)))?;
    std::fs::write(path, text + "\n").map_err(|e| output_err(path, e))
}

pub(crate) fn output_err(path: &Path, source: std::io::Error) -> TrialError {
    TrialError::Output {
        path: path.to_path_buf(),
        source,
    }
}

/// `path` made absolute against the current directory (children may run elsewhere).
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, TrialError> {
    std::path::absolute(path).map_err(|e| output_err(path, e))
}

pub(crate) fn mkdir(path: &Path) -> Result<(), TrialError> {
    std::fs::create_dir_all(path).map_err(|e| output_err(path, e))
}

pub(crate) fn tempdir() -> Result<tempfile::TempDir, TrialError> {
    tempfile::Builder::new()
        .prefix("herd-trial-")
        .tempdir()
        .map_err(|e| output_err(&std::env::temp_dir(), e))
}

/// `target/herd-trials/<UTC timestamp>` under the current directory.
pub(crate) fn default_out_dir() -> PathBuf {
    PathBuf::from("target")
        .join("herd-trials")
        .join(timestamp())
}

/// The UTC time as `YYYYMMDD-HHMMSS-mmm`, for output directory names.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{:03}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}
