//! Reading a cold file before its recall finishes.
//!
//! A read-only open of a stub whose chunk hashes are known does not wait for
//! the download: it gets a userspace handle at once and the full recall starts
//! in the background. Until the recall has replaced the stub, each read
//! fetches the chunks it touches with ranged GETs, checks every chunk against
//! its recorded blake3 (so a read never returns wrong bytes), and prefetches
//! the next chunk. Once the file is local again, reads come from the disk.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use fuser::{Errno, ReplyData, ReplyOpen};
use parking_lot::Mutex;

use super::handles::OpenFile;
use super::inode::Inode;
use super::{FsResult, TierFs, Tiering, errno, sys};
use crate::tier::StubFill;

/// Verified chunks kept per handle, so the kernel's several read requests
/// per chunk do not re-read and re-verify it.
const CACHED_CHUNKS: usize = 4;

/// The cloud side of a read-only handle on a cold file.
#[derive(Debug)]
pub struct StubReader {
    fill: Arc<StubFill>,
    recent: Mutex<VecDeque<(u64, Bytes)>>,
}

impl StubReader {
    fn cached(&self, index: u64) -> Option<Bytes> {
        self.recent
            .lock()
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b.clone())
    }

    fn remember(&self, index: u64, data: Bytes) {
        let mut recent = self.recent.lock();
        if recent.iter().any(|(i, _)| *i == index) {
            return;
        }
        if recent.len() >= CACHED_CHUNKS {
            recent.pop_front();
        }
        recent.push_back((index, data));
    }
}

/// Chunk `index`: from the handle's cache, or from the file's shared fill
/// (local once any reader or the recall has it, else one ranged GET).
async fn chunk(tiering: &Tiering, reader: &StubReader, index: u64) -> Result<Bytes, Errno> {
    if let Some(data) = reader.cached(index) {
        return Ok(data);
    }
    let data = reader.fill.chunk(&tiering.tier, index).await.map_err(|e| {
        tracing::error!(path = %reader.fill.source().rel.display(), error = %e, "cold read failed");
        Errno::from_i32(e.errno())
    })?;
    reader.remember(index, data.clone());
    Ok(data)
}

/// Bytes `[offset, offset + size)` of the cold file, from verified chunks.
async fn read_range(
    tiering: &Tiering,
    reader: &StubReader,
    offset: u64,
    size: u32,
) -> Result<Vec<u8>, Errno> {
    let src = reader.fill.source();
    let end = (offset + size as u64).min(src.size);
    let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
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
    Ok(out)
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
    /// Opens a cold file read-only without waiting for its recall, if its
    /// chunk hashes are known. Returns the reply back when it cannot.
    pub(super) fn open_stub_for_reading(
        &self,
        inode: &Arc<Inode>,
        flags: i32,
        reply: ReplyOpen,
    ) -> Option<ReplyOpen> {
        let readonly = flags & libc::O_ACCMODE == libc::O_RDONLY && flags & libc::O_TRUNC == 0;
        let (Some(tiering), Some(rel)) = (self.tiering.clone(), self.rel_path(inode)) else {
            return Some(reply);
        };
        if !readonly {
            return Some(reply);
        }
        let fill = match tiering.tier.stub_fill(&rel) {
            Ok(Some(fill)) => fill,
            _ => return Some(reply),
        };
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
        let fh = self.handles.insert_file(OpenFile {
            inode: inode.clone(),
            file,
            writable: false,
            dirty: Default::default(),
            passthrough: None,
            stub: Some(Arc::new(StubReader {
                fill,
                recent: Mutex::new(VecDeque::new()),
            })),
        });
        self.update_stats();
        reply.opened(fuser::FileHandle(fh), fuser::FopenFlags::empty());
        // The full recall runs meanwhile; concurrent opens share it.
        let tier = tiering.tier.clone();
        tiering.runtime.spawn(async move {
            if let Err(e) = tier.recall(&rel).await {
                // The engine logged why; reads go on from verified chunks.
                tracing::debug!(path = %rel.display(), error = %e, "background recall failed; reads stay on the cloud copy");
            }
        });
        None
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
        let open = open.clone();
        let runtime = tiering.runtime.clone();
        runtime.spawn(async move {
            let result = read_range(&tiering, &reader, offset, size).await;
            let result = match result {
                // The recall may have finished while we read: either way the
                // bytes were verified.
                Ok(data) => Ok(data),
                Err(_) if !open.inode.is_stub() => read_local(&open.file, offset, size),
                Err(e) => Err(e),
            };
            let failed = result.is_err();
            match result {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            }
            if failed {
                // No read-ahead from a remote that just failed.
                return;
            }
            // Read ahead: the next chunk is likely wanted soon.
            let src = reader.fill.source();
            let next = (offset + size as u64) / src.chunk_size;
            if next < src.chunk_count() && reader.cached(next).is_none() {
                let _ = chunk(&tiering, &reader, next).await;
            }
        });
        None
    }
}
