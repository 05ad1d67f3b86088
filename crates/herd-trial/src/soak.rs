//! Soak: a long run at a steady cadence (`duration` with the open model's `rate_per_agent`),
//! watched for what only time shows — memory, open files and threads that keep growing, and
//! coordination time that drifts.
//!
//! While the work runs, a sampler reads `/proc/<pid>/{status,fd}` every `sample_secs` for the
//! trial's own process (hub and in-process leaves), every leaf process (`--leaves process`)
//! and every nats-server it started. After the
//! run, [`analyse`] splits each process's samples into thirds by time, treats the first as
//! warm-up, and compares the last with the middle: RSS may grow at most
//! [`MAX_RSS_GROWTH`] (plus [`RSS_SLACK_KIB`]), open fds at most [`MAX_FD_GROWTH`], threads at
//! most [`MAX_THREAD_GROWTH`]. Coordination time is the commit latency (write, push, every
//! fork retry): its mean per window (a minute, or a tenth of a shorter run), and the windows'
//! coefficient of variation (standard deviation ÷ mean, the warm-up window left out) must stay
//! at most [`MAX_CV`]. Each bound is a gate (`soak.*`); lost work is gated as in every trial.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// RSS in the last third may be at most this much above the middle third's (relative)…
pub const MAX_RSS_GROWTH: f64 = 0.25;
/// … plus this much (absolute): allocator arenas settle in steps of a few MiB.
pub const RSS_SLACK_KIB: u64 = 8 << 10;
/// Open file descriptors: most in the last third minus most in the middle third.
pub const MAX_FD_GROWTH: i64 = 16;
/// Threads: the same.
pub const MAX_THREAD_GROWTH: i64 = 8;
/// Coordination-time coefficient of variation across windows.
pub const MAX_CV: f64 = 0.5;

/// A length of time written as humans do (`30m`, `90s`, `1h 30m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period(pub Duration);

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?}: {e}"))?;
        if d.is_zero() {
            return Err(format!("{s:?}: must be longer than zero"));
        }
        Ok(Period(d))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One reading of one process.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the start of the work.
    pub t_s: f64,
    /// `herd` (the trial: hub and in-process leaves), a leaf process (`leaf-3`) or a bus server
    /// (`bus`, `node-1`, ...).
    pub process: String,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads `pid`'s RSS, open fds and threads; `None` once it is gone.
pub fn read(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name| crate::scale::status_field(&status, name);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((field("VmRSS:"), fds, field("Threads:")))
}

/// Samples `processes` (name, pid) every `every` until `done` turns true, once more at the end.
pub async fn sample(
    processes: Vec<(String, u32)>,
    every: Duration,
    zero: Instant,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let take = |out: &mut Vec<Sample>| {
        let t_s = zero.elapsed().as_secs_f64();
        for (name, pid) in &processes {
            if let Some((rss_kib, fds, threads)) = read(*pid) {
                out.push(Sample {
                    t_s,
                    process: name.clone(),
                    rss_kib,
                    fds,
                    threads,
                });
            }
        }
    };
    loop {
        take(&mut out);
        if *done.borrow() {
            return out;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.changed() => {}
        }
    }
}

/// One process's growth from the middle third of the run to the last.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Growth {
    /// The process.
    pub process: String,
    /// Mean RSS over the middle third, KiB.
    pub rss_mid_kib: u64,
    /// Mean RSS over the last third, KiB.
    pub rss_last_kib: u64,
    /// Most open fds in the middle third and in the last.
    pub fds: (u64, u64),
    /// Most threads in the middle third and in the last.
    pub threads: (u64, u64),
    /// What grew past its bound (empty: nothing).
    pub exceeded: Vec<String>,
}

impl Growth {
    /// `herd: RSS 1 → 2 KiB, fds 3 → 4, threads 5 → 6` (middle → last third).
    pub fn describe(&self) -> String {
        format!(
            "{}: RSS {} → {} KiB, fds {} → {}, threads {} → {}",
            self.process,
            self.rss_mid_kib,
            self.rss_last_kib,
            self.fds.0,
            self.fds.1,
            self.threads.0,
            self.threads.1
        )
    }
}

/// What the soak measured.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Soak {
    /// The planned duration.
    pub duration: String,
    /// Seconds between samples.
    pub sample_secs: u64,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// Coordination time per window: (window start s, mean commit ms, commits).
    pub windows: Vec<(f64, f64, u64)>,
    /// Coefficient of variation of the window means (warm-up window left out).
    pub cv: f64,
    /// Per process.
    pub growth: Vec<Growth>,
}

/// Analyses `samples` and the commits `(accepted s since the work began, latency ms)`.
pub fn analyse(
    duration: Period,
    sample_secs: u64,
    samples: Vec<Sample>,
    commits: &[(f64, f64)],
) -> Soak {
    let secs = duration.0.as_secs_f64();
    let window = if secs >= 600.0 { 60.0 } else { secs / 10.0 };
    let mut sums: Vec<(f64, u64)> = Vec::new();
    for &(t, ms) in commits {
        let k = (t.max(0.0) / window) as usize;
        if sums.len() <= k {
            sums.resize(k + 1, (0.0, 0));
        }
        sums[k].0 += ms;
        sums[k].1 += 1;
    }
    let windows: Vec<(f64, f64, u64)> = sums
        .iter()
        .enumerate()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(k, (sum, n))| (k as f64 * window, sum / *n as f64, *n))
        .collect();
    let means: Vec<f64> = windows.iter().skip(1).map(|w| w.1).collect();
    let cv = coefficient_of_variation(&means);
    let mut names: Vec<String> = samples.iter().map(|s| s.process.clone()).collect();
    names.sort();
    names.dedup();
    let growth = names
        .into_iter()
        .map(|name| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.process == name).collect();
            growth(name, &mine)
        })
        .collect();
    Soak {
        duration: duration.to_string(),
        sample_secs,
        samples,
        windows,
        cv,
        growth,
    }
}

fn coefficient_of_variation(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    if mean <= 0.0 {
        return 0.0;
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    var.sqrt() / mean
}

fn growth(process: String, samples: &[&Sample]) -> Growth {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Growth {
            process,
            ..Default::default()
        };
    };
    let span = (last.t_s - first.t_s).max(1e-9);
    let third = |s: &&&Sample| ((s.t_s - first.t_s) / span * 3.0).min(2.0) as usize;
    let mid: Vec<&Sample> = samples.iter().filter(|s| third(s) == 1).copied().collect();
    let end: Vec<&Sample> = samples.iter().filter(|s| third(s) == 2).copied().collect();
    let mean = |v: &[&Sample]| v.iter().map(|s| s.rss_kib).sum::<u64>() / v.len().max(1) as u64;
    let most = |v: &[&Sample], f: fn(&Sample) -> u64| v.iter().map(|s| f(s)).max().unwrap_or(0);
    let mut g = Growth {
        process,
        rss_mid_kib: mean(&mid),
        rss_last_kib: mean(&end),
        fds: (most(&mid, |s| s.fds), most(&end, |s| s.fds)),
        threads: (most(&mid, |s| s.threads), most(&end, |s| s.threads)),
        exceeded: Vec::new(),
    };
    if mid.is_empty() || end.is_empty() {
        return g;
    }
    let rss_bound = (g.rss_mid_kib as f64 * (1.0 + MAX_RSS_GROWTH)) as u64 + RSS_SLACK_KIB;
    if g.rss_last_kib > rss_bound {
        g.exceeded.push(format!(
            "RSS {} → {} KiB (bound {rss_bound})",
            g.rss_mid_kib, g.rss_last_kib
        ));
    }
    if g.fds.1 as i64 - g.fds.0 as i64 > MAX_FD_GROWTH {
        g.exceeded.push(format!(
            "open fds {} → {} (bound +{MAX_FD_GROWTH})",
            g.fds.0, g.fds.1
        ));
    }
    if g.threads.1 as i64 - g.threads.0 as i64 > MAX_THREAD_GROWTH {
        g.exceeded.push(format!(
            "threads {} → {} (bound +{MAX_THREAD_GROWTH})",
            g.threads.0, g.threads.1
        ));
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(process: &str, rss: impl Fn(u64) -> u64, fds: impl Fn(u64) -> u64) -> Vec<Sample> {
        (0..30)
            .map(|k| Sample {
                t_s: k as f64 * 10.0,
                process: process.into(),
                rss_kib: rss(k),
                fds: fds(k),
                threads: 20,
            })
            .collect()
    }

    #[test]
    fn steady_processes_pass_and_growing_ones_are_named() {
        let d = Period(Duration::from_secs(300));
        let mut samples = series("herd", |_| 40_000, |_| 50);
        // +4 MiB a sample (~120 MiB more by the end) and two fds leaked per sample.
        samples.extend(series("bus", |k| 20_000 + k * 4096, |k| 30 + 2 * k));
        let s = analyse(d, 10, samples, &[(1.0, 5.0), (100.0, 5.0), (200.0, 5.0)]);
        let herd = s.growth.iter().find(|g| g.process == "herd").unwrap();
        assert!(herd.exceeded.is_empty(), "{herd:?}");
        let bus = s.growth.iter().find(|g| g.process == "bus").unwrap();
        assert_eq!(bus.exceeded.len(), 2, "{bus:?}");
        assert!(bus.exceeded[0].starts_with("RSS") && bus.exceeded[1].starts_with("open fds"));
        assert_eq!(s.cv, 0.0);
    }

    #[test]
    fn cv_of_window_means_leaves_out_the_warm_up() {
        let d = Period(Duration::from_secs(100)); // 10 s windows
        // Warm-up window slow, then 10 ms and 30 ms alternating: mean 20, sd ≈ 10.7.
        let mut commits = vec![(1.0, 500.0)];
        for k in 1..10 {
            commits.push((k as f64 * 10.0 + 1.0, if k % 2 == 0 { 10.0 } else { 30.0 }));
        }
        let s = analyse(d, 1, Vec::new(), &commits);
        assert_eq!(s.windows.len(), 10);
        assert!((s.cv - 0.50).abs() < 0.02, "{}", s.cv);
    }

    #[test]
    fn periods_read_as_humans_write_them() {
        assert_eq!(
            "30m".parse::<Period>(),
            Ok(Period(Duration::from_secs(1800)))
        );
        assert_eq!(Period(Duration::from_secs(90)).to_string(), "1m 30s");
        assert!("0s".parse::<Period>().is_err());
        assert!("soon".parse::<Period>().is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        let (rss, fds, threads) = read(std::process::id()).unwrap();
        assert!(rss > 0 && fds > 0 && threads > 0);
    }
}
