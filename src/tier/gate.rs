//! Coordination between opens through the mount and releases.
//!
//! Freeing a file's blocks while anyone has it open would hand them zeros
//! (passthrough reads go straight to the backing file). A release therefore
//! only starts when no handle is open, and opens of that file wait while its
//! critical section runs.
//!
//! # What the critical section covers, and why
//!
//! From [`Gate::try_begin_release`] to the drop of its guard, a release
//! (`tier::migrator::release`) does exactly this, all local system calls:
//!
//! 1. checks, under [`Gate::times`], that the file's ctime and size are
//!    those it had when it was re-hashed (nothing changed it since);
//! 2. writes the stub marker and fsyncs it;
//! 3. frees every block (punch, or truncate and extend).
//!
//! It must be atomic with respect to `open` because an open decides at
//! that moment, from the marker, how the handle reads: with no marker it
//! gets the backing file (passthrough), whose blocks step 3 frees; with the
//! marker it reads the stub through the engine, which must not fill chunks
//! into blocks step 3 is about to free. An open that happened before step 1
//! makes the release give up instead. The marker is synced before step 3 so
//! that a crash never leaves freed blocks without one.
//!
//! Not covered, because an open does not depend on them: the synced
//! `releasing` commit (before: a crash with no marker recovers to
//! `premigrated`), and the restored times, the final fsync and the `cold`
//! commit (after: by then any open sees a complete stub; those steps run
//! under the file's engine lock instead, so a recall of the new stub waits
//! for them).

use std::collections::HashMap;

use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct Entry {
    opens: u32,
    releasing: bool,
}

/// Per-inode open counts and release flags, keyed by backing inode number.
#[derive(Debug, Default)]
pub struct Gate {
    inodes: Mutex<HashMap<u64, Entry>>,
    changed: Condvar,
    /// Striped locks over the times a file shows (see [`Gate::times`]).
    times: TimesLocks,
}

/// Stripes of [`Gate::times`].
const TIME_STRIPES: usize = 64;

#[derive(Debug)]
struct TimesLocks([Mutex<()>; TIME_STRIPES]);

impl Default for TimesLocks {
    fn default() -> Self {
        TimesLocks(std::array::from_fn(|_| Mutex::new(())))
    }
}

impl Gate {
    /// Records an open of `ino`, waiting while it is being released.
    pub fn enter(&self, ino: u64) {
        let mut map = self.inodes.lock();
        while map.get(&ino).is_some_and(|e| e.releasing) {
            self.changed.wait(&mut map);
        }
        map.entry(ino).or_default().opens += 1;
    }

    /// Records that a handle on `ino` was closed.
    pub fn leave(&self, ino: u64) {
        let mut map = self.inodes.lock();
        if let Some(e) = map.get_mut(&ino) {
            e.opens = e.opens.saturating_sub(1);
            if e.opens == 0 && !e.releasing {
                map.remove(&ino);
            }
        }
    }

    /// Starts releasing `ino` if nothing has it open. Opens of `ino` wait
    /// until the returned guard is dropped (see the module doc for what the
    /// release does meanwhile).
    pub fn try_begin_release(&self, ino: u64) -> Option<ReleaseGuard<'_>> {
        let mut map = self.inodes.lock();
        let e = map.entry(ino).or_default();
        if e.opens > 0 || e.releasing {
            return None;
        }
        e.releasing = true;
        Some(ReleaseGuard { gate: self, ino })
    }

    /// Serialises changes to the times a file (backing inode `ino`) shows:
    /// a user's `setattr` through the mount and the engine's steps that
    /// write or restore them (marker, kept ctime, restored mtime). Held only
    /// around those few local system calls, never across I/O to a remote.
    pub fn times(&self, ino: u64) -> parking_lot::MutexGuard<'_, ()> {
        self.times.0[(ino % TIME_STRIPES as u64) as usize].lock()
    }

    /// Number of handles open on `ino`.
    pub fn open_count(&self, ino: u64) -> u32 {
        self.inodes.lock().get(&ino).map_or(0, |e| e.opens)
    }
}

/// Ends a release when dropped and wakes waiting opens.
#[derive(Debug)]
pub struct ReleaseGuard<'a> {
    gate: &'a Gate,
    ino: u64,
}

impl Drop for ReleaseGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.gate.inodes.lock();
        if let Some(e) = map.get_mut(&self.ino) {
            e.releasing = false;
            if e.opens == 0 {
                map.remove(&self.ino);
            }
        }
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn release_needs_no_open_handles() {
        let g = Gate::default();
        g.enter(7);
        assert!(g.try_begin_release(7).is_none());
        g.leave(7);
        let guard = g.try_begin_release(7).unwrap();
        assert!(g.try_begin_release(7).is_none());
        drop(guard);
        assert!(g.try_begin_release(7).is_some());
    }

    #[test]
    fn opens_wait_for_a_running_release() {
        let g = Arc::new(Gate::default());
        let guard = g.try_begin_release(1).unwrap();
        let g2 = g.clone();
        let opener = std::thread::spawn(move || {
            g2.enter(1);
            g2.open_count(1)
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(!opener.is_finished(), "open must wait for the release");
        drop(guard);
        assert_eq!(opener.join().unwrap(), 1);
    }
}
