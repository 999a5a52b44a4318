//! Remote reachability in `tierctl status`, as the running daemon sees it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use tierfs::control::{self, Request};
use tierfs::remote::{HealthReport, HealthState};

use crate::human;

/// Each remote's health from the daemon at `socket`; empty when the daemon
/// does not answer or predates this request.
pub fn query(socket: &Path, timeout: Duration) -> Vec<HealthReport> {
    control::call(socket, &Request::RemoteHealth, timeout).unwrap_or_default()
}

/// One `remote NAME` field per remote, e.g. `down for 12s (3 failed
/// requests): remote `cloud` is unreachable: …`.
pub fn fields(reports: &[HealthReport], now: SystemTime) -> Vec<(&'static str, String)> {
    reports
        .iter()
        .map(|r| ("remote", describe(r, now)))
        .collect()
}

fn describe(r: &HealthReport, now: SystemTime) -> String {
    let age = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Duration::from_secs(d.as_secs().saturating_sub(r.since_unix.max(0) as u64)))
        .unwrap_or_default();
    match r.state {
        HealthState::Unknown => format!("{}: not contacted yet", r.remote),
        HealthState::Up => format!("{}: up for {}", r.remote, human::duration(age)),
        HealthState::Down => format!(
            "{}: down for {} ({} failed request(s)): {}",
            r.remote,
            human::duration(age),
            r.consecutive_failures,
            r.last_error.as_deref().unwrap_or("unknown error")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_names_the_remote_and_the_error() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let report = HealthReport {
            remote: "cloud".into(),
            state: HealthState::Down,
            since_unix: 990,
            consecutive_failures: 3,
            last_error: Some("remote `cloud` is unreachable: connection refused".into()),
        };
        let f = fields(&[report], now);
        assert_eq!(f[0].0, "remote");
        assert!(f[0].1.starts_with("cloud: down for 10"), "{}", f[0].1);
        assert!(f[0].1.contains("3 failed request(s)"), "{}", f[0].1);
        assert!(f[0].1.contains("connection refused"), "{}", f[0].1);
    }
}
