//! One file's migration: recheck it against its row, upload it (unless a
//! verified copy exists), then release it.

use std::fs::File;
use std::os::fd::AsFd;
use std::time::{Instant, SystemTime};

use super::{Migrator, Outcome};
use crate::catalog::tiering::{self, TierFile};
use crate::catalog::{FileEvent, FileState, path_key};
use crate::rules::{RuleSet, Target};
use crate::sys;
use crate::tier::core::{Core, mtime_ns, parse_hash};
use crate::tier::error::io_err;
use crate::tier::planner::{self, Planned};
use crate::tier::summary::SkipReason;
use crate::tier::{TierError, failpoint, hash, layout, stub};

/// What the recheck found.
enum Recheck {
    /// Migrate the file open as `File`, described by this row, to these targets.
    Use(File, TierFile, Vec<Target>),
    /// Leave it this run.
    Skip(SkipReason),
}

impl Migrator {
    pub(super) async fn migrate_one(
        &self,
        core: &Core,
        rules: &RuleSet,
        p: Planned,
    ) -> Result<Outcome, TierError> {
        if core.stop.is_stopped() {
            return Ok(Outcome::Skipped(SkipReason::Stopping));
        }
        let (file, f, targets) = match recheck(core, rules, p.file, p.targets).await? {
            Recheck::Use(file, f, targets) => (file, f, targets),
            Recheck::Skip(reason) => return Ok(Outcome::Skipped(reason)),
        };
        if stub::is_stub(file.as_fd()) {
            return Ok(Outcome::Skipped(SkipReason::AlreadyStub));
        }
        let (hash, uploaded) = match (f.state, &f.blake3) {
            (FileState::Premigrated, Some(hex)) => {
                drop(file);
                let hash = parse_hash(hex, &f.path)?;
                (hash, self.ensure_copies(core, &f, &hash, &targets).await?)
            }
            _ => match self.upload(core, file, &f, &targets).await? {
                Ok(done) => done,
                Err(reason) => return Ok(Outcome::Skipped(reason)),
            },
        };
        failpoint::pause("premigrated");
        if core.stop.is_stopped() {
            // Verified copy, nothing freed: released at the next run.
            return Ok(Outcome::Skipped(SkipReason::Stopping));
        }
        let pass_buffer = reserve_hash_pass(core, &targets, f.size).await;
        let started = Instant::now();
        let released = super::release::release(core, &f, &hash).await?;
        drop(pass_buffer);
        tracing::debug!(path = %f.path.display(), secs = started.elapsed().as_secs_f64(), "release step done");
        Ok(match released {
            None => Outcome::Released {
                bytes: f.size,
                uploaded,
            },
            Some(why) => Outcome::Skipped(why),
        })
    }

    /// Hashes the hot file `file` (row `f`), marks it `uploading`, sends its
    /// copies and commits `premigrated`. Returns the hash and the bytes
    /// uploaded, or why the file was left alone.
    async fn upload(
        &self,
        core: &Core,
        file: File,
        f: &TierFile,
        targets: &[Target],
    ) -> Result<Result<(blake3::Hash, u64), SkipReason>, TierError> {
        let rel = &f.path;
        let pass_buffer = reserve_hash_pass(core, targets, f.size).await;
        let started = Instant::now();
        let size = f.size;
        let hashed = tokio::task::spawn_blocking(move || {
            let holes = layout::Holes::of_file(&file, size)?;
            hash::hash_file_with_chunks(&file, holes)
        })
        .await
        .map_err(|e| io_err(rel, "hash")(std::io::Error::other(e)))?;
        let (hash, n, chunks, holes) = hashed.map_err(io_err(rel, "hash"))?;
        drop(pass_buffer);
        tracing::debug!(path = %rel.display(), bytes = n, secs = started.elapsed().as_secs_f64(), "hashed");
        if n != f.size {
            return Ok(Err(SkipReason::Changed));
        }
        let key = *hash.as_bytes();
        let (id, generation) = (f.id, f.generation);
        let holes = holes.encode();
        let started = core
            .catalog
            .exec_grouped_async("mark uploading", move |c| {
                tiering::record_chunks(c, &key, hash::CHUNK_SIZE, &chunks, holes.as_deref())?;
                let (from, to) = (FileState::Hot, FileState::Uploading);
                tiering::transition(c, id, from, to, Some(generation))
            })
            .await?;
        if !started {
            return Ok(Err(SkipReason::Changed));
        }
        failpoint::pause("uploading");
        // At shutdown the upload is dropped mid-way: its object row stays
        // unverified and unreferenced (gc removes it), the file goes back
        // to hot and the next run uploads it again.
        let copies = tokio::select! {
            r = self.ensure_copies(core, f, &hash, targets) => Some(r),
            () = core.stop.stopped() => None,
        };
        let uploaded = match copies {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                undo_uploading(core, id).await?;
                // Written to while it was sent: it is in use, not broken;
                // the next run takes it once it is quiet.
                if matches!(
                    e,
                    TierError::Remote(crate::remote::RemoteError::SourceChanged { .. })
                        | TierError::Changed { .. }
                ) {
                    return Ok(Err(SkipReason::Changed));
                }
                // Renamed or deleted between the hash and the upload.
                if e.is_missing() {
                    return Ok(Err(SkipReason::Vanished));
                }
                return Err(e);
            }
            None => {
                undo_uploading(core, id).await?;
                return Ok(Err(SkipReason::Stopping));
            }
        };
        failpoint::pause("uploaded");
        let committed = core
            .catalog
            .exec_durable_async("mark premigrated", move |c| {
                tiering::mark_premigrated(c, id, generation, &key)
            })
            .await?;
        if !committed {
            undo_uploading(core, id).await?;
            return Ok(Err(SkipReason::Changed));
        }
        Ok(Ok((hash, uploaded)))
    }
}

/// Puts file `id` back to `hot` after an upload that did not finish.
async fn undo_uploading(core: &Core, id: i64) -> Result<(), TierError> {
    core.catalog
        .exec_grouped_async("undo uploading", move |c| tiering::mark_hot(c, id))
        .await?;
    Ok(())
}

/// Opens the planned file and compares it with its row. A file gone or no
/// longer regular is skipped; a changed file gets its row updated and the
/// rules decide again on what it is now.
async fn recheck(
    core: &Core,
    rules: &RuleSet,
    f: TierFile,
    targets: Vec<Target>,
) -> Result<Recheck, TierError> {
    let rel = f.path.clone();
    let file = match core.open_rel(&rel, libc::O_RDONLY) {
        Ok(file) => file,
        Err(TierError::NotRegular { .. }) => return Ok(Recheck::Skip(SkipReason::NotRegular)),
        Err(e) if e.is_missing() => return Ok(Recheck::Skip(SkipReason::Vanished)),
        Err(e) => return Err(e),
    };
    let st = sys::stat_fd(file.as_fd()).map_err(io_err(&rel, "stat"))?;
    if matches_row(&st, &f) {
        return Ok(Recheck::Use(file, f, targets));
    }
    // The row lags the file: bring it up to date, read it back (after the
    // update) and decide again.
    core.catalog.send(FileEvent::Look { path: rel.clone() });
    let key = path_key(&rel).unwrap_or_default();
    let row = core
        .catalog
        .exec_grouped_async("re-read changed file", move |c| {
            tiering::file_by_path(c, &key)
        })
        .await?;
    let decided = row
        .filter(|row| matches_row(&st, row))
        .and_then(|row| planner::decide(rules, &row, SystemTime::now()).map(|(t, _)| (row, t)));
    Ok(match decided {
        Some((row, targets)) => {
            tracing::debug!(path = %rel.display(), "changed since planned; the rules still select it");
            Recheck::Use(file, row, targets)
        }
        None => Recheck::Skip(SkipReason::Changed),
    })
}

/// Whether the file (`st`) is what row `f` describes: size, mtime, inode.
fn matches_row(st: &libc::stat, f: &TierFile) -> bool {
    st.st_size as u64 == f.size && mtime_ns(st) == f.mtime_ns && st.st_ino == f.ino
}

/// Reserves the read buffers of one hash pass over a `size`-byte file from
/// the first target's transfer budget, so that the memory of the files in
/// flight stays within that budget however many there are.
pub(super) async fn reserve_hash_pass(
    core: &Core,
    targets: &[Target],
    size: u64,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let remote = targets.first().and_then(|t| core.remotes.get(&t.remote))?;
    remote
        .reserve_upload_buffer(size.clamp(1, hash::PASS_BUFFER))
        .await
}
