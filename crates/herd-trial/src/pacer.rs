//! `Pacer`: caps the herd's total commit rate (`pace_per_min`). Each commit takes the next start
//! slot, at least `60 / pace` seconds after the previous commit *actually* started (the next
//! slot is set from the instant the waiter woke, not from the plan), so the starts the trial
//! measures are never closer than the interval and the phase2 rate gate is exact.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A shared start-slot schedule; `None` pace means no waiting.
#[derive(Clone)]
pub struct Pacer {
    next: Option<Arc<Mutex<Instant>>>,
    interval: Duration,
}

impl Pacer {
    /// Leaf `index` of `count`'s share of a `per_min` herd-wide pace, for leaves that cannot
    /// share one schedule (separate processes): every `count`-th start slot, beginning at
    /// slot `index`, so together they hold the herd's rate.
    pub fn share(per_min: Option<f64>, index: u32, count: u32) -> Pacer {
        match per_min {
            Some(p) if p > 0.0 => {
                let interval = Duration::from_secs_f64(60.0 / p);
                Pacer {
                    next: Some(Arc::new(Mutex::new(Instant::now() + interval * index))),
                    interval: interval * count.max(1),
                }
            }
            _ => Pacer::new(None),
        }
    }

    /// A pacer for `per_min` tasks per minute in total (`None`: unpaced).
    pub fn new(per_min: Option<f64>) -> Pacer {
        match per_min {
            Some(p) if p > 0.0 => Pacer {
                next: Some(Arc::new(Mutex::new(Instant::now()))),
                interval: Duration::from_secs_f64(60.0 / p),
            },
            _ => Pacer {
                next: None,
                interval: Duration::ZERO,
            },
        }
    }

    /// Waits for this caller's start slot; returns the instant it started (callers queue in
    /// arrival order, each holding the schedule until it wakes).
    pub async fn wait(&self) -> std::time::Instant {
        let Some(next) = &self.next else {
            return std::time::Instant::now();
        };
        let mut next = next.lock().await;
        tokio::time::sleep_until(*next).await;
        let now = Instant::now();
        *next = now + self.interval;
        now.into_std()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_interval() {
        let pacer = Pacer::new(Some(60.0)); // one per second
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..3 {
            starts.push(pacer.wait().await);
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        // A caller that comes late starts a new interval from when it started.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let late = pacer.wait().await;
        let next = pacer.wait().await;
        assert_eq!(next - late, Duration::from_secs(1));
        assert!(
            starts
                .windows(2)
                .all(|w| w[1] - w[0] == Duration::from_secs(1))
        );
        let unpaced = Pacer::new(None);
        let start = Instant::now();
        unpaced.wait().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
