//! Optional Prometheus metrics endpoint (`[metrics] listen = "127.0.0.1:9184"`,
//! off by default).
//!
//! Counters are process-wide ([`metrics`]) and fed by the engine's events
//! ([`crate::events`]); the per-state file and byte gauges and each remote's
//! reachability come from a [`Scrape`] the daemon gathers at each scrape. The endpoint is a minimal HTTP/1.1 responder on the I/O
//! runtime: `GET /metrics` gets the OpenMetrics text, anything else a 404.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `tierfs_files{state}`, `tierfs_bytes{state}` | gauge | files and bytes per catalog state |
//! | `tierfs_migrated_files_total`, `tierfs_migrated_bytes_total` | counter | files and bytes released to the cloud |
//! | `tierfs_migration_failures_total` | counter | files whose migration failed |
//! | `tierfs_recalls_total`, `tierfs_recall_failures_total` | counter | recalls done and failed |
//! | `tierfs_recall_duration_seconds` | histogram | time to recall a file |
//! | `tierfs_errors_total` | counter | errors logged |
//! | `tierfs_catalog_pending_writes` | gauge | catalog changes held in memory because writing them failed (full disk); retried until written |
//! | `tierfs_catalog_write_failures_total` | counter | catalog write attempts that failed |
//! | `tierfs_remote_up{remote}` | gauge | 1 if the last request to the remote succeeded, 0 if it failed (absent before the first) |

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::events::{Event, Recorder};
use crate::remote::{HealthReport, HealthState};

type StateLabels = Vec<(String, String)>;

/// What a scrape reads at the time it is answered.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// (state, files, bytes) per catalog state, or why they could not be read.
    pub by_state: Result<Vec<(String, u64, u64)>, String>,
    /// Each configured remote's reachability.
    pub remotes: Vec<HealthReport>,
}

/// Gathers a [`Scrape`]; called on a blocking thread (it may read SQLite).
pub type Scraper = Arc<dyn Fn() -> Scrape + Send + Sync>;

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    files: Family<StateLabels, Gauge>,
    bytes: Family<StateLabels, Gauge>,
    migrated_files: Counter,
    migrated_bytes: Counter,
    migration_failures: Counter,
    recalls: Counter,
    recall_failures: Counter,
    recall_seconds: Histogram,
    errors: Counter,
    catalog_pending: Gauge,
    catalog_write_failures: Counter,
    remote_up: Family<Vec<(String, String)>, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let files = Family::<StateLabels, Gauge>::default();
        let bytes = Family::<StateLabels, Gauge>::default();
        let migrated_files = Counter::default();
        let migrated_bytes = Counter::default();
        let migration_failures = Counter::default();
        let recalls = Counter::default();
        let recall_failures = Counter::default();
        // 10 ms … about 10 min.
        let recall_seconds = Histogram::new(exponential_buckets(0.01, 4.0, 10));
        let errors = Counter::default();
        let catalog_pending = Gauge::default();
        let catalog_write_failures = Counter::default();
        let remote_up = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register("tierfs_files", "Files per catalog state", files.clone());
        registry.register("tierfs_bytes", "Bytes per catalog state", bytes.clone());
        registry.register(
            "tierfs_migrated_files",
            "Files released to the cloud",
            migrated_files.clone(),
        );
        registry.register(
            "tierfs_migrated_bytes",
            "Bytes released to the cloud",
            migrated_bytes.clone(),
        );
        registry.register(
            "tierfs_migration_failures",
            "Files whose migration failed",
            migration_failures.clone(),
        );
        registry.register("tierfs_recalls", "Files recalled", recalls.clone());
        registry.register(
            "tierfs_recall_failures",
            "Recalls that failed",
            recall_failures.clone(),
        );
        registry.register(
            "tierfs_recall_duration_seconds",
            "Time to recall one file",
            recall_seconds.clone(),
        );
        registry.register("tierfs_errors", "Errors logged", errors.clone());
        registry.register(
            "tierfs_catalog_pending_writes",
            "Catalog changes held in memory because writing them failed",
            catalog_pending.clone(),
        );
        registry.register(
            "tierfs_catalog_write_failures",
            "Catalog write attempts that failed",
            catalog_write_failures.clone(),
        );
        registry.register(
            "tierfs_remote_up",
            "1 if the last request to the remote succeeded, 0 if it failed",
            remote_up.clone(),
        );
        Metrics {
            registry,
            files,
            bytes,
            migrated_files,
            migrated_bytes,
            migration_failures,
            recalls,
            recall_failures,
            recall_seconds,
            errors,
            catalog_pending,
            catalog_write_failures,
            remote_up,
        }
    }

    /// Counts a finished migration run.
    pub fn record_migration(&self, released: u64, released_bytes: u64, failed: u64) {
        self.migrated_files.inc_by(released);
        self.migrated_bytes.inc_by(released_bytes);
        self.migration_failures.inc_by(failed);
    }

    /// Counts a recall that downloaded something (`ok`) or failed.
    pub fn record_recall(&self, ok: bool, took: Duration) {
        if ok {
            self.recalls.inc();
            self.recall_seconds.observe(took.as_secs_f64());
        } else {
            self.recall_failures.inc();
        }
    }

    /// Sets the number of catalog changes held for retry.
    pub fn set_catalog_pending(&self, n: u64) {
        self.catalog_pending
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a failed catalog write attempt.
    pub fn record_catalog_write_failure(&self) {
        self.catalog_write_failures.inc();
    }

    /// Counts a logged error.
    pub fn record_error(&self) {
        self.errors.inc();
    }

    /// The OpenMetrics text, with the state gauges and each remote's
    /// reachability from `scrape`.
    pub fn render(&self, scrape: &Scrape) -> String {
        match &scrape.by_state {
            Ok(rows) => {
                for (state, files, bytes) in rows {
                    let labels = vec![("state".to_string(), state.clone())];
                    self.files
                        .get_or_create(&labels)
                        .set(i64::try_from(*files).unwrap_or(i64::MAX));
                    self.bytes
                        .get_or_create(&labels)
                        .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the catalog"),
        }
        for h in &scrape.remotes {
            let up = match h.state {
                HealthState::Up => 1,
                HealthState::Down => 0,
                HealthState::Unknown => continue,
            };
            self.remote_up
                .get_or_create(&vec![("remote".to_string(), h.remote.clone())])
                .set(up);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Recorder for Metrics {
    fn record(&self, event: &Event) {
        match event {
            Event::Recalled { ok, took } => self.record_recall(*ok, *took),
            Event::MigrationRun { outcome: Ok(t), .. } => {
                self.record_migration(t.released, t.released_bytes, t.failed)
            }
            _ => {}
        }
    }
}

/// Binds `listen` (so a taken port fails the start-up) and returns the
/// listener to hand to [`serve`].
pub async fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await
}

/// Answers scrapes until the runtime shuts down.
pub async fn serve(listener: tokio::net::TcpListener, scraper: Scraper) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let scraper = scraper.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(&mut stream, scraper).await {
                tracing::debug!(%peer, error = %e, "metrics: scrape failed");
            }
        });
    }
}

/// Reads one request head (up to 8 KiB, 10 s) and writes the response.
async fn answer(stream: &mut tokio::net::TcpStream, scraper: Scraper) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head"))??;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next(), parts.next());
    let (status, ctype, body) = match (method, path) {
        (Some("GET"), Some("/metrics")) => {
            let body = tokio::task::spawn_blocking(move || metrics().render(&scraper()))
                .await
                .map_err(std::io::Error::other)?;
            (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            )
        }
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "tierfs serves GET /metrics only\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histogram_are_encoded() {
        let m = Metrics::new();
        m.record_migration(2, 2048, 1);
        m.record_recall(true, Duration::from_millis(30));
        m.record_recall(false, Duration::ZERO);
        m.record_error();
        let text = m.render(&Scrape {
            by_state: Err("no catalog".into()),
            remotes: Vec::new(),
        });
        for line in [
            "tierfs_migrated_files_total 2",
            "tierfs_migrated_bytes_total 2048",
            "tierfs_migration_failures_total 1",
            "tierfs_recalls_total 1",
            "tierfs_recall_failures_total 1",
            "tierfs_recall_duration_seconds_count 1",
            "tierfs_errors_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
