//! Gates: the checks that turn a trial's numbers into an exit code.
//!
//! Always on: every task closed, no reported commit missing from the trunk, the drain finished,
//! and (in disjoint mode, where any conflict is a bug) no unrecoverable fork. Optional: a P99
//! commit ceiling, a commit-rate ceiling, the `phase2` preset, and one gate per injected fault
//! (its SLA met).

use serde::{Deserialize, Serialize};

use crate::config::{GatePreset, Mode, TrialConfig};
use crate::results::Counters;

/// One gate's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateResult {
    /// Gate name (`completion`, `lost_commits`, `max_p99_ms`, `phase2.agents`, ...).
    pub name: String,
    /// Did it pass?
    pub passed: bool,
    /// The measured value against the threshold.
    pub detail: String,
}

/// What the gates look at.
pub struct GateInput<'a> {
    /// The effective config.
    pub config: &'a TrialConfig,
    /// Exact counts.
    pub counters: &'a Counters,
    /// P99 commit latency, ms.
    pub p99_commit_ms: f64,
    /// Hub commits per minute over the work phase.
    pub commits_per_min: f64,
    /// The most commits started in any 60 s window.
    pub commit_starts_max_per_min: u32,
    /// Did the drain complete before its timeout?
    pub drained: bool,
    /// Leaf processes that died or exited non-zero.
    pub leaf_failures: &'a [crate::leaves::LeafFailure],
    /// Injected faults, measured.
    pub faults: &'a [crate::faults::FaultResult],
    /// Soak measurements, when the run was a soak.
    pub soak: Option<&'a crate::soak::Soak>,
}

/// The trial's verdict word and exit code: `PASS` 0 (every gate passed, history PASS), `FAIL`
/// 1 (a gate failed or the history check found a violation), `INCONCLUSIVE` 3 (every gate
/// passed but the history could not be checked: an artifact was missing — never a pass).
/// Exit 2 stays "could not run" (bad config, unreachable dependency).
pub fn verdict(gates_passed: bool, history: herd_check::Verdict) -> (&'static str, u8) {
    match (gates_passed, history) {
        (true, herd_check::Verdict::Pass) => ("PASS", 0),
        (true, herd_check::Verdict::Inconclusive) => ("INCONCLUSIVE", 3),
        _ => ("FAIL", 1),
    }
}

/// Evaluates every applicable gate.
pub fn evaluate(input: &GateInput<'_>) -> Vec<GateResult> {
    let c = input.counters;
    let mut out = Vec::new();
    let mut gate = |name: &str, passed: bool, detail: String| {
        out.push(GateResult {
            name: name.into(),
            passed,
            detail,
        })
    };
    if input.config.mode == Mode::Shared {
        // Shared mode's rule: a task that meets one conflict more than its redo budget fails
        // (ended, not lost); every other task must close.
        gate(
            "completion",
            c.tasks_closed + c.tasks_failed_by_rule == c.tasks_total,
            format!(
                "{} of {} tasks closed, {} failed by the conflict rule",
                c.tasks_closed, c.tasks_total, c.tasks_failed_by_rule
            ),
        );
        gate(
            "conflicts",
            c.conflicts == c.conflict_redos + c.tasks_failed_by_rule,
            format!(
                "{} conflicts detected: {} redone, {} failed by rule",
                c.conflicts, c.conflict_redos, c.tasks_failed_by_rule
            ),
        );
    } else {
        gate(
            "completion",
            c.tasks_closed == c.tasks_total,
            format!("{} of {} tasks closed", c.tasks_closed, c.tasks_total),
        );
    }
    gate(
        "lost_commits",
        c.commits_lost == 0,
        format!(
            "{} of {} reported commits missing from the trunk",
            c.commits_lost, c.commits_reported
        ),
    );
    gate(
        "drain",
        input.drained,
        format!(
            "drain {}",
            if input.drained {
                "complete"
            } else {
                "timed out"
            }
        ),
    );
    if input.config.leaves == crate::config::Placement::Process {
        gate(
            "leaf_processes",
            input.leaf_failures.is_empty(),
            match input.leaf_failures {
                [] => "every leaf process exited 0".to_string(),
                failed => failed
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        );
    }
    if input.config.mode == Mode::Disjoint {
        gate(
            "fork_unrecoverable",
            c.fork_unrecoverable == 0,
            format!(
                "{} unrecoverable forks in disjoint mode",
                c.fork_unrecoverable
            ),
        );
    }
    if let Some(max) = input.config.gates.max_p99_ms {
        gate(
            "max_p99_ms",
            input.p99_commit_ms <= max as f64,
            format!("p99 commit {:.1} ms vs max {max} ms", input.p99_commit_ms),
        );
    }
    if let Some(max) = input.config.gates.max_commits_per_min {
        gate(
            "max_commits_per_min",
            input.commits_per_min <= max,
            format!("{:.2} commits/min vs max {max}", input.commits_per_min),
        );
    }
    for (i, f) in input.faults.iter().enumerate() {
        gate(
            &format!("fault.{i}.{}", f.record.class),
            f.missed.is_empty(),
            if f.missed.is_empty() {
                format!("{} met its SLA", f.record.spec)
            } else {
                format!("{}: {}", f.record.spec, f.missed.join("; "))
            },
        );
    }
    if let Some(soak) = input.soak {
        gate(
            "soak.cv",
            soak.cv <= crate::soak::MAX_CV,
            format!(
                "coordination-time CV {:.2} over {} windows (max {})",
                soak.cv,
                soak.windows.len(),
                crate::soak::MAX_CV
            ),
        );
        for g in &soak.growth {
            gate(
                &format!("soak.growth.{}", g.process),
                g.exceeded.is_empty(),
                if g.exceeded.is_empty() {
                    g.describe()
                } else {
                    format!("{} grew: {}", g.process, g.exceeded.join("; "))
                },
            );
        }
    }
    if input.config.gates.preset == Some(GatePreset::Phase2) {
        gate(
            "phase2.agents",
            input.config.agents == 4,
            format!("{} agents (phase2 needs 4)", input.config.agents),
        );
        // The reference's "<= 4 commits/min" read as a rate limit: the most commits started
        // in any 60 s window (half-open), measured from the start instants.
        gate(
            "phase2.rate",
            input.commit_starts_max_per_min <= 4,
            format!(
                "at most {} commits started in any 60 s window (phase2 needs <= 4)",
                input.commit_starts_max_per_min
            ),
        );
        gate(
            "phase2.completion",
            c.tasks_closed == c.tasks_total,
            format!("{} of {} closed", c.tasks_closed, c.tasks_total),
        );
        gate(
            "phase2.p99",
            input.p99_commit_ms < 5000.0,
            format!(
                "p99 commit {:.1} ms (phase2 needs < 5000)",
                input.p99_commit_ms
            ),
        );
        gate(
            "phase2.unrecoverable",
            c.fork_unrecoverable == 0,
            format!(
                "{} unrecoverable conflicts (phase2 needs 0)",
                c.fork_unrecoverable
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconclusive_is_never_a_pass() {
        use herd_check::Verdict;
        assert_eq!(verdict(true, Verdict::Pass), ("PASS", 0));
        assert_eq!(verdict(true, Verdict::Inconclusive), ("INCONCLUSIVE", 3));
        assert_eq!(verdict(true, Verdict::Fail), ("FAIL", 1));
        assert_eq!(verdict(false, Verdict::Inconclusive), ("FAIL", 1));
        assert_eq!(verdict(false, Verdict::Pass), ("FAIL", 1));
    }

    fn clean() -> Counters {
        Counters {
            tasks_total: 4,
            tasks_closed: 4,
            commits_reported: 4,
            commits_on_trunk: 4,
            ..Default::default()
        }
    }

    fn run(config: &TrialConfig, counters: &Counters, p99: f64, rate: f64) -> Vec<GateResult> {
        evaluate(&GateInput {
            config,
            counters,
            p99_commit_ms: p99,
            commits_per_min: rate,
            commit_starts_max_per_min: rate.ceil() as u32,
            drained: true,
            leaf_failures: &[],
            faults: &[],
            soak: None,
        })
    }

    #[test]
    fn a_fault_that_missed_its_sla_fails_its_gate() {
        let config = TrialConfig::default();
        let counters = clean();
        let record = crate::faults::FaultRecord {
            spec: "bus-kill@commits=1+1s".into(),
            class: "F1".into(),
            injected_s: Some(1.0),
            healed_s: Some(2.0),
            ..Default::default()
        };
        let mut faults =
            crate::faults::measure(&[record], &[], &[], crate::faults::FaultSla::default());
        let gates = |faults: &[crate::faults::FaultResult]| {
            evaluate(&GateInput {
                config: &config,
                counters: &counters,
                p99_commit_ms: 1.0,
                commits_per_min: 1.0,
                commit_starts_max_per_min: 1,
                drained: true,
                leaf_failures: &[],
                faults,
                soak: None,
            })
        };
        let met = gates(&faults);
        let gate = met.iter().find(|g| g.name == "fault.0.F1").unwrap();
        assert!(gate.passed, "{gate:?}");
        faults[0].missed.push("detect 9000 ms > 3000 ms".into());
        let missed = gates(&faults);
        let gate = missed.iter().find(|g| g.name == "fault.0.F1").unwrap();
        assert!(
            !gate.passed && gate.detail.contains("detect 9000 ms"),
            "{gate:?}"
        );
    }

    #[test]
    fn clean_run_passes_and_each_loss_fails_its_gate() {
        let config = TrialConfig::default();
        assert!(run(&config, &clean(), 10.0, 60.0).iter().all(|g| g.passed));
        let lost = Counters {
            commits_lost: 1,
            ..clean()
        };
        let failed: Vec<_> = run(&config, &lost, 10.0, 60.0)
            .into_iter()
            .filter(|g| !g.passed)
            .map(|g| g.name)
            .collect();
        assert_eq!(failed, vec!["lost_commits"]);
        let open = Counters {
            tasks_closed: 3,
            ..clean()
        };
        assert!(
            run(&config, &open, 10.0, 60.0)
                .iter()
                .any(|g| g.name == "completion" && !g.passed)
        );
    }

    #[test]
    fn shared_mode_accepts_tasks_failed_by_rule_and_checks_the_conflict_accounting() {
        let config = TrialConfig {
            mode: Mode::Shared,
            ..Default::default()
        };
        let failing = |c: &Counters| -> Vec<String> {
            run(&config, c, 10.0, 60.0)
                .into_iter()
                .filter(|g| !g.passed)
                .map(|g| g.name)
                .collect()
        };
        let by_rule = Counters {
            tasks_closed: 3,
            tasks_failed_by_rule: 1,
            conflicts: 3,
            conflict_redos: 2,
            ..clean()
        };
        assert_eq!(failing(&by_rule), Vec::<String>::new());
        // A conflict neither redone nor failed by rule: unaccounted.
        let unaccounted = Counters {
            conflicts: 4,
            ..by_rule.clone()
        };
        assert_eq!(failing(&unaccounted), vec!["conflicts"]);
        // A task that ended otherwise (starved, an error) is not excused.
        let open = Counters {
            tasks_closed: 2,
            ..by_rule
        };
        assert_eq!(failing(&open), vec!["completion"]);
    }

    #[test]
    fn p99_and_phase2_gates() {
        let mut config = TrialConfig::default();
        config.gates.max_p99_ms = Some(0);
        assert!(
            run(&config, &clean(), 0.5, 1.0)
                .iter()
                .any(|g| g.name == "max_p99_ms" && !g.passed)
        );
        let mut config = TrialConfig {
            agents: 4,
            ..Default::default()
        };
        config.gates.preset = Some(GatePreset::Phase2);
        assert!(run(&config, &clean(), 100.0, 4.0).iter().all(|g| g.passed));
        let failed: Vec<_> = run(&config, &clean(), 6000.0, 5.0)
            .into_iter()
            .filter(|g| !g.passed)
            .map(|g| g.name)
            .collect();
        assert_eq!(failed, vec!["phase2.rate", "phase2.p99"]);
    }
}
