//! Content hashing of local files.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// blake3 of everything in `file` from offset 0, and the number of bytes read.
pub fn hash_file(file: &File) -> io::Result<(blake3::Hash, u64)> {
    let mut reader = file;
    reader.seek(SeekFrom::Start(0))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finalize(), total))
}
