//! The recaller: brings cold files back (chunk by chunk when chunk hashes
//! are known, shared with the file's readers; else one verified stream per
//! copy), empties stubs that are truncated, and gives back the blocks a
//! read of a cold file kept.

pub(in crate::tier) mod chunks;
mod whole;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub use chunks::StubSource;
pub(in crate::tier) use chunks::read_chunk;

use super::TierError;
use super::core::Core;
use super::core::FileId;
use super::error::io_err;
use super::stub::{self, StubMarker};
use super::stub_fill::{Fills, StubFill};
use crate::catalog::path_key;
use crate::catalog::tiering;
use crate::events::Event;

/// The fills of the stubs being read or recalled.
#[derive(Debug, Default)]
pub(super) struct Recaller {
    fills: Fills,
}

impl Recaller {
    /// Brings a cold file's content back into its stub and verifies it.
    /// Concurrent recalls of one file share a single download. Returns the
    /// bytes downloaded (0 if the file was not cold).
    pub(super) async fn recall(&self, core: &Core, rel: &Path) -> Result<u64, TierError> {
        let file = core.open_rel(rel, libc::O_RDWR)?;
        let id = crate::tier::core::file_id(&file).map_err(io_err(rel, "stat"))?;
        let one = core.locks.lock(id).await;
        let started = Instant::now();
        let result = self.recall_locked(core, rel, file, id).await;
        if !matches!(result, Ok(0)) {
            core.events.emit(Event::Recalled {
                ok: result.is_ok(),
                took: started.elapsed(),
            });
        }
        drop(one);
        result
    }

    /// Truncates a stub to zero bytes: no download, and the file is hot again.
    /// Under the file's lock, so a recall cannot write the old content over
    /// the truncated file afterwards (it finds no marker and does nothing),
    /// and after the chunk writes of the file's readers have stopped.
    pub(super) async fn discard_stub(&self, core: &Core, rel: &Path) -> Result<(), TierError> {
        let file = core.open_rel(rel, libc::O_RDWR)?;
        let id = crate::tier::core::file_id(&file).map_err(io_err(rel, "stat"))?;
        let _one = core.locks.lock(id).await;
        if let Some(fill) = self.fills.live(id) {
            fill.abandon().await;
        }
        self.fills.remove(id);
        let cleared = {
            let _times = core.gate.times(id.1);
            file.set_len(0)
                .and_then(|()| stub::remove_marker(&file))
                .and_then(|()| stub::drop_kept_ctime(&file))
        };
        cleared.map_err(io_err(rel, "truncate the stub"))?;
        if let Some(key) = path_key(rel) {
            core.catalog
                .exec_grouped_async("unlink truncated stub", move |c| {
                    // Every name of the file, not only the one it was
                    // truncated through (which may have no row yet).
                    tiering::mark_inode_hot(c, id.1)?;
                    if let Some(f) = tiering::file_by_path(c, &key)? {
                        tiering::mark_hot(c, f.id)?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    /// A reader of the cold file being filled by `fill` closed. Once the
    /// last one has, unless the stream was promoted to a full recall, the
    /// chunks kept in the stub while reading are given back: reading part
    /// of a cold file leaves it using no local blocks. Runs under the
    /// file's lock, so it never overlaps a recall.
    pub(super) async fn stream_closed(&self, core: &Core, fill: Arc<StubFill>) {
        // The closed handle's registration ends when the last request still
        // holding it is answered; another open reader may hold the file
        // longer (its own close comes back here).
        if !fill.readers_gone(std::time::Duration::from_secs(5)).await || fill.is_promoted() {
            return;
        }
        let Ok(id) = crate::tier::core::file_id(fill.file()) else {
            return;
        };
        let _one = core.locks.lock(id).await;
        if fill.readers() > 0 || fill.is_promoted() {
            return;
        }
        let rel = fill.source().rel.clone();
        match stub::read_marker(fill.file().as_fd()) {
            Ok(Some(marker)) => {
                if let Err(e) = fill.give_back(&marker).await {
                    tracing::warn!(path = %rel.display(), error = %e,
                        "cannot give back the blocks a read of a cold file kept");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %rel.display(), error = %e, "cannot read stub marker");
            }
        }
    }

    /// The shared chunk-by-chunk fill of the stub at `rel` (see
    /// [`StubFill`]), or `None` if it is not a stub or has no recorded chunk
    /// hashes (then only a full recall can serve it). Waits for the
    /// catalog: for synchronous callers.
    pub(super) fn stub_fill(
        &self,
        core: &Core,
        rel: &Path,
    ) -> Result<Option<Arc<StubFill>>, TierError> {
        let file = core.open_rel(rel, libc::O_RDWR)?;
        let Some(marker) =
            stub::read_marker(file.as_fd()).map_err(io_err(rel, "read stub marker"))?
        else {
            return Ok(None);
        };
        let id = crate::tier::core::file_id(&file).map_err(io_err(rel, "stat"))?;
        self.fills.get_or_insert(id, &marker.hash, || {
            let recorded = chunks::recorded(core, &marker)?;
            new_fill(core, rel, &file, &marker, recorded)
        })
    }

    /// The fill of the stub open as `file` (identity `id`, marker `marker`).
    async fn fill_for(
        &self,
        core: &Core,
        rel: &Path,
        file: &File,
        id: FileId,
        marker: &StubMarker,
    ) -> Result<Option<Arc<StubFill>>, TierError> {
        if let Some(fill) = self
            .fills
            .live(id)
            .filter(|f| f.source().hash == marker.hash)
        {
            return Ok(Some(fill));
        }
        let recorded = chunks::recorded_async(core, marker).await?;
        self.fills.get_or_insert(id, &marker.hash, || {
            new_fill(core, rel, file, marker, recorded)
        })
    }
}

/// A new fill of the stub open as `file`, if its chunk hashes are recorded.
fn new_fill(
    core: &Core,
    rel: &Path,
    file: &File,
    marker: &StubMarker,
    recorded: chunks::Recorded,
) -> Result<Option<StubFill>, TierError> {
    let Some(src) = chunks::stub_source(core, rel, marker, recorded) else {
        return Ok(None);
    };
    let file = file.try_clone().map_err(io_err(rel, "reopen"))?;
    Ok(Some(StubFill::new(src, file)))
}
