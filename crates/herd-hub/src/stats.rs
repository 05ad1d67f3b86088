//! `HubStats`: what the hub did, counted where it happens — HTTP requests by route, pushes
//! accepted and refused (by refusal name), commits landed and how (as pushed, or replayed by
//! the merge queue, in how many group commits), broadcasts and their payloads, bytes, and the
//! receive latency histogram.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// A snapshot of the hub's counters.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HubStats {
    /// HTTP requests served (every route, refused ones included).
    pub requests: u64,
    /// `GET info/refs?service=git-upload-pack`.
    pub upload_adverts: u64,
    /// `GET info/refs?service=git-receive-pack`.
    pub receive_adverts: u64,
    /// `POST git-upload-pack` (fetch and clone rounds).
    pub fetches: u64,
    /// `POST git-receive-pack`.
    pub push_requests: u64,
    /// Pushes whose update landed.
    pub pushes_accepted: u64,
    /// Pushes refused (any reason).
    pub pushes_rejected: u64,
    /// Refusals by name (`stale`, `overlap`, `outside-slot`, ...).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Commits the trunk gained.
    pub commits_landed: u64,
    /// Of those, commits the merge queue replayed onto a newer tip (a new oid).
    pub commits_replayed: u64,
    /// Ref updates that landed commits (one per accepted race push, one per queue group).
    pub landing_batches: u64,
    /// Most commits one ref update landed.
    pub largest_batch: u64,
    /// Requests refused before processing (bad input, 4xx).
    pub bad_requests: u64,
    /// Push requests refused for want of a valid slot token (401/403).
    pub pushes_denied: u64,
    /// Requests turned away with 503 because `max_in_flight` were already being served, or
    /// fetches that ran past the upload time limit.
    pub overloaded: u64,
    /// Tip broadcasts published.
    pub broadcasts: u64,
    /// Broadcasts that carried a payload pack.
    pub payloads: u64,
    /// Payload bytes published.
    pub payload_bytes: u64,
    /// Broadcasts sent without payload because the pack was over the cap.
    pub payloads_over_cap: u64,
    /// Tip broadcasts that could not be published (after retries).
    pub publish_failures: u64,
    /// Broadcasts re-published by a catch-up (after a failed publish or a restart).
    pub republished: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Repacks run.
    pub repacks: u64,
    /// Receive latency p50, µs.
    pub receive_p50_us: u64,
    /// Receive latency p99, µs.
    pub receive_p99_us: u64,
}

/// The live counters.
pub struct Stats {
    requests: AtomicU64,
    upload_adverts: AtomicU64,
    receive_adverts: AtomicU64,
    fetches: AtomicU64,
    push_requests: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    commits_landed: AtomicU64,
    commits_replayed: AtomicU64,
    landing_batches: AtomicU64,
    largest_batch: AtomicU64,
    bad_requests: AtomicU64,
    pushes_denied: AtomicU64,
    overloaded: AtomicU64,
    broadcasts: AtomicU64,
    payloads: AtomicU64,
    payload_bytes: AtomicU64,
    payloads_over_cap: AtomicU64,
    publish_failures: AtomicU64,
    republished: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    repacks: AtomicU64,
    by_reason: Mutex<BTreeMap<String, u64>>,
    receive: Mutex<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        let zero = || AtomicU64::new(0);
        Stats {
            requests: zero(),
            upload_adverts: zero(),
            receive_adverts: zero(),
            fetches: zero(),
            push_requests: zero(),
            accepted: zero(),
            rejected: zero(),
            commits_landed: zero(),
            commits_replayed: zero(),
            landing_batches: zero(),
            largest_batch: zero(),
            bad_requests: zero(),
            pushes_denied: zero(),
            overloaded: zero(),
            broadcasts: zero(),
            payloads: zero(),
            payload_bytes: zero(),
            payloads_over_cap: zero(),
            publish_failures: zero(),
            republished: zero(),
            bytes_in: zero(),
            bytes_out: zero(),
            repacks: zero(),
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

/// An HTTP route, for the request counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET info/refs?service=git-upload-pack`.
    UploadAdvert,
    /// `GET info/refs?service=git-receive-pack`.
    ReceiveAdvert,
    /// `POST git-upload-pack`.
    Fetch,
    /// `POST git-receive-pack`.
    Push,
    /// Anything else (refused).
    Other,
}

impl Stats {
    /// One HTTP request on `route`.
    pub fn request(&self, route: Route) {
        bump(&self.requests, 1);
        match route {
            Route::UploadAdvert => bump(&self.upload_adverts, 1),
            Route::ReceiveAdvert => bump(&self.receive_adverts, 1),
            Route::Fetch => bump(&self.fetches, 1),
            Route::Push => bump(&self.push_requests, 1),
            Route::Other => {}
        }
    }

    /// An accepted push, taking `took`.
    pub fn accepted(&self, took: Duration) {
        bump(&self.accepted, 1);
        self.record(took);
    }

    /// A refused push, by refusal name.
    pub fn rejected(&self, name: &str, took: Duration) {
        bump(&self.rejected, 1);
        *self
            .by_reason
            .lock()
            .expect("stats lock")
            .entry(name.to_string())
            .or_default() += 1;
        self.record(took);
    }

    /// One ref update that landed `commits` commits, `replayed` of them rebased by the hub.
    pub fn landed(&self, commits: u64, replayed: u64) {
        bump(&self.commits_landed, commits);
        bump(&self.commits_replayed, replayed);
        bump(&self.landing_batches, 1);
        self.largest_batch.fetch_max(commits, Ordering::AcqRel);
    }

    /// A broadcast published, with a payload of `payload` bytes (if any); `over_cap` when its
    /// pack was dropped for size.
    pub fn broadcast(&self, payload: Option<usize>, over_cap: bool) {
        bump(&self.broadcasts, 1);
        if let Some(bytes) = payload {
            bump(&self.payloads, 1);
            bump(&self.payload_bytes, bytes as u64);
        }
        if over_cap {
            bump(&self.payloads_over_cap, 1);
        }
    }

    /// A request refused as bad input.
    pub fn bad_request(&self) {
        bump(&self.bad_requests, 1);
    }

    /// A push request without a valid token.
    pub fn push_denied(&self) {
        bump(&self.pushes_denied, 1);
    }

    /// A request turned away (503).
    pub fn overloaded(&self) {
        bump(&self.overloaded, 1);
    }

    /// Broadcasts a catch-up re-published.
    pub fn republished(&self, n: u64) {
        bump(&self.republished, n);
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

    /// A repack ran.
    pub fn repacked(&self) {
        bump(&self.repacks, 1);
    }

    /// Commits landed so far.
    pub fn commits_landed(&self) -> u64 {
        self.commits_landed.load(Ordering::Acquire)
    }

    fn record(&self, took: Duration) {
        self.receive
            .lock()
            .expect("stats lock")
            .saturating_record((took.as_micros() as u64).max(1));
    }

    /// Adds the counts of a previous run of the hub on the same directory (a restart), so
    /// the counters read as one hub's. The receive-time percentiles are this run's only.
    pub fn absorb(&self, s: &HubStats) {
        for (x, n) in [
            (&self.requests, s.requests),
            (&self.upload_adverts, s.upload_adverts),
            (&self.receive_adverts, s.receive_adverts),
            (&self.fetches, s.fetches),
            (&self.push_requests, s.push_requests),
            (&self.accepted, s.pushes_accepted),
            (&self.rejected, s.pushes_rejected),
            (&self.commits_landed, s.commits_landed),
            (&self.commits_replayed, s.commits_replayed),
            (&self.landing_batches, s.landing_batches),
            (&self.bad_requests, s.bad_requests),
            (&self.pushes_denied, s.pushes_denied),
            (&self.overloaded, s.overloaded),
            (&self.broadcasts, s.broadcasts),
            (&self.payloads, s.payloads),
            (&self.payload_bytes, s.payload_bytes),
            (&self.payloads_over_cap, s.payloads_over_cap),
            (&self.publish_failures, s.publish_failures),
            (&self.republished, s.republished),
            (&self.bytes_in, s.bytes_in),
            (&self.bytes_out, s.bytes_out),
            (&self.repacks, s.repacks),
        ] {
            bump(x, n);
        }
        self.largest_batch
            .fetch_max(s.largest_batch, Ordering::AcqRel);
        let mut by = self.by_reason.lock().expect("stats lock");
        for (k, v) in &s.rejected_by_reason {
            *by.entry(k.clone()).or_default() += v;
        }
    }

    /// A snapshot.
    pub fn snapshot(&self) -> HubStats {
        let g = |x: &AtomicU64| x.load(Ordering::Acquire);
        let (p50, p99) = {
            let h = self.receive.lock().expect("stats lock");
            if h.is_empty() {
                (0, 0)
            } else {
                (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
            }
        };
        HubStats {
            requests: g(&self.requests),
            upload_adverts: g(&self.upload_adverts),
            receive_adverts: g(&self.receive_adverts),
            fetches: g(&self.fetches),
            push_requests: g(&self.push_requests),
            pushes_accepted: g(&self.accepted),
            pushes_rejected: g(&self.rejected),
            rejected_by_reason: self.by_reason.lock().expect("stats lock").clone(),
            commits_landed: g(&self.commits_landed),
            commits_replayed: g(&self.commits_replayed),
            landing_batches: g(&self.landing_batches),
            largest_batch: g(&self.largest_batch),
            bad_requests: g(&self.bad_requests),
            pushes_denied: g(&self.pushes_denied),
            overloaded: g(&self.overloaded),
            broadcasts: g(&self.broadcasts),
            payloads: g(&self.payloads),
            payload_bytes: g(&self.payload_bytes),
            payloads_over_cap: g(&self.payloads_over_cap),
            publish_failures: g(&self.publish_failures),
            republished: g(&self.republished),
            bytes_in: g(&self.bytes_in),
            bytes_out: g(&self.bytes_out),
            repacks: g(&self.repacks),
            receive_p50_us: p50,
            receive_p99_us: p99,
        }
    }
}
