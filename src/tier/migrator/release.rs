//! Freeing the local blocks of a premigrated file: it becomes a stub.
//!
//! Only the marker write and the punch run under the release gate (see
//! [`Gate`](crate::tier::gate::Gate)); the synced `releasing` commit comes
//! before it, and the restored times, the last fsync and the `cold` commit
//! after it, under the file's lock (which keeps recalls of the new stub
//! waiting until the release has finished).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::catalog::FileState;
use crate::catalog::tiering::{self, TierFile};
use crate::sys;
use crate::tier::core::{Core, FileGuard};
use crate::tier::error::io_err;
use crate::tier::gate::Gate;
use crate::tier::stub::{self, StubMarker};
use crate::tier::summary::SkipReason;
use crate::tier::{TierError, failpoint, hash};

/// Frees the local blocks of the premigrated file `f` (content `hash`).
/// Returns why it was not released, or `None` when it was.
pub(super) async fn release(
    core: &Core,
    f: &TierFile,
    hash: &blake3::Hash,
) -> Result<Option<SkipReason>, TierError> {
    let rel = f.path.clone();
    // Renamed or deleted since it was uploaded: its copy stays (premigrated
    // under its new name, or unreferenced for gc), nothing to free here.
    let file = match core.open_rel(&rel, libc::O_RDWR) {
        Ok(file) => file,
        Err(TierError::NotRegular { .. }) => return Ok(Some(SkipReason::NotRegular)),
        Err(e) if e.is_missing() => return Ok(Some(SkipReason::Vanished)),
        Err(e) => return Err(e),
    };
    // The file's lock, from before the marker is written to after `cold` is
    // committed: a recall of the new stub (which takes it too) must find
    // the row `cold`, never still `releasing` (it would bring the data back
    // and the release would then mark the row cold over a local file).
    let id = crate::tier::core::file_id(&file).map_err(io_err(&rel, "stat"))?;
    let lock = core.locks.lock(id).await;
    let (hash, size) = (*hash, f.size);
    let checked = blocking(&rel, move |rel| check_content(file, &hash, size, &rel)).await?;
    let (file, before) = match checked {
        Content::Same(file, before) => (file, before),
        Content::Stub => return Ok(Some(SkipReason::AlreadyStub)),
        Content::Changed => {
            let id = f.id;
            core.catalog
                .exec_grouped_async("unlink changed file", move |c| tiering::mark_hot(c, id))
                .await?;
            return Ok(Some(SkipReason::Changed));
        }
    };
    if core.gate.open_count(before.st_ino) > 0 {
        // Checked again under the gate; this only spares two commits.
        return Ok(Some(SkipReason::Open));
    }
    let id = f.id;
    let started = core
        .catalog
        .exec_durable_async("mark releasing", move |c| {
            tiering::transition(c, id, FileState::Premigrated, FileState::Releasing, None)
        })
        .await?;
    if !started {
        return Ok(Some(SkipReason::StateChanged));
    }
    let gate = core.gate.clone();
    let cut = blocking(&rel, move |rel| {
        cut(&gate, file, &before, &hash, size, &rel)
    })
    .await?;
    let (file, st) = match cut {
        Ok(done) => done,
        Err(why) => {
            undo_releasing(core, f).await?;
            return Ok(Some(why));
        }
    };
    finish(core, &rel, f.id, file, st, lock).await?;
    tracing::debug!(path = %rel.display(), bytes = size, "released");
    Ok(None)
}

/// What the re-hash before a release found.
enum Content {
    /// The uploaded content, as the file (open) showed at `stat`.
    Same(File, libc::stat),
    /// A stub already (released under another name, a hard link).
    Stub,
    /// Other content.
    Changed,
}

/// Whether `file` still holds exactly the content the cloud holds.
fn check_content(
    file: File,
    hash: &blake3::Hash,
    size: u64,
    rel: &Path,
) -> Result<Content, TierError> {
    if stub::is_stub(file.as_fd()) {
        return Ok(Content::Stub);
    }
    let before = sys::stat_fd(file.as_fd()).map_err(io_err(rel, "stat"))?;
    let (now_hash, n) = hash::hash_file(&file).map_err(io_err(rel, "hash"))?;
    Ok(if now_hash == *hash && n == size {
        Content::Same(file, before)
    } else {
        Content::Changed
    })
}

/// The release's critical section, under the gate: with no handle open
/// through the mount and opens waiting, and under the times lock, checks
/// that the file is unchanged since `before` (its ctime and size), writes
/// the stub marker and syncs it; then frees every block. Returns the file
/// and its `stat` as the marker recorded it, or why it stopped (nothing
/// was changed then).
fn cut(
    gate: &Gate,
    file: File,
    before: &libc::stat,
    hash: &blake3::Hash,
    size: u64,
    rel: &Path,
) -> Result<Result<(File, libc::stat), SkipReason>, TierError> {
    let Some(_guard) = gate.try_begin_release(before.st_ino) else {
        return Ok(Err(SkipReason::Open));
    };
    let st = {
        // The stub shows the file's times as they are now, whatever freeing
        // its blocks (or a later recall) does to the inode. Under the times
        // lock: a user's touch or chmod lands before (and is in the marker)
        // or after (and rewrites it), never in between.
        let _times = gate.times(before.st_ino);
        let st = sys::stat_fd(file.as_fd()).map_err(io_err(rel, "stat"))?;
        if (st.st_ctime, st.st_ctime_nsec, st.st_size)
            != (before.st_ctime, before.st_ctime_nsec, before.st_size)
        {
            return Ok(Err(SkipReason::Changed));
        }
        let marker = StubMarker::new(hash, size).with_times(stub::StubTimes {
            mtime_ns: stub::mtime_ns(&st),
            ctime_ns: stub::shown_ctime_ns(file.as_fd(), &st),
        });
        // A kept ctime is now in the marker; without it the marker fits
        // inside the inode (both would spill into an xattr block).
        stub::drop_kept_ctime(&file).map_err(io_err(rel, "drop kept change time"))?;
        stub::write_marker(&file, &marker).map_err(io_err(rel, "write stub marker"))?;
        st
    };
    // The marker is durable before any block is freed.
    file.sync_all().map_err(io_err(rel, "fsync"))?;
    failpoint::pause("marked");
    stub::free_blocks_keeping_size(&file, size).map_err(io_err(rel, "free blocks"))?;
    failpoint::pause("freed");
    Ok(Ok((file, st)))
}

/// After the gate: restores the times the stub shows and syncs, then
/// commits row `row`'s `cold`, all under the file's lock (`lock`, taken
/// before the gate), then tells the kernel.
async fn finish(
    core: &Core,
    rel: &Path,
    row: i64,
    file: File,
    st: libc::stat,
    lock: FileGuard<'_>,
) -> Result<(), TierError> {
    let gate = core.gate.clone();
    let file = blocking(rel, move |rel| {
        {
            let _times = gate.times(st.st_ino);
            let marker =
                stub::read_marker(file.as_fd()).map_err(io_err(&rel, "read stub marker"))?;
            stub::restore_times_with(&file, &st, marker.as_ref())
                .map_err(io_err(&rel, "restore times"))?;
        }
        file.sync_all().map_err(io_err(&rel, "fsync"))?;
        Ok(file)
    })
    .await?;
    let after = Core::rewritten(rel, &file)?;
    failpoint::pause("punched");
    core.catalog
        .exec_grouped_async("mark cold", move |c| {
            tiering::transition_rewritten(c, row, FileState::Releasing, FileState::Cold, after)
        })
        .await?;
    drop(lock);
    // The kernel is told last, with the file's lock released: its
    // invalidation may wait for a page that a write through the mount holds
    // while that write waits for a recall, which needs the lock.
    core.invalidate(st.st_ino).await;
    Ok(())
}

/// Takes back a `releasing` commit whose release stopped before anything
/// was changed: `premigrated` again if the catalog saw no content change
/// meanwhile, else `hot` (unlinked from the cloud copy, uploaded again).
async fn undo_releasing(core: &Core, f: &TierFile) -> Result<(), TierError> {
    let (id, generation) = (f.id, f.generation);
    core.catalog
        .exec_grouped_async("undo releasing", move |c| {
            let from = FileState::Releasing;
            if !tiering::transition(c, id, from, FileState::Premigrated, Some(generation))?
                && tiering::transition(c, id, from, FileState::Hot, None)?
            {
                tiering::mark_hot(c, id)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// Runs `work` (given `rel`) on a blocking thread.
async fn blocking<T: Send + 'static>(
    rel: &Path,
    work: impl FnOnce(PathBuf) -> Result<T, TierError> + Send + 'static,
) -> Result<T, TierError> {
    let path = rel.to_path_buf();
    tokio::task::spawn_blocking(move || work(path))
        .await
        .map_err(|e| io_err(rel, "run on a blocking thread")(std::io::Error::other(e)))?
}
