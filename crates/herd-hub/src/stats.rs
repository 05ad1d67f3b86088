//! `HubStats`: pushes accepted and rejected (by reason), bytes in and out, and the receive
//! latency histogram — counted by the hub itself, where each happens.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// A snapshot of the hub's counters.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct HubStats {
    /// Pushes to main accepted.
    pub pushes_accepted: u64,
    /// Pushes refused (any reason).
    pub pushes_rejected: u64,
    /// Refusals by reason (`non-fast-forward`, `outside slot`, ...).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Requests refused before processing (bad input, 4xx).
    pub bad_requests: u64,
    /// Tip broadcasts that could not be published.
    pub publish_failures: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Fetches (upload-pack requests) served.
    pub fetches: u64,
    /// Repacks run.
    pub repacks: u64,
    /// Receive latency p50, µs.
    pub receive_p50_us: u64,
    /// Receive latency p99, µs.
    pub receive_p99_us: u64,
}

/// The live counters.
pub struct Stats {
    accepted: AtomicU64,
    rejected: AtomicU64,
    bad_requests: AtomicU64,
    publish_failures: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    fetches: AtomicU64,
    repacks: AtomicU64,
    by_reason: Mutex<BTreeMap<String, u64>>,
    receive: Mutex<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            bad_requests: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            repacks: AtomicU64::new(0),
            by_reason: Mutex::new(BTreeMap::new()),
            // Constant, valid bounds (1 µs .. 1 h, 3 significant digits).
            receive: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
        }
    }
}

fn bump(x: &AtomicU64, n: u64) {
    x.fetch_add(n, Ordering::AcqRel);
}

impl Stats {
    /// An accepted push, taking `took`.
    pub fn accepted(&self, took: Duration) {
        bump(&self.accepted, 1);
        self.record(took);
    }

    /// A refused push.
    pub fn rejected(&self, reason: &str, took: Duration) {
        bump(&self.rejected, 1);
        // Reasons carry detail after a colon, and "outside slot slot-3: path" names the slot:
        // group by the fixed part so the map stays small.
        let key = if reason.starts_with("outside slot") {
            "outside slot"
        } else {
            reason.split(':').next().unwrap_or(reason).trim()
        };
        let key = key.to_string();
        if let Ok(mut map) = self.by_reason.lock() {
            *map.entry(key).or_default() += 1;
        }
        self.record(took);
    }

    /// A request refused as bad input.
    pub fn bad_request(&self) {
        bump(&self.bad_requests, 1);
    }

    /// A broadcast that failed to publish.
    pub fn publish_failed(&self) {
        bump(&self.publish_failures, 1);
    }

    /// Body bytes in and out.
    pub fn bytes(&self, inbound: u64, outbound: u64) {
        bump(&self.bytes_in, inbound);
        bump(&self.bytes_out, outbound);
    }

    /// An upload-pack served.
    pub fn fetch(&self) {
        bump(&self.fetches, 1);
    }

    /// A repack ran.
    pub fn repacked(&self) {
        bump(&self.repacks, 1);
    }

    /// Accepted pushes so far.
    pub fn accepted_count(&self) -> u64 {
        self.accepted.load(Ordering::Acquire)
    }

    fn record(&self, took: Duration) {
        if let Ok(mut h) = self.receive.lock() {
            h.saturating_record((took.as_micros() as u64).max(1));
        }
    }

    /// A snapshot.
    pub fn snapshot(&self) -> HubStats {
        let g = |x: &AtomicU64| x.load(Ordering::Acquire);
        let (p50, p99) = self
            .receive
            .lock()
            .map(|h| {
                if h.is_empty() {
                    (0, 0)
                } else {
                    (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
                }
            })
            .unwrap_or((0, 0));
        HubStats {
            pushes_accepted: g(&self.accepted),
            pushes_rejected: g(&self.rejected),
            rejected_by_reason: self.by_reason.lock().map(|m| m.clone()).unwrap_or_default(),
            bad_requests: g(&self.bad_requests),
            publish_failures: g(&self.publish_failures),
            bytes_in: g(&self.bytes_in),
            bytes_out: g(&self.bytes_out),
            fetches: g(&self.fetches),
            repacks: g(&self.repacks),
            receive_p50_us: p50,
            receive_p99_us: p99,
        }
    }
}
