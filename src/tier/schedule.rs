//! The daemon's migration schedule, with back-off while a remote is down.
//!
//! Every `migrate_interval` the rules are evaluated and the selected files
//! migrated, then unreferenced objects past their grace period are deleted.
//! When files fail for a reason that passes by itself (the remote is
//! unreachable or timing out), they stay local and the next attempt comes
//! sooner than the interval: after 1 s, then 2 s, 4 s, … up to 30 s (or the
//! interval, if shorter). The first pass that meets no such failure returns
//! to the normal interval. A `tierctl migrate` that meets an unreachable
//! remote starts the same back-off. No restart is ever needed after an outage.

use std::sync::Arc;
use std::time::Duration;

use super::{MigrateRequest, Tier};

/// First retry delay after a pass that met an unreachable remote.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay while a remote stays unreachable.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Exponential back-off: each failure doubles the delay, up to a cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// A back-off starting at `start` and never above `cap`.
    pub fn new(start: Duration, cap: Duration) -> Backoff {
        let start = start.min(cap);
        Backoff {
            start,
            cap,
            next: start,
        }
    }

    /// The delay to wait after one more failure.
    pub fn failed(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.cap);
        now
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

/// Runs a migration every `every` (sooner, with back-off, after transient
/// failures) and a garbage collection every `every`. Never returns.
pub async fn run(tier: Arc<Tier>, every: Duration, grace: Duration) {
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP.min(every));
    let mut delay = every;
    let mut since_gc = Duration::ZERO;
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tier.retry_wanted() => {
                // A `tierctl migrate` met an unreachable remote.
                let wait = backoff.failed();
                tracing::info!(retry_in = %humantime::format_duration(wait), "a migration met an unreachable remote; retrying on schedule");
                tokio::time::sleep(wait).await;
            }
        }
        since_gc += started.elapsed();
        let result = tier.migrate_counting(MigrateRequest::default()).await;
        let outcome = result
            .as_ref()
            .map(|(summary, _)| summary.clone())
            .map_err(|e| e.to_string());
        tier.record_run("schedule", &outcome);
        delay = match result {
            Ok((_, 0)) => {
                backoff.reset();
                every
            }
            Ok((summary, transient)) => {
                let wait = backoff.failed();
                tracing::warn!(
                    files = transient,
                    failed = summary.failures.len(),
                    retry_in = %humantime::format_duration(wait),
                    "remote unreachable during the scheduled migration; files stay local, retrying"
                );
                wait
            }
            Err(e) if e.is_transient() => {
                let wait = backoff.failed();
                tracing::warn!(error = %e, retry_in = %humantime::format_duration(wait), "scheduled migration failed; retrying");
                wait
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled migration failed");
                every
            }
        };
        if since_gc >= every {
            since_gc = Duration::ZERO;
            if let Err(e) = tier.gc(grace).await {
                tracing::error!(error = %e, "scheduled garbage collection failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let got: Vec<u64> = (0..5).map(|_| b.failed().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.failed(), Duration::from_secs(1));
        // A cap below the start wins.
        let mut short = Backoff::new(Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(short.failed(), Duration::from_secs(2));
    }
}
