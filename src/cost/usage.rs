//! A usage snapshot read from the catalog: every file, every object, and the
//! ledger rows of the report period.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::CostError;
use crate::catalog::tiering::{self, TierFile};

/// An object stored on a remote (one row of the `objects` table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectUsage {
    /// Remote name.
    pub remote: String,
    /// Storage class it was written with (`None`: the remote's default).
    pub storage_class: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Content hash (hex): the files with this hash reference it.
    pub blake3: String,
}

/// One ledger row: billable requests the daemon made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerRow {
    /// When (ns since the epoch).
    pub ts_ns: i64,
    /// Remote name.
    pub remote: String,
    /// `put`, `get`, `head`, `list` or `delete`.
    pub op: String,
    /// Number of requests.
    pub requests: u64,
    /// Bytes sent (put) or received (get); the object's size for delete.
    pub bytes: u64,
    /// Storage class (`None`: the remote's default).
    pub storage_class: Option<String>,
    /// Age of a deleted object (ns).
    pub object_age_ns: Option<i64>,
    /// The file a recall or chunk read was for (`None` for verification
    /// reads, deletes and listings).
    pub path: Option<PathBuf>,
}

/// Everything the report is computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// When the snapshot was taken (ns since the epoch).
    pub now_ns: i64,
    /// The report period: ledger rows from `now - period` on.
    pub period: Duration,
    /// Every catalogued file.
    pub files: Vec<TierFile>,
    /// Every object the catalog records (referenced or awaiting gc).
    pub objects: Vec<ObjectUsage>,
    /// Ledger rows in the period, oldest first.
    pub ledger: Vec<LedgerRow>,
}

impl Usage {
    /// Reads a snapshot from the catalog at `path` through `conn`.
    pub fn read(
        conn: &Connection,
        path: &Path,
        now_ns: i64,
        period: Duration,
    ) -> Result<Usage, CostError> {
        let err = |what| {
            move |source| CostError::Catalog {
                path: path.to_path_buf(),
                what,
                source,
            }
        };
        let files = tiering::files_under(conn, b"").map_err(err("files"))?;
        let objects = read_objects(conn).map_err(err("objects"))?;
        let since = now_ns.saturating_sub(i64::try_from(period.as_nanos()).unwrap_or(i64::MAX));
        let ledger = read_ledger(conn, since).map_err(err("ledger"))?;
        Ok(Usage {
            now_ns,
            period,
            files,
            objects,
            ledger,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_objects(conn: &Connection) -> rusqlite::Result<Vec<ObjectUsage>> {
    let mut stmt =
        conn.prepare("SELECT remote, storage_class, size, blake3 FROM objects ORDER BY id")?;
    stmt.query_map([], |r| {
        Ok(ObjectUsage {
            remote: r.get(0)?,
            storage_class: r.get(1)?,
            size: r.get::<_, i64>(2)?.max(0) as u64,
            blake3: hex(&r.get::<_, Vec<u8>>(3)?),
        })
    })?
    .collect()
}

fn read_ledger(conn: &Connection, since_ns: i64) -> rusqlite::Result<Vec<LedgerRow>> {
    let mut stmt = conn.prepare(
        "SELECT ts_ns, remote, op, requests, bytes, storage_class, object_age_ns, path
         FROM ledger WHERE ts_ns >= ?1 ORDER BY ts_ns, id",
    )?;
    stmt.query_map(params![since_ns], |r| {
        Ok(LedgerRow {
            ts_ns: r.get(0)?,
            remote: r.get(1)?,
            op: r.get(2)?,
            requests: r.get::<_, i64>(3)?.max(0) as u64,
            bytes: r.get::<_, i64>(4)?.max(0) as u64,
            storage_class: r.get(5)?,
            object_age_ns: r.get(6)?,
            path: r
                .get::<_, Option<Vec<u8>>>(7)?
                .map(|k| PathBuf::from(OsStr::from_bytes(&k))),
        })
    })?
    .collect()
}
