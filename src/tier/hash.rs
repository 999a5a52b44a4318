//! Content hashing of local files: the whole-file blake3 (object identity)
//! and per-chunk blake3s (so a cold file can be read piecewise, every piece
//! verified, before its full recall finishes).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::layout::{HoleCheck, Holes};

/// Size of the independently verified chunks of a file.
pub const CHUNK_SIZE: u64 = 4 << 20;

/// Size of one read of a hash pass (the last one may be shorter).
const BLOCK: usize = 256 << 10;

/// Read buffers of one hash pass: at most this many [`BLOCK`]s exist at
/// once, whatever the file's size.
const BLOCKS: usize = 4;

/// The most memory one hash pass holds in buffers ([`BLOCKS`] × [`BLOCK`]):
/// what a caller reserves from its transfer budget before starting one.
pub const PASS_BUFFER: u64 = (BLOCK * BLOCKS) as u64;

/// blake3 of everything in `file` from offset 0, and the number of bytes
/// read. Reads with one fixed-size buffer.
pub fn hash_file(file: &File) -> io::Result<(blake3::Hash, u64)> {
    let mut whole = blake3::Hasher::new();
    let total = read_blocks(file, block_for(file), |data| {
        whole.update(data);
    })?;
    Ok((whole.finalize(), total))
}

/// Reads `file` from offset 0 to its end through one `block`-byte buffer,
/// handing each read to `each`. Returns the number of bytes read.
fn read_blocks(file: &File, block: usize, mut each: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut reader = file;
    reader.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; block];
    let mut total = 0u64;
    loop {
        let n = read_some(&mut reader, &mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        each(&buf[..n]);
        total += n as u64;
    }
}

/// The read size for `file`: [`BLOCK`], or less for a smaller file.
fn block_for(file: &File) -> usize {
    let len = file.metadata().map(|m| m.len()).unwrap_or(BLOCK as u64);
    len.clamp(4096, BLOCK as u64) as usize
}

/// One `read`, retried on `EINTR`; 0 at the end of the file.
fn read_some(reader: &mut &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The blake3 of every [`CHUNK_SIZE`] chunk of a stream of bytes.
struct ChunkHashes {
    chunk: blake3::Hasher,
    in_chunk: u64,
    hashes: Vec<u8>,
}

impl ChunkHashes {
    fn new() -> ChunkHashes {
        ChunkHashes {
            chunk: blake3::Hasher::new(),
            in_chunk: 0,
            hashes: Vec::new(),
        }
    }

    /// Feeds the next bytes of the stream.
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = data.len().min((CHUNK_SIZE - self.in_chunk) as usize);
            self.chunk.update(&data[..take]);
            self.in_chunk += take as u64;
            data = &data[take..];
            if self.in_chunk == CHUNK_SIZE {
                self.hashes
                    .extend_from_slice(self.chunk.finalize().as_bytes());
                self.chunk.reset();
                self.in_chunk = 0;
            }
        }
    }

    /// The hashes, 32 bytes each, the last (short) chunk included.
    fn finish(mut self) -> Vec<u8> {
        if self.in_chunk > 0 {
            self.hashes
                .extend_from_slice(self.chunk.finalize().as_bytes());
        }
        self.hashes
    }
}

/// Like [`hash_file`], plus the blake3 of every [`CHUNK_SIZE`] chunk,
/// concatenated (32 bytes each), and the file's `holes` (reported by the
/// file system before the pass) if every one of them read as zeros in this
/// same pass (else dense: see [`HoleCheck`]).
///
/// Every byte is hashed twice (whole file and chunk), so a file larger than
/// one read is hashed on two threads: this one reads and hashes the chunks,
/// a helper hashes the whole file from the same buffers, which go back and
/// forth (at most [`BLOCKS`] of them: [`PASS_BUFFER`] bytes).
pub fn hash_file_with_chunks(
    file: &File,
    holes: Holes,
) -> io::Result<(blake3::Hash, u64, Vec<u8>, Holes)> {
    let block = block_for(file);
    let mut check = HoleCheck::new(holes);
    if block < BLOCK {
        // Small file: one read, one thread.
        let mut whole = blake3::Hasher::new();
        let mut chunks = ChunkHashes::new();
        let total = read_blocks(file, block, |data| {
            whole.update(data);
            chunks.update(data);
            check.update(data);
        })?;
        return Ok((
            whole.finalize(),
            total,
            chunks.finish(),
            check.finish(total),
        ));
    }
    let mut reader = file;
    reader.seek(SeekFrom::Start(0))?;
    std::thread::scope(|s| {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(BLOCKS);
        let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BLOCKS);
        let helper = s.spawn(move || {
            let mut whole = blake3::Hasher::new();
            for (buf, n) in full_rx {
                whole.update(&buf[..n]);
                // Fails only once the reader stopped: then nothing needs it.
                let _ = free_tx.send(buf);
            }
            whole.finalize()
        });
        let mut chunks = ChunkHashes::new();
        let mut made = 0;
        let mut total = 0u64;
        let read = loop {
            let mut buf = if made < BLOCKS {
                made += 1;
                vec![0u8; BLOCK]
            } else {
                match free_rx.recv() {
                    Ok(buf) => buf,
                    Err(_) => break Err(io::Error::other("hash helper thread stopped")),
                }
            };
            let n = match read_some(&mut reader, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            chunks.update(&buf[..n]);
            check.update(&buf[..n]);
            total += n as u64;
            if full_tx.send((buf, n)).is_err() {
                break Err(io::Error::other("hash helper thread stopped"));
            }
        };
        drop(full_tx);
        let whole = helper
            .join()
            .map_err(|_| io::Error::other("hash helper thread panicked"))?;
        read.map(|()| (whole, total, chunks.finish(), check.finish(total)))
    })
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
        let (whole, n, chunks, _) = hash_file_with_chunks(&f, Holes::dense()).unwrap();
        assert_eq!(whole, blake3::hash(&data));
        assert_eq!(n, data.len() as u64);
        assert_eq!(chunks.len(), 3 * 32);
        let c = CHUNK_SIZE as usize;
        assert!(chunk_matches(&chunks, 0, &data[..c]));
        assert!(chunk_matches(&chunks, 2, &data[2 * c..]));
        assert!(!chunk_matches(&chunks, 1, &data[..c]));
        assert!(!chunk_matches(&chunks, 3, &data[..5]));
        let (alone, n) = hash_file(&f).unwrap();
        assert_eq!((alone, n), (whole, data.len() as u64));
    }

    #[test]
    fn small_files_hash_the_same_way() {
        for len in [0usize, 1, 4095, 4097, BLOCK - 1] {
            let mut f = tempfile::tempfile().unwrap();
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            f.write_all(&data).unwrap();
            let (whole, n, chunks, _) = hash_file_with_chunks(&f, Holes::dense()).unwrap();
            assert_eq!((whole, n), (blake3::hash(&data), len as u64));
            let want = if len == 0 { 0 } else { 32 };
            assert_eq!(chunks.len(), want, "{len}");
            if len > 0 {
                assert!(chunk_matches(&chunks, 0, &data));
            }
        }
    }
}
