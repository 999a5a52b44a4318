//! Filling a stub chunk by chunk, shared by its readers and its recall.
//!
//! A cold file whose chunk hashes are known is brought back one chunk at a
//! time: each chunk is fetched once with a ranged GET, checked against its
//! recorded blake3, and written into the stub at its offset. Readers of the
//! stub and its background recall go through the same [`StubFill`], so
//! concurrent wants of one chunk share one fetch. Every byte handed out or
//! left in the file has matched its chunk hash; the stub marker stays until
//! the recall has every chunk, so a crash leaves a stub.
//!
//! While the stub has readers, the last few verified chunks stay in memory
//! and are handed to readers from there (no re-read and re-hash of what was
//! just written), the write into the stub happens behind the reader, and the
//! recall is paced to run at most a few chunks ahead of the furthest read so
//! that what it fetches is still in memory when the reader gets there. A chunk
//! no longer in memory is read back from the stub and verified again.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::core::{Core, FileId};
use super::hash;
use super::layout::Holes;
use super::{StubSource, Tier, TierError};
use crate::catalog::path_key;
use crate::events::LedgerEntry;

/// Chunks sharing one fetch lock (a lock per chunk would cost memory on huge files).
const STRIPES: usize = 64;

/// Verified chunks kept in memory per fill while it has readers (each
/// [`hash::CHUNK_SIZE`]: 20 MiB). The recall runs at most `MEMORY_CHUNKS - 2`
/// chunks ahead of the furthest read, so a sequential reader finds them here.
/// Writes into the stub in flight are bounded by the same number.
const MEMORY_CHUNKS: usize = 5;

/// Chunks of a streamed recall being checked and written at once (each
/// [`hash::CHUNK_SIZE`]); the stream waits while this many are in flight.
const STREAM_WRITES: usize = 2;

/// How long the recall waits for a reader to move on before it stops pacing
/// itself to the readers and fills the rest at full speed.
const READER_IDLE: Duration = Duration::from_millis(500);

/// Where the bytes of one chunk are.
#[derive(Debug, Default)]
struct Memory {
    /// Fetched and verified, being written into the stub: they stay here
    /// until the write ends, so nobody fetches them again meanwhile.
    writing: HashMap<u64, Bytes>,
    /// Recently fetched chunks, oldest first (only while there are readers).
    recent: VecDeque<(u64, Bytes)>,
}

impl Memory {
    fn get(&self, index: u64) -> Option<Bytes> {
        if let Some(data) = self.writing.get(&index) {
            return Some(data.clone());
        }
        self.recent
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b.clone())
    }

    fn remember(&mut self, index: u64, data: Bytes) {
        if self.recent.iter().any(|(i, _)| *i == index) {
            return;
        }
        while self.recent.len() >= MEMORY_CHUNKS {
            self.recent.pop_front();
        }
        self.recent.push_back((index, data));
    }
}

/// One cold file being filled from the cloud.
#[derive(Debug)]
pub struct StubFill {
    src: StubSource,
    /// The stub, opened read-write by the engine.
    file: Arc<File>,
    /// Chunks written and verified.
    present: Vec<AtomicBool>,
    /// Whether fetched chunks are written into the stub. Off once a recall
    /// failed and gave the blocks back (a cold file keeps using no local
    /// blocks); on again when the next recall starts.
    keep: AtomicBool,
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Every write into the stub holds a read guard from before it checks
    /// `keep` until it ends; [`StubFill::abandon`] takes the write guard to
    /// wait them out.
    writes: Arc<tokio::sync::RwLock<()>>,
    memory: parking_lot::Mutex<Memory>,
    /// Open [`StubFill::reader`] handles.
    readers: AtomicUsize,
    /// One past the furthest chunk handed to a reader.
    served: AtomicU64,
    /// Chunks handed to a reader at least once, and how many.
    handed: Vec<AtomicBool>,
    handed_count: AtomicU64,
    /// Set once the stream was promoted to a full recall.
    promoted: AtomicBool,
    /// Signalled when `served` or `readers` changes.
    moved: tokio::sync::Notify,
    /// Signalled when a write into the stub ends.
    written: tokio::sync::Notify,
}

/// Writes verified chunk `data` at `start` into the stub, skipping the
/// parts that were holes in the original file (so a sparse file stays
/// sparse). A "hole" that is not all zeros in the verified data is written
/// anyway: the bytes always win over the layout.
fn write_chunk(file: &File, holes: &Holes, start: u64, data: &[u8]) -> std::io::Result<()> {
    if holes.is_dense() {
        return file.write_all_at(data, start);
    }
    let end = start + data.len() as u64;
    let mut pos = start;
    for (from, to) in holes.data_within(start, end) {
        let gap = &data[(pos - start) as usize..(from - start) as usize];
        if gap.iter().any(|&b| b != 0) {
            file.write_all_at(gap, pos)?;
        }
        file.write_all_at(&data[(from - start) as usize..(to - start) as usize], from)?;
        pos = to;
    }
    let tail = &data[(pos - start) as usize..];
    if tail.iter().any(|&b| b != 0) {
        file.write_all_at(tail, pos)?;
    }
    Ok(())
}

/// The fills in use, by file identity (not path: a stub renamed while it
/// fills keeps its fill, and a new stub under the old name gets its own);
/// dead entries are replaced.
#[derive(Debug, Default)]
pub(super) struct Fills {
    by_file: parking_lot::Mutex<HashMap<FileId, Weak<StubFill>>>,
}

impl Fills {
    /// The live fill of file `id` with content `hash`, or the one `make`
    /// builds (then registered). A live fill of older content (the file was
    /// recalled, changed and released again) is replaced.
    pub(super) fn get_or_insert(
        &self,
        id: FileId,
        hash: &blake3::Hash,
        make: impl FnOnce() -> Result<Option<StubFill>, TierError>,
    ) -> Result<Option<Arc<StubFill>>, TierError> {
        let mut map = self.by_file.lock();
        if let Some(fill) = map.get(&id).and_then(Weak::upgrade)
            && fill.src.hash == *hash
        {
            return Ok(Some(fill));
        }
        let Some(fill) = make()? else {
            return Ok(None);
        };
        let fill = Arc::new(fill);
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(id, Arc::downgrade(&fill));
        Ok(Some(fill))
    }

    /// The live fill of file `id`, if any.
    pub(super) fn live(&self, id: FileId) -> Option<Arc<StubFill>> {
        self.by_file.lock().get(&id).and_then(Weak::upgrade)
    }

    /// Forgets the fill of file `id` (its recall finished: the file is local).
    pub(super) fn remove(&self, id: FileId) {
        self.by_file.lock().remove(&id);
    }
}

/// A reader's registration with a [`StubFill`]: while any exists, verified
/// chunks are kept in memory and the recall is paced to the reads.
#[derive(Debug)]
pub struct FillReader {
    fill: Arc<StubFill>,
}

impl FillReader {
    /// The fill this reader reads from.
    pub fn fill(&self) -> &Arc<StubFill> {
        &self.fill
    }

    /// Chunk `index` for this reader, verified (see [`StubFill::chunk`]).
    pub async fn chunk(&self, tier: &Tier, index: u64) -> Result<Bytes, TierError> {
        let data = self.fill.fetch_chunk(tier.core(), index).await?;
        if self.fill.served.fetch_max(index + 1, Ordering::AcqRel) < index + 1 {
            self.fill.moved.notify_waiters();
        }
        if let Some(h) = self.fill.handed.get(index as usize)
            && !h.swap(true, Ordering::AcqRel)
        {
            self.fill.handed_count.fetch_add(1, Ordering::AcqRel);
        }
        Ok(data)
    }

    /// Whether chunk `index` is at hand without a fetch (memory or stub).
    pub fn has(&self, index: u64) -> bool {
        self.fill.memory.lock().get(index).is_some()
            || self
                .fill
                .present
                .get(index as usize)
                .is_some_and(|p| p.load(Ordering::Acquire))
    }
}

impl Drop for FillReader {
    fn drop(&mut self) {
        if self.fill.readers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.fill.memory.lock().recent.clear();
        }
        self.fill.moved.notify_waiters();
    }
}

impl StubFill {
    pub(super) fn new(src: StubSource, file: File) -> StubFill {
        let n = src.chunk_count() as usize;
        StubFill {
            present: (0..n).map(|_| AtomicBool::new(false)).collect(),
            keep: AtomicBool::new(true),
            stripes: (0..STRIPES.min(n.max(1)))
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            writes: Arc::new(tokio::sync::RwLock::new(())),
            memory: Default::default(),
            readers: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            handed: (0..n).map(|_| AtomicBool::new(false)).collect(),
            handed_count: AtomicU64::new(0),
            promoted: AtomicBool::new(false),
            moved: tokio::sync::Notify::new(),
            written: tokio::sync::Notify::new(),
            file: Arc::new(file),
            src,
        }
    }

    /// What is being filled.
    pub fn source(&self) -> &StubSource {
        &self.src
    }

    /// Registers a reader (see [`FillReader`]).
    pub fn reader(self: &Arc<Self>) -> FillReader {
        self.readers.fetch_add(1, Ordering::AcqRel);
        self.moved.notify_waiters();
        FillReader {
            fill: Arc::clone(self),
        }
    }

    fn span(&self, index: u64) -> (u64, usize) {
        let start = index * self.src.chunk_size;
        let end = (start + self.src.chunk_size).min(self.src.size);
        (start, (end - start) as usize)
    }

    fn in_memory(&self, index: u64) -> Option<Bytes> {
        self.memory.lock().get(index)
    }

    /// Chunk `index` from the local file, if it is there and still verifies.
    async fn local(&self, index: u64) -> Option<Bytes> {
        if !self.present.get(index as usize)?.load(Ordering::Acquire) {
            return None;
        }
        let (start, len) = self.span(index);
        let file = Arc::clone(&self.file);
        let data = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, start).map(|()| buf)
        })
        .await
        .ok()?
        .ok()?;
        if hash::chunk_matches(&self.src.chunks, index as usize, &data) {
            return Some(Bytes::from(data));
        }
        self.present[index as usize].store(false, Ordering::Release);
        None
    }

    /// Chunk `index` (verified) from memory or the stub, else fetched; a
    /// fetched chunk is written into the stub behind the caller. Returns the
    /// write when there is one; its outcome matters to the recall, not to
    /// readers.
    async fn fetch(
        self: &Arc<Self>,
        tier: &Core,
        index: u64,
    ) -> Result<(Bytes, Option<tokio::task::JoinHandle<std::io::Result<()>>>), TierError> {
        let one = self.stripes[index as usize % self.stripes.len()]
            .lock()
            .await;
        if let Some(data) = self.in_memory(index) {
            return Ok((data, None));
        }
        if let Some(data) = self.local(index).await {
            if self.readers.load(Ordering::Acquire) > 0 {
                self.memory.lock().remember(index, data.clone());
            }
            return Ok((data, None));
        }
        // Back-pressure: a slow disk must not pile fetched chunks up in memory.
        loop {
            let written = self.written.notified();
            if self.memory.lock().writing.len() < MEMORY_CHUNKS {
                break;
            }
            written.await;
        }
        let data = super::recaller::chunks::read_chunk(tier, &self.src, index).await?;
        let writing = Arc::clone(&self.writes).read_owned().await;
        {
            let mut memory = self.memory.lock();
            if self.readers.load(Ordering::Acquire) > 0 {
                memory.remember(index, data.clone());
            }
            if !self.keep.load(Ordering::Acquire) {
                return Ok((data, None));
            }
            memory.writing.insert(index, data.clone());
        }
        drop(one);
        let (start, _) = self.span(index);
        let this = Arc::clone(self);
        let block = data.clone();
        let write = tokio::spawn(async move {
            let file = Arc::clone(&this.file);
            // The streamed recall may have stored this chunk meanwhile: a
            // second write would only move the file's mtime after the recall
            // restored it.
            let stored = if this.present[index as usize].load(Ordering::Acquire) {
                Ok(())
            } else {
                let holes = this.src.holes.clone();
                tokio::task::spawn_blocking(move || write_chunk(&file, &holes, start, &block))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
            };
            if stored.is_ok() {
                this.present[index as usize].store(true, Ordering::Release);
            }
            this.memory.lock().writing.remove(&index);
            drop(writing);
            this.written.notify_waiters();
            stored
        });
        Ok((data, Some(write)))
    }

    /// Chunk `index`, verified: from memory, local if present, else fetched
    /// (and kept). Concurrent wants of one chunk share one local read or
    /// one fetch.
    pub async fn chunk(self: &Arc<Self>, tier: &Tier, index: u64) -> Result<Bytes, TierError> {
        self.fetch_chunk(tier.core(), index).await
    }

    /// [`chunk`](Self::chunk), given the engine's shared context.
    pub(super) async fn fetch_chunk(
        self: &Arc<Self>,
        tier: &Core,
        index: u64,
    ) -> Result<Bytes, TierError> {
        if let Some(data) = self.in_memory(index) {
            return Ok(data);
        }
        let (data, write) = self.fetch(tier, index).await?;
        if let Some(write) = write {
            let rel = self.src.rel.clone();
            tokio::spawn(async move {
                if let Ok(Err(e)) = write.await {
                    tracing::debug!(path = %rel.display(), chunk = index, error = %e,
                        "chunk served but not kept locally");
                }
            });
        }
        Ok(data)
    }

    /// Waits while chunk `index` is too far ahead of the readers (the
    /// recall runs at most `lead` chunks past the furthest read). Returns
    /// `false` once readers stopped moving (then the recall stops pacing).
    async fn pace(&self, index: u64, lead: u64) -> bool {
        loop {
            let moved = self.moved.notified();
            let served = self.served.load(Ordering::Acquire);
            if self.readers.load(Ordering::Acquire) == 0 || (served > 0 && index < served + lead) {
                return true;
            }
            if tokio::time::timeout(READER_IDLE, moved).await.is_err() {
                return false;
            }
        }
    }

    /// Makes every chunk present, `concurrency` fetches at a time. Fails on
    /// the first chunk no copy can give or the disk cannot take.
    pub(super) async fn fill_all(
        self: &Arc<Self>,
        tier: &Core,
        concurrency: usize,
    ) -> Result<(), TierError> {
        let rel = &self.src.rel;
        self.keep.store(true, Ordering::Release);
        // Nobody reads: one streamed GET is the fastest way to get the rest.
        // Whatever it leaves absent is fetched chunk by chunk below.
        if self.readers.load(Ordering::Acquire) == 0 {
            // Chunks a reader fetched may still be being written: once they
            // land they count as present and are not downloaded again.
            drop(self.writes.write().await);
            self.stream_rest(tier).await?;
        }
        let concurrency = concurrency.max(1);
        let lead = concurrency.min(MEMORY_CHUNKS - 2) as u64;
        let paced = AtomicBool::new(true);
        let paced = &paced;
        futures::stream::iter(0..self.src.chunk_count())
            .map(|index| async move {
                if self.present[index as usize].load(Ordering::Acquire) {
                    return Ok::<(), TierError>(());
                }
                if paced.load(Ordering::Acquire) && !self.pace(index, lead).await {
                    paced.store(false, Ordering::Release);
                }
                let (_, write) = self.fetch(tier, index).await?;
                match write {
                    Some(write) => write
                        .await
                        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
                        .map_err(|source| TierError::Io {
                            path: rel.clone(),
                            op: "write the recalled data (the file stays a stub)",
                            source,
                        })?,
                    // From memory or the stub: another caller's write may
                    // still be running.
                    None => self.settled(tier, index).await?,
                }
                super::failpoint::pause("receiving");
                Ok(())
            })
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
        // Every chunk is present, but a reader's write of a chunk the stream
        // also stored may still be running: it must land before the recall
        // syncs the file and restores its times.
        drop(self.writes.write().await);
        Ok(())
    }

    /// Fills the absent chunks from the first absent one to the end with
    /// one streamed GET of the first copy, each chunk checked against its
    /// hash before it is written. A local write failure is returned (another
    /// copy cannot help); any other failure is logged and leaves the rest to
    /// the chunk-by-chunk fill (which tries every copy), except a copy that
    /// is unreachable or stalled when it is the only one: the chunk fill
    /// would only wait for it again.
    async fn stream_rest(self: &Arc<Self>, tier: &Core) -> Result<(), TierError> {
        let absent = |i: &u64| !self.present[*i as usize].load(Ordering::Acquire);
        let Some(first) = (0..self.src.chunk_count()).find(absent) else {
            return Ok(());
        };
        // Up to the last absent chunk only: what readers already brought
        // is not downloaded again.
        let last = (0..self.src.chunk_count()).rfind(absent).unwrap_or(first);
        let Some((name, key, class)) = self.src.copies.first() else {
            return Ok(());
        };
        let Some(remote) = tier.remotes.get(name).filter(|r| !r.is_encrypted()) else {
            return Ok(()); // encrypted objects are read (and opened) chunk by chunk
        };
        let received = AtomicU64::new(0);
        let limit = remote.recall_timeout();
        let run = self.stream_from(remote, key, first, last + 1, &received);
        let outcome = super::watchdog::while_progressing(limit, &received, run)
            .await
            .unwrap_or_else(|| Err(super::watchdog::timed_out(remote, key, limit).into()));
        let got = received.load(Ordering::Relaxed);
        if got > 0 || outcome.is_ok() {
            tier.bill(LedgerEntry {
                remote: name.clone(),
                op: "get",
                requests: 1,
                bytes: got,
                storage_class: class.clone(),
                path: path_key(&self.src.rel),
                ..Default::default()
            });
        }
        match outcome {
            Ok(()) => Ok(()),
            Err(e @ TierError::Io { .. }) => Err(e),
            Err(e) if e.is_transient() && self.src.copies.len() == 1 => Err(e),
            Err(e) => {
                tracing::debug!(path = %self.src.rel.display(), remote = %name, error = %e,
                    "streamed recall stopped; fetching the rest chunk by chunk");
                Ok(())
            }
        }
    }

    /// The body of [`StubFill::stream_rest`]: streams `key` from chunk
    /// `first` up to (not including) chunk `end`, cuts it into chunks, and hands each absent one to
    /// [`StubFill::check_and_store`] (at most [`STREAM_WRITES`] at once).
    /// `received` counts the bytes that arrived.
    async fn stream_from(
        self: &Arc<Self>,
        remote: &crate::remote::Remote,
        key: &str,
        first: u64,
        end: u64,
        received: &AtomicU64,
    ) -> Result<(), TierError> {
        let start = first * self.src.chunk_size;
        let stop = (end * self.src.chunk_size).min(self.src.size);
        let Some(mut stream) = remote.stream_range(key, start..stop).await? else {
            return Ok(()); // encrypted: chunk by chunk
        };
        let mut writes = tokio::task::JoinSet::new();
        let mut index = first;
        // The chunk being received and the ones being written: the same
        // few buffers go round (fresh multi-MiB allocations per chunk left
        // the allocator holding far more than was in use).
        let mut spare: Vec<Vec<u8>> = Vec::with_capacity(STREAM_WRITES);
        let mut buf = Vec::with_capacity(self.span(index).1);
        while let Some(piece) = stream.next().await {
            let mut piece = piece?;
            received.fetch_add(piece.len() as u64, Ordering::Relaxed);
            while !piece.is_empty() {
                let want = self.span(index).1 - buf.len();
                let take = piece.split_to(want.min(piece.len()));
                buf.extend_from_slice(&take);
                if buf.len() < self.span(index).1 {
                    continue;
                }
                while writes.len() >= STREAM_WRITES {
                    spare.extend(self.joined(writes.join_next().await)?);
                }
                let data = std::mem::replace(&mut buf, spare.pop().unwrap_or_default());
                let this = Arc::clone(self);
                writes.spawn_blocking(move || this.check_and_store(index, &data).map(|()| data));
                super::failpoint::pause("receiving");
                index += 1;
                buf.clear();
                if index < end {
                    buf.reserve(self.span(index).1);
                }
            }
        }
        while let Some(done) = writes.join_next().await {
            self.joined(Some(done))?;
        }
        if index < end {
            return Err(TierError::NoCopy {
                path: self.src.rel.clone(),
                detail: format!("the object ended before chunk {index}"),
                transient: false,
            });
        }
        Ok(())
    }

    /// The outcome of one [`StubFill::check_and_store`] task (with what
    /// the task hands back, if it succeeded).
    fn joined<T>(
        &self,
        done: Option<Result<Result<T, TierError>, tokio::task::JoinError>>,
    ) -> Result<Option<T>, TierError> {
        match done {
            None => Ok(None),
            Some(Ok(result)) => result.map(Some),
            Some(Err(e)) => Err(TierError::Io {
                path: self.src.rel.clone(),
                op: "write the recalled data (the file stays a stub)",
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// Checks streamed chunk `index` against its hash and writes it into the
    /// stub (blocking; unless it is already there, or the recall was
    /// abandoned). A mismatch is an error and writes nothing.
    fn check_and_store(&self, index: u64, data: &[u8]) -> Result<(), TierError> {
        if !hash::chunk_matches(&self.src.chunks, index as usize, data) {
            tracing::error!(path = %self.src.rel.display(), chunk = index, "chunk failed verification");
            return Err(TierError::NoCopy {
                path: self.src.rel.clone(),
                detail: format!("chunk {index} does not match its hash"),
                transient: false,
            });
        }
        let writing = self.writes.blocking_read();
        if !self.keep.load(Ordering::Acquire) {
            return Err(TierError::Io {
                path: self.src.rel.clone(),
                op: "write the recalled data (the file stays a stub)",
                source: std::io::Error::other("the recall was abandoned"),
            });
        }
        if self.present[index as usize].load(Ordering::Acquire) {
            return Ok(());
        }
        let (start, _) = self.span(index);
        write_chunk(&self.file, &self.src.holes, start, data).map_err(|source| TierError::Io {
            path: self.src.rel.clone(),
            op: "write the recalled data (the file stays a stub)",
            source,
        })?;
        self.present[index as usize].store(true, Ordering::Release);
        drop(writing);
        self.written.notify_waiters();
        Ok(())
    }

    /// Waits for another caller's write of chunk `index`; if that left it
    /// absent, writes it from memory or fetches it again.
    async fn settled(self: &Arc<Self>, tier: &Core, index: u64) -> Result<(), TierError> {
        let io = |source| TierError::Io {
            path: self.src.rel.clone(),
            op: "write the recalled data (the file stays a stub)",
            source,
        };
        loop {
            let written = self.written.notified();
            if self.present[index as usize].load(Ordering::Acquire) {
                return Ok(());
            }
            if !self.memory.lock().writing.contains_key(&index) {
                if self.in_memory(index).is_some() {
                    return self.store(index).await.map_err(io);
                }
                return match self.fetch(tier, index).await? {
                    (_, Some(write)) => write
                        .await
                        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
                        .map_err(io),
                    (_, None) if self.present[index as usize].load(Ordering::Acquire) => Ok(()),
                    (_, None) => Err(io(std::io::Error::other(format!(
                        "chunk {index} could not be written into the stub"
                    )))),
                };
            }
            written.await;
        }
    }

    /// Writes chunk `index` into the stub from memory (a reader had it in
    /// memory but its write failed or was skipped).
    async fn store(self: &Arc<Self>, index: u64) -> std::io::Result<()> {
        let Some(data) = self.in_memory(index) else {
            return Err(std::io::Error::other(format!(
                "chunk {index} is no longer in memory"
            )));
        };
        let _writing = self.writes.read().await;
        if !self.keep.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the recall was abandoned"));
        }
        let (start, _) = self.span(index);
        let file = Arc::clone(&self.file);
        let holes = self.src.holes.clone();
        tokio::task::spawn_blocking(move || write_chunk(&file, &holes, start, &data))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))?;
        self.present[index as usize].store(true, Ordering::Release);
        Ok(())
    }

    /// Whether readers have been handed every chunk: the file was read in
    /// full.
    pub fn read_in_full(&self) -> bool {
        self.handed_count.load(Ordering::Acquire) == self.src.chunk_count()
    }

    /// Marks the stream promoted to a full recall; `true` the first time.
    pub fn promote(&self) -> bool {
        !self.promoted.swap(true, Ordering::AcqRel)
    }

    /// Whether the stream was promoted to a full recall.
    pub fn is_promoted(&self) -> bool {
        self.promoted.load(Ordering::Acquire)
    }

    /// Open readers.
    pub fn readers(&self) -> usize {
        self.readers.load(Ordering::Acquire)
    }

    /// Waits up to `limit` for the last reader to go; whether none is left.
    pub async fn readers_gone(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let moved = self.moved.notified();
            if self.readers() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                return self.readers() == 0;
            }
        }
    }

    /// After the last reader of a stream that was not promoted closed: the
    /// chunks written into the stub behind the reads are given back (the
    /// stub uses no blocks again) and its times restored. Later fetches are
    /// written into the stub again. The caller holds the file's recall lock.
    pub(super) async fn give_back(&self, marker: &super::stub::StubMarker) -> std::io::Result<()> {
        self.keep.store(false, Ordering::Release);
        let writes = self.writes.write().await;
        for p in &self.present {
            p.store(false, Ordering::Release);
        }
        let file = Arc::clone(&self.file);
        let marker = marker.clone();
        let result = tokio::task::spawn_blocking(move || {
            let st = crate::sys::stat_fd(std::os::fd::AsFd::as_fd(&*file))?;
            if st.st_blocks == 0 {
                return Ok(());
            }
            super::stub::give_back_blocks(&file, marker.size)?;
            super::stub::restore_times_with(&file, &st, Some(&marker))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        self.keep.store(true, Ordering::Release);
        drop(writes);
        result
    }

    /// The stub this fill writes into.
    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// After a successful recall: the file is local, memory is not needed.
    pub(super) fn finished(&self) {
        self.memory.lock().recent.clear();
    }

    /// After a failed recall: stops keeping fetched chunks, waits for
    /// writes in flight, and marks every chunk absent, so that the caller can
    /// give the blocks back and nothing is written into the stub afterwards.
    pub(super) async fn abandon(&self) {
        self.keep.store(false, Ordering::Release);
        drop(self.writes.write().await);
        for p in &self.present {
            p.store(false, Ordering::Release);
        }
    }
}
