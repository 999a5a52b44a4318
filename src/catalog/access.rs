//! In-memory coalescing of last-access times.
//!
//! Reads are far too frequent to write one row per access, so the writer keeps
//! the latest access time per path here and writes them all every
//! `access_flush_interval` (and on `flush`/`close`). The map is ordered so that
//! renames and removals of whole directories can move or drop their pending
//! entries with a range scan.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::event::{is_at_or_below, subtree_bounds};

/// Latest access time per path key, waiting to be written.
#[derive(Debug)]
pub(crate) struct PendingAccesses {
    map: BTreeMap<Vec<u8>, i64>,
    interval: Duration,
    deadline: Option<Instant>,
}

impl PendingAccesses {
    /// An empty set that asks to be written `interval` after its first entry.
    pub(crate) fn new(interval: Duration) -> Self {
        PendingAccesses {
            map: BTreeMap::new(),
            interval,
            deadline: None,
        }
    }

    /// Records an access, keeping the latest time per path.
    pub(crate) fn record(&mut self, key: Vec<u8>, at_ns: i64) {
        if self.map.is_empty() {
            self.deadline = Some(Instant::now() + self.interval);
        }
        let slot = self.map.entry(key).or_insert(at_ns);
        *slot = (*slot).max(at_ns);
    }

    /// When the pending entries are due to be written, if there are any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Forgets pending accesses at or below `key` (the path was removed).
    pub(crate) fn remove(&mut self, key: &[u8]) {
        for k in self.keys_at_or_below(key) {
            self.map.remove(&k);
        }
    }

    /// Moves pending accesses at or below `from` to the same place below `to`,
    /// dropping those that were at or below `to` (their rows are replaced).
    pub(crate) fn rename(&mut self, from: &[u8], to: &[u8]) {
        if self.map.is_empty() {
            return;
        }
        self.remove(to);
        for old in self.keys_at_or_below(from) {
            if let Some(at) = self.map.remove(&old) {
                let mut new = to.to_vec();
                new.extend_from_slice(&old[from.len()..]);
                self.map.insert(new, at);
            }
        }
    }

    /// Takes every pending entry, leaving the set empty.
    pub(crate) fn take(&mut self) -> BTreeMap<Vec<u8>, i64> {
        self.deadline = None;
        std::mem::take(&mut self.map)
    }

    /// Number of pending entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn keys_at_or_below(&self, key: &[u8]) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        if self.map.contains_key(key) {
            keys.push(key.to_vec());
        }
        let (lo, hi) = subtree_bounds(key);
        keys.extend(
            self.map
                .range::<[u8], _>((
                    std::ops::Bound::Excluded(&lo[..]),
                    std::ops::Bound::Excluded(&hi[..]),
                ))
                .map(|(k, _)| k.clone()),
        );
        debug_assert!(keys.iter().all(|k| is_at_or_below(k, key)));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_latest_and_follows_renames_and_removals() {
        let mut p = PendingAccesses::new(Duration::from_secs(30));
        assert!(p.deadline().is_none());
        p.record(b"a/x".to_vec(), 5);
        assert!(p.deadline().is_some());
        p.record(b"a/x".to_vec(), 3);
        p.record(b"a-b".to_vec(), 7);
        p.record(b"a".to_vec(), 1);
        p.record(b"b/old".to_vec(), 9);
        p.rename(b"a", b"b");
        let m = p.take();
        assert!(p.deadline().is_none());
        let got: Vec<(&[u8], i64)> = m.iter().map(|(k, v)| (k.as_slice(), *v)).collect();
        assert_eq!(
            got,
            vec![(&b"a-b"[..], 7), (&b"b"[..], 1), (&b"b/x"[..], 5)]
        );

        p.record(b"d/e".to_vec(), 1);
        p.record(b"d".to_vec(), 1);
        p.record(b"de".to_vec(), 1);
        p.remove(b"d");
        assert_eq!(p.len(), 1);
    }
}
