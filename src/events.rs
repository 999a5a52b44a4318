//! What the tiering engine reports as it works, as plain data, and the one
//! interface through which the recorders get it: the cost ledger (billable
//! requests), `activity` (runs for `tierctl status`) and `metrics`.
//!
//! The engine emits [`Event`]s to its [`Events`]; each [`Recorder`] takes
//! what it needs. This module imports nothing from the crate, so the
//! recorders depend on it and never on the engine.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One billable request (or a batch of them) for the cost report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Remote name.
    pub remote: String,
    /// `put`, `get`, `delete`, `head` or `list`.
    pub op: &'static str,
    /// Number of requests.
    pub requests: u64,
    /// Bytes transferred (uploaded for put, downloaded for get).
    pub bytes: u64,
    /// Storage class involved.
    pub storage_class: Option<String>,
    /// Age of a deleted object (for early-deletion charges).
    pub object_age_ns: Option<i64>,
    /// The file concerned, if any.
    pub path: Option<Vec<u8>>,
}

/// The totals of a finished migration run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTotals {
    /// Files released.
    pub released: u64,
    /// Bytes released.
    pub released_bytes: u64,
    /// Files skipped (changed, vanished, open, or the daemon was stopping).
    pub skipped: u64,
    /// Files that failed.
    pub failed: u64,
    /// Wall time.
    pub seconds: f64,
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

/// Something the engine did.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Requests a remote bills for.
    Billed(LedgerEntry),
    /// A recall that downloaded something (`ok`) or failed, and its time.
    Recalled {
        /// Whether it succeeded.
        ok: bool,
        /// How long it took.
        took: Duration,
    },
    /// A migration run (not a dry run) ended; `Err` when the whole run
    /// failed before migrating anything.
    MigrationRun {
        /// `schedule` or `tierctl`.
        trigger: &'static str,
        /// Its totals, or why it failed.
        outcome: Result<RunTotals, String>,
    },
    /// What each rule evaluated by a finished (not dry) run did.
    RuleRuns(Vec<RuleRun>),
}

/// Takes the events it cares about. Called on the emitting thread: a
/// recorder must not block (queue slow work instead).
pub trait Recorder: Send + Sync {
    /// Records `event` (or ignores it).
    fn record(&self, event: &Event);
}

impl<R: Recorder + ?Sized> Recorder for &'static R {
    fn record(&self, event: &Event) {
        (**self).record(event)
    }
}

/// The recorders events go to. Cloning is cheap.
#[derive(Clone, Default)]
pub struct Events {
    recorders: Arc<[Arc<dyn Recorder>]>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("recorders", &self.recorders.len())
            .finish()
    }
}

impl Events {
    /// Events going to each of `recorders`, in order.
    pub fn new(recorders: Vec<Arc<dyn Recorder>>) -> Events {
        Events {
            recorders: recorders.into(),
        }
    }

    /// Hands `event` to every recorder.
    pub fn emit(&self, event: Event) {
        for r in self.recorders.iter() {
            r.record(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Keep(Mutex<Vec<Event>>);

    impl Recorder for Keep {
        fn record(&self, event: &Event) {
            self.0.lock().push(event.clone());
        }
    }

    #[test]
    fn every_recorder_gets_every_event() {
        let (a, b) = (Arc::new(Keep::default()), Arc::new(Keep::default()));
        let events = Events::new(vec![a.clone(), b.clone()]);
        let ev = Event::Recalled {
            ok: true,
            took: Duration::from_millis(5),
        };
        events.emit(ev.clone());
        for r in [a, b] {
            assert_eq!(r.0.lock().as_slice(), std::slice::from_ref(&ev));
        }
    }
}
