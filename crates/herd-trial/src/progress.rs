//! Progress while a trial runs: an indicatif bar on stderr when it is a terminal, a plain line
//! every few seconds otherwise (CI logs, pipes), so a long trial is never silent.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

/// Counts finished tasks; the reporter reads it.
#[derive(Clone, Default)]
pub struct Progress {
    done: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
}

impl Progress {
    /// One task finished (closed or failed).
    pub fn task_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// One commit accepted by the hub.
    pub fn commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds counts another process reported.
    pub fn add(&self, tasks: u64, commits: u64) {
        self.done.fetch_add(tasks, Ordering::Relaxed);
        self.commits.fetch_add(commits, Ordering::Relaxed);
    }

    /// (tasks finished, commits accepted) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }

    /// Starts the reporter for `total` tasks; stop it by aborting the handle (the bar is
    /// finished by [`Reporter::finish`]).
    pub fn report(&self, total: u64, quiet: bool) -> Reporter {
        let me = self.clone();
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} tasks {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let tick_bar = bar.clone();
        let handle = tokio::spawn(async move {
            let every = if tick_bar.is_some() {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            };
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let (done, commits) = (
                    me.done.load(Ordering::Relaxed),
                    me.commits.load(Ordering::Relaxed),
                );
                match &tick_bar {
                    Some(bar) => {
                        bar.set_position(done);
                        bar.set_message(format!("{commits} commits"));
                    }
                    None if !quiet => eprintln!(
                        "herd: {:>6.1}s {done}/{total} tasks, {commits} commits",
                        started.elapsed().as_secs_f64()
                    ),
                    None => {}
                }
            }
        });
        Reporter { handle, bar }
    }
}

/// A running progress reporter.
pub struct Reporter {
    handle: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Reporter {
    /// Stops the reporter and clears the bar.
    pub async fn finish(self) {
        self.handle.abort();
        let _ = self.handle.await;
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
