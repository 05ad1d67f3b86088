//! Fail points for F4 (a hub restart mid-push): a test or the trial's fault driver arms one
//! point; the next race-mode push that reaches it stops there as if the process died — at
//! `PackWritten` its objects are on disk but the ref never moves, at `RefUpdated` the ref moved
//! but the push is never answered (nor broadcast). The push's request then hangs until the
//! caller crashes the hub ([`crate::Hub::crash`]) and starts it again on the same directory.
//! Nothing blocks a thread: the store job returns early and the request future waits on a
//! future that never completes.

use std::sync::Mutex;

use tokio::sync::Notify;

/// Where a push stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPoint {
    /// The pushed objects are written; the ref is not moved.
    PackWritten,
    /// The ref moved; no answer, no broadcast.
    RefUpdated,
}

/// The armed point, and who waits for it to be hit.
#[derive(Default, Debug)]
pub struct FailPoints {
    armed: Mutex<Option<FailPoint>>,
    fired: Mutex<Option<FailPoint>>,
    hit: Notify,
}

impl FailPoints {
    /// Arms `point` for the next push that reaches it (one shot).
    pub fn arm(&self, point: FailPoint) {
        *self.armed.lock().expect("fail point lock") = Some(point);
        *self.fired.lock().expect("fail point lock") = None;
    }

    /// Waits until the armed point is hit.
    pub async fn hit(&self) {
        loop {
            let notified = self.hit.notified();
            if self.fired.lock().expect("fail point lock").is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Called at `point`: true (and the point is spent) when it was armed.
    pub(crate) fn take(&self, point: FailPoint) -> bool {
        let mut armed = self.armed.lock().expect("fail point lock");
        if *armed != Some(point) {
            return false;
        }
        *armed = None;
        *self.fired.lock().expect("fail point lock") = Some(point);
        self.hit.notify_waiters();
        true
    }
}
