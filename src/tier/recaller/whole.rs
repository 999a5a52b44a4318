//! A full recall of one stub, under the file's lock: mark it `recalling`,
//! fill it (chunk by chunk, or one verified stream per copy), make the data
//! durable, restore the times it shows, remove the marker.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::Recaller;
use crate::catalog::tiering::{self, ObjectRow, TierFile};
use crate::catalog::{FileState, path_key};
use crate::events::LedgerEntry;
use crate::remote::{Remote, RemoteError};
use crate::sys;
use crate::tier::core::Core;
use crate::tier::core::FileId;
use crate::tier::error::io_err;
use crate::tier::stub::{self, StubMarker};
use crate::tier::stub_fill::StubFill;
use crate::tier::{TierError, failpoint, watchdog};

/// How the attempts to fill the file went.
#[derive(Default)]
struct Attempts {
    done: bool,
    problems: Vec<String>,
    transient: bool,
    /// errno of a local write failure (another copy cannot help).
    local_failure: Option<i32>,
}

impl Recaller {
    /// Recalls the file open as `file` (found at `rel`; the path is only
    /// used to name it and find its catalog row).
    pub(super) async fn recall_locked(
        &self,
        core: &Core,
        rel: &Path,
        file: File,
        id: FileId,
    ) -> Result<u64, TierError> {
        let Some(marker) =
            stub::read_marker(file.as_fd()).map_err(io_err(rel, "read stub marker"))?
        else {
            return Ok(0);
        };
        let hash = marker.hash().map_err(io_err(rel, "read stub marker"))?;
        let st = sys::stat_fd(file.as_fd()).map_err(io_err(rel, "stat"))?;
        let row = catalogued_row(core, rel, &st, &hash).await?;
        if let Some(row) = &row {
            transition(core, row.id, FileState::Cold, FileState::Recalling).await?;
        }
        let bytes = *hash.as_bytes();
        let objects = core
            .catalog
            .exec_grouped_async("find objects", move |c| tiering::objects_for(c, &bytes))
            .await?;
        let fill_started = Instant::now();
        // Chunk by chunk when the chunk hashes are known (shared with the
        // file's readers), else one verified stream per copy.
        let fill = self
            .fill_for(core, rel, &file, id, &marker)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(path = %rel.display(), error = %e, "chunked recall unavailable; downloading whole");
                None
            });
        let mut tries = Attempts {
            transient: !objects.is_empty(),
            ..Default::default()
        };
        match &fill {
            Some(fill) => fill_chunks(core, rel, fill, &mut tries).await,
            None => download(core, rel, &file, &marker, &hash, &objects, &mut tries).await,
        }
        if !tries.done {
            return Err(fail(
                core,
                rel,
                &file,
                &st,
                &marker,
                row.as_ref(),
                &objects,
                tries,
            )
            .await?);
        }
        let sync_started = Instant::now();
        let after = finish(core, rel, &file, &st, marker.clone()).await?;
        tracing::debug!(path = %rel.display(), bytes = marker.size,
            fill_secs = (sync_started - fill_started).as_secs_f64(),
            sync_secs = sync_started.elapsed().as_secs_f64(), "recall phases");
        let (ino, content) = (st.st_ino, *hash.as_bytes());
        match &row {
            Some(row) => {
                let id = row.id;
                core.catalog
                    .exec_grouped_async("recall state", move |c| {
                        let (from, to) = (FileState::Recalling, FileState::Premigrated);
                        tiering::transition_rewritten(c, id, from, to, after)?;
                        tiering::mark_inode_recalled(c, ino, &content)
                    })
                    .await?;
            }
            // Recalled without a row (a stub the catalog lost): catalogue it.
            None => {
                core.catalog
                    .exec_grouped_async("recall state", move |c| {
                        tiering::mark_inode_recalled(c, ino, &content)
                    })
                    .await?;
                core.catalog.send(crate::catalog::FileEvent::Look {
                    path: rel.to_path_buf(),
                });
            }
        }
        self.fills.remove(id);
        if let Some(fill) = &fill {
            fill.finished();
        }
        if tries.problems.is_empty() {
            tracing::info!(path = %rel.display(), bytes = marker.size, "recalled");
        } else {
            tracing::warn!(path = %rel.display(), bytes = marker.size, failed_copies = %tries.problems.join("; "), "recalled from another copy after a copy failed");
        }
        Ok(marker.size)
    }
}

/// The catalog row at `rel`, refusing a stub that is not the catalogued
/// file (`st`, marker content `hash`).
async fn catalogued_row(
    core: &Core,
    rel: &Path,
    st: &libc::stat,
    hash: &blake3::Hash,
) -> Result<Option<TierFile>, TierError> {
    let key = path_key(rel).unwrap_or_default();
    let (ino, content) = (st.st_ino, *hash.as_bytes());
    // A name the catalog does not know yet (a link just made, or one a
    // rename between links left) is the file of its other names' row.
    let row = core
        .catalog
        .exec_grouped_async("find file", move |c| {
            match tiering::file_by_path(c, &key)? {
                Some(row) => Ok(Some(row)),
                None => tiering::file_by_ino(c, ino, &content),
            }
        })
        .await?;
    if let Some(row) = &row
        && row.ino != st.st_ino
        && row.blake3.as_deref() != Some(hash.to_hex().as_str())
    {
        // Another inode, whose marker names other content than the row,
        // was put at the catalogued path: its marker is not to be
        // trusted. (A row whose inode number lags behind a replacement
        // made through the mount but names the same content is fine:
        // the file gets the content the catalog has for this path.)
        tracing::warn!(path = %rel.display(), catalogued = row.ino, found = st.st_ino,
            "recall refused: the file is not the catalogued one");
        return Err(TierError::NotCatalogued {
            path: rel.to_path_buf(),
            catalogued: row.ino,
            found: st.st_ino,
        });
    }
    Ok(row)
}

/// Moves row `id` from `from` to `to` (if it is in `from`).
async fn transition(core: &Core, id: i64, from: FileState, to: FileState) -> Result<(), TierError> {
    core.catalog
        .exec_grouped_async("recall state", move |c| {
            tiering::transition(c, id, from, to, None)
        })
        .await?;
    Ok(())
}

/// Fills the stub chunk by chunk through `fill`.
async fn fill_chunks(
    core: &Core,
    rel: &Path,
    fill: &std::sync::Arc<StubFill>,
    tries: &mut Attempts,
) {
    let concurrency = core
        .remotes
        .values()
        .map(Remote::max_concurrency)
        .max()
        .unwrap_or(1);
    match fill.fill_all(core, concurrency).await {
        Ok(()) => tries.done = true,
        Err(e) => {
            fill.abandon().await;
            match &e {
                TierError::Io { .. } => {
                    tracing::error!(path = %rel.display(), error = %e, "recall cannot write the local copy");
                    tries.local_failure = Some(e.errno());
                }
                _ => tries.transient = e.is_transient(),
            }
            tries.problems.push(e.to_string());
        }
    }
}

/// Downloads the whole content from the first copy that delivers it intact.
async fn download(
    core: &Core,
    rel: &Path,
    file: &File,
    marker: &StubMarker,
    hash: &blake3::Hash,
    objects: &[ObjectRow],
    tries: &mut Attempts,
) {
    let key = path_key(rel).unwrap_or_default();
    for object in objects {
        let Some(remote) = core.remotes.get(&object.remote) else {
            tries
                .problems
                .push(format!("remote `{}` is not configured", object.remote));
            tries.transient = false;
            continue;
        };
        let written = AtomicU64::new(0);
        let limit = remote.recall_timeout();
        let report = |n: u64| {
            written.store(n, Ordering::Relaxed);
            failpoint::pause("receiving");
        };
        let download = remote.download_to(&object.key, marker.size, hash, file, &report);
        let outcome = watchdog::while_progressing(limit, &written, download)
            .await
            .unwrap_or_else(|| Err(watchdog::timed_out(remote, &object.key, limit)));
        // The GET is billed; after a failure how many bytes came is not known.
        let bytes = if outcome.is_ok() { marker.size } else { 0 };
        if !matches!(outcome, Err(RemoteError::LocalIo { .. })) {
            core.bill(LedgerEntry {
                remote: object.remote.clone(),
                op: "get",
                requests: 1,
                bytes,
                storage_class: object.storage_class.clone(),
                path: Some(key.clone()),
                ..Default::default()
            });
        }
        match outcome {
            Err(e @ RemoteError::LocalIo { .. }) => {
                // Disk full or a local I/O error: another copy cannot help.
                tracing::error!(path = %rel.display(), remote = %object.remote, error = %e, "recall cannot write the local copy");
                tries.local_failure = Some(e.errno());
                tries.problems.push(e.to_string());
                return;
            }
            Ok(()) => {
                tries.done = true;
                return;
            }
            Err(e) => {
                tracing::debug!(path = %rel.display(), remote = %object.remote, error = %e, "recall from this copy failed");
                tries.transient &= e.is_transient();
                tries.problems.push(e.to_string());
            }
        }
    }
}

/// Gives back whatever a failed recall wrote (the stub stays a stub), puts
/// the row back to `cold` and returns the error to report.
#[allow(clippy::too_many_arguments)]
async fn fail(
    core: &Core,
    rel: &Path,
    file: &File,
    st: &libc::stat,
    marker: &StubMarker,
    row: Option<&TierFile>,
    objects: &[ObjectRow],
    mut tries: Attempts,
) -> Result<TierError, TierError> {
    let _ = stub::give_back_blocks(file, marker.size);
    let _ = stub::restore_times_with(file, st, Some(marker));
    if let Some(row) = row {
        transition(core, row.id, FileState::Recalling, FileState::Cold).await?;
    }
    if objects.is_empty() {
        tries
            .problems
            .push("the catalog knows no object with this content".into());
    }
    let err = match tries.local_failure {
        Some(errno) => TierError::Io {
            path: rel.to_path_buf(),
            op: "write the recalled data (the file stays a stub)",
            source: std::io::Error::from_raw_os_error(errno),
        },
        None => TierError::NoCopy {
            path: rel.to_path_buf(),
            detail: tries.problems.join("; "),
            transient: tries.transient,
        },
    };
    tracing::error!(error = %err, "recall failed");
    Ok(err)
}

/// Makes the recalled data durable, restores the times the file shows and
/// removes the marker (the file is local again), then syncs.
async fn finish(
    core: &Core,
    rel: &Path,
    file: &File,
    st: &libc::stat,
    marker: StubMarker,
) -> Result<tiering::Rewritten, TierError> {
    let (file, st, gate, path) = (
        file.try_clone().map_err(io_err(rel, "reopen"))?,
        *st,
        core.gate.clone(),
        rel.to_path_buf(),
    );
    let done = tokio::task::spawn_blocking(move || {
        unmark(&gate, &path, &file, &st, marker)?;
        Ok::<_, TierError>(file)
    })
    .await
    .map_err(|e| io_err(rel, "run on a blocking thread")(std::io::Error::other(e)))?;
    let file = done?;
    Core::rewritten(rel, &file)
}

/// The blocking part of [`finish`].
fn unmark(
    gate: &crate::tier::gate::Gate,
    rel: &Path,
    file: &File,
    st: &libc::stat,
    marker: StubMarker,
) -> Result<(), TierError> {
    // The size and times are the stub's already: the data (and the
    // blocks holding it) must be durable before the marker goes.
    file.sync_data().map_err(io_err(rel, "fsync"))?;
    failpoint::pause("downloaded");
    // The file shows the same times before, during and after the recall:
    // its modification time from the marker (what the stub showed; chunk
    // writes moved the inode's), its change time kept in an xattr set
    // as the engine's last change to the file.
    // Under the times lock, with the marker as it is now: a user's
    // touch or chmod during the recall rewrote it, and wins.
    {
        let _times = gate.times(st.st_ino);
        let marker = stub::read_marker(file.as_fd())
            .map_err(io_err(rel, "read stub marker"))?
            .unwrap_or(marker);
        stub::restore_times_with(file, st, Some(&marker)).map_err(io_err(rel, "restore times"))?;
        let shown_ctime = marker
            .times
            .map_or_else(|| stub::ctime_ns(st), |t| t.ctime_ns);
        // At every instant the marker or the kept ctime is there (a `stat`
        // in between would show the recall's ctime, and tar would say the
        // file changed as it read it). Beside the marker the kept ctime
        // spills into an xattr block; set again once the marker is gone, it
        // moves back inside the inode and the block is freed.
        let kept =
            stub::keep_ctime(file, shown_ctime, None).map_err(io_err(rel, "keep change time"))?;
        stub::remove_marker(file).map_err(io_err(rel, "remove stub marker"))?;
        stub::keep_ctime(file, shown_ctime, Some(kept)).map_err(io_err(rel, "keep change time"))?;
    }
    file.sync_all().map_err(io_err(rel, "fsync"))?;
    Ok(())
}
