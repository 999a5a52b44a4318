//! Reused transfer buffers.
//!
//! Parts being uploaded and ranges being read back are several MiB each.
//! Allocated fresh every time, glibc keeps the freed ones in per-thread
//! arenas, so the daemon's resident memory drifted well above what was in
//! use at once. A [`BufferPool`] hands the same few buffers out again; how
//! many are in use at once is bounded by the remote's transfer budget
//! (`Remote::reserve_upload_buffer`), and the pool keeps at most that many,
//! and none once no pooled buffer is out (between transfers).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Buffers below this size come from the allocator as usual.
const POOLED_MIN: usize = 1 << 20;

/// Free transfer buffers, reused by the next part or range.
#[derive(Debug)]
pub(super) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// At most this many buffers are kept free.
    keep: usize,
    /// Pool-sized buffers handed out and not given back yet.
    out: AtomicUsize,
}

impl BufferPool {
    /// A pool keeping at most `keep` free buffers.
    pub(super) fn new(keep: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            keep,
            out: AtomicUsize::new(0),
        })
    }

    /// An empty buffer with room for `len` bytes: a free one when `len` is
    /// large enough to be pooled and one is big enough, else a new one. It
    /// goes back to the pool when dropped, on every path.
    pub(super) fn take(self: &Arc<Self>, len: usize) -> PoolBuf {
        let pooled = len >= POOLED_MIN;
        let mut buf = None;
        if pooled {
            self.out.fetch_add(1, Ordering::AcqRel);
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = free.iter().position(|b| b.capacity() >= len) {
                let mut reused = free.swap_remove(i);
                reused.clear();
                buf = Some(reused);
            }
        }
        PoolBuf {
            buf: buf.unwrap_or_else(|| Vec::with_capacity(len)),
            pool: pooled.then(|| Arc::clone(self)),
        }
    }

    /// Takes back a buffer that was out (kept unless the pool is full).
    /// The last one back empties the pool: memory is held for transfers in
    /// progress, not for the next one.
    fn put_back(&self, buf: Vec<u8>) {
        let was_out = self
            .out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if was_out <= 1 {
            free.clear();
        } else if free.len() < self.keep {
            free.push(buf);
        }
    }
}

/// A buffer from a [`BufferPool`]; returns to it when dropped.
pub(super) struct PoolBuf {
    buf: Vec<u8>,
    /// `None` for buffers too small to pool.
    pool: Option<Arc<BufferPool>>,
}

impl PoolBuf {
    /// The buffer as [`Bytes`] that return it to the pool when the last
    /// clone is dropped (an upload's payload is dropped by the HTTP client).
    pub(super) fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl std::ops::Deref for PoolBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl std::ops::DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PoolBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.put_back(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_dropped_as_bytes_is_handed_out_again() {
        let pool = BufferPool::new(2);
        let mut buf = pool.take(4 << 20);
        buf.resize(4 << 20, 7);
        let addr = buf.as_ptr();
        let bytes = buf.into_bytes();
        let clone = bytes.clone();
        drop(bytes);
        let other = pool.take(4 << 20);
        assert_ne!(other.as_ptr(), addr, "reused while still in use");
        drop(clone);
        let again = pool.take(3 << 20);
        assert_eq!(again.as_ptr(), addr);
        assert!(again.is_empty());
    }

    #[test]
    fn small_buffers_and_buffers_beyond_the_limit_are_not_kept() {
        let pool = BufferPool::new(1);
        let held = pool.take(2 << 20);
        let (a, b, small) = (pool.take(2 << 20), pool.take(2 << 20), pool.take(4096));
        drop((small, a, b));
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        drop(held);
    }

    #[test]
    fn the_pool_empties_when_the_last_buffer_comes_back() {
        let pool = BufferPool::new(4);
        let (a, b) = (pool.take(2 << 20), pool.take(2 << 20));
        drop(a);
        assert_eq!(pool.free.lock().unwrap().len(), 1, "kept while one is out");
        drop(b);
        assert!(
            pool.free.lock().unwrap().is_empty(),
            "held after the transfer"
        );
    }
}
