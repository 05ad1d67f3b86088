//! How faults read in the stdout summary and in report.md, and the repro line: one command
//! that reruns the trial with the same seed, shape and schedule.

use std::fmt::Write as _;

use super::measure::{FaultResult, RATE_SHARE};
use super::spec::list_string;
use crate::config::TrialConfig;

/// The command that reruns `config`'s trial exactly (workload, layout and fault schedule).
pub fn repro_line(config: &TrialConfig) -> String {
    let c = config;
    let mut s = format!(
        "cargo run --release --example herd -- trial --agents {} --tasks-per-agent {} --seed {} \
         --files-per-task {} --bytes-per-file {} --think-ms {} --mode {} --sync {} --hub {} \
         --fairness {} --turn-after {} --payload-max-bytes {} --leaves {} --bus {} \
         --claim-ttl-secs {}",
        c.agents,
        c.tasks_per_agent,
        c.seed,
        c.files_per_task,
        c.bytes_per_file,
        c.think_ms,
        format!("{:?}", c.mode).to_lowercase(),
        c.sync.as_str(),
        c.hub.as_str(),
        c.fairness.as_str(),
        c.turn_after,
        c.payload_max_bytes,
        c.leaves.as_str(),
        c.bus.as_str(),
        c.claim_ttl_secs,
    );
    if c.bus == crate::config::BusKind::Leafnodes {
        let _ = write!(s, " --leaves-per-server {}", c.leaves_per_server);
    }
    if let Some(p) = c.pace_per_min {
        let _ = write!(s, " --pace-per-min {p}");
    }
    if !c.faults.is_empty() {
        let sla = c.fault_sla;
        let _ = write!(
            s,
            " --faults '{}' --fault-sla 'detect={}ms,recover={}ms,rate={}ms'",
            list_string(&c.faults),
            sla.detect_ms,
            sla.recover_ms,
            sla.rate_ms
        );
    }
    s
}

fn ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0}"))
}

fn secs(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}"))
}

/// Summary lines, one per fault.
pub fn summary_lines(faults: &[FaultResult], config: &TrialConfig, s: &mut String) {
    if faults.is_empty() {
        return;
    }
    for f in faults {
        let r = &f.record;
        let _ = writeln!(
            s,
            "  fault {} {} on {}: injected {} s, healed {} s; detect {} ms ({}), recover {} ms, rate back {} ms, ops failed {}",
            r.class,
            r.spec,
            r.target,
            secs(r.injected_s),
            secs(r.healed_s),
            ms(f.detect_ms),
            f.detected_by.as_deref().unwrap_or("masked"),
            ms(f.recover_ms),
            ms(f.rate_recover_ms),
            f.ops_failed
        );
        if let (Some(task), Some(note)) = (&r.task, &r.note) {
            let _ = writeln!(s, "    task {task}: {note}");
        }
        for miss in &f.missed {
            let _ = writeln!(s, "    SLA MISSED: {miss}");
        }
    }
    let _ = writeln!(s, "  repro: {}", repro_line(config));
}

/// The report.md section.
pub fn markdown(faults: &[FaultResult], config: &TrialConfig, s: &mut String) {
    if faults.is_empty() {
        return;
    }
    let sla = config.fault_sla;
    let _ = writeln!(
        s,
        "## Faults\n\nSLA: detect ≤ {} ms, recover ≤ {} ms after the heal, commit rate back to \
         ≥ {:.0} % of its pre-fault rate ≤ {} ms after the heal; 0 commits lost.\n",
        sla.detect_ms,
        sla.recover_ms,
        RATE_SHARE * 100.0,
        sla.rate_ms
    );
    let _ = writeln!(
        s,
        "| class | spec | target | injected s | healed s | detect ms | by | recover ms | \
         pre-fault commits/s | rate back ms | ops failed | SLA |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for f in faults {
        let r = &f.record;
        let verdict = if f.missed.is_empty() {
            "met".to_string()
        } else {
            format!("MISSED: {}", f.missed.join("; "))
        };
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.class,
            r.spec,
            r.target,
            secs(r.injected_s),
            secs(r.healed_s),
            ms(f.detect_ms),
            f.detected_by.as_deref().unwrap_or("masked"),
            ms(f.recover_ms),
            f.pre_rate_per_s.map_or("—".into(), |v| format!("{v:.1}")),
            ms(f.rate_recover_ms),
            f.ops_failed,
            verdict
        );
    }
    for f in faults {
        if let (Some(task), Some(note)) = (&f.record.task, &f.record.note) {
            let _ = writeln!(s, "\n`{}`: task {task} — {note}", f.record.spec);
        }
    }
    for f in faults.iter().filter(|f| !f.unmeasured.is_empty()) {
        let _ = writeln!(
            s,
            "\n`{}`: not measured — {}",
            f.record.spec,
            f.unmeasured.join("; ")
        );
    }
    let _ = writeln!(s, "\nRepro: `{}`\n", repro_line(config));
}
