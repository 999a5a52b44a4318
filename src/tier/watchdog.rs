//! Bounding how long a read of a cold file waits for a remote.
//!
//! A chunk read gets the remote's whole `recall_timeout`. A full recall may
//! legitimately take much longer than that (a large file on a slow link), so
//! it is bounded by *progress* instead: it fails once `recall_timeout` passes
//! without a byte written. Either way, a reader gets `EIO` after a bounded
//! time when the remote is down, never a hang.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::remote::{Remote, RemoteError};

/// The error a timed-out read reports (and records in the remote's health).
pub(super) fn timed_out(remote: &Remote, key: &str, limit: Duration) -> RemoteError {
    let err = RemoteError::Timeout {
        remote: remote.name().to_string(),
        op: format!(
            "GET {key} (no progress within recall_timeout {})",
            humantime::format_duration(limit)
        ),
    };
    remote.health().record_down(&err.to_string());
    err
}

/// Runs `fut`; gives up (returns `None`, dropping it) when `limit` passes
/// without it finishing.
pub(super) async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, fut).await.ok()
}

/// Runs `fut`; gives up (returns `None`, dropping it) when `limit` passes
/// without `progress` changing.
pub(super) async fn while_progressing<T>(
    limit: Duration,
    progress: &AtomicU64,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(fut);
    let mut seen = progress.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tokio::time::sleep(limit) => {
                let now = progress.load(Ordering::Relaxed);
                if now == seen {
                    return None;
                }
                seen = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stalled_future_is_abandoned_and_a_progressing_one_is_not() {
        let progress = AtomicU64::new(0);
        let stalled = while_progressing(
            Duration::from_millis(50),
            &progress,
            std::future::pending::<()>(),
        )
        .await;
        assert_eq!(stalled, None);

        let progress = AtomicU64::new(0);
        let slow_but_moving = async {
            for i in 1..=6u64 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                progress.store(i, Ordering::Relaxed);
            }
            42
        };
        // 180 ms in total, longer than the 50 ms limit, but never 50 ms idle.
        let out = while_progressing(Duration::from_millis(50), &progress, slow_but_moving).await;
        assert_eq!(out, Some(42));

        assert_eq!(
            within(Duration::from_millis(20), std::future::pending::<()>()).await,
            None
        );
    }
}
