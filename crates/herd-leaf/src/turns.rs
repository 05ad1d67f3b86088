//! The leaf's copy of the turn queue ([`herd_bus::turns`]): a subscriber folds the turn stream
//! into a FIFO; a committer that wants to push first waits until the queue is empty or its own
//! request is at the head. A head that has held the turn longer than the lease without giving
//! it back is dropped locally (it crashed or hangs), so the queue can never stall the herd.
//!
//! [`Fairness`] chooses between this and plain backoff, at construction.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use herd_bus::{TurnKind, TurnMsg, TurnStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How a leaf that keeps losing the race in race mode still lands.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Fairness {
    /// After K lost races the leaf asks for a turn; while turns are queued only the head pushes.
    #[default]
    Turn,
    /// Jittered exponential backoff after each lost race, nothing else.
    Backoff,
}

impl Fairness {
    /// `turn` or `backoff`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fairness::Turn => "turn",
            Fairness::Backoff => "backoff",
        }
    }
}

impl std::str::FromStr for Fairness {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "turn" => Ok(Fairness::Turn),
            "backoff" => Ok(Fairness::Backoff),
            _ => Err(format!("{s:?}: expected turn or backoff")),
        }
    }
}

#[derive(Debug)]
struct Entry {
    leaf: String,
    id: u64,
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// When the current head became head (local clock).
    head_since: Option<Instant>,
}

impl Queue {
    fn apply(&mut self, msg: TurnMsg) {
        match msg.kind {
            TurnKind::Request => {
                if !self
                    .entries
                    .iter()
                    .any(|e| e.id == msg.id && e.leaf == msg.leaf)
                {
                    if self.entries.is_empty() {
                        self.head_since = Some(Instant::now());
                    }
                    self.entries.push_back(Entry {
                        leaf: msg.leaf,
                        id: msg.id,
                    });
                }
            }
            TurnKind::Done => {
                let was_head = self
                    .entries
                    .front()
                    .is_some_and(|e| e.id == msg.id && e.leaf == msg.leaf);
                self.entries
                    .retain(|e| !(e.id == msg.id && e.leaf == msg.leaf));
                if was_head {
                    self.head_since = Some(Instant::now());
                }
            }
        }
    }

    /// Drops heads that outstayed `lease`.
    fn expire(&mut self, lease: Duration) {
        while let Some(since) = self.head_since
            && !self.entries.is_empty()
            && since.elapsed() > lease
        {
            let gone = self.entries.pop_front();
            tracing::warn!(head = ?gone, "turn head outstayed its lease; dropped");
            self.head_since = Some(Instant::now());
        }
    }

    /// May `leaf` (holding request `mine`, if any) push now?
    fn clear_for(&self, leaf: &str, mine: Option<u64>) -> bool {
        match self.entries.front() {
            None => true,
            Some(head) => mine == Some(head.id) && head.leaf == leaf,
        }
    }
}

/// The running copy of the turn queue.
pub(crate) struct Turns {
    queue: Arc<Mutex<Queue>>,
    changed: Arc<Notify>,
    lease: Duration,
    task: JoinHandle<()>,
}

impl Turns {
    /// Folds `stream` into the queue until the leaf stops. When `bus` reconnects (perhaps to a
    /// restarted server that lost the consumer) the stream is taken up again at once from the
    /// last message seen, instead of after the client's missed-heartbeat detection: a queue
    /// that misses `done`s stalls every leaf until the heads' leases run out.
    pub fn spawn(bus: herd_bus::Bus, mut stream: TurnStream, lease: Duration) -> Turns {
        let queue = Arc::new(Mutex::new(Queue::default()));
        let changed = Arc::new(Notify::new());
        let (q, n) = (queue.clone(), changed.clone());
        let task = tokio::spawn(async move {
            let mut resume = crate::resume::Resume::new(&bus);
            loop {
                let resume_now = tokio::select! {
                    () = resume.due() => true,
                    next = stream.next() => {
                        match next {
                            Some(Ok(msg)) => {
                                q.lock().expect("turn queue lock").apply(msg);
                                n.notify_waiters();
                            }
                            Some(Err(e)) => tracing::warn!(error = %e, "turn stream error"),
                            None => break,
                        }
                        false
                    }
                };
                if resume_now {
                    let resumed = bus.turns_after(stream.last_seq()).await;
                    resume.settled(&resumed);
                    match resumed {
                        Ok(resumed) => stream = resumed,
                        Err(e) => {
                            tracing::warn!(error = %e, "resuming the turn stream; trying again")
                        }
                    }
                }
            }
        });
        Turns {
            queue,
            changed,
            lease,
            task,
        }
    }

    /// Waits until `leaf` may push: no turn is queued, or its own request `mine` is the head.
    pub async fn wait_clear(&self, leaf: &str, mine: Option<u64>) {
        loop {
            let notified = self.changed.notified();
            {
                let mut queue = self.queue.lock().expect("turn queue lock");
                queue.expire(self.lease);
                if queue.clear_for(leaf, mine) {
                    return;
                }
            }
            // Wake on a change, or in time to expire a head that outstays its lease.
            let _ = tokio::time::timeout(self.lease / 4, notified).await;
        }
    }
}

impl Drop for Turns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: TurnKind, leaf: &str, id: u64) -> TurnMsg {
        TurnMsg {
            kind,
            leaf: leaf.into(),
            id,
        }
    }

    #[test]
    fn first_come_first_served_and_others_wait() {
        let mut q = Queue::default();
        assert!(q.clear_for("a", None), "no queue: anyone pushes");
        q.apply(msg(TurnKind::Request, "b", 1));
        q.apply(msg(TurnKind::Request, "c", 2));
        q.apply(msg(TurnKind::Request, "b", 1)); // a duplicate is ignored
        assert!(!q.clear_for("a", None), "a bystander waits");
        assert!(q.clear_for("b", Some(1)), "the head pushes");
        assert!(!q.clear_for("c", Some(2)), "the second waits");
        q.apply(msg(TurnKind::Done, "b", 1));
        assert!(q.clear_for("c", Some(2)));
        q.apply(msg(TurnKind::Done, "c", 2));
        assert!(q.clear_for("a", None));
    }

    #[test]
    fn a_head_that_outstays_its_lease_is_dropped() {
        let mut q = Queue::default();
        q.apply(msg(TurnKind::Request, "dead", 1));
        q.apply(msg(TurnKind::Request, "c", 2));
        q.head_since = Some(Instant::now() - Duration::from_secs(5));
        q.expire(Duration::from_secs(1));
        assert!(q.clear_for("c", Some(2)));
    }
}
