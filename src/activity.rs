//! What the daemon has been doing, for `tierctl status`: the running job's
//! progress, the last migration run, each rule's last run and the errors of
//! the last 24 hours. (Each remote's reachability is kept by the remote
//! itself: `crate::remote::health`.)
//!
//! Errors are captured from the log itself ([`ErrorCapture`], a `tracing`
//! layer installed by the `tierfs` binary): every `ERROR` event, with its
//! message and fields, goes into a bounded in-memory ring. Nothing else in the
//! daemon has to report errors twice, and what `tierctl status` shows is
//! exactly what the journal has.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use crate::events::RuleRun;
use crate::events::{Event, Recorder, RunTotals};

/// How many recent errors are kept in memory.
pub const ERROR_RING: usize = 200;
/// How many of them a report carries (the newest).
pub const ERRORS_SHOWN: usize = 10;
const DAY_SECS: i64 = 86_400;

/// One logged error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentError {
    /// When, in seconds since the Unix epoch.
    pub at_unix: i64,
    /// The module that logged it (e.g. `tierfs::tier`).
    pub target: String,
    /// The message followed by its fields (`path=… error=…`).
    pub message: String,
}

/// How the last migration run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When it ended, in seconds since the Unix epoch.
    pub finished_unix: i64,
    /// `schedule` (every `migrate_interval`) or `tierctl`.
    pub trigger: String,
    /// Files released to the cloud.
    pub released: u64,
    /// Bytes released.
    pub released_bytes: u64,
    /// Files skipped (changed, open, or the daemon was stopping).
    pub skipped: u64,
    /// Files that failed.
    pub failed: u64,
    /// How long it took.
    pub seconds: f64,
    /// Set when the whole run failed before migrating anything.
    pub error: Option<String>,
}

impl RunRecord {
    /// Summarises a finished run.
    pub fn new(trigger: &str, result: &Result<RunTotals, String>) -> RunRecord {
        let mut r = RunRecord {
            finished_unix: now_unix(),
            trigger: trigger.to_string(),
            released: 0,
            released_bytes: 0,
            skipped: 0,
            failed: 0,
            seconds: 0.0,
            error: None,
        };
        match result {
            Ok(s) => {
                r.released = s.released;
                r.released_bytes = s.released_bytes;
                r.skipped = s.skipped;
                r.failed = s.failed;
                r.seconds = s.seconds;
            }
            Err(e) => r.error = Some(e.clone()),
        }
        r
    }
}

/// Progress of the running job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Files finished.
    pub files_done: u64,
    /// Files in the job.
    pub files_total: u64,
    /// Bytes handled.
    pub bytes_done: u64,
    /// Bytes in the job.
    pub bytes_total: u64,
}

/// The daemon's answer to `Request::Activity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityReport {
    /// The running migration or recall, if one runs (files/bytes done of total).
    pub job: Option<JobProgress>,
    /// The last migration run since the daemon started.
    pub last_migration: Option<RunRecord>,
    /// Errors logged in the last 24 hours (at most [`ERROR_RING`] are kept).
    pub errors_24h: u64,
    /// The newest of them, newest last (at most [`ERRORS_SHOWN`]).
    pub recent_errors: Vec<RecentError>,
    /// Each rule's last run since the daemon started, by rule id.
    #[serde(default)]
    pub rules: Vec<RuleRun>,
    /// Recalls running in the background (reads of cold files promoted to
    /// a full recall).
    #[serde(default)]
    pub background_recalls: u64,
}

/// The daemon-wide activity record.
#[derive(Debug, Default)]
pub struct Activity {
    errors: Mutex<VecDeque<RecentError>>,
    last_migration: Mutex<Option<RunRecord>>,
    rules: Mutex<BTreeMap<i64, RuleRun>>,
}

/// The process's activity record.
pub fn activity() -> &'static Activity {
    static ACTIVITY: OnceLock<Activity> = OnceLock::new();
    ACTIVITY.get_or_init(Activity::default)
}

impl Activity {
    /// Records an error (the oldest is dropped beyond [`ERROR_RING`]).
    pub fn record_error(&self, error: RecentError) {
        let mut ring = self.errors.lock();
        if ring.len() == ERROR_RING {
            ring.pop_front();
        }
        ring.push_back(error);
    }

    /// Records a finished migration run.
    pub fn record_migration(&self, run: RunRecord) {
        *self.last_migration.lock() = Some(run);
    }

    /// Records what each rule did in a finished (not dry) migration run.
    pub fn record_rule_runs(&self, runs: &[RuleRun]) {
        let mut rules = self.rules.lock();
        for run in runs {
            rules.insert(run.rule_id, run.clone());
        }
    }

    /// Each rule's last run, as JSON for the catalog's `meta` table.
    pub fn rule_runs_json(&self) -> String {
        let runs: Vec<RuleRun> = self.rules.lock().values().cloned().collect();
        serde_json::to_string(&runs).unwrap_or_else(|_| "[]".into())
    }

    /// Restores rule runs saved by [`rule_runs_json`](Activity::rule_runs_json)
    /// (at start-up; runs recorded since are kept).
    pub fn restore_rule_runs(&self, json: &str) {
        let Ok(runs) = serde_json::from_str::<Vec<RuleRun>>(json) else {
            tracing::warn!("ignoring unreadable saved rule runs in the catalog");
            return;
        };
        let mut rules = self.rules.lock();
        for run in runs {
            rules.entry(run.rule_id).or_insert(run);
        }
    }

    /// The report, with `job` as given by the caller (the tier engine's
    /// progress). Remote health is each `Remote`'s own (`Request::RemoteHealth`).
    pub fn report(&self, job: Option<JobProgress>, now_unix: i64) -> ActivityReport {
        let ring = self.errors.lock();
        let recent: Vec<&RecentError> = ring
            .iter()
            .filter(|e| e.at_unix > now_unix - DAY_SECS)
            .collect();
        let shown = recent.len().saturating_sub(ERRORS_SHOWN);
        ActivityReport {
            job,
            last_migration: self.last_migration.lock().clone(),
            errors_24h: recent.len() as u64,
            recent_errors: recent[shown..].iter().map(|e| (*e).clone()).collect(),
            rules: self.rules.lock().values().cloned().collect(),
            background_recalls: 0,
        }
    }
}

impl Recorder for Activity {
    fn record(&self, event: &Event) {
        match event {
            Event::MigrationRun { trigger, outcome } => {
                self.record_migration(RunRecord::new(trigger, outcome))
            }
            Event::RuleRuns(runs) => self.record_rule_runs(runs),
            Event::Billed(_) | Event::Recalled { .. } => {}
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A `tracing` layer that copies every `ERROR` event into [`activity`].
#[derive(Debug, Default, Clone, Copy)]
pub struct ErrorCapture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorCapture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if *event.metadata().level() != tracing::Level::ERROR {
            return;
        }
        crate::metrics::metrics().record_error();
        let mut visitor = Render::default();
        event.record(&mut visitor);
        activity().record_error(RecentError {
            at_unix: now_unix(),
            target: event.metadata().target().to_string(),
            message: visitor.text(),
        });
    }
}

/// Renders an event as `message key=value …`.
#[derive(Default)]
struct Render {
    message: String,
    fields: String,
}

impl Render {
    fn text(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl tracing::field::Visit for Render {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn errors_are_captured_with_fields_and_bounded() {
        let act = Activity::default();
        for i in 0..(ERROR_RING + 5) {
            act.record_error(RecentError {
                at_unix: 1_000_000 + i as i64,
                target: "t".into(),
                message: format!("e{i}"),
            });
        }
        let r = act.report(None, 1_000_000 + ERROR_RING as i64 + 5);
        assert_eq!(r.errors_24h, ERROR_RING as u64);
        assert_eq!(r.recent_errors.len(), ERRORS_SHOWN);
        assert_eq!(
            r.recent_errors.last().unwrap().message,
            format!("e{}", ERROR_RING + 4)
        );
        // A day later, none of them counts.
        let r = act.report(None, 1_000_000 + 2 * DAY_SECS);
        assert_eq!(r.errors_24h, 0);
        assert!(r.recent_errors.is_empty());
    }

    fn run(rule_id: i64, released: u64) -> RuleRun {
        RuleRun {
            rule_id,
            finished_unix: now_unix(),
            selected: released,
            released,
            ..Default::default()
        }
    }

    #[test]
    fn rule_runs_keep_each_rules_latest() {
        let act = Activity::default();
        act.record_rule_runs(&[run(1, 1), run(2, 0)]);
        act.record_rule_runs(&[run(1, 3)]);
        let rules = act.report(None, now_unix()).rules;
        assert_eq!(
            rules
                .iter()
                .map(|r| (r.rule_id, r.released))
                .collect::<Vec<_>>(),
            [(1, 3), (2, 0)]
        );
    }

    #[test]
    fn migration_runs_come_as_events() {
        let act = Activity::default();
        let totals = RunTotals {
            released: 2,
            failed: 1,
            ..Default::default()
        };
        act.record(&Event::MigrationRun {
            trigger: "tierctl",
            outcome: Ok(totals),
        });
        let last = act.report(None, now_unix()).last_migration.unwrap();
        assert_eq!(
            (last.trigger.as_str(), last.released, last.failed),
            ("tierctl", 2, 1)
        );
    }

    #[test]
    fn rule_runs_survive_a_save_and_restore() {
        let act = Activity::default();
        act.record_rule_runs(&[run(7, 1)]);
        let saved = act.rule_runs_json();
        let fresh = Activity::default();
        fresh.restore_rule_runs(&saved);
        assert_eq!(
            fresh.report(None, now_unix()).rules,
            act.report(None, now_unix()).rules
        );
        fresh.restore_rule_runs("not json");
        assert_eq!(fresh.report(None, now_unix()).rules.len(), 1);
    }

    #[test]
    fn the_layer_records_error_events_only() {
        let subscriber = tracing_subscriber::registry().with(ErrorCapture);
        let before = activity().report(None, now_unix()).errors_24h;
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(path = "a", "not an error");
            tracing::error!(path = "docs/x.pdf", error = %"disk on fire", "recall failed");
        });
        let r = activity().report(None, now_unix());
        assert_eq!(r.errors_24h, before + 1);
        let last = r.recent_errors.last().unwrap();
        assert_eq!(
            last.message,
            "recall failed path=docs/x.pdf error=disk on fire"
        );
    }
}
