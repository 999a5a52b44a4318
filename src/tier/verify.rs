//! `tierctl verify`: reads cold objects back and checks them against the
//! hashes the catalog recorded when they were uploaded.
//!
//! Every object holding the content of a `premigrated` or `cold` file (at or
//! below the given paths) is read with ranged GETs of one chunk (4 MiB) at a
//! time; each chunk is checked against its recorded blake3 and the whole
//! object against the file's blake3 and size. A missing, short, unreadable
//! or corrupt object is reported with every path whose content it holds,
//! and whether another copy of that content is still good. Reads can be
//! throttled to a byte rate so a scrub does not saturate the link.
//!
//! Verify needs only the catalog (read-only) and the remotes, not the
//! daemon: it changes nothing, so it runs beside a live mount or after the
//! daemon stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::hash;
use crate::catalog::FileState;
use crate::catalog::tiering::{self, ObjectRow};
use crate::remote::{Remote, RemoteError};

/// Range size when a content has no recorded chunk hashes.
const DEFAULT_RANGE: u64 = hash::CHUNK_SIZE;

/// One content to check: its hash, the files holding it, its copies.
#[derive(Debug, Clone)]
pub struct VerifyItem {
    /// The content's blake3.
    pub hash: blake3::Hash,
    /// Its size in bytes.
    pub size: u64,
    /// Files (relative to the mount root) with this content.
    pub paths: Vec<PathBuf>,
    /// Chunk size and concatenated chunk hashes, if recorded.
    chunks: Option<(u64, Vec<u8>)>,
    /// Every recorded copy.
    copies: Vec<ObjectRow>,
}

impl VerifyItem {
    /// How many copies of this content the catalog records.
    pub fn copies_count(&self) -> usize {
        self.copies.len()
    }
}

/// What is wrong with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectProblem {
    /// Remote name.
    pub remote: String,
    /// Object key.
    pub key: String,
    /// `missing`, `corrupt`, `unreadable` or `unconfigured`.
    pub kind: String,
    /// What was found.
    pub detail: String,
    /// Every file whose content this object holds.
    pub paths: Vec<String>,
    /// Whether another copy of the same content checked good (reads still
    /// work, from that copy).
    pub other_copy_good: bool,
}

/// The result of a verify run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Files whose content was checked.
    pub files: u64,
    /// Objects read.
    pub objects: u64,
    /// Bytes read from the remotes.
    pub bytes_read: u64,
    /// Objects that are not good.
    pub problems: Vec<ObjectProblem>,
    /// Wall time in milliseconds.
    pub millis: u64,
}

impl VerifyReport {
    /// Whether every object checked good.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Contents of the `premigrated`/`cold` files at or below `prefixes`
/// (path keys; empty = everything), with their copies and chunk hashes.
pub fn plan(conn: &Connection, prefixes: &[Vec<u8>]) -> rusqlite::Result<Vec<VerifyItem>> {
    let mut by_hash: BTreeMap<String, (u64, Vec<PathBuf>)> = BTreeMap::new();
    let mut failed = None;
    tiering::for_each_file_in_states(
        conn,
        &[
            FileState::Premigrated,
            FileState::Cold,
            FileState::Releasing,
            FileState::Recalling,
        ],
        |f| {
            let key = f.path.as_os_str().as_encoded_bytes();
            let wanted = prefixes.is_empty()
                || prefixes.iter().any(|p| {
                    key == p.as_slice() || (key.starts_with(p) && key.get(p.len()) == Some(&b'/'))
                });
            if !wanted {
                return;
            }
            match f.blake3 {
                Some(hex) => by_hash
                    .entry(hex)
                    .or_insert_with(|| (f.size, Vec::new()))
                    .1
                    .push(f.path),
                None => failed = Some(f.path),
            }
        },
    )?;
    if let Some(path) = failed {
        tracing::warn!(path = %path.display(), "file has a cloud state but no content hash; skipped");
    }
    let mut items = Vec::new();
    for (hex, (size, paths)) in by_hash {
        let Ok(hash) = blake3::Hash::from_hex(&hex) else {
            continue;
        };
        let bytes = *hash.as_bytes();
        items.push(VerifyItem {
            hash,
            size,
            paths,
            chunks: tiering::chunks_for(conn, &bytes)?.map(|c| (c.chunk_size, c.hashes)),
            copies: tiering::objects_for(conn, &bytes)?,
        });
    }
    Ok(items)
}

/// Limits the average read rate to `rate` bytes per second.
struct Throttle {
    rate: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    async fn account(&mut self, n: u64) {
        self.bytes += n;
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
}

/// Why one object is not good: (kind, detail).
type Bad = (&'static str, String);

fn classify(e: RemoteError) -> Bad {
    match e {
        RemoteError::NotFound { .. } => ("missing", "the object does not exist".into()),
        RemoteError::Corrupt { expected, got, .. } => {
            ("corrupt", format!("expected {expected}, got {got}"))
        }
        other => ("unreadable", other.to_string()),
    }
}

/// Reads one object range by range, checking every chunk and the whole.
async fn check_object(
    remote: &Remote,
    object: &ObjectRow,
    item: &VerifyItem,
    throttle: &mut Throttle,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), Bad> {
    let key = &object.key;
    let info = remote.head(key).await.map_err(classify)?;
    let Some(info) = info else {
        return Err(("missing", "the object does not exist".into()));
    };
    if info.size != item.size {
        return Err((
            "corrupt",
            format!("size {} instead of {}", info.size, item.size),
        ));
    }
    let range = match &item.chunks {
        Some((size, _)) if *size > 0 => *size,
        _ => DEFAULT_RANGE,
    };
    let mut whole = blake3::Hasher::new();
    let mut offset = 0u64;
    let mut index = 0usize;
    while offset < item.size {
        let end = (offset + range).min(item.size);
        let data = remote.get_range(key, offset..end).await.map_err(classify)?;
        if let Some((_, hashes)) = &item.chunks
            && !hash::chunk_matches(hashes, index, &data)
        {
            return Err((
                "corrupt",
                format!("chunk {index} (bytes {offset}..{end}) does not match its recorded blake3"),
            ));
        }
        whole.update(&data);
        throttle.account(data.len() as u64).await;
        progress(data.len() as u64);
        offset = end;
        index += 1;
    }
    let got = whole.finalize();
    if got != item.hash {
        return Err((
            "corrupt",
            format!("blake3 {} instead of {}", got.to_hex(), item.hash.to_hex()),
        ));
    }
    Ok(())
}

/// Checks every copy of every item. `rate` caps the read rate (bytes per
/// second); `progress` gets the bytes read since its last call.
pub async fn run(
    items: &[VerifyItem],
    remotes: &BTreeMap<String, Remote>,
    rate: Option<u64>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> VerifyReport {
    let started = Instant::now();
    let mut throttle = Throttle {
        rate,
        started,
        bytes: 0,
    };
    let mut report = VerifyReport::default();
    for item in items {
        report.files += item.paths.len() as u64;
        let paths: Vec<String> = item
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p.as_os_str().as_encoded_bytes()).into_owned())
            .collect();
        let mut bad = Vec::new();
        let mut good = 0;
        if item.copies.is_empty() {
            bad.push(ObjectProblem {
                remote: String::new(),
                key: String::new(),
                kind: "missing".into(),
                detail: format!(
                    "the catalog records no object for content {}",
                    item.hash.to_hex()
                ),
                paths: paths.clone(),
                other_copy_good: false,
            });
        }
        for object in &item.copies {
            let before = throttle.bytes;
            let outcome = match remotes.get(&object.remote) {
                None => Err((
                    "unconfigured",
                    format!("no remote named `{}` in the config", object.remote),
                )),
                Some(remote) => {
                    report.objects += 1;
                    check_object(remote, object, item, &mut throttle, progress).await
                }
            };
            report.bytes_read += throttle.bytes - before;
            match outcome {
                Ok(()) => good += 1,
                Err((kind, detail)) => {
                    tracing::error!(remote = %object.remote, key = %object.key, paths = ?paths, kind, detail, "object failed verification");
                    bad.push(ObjectProblem {
                        remote: object.remote.clone(),
                        key: object.key.clone(),
                        kind: kind.into(),
                        detail,
                        paths: paths.clone(),
                        other_copy_good: false,
                    });
                }
            }
        }
        for p in &mut bad {
            p.other_copy_good = good > 0;
        }
        report.problems.extend(bad);
    }
    report.millis = started.elapsed().as_millis() as u64;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RemoteConfig;

    fn file_remote(dir: &std::path::Path) -> Remote {
        Remote::from_config(&RemoteConfig {
            name: "local".into(),
            url: format!("file://{}", dir.display()),
            ..Default::default()
        })
        .unwrap()
    }

    fn item(remote: &Remote, data: &[u8]) -> VerifyItem {
        let hash = blake3::hash(data);
        let chunk = 1000u64;
        let chunks: Vec<u8> = data
            .chunks(chunk as usize)
            .flat_map(|c| *blake3::hash(c).as_bytes())
            .collect();
        VerifyItem {
            hash,
            size: data.len() as u64,
            paths: vec!["docs/a.bin".into(), "docs/same.bin".into()],
            chunks: Some((chunk, chunks)),
            copies: vec![ObjectRow {
                id: 1,
                remote: "local".into(),
                key: remote.object_key(&hash),
                blake3: hash.to_hex().to_string(),
                size: data.len() as u64,
                storage_class: None,
                created_at_ns: 0,
                verified_at_ns: Some(0),
            }],
        }
    }

    #[tokio::test]
    async fn good_corrupt_and_missing_objects_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let remote = file_remote(dir.path());
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, &data).unwrap();
        let hash = blake3::hash(&data);
        remote
            .put_file(&src, data.len() as u64, &hash, &Default::default(), &|_| {})
            .await
            .unwrap();
        let remotes = BTreeMap::from([("local".to_string(), remote.clone())]);
        let it = item(&remote, &data);

        let report = run(std::slice::from_ref(&it), &remotes, None, &|_| {}).await;
        assert!(report.is_clean(), "{report:?}");
        assert_eq!((report.files, report.objects), (2, 1));
        assert_eq!(report.bytes_read, data.len() as u64);

        // Flip one byte in the third chunk of the stored object.
        let stored = dir.path().join(remote.object_key(&hash));
        let mut bytes = std::fs::read(&stored).unwrap();
        bytes[2500] ^= 0x40;
        std::fs::write(&stored, &bytes).unwrap();
        let report = run(std::slice::from_ref(&it), &remotes, None, &|_| {}).await;
        assert_eq!(report.problems.len(), 1, "{report:?}");
        let p = &report.problems[0];
        assert_eq!(p.kind, "corrupt");
        assert!(p.detail.contains("chunk 2"), "{}", p.detail);
        assert_eq!(p.paths, ["docs/a.bin", "docs/same.bin"]);
        assert!(!p.other_copy_good);

        std::fs::remove_file(&stored).unwrap();
        let report = run(std::slice::from_ref(&it), &remotes, None, &|_| {}).await;
        assert_eq!(report.problems[0].kind, "missing", "{report:?}");
    }

    #[tokio::test]
    async fn the_rate_limit_slows_reads_down() {
        let dir = tempfile::tempdir().unwrap();
        let remote = file_remote(dir.path());
        let data = vec![7u8; 4000];
        let src = dir.path().join("src.bin");
        std::fs::write(&src, &data).unwrap();
        let hash = blake3::hash(&data);
        remote
            .put_file(&src, 4000, &hash, &Default::default(), &|_| {})
            .await
            .unwrap();
        let remotes = BTreeMap::from([("local".to_string(), remote.clone())]);
        // 4000 bytes at 10,000 bytes/s: at least 0.4 s.
        let started = Instant::now();
        let report = run(&[item(&remote, &data)], &remotes, Some(10_000), &|_| {}).await;
        assert!(report.is_clean(), "{report:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(380),
            "{:?}",
            started.elapsed()
        );
    }
}
