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

use crate::control::JobProgress;
use crate::tier::MigrateSummary;

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
    pub fn new(trigger: &str, result: &Result<MigrateSummary, String>) -> RunRecord {
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
                r.failed = s.failures.len() as u64;
                r.seconds = s.seconds;
            }
            Err(e) => r.error = Some(e.clone()),
        }
        r
    }
}

/// What one rule did in the last migration run that evaluated it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RuleRun {
    /// The rule's id (`tierctl rule list`).
    pub rule_id: i64,
    /// When that run ended, in seconds since the Unix epoch.
    pub finished_unix: i64,
    /// Files the rule selected.
    pub selected: u64,
    /// Of those, files released.
    pub released: u64,
    /// Bytes released.
    pub released_bytes: u64,
    /// Files that failed.
    pub failed: u64,
}

/// Per-rule counts gathered during one migration run.
#[derive(Debug)]
pub struct RuleTally<'a> {
    rule_of: &'a std::collections::HashMap<std::path::PathBuf, i64>,
    runs: BTreeMap<i64, RuleRun>,
}

impl<'a> RuleTally<'a> {
    /// Starts a tally for the rules `rule_ids`, where `rule_of` says which
    /// rule selected each planned file.
    pub fn new(
        rule_ids: &[i64],
        rule_of: &'a std::collections::HashMap<std::path::PathBuf, i64>,
    ) -> Self {
        let mut runs: BTreeMap<i64, RuleRun> = rule_ids
            .iter()
            .map(|&id| {
                (
                    id,
                    RuleRun {
                        rule_id: id,
                        ..Default::default()
                    },
                )
            })
            .collect();
        for id in rule_of.values() {
            if let Some(r) = runs.get_mut(id) {
                r.selected += 1;
            }
        }
        RuleTally { rule_of, runs }
    }

    fn run_of(&mut self, path: &std::path::Path) -> Option<&mut RuleRun> {
        let id = self.rule_of.get(path)?;
        self.runs.get_mut(id)
    }

    /// Counts a released file.
    pub fn released(&mut self, path: &std::path::Path, bytes: u64) {
        if let Some(r) = self.run_of(path) {
            r.released += 1;
            r.released_bytes += bytes;
        }
    }

    /// Counts a failed file.
    pub fn failed(&mut self, path: &std::path::Path) {
        if let Some(r) = self.run_of(path) {
            r.failed += 1;
        }
    }
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

    /// Records a finished migration run (and counts it in the metrics).
    pub fn record_migration(&self, run: RunRecord) {
        crate::metrics::metrics().record_migration(run.released, run.released_bytes, run.failed);
        *self.last_migration.lock() = Some(run);
    }

    /// Records what each rule did in a finished (not dry) migration run.
    pub fn record_rule_runs(&self, tally: RuleTally<'_>) {
        let now = now_unix();
        let mut rules = self.rules.lock();
        for (id, mut run) in tally.runs {
            run.finished_unix = now;
            rules.insert(id, run);
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

    #[test]
    fn rule_runs_count_per_rule() {
        let rule_of: std::collections::HashMap<std::path::PathBuf, i64> =
            [("a".into(), 1), ("b".into(), 1), ("c".into(), 2)]
                .into_iter()
                .collect();
        let mut tally = RuleTally::new(&[1, 2, 3], &rule_of);
        tally.released(std::path::Path::new("a"), 10);
        tally.failed(std::path::Path::new("c"));
        let act = Activity::default();
        act.record_rule_runs(tally);
        let rules = act.report(None, now_unix()).rules;
        assert_eq!(rules.len(), 3);
        assert_eq!(
            (
                rules[0].selected,
                rules[0].released,
                rules[0].released_bytes
            ),
            (2, 1, 10)
        );
        assert_eq!((rules[1].selected, rules[1].failed), (1, 1));
        assert_eq!(rules[2].selected, 0);
        assert!(rules.iter().all(|r| r.finished_unix > 0));
    }

    #[test]
    fn rule_runs_survive_a_save_and_restore() {
        let act = Activity::default();
        let rule_of = std::collections::HashMap::from([(std::path::PathBuf::from("a"), 7)]);
        let mut tally = RuleTally::new(&[7], &rule_of);
        tally.released(std::path::Path::new("a"), 5);
        act.record_rule_runs(tally);
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
