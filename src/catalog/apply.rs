//! The SQL that applies one change to the `files` table.
//!
//! Every function here runs inside the writer's current transaction and only
//! uses cached prepared statements. Directory-wide changes (remove, rename)
//! are single range statements over the `path` index, never one statement per
//! row.

use rusqlite::{Connection, params};

use super::event::{is_at_or_below, subtree_bounds};
use super::look::{Found, HotDir};

/// Inserts a file or updates its size/mtime/ino, keeping every other column.
/// `generation` is bumped when size or mtime changed (the content changed).
pub(crate) fn upsert(
    conn: &Connection,
    key: &[u8],
    size: u64,
    mtime_ns: i64,
    ino: u64,
) -> rusqlite::Result<()> {
    // The file's other names (hard links: rows with the inode this name
    // had) see the same content change.
    conn.prepare_cached(
        "UPDATE files SET
             generation = generation + 1,
             state = CASE WHEN state = 'premigrated' THEN 'hot' ELSE state END,
             blake3 = CASE WHEN state = 'premigrated' THEN NULL ELSE blake3 END,
             size = ?2, mtime_ns = ?3
         WHERE ino = ?4 AND path <> ?1 AND (size <> ?2 OR mtime_ns <> ?3)
           AND state IN ('hot', 'premigrated')
           AND ino = (SELECT ino FROM files WHERE path = ?1)",
    )?
    .execute(params![key, to_sql_u64(size), mtime_ns, to_sql_u64(ino)])?;
    // A new name of a file already catalogued (a hard link) takes that
    // file's tiering state and content hash: it is the same file.
    conn.prepare_cached(
        "INSERT INTO files (path, size, mtime_ns, ino, state, blake3)
         SELECT ?1, ?2, ?3, ?4,
                COALESCE(l.state, 'hot'), l.blake3
         FROM (SELECT 1) LEFT JOIN (
             SELECT state, blake3 FROM files
             WHERE ino = ?4 AND size = ?2 AND mtime_ns = ?3 AND path <> ?1
               AND state IN ('premigrated', 'cold')
             LIMIT 1) l
         WHERE true
         ON CONFLICT (path) DO UPDATE SET
             generation = generation + (size <> excluded.size OR mtime_ns <> excluded.mtime_ns
                                        OR ino <> excluded.ino),
             -- Another inode at this path is another file: it starts hot. New
             -- content unlinks a premigrated file from its cloud copy. Files in the
             -- other tiering states are managed (and re-verified) by the tier engine.
             state = CASE WHEN ino <> excluded.ino THEN 'hot'
                          WHEN state = 'premigrated'
                           AND (size <> excluded.size OR mtime_ns <> excluded.mtime_ns)
                          THEN 'hot' ELSE state END,
             blake3 = CASE WHEN ino <> excluded.ino THEN NULL
                           WHEN state = 'premigrated'
                            AND (size <> excluded.size OR mtime_ns <> excluded.mtime_ns)
                           THEN NULL ELSE blake3 END,
             size = excluded.size, mtime_ns = excluded.mtime_ns, ino = excluded.ino
         WHERE size <> excluded.size OR mtime_ns <> excluded.mtime_ns OR ino <> excluded.ino",
    )?
    .execute(params![key, to_sql_u64(size), mtime_ns, to_sql_u64(ino)])?;
    Ok(())
}

/// Deletes the row at `key`. Returns the number of rows deleted.
pub(crate) fn delete_exact(conn: &Connection, key: &[u8]) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM files WHERE path = ?1")?
        .execute([key])
}

/// Deletes every row strictly below directory `key`. Returns the number deleted.
pub(crate) fn delete_below(conn: &Connection, key: &[u8]) -> rusqlite::Result<usize> {
    let (lo, hi) = subtree_bounds(key);
    conn.prepare_cached("DELETE FROM files WHERE path > ?1 AND path < ?2")?
        .execute([lo, hi])
}

/// Deletes the row at `key` and every row below it.
pub(crate) fn remove(conn: &Connection, key: &[u8]) -> rusqlite::Result<()> {
    delete_exact(conn, key)?;
    delete_below(conn, key)?;
    Ok(())
}

/// Moves the row at `from` and every row below it to `to`, replacing the rows
/// at or below `to`. Ids and other columns are kept. Returns `false` (and does
/// nothing) for a rename into its own subtree or out of it, which POSIX forbids.
pub(crate) fn rename(conn: &Connection, from: &[u8], to: &[u8]) -> rusqlite::Result<bool> {
    if from == to {
        return Ok(true);
    }
    if is_at_or_below(to, from) || is_at_or_below(from, to) {
        return Ok(false);
    }
    let (lo, hi) = subtree_bounds(from);
    // The mount and the hot-dir watcher both report a rename; the second
    // report finds nothing at `from` and must not delete what the first moved.
    let anything_to_move: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM files WHERE path = ?1 OR (path > ?2 AND path < ?3))",
        )?
        .query_row(params![from, lo, hi], |r| r.get(0))?;
    if !anything_to_move {
        return Ok(true);
    }
    remove(conn, to)?;
    conn.prepare_cached("UPDATE files SET path = ?2 WHERE path = ?1")?
        .execute([from, to])?;
    // `||` yields TEXT; the CAST keeps the column a BLOB (memcmp order). substr
    // on a BLOB counts bytes, so this is exact for any (non-UTF-8) name.
    conn.prepare_cached(
        "UPDATE files SET path = CAST(?1 || substr(path, ?2) AS BLOB) WHERE path > ?3 AND path < ?4",
    )?
    .execute(params![to, from.len() as i64 + 1, lo, hi])?;
    Ok(true)
}

/// Applies a [`Look`](super::FileEvent::Look) hint at `key`: the catalog
/// takes what is there now. `gone` (a [`Gone`](super::FileEvent::Gone)
/// hint) also drops the rows of a path that is not there.
pub(crate) fn look(
    conn: &Connection,
    hot: &HotDir,
    key: &[u8],
    gone: bool,
) -> rusqlite::Result<()> {
    match hot.look(key) {
        Ok(Found::File {
            size,
            mtime_ns,
            ino,
        }) => {
            // A directory may have been replaced by this file.
            delete_below(conn, key)?;
            if !row_has_ino(conn, key, ino)? {
                adopt(conn, hot, key, size, mtime_ns, ino)?;
            }
            upsert(conn, key, size, mtime_ns, ino)
        }
        // A file may have been replaced by this directory.
        Ok(Found::Directory) => delete_exact(conn, key).map(drop),
        Ok(Found::Other) => delete_exact(conn, key).map(drop),
        Ok(Found::Missing) if gone => remove(conn, key),
        Ok(Found::Missing) => Ok(()),
        Err(e) => {
            tracing::warn!(path = %String::from_utf8_lossy(key), "cannot look at changed path: {e}");
            Ok(())
        }
    }
}

/// Whether the row at `key` is the file with inode `ino`.
fn row_has_ino(conn: &Connection, key: &[u8], ino: u64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM files WHERE path = ?1 AND ino = ?2)")?
        .query_row(params![key, to_sql_u64(ino)], |r| r.get(0))
}

/// The file now at `key` (inode `ino`, `size`, `mtime_ns`) has no row there:
/// if a row elsewhere has its inode, size and mtime (a rename keeps all
/// three) and that row's own path no longer holds the inode, the file was
/// renamed — by the mount, in a reordered report, or beside it — and that row
/// (id, state, hash, access time) moves here. A hard link's other name still
/// holds the inode, so a new name of a linked file is not an adoption.
fn adopt(
    conn: &Connection,
    hot: &HotDir,
    key: &[u8],
    size: u64,
    mtime_ns: i64,
    ino: u64,
) -> rusqlite::Result<()> {
    let candidates: Vec<Vec<u8>> = conn
        .prepare_cached(
            "SELECT path FROM files
             WHERE ino = ?1 AND size = ?2 AND mtime_ns = ?3 AND path <> ?4",
        )?
        .query_map(
            params![to_sql_u64(ino), to_sql_u64(size), mtime_ns, key],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    for old in candidates {
        let still_there = matches!(hot.look(&old), Ok(Found::File { ino: i, .. }) if i == ino);
        if still_there {
            continue;
        }
        delete_exact(conn, key)?;
        conn.prepare_cached("UPDATE files SET path = ?2 WHERE path = ?1")?
            .execute([old.as_slice(), key])?;
        return Ok(());
    }
    Ok(())
}

/// Applies a [`Moved`](super::FileEvent::Moved) hint: each row at or below
/// `from` moves to its name below `to` if the file there now is that row's
/// file (same inode); then `to` is looked at and `from` checked for removal.
/// A rename already applied (reported by the mount too) finds no row whose
/// file is at the new name, so it moves nothing.
pub(crate) fn moved(
    conn: &Connection,
    hot: &HotDir,
    from: &[u8],
    to: &[u8],
) -> rusqlite::Result<()> {
    if from == to || is_at_or_below(to, from) || is_at_or_below(from, to) {
        return Ok(());
    }
    if let Ok(Found::Directory) = hot.look(to) {
        let (lo, hi) = subtree_bounds(from);
        let rows: Vec<(Vec<u8>, i64)> = conn
            .prepare_cached(
                "SELECT path, ino FROM files WHERE path = ?1 OR (path > ?2 AND path < ?3)",
            )?
            .query_map(params![from, lo, hi], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (old, ino) in rows {
            let mut new = to.to_vec();
            new.extend_from_slice(&old[from.len()..]);
            let here =
                matches!(hot.look(&new), Ok(Found::File { ino: i, .. }) if i == from_sql_u64(ino));
            if here {
                delete_exact(conn, &new)?;
                conn.prepare_cached("UPDATE files SET path = ?2 WHERE path = ?1")?
                    .execute([old.as_slice(), new.as_slice()])?;
            }
        }
    } else {
        look(conn, hot, to, false)?;
    }
    look(conn, hot, from, true)
}

/// Records an access time, only ever moving it forward.
pub(crate) fn set_last_access(conn: &Connection, key: &[u8], at_ns: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE files SET last_access_ns = ?2
         WHERE path = ?1 AND (last_access_ns IS NULL OR last_access_ns < ?2)",
    )?
    .execute(params![key, at_ns])?;
    Ok(())
}

/// SQLite integers are signed 64-bit: sizes and inode numbers are stored
/// bit-for-bit (inode numbers above `i64::MAX` read back unchanged via
/// [`from_sql_u64`]).
pub(crate) fn to_sql_u64(v: u64) -> i64 {
    v as i64
}

/// Inverse of [`to_sql_u64`].
pub(crate) fn from_sql_u64(v: i64) -> u64 {
    v as u64
}
