//! The migrator: for each planned file, upload and verify its copies
//! (identical content uploads once), then release its local blocks.
//!
//! Safety ordering for a release (also in `docs/safety.md`):
//! 1. recheck the file against its row and hash it (blake3); mark it `uploading`;
//! 2. upload, hashing the bytes as they are sent (a change aborts);
//! 3. verify the stored object by reading it back (size and blake3);
//! 4. commit `premigrated` + hash with a synced commit (guarded by the content
//!    generation, so a file modified meanwhile stays `hot`);
//! 5. re-hash the local file and commit `releasing` (synced);
//! 6. under the release gate (no handle open through the mount, opens
//!    wait): write and sync the stub marker, punch out every block;
//! 7. restore the times, sync; commit `cold`.
//!
//! A crash between any two steps leaves a state that `recover` resolves at the
//! next start without losing data (see [`crate::catalog::tiering::recover_transient_states`]).

mod one;
mod release;
mod upload;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::TierError;
use super::core::Core;
use super::planner::{Plan, Planned};
use super::summary::{MigrateSummary, SkipReason, Skipped};
use super::tally::RuleTally;
use crate::events::RuleRun;
use crate::remote::RemoteError;
use crate::rules::RuleSet;

/// How one file's migration ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Released: `bytes` freed (the file's size when it was released),
    /// `uploaded` bytes sent.
    Released { bytes: u64, uploaded: u64 },
    /// Not migrated this run.
    Skipped(SkipReason),
}

/// Runs migrations; remembers which content is being uploaded.
#[derive(Debug, Default)]
pub(super) struct Migrator {
    /// One lock per content being uploaded: identical files upload once.
    uploads: tokio::sync::Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

/// What a run gathered besides the summary.
pub(super) struct RunResult {
    /// Files that failed for a reason that may pass by itself.
    pub(super) transient: u64,
    /// What each rule did.
    pub(super) rule_runs: Vec<RuleRun>,
}

impl Migrator {
    /// Migrates every file of `plan`, adding what happened to `summary`.
    pub(super) async fn run(
        &self,
        core: &Core,
        plan: Plan,
        summary: &mut MigrateSummary,
    ) -> RunResult {
        let mut tally = RuleTally::new(&plan.rule_ids, plan.rule_of());
        let rules = &plan.rules;
        // A rule naming an unconfigured remote fails its files, not the run.
        let (files, unroutable): (Vec<_>, Vec<_>) = plan.files.into_iter().partition(|p| {
            p.targets
                .iter()
                .all(|t| core.remotes.contains_key(&t.remote))
        });
        for p in unroutable {
            tally.failed(&p.file.path);
            summary.failures.push(unroutable_failure(core, &p));
        }
        // Once a remote proved unreachable in this run, the remaining files
        // for it are not tried (each would wait a whole request_timeout):
        // they stay local, and the schedule retries them with back-off.
        let unreachable = &parking_lot::Mutex::new(BTreeSet::new());
        let mut results = futures::stream::iter(files.into_iter().map(|p| async move {
            let path = p.file.path.clone();
            let result = self.one_guarded(core, rules, p, unreachable).await;
            core.progress.files_done.fetch_add(1, Ordering::Relaxed);
            (path, result)
        }))
        .buffer_unordered(concurrency(core));
        let mut transient = 0;
        while let Some((path, result)) = results.next().await {
            transient += count(summary, &mut tally, path, result);
        }
        RunResult {
            transient,
            rule_runs: tally.finish(crate::activity::now_unix()),
        }
    }

    /// Migrates `p` unless one of its remotes already proved unreachable in
    /// this run; notes a remote found unreachable.
    async fn one_guarded(
        &self,
        core: &Core,
        rules: &RuleSet,
        p: Planned,
        unreachable: &parking_lot::Mutex<BTreeSet<String>>,
    ) -> Result<Outcome, TierError> {
        let down = {
            let set = unreachable.lock();
            p.targets
                .iter()
                .find(|t| set.contains(&t.remote))
                .map(|t| t.remote.clone())
        };
        let result = match down {
            Some(name) => Err(TierError::RemoteDown { name }),
            None => self.migrate_one(core, rules, p).await,
        };
        if let Err(TierError::Remote(
            e @ (RemoteError::Unreachable { .. } | RemoteError::Timeout { .. }),
        )) = &result
        {
            unreachable.lock().insert(e.remote().to_string());
        }
        result
    }
}

/// Files in flight: small files are bound by request latency, so many go
/// at once; each remote's upload buffer budget bounds the memory.
fn concurrency(core: &Core) -> usize {
    core.remotes
        .values()
        .map(|r| r.max_files_in_flight())
        .max()
        .unwrap_or(4)
        .max(1)
}

/// The failure of a planned file whose rule names an unconfigured remote.
fn unroutable_failure(core: &Core, p: &Planned) -> String {
    let missing: Vec<&str> = p
        .targets
        .iter()
        .filter(|t| !core.remotes.contains_key(&t.remote))
        .map(|t| t.remote.as_str())
        .collect();
    format!(
        "{}: no remote named `{}` in the config",
        p.file.path.display(),
        missing.join("`, `")
    )
}

/// Adds one file's outcome to the summary and the tally; returns 1 if it
/// failed for a reason that may pass by itself.
fn count(
    summary: &mut MigrateSummary,
    tally: &mut RuleTally,
    path: PathBuf,
    result: Result<Outcome, TierError>,
) -> u64 {
    match result {
        Ok(Outcome::Released { bytes, uploaded }) => {
            tally.released(&path, bytes);
            summary.released += 1;
            summary.released_bytes += bytes;
            summary.uploaded_bytes += uploaded;
            0
        }
        Ok(Outcome::Skipped(reason)) => {
            tracing::info!(path = %path.display(), why = %reason, "not released this run");
            summary.skipped += 1;
            summary.skips.push(Skipped { path, reason });
            0
        }
        Err(e) => {
            tally.failed(&path);
            let transient = e.is_transient();
            if transient {
                tracing::warn!(path = %path.display(), error = %e, "migration failed; the file stays local and is retried later");
            } else {
                tracing::error!(path = %path.display(), error = %e, "migration failed");
            }
            summary.failures.push(format!("{}: {e}", path.display()));
            u64::from(transient)
        }
    }
}
