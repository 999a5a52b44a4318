//! Reading a cold file piecewise: where its chunks are and how one chunk is
//! fetched and verified.

use std::path::{Path, PathBuf};

use crate::catalog::path_key;
use crate::catalog::tiering::{self, ChunkRow, ObjectRow};
use crate::events::LedgerEntry;
use crate::tier::core::Core;
use crate::tier::stub::StubMarker;
use crate::tier::{TierError, hash, layout, watchdog};

/// Everything needed to read a cold file piecewise: its chunk hashes and
/// where copies of it live.
#[derive(Debug, Clone)]
pub struct StubSource {
    /// File, relative to the mount root.
    pub rel: PathBuf,
    /// blake3 of the whole content.
    pub hash: blake3::Hash,
    /// Size in bytes.
    pub size: u64,
    /// Chunk size the hashes were computed with.
    pub chunk_size: u64,
    pub(in crate::tier) chunks: Vec<u8>,
    /// Where the original file had holes (a recall leaves them holes).
    pub holes: layout::Holes,
    /// (remote, key, storage class) of every verified copy, in preference order.
    pub(in crate::tier) copies: Vec<(String, String, Option<String>)>,
}

impl StubSource {
    /// Number of chunks.
    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }
}

/// What the catalog knows about content `hash`: its chunks and objects.
pub(super) type Recorded = (Option<ChunkRow>, Vec<ObjectRow>);

/// Reads what the catalog records about the chunks and copies of `marker`'s
/// content (waits for the catalog: not for async callers).
pub(super) fn recorded(core: &Core, marker: &StubMarker) -> Result<Recorded, TierError> {
    let bytes = *marker.hash.as_bytes();
    Ok(core.catalog.exec_grouped("find chunks", move |c| {
        Ok((
            tiering::chunks_for(c, &bytes)?,
            tiering::objects_for(c, &bytes)?,
        ))
    })?)
}

/// [`recorded`] for async callers.
pub(super) async fn recorded_async(
    core: &Core,
    marker: &StubMarker,
) -> Result<Recorded, TierError> {
    let bytes = *marker.hash.as_bytes();
    Ok(core
        .catalog
        .exec_grouped_async("find chunks", move |c| {
            Ok((
                tiering::chunks_for(c, &bytes)?,
                tiering::objects_for(c, &bytes)?,
            ))
        })
        .await?)
}

/// How to read the stub at `rel` piecewise given what the catalog records,
/// or `None` if no chunk hashes are recorded (then only a full recall can
/// serve it).
pub(super) fn stub_source(
    core: &Core,
    rel: &Path,
    marker: &StubMarker,
    (chunks, objects): Recorded,
) -> Option<StubSource> {
    let ChunkRow {
        chunk_size,
        hashes: chunks,
        holes,
    } = chunks?;
    let holes = layout::Holes::decode(holes.as_deref(), marker.size);
    if chunk_size == 0 || chunks.len() as u64 != marker.size.div_ceil(chunk_size) * 32 {
        return None;
    }
    let copies = objects
        .into_iter()
        .filter(|o| o.verified_at_ns.is_some() && core.remotes.contains_key(&o.remote))
        .map(|o| (o.remote, o.key, o.storage_class))
        .collect();
    Some(StubSource {
        rel: rel.to_path_buf(),
        hash: marker.hash,
        size: marker.size,
        chunk_size,
        chunks,
        holes,
        copies,
    })
}

/// Chunk `index` of a cold file, fetched with a ranged GET and verified
/// against its recorded hash; tries each copy in turn. Never returns
/// unverified bytes.
pub(in crate::tier) async fn read_chunk(
    core: &Core,
    src: &StubSource,
    index: u64,
) -> Result<bytes::Bytes, TierError> {
    let start = index * src.chunk_size;
    let end = (start + src.chunk_size).min(src.size);
    let mut problems = Vec::new();
    let mut transient = !src.copies.is_empty();
    for (remote_name, key, class) in &src.copies {
        let Some(remote) = core.remotes.get(remote_name) else {
            continue;
        };
        let limit = remote.recall_timeout();
        let result = watchdog::within(limit, remote.get_range(key, start..end))
            .await
            .unwrap_or_else(|| Err(watchdog::timed_out(remote, key, limit)));
        if let Ok(data) = &result {
            // Billed whether or not the chunk verifies.
            core.bill(LedgerEntry {
                remote: remote_name.clone(),
                op: "get",
                requests: 1,
                bytes: data.len() as u64,
                storage_class: class.clone(),
                path: path_key(&src.rel),
                ..Default::default()
            });
        }
        match result {
            Ok(data) if hash::chunk_matches(&src.chunks, index as usize, &data) => {
                return Ok(data);
            }
            Ok(_) => {
                tracing::error!(path = %src.rel.display(), remote = %remote_name, key, chunk = index, "chunk failed verification");
                problems.push(format!(
                    "remote `{remote_name}`: object `{key}`: chunk {index} does not match its hash"
                ));
                transient = false;
            }
            Err(e) => {
                transient &= e.is_transient();
                problems.push(e.to_string());
            }
        }
    }
    if src.copies.is_empty() {
        problems.push("no verified copy is recorded".into());
    }
    Err(TierError::NoCopy {
        path: src.rel.clone(),
        detail: problems.join("; "),
        transient,
    })
}
