//! Reading a cold file before its recall finishes.
//!
//! A read-only open of a stub whose chunk hashes are known does not wait for
//! the download: it gets a userspace handle at once and the full recall starts
//! in the background. Until the recall has replaced the stub, each read
//! fetches the chunks it touches with ranged GETs, checks every chunk against
//! its recorded blake3 (so a read never returns wrong bytes), and prefetches
//! the next chunk. Once the file is local again, reads come from the disk.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use fuser::{Errno, ReplyData, ReplyOpen};

use super::handles::{OpenFile, StubReader};
use super::inode::Inode;
use super::{FsResult, TierFs, Tiering, errno, sys};

/// Chunk `index`, verified: from the file's shared fill (in memory while it
/// has readers, local once any reader or the recall wrote it, else one
/// ranged GET).
async fn chunk(tiering: &Tiering, reader: &StubReader, index: u64) -> Result<Bytes, Errno> {
    reader.fill.chunk(&tiering.tier, index).await.map_err(|e| {
        tracing::error!(path = %reader.fill.fill().source().rel.display(), error = %e, "cold read failed");
        Errno::from_i32(e.errno())
    })
}

/// What a read returns: one verified chunk's bytes `[from, to)` (no copy), or
/// bytes gathered from several chunks.
enum Served {
    Slice(Bytes),
    Gathered(Vec<u8>),
}

impl Served {
    fn bytes(&self) -> &[u8] {
        match self {
            Served::Slice(b) => b,
            Served::Gathered(v) => v,
        }
    }
}

/// Bytes `[offset, offset + size)` of the cold file, from verified chunks.
async fn read_range(
    tiering: &Tiering,
    reader: &StubReader,
    offset: u64,
    size: u32,
) -> Result<Served, Errno> {
    let src = reader.fill.fill().source();
    let end = (offset + size as u64).min(src.size);
    if offset >= end {
        return Ok(Served::Gathered(Vec::new()));
    }
    let first = offset / src.chunk_size;
    if (end - 1) / src.chunk_size == first {
        let data = chunk(tiering, reader, first).await?;
        let chunk_start = first * src.chunk_size;
        let from = (offset - chunk_start) as usize;
        let to = (end - chunk_start) as usize;
        if to > data.len() {
            return Err(Errno::EIO);
        }
        return Ok(Served::Slice(data.slice(from..to)));
    }
    let mut out = Vec::with_capacity((end - offset) as usize);
    let mut pos = offset;
    while pos < end {
        let index = pos / src.chunk_size;
        let data = chunk(tiering, reader, index).await?;
        let chunk_start = index * src.chunk_size;
        let from = (pos - chunk_start) as usize;
        let to = ((end - chunk_start) as usize).min(data.len());
        if from >= to {
            return Err(Errno::EIO);
        }
        out.extend_from_slice(&data[from..to]);
        pos = chunk_start + to as u64;
    }
    Ok(Served::Gathered(out))
}

fn read_local(file: &File, offset: u64, size: u32) -> FsResult<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(errno(e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

impl TierFs {
    /// Opens a cold file read-only (`O_RDONLY` without `O_TRUNC`) without
    /// downloading anything, if its chunk hashes are known; reads then stream
    /// verified chunks. Otherwise the file is recalled first. Either way the
    /// work, catalog look-up included, runs on the tiering runtime: the FUSE
    /// thread returns at once and `reply` is answered from there.
    ///
    /// What a read-only use brings back: nothing at open; the chunks read
    /// (plus one chunk of read-ahead) while reading; the whole file once it
    /// has been read in full, or when a handle reads it again after an
    /// earlier one did. A stream that ends short of that gives the chunks
    /// it kept back (see `Tier::stream_closed`).
    pub(super) fn open_stub_for_reading(
        &self,
        inode: Arc<Inode>,
        flags: i32,
        creds: (u32, u32),
        reply: ReplyOpen,
    ) {
        let (Some(tiering), Some(rel)) = (self.tiering.clone(), self.rel_path(&inode)) else {
            return self.open_after_recall(inode, flags, creds, reply);
        };
        let fs = self.clone();
        let caller = super::handles::current_caller();
        tiering.runtime.spawn(async move {
            let tier = tiering.tier.clone();
            let looked_up = rel.clone();
            let fill = tokio::task::spawn_blocking(move || tier.stub_fill(&looked_up)).await;
            let _caller = super::handles::CallerGuard::with(caller);
            match fill {
                Ok(Ok(Some(fill))) => {
                    if let Some(reply) = fs.open_streaming(&inode, rel, fill, reply) {
                        fs.open_after_recall(inode, flags, creds, reply);
                    }
                }
                // No chunk hashes to stream from (or the look-up failed,
                // which the recall will report): the whole file first.
                _ => fs.open_after_recall(inode, flags, creds, reply),
            }
        });
    }

    /// Opens a streaming handle on the stub `inode` read through `fill`.
    /// Returns the reply back if the file was recalled meanwhile.
    fn open_streaming(
        &self,
        inode: &Arc<Inode>,
        rel: std::path::PathBuf,
        fill: Arc<crate::tier::StubFill>,
        reply: ReplyOpen,
    ) -> Option<ReplyOpen> {
        if let Err(e) = self.handles.admit() {
            reply.error(e);
            return None;
        }
        let file = match inode.path_fd().and_then(|fd| {
            sys::reopen(std::os::fd::AsFd::as_fd(&fd), libc::O_RDONLY).map_err(errno)
        }) {
            Ok(f) => f,
            Err(e) => {
                reply.error(e);
                return None;
            }
        };
        self.gate.enter(inode.ino);
        if !inode.is_stub() {
            // Recalled meanwhile: the normal path serves it.
            self.gate.leave(inode.ino);
            return Some(reply);
        }
        inode.cached_opens.fetch_add(1, Ordering::Relaxed);
        let reader = Arc::new(StubReader {
            fill: fill.reader(),
            read_any: Default::default(),
        });
        let fh = self.handles.insert_file(OpenFile {
            inode: inode.clone(),
            file,
            writable: false,
            dirty: Default::default(),
            passthrough: None,
            stub: Some(reader.clone()),
        });
        self.update_stats();
        // A read of a cold file is an access like any other (`unaccessed`
        // rules must not send a file just read back to the cloud).
        self.feed.send(super::FileEvent::Accessed {
            path: rel,
            at_ns: super::file_ops::now_ns(),
        });
        reply.opened(fuser::FileHandle(fh), fuser::FopenFlags::empty());
        None
    }

    /// Starts the full recall of the cold file `reader` streams from (once).
    fn promote(&self, tiering: &Tiering, reader: &StubReader) {
        if !reader.fill.fill().promote() {
            return;
        }
        let tier = tiering.tier.clone();
        let rel = reader.source().rel.clone();
        // Held until the recall has taken it over: the recall then finds the
        // chunks the reads already brought (a new fill would know none).
        let fill = reader.fill.fill().clone();
        let counted = tier.background_recall();
        tiering.runtime.spawn(async move {
            let recalled = tier.recall(&rel).await;
            drop(fill);
            drop(counted);
            if let Err(e) = recalled {
                // The engine logged why; reads go on from verified chunks.
                tracing::debug!(path = %rel.display(), error = %e, "recall failed; reads stay on the cloud copy");
            }
        });
    }

    /// Serves a read on a handle opened by [`open_stub_for_reading`]. Returns
    /// the reply back when the file is local again (plain read path).
    pub(super) fn read_stub(
        &self,
        open: &Arc<OpenFile>,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) -> Option<ReplyData> {
        let (Some(reader), Some(tiering)) = (open.stub.clone(), self.tiering.clone()) else {
            return Some(reply);
        };
        if !open.inode.is_stub() {
            return Some(reply);
        }
        if !reader.read_any.swap(true, Ordering::AcqRel)
            && open.inode.streamed.load(Ordering::Acquire)
        {
            // Read again after an earlier handle read it: bring it back.
            self.promote(&tiering, &reader);
        }
        let open = open.clone();
        let runtime = tiering.runtime.clone();
        let fs = self.clone();
        runtime.spawn(async move {
            // The read as a whole, waits for a fetch in flight (a recall's)
            // included, is bounded by recall_timeout per chunk it touches: a
            // dead remote gives EIO, never a wait of several timeouts.
            let chunk = reader.source().chunk_size.max(1);
            let touched = (offset + u64::from(size)).div_ceil(chunk) - offset / chunk;
            let limit = tiering
                .tier
                .longest_recall_timeout()
                .saturating_mul(u32::try_from(touched.max(1)).unwrap_or(u32::MAX));
            let result = tokio::time::timeout(limit, read_range(&tiering, &reader, offset, size))
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(path = %reader.source().rel.display(), ?limit, "cold read timed out");
                    Err(Errno::EIO)
                });
            let result = match result {
                // The recall may have finished while we read: either way the
                // bytes were verified.
                Ok(data) => Ok(data),
                Err(_) if !open.inode.is_stub() => {
                    read_local(&open.file, offset, size).map(Served::Gathered)
                }
                Err(e) => Err(e),
            };
            let failed = result.is_err();
            // Promoted before the reply: the reader's close (which may come
            // right after) must find the stream promoted, not give its
            // chunks back.
            if !failed && reader.fill.fill().read_in_full() {
                fs.promote(&tiering, &reader);
            }
            match result {
                Ok(data) => reply.data(data.bytes()),
                Err(e) => reply.error(e),
            }
            if failed {
                // No read-ahead from a remote that just failed.
                return;
            }
            if reader.fill.fill().is_promoted() {
                return;
            }
            // Read ahead: the next chunk is likely wanted soon (the recall,
            // paced to the reads, usually has it already).
            let src = reader.fill.fill().source();
            let next = (offset + size as u64) / src.chunk_size;
            if next < src.chunk_count() && !reader.fill.has(next) {
                let _ = reader.fill.fill().chunk(&tiering.tier, next).await;
            }
        });
        None
    }
}

impl super::FsShared {
    /// A read-only handle on a cold file closed: remembers that the file was
    /// read, and lets the engine give back what the stream kept if this was
    /// its last reader and no recall followed.
    pub(super) fn stub_handle_closed(&self, open: &OpenFile, reader: Arc<StubReader>) {
        if reader.read_any.load(Ordering::Acquire) {
            open.inode.streamed.store(true, Ordering::Release);
        }
        let Some(tiering) = self.tiering.clone() else {
            return;
        };
        let fill = reader.fill.fill().clone();
        // The reader's registration ends with the handle: drop it before
        // the engine counts readers.
        drop(reader);
        tiering
            .runtime
            .spawn(async move { tiering.tier.stream_closed(fill).await });
    }
}
