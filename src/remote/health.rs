//! [`RemoteHealth`]: whether a remote answered its last requests.
//!
//! Every request outcome of a [`Remote`](super::Remote) updates its health:
//! a success marks it `up`, a failure to reach it (connection refused, DNS,
//! timeout) marks it `down` with the error. Other failures (a missing
//! object, rejected credentials) prove the endpoint answers, so they keep it
//! `up`. The daemon reports the state to `tierctl status`; nothing in the
//! data path depends on it (a request to a `down` remote is still tried).

use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Reachability as seen from the last requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// No request was made yet.
    #[default]
    Unknown,
    /// The last request got an answer.
    Up,
    /// The last request could not reach the remote or timed out.
    Down,
}

impl HealthState {
    /// `unknown`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Up => "up",
            HealthState::Down => "down",
        }
    }
}

/// A copy of a remote's health at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The remote's name.
    pub remote: String,
    /// Up, down or unknown.
    pub state: HealthState,
    /// Since when (seconds since the Unix epoch) the state holds; 0 if unknown.
    #[serde(default)]
    pub since_unix: i64,
    /// Failed requests in a row (0 when up).
    #[serde(default)]
    pub consecutive_failures: u64,
    /// The error that made it `down` (never contains secrets).
    #[serde(default)]
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    state: HealthState,
    since_unix: i64,
    consecutive_failures: u64,
    last_error: Option<String>,
}

/// Live health of one remote, shared by all clones of the remote.
#[derive(Debug, Default)]
pub struct RemoteHealth {
    name: String,
    inner: Mutex<Inner>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl RemoteHealth {
    /// The health of remote `name`, not contacted yet.
    pub fn new(name: &str) -> RemoteHealth {
        RemoteHealth {
            name: name.to_string(),
            inner: Mutex::default(),
        }
    }

    /// Records a request that got an answer.
    pub fn record_up(&self) {
        let mut h = self.inner.lock();
        if h.state != HealthState::Up {
            if h.state == HealthState::Down {
                tracing::info!(
                    remote = %self.name,
                    after_failures = h.consecutive_failures,
                    "remote reachable again"
                );
            }
            h.state = HealthState::Up;
            h.since_unix = now_unix();
        }
        h.consecutive_failures = 0;
        h.last_error = None;
    }

    /// Records a request that could not reach the remote.
    pub fn record_down(&self, error: &str) {
        let mut h = self.inner.lock();
        if h.state != HealthState::Down {
            tracing::warn!(remote = %self.name, error, "remote unreachable");
            h.state = HealthState::Down;
            h.since_unix = now_unix();
        }
        h.consecutive_failures += 1;
        h.last_error = Some(error.to_string());
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        self.inner.lock().state
    }

    /// A snapshot.
    pub fn report(&self) -> HealthReport {
        let h = self.inner.lock();
        HealthReport {
            remote: self.name.clone(),
            state: h.state,
            since_unix: h.since_unix,
            consecutive_failures: h.consecutive_failures,
            last_error: h.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_mark_down_and_an_answer_marks_up_again() {
        let h = RemoteHealth::new("cloud");
        assert_eq!(h.state(), HealthState::Unknown);
        h.record_down("connection refused");
        h.record_down("connection refused again");
        let r = h.report();
        assert_eq!(r.state, HealthState::Down);
        assert_eq!(r.consecutive_failures, 2);
        assert_eq!(r.last_error.as_deref(), Some("connection refused again"));
        h.record_up();
        let r = h.report();
        assert_eq!((r.state, r.consecutive_failures), (HealthState::Up, 0));
        assert_eq!(r.last_error, None);
    }
}
