//! The trial's own subscriber to tip broadcasts: records every broadcast (hub seq, oid, when
//! received) for propagation lag and for matching accepted commits to their sequence. It also
//! follows the claims bucket, so every claim revision reaches `kv-claims.jsonl` even after its
//! lease expired it from the server (I1b reads the whole claim history).

use std::time::Instant;

use futures::StreamExt;
use herd_bus::Bus;

use crate::error::TrialError;

/// One broadcast as the trial's observer received it.
pub(crate) struct Seen {
    pub(crate) seq: u64,
    pub(crate) oid: String,
    pub(crate) at: Instant,
}

/// The trial's own subscriber: records every broadcast (hub seq, oid, when received).
pub(crate) struct Observer {
    handle: tokio::task::JoinHandle<Vec<Seen>>,
    stop: tokio::sync::oneshot::Sender<()>,
    claims: Option<herd_bus::dump::BucketRecorder>,
}

impl Observer {
    pub(crate) async fn start(bus: &Bus) -> Result<Observer, TrialError> {
        let claims = Some(bus.record_bucket(herd_bus::CLAIMS_BUCKET).await?);
        let mut tips = bus.tips().await?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => return seen,
                    next = tips.next() => match next {
                        Some(Ok(ev)) => seen.push(Seen {
                            seq: ev.tip.seq,
                            oid: ev.tip.oid,
                            at: Instant::now(),
                        }),
                        Some(Err(_)) => continue,
                        None => return seen,
                    },
                }
            }
        });
        Ok(Observer {
            handle,
            stop,
            claims,
        })
    }

    /// Every claim revision seen so far (once; later calls return none).
    pub(crate) async fn claims(&mut self) -> Vec<herd_bus::KvRecord> {
        match self.claims.take() {
            Some(recorder) => recorder.stop().await,
            None => Vec::new(),
        }
    }

    pub(crate) async fn stop(self) -> Vec<Seen> {
        let _ = self.stop.send(());
        self.handle.await.unwrap_or_default()
    }
}
