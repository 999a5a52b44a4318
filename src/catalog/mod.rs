//! The SQLite catalog: one row per regular file of the hot directory, with its
//! size, times, tiering state and (later) its cloud object.
//!
//! * [`Catalog`] — the daemon's handle. One writer thread owns the read-write
//!   connection and applies [`FileEvent`]s from an unbounded channel in batched
//!   transactions; [`Catalog::send`] never blocks, so FUSE threads can call it.
//! * [`Catalog::reconcile`] — a full scan that makes the catalog match the hot
//!   directory (at start-up, and when change events were lost).
//! * [`watch()`] — inotify on the hot directory for changes made beside the mount.
//! * [`CatalogReader`] — read-only queries for `tierctl`, safe while the daemon writes.
//!
//! Paths are stored as BLOBs of raw bytes relative to the mount root, so any
//! file name works and a directory's subtree is one index range (see `event`).
//! The schema and its migrations live in `schema`.

mod access;
mod apply;
pub mod backup;
mod error;
mod event;
mod handle;
mod look;
mod reader;
mod reconcile;
mod schema;
mod state;
pub mod tiering;
mod walk;
mod watch;
mod writer;

#[cfg(test)]
mod tests;

pub use error::CatalogError;
pub use event::{FileEvent, path_key};
pub use handle::{Catalog, CatalogOptions};
pub use reader::{CatalogReader, FileRow, StateCount, StatusSummary};
pub use reconcile::ReconcileStats;
pub use state::{FileState, UnknownState};
pub(crate) use walk::{ScannedFile, walk};
pub use watch::{Watcher, watch};
