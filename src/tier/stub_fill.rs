//! Filling a stub chunk by chunk, shared by its readers and its recall.
//!
//! A cold file whose chunk hashes are known is brought back one chunk at a
//! time: each chunk is fetched once with a ranged GET, checked against its
//! recorded blake3, and written into the stub at its offset. Readers of the
//! stub and its background recall go through the same [`StubFill`], so a
//! chunk one of them fetched is read locally by the others (and verified
//! again), and concurrent wants of one chunk share one fetch. Every byte
//! handed out or left in the file has matched its chunk hash; the stub marker
//! stays until the recall has every chunk, so a crash leaves a stub.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::hash;
use super::{StubSource, Tier, TierError};

/// Chunks sharing one fetch lock (a lock per chunk would cost memory on huge files).
const STRIPES: usize = 64;

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
}

/// The fills in use, by file (relative path); dead entries are replaced.
#[derive(Debug, Default)]
pub(super) struct Fills {
    by_path: parking_lot::Mutex<HashMap<PathBuf, Weak<StubFill>>>,
}

impl Fills {
    /// The live fill for `rel`, or the one `make` builds (then registered).
    pub(super) fn get_or_insert(
        &self,
        rel: &Path,
        make: impl FnOnce() -> Result<Option<StubFill>, TierError>,
    ) -> Result<Option<Arc<StubFill>>, TierError> {
        let mut map = self.by_path.lock();
        if let Some(fill) = map.get(rel).and_then(Weak::upgrade) {
            return Ok(Some(fill));
        }
        let Some(fill) = make()? else {
            return Ok(None);
        };
        let fill = Arc::new(fill);
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(rel.to_path_buf(), Arc::downgrade(&fill));
        Ok(Some(fill))
    }

    /// Forgets the fill of `rel` (its recall finished: the file is local).
    pub(super) fn remove(&self, rel: &Path) {
        self.by_path.lock().remove(rel);
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
            file: Arc::new(file),
            src,
        }
    }

    /// What is being filled.
    pub fn source(&self) -> &StubSource {
        &self.src
    }

    fn span(&self, index: u64) -> (u64, usize) {
        let start = index * self.src.chunk_size;
        let end = (start + self.src.chunk_size).min(self.src.size);
        (start, (end - start) as usize)
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

    /// Fetches chunk `index` (verified) unless another caller just did, and
    /// writes it into the stub. `Ok((data, stored))`: `stored` is the write's
    /// outcome, which readers may ignore and the recall may not.
    async fn fetch(
        &self,
        tier: &Tier,
        index: u64,
    ) -> Result<(Bytes, std::io::Result<()>), TierError> {
        let _one = self.stripes[index as usize % self.stripes.len()]
            .lock()
            .await;
        if let Some(data) = self.local(index).await {
            return Ok((data, Ok(())));
        }
        let data = tier.read_chunk(&self.src, index).await?;
        if !self.keep.load(Ordering::Acquire) {
            return Ok((data, Ok(())));
        }
        let (start, _) = self.span(index);
        let file = Arc::clone(&self.file);
        let block = data.clone();
        let stored = tokio::task::spawn_blocking(move || file.write_all_at(&block, start))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if stored.is_ok() {
            self.present[index as usize].store(true, Ordering::Release);
        }
        Ok((data, stored))
    }

    /// Chunk `index`, verified: local if present, else fetched (and kept).
    pub async fn chunk(&self, tier: &Tier, index: u64) -> Result<Bytes, TierError> {
        if let Some(data) = self.local(index).await {
            return Ok(data);
        }
        let (data, stored) = self.fetch(tier, index).await?;
        if let Err(e) = stored {
            tracing::debug!(path = %self.src.rel.display(), chunk = index, error = %e,
                "chunk served but not kept locally");
        }
        Ok(data)
    }

    /// Makes every chunk present, `concurrency` fetches at a time. Fails on
    /// the first chunk no copy can give or the disk cannot take.
    pub(super) async fn fill_all(&self, tier: &Tier, concurrency: usize) -> Result<(), TierError> {
        let rel = &self.src.rel;
        self.keep.store(true, Ordering::Release);
        futures::stream::iter(0..self.src.chunk_count())
            .map(|index| async move {
                if self.present[index as usize].load(Ordering::Acquire) {
                    return Ok(());
                }
                let (_, stored) = self.fetch(tier, index).await?;
                stored.map_err(|source| TierError::Io {
                    path: rel.clone(),
                    op: "write the recalled data (the file stays a stub)",
                    source,
                })?;
                super::failpoint::pause("receiving");
                Ok(())
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    /// After a failed recall: stops keeping fetched chunks, waits for
    /// writes in flight, and marks every chunk absent, so that the caller can
    /// give the blocks back and nothing is written into the stub afterwards.
    pub(super) async fn abandon(&self) {
        self.keep.store(false, Ordering::Release);
        for stripe in &self.stripes {
            drop(stripe.lock().await);
        }
        for p in &self.present {
            p.store(false, Ordering::Release);
        }
    }
}
