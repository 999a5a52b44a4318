//! Content hashing of local files: the whole-file blake3 (object identity)
//! and per-chunk blake3s (so a cold file can be read piecewise, every piece
//! verified, before its full recall finishes).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Size of the independently verified chunks of a file.
pub const CHUNK_SIZE: u64 = 4 << 20;

/// blake3 of everything in `file` from offset 0, and the number of bytes read.
pub fn hash_file(file: &File) -> io::Result<(blake3::Hash, u64)> {
    hash_file_with_chunks(file).map(|(h, n, _)| (h, n))
}

/// Like [`hash_file`], plus the blake3 of every [`CHUNK_SIZE`] chunk,
/// concatenated (32 bytes each).
pub fn hash_file_with_chunks(file: &File) -> io::Result<(blake3::Hash, u64, Vec<u8>)> {
    let mut reader = file;
    reader.seek(SeekFrom::Start(0))?;
    let mut whole = blake3::Hasher::new();
    let mut chunk = blake3::Hasher::new();
    let mut in_chunk = 0u64;
    let mut chunks = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        whole.update(&buf[..n]);
        let mut rest = &buf[..n];
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
        total += n as u64;
    }
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
