//! What the engine's jobs are asked and what they answer (the control
//! protocol carries these as JSON), and the running job's progress.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};

use crate::events::RunTotals;

/// What `tierctl migrate` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateRequest {
    /// Only files at or below these paths (relative to the mount root); empty = all.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Only report what would move.
    #[serde(default)]
    pub dry_run: bool,
}

/// Why a planned file was not migrated this run. None of these is a
/// failure: the next run looks at the file again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// Gone from the hot dir (deleted or renamed) before its turn.
    Vanished,
    /// No longer a regular file.
    NotRegular,
    /// Changed, and the rules no longer select it (or it changed again
    /// while it was being migrated).
    Changed,
    /// Already a stub (released under another name).
    AlreadyStub,
    /// Open through the mount.
    Open,
    /// Its catalog state was changed by someone else meanwhile.
    StateChanged,
    /// The daemon is shutting down; it resumes at the next start.
    Stopping,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Vanished => "vanished before its turn",
            SkipReason::NotRegular => "not a regular file",
            SkipReason::Changed => "changed since catalogued",
            SkipReason::AlreadyStub => "already a stub",
            SkipReason::Open => "open through the mount",
            SkipReason::StateChanged => "catalog state changed",
            SkipReason::Stopping => "daemon shutting down; resumes at the next start",
        })
    }
}

/// A file not migrated this run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// File, relative to the mount root.
    #[serde(with = "crate::escape::path_bytes")]
    pub path: PathBuf,
    /// Why.
    pub reason: SkipReason,
}

/// The result of a migration run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MigrateSummary {
    /// Files whose rule said "migrate".
    pub candidates: u64,
    /// Bytes in those files.
    pub candidate_bytes: u64,
    /// Files released (now cold).
    pub released: u64,
    /// Bytes freed locally.
    pub released_bytes: u64,
    /// Bytes sent to remotes (dedupe and premigrated files send nothing).
    pub uploaded_bytes: u64,
    /// Files skipped because they were open, changed or gone (tried again
    /// next run); not failures.
    pub skipped: u64,
    /// The skipped files, with the reason.
    #[serde(default)]
    pub skips: Vec<Skipped>,
    /// Files that failed, with the reason.
    pub failures: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

impl MigrateSummary {
    /// The totals the recorders keep.
    pub fn totals(&self) -> RunTotals {
        RunTotals {
            released: self.released,
            released_bytes: self.released_bytes,
            skipped: self.skipped,
            failed: self.failures.len() as u64,
            seconds: self.seconds,
        }
    }
}

/// The result of a recall run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RecallSummary {
    /// Files brought back.
    pub recalled: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Files that failed, with the reason.
    pub failures: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// The result of a garbage collection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GcSummary {
    /// Objects no file references.
    pub unreferenced: u64,
    /// Of those, deleted now (grace period over).
    pub deleted: u64,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// Failures, with the reason.
    pub failures: Vec<String>,
}

/// Live progress of the running job, for `tierctl` progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes handled so far.
    pub bytes_done: AtomicU64,
    /// Bytes the job will handle.
    pub bytes_total: AtomicU64,
    /// Files finished.
    pub files_done: AtomicU64,
    /// Files in the job.
    pub files_total: AtomicU64,
}
