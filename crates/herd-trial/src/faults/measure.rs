//! Per fault, from what the run left: time to detect (the first component that noticed: the
//! trial's bus probe or a leaf's failed operation), time to recover (the first successful
//! bus-touching operation after the heal), time until the herd commits at ≥ 80 % of its
//! pre-fault rate again, and what the fault cost (operations failed or of unknown outcome
//! meanwhile) — each against the [`FaultSla`].

use serde::{Deserialize, Serialize};

use super::driver::FaultRecord;
use super::spec::FaultSla;
use herd_check::{HistoryEvent, Op, Phase};

/// The share of the pre-fault commit rate that counts as recovered.
pub const RATE_SHARE: f64 = 0.8;
/// The window the pre-fault rate is measured over (at most), seconds.
const PRE_WINDOW_S: f64 = 5.0;
/// The sliding window the post-heal rate is measured over, seconds.
const POST_WINDOW_S: f64 = 2.0;

/// One fault, measured.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FaultResult {
    /// What the driver did.
    #[serde(flatten)]
    pub record: FaultRecord,
    /// Injection → first notice, ms (none: nothing noticed — the fault was masked).
    pub detect_ms: Option<f64>,
    /// Who noticed first.
    pub detected_by: Option<String>,
    /// Heal → first successful operation that touches the bus, ms.
    pub recover_ms: Option<f64>,
    /// The herd's commit rate before the fault, commits/s (none: under 1 s of commits before).
    pub pre_rate_per_s: Option<f64>,
    /// Heal → the first 2 s window at ≥ 80 % of the pre-fault rate, ms.
    pub rate_recover_ms: Option<f64>,
    /// Leaf operations that failed or ended unknown between injection and recovery.
    pub ops_failed: u64,
    /// The SLA it was measured against.
    pub sla: FaultSla,
    /// Each SLA line missed, in words (empty: met).
    pub missed: Vec<String>,
    /// Lines that could not be measured and why (the work ended first, …); not misses.
    pub unmeasured: Vec<String>,
}

/// Measures each record. `commits_s`: every accepted commit's time (seconds since the trial
/// started); `events`: the merged history.
pub fn measure(
    records: &[FaultRecord],
    events: &[HistoryEvent],
    commits_s: &[f64],
    sla: FaultSla,
) -> Vec<FaultResult> {
    let mut commits = commits_s.to_vec();
    commits.sort_by(f64::total_cmp);
    records
        .iter()
        .map(|r| measure_one(r, events, &commits, sla))
        .collect()
}

fn secs(e: &HistoryEvent) -> f64 {
    e.t_ns as f64 / 1e9
}

fn touches_bus(op: Op) -> bool {
    matches!(
        op,
        Op::Open | Op::Claim | Op::Commit | Op::Close | Op::Release
    )
}

fn measure_one(
    r: &FaultRecord,
    events: &[HistoryEvent],
    commits: &[f64],
    sla: FaultSla,
) -> FaultResult {
    let mut out = FaultResult {
        record: r.clone(),
        detect_ms: None,
        detected_by: None,
        recover_ms: None,
        pre_rate_per_s: None,
        rate_recover_ms: None,
        ops_failed: 0,
        sla,
        missed: Vec::new(),
        unmeasured: Vec::new(),
    };
    let (Some(injected), Some(healed)) = (r.injected_s, r.healed_s) else {
        out.missed.push(match &r.error {
            Some(e) => format!("not injected: {e}"),
            None => "not injected: the work ended before its trigger".into(),
        });
        return out;
    };
    if let Some(e) = &r.error {
        out.missed.push(e.clone());
    }

    // A fault aimed at some leaves is judged on their operations only (the rest of the herd
    // fails and recovers for its own reasons).
    let affected = |e: &HistoryEvent| r.leaves.is_empty() || r.leaves.contains(&e.leaf);
    let events: Vec<&HistoryEvent> = events.iter().filter(|e| affected(e)).collect();
    // Detect: the probe, or the first leaf operation that failed after the injection.
    // (The history is in file order, not time order: process leaves' parts are merged.)
    let first_failure = events
        .iter()
        .filter(|e| {
            touches_bus(e.op) && matches!(e.phase, Phase::Fail | Phase::Info) && secs(e) >= injected
        })
        .min_by_key(|e| e.t_ns);
    let mut noticed: Vec<(f64, String)> = Vec::new();
    if let Some(t) = r.probe_detected_s {
        let probe = match (&r.detected_by, r.class.as_str()) {
            (Some(by), _) => by.as_str(),
            (None, "F10") => "the link probe",
            (None, "F4") => "the hub probe",
            (None, _) if r.target.starts_with("local-") => "the probe of its port",
            _ => "the trial's bus probe",
        };
        noticed.push((t, probe.into()));
    }
    if let Some(e) = first_failure {
        noticed.push((
            secs(e),
            format!("{} {:?} failed", e.leaf, e.op).to_lowercase(),
        ));
    }
    if let Some((t, by)) = noticed.into_iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
        out.detect_ms = Some((t - injected).max(0.0) * 1e3);
        out.detected_by = Some(by);
    }

    // Recover: the first bus-touching operation that succeeded after the heal.
    let recovered = events
        .iter()
        .filter(|e| touches_bus(e.op) && e.phase == Phase::Ok && secs(e) >= healed)
        .min_by_key(|e| e.t_ns)
        .map(|e| secs(e));
    out.recover_ms = recovered.map(|t| (t - healed) * 1e3);
    let until = recovered.unwrap_or(f64::INFINITY);
    out.ops_failed = events
        .iter()
        .filter(|e| touches_bus(e.op) && matches!(e.phase, Phase::Fail | Phase::Info))
        .filter(|e| (injected..=until).contains(&secs(e)))
        .count() as u64;
    let work_after = events
        .iter()
        .any(|e| touches_bus(e.op) && e.phase == Phase::Invoke && secs(e) >= healed);

    // Rate: the pre-fault rate over up to 5 s, then the first 2 s window after the heal that
    // reaches 80 % of it.
    let first = commits.first().copied().unwrap_or(injected);
    let window = (injected - first).min(PRE_WINDOW_S);
    let last = commits.last().copied().unwrap_or(healed);
    if window >= 1.0 {
        let pre = count(commits, injected - window, injected) as f64 / window;
        out.pre_rate_per_s = Some(pre);
        let need = RATE_SHARE * pre * POST_WINDOW_S;
        let mut t = healed;
        while t + POST_WINDOW_S <= last {
            if count(commits, t, t + POST_WINDOW_S) as f64 >= need {
                out.rate_recover_ms = Some((t - healed) * 1e3);
                break;
            }
            t += 0.1;
        }
    } else {
        out.unmeasured
            .push("rate: under 1 s of commits before the fault".into());
    }

    // Against the SLA.
    if let Some(ms) = out.detect_ms
        && ms > sla.detect_ms as f64
    {
        out.missed.push(format!(
            "detect {ms:.0} ms > {} ms ({})",
            sla.detect_ms,
            out.detected_by.as_deref().unwrap_or("")
        ));
    }
    match out.recover_ms {
        Some(ms) if ms > sla.recover_ms as f64 => out
            .missed
            .push(format!("recover {ms:.0} ms > {} ms", sla.recover_ms)),
        Some(_) => {}
        None if work_after => out
            .missed
            .push("recover: no bus operation succeeded after the heal".into()),
        None => out
            .unmeasured
            .push("recover: no work was left after the heal".into()),
    }
    if out.pre_rate_per_s.is_some() {
        match out.rate_recover_ms {
            Some(ms) if ms > sla.rate_ms as f64 => out.missed.push(format!(
                "rate back to {:.0} % after {ms:.0} ms > {} ms",
                RATE_SHARE * 100.0,
                sla.rate_ms
            )),
            Some(_) => {}
            None if (last - healed) * 1e3 >= sla.rate_ms as f64 => out.missed.push(format!(
                "rate never back to {:.0} % of {:.1}/s",
                RATE_SHARE * 100.0,
                out.pre_rate_per_s.unwrap_or(0.0)
            )),
            None => out.unmeasured.push(format!(
                "rate: the work ended {:.1} s after the heal",
                (last - healed).max(0.0)
            )),
        }
    }
    out
}

/// Commits in `[from, to)`.
fn count(sorted: &[f64], from: f64, to: f64) -> usize {
    let lo = sorted.partition_point(|t| *t < from);
    let hi = sorted.partition_point(|t| *t < to);
    hi - lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: Op, phase: Phase, t: f64) -> HistoryEvent {
        HistoryEvent::new(op, phase, "leaf-1", "slot-1", (t * 1e9) as u64)
    }

    fn record(injected: f64, healed: f64) -> FaultRecord {
        FaultRecord {
            spec: "bus-kill@commits=10+1s".into(),
            class: "F1".into(),
            target: "bus".into(),
            injected_s: Some(injected),
            healed_s: Some(healed),
            probe_detected_s: Some(injected + 0.05),
            replayed: 0,
            error: None,
            ..Default::default()
        }
    }

    /// 10 commits/s from 0 to `until`, except during [gap_from, gap_to).
    fn commits(until: f64, gap: (f64, f64)) -> Vec<f64> {
        (0..(until * 10.0) as usize)
            .map(|i| i as f64 / 10.0)
            .filter(|t| !(gap.0..gap.1).contains(t))
            .collect()
    }

    #[test]
    fn a_clean_recovery_meets_the_sla() {
        let events = vec![
            ev(Op::Claim, Phase::Fail, 5.2),
            ev(Op::Claim, Phase::Invoke, 6.1),
            ev(Op::Claim, Phase::Ok, 6.3),
        ];
        let r = &measure(
            &[record(5.0, 6.0)],
            &events,
            &commits(20.0, (5.0, 6.5)),
            FaultSla::default(),
        )[0];
        assert!((r.detect_ms.unwrap() - 50.0).abs() < 1.0, "{r:?}");
        assert_eq!(r.detected_by.as_deref(), Some("the trial's bus probe"));
        assert!((r.recover_ms.unwrap() - 300.0).abs() < 1.0);
        assert!((r.pre_rate_per_s.unwrap() - 10.0).abs() < 0.3);
        // The 2 s window reaches 16 commits once it starts at 6.5 - 0.4 s.
        let rate = r.rate_recover_ms.unwrap();
        assert!((0.0..=600.0).contains(&rate), "{rate}");
        assert_eq!(r.ops_failed, 1);
        assert!(r.missed.is_empty(), "{:?}", r.missed);
    }

    #[test]
    fn a_fault_aimed_at_some_leaves_is_timed_on_their_operations_only() {
        let other =
            |op, phase, t: f64| HistoryEvent::new(op, phase, "leaf-2", "slot-2", (t * 1e9) as u64);
        let events = vec![
            // The rest of the herd fails and succeeds for its own reasons meanwhile.
            other(Op::Commit, Phase::Fail, 5.1),
            other(Op::Claim, Phase::Ok, 6.05),
            ev(Op::Commit, Phase::Invoke, 6.2),
            ev(Op::Commit, Phase::Ok, 6.4),
        ];
        let mut aimed = record(5.0, 6.0);
        aimed.leaves = vec!["leaf-1".into()];
        aimed.detected_by = Some("the restarted leaf".into());
        aimed.probe_detected_s = Some(6.0);
        let r = &measure(
            &[aimed],
            &events,
            &commits(20.0, (9.0, 9.0)),
            FaultSla::default(),
        )[0];
        assert_eq!(r.detected_by.as_deref(), Some("the restarted leaf"));
        assert!((r.detect_ms.unwrap() - 1000.0).abs() < 1.0, "{r:?}");
        assert!((r.recover_ms.unwrap() - 400.0).abs() < 1.0, "{r:?}");
        assert_eq!(r.ops_failed, 0, "leaf-2's failure is not this fault's");
    }

    #[test]
    fn misses_are_named() {
        let events = vec![
            ev(Op::Claim, Phase::Invoke, 7.0),
            ev(Op::Claim, Phase::Ok, 30.0),
        ];
        let sla = FaultSla {
            detect_ms: 10,
            recover_ms: 1000,
            rate_ms: 5000,
        };
        // Commits stop at the fault and resume only at 30 s.
        let mut times = commits(5.0, (9.0, 9.0));
        times.extend((0..100).map(|i| 30.0 + i as f64 / 10.0));
        let r = &measure(&[record(5.0, 6.0)], &events, &times, sla)[0];
        assert_eq!(r.missed.len(), 3, "{:?}", r.missed);
        assert!(r.missed[0].starts_with("detect"));
        assert!(r.missed[1].starts_with("recover"));
        assert!(r.missed[2].starts_with("rate back"));
    }

    #[test]
    fn a_fault_never_injected_is_a_miss_and_a_late_one_is_unmeasured() {
        let mut never = record(0.0, 0.0);
        never.injected_s = None;
        never.healed_s = None;
        let r = &measure(&[never], &[], &[], FaultSla::default())[0];
        assert!(r.missed[0].contains("work ended before its trigger"));

        let times = commits(5.5, (9.0, 9.0));
        let r = &measure(&[record(5.0, 6.0)], &[], &times, FaultSla::default())[0];
        assert!(r.missed.is_empty(), "{:?}", r.missed);
        assert_eq!(r.unmeasured.len(), 2, "{:?}", r.unmeasured);
    }
}
