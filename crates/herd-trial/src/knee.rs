//! The knee of a sweep: in each series (same sync, hub, think time and cadence; rising agent
//! count), the first cell where the herd stops scaling. A cell is the knee when
//! - it did not close every task (completion < 100 %), or
//! - its p99 commit latency crossed the gate (`max_p99_ms`, when one is set), or
//! - open model: it fell behind its schedule (p99 start lag over one interval), or
//! - its throughput grew less than 10 % per doubling of N over the previous cell
//!   (`(t₂ / t₁)^(1 / log₂(N₂ / N₁)) < 1.10`).
//!
//! The first cell of a series has no predecessor, so only the first three apply to it.

use serde::{Deserialize, Serialize};

use crate::sweep::Row;

/// Least throughput growth per doubling of N that still counts as scaling.
pub const MIN_GROWTH_PER_DOUBLING: f64 = 1.10;

/// One series' knee.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Knee {
    /// The series: `payload/race think 0 rate 30/min`.
    pub series: String,
    /// The knee cell's name (none: the series scaled to its last cell).
    pub cell: Option<String>,
    /// Its agent count.
    pub agents: Option<u32>,
    /// Why it is the knee.
    pub reasons: Vec<String>,
    /// The largest agent count that still scaled (the cell before the knee), if any.
    pub last_good_agents: Option<u32>,
}

impl Knee {
    /// One line for stderr and the index.
    pub fn line(&self) -> String {
        match (&self.cell, self.agents) {
            (Some(cell), Some(n)) => format!(
                "knee of {} at N = {n} ({cell}): {}{}",
                self.series,
                self.reasons.join("; "),
                self.last_good_agents
                    .map(|g| format!(" — scaled up to N = {g}"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "no knee in {}: scaled to N = {}",
                self.series,
                self.last_good_agents.unwrap_or(0)
            ),
        }
    }
}

/// The series a row belongs to (its sync, hub, think time and cadence).
pub fn series_of(r: &Row) -> String {
    let rate = r.rate_per_agent.map_or("closed loop".to_string(), |x| {
        format!("{x} tasks/min per agent")
    });
    format!("{}/{} think {} ms, {rate}", r.sync, r.hub, r.think_ms)
}

/// Why `row` is a knee after `prev` (empty: it is not).
fn reasons(row: &Row, prev: Option<&Row>, max_p99_ms: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    let (closed, total) = row.closed.split_once('/').unwrap_or(("0", "0"));
    if closed != total {
        out.push(format!("completion {} < 100 %", row.closed));
    }
    if let Some(max) = max_p99_ms
        && row.commit_ms[2] > max as f64
    {
        out.push(format!(
            "p99 commit {:.1} ms > gate {max} ms",
            row.commit_ms[2]
        ));
    }
    if !row.kept_up {
        out.push(format!(
            "fell behind its schedule (p99 start lag {:.0} ms, backlog up to {})",
            row.lag_p99_ms, row.backlog_max
        ));
    }
    if let Some(prev) = prev
        && row.agents > prev.agents
        && prev.commits_per_sec > 0.0
    {
        let doublings = (f64::from(row.agents) / f64::from(prev.agents)).log2();
        let growth = (row.commits_per_sec / prev.commits_per_sec).powf(1.0 / doublings);
        if growth < MIN_GROWTH_PER_DOUBLING {
            out.push(format!(
                "throughput {:.1} → {:.1} commits/s from N = {}: {:+.0} % per doubling",
                prev.commits_per_sec,
                row.commits_per_sec,
                prev.agents,
                (growth - 1.0) * 100.0
            ));
        }
    }
    out
}

/// Each series' knee, series in the order their first cell ran.
pub fn find(rows: &[Row], max_p99_ms: Option<u64>) -> Vec<Knee> {
    let mut order: Vec<String> = Vec::new();
    for r in rows {
        let s = series_of(r);
        if !order.contains(&s) {
            order.push(s);
        }
    }
    order
        .into_iter()
        .map(|series| {
            let mut cells: Vec<&Row> = rows.iter().filter(|r| series_of(r) == series).collect();
            cells.sort_by_key(|r| r.agents);
            let mut prev: Option<&Row> = None;
            for row in cells {
                let why = reasons(row, prev, max_p99_ms);
                if !why.is_empty() {
                    return Knee {
                        series,
                        cell: Some(row.cell.clone()),
                        agents: Some(row.agents),
                        reasons: why,
                        last_good_agents: prev.map(|p| p.agents),
                    };
                }
                prev = Some(row);
            }
            Knee {
                series,
                cell: None,
                agents: None,
                reasons: Vec::new(),
                last_good_agents: prev.map(|p| p.agents),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(agents: u32, per_sec: f64, closed: &str, kept_up: bool) -> Row {
        Row {
            cell: format!("n{agents}"),
            agents,
            tasks_per_agent: 1,
            think_ms: "0".into(),
            sync: "payload".into(),
            hub: "race".into(),
            rate_per_agent: Some(30.0),
            offered_per_min: 0.0,
            closed_per_min: 0.0,
            lag_p99_ms: 0.0,
            backlog_max: 0,
            kept_up,
            task_p99_ms: 0.0,
            commits_per_sec: per_sec,
            ratio_to_floor: 0.0,
            commit_ms: [1.0, 1.0, 10.0, 10.0],
            failed_commits: 0,
            failed_commit_ms: [0.0; 3],
            fork_retries_per_commit: 0.0,
            hub_requests_per_commit: 0.0,
            broadcasts_applied: 0,
            broadcasts_pulled: 0,
            pulls_per_commit: 0.0,
            starved: 0,
            closed: closed.into(),
            rss_per_leaf_kib: 0,
            work_to_think_floor: 0.0,
            work_secs: 0.0,
            history: "pass".into(),
            passed: true,
        }
    }

    #[test]
    fn the_knee_is_the_first_cell_that_stops_growing() {
        let rows = [
            row(4, 2.0, "8/8", true),
            row(8, 4.0, "16/16", true),
            row(16, 4.2, "32/32", true), // +5 % for a doubling
            row(32, 9.0, "64/64", true),
        ];
        let k = &find(&rows, None)[0];
        assert_eq!(k.agents, Some(16), "{k:?}");
        assert_eq!(k.last_good_agents, Some(8));
        assert!(k.reasons[0].contains("+5 % per doubling"), "{k:?}");
    }

    #[test]
    fn completion_lag_and_the_p99_gate_each_make_a_knee() {
        let mut slow = row(8, 4.0, "16/16", true);
        slow.commit_ms[2] = 900.0;
        assert_eq!(
            find(&[row(4, 2.0, "8/8", true), slow.clone()], Some(500))[0].agents,
            Some(8)
        );
        assert!(
            find(&[row(4, 2.0, "8/8", true), slow], None)[0]
                .cell
                .is_none()
        );
        let k = &find(&[row(4, 2.0, "7/8", true)], None)[0];
        assert_eq!(k.agents, Some(4));
        assert!(k.reasons[0].contains("completion 7/8"), "{k:?}");
        let k = &find(
            &[row(4, 2.0, "8/8", true), row(8, 4.0, "16/16", false)],
            None,
        )[0];
        assert!(k.reasons[0].contains("fell behind"), "{k:?}");
        // Growth is judged per doubling: 4 → 16 at 3.6× is +90 % per doubling.
        let k = &find(
            &[row(4, 2.0, "8/8", true), row(16, 7.2, "32/32", true)],
            None,
        )[0];
        assert!(k.cell.is_none() && k.last_good_agents == Some(16), "{k:?}");
        assert!(k.line().contains("no knee"), "{}", k.line());
    }
}
