//! The SQL that applies one change to the `files` table.
//!
//! Every function here runs inside the writer's current transaction and only
//! uses cached prepared statements. Directory-wide changes (remove, rename)
//! are single range statements over the `path` index, never one statement per
//! row.

use rusqlite::{Connection, params};

use super::event::{RenameTarget, is_at_or_below, subtree_bounds};

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

/// A rename the hot-dir watcher saw. The mount reports its own renames too,
/// so this may be a late echo of a rename already applied, after which a new
/// file or directory may have taken the name `from`: moving its rows would
/// put the wrong file's row (and state) at `to`. Rows move only if they still
/// describe what is at `to`: a file row with the inode found there, or for a
/// directory, only if nothing is catalogued below `to` yet (a directory can
/// only be renamed onto an empty one). Returns what [`rename`] returns.
pub(crate) fn rename_seen_beside(
    conn: &Connection,
    from: &[u8],
    to: &[u8],
    target: RenameTarget,
) -> rusqlite::Result<bool> {
    let describes_target: bool = match target {
        RenameTarget::File { ino } => conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM files WHERE path = ?1 AND ino = ?2)")?
            .query_row(params![from, to_sql_u64(ino)], |r| r.get(0))?,
        RenameTarget::Directory => {
            let (lo, hi) = subtree_bounds(to);
            let moved_already: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM files WHERE path > ?1 AND path < ?2)",
                )?
                .query_row(params![lo, hi], |r| r.get(0))?;
            !moved_already
        }
    };
    if !describes_target {
        return Ok(true);
    }
    rename(conn, from, to)
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
