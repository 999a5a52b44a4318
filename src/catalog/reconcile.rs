//! Full reconciliation of the catalog with the hot directory.
//!
//! A walker thread lists the tree and streams batches of files through a
//! small bounded channel to the writer thread, which upserts them in large
//! transactions, stamping each row it sees with a new scan generation
//! (`files.seen`). Rows left with an older generation afterwards belong to
//! files that are gone and are deleted with one statement. Memory stays
//! bounded: neither the catalog nor the scan is ever held in memory.

use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use super::CatalogError;
use super::apply::to_sql_u64;
use super::event::subtree_bounds;
use super::walk::{ScannedFile, WalkReport, walk};

/// Files per message from the walker to the writer.
const WALK_BATCH: usize = 4096;
/// Messages the walker may run ahead of the writer.
const WALK_QUEUE: usize = 16;
/// Files upserted per transaction.
const ROWS_PER_TRANSACTION: u64 = 100_000;

/// What [`Catalog::reconcile`](super::Catalog::reconcile) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileStats {
    /// Regular files found in the hot directory.
    pub scanned: u64,
    /// Rows inserted for files the catalog did not know.
    pub added: u64,
    /// Rows whose size, mtime or inode changed.
    pub updated: u64,
    /// Rows deleted because their file is gone.
    pub removed: u64,
    /// Wall-clock time (serialized as seconds, a float).
    #[serde(serialize_with = "as_secs_f64")]
    pub elapsed: Duration,
}

fn as_secs_f64<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Runs a reconcile on the writer's connection.
pub(crate) fn run(
    conn: &mut Connection,
    db: &Path,
    hot_dir: &Path,
) -> Result<ReconcileStats, CatalogError> {
    let started = Instant::now();
    let sql = |op: &'static str| move |e: rusqlite::Error| CatalogError::sqlite(db, op, e);
    let scan_err = |source: std::io::Error| CatalogError::Scan {
        path: db.to_path_buf(),
        dir: hot_dir.to_path_buf(),
        source,
    };
    // The hot directory itself may be reached through a symlink; nothing below it is followed.
    let meta = std::fs::metadata(hot_dir).map_err(scan_err)?;
    if !meta.is_dir() {
        return Err(scan_err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    let generation = next_generation(conn).map_err(sql("start reconcile"))?;
    let mut stats = ReconcileStats::default();
    // Time the writer spent waiting for the scan: tells whether the file
    // system or SQLite is the bottleneck.
    let mut scan_wait = Duration::ZERO;

    let (walked, stored) = std::thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<ScannedFile>>(WALK_QUEUE);
        let walker = std::thread::Builder::new()
            .name("tierfs-scan".into())
            .spawn_scoped(scope, move || {
                let mut batch = Vec::with_capacity(WALK_BATCH);
                let report = walk(hot_dir, b"", |file| {
                    batch.push(file);
                    if batch.len() < WALK_BATCH {
                        return true;
                    }
                    tx.send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(WALK_BATCH),
                    ))
                    .is_ok()
                });
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                report
            });
        let walker = match walker {
            Ok(w) => w,
            Err(e) => return (Err(e), Ok(())),
        };
        // `store` owns `rx`: if it fails, the channel closes and the walker stops.
        let stored = store(conn, rx, generation, &mut stats, &mut scan_wait);
        let walked = walker
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("scan thread panicked")));
        (walked, stored)
    });
    stored.map_err(sql("reconcile upsert"))?;
    let report: WalkReport = walked.map_err(scan_err)?;

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("reconcile delete"))?;
    stats.removed =
        delete_unseen(&tx, generation, &report.unreadable).map_err(sql("reconcile delete"))?;
    tx.commit().map_err(sql("reconcile commit"))?;
    stats.elapsed = started.elapsed();
    tracing::info!(
        catalog = %db.display(), dir = %hot_dir.display(), scanned = stats.scanned, added = stats.added,
        updated = stats.updated, removed = stats.removed, elapsed = ?stats.elapsed, scan_wait = ?scan_wait,
        "catalog reconciled"
    );
    Ok(stats)
}

/// Allocates the scan generation for this reconcile.
fn next_generation(conn: &mut Connection) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: Option<i64> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'scan_generation'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let next = current.unwrap_or(0) + 1;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('scan_generation', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [next],
    )?;
    tx.commit()?;
    Ok(next)
}

/// Upserts every scanned file, committing every [`ROWS_PER_TRANSACTION`] rows.
fn store(
    conn: &mut Connection,
    rx: Receiver<Vec<ScannedFile>>,
    generation: i64,
    stats: &mut ReconcileStats,
    scan_wait: &mut Duration,
) -> rusqlite::Result<()> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut in_tx = 0;
    let mut previous = Outcome::Unchanged;
    loop {
        let waiting = Instant::now();
        let Ok(batch) = rx.recv() else { break };
        *scan_wait += waiting.elapsed();
        for file in &batch {
            previous = store_one(&tx, file, generation, previous)?;
            stats.scanned += 1;
            match previous {
                Outcome::Unchanged => {}
                Outcome::Added => stats.added += 1,
                Outcome::Updated => stats.updated += 1,
            }
        }
        in_tx += batch.len() as u64;
        if in_tx >= ROWS_PER_TRANSACTION {
            tx.commit()?;
            tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            in_tx = 0;
        }
    }
    tx.commit()
}

/// What [`store_one`] did with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Unchanged,
    Added,
    Updated,
}

/// Stores one scanned file. Unchanged rows only get their `seen` stamp (one
/// indexed UPDATE) and new files one INSERT; which is tried first follows the
/// previous file's outcome, since new files come in runs (a fresh catalog, a
/// new directory) and so do known ones. Changed files are updated and their
/// `generation` bumped.
fn store_one(
    tx: &Transaction<'_>,
    f: &ScannedFile,
    generation: i64,
    previous: Outcome,
) -> rusqlite::Result<Outcome> {
    let (size, ino) = (to_sql_u64(f.size), to_sql_u64(f.ino));
    let args = params![f.key, size, f.mtime_ns, ino, generation];
    let mark_seen = || {
        tx.prepare_cached(
            "UPDATE files SET seen = ?5 WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND ino = ?4",
        )?
        .execute(args)
        .map(|n| n == 1)
    };
    let insert = || {
        tx.prepare_cached(
            "INSERT INTO files (path, size, mtime_ns, ino, seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (path) DO NOTHING",
        )?
        .execute(args)
        .map(|n| n == 1)
    };
    if previous == Outcome::Added {
        if insert()? {
            return Ok(Outcome::Added);
        }
        if mark_seen()? {
            return Ok(Outcome::Unchanged);
        }
    } else {
        if mark_seen()? {
            return Ok(Outcome::Unchanged);
        }
        if insert()? {
            return Ok(Outcome::Added);
        }
    }
    tx.prepare_cached(
        "UPDATE files SET generation = generation + (size <> ?2 OR mtime_ns <> ?3),
                          size = ?2, mtime_ns = ?3, ino = ?4, seen = ?5
         WHERE path = ?1",
    )?
    .execute(args)?;
    Ok(Outcome::Updated)
}

/// Keeps rows below unreadable paths, then deletes every row this scan did not see.
fn delete_unseen(
    tx: &Transaction<'_>,
    generation: i64,
    unreadable: &[Vec<u8>],
) -> rusqlite::Result<u64> {
    for key in unreadable {
        let (lo, hi) = subtree_bounds(key);
        tx.execute(
            "UPDATE files SET seen = ?2 WHERE path = ?1",
            params![key, generation],
        )?;
        tx.execute(
            "UPDATE files SET seen = ?3 WHERE path > ?1 AND path < ?2",
            params![lo, hi, generation],
        )?;
    }
    let removed = tx.execute(
        "DELETE FROM files WHERE seen IS NULL OR seen < ?1",
        [generation],
    )?;
    Ok(removed as u64)
}
