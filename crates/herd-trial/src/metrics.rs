//! Latency histograms (hdrhistogram, microsecond resolution) and their summaries.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A latency histogram recording microseconds from 1 µs to 1 h with 2 significant digits
/// (values within 1 %): ~25 KiB each, where 3 digits cost ~190 KiB — and every leaf keeps
/// several, so at N = 256 that alone was half a MiB per leaf.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        // The bounds are constants that hdrhistogram accepts (1 ≤ low, high ≥ 2·low, sigfig ≤ 5).
        let hist = Histogram::new_with_bounds(1, 3_600_000_000, 2)
            .expect("valid constant histogram bounds");
        Latency { hist }
    }
}

impl Latency {
    /// Records one sample (saturating at the upper bound rather than dropping it).
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, self.hist.high());
        self.hist.saturating_record(us);
    }

    /// Merges another histogram into this one.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds by construction, so `add` cannot fail on range.
        let _ = self.hist.add(&other.hist);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The recorded values with their counts, for sending a histogram to another process.
    pub fn to_counts(&self) -> Vec<(u64, u64)> {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// The histogram [`to_counts`](Self::to_counts) described.
    pub fn from_counts(counts: &[(u64, u64)]) -> Latency {
        let mut l = Latency::default();
        for &(us, n) in counts {
            let us = us.clamp(1, l.hist.high());
            l.hist.saturating_record_n(us, n);
        }
        l
    }

    /// p50/p90/p99/max in milliseconds.
    pub fn summary(&self) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.hist.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.hist.len(),
            p50_ms: ms(self.hist.value_at_quantile(0.50)),
            p90_ms: ms(self.hist.value_at_quantile(0.90)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            max_ms: ms(self.hist.max()),
            mean_ms: self.hist.mean() / 1000.0,
        }
    }
}

/// A histogram's summary as it appears in `results.json` and the reports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest sample, ms.
    pub max_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut l = Latency::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        // Two significant digits: within 1 % of the true value.
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
        assert!(near(s.p50_ms, 50.0), "{s:?}");
        assert!(near(s.p99_ms, 99.0), "{s:?}");
        assert!(near(s.max_ms, 100.0), "{s:?}");
        assert_eq!(Latency::default().summary(), Summary::default());
        // Across a process boundary the summary is unchanged.
        assert_eq!(Latency::from_counts(&l.to_counts()).summary(), s);
    }
}
