//! SQL for tiering: file state transitions, objects, rules and the ledger.
//!
//! These functions take a connection and are run by the tier engine through
//! [`Catalog::exec`](super::Catalog::exec) / `exec_durable` (in order with the
//! event stream) or by read-only tools. Every state transition is guarded by
//! the state (and content generation) it expects, so a file changed or moved
//! meanwhile is never advanced by mistake: the caller sees `false` and skips it.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::apply::{from_sql_u64, to_sql_u64};
use super::event::key_to_path;
use super::{Catalog, FileState};
use crate::events::{Event, Recorder, RuleRun};

/// A file as the tier engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierFile {
    /// Row id.
    pub id: i64,
    /// Path relative to the mount root.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns since the epoch).
    pub mtime_ns: i64,
    /// Last read through the mount (ns), if ever.
    pub last_access_ns: Option<i64>,
    /// Tiering state.
    pub state: FileState,
    /// Pinned by `tierctl pin`.
    pub pinned: bool,
    /// Content generation (bumped when size or mtime change).
    pub generation: i64,
    /// Content hash (hex) while a cloud copy exists.
    pub blake3: Option<String>,
    /// Inode number of the backing file when it was last catalogued: the
    /// rows of a file's hard links share it.
    pub ino: u64,
}

/// An object on a remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRow {
    /// Row id.
    pub id: i64,
    /// Remote name.
    pub remote: String,
    /// Object key on the remote.
    pub key: String,
    /// Content hash (hex).
    pub blake3: String,
    /// Size in bytes.
    pub size: u64,
    /// Storage class it was written with.
    pub storage_class: Option<String>,
    /// When it was created (ns).
    pub created_at_ns: i64,
    /// When it was last verified by a full read-back (ns).
    pub verified_at_ns: Option<i64>,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRow {
    /// Stable id (what `tierctl rule rm ID` takes).
    pub id: i64,
    /// 1-based evaluation position.
    pub position: i64,
    /// The rule as written.
    pub text: String,
}

fn hex(bytes: Vec<u8>) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const FILE_COLUMNS: &str =
    "id, path, size, mtime_ns, last_access_ns, state, pinned, generation, blake3, ino";

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TierFile> {
    Ok(TierFile {
        id: r.get(0)?,
        path: key_to_path(&r.get::<_, Vec<u8>>(1)?),
        size: from_sql_u64(r.get(2)?),
        mtime_ns: r.get(3)?,
        last_access_ns: r.get(4)?,
        state: r.get(5)?,
        pinned: r.get::<_, i64>(6)? != 0,
        generation: r.get(7)?,
        blake3: r.get::<_, Option<Vec<u8>>>(8)?.map(hex),
        ino: from_sql_u64(r.get(9)?),
    })
}

/// Files in `states`, in path order, calling `each` for every one (streams;
/// memory stays flat on a million rows).
pub fn for_each_file_in_states(
    conn: &Connection,
    states: &[FileState],
    mut each: impl FnMut(TierFile),
) -> rusqlite::Result<()> {
    let marks = vec!["?"; states.len()].join(",");
    let mut stmt = conn.prepare(&format!(
        "SELECT {FILE_COLUMNS} FROM files WHERE state IN ({marks}) ORDER BY path"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(states.iter()), file_row)?;
    for row in rows {
        each(row?);
    }
    Ok(())
}

/// The file at `path` (relative), if catalogued.
pub fn file_by_path(conn: &Connection, path: &[u8]) -> rusqlite::Result<Option<TierFile>> {
    conn.prepare_cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE path = ?1"))?
        .query_row([path], file_row)
        .optional()
}

/// The row of another name of the file with inode `ino` and content
/// `blake3` (a hard link's name the catalog knows).
pub fn file_by_ino(
    conn: &Connection,
    ino: u64,
    blake3: &[u8; 32],
) -> rusqlite::Result<Option<TierFile>> {
    conn.prepare_cached(&format!(
        "SELECT {FILE_COLUMNS} FROM files WHERE ino = ?1 AND blake3 = ?2 ORDER BY id LIMIT 1"
    ))?
    .query_row(
        params![super::apply::to_sql_u64(ino), &blake3[..]],
        file_row,
    )
    .optional()
}

/// Paths of the rows with inode number `ino` (the names of one file).
pub fn paths_with_ino(conn: &Connection, ino: u64) -> rusqlite::Result<Vec<PathBuf>> {
    let mut stmt = conn.prepare_cached("SELECT path FROM files WHERE ino = ?1 ORDER BY path")?;
    stmt.query_map([to_sql_u64(ino)], |r| {
        Ok(key_to_path(&r.get::<_, Vec<u8>>(0)?))
    })?
    .collect()
}

/// Files at or below `path` (a file or a directory; empty = everything).
pub fn files_under(conn: &Connection, path: &[u8]) -> rusqlite::Result<Vec<TierFile>> {
    if path.is_empty() {
        let mut stmt = conn.prepare(&format!("SELECT {FILE_COLUMNS} FROM files ORDER BY path"))?;
        return stmt.query_map([], file_row)?.collect();
    }
    let (lo, hi) = super::event::subtree_bounds(path);
    let mut stmt = conn.prepare(&format!(
        "SELECT {FILE_COLUMNS} FROM files WHERE path = ?1 OR (path > ?2 AND path < ?3) ORDER BY path"
    ))?;
    stmt.query_map(params![path, lo, hi], file_row)?.collect()
}

/// The other names of file `id`: rows with its inode number (hard links of
/// one file). Size and mtime are not compared: each name's row follows the
/// event stream on its own and may lag the other's, but both are the same
/// inode, and a state the catalog gives a name is checked against the file
/// itself before anything acts on it. Used with `?1` = the id.
const LINKS_OF: &str = "ino = (SELECT ino FROM files WHERE id = ?1) AND id <> ?1";

/// Moves file `id` from state `from` to `to` if it is still in `from` and
/// (when given) still at content generation `generation`. Returns whether it
/// moved. When `to` is a settled state (`hot`, `premigrated`, `cold`), the
/// file's other names (hard links) take it too: one file, one state, under
/// every name. Transient states stay on the name the engine works through
/// (the engine handles one inode at a time), so a name renamed or removed
/// mid-way cannot leave another name stuck in a transient state.
pub fn transition(
    conn: &Connection,
    id: i64,
    from: FileState,
    to: FileState,
    generation: Option<i64>,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE files SET state = ?3 WHERE id = ?1 AND state = ?2
             AND (?4 IS NULL OR generation = ?4)",
        )?
        .execute(params![id, from, to, generation])?;
    if n == 1 && to.is_settled() {
        // The content hash goes with the state: a link's row must not say
        // `cold` with another content's hash.
        conn.prepare_cached(&format!(
            "UPDATE files SET state = ?2, blake3 = (SELECT blake3 FROM files WHERE id = ?1)
             WHERE (state <> ?2 OR blake3 IS NOT (SELECT blake3 FROM files WHERE id = ?1))
               AND {LINKS_OF}"
        ))?
        .execute(params![id, to])?;
    }
    Ok(n == 1)
}

/// A file's size, modification time and inode as the tier engine left it
/// after rewriting its blocks (a release or a recall).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub ino: u64,
}

/// [`transition`], recording in the same statement the attributes the
/// engine left the file with: a hint applied while the engine rewrote the
/// file may have recorded an intermediate modification time (the row was
/// in a transient state, which such a look does not demote).
pub fn transition_rewritten(
    conn: &Connection,
    id: i64,
    from: FileState,
    to: FileState,
    after: Rewritten,
) -> rusqlite::Result<bool> {
    if !transition(conn, id, from, to, None)? {
        return Ok(false);
    }
    conn.prepare_cached("UPDATE files SET size = ?2, mtime_ns = ?3, ino = ?4 WHERE id = ?1")?
        .execute(params![
            id,
            super::apply::to_sql_u64(after.size),
            after.mtime_ns,
            super::apply::to_sql_u64(after.ino)
        ])?;
    Ok(true)
}

/// `uploading` → `premigrated` with its content hash, if the content is
/// unchanged since the upload began. Its other names follow.
pub fn mark_premigrated(
    conn: &Connection,
    id: i64,
    generation: i64,
    blake3: &[u8; 32],
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE files SET state = 'premigrated', blake3 = ?3
             WHERE id = ?1 AND generation = ?2 AND state = 'uploading'",
        )?
        .execute(params![id, generation, &blake3[..]])?;
    if n == 1 {
        conn.prepare_cached(&format!(
            "UPDATE files SET state = 'premigrated', blake3 = ?2
             WHERE state IN ('hot', 'uploading', 'premigrated') AND {LINKS_OF}"
        ))?
        .execute(params![id, &blake3[..]])?;
    }
    Ok(n == 1)
}

/// Unlinks file `id` (and its other names) from any cloud copy: state
/// `hot`, no hash.
pub fn mark_hot(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "UPDATE files SET state = 'hot', blake3 = NULL WHERE id = ?1 OR {LINKS_OF}"
    ))?
    .execute([id])?;
    Ok(())
}

/// Every name of the file with inode `ino` (rows with that inode number):
/// `hot`, no content hash. For a stub emptied in place (truncated to zero),
/// whichever of its names it was reached through.
pub fn mark_inode_hot(conn: &Connection, ino: u64) -> rusqlite::Result<usize> {
    conn.prepare_cached("UPDATE files SET state = 'hot', blake3 = NULL WHERE ino = ?1")?
        .execute([super::apply::to_sql_u64(ino)])
}

/// After a recall of the file with inode `ino` and content `blake3`: no
/// name of it stays `cold` (a name the recall did not go through, or one
/// the catalog had no row for when it began).
pub fn mark_inode_recalled(
    conn: &Connection,
    ino: u64,
    blake3: &[u8; 32],
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE files SET state = 'premigrated', blake3 = ?2
         WHERE ino = ?1 AND state IN ('cold', 'recalling')",
    )?
    .execute(params![super::apply::to_sql_u64(ino), &blake3[..]])
}

/// Sets or clears the pin on every file at or below `path`. Returns how many changed.
pub fn set_pinned(conn: &Connection, path: &[u8], pinned: bool) -> rusqlite::Result<usize> {
    let (lo, hi) = super::event::subtree_bounds(path);
    conn.prepare_cached(
        "UPDATE files SET pinned = ?4 WHERE (path = ?1 OR (path > ?2 AND path < ?3)) AND pinned <> ?4",
    )?
    .execute(params![path, lo, hi, pinned as i64])
}

/// Records an object (or finds the existing row). Returns its id.
pub fn upsert_object(
    conn: &Connection,
    remote: &str,
    key: &str,
    blake3: &[u8; 32],
    size: u64,
    storage_class: Option<&str>,
    now_ns: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO objects (remote, key, blake3, size, storage_class, created_at_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (remote, key) DO UPDATE SET unreferenced_since_ns = NULL",
    )?
    .execute(params![
        remote,
        key,
        &blake3[..],
        to_sql_u64(size),
        storage_class,
        now_ns
    ])?;
    conn.prepare_cached("SELECT id FROM objects WHERE remote = ?1 AND key = ?2")?
        .query_row(params![remote, key], |r| r.get(0))
}

/// Marks object `id` as verified by a full read-back at `now_ns`.
pub fn mark_verified(conn: &Connection, id: i64, now_ns: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE objects SET verified_at_ns = ?2 WHERE id = ?1")?
        .execute(params![id, now_ns])?;
    Ok(())
}

fn object_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        id: r.get(0)?,
        remote: r.get(1)?,
        key: r.get(2)?,
        blake3: hex(r.get(3)?),
        size: from_sql_u64(r.get(4)?),
        storage_class: r.get(5)?,
        created_at_ns: r.get(6)?,
        verified_at_ns: r.get(7)?,
    })
}

const OBJECT_COLUMNS: &str =
    "id, remote, key, blake3, size, storage_class, created_at_ns, verified_at_ns";

/// Objects holding content `blake3`, oldest first.
pub fn objects_for(conn: &Connection, blake3: &[u8; 32]) -> rusqlite::Result<Vec<ObjectRow>> {
    conn.prepare_cached(&format!(
        "SELECT {OBJECT_COLUMNS} FROM objects WHERE blake3 = ?1 ORDER BY id"
    ))?
    .query_map([&blake3[..]], object_row)?
    .collect()
}

/// Objects no file references any more, with when that was first noticed;
/// starts the grace period for newly unreferenced ones and clears it for
/// objects referenced again.
pub fn unreferenced_objects(
    conn: &Connection,
    now_ns: i64,
) -> rusqlite::Result<Vec<(ObjectRow, i64)>> {
    const REFERENCED: &str = "EXISTS (SELECT 1 FROM files f WHERE f.blake3 = objects.blake3
                               AND f.state IN ('uploading','premigrated','releasing','cold','recalling'))";
    conn.execute(
        &format!("UPDATE objects SET unreferenced_since_ns = NULL WHERE unreferenced_since_ns IS NOT NULL AND {REFERENCED}"),
        [],
    )?;
    conn.execute(
        &format!("UPDATE objects SET unreferenced_since_ns = ?1 WHERE unreferenced_since_ns IS NULL AND NOT {REFERENCED}"),
        [now_ns],
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {OBJECT_COLUMNS}, unreferenced_since_ns FROM objects
         WHERE unreferenced_since_ns IS NOT NULL ORDER BY id"
    ))?;
    stmt.query_map([], |r| Ok((object_row(r)?, r.get(8)?)))?
        .collect()
}

/// Records the chunk hashes and hole map (see `tier::layout`) of content
/// `blake3` (kept if already known).
pub fn record_chunks(
    conn: &Connection,
    blake3: &[u8; 32],
    chunk_size: u64,
    hashes: &[u8],
    holes: Option<&[u8]>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO chunks (blake3, chunk_size, hashes, holes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (blake3) DO NOTHING",
    )?
    .execute(params![&blake3[..], to_sql_u64(chunk_size), hashes, holes])?;
    Ok(())
}

/// What the catalog records about the chunks of one content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRow {
    /// Chunk size the hashes were computed with.
    pub chunk_size: u64,
    /// blake3 of every chunk, concatenated (32 bytes each).
    pub hashes: Vec<u8>,
    /// Encoded hole map, `None` for a dense file.
    pub holes: Option<Vec<u8>>,
}

/// The chunk hashes and hole map of content `blake3`, if recorded.
pub fn chunks_for(conn: &Connection, blake3: &[u8; 32]) -> rusqlite::Result<Option<ChunkRow>> {
    conn.prepare_cached("SELECT chunk_size, hashes, holes FROM chunks WHERE blake3 = ?1")?
        .query_row([&blake3[..]], |r| {
            Ok(ChunkRow {
                chunk_size: from_sql_u64(r.get(0)?),
                hashes: r.get(1)?,
                holes: r.get(2)?,
            })
        })
        .optional()
}

/// Deletes object row `id` (after the object itself was deleted).
pub fn delete_object_row(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM objects WHERE id = ?1")?
        .execute([id])?;
    // Chunk hashes go with the last object holding that content.
    conn.prepare_cached(
        "DELETE FROM chunks WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.blake3 = chunks.blake3)",
    )?
    .execute([])?;
    Ok(())
}

/// Whether any file row (whatever its state) names content `blake3`.
pub fn content_referenced(conn: &Connection, blake3: &[u8; 32]) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM files WHERE blake3 = ?1)")?
        .query_row([&blake3[..]], |r| r.get(0))
}

/// Keys of the objects recorded on `remote`.
pub fn object_keys(conn: &Connection, remote: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT key FROM objects WHERE remote = ?1")?
        .query_map([remote], |r| r.get(0))?
        .collect()
}

/// Deletes the row at `path` (a file gone from the hot dir).
pub fn forget_file(conn: &Connection, path: &[u8]) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM files WHERE path = ?1")?
        .execute([path])
}

/// Marks file `id` cold with content `blake3`, whatever its state (a stub
/// found on disk, repaired by `fsck`).
pub fn mark_stub_cold(conn: &Connection, id: i64, blake3: &[u8; 32]) -> rusqlite::Result<usize> {
    conn.prepare_cached("UPDATE files SET state = 'cold', blake3 = ?2 WHERE id = ?1")?
        .execute(params![id, &blake3[..]])
}

/// Each rule's last run as saved in `meta` (JSON), if saved.
pub fn saved_rule_runs(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = 'last_rule_runs'")?
        .query_row([], |r| r.get(0))
        .optional()
}

/// Saves `runs` as their rules' last runs, keeping the saved runs of other
/// rules (an unreadable saved value is replaced).
pub fn save_rule_runs(conn: &Connection, runs: &[RuleRun]) -> rusqlite::Result<()> {
    let saved = saved_rule_runs(conn)?
        .and_then(|json| serde_json::from_str::<Vec<RuleRun>>(&json).ok())
        .unwrap_or_default();
    let mut by_id: std::collections::BTreeMap<i64, RuleRun> =
        saved.into_iter().map(|r| (r.rule_id, r)).collect();
    for run in runs {
        by_id.insert(run.rule_id, run.clone());
    }
    let all: Vec<&RuleRun> = by_id.values().collect();
    let json = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_rule_runs', ?1)")?
        .execute([json])?;
    Ok(())
}

/// The recorder of engine events kept in the catalog: billable requests go
/// to the cost ledger, rule runs to `meta`. It queues them for the writer
/// and never waits ([`Catalog::exec_detached`]).
#[derive(Debug, Clone)]
pub struct CatalogRecorder(pub Catalog);

impl Recorder for CatalogRecorder {
    fn record(&self, event: &Event) {
        match event {
            Event::Billed(entry) => {
                let entry = entry.clone();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64);
                self.0
                    .exec_detached("cost ledger entry", move |c| record(c, &entry, now));
            }
            Event::RuleRuns(runs) => {
                let runs = runs.clone();
                self.0.exec_detached("save the rules' last runs", move |c| {
                    save_rule_runs(c, &runs)
                });
            }
            Event::Recalled { .. } | Event::MigrationRun { .. } => {}
        }
    }
}

/// Puts every file left in a transient state by a crash back into a stable
/// one. `has_stub_marker(path)` tells whether the hot file carries the stub
/// marker (its local data may be gone). Returns (path, from, to) per change.
pub fn recover_transient_states(
    conn: &Connection,
    has_stub_marker: impl Fn(&std::path::Path) -> bool,
) -> rusqlite::Result<Vec<(PathBuf, FileState, FileState)>> {
    let mut stuck = Vec::new();
    let transient = [
        FileState::Uploading,
        FileState::Releasing,
        FileState::Recalling,
    ];
    for_each_file_in_states(conn, &transient, |f| stuck.push(f))?;
    let mut changes = Vec::new();
    for f in stuck {
        let to = match f.state {
            // Nothing was freed; any uploaded object is garbage until reused.
            FileState::Uploading => FileState::Hot,
            // The marker is set before blocks are freed and removed only after
            // a recall has been verified and synced.
            _ if has_stub_marker(&f.path) => FileState::Cold,
            _ => FileState::Premigrated,
        };
        if to == FileState::Hot {
            mark_hot(conn, f.id)?;
        } else {
            transition(conn, f.id, f.state, to, None)?;
        }
        changes.push((f.path, f.state, to));
    }
    Ok(changes)
}

/// All rules in evaluation order.
pub fn rules(conn: &Connection) -> rusqlite::Result<Vec<RuleRow>> {
    conn.prepare_cached("SELECT id, position, text FROM rules ORDER BY position, id")?
        .query_map([], |r| {
            Ok(RuleRow {
                id: r.get(0)?,
                position: r.get(1)?,
                text: r.get(2)?,
            })
        })?
        .collect()
}

/// Renumbers positions 1..n in the current order.
fn renumber(conn: &Connection, order: &[i64]) -> rusqlite::Result<()> {
    for (i, id) in order.iter().enumerate() {
        conn.prepare_cached("UPDATE rules SET position = ?2 WHERE id = ?1")?
            .execute(params![id, i as i64 + 1])?;
    }
    Ok(())
}

/// Inserts a rule at 1-based `position` (or last). Returns its id.
pub fn add_rule(
    conn: &Connection,
    text: &str,
    position: Option<usize>,
    now_ns: i64,
) -> rusqlite::Result<i64> {
    let mut order: Vec<i64> = rules(conn)?.iter().map(|r| r.id).collect();
    conn.prepare_cached("INSERT INTO rules (position, text, created_at_ns) VALUES (0, ?1, ?2)")?
        .execute(params![text, now_ns])?;
    let id = conn.last_insert_rowid();
    let at = position
        .map(|p| p.saturating_sub(1).min(order.len()))
        .unwrap_or(order.len());
    order.insert(at, id);
    renumber(conn, &order)?;
    Ok(id)
}

/// Removes rule `id`. Returns whether it existed.
pub fn remove_rule(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM rules WHERE id = ?1")?
        .execute([id])?;
    let order: Vec<i64> = rules(conn)?.iter().map(|r| r.id).collect();
    renumber(conn, &order)?;
    Ok(n == 1)
}

/// Moves rule `id` to 1-based `position`. Returns whether it existed.
pub fn move_rule(conn: &Connection, id: i64, position: usize) -> rusqlite::Result<bool> {
    let mut order: Vec<i64> = rules(conn)?.iter().map(|r| r.id).collect();
    let Some(from) = order.iter().position(|&r| r == id) else {
        return Ok(false);
    };
    order.remove(from);
    let at = position.saturating_sub(1).min(order.len());
    order.insert(at, id);
    renumber(conn, &order)?;
    Ok(true)
}

pub use crate::events::LedgerEntry;

/// Appends a ledger entry at `now_ns`.
pub fn record(conn: &Connection, e: &LedgerEntry, now_ns: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO ledger (ts_ns, remote, op, requests, bytes, storage_class, object_age_ns, path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        now_ns,
        e.remote,
        e.op,
        to_sql_u64(e.requests),
        to_sql_u64(e.bytes),
        e.storage_class,
        e.object_age_ns,
        e.path
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = Connection::open(&path).unwrap();
        super::super::schema::configure_writer(&conn, &path).unwrap();
        super::super::schema::migrate(&mut conn, &path).unwrap();
        (dir, conn)
    }

    fn add_file(conn: &Connection, path: &str) -> i64 {
        conn.execute(
            "INSERT INTO files (path, size, mtime_ns, ino) VALUES (CAST(?1 AS BLOB), 10, 1, 1)",
            [path],
        )
        .unwrap();
        conn.last_insert_rowid()
    }

    #[test]
    fn transitions_are_guarded_by_state_and_generation() {
        let (_d, c) = conn();
        let id = add_file(&c, "a");
        let (hot, uploading) = (FileState::Hot, FileState::Uploading);
        assert!(transition(&c, id, hot, uploading, Some(0)).unwrap());
        assert!(!transition(&c, id, hot, uploading, Some(0)).unwrap());
        c.execute("UPDATE files SET generation = 1", []).unwrap();
        assert!(!mark_premigrated(&c, id, 0, &[7; 32]).unwrap());
        assert!(mark_premigrated(&c, id, 1, &[7; 32]).unwrap());
        let f = file_by_path(&c, b"a").unwrap().unwrap();
        assert_eq!(f.state, FileState::Premigrated);
        assert_eq!(f.blake3.unwrap(), "07".repeat(32));
    }

    #[test]
    fn recovery_uses_the_stub_marker() {
        let (_d, c) = conn();
        for (p, s) in [
            ("u", "uploading"),
            ("r1", "releasing"),
            ("r2", "releasing"),
            ("c1", "recalling"),
            ("c2", "recalling"),
        ] {
            let id = add_file(&c, p);
            c.execute(
                "UPDATE files SET state = ?2, blake3 = ?3 WHERE id = ?1",
                params![id, s, &[1u8; 32][..]],
            )
            .unwrap();
        }
        let marked = |p: &std::path::Path| {
            p == std::path::Path::new("r2") || p == std::path::Path::new("c2")
        };
        let mut changes = recover_transient_states(&c, marked).unwrap();
        changes.sort();
        let got: Vec<(String, String)> = changes
            .into_iter()
            .map(|(p, _, to)| (p.display().to_string(), to.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("c1", "premigrated"),
                ("c2", "cold"),
                ("r1", "premigrated"),
                ("r2", "cold"),
                ("u", "hot")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert!(file_by_path(&c, b"u").unwrap().unwrap().blake3.is_none());
    }

    #[test]
    fn rules_keep_their_order() {
        let (_d, c) = conn();
        let a = add_rule(&c, "a -> x", None, 1).unwrap();
        let b = add_rule(&c, "b -> x", None, 2).unwrap();
        let z = add_rule(&c, "z -> x", Some(1), 3).unwrap();
        let texts = |c: &Connection| {
            rules(c)
                .unwrap()
                .into_iter()
                .map(|r| r.text)
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&c), ["z -> x", "a -> x", "b -> x"]);
        assert!(move_rule(&c, z, 3).unwrap());
        assert_eq!(texts(&c), ["a -> x", "b -> x", "z -> x"]);
        assert!(remove_rule(&c, a).unwrap());
        assert!(!remove_rule(&c, a).unwrap());
        assert_eq!(
            rules(&c)
                .unwrap()
                .iter()
                .map(|r| (r.id, r.position))
                .collect::<Vec<_>>(),
            [(b, 1), (z, 2)]
        );
    }

    #[test]
    fn unreferenced_objects_start_their_grace_period() {
        let (_d, c) = conn();
        let id = add_file(&c, "a");
        let used = upsert_object(&c, "r", "data/1", &[1; 32], 10, None, 5).unwrap();
        let unused = upsert_object(&c, "r", "data/2", &[2; 32], 10, None, 5).unwrap();
        c.execute(
            "UPDATE files SET state = 'cold', blake3 = ?2 WHERE id = ?1",
            params![id, &[1u8; 32][..]],
        )
        .unwrap();
        let un = unreferenced_objects(&c, 100).unwrap();
        assert_eq!(
            un.iter()
                .map(|(o, since)| (o.id, *since))
                .collect::<Vec<_>>(),
            [(unused, 100)]
        );
        // Still unreferenced later: the original start time is kept.
        assert_eq!(unreferenced_objects(&c, 200).unwrap()[0].1, 100);
        // The file is deleted: now the other object becomes unreferenced too.
        c.execute("DELETE FROM files", []).unwrap();
        let ids: Vec<i64> = unreferenced_objects(&c, 300)
            .unwrap()
            .iter()
            .map(|(o, _)| o.id)
            .collect();
        assert_eq!(ids, [used, unused]);
    }
}
