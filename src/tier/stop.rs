//! The shutdown signal for running transfers.
//!
//! When the filesystem is unmounted or the daemon is told to stop, the daemon
//! calls [`Stop::stop`]. A migration then starts no new file, abandons an
//! upload in flight (the file goes back to `hot`; the partial object is never
//! referenced) and does not release files it has not released yet (they stay
//! `premigrated` and are released without uploading at the next run), so the
//! daemon exits promptly and leaves nothing half-done. Recalls are not
//! stopped: a FUSE reader may be waiting for one.

use tokio::sync::watch;

/// A one-way flag: once stopped, stays stopped.
#[derive(Debug)]
pub struct Stop {
    tx: watch::Sender<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            tx: watch::Sender::new(false),
        }
    }
}

impl Stop {
    /// Asks running work to stop.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`stop`](Stop::stop) was called.
    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once [`stop`](Stop::stop) is called (at once if it was).
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close under us.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopped_completes_after_stop_and_stays_stopped() {
        let stop = std::sync::Arc::new(Stop::default());
        assert!(!stop.is_stopped());
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        stop.stop();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("waiter woke")
            .unwrap();
        assert!(stop.is_stopped());
        stop.stopped().await;
    }
}
