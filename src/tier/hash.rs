//! Content hashing of local files: the whole-file blake3 (object identity)
//! and per-chunk blake3s (so a cold file can be read piecewise, every piece
//! verified, before its full recall finishes).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Size of the independently verified chunks of a file.
pub const CHUNK_SIZE: u64 = 4 << 20;

/// blake3 of everything in `file` from offset 0, and the number of bytes read.
pub fn hash_file(file: &File) -> io::Result<(blake3::Hash, u64)> {
    let mut whole = blake3::Hasher::new();
    let total = read_all(file, |data| {
        whole.update(data);
    })?;
    Ok((whole.finalize(), total))
}

/// Feeds everything in `file` from offset 0 to `eat`, in blocks of up to
/// 1 MiB (no bigger than the file). Returns the number of bytes read.
fn read_all(file: &File, mut eat: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut reader = file;
    reader.seek(SeekFrom::Start(0))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(MAX_BLOCK);
    let mut buf = vec![0u8; len.clamp(4096, MAX_BLOCK) as usize];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        eat(&buf[..n]);
        total += n as u64;
    }
    Ok(total)
}

/// Largest read of [`read_all`].
const MAX_BLOCK: u64 = 1 << 20;

/// Like [`hash_file`], plus the blake3 of every [`CHUNK_SIZE`] chunk,
/// concatenated (32 bytes each).
pub fn hash_file_with_chunks(file: &File) -> io::Result<(blake3::Hash, u64, Vec<u8>)> {
    let mut whole = blake3::Hasher::new();
    let mut chunk = blake3::Hasher::new();
    let mut in_chunk = 0u64;
    let mut chunks = Vec::new();
    let total = read_all(file, |data| {
        whole.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let take = rest.len().min((CHUNK_SIZE - in_chunk) as usize);
            chunk.update(&rest[..take]);
            in_chunk += take as u64;
            rest = &rest[take..];
            if in_chunk == CHUNK_SIZE {
                chunks.extend_from_slice(chunk.finalize().as_bytes());
                chunk.reset();
                in_chunk = 0;
            }
        }
    })?;
    if in_chunk > 0 {
        chunks.extend_from_slice(chunk.finalize().as_bytes());
    }
    Ok((whole.finalize(), total, chunks))
}

/// Whether `data`, the chunk at `index`, matches its recorded hash.
pub fn chunk_matches(chunks: &[u8], index: usize, data: &[u8]) -> bool {
    chunks
        .get(index * 32..index * 32 + 32)
        .is_some_and(|want| blake3::hash(data).as_bytes() == want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn chunk_hashes_cover_the_file() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(CHUNK_SIZE * 2 + 5)).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let (whole, n, chunks) = hash_file_with_chunks(&f).unwrap();
        assert_eq!(whole, blake3::hash(&data));
        assert_eq!(n, data.len() as u64);
        assert_eq!(chunks.len(), 3 * 32);
        let c = CHUNK_SIZE as usize;
        assert!(chunk_matches(&chunks, 0, &data[..c]));
        assert!(chunk_matches(&chunks, 2, &data[2 * c..]));
        assert!(!chunk_matches(&chunks, 1, &data[..c]));
        assert!(!chunk_matches(&chunks, 3, &data[..5]));
    }
}
