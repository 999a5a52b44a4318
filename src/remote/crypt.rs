//! Client-side encryption of cold objects (opt-in per remote with
//! `encryption_key_file`), so the cloud provider cannot read them.
//!
//! # Format
//! An encrypted object is a 32-byte header followed by the file's 4 MiB
//! chunks ([`CHUNK`], the same chunks the engine hashes), each encrypted
//! separately with XChaCha20-Poly1305 and followed by its 16-byte tag:
//!
//! ```text
//! header: "tierfsE1" (8) | key id (16) | reserved, zero (8)
//! chunk i at 32 + i × (CHUNK + 16): ciphertext of plaintext chunk i | tag
//! ```
//!
//! So a ranged read of one plaintext chunk is one ranged GET of its
//! ciphertext chunk. The key id (a keyed hash of the key) makes a wrong key
//! a clear error rather than garbage.
//!
//! # Names and nonces
//! The object name must not reveal the plaintext's blake3 (anyone could
//! hash a known document and look for it), so it is a keyed blake3 of the
//! content hash under a key derived from the encryption key. The nonce of
//! chunk `i` is derived (keyed blake3) from that name and `i`: identical
//! content under one key gives identical objects (dedupe keeps working),
//! and different content never shares a nonce. Each chunk's associated data
//! is the header plus its index, so chunks cannot be moved or swapped.
//! Decryption failure is an error, never unverified bytes.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use futures::StreamExt;
use object_store::{GetOptions, ObjectStoreExt, PutPayload};

use super::{PutOptions, PutOutcome, Remote, RemoteError};

/// Plaintext chunk size (the engine's hashing chunk, `tier::hash::CHUNK_SIZE`).
pub const CHUNK: u64 = 4 << 20;
/// Authentication tag per chunk.
pub const TAG: u64 = 16;
/// Header length.
pub const HEADER: u64 = 32;
const MAGIC: &[u8; 8] = b"tierfsE1";
/// Length of an encryption key file.
pub const KEY_LEN: usize = 32;

/// Why an encryption key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("encryption key {path}: {source}")]
    Read {
        /// Key file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The key file is not 32 bytes, or others can read it.
    #[error("encryption key {path}: {message}")]
    Invalid {
        /// Key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A loaded encryption key.
#[derive(Clone)]
pub struct Crypt {
    aead: XChaCha20Poly1305,
    name_key: [u8; 32],
    nonce_key: [u8; 32],
    key_id: [u8; 16],
}

impl std::fmt::Debug for Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypt")
            .field("key_id", &hex(&self.key_id))
            .finish_non_exhaustive()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Crypt {
    /// A cipher for the 32-byte `key`.
    pub fn new(key: &[u8; KEY_LEN]) -> Crypt {
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&blake3::derive_key("tierfs 2026 encryption key id", key)[..16]);
        Crypt {
            aead: XChaCha20Poly1305::new(key.into()),
            name_key: blake3::derive_key("tierfs 2026 object name", key),
            nonce_key: blake3::derive_key("tierfs 2026 chunk nonce", key),
            key_id,
        }
    }

    /// Loads a key file: exactly 32 bytes, readable by its owner only.
    pub fn load(path: &Path) -> Result<Crypt, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "mode is {mode:04o}, so other users can read the key; run: chmod 600 {}",
                    path.display()
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| KeyError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "has {} bytes, expected {KEY_LEN} (create one with: tierctl keygen FILE)",
                bytes.len()
            ),
        })?;
        Ok(Crypt::new(&key))
    }

    /// The key id (hex), safe to show.
    pub fn key_id(&self) -> String {
        hex(&self.key_id)
    }

    /// The object name for content `hash` (hex of a keyed hash).
    pub fn object_name(&self, hash: &blake3::Hash) -> String {
        blake3::keyed_hash(&self.name_key, hash.as_bytes())
            .to_hex()
            .to_string()
    }

    /// Size of the encrypted object holding `plain` bytes.
    pub fn encrypted_size(plain: u64) -> u64 {
        HEADER + plain + plain.div_ceil(CHUNK) * TAG
    }

    /// The header every object written with this key starts with.
    pub fn header(&self) -> [u8; HEADER as usize] {
        let mut h = [0u8; HEADER as usize];
        h[..8].copy_from_slice(MAGIC);
        h[8..24].copy_from_slice(&self.key_id);
        h
    }

    /// Checks an object's header: ours, with this key.
    pub fn check_header(&self, h: &[u8]) -> Result<(), String> {
        if h.len() < HEADER as usize || &h[..8] != MAGIC {
            return Err("not a tierfs encrypted object (bad header)".into());
        }
        if h[8..24] != self.key_id {
            return Err(format!(
                "encrypted with a different key (key id {}, this remote's key is {})",
                hex(&h[8..24]),
                self.key_id()
            ));
        }
        Ok(())
    }

    /// Ciphertext byte range of plaintext chunk `index`, for content of
    /// `plain` bytes.
    pub fn chunk_range(index: u64, plain: u64) -> Range<u64> {
        let start = HEADER + index * (CHUNK + TAG);
        let len = (plain - (index * CHUNK).min(plain)).min(CHUNK);
        start..start + len + TAG
    }

    fn nonce(&self, name: &str, index: u64) -> XNonce {
        let mut h = blake3::Hasher::new_keyed(&self.nonce_key);
        h.update(name.as_bytes());
        h.update(&index.to_le_bytes());
        let out = h.finalize();
        *XNonce::from_slice(&out.as_bytes()[..24])
    }

    fn aad(&self, index: u64) -> [u8; HEADER as usize + 8] {
        let mut a = [0u8; HEADER as usize + 8];
        a[..HEADER as usize].copy_from_slice(&self.header());
        a[HEADER as usize..].copy_from_slice(&index.to_le_bytes());
        a
    }

    /// Encrypts plaintext chunk `index` of object `name` and appends
    /// ciphertext and tag to `out`.
    pub fn seal_chunk(&self, name: &str, index: u64, plain: &[u8], out: &mut BytesMut) {
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .aead
            .encrypt_in_place_detached(
                &self.nonce(name, index),
                &self.aad(index),
                &mut out[start..],
            )
            // Only fails for messages over 256 GiB; chunks are 4 MiB.
            .unwrap_or_default();
        out.extend_from_slice(&tag);
    }

    /// Decrypts and authenticates ciphertext chunk `index` (with its tag).
    pub fn open_chunk(&self, name: &str, index: u64, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < TAG as usize {
            return Err(format!("chunk {index} is shorter than its tag"));
        }
        let (body, tag) = sealed.split_at(sealed.len() - TAG as usize);
        let mut buf = body.to_vec();
        self.aead
            .decrypt_in_place_detached(
                &self.nonce(name, index),
                &self.aad(index),
                &mut buf,
                Tag::from_slice(tag),
            )
            .map_err(|_| {
                format!(
                    "chunk {index} does not decrypt (corrupt, or encrypted with a different key)"
                )
            })?;
        Ok(buf)
    }
}

impl Crypt {
    /// Encrypts a whole small object (e.g. a catalog backup) named `name`,
    /// in the same format as file objects.
    pub fn seal_all(&self, name: &str, plain: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(Crypt::encrypted_size(plain.len() as u64) as usize);
        out.extend_from_slice(&self.header());
        for (i, chunk) in plain.chunks(CHUNK as usize).enumerate() {
            self.seal_chunk(name, i as u64, chunk, &mut out);
        }
        out.freeze()
    }

    /// Decrypts what [`seal_all`](Self::seal_all) wrote.
    pub fn open_all(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        self.check_header(sealed)?;
        let mut out = Vec::with_capacity(sealed.len());
        for (i, chunk) in sealed[HEADER as usize..]
            .chunks((CHUNK + TAG) as usize)
            .enumerate()
        {
            out.extend_from_slice(&self.open_chunk(name, i as u64, chunk)?);
        }
        Ok(out)
    }
}

/// Creates a new random key file at `path` with mode 0600 (never overwrites).
pub fn generate_key_file(path: &Path) -> Result<String, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; KEY_LEN];
    let mut filled = 0;
    while filled < KEY_LEN {
        // SAFETY: writes at most KEY_LEN - filled bytes into `key[filled..]`.
        let n = unsafe { libc::getrandom(key[filled..].as_mut_ptr().cast(), KEY_LEN - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(KeyError::Read {
                path: path.to_path_buf(),
                source: e,
            });
        }
        filled += n as usize;
    }
    let write = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write)?;
    f.write_all(&key).map_err(write)?;
    f.sync_all().map_err(write)?;
    Ok(Crypt::new(&key).key_id())
}

/// The name part of an object key (after the last `/`).
fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

impl Remote {
    fn crypt_error(&self, key: &str, detail: String) -> RemoteError {
        RemoteError::Corrupt {
            remote: self.inner.name.clone(),
            key: key.to_string(),
            expected: "an object this remote's key decrypts".into(),
            got: detail,
        }
    }

    /// Encrypted upload of `path` (`size` plaintext bytes hashing to
    /// `expected`), read from `source` if given (else `path` is opened).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn put_file_encrypted(
        &self,
        crypt: &Crypt,
        path: &Path,
        source: Option<File>,
        size: u64,
        expected: &blake3::Hash,
        opts: &PutOptions,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PutOutcome, RemoteError> {
        let key = self.object_key(expected);
        let loc = self.location(&key, "PUT")?;
        let stored = Crypt::encrypted_size(size);
        let existing = if opts.assume_new {
            Ok(None)
        } else {
            self.head(&key).await
        };
        match existing {
            Ok(Some(info)) if info.size == stored => {
                progress(size);
                return Ok(PutOutcome {
                    key,
                    size: stored,
                    e_tag: info.e_tag,
                    already_present: true,
                });
            }
            // As for plain uploads: a 403 on HEAD says nothing; the PUT will.
            Ok(_) | Err(RemoteError::PermissionDenied { .. }) => {}
            Err(e) => return Err(e),
        }
        let name = name_of(&key).to_string();
        let file = Arc::new(match source {
            Some(f) => f,
            None => File::open(path).map_err(|e| super::io_error(self, "open", path, &e))?,
        });
        let upload = self
            .inner
            .store
            .put_multipart(&loc)
            .await
            .map_err(|e| self.map_err("PUT (start multipart)", &key, e))?;
        let mut guard = super::abort::AbortOnDrop::new(upload, &self.inner.aborts);
        let part_size = super::transfer::MIN_PART_SIZE as usize;
        let result = async {
            let mut hasher = Box::new(blake3::Hasher::new());
            let mut part = BytesMut::with_capacity(part_size + (CHUNK + TAG) as usize);
            part.extend_from_slice(&crypt.header());
            let mut buf = vec![0u8; CHUNK as usize];
            let mut offset = 0u64;
            let mut index = 0u64;
            while offset < size {
                let len = (size - offset).min(CHUNK) as usize;
                let (c, n, f) = (crypt.clone(), name.clone(), Arc::clone(&file));
                let (read, b, h, p) = tokio::task::spawn_blocking(move || {
                    let read = f.read_exact_at(&mut buf[..len], offset);
                    if read.is_ok() {
                        hasher.update(&buf[..len]);
                        c.seal_chunk(&n, index, &buf[..len], &mut part);
                    }
                    (read, buf, hasher, part)
                })
                .await
                .map_err(|e| self.join_error("encrypt", path, e))?;
                read.map_err(|_| self.source_changed(path))?;
                (buf, hasher, part) = (b, h, p);
                offset += len as u64;
                index += 1;
                if part.len() >= part_size {
                    let data = part.split().freeze();
                    guard
                        .put_part(PutPayload::from(data))
                        .await
                        .map_err(|e| self.map_err("PUT (part)", &key, e))?;
                    progress(offset);
                }
            }
            if hasher.finalize() != *expected || file.metadata().map(|m| m.len()).ok() != Some(size)
            {
                return Err(self.source_changed(path));
            }
            if !part.is_empty() {
                guard
                    .put_part(PutPayload::from(part.split().freeze()))
                    .await
                    .map_err(|e| self.map_err("PUT (part)", &key, e))?;
            }
            guard
                .complete()
                .await
                .map_err(|e| self.map_err("PUT (complete multipart)", &key, e))
        }
        .await;
        match result {
            Ok(put) => {
                progress(size);
                self.make_private(&loc).await;
                Ok(PutOutcome {
                    key,
                    size: stored,
                    e_tag: put.e_tag,
                    already_present: false,
                })
            }
            Err(e) => {
                let _ = guard.abort().await;
                Err(e)
            }
        }
    }

    /// Streams the whole encrypted object, decrypting chunk by chunk (on
    /// the blocking pool: the cipher is CPU work), and hands each
    /// authenticated plaintext chunk to `each` (offset, bytes); then checks
    /// size and blake3 of the plaintext.
    pub(super) async fn read_encrypted(
        &self,
        crypt: &Crypt,
        key: &str,
        size: u64,
        expected: &blake3::Hash,
        mut each: impl FnMut(u64, &[u8]) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        let loc = self.location(key, "GET")?;
        let res = self
            .inner
            .store
            .get_opts(&loc, GetOptions::default())
            .await
            .map_err(|e| self.map_err("GET", key, e))?;
        let stored = Crypt::encrypted_size(size);
        if res.meta.size != stored {
            return Err(self.corrupt(
                key,
                size,
                expected,
                format!("stored size {}", res.meta.size),
            ));
        }
        let name = name_of(key).to_string();
        let mut stream = res.into_stream();
        let mut buf = BytesMut::new();
        let mut header_ok = false;
        let mut ended = false;
        let mut index = 0u64;
        let mut offset = 0u64;
        let mut hasher = Box::new(blake3::Hasher::new());
        loop {
            if !ended {
                match stream.next().await {
                    Some(chunk) => {
                        buf.extend_from_slice(&chunk.map_err(|e| self.map_err("GET", key, e))?)
                    }
                    None => ended = true,
                }
            }
            if !header_ok {
                if buf.len() < HEADER as usize {
                    if ended {
                        return Err(self.crypt_error(key, "no header".into()));
                    }
                    continue;
                }
                crypt
                    .check_header(&buf[..HEADER as usize])
                    .map_err(|d| self.crypt_error(key, d))?;
                let _ = buf.split_to(HEADER as usize);
                header_ok = true;
            }
            while offset < size {
                let want = ((size - offset).min(CHUNK) + TAG) as usize;
                if buf.len() < want {
                    break;
                }
                let sealed = buf.split_to(want).freeze();
                let (c, n) = (crypt.clone(), name.clone());
                let (plain, h) = tokio::task::spawn_blocking(move || {
                    let plain = c.open_chunk(&n, index, &sealed)?;
                    hasher.update(&plain);
                    Ok::<_, String>((plain, hasher))
                })
                .await
                .map_err(|e| self.crypt_error(key, format!("decryption task failed: {e}")))?
                .map_err(|d| self.crypt_error(key, d))?;
                hasher = h;
                each(offset, &plain)?;
                offset += plain.len() as u64;
                index += 1;
            }
            if ended {
                break;
            }
        }
        self.check_content(key, size, expected, offset, &hasher.finalize())
    }

    /// Plaintext bytes `range` of an encrypted object of `size` bytes whose
    /// range starts on a chunk boundary (as chunk reads do); otherwise the
    /// covering chunks are fetched and trimmed.
    pub(super) async fn get_range_encrypted(
        &self,
        crypt: &Crypt,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, RemoteError> {
        let first = range.start / CHUNK;
        let last = (range.end - 1) / CHUNK;
        // The object's plaintext size is not known here; a chunk's
        // ciphertext length tells it (a short chunk is the last one).
        let name = name_of(key).to_string();
        let mut out = BytesMut::new();
        for index in first..=last {
            let start = HEADER + index * (CHUNK + TAG);
            let want_end = range.end.min((index + 1) * CHUNK) - index * CHUNK;
            let sealed = self
                .get_range_raw(key, start..start + want_end + TAG)
                .await?;
            let (c, n) = (crypt.clone(), name.clone());
            let plain = tokio::task::spawn_blocking(move || c.open_chunk(&n, index, &sealed))
                .await
                .map_err(|e| self.crypt_error(key, format!("decryption task failed: {e}")))?
                .map_err(|d| self.crypt_error(key, d))?;
            let from = if index == first {
                (range.start - index * CHUNK) as usize
            } else {
                0
            };
            out.extend_from_slice(&plain[from..]);
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypt(seed: u8) -> Crypt {
        Crypt::new(&[seed; KEY_LEN])
    }

    fn seal_all(c: &Crypt, name: &str, plain: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.extend_from_slice(&c.header());
        for (i, chunk) in plain.chunks(CHUNK as usize).enumerate() {
            c.seal_chunk(name, i as u64, chunk, &mut out);
        }
        out.to_vec()
    }

    #[test]
    fn chunks_round_trip_and_ranges_are_exact() {
        let c = crypt(1);
        let plain: Vec<u8> = (0..(CHUNK * 2 + 1000)).map(|i| (i % 251) as u8).collect();
        let sealed = seal_all(&c, "n", &plain);
        assert_eq!(
            sealed.len() as u64,
            Crypt::encrypted_size(plain.len() as u64)
        );
        c.check_header(&sealed).unwrap();
        for i in 0..3u64 {
            let r = Crypt::chunk_range(i, plain.len() as u64);
            let got = c
                .open_chunk("n", i, &sealed[r.start as usize..r.end as usize])
                .unwrap();
            let p0 = (i * CHUNK) as usize;
            let p1 = (p0 + CHUNK as usize).min(plain.len());
            assert_eq!(got, plain[p0..p1]);
        }
        // The plaintext does not appear in the ciphertext.
        assert!(!sealed.windows(64).any(|w| w == &plain[1000..1064]));
        assert_eq!(Crypt::encrypted_size(0), HEADER);
    }

    #[test]
    fn tampering_swapping_and_wrong_keys_fail() {
        let c = crypt(1);
        let plain = vec![7u8; (CHUNK + 10) as usize];
        let mut sealed = seal_all(&c, "n", &plain);
        let r0 = Crypt::chunk_range(0, plain.len() as u64);
        let r1 = Crypt::chunk_range(1, plain.len() as u64);
        // Another chunk's bytes at this index do not authenticate.
        let e = c
            .open_chunk("n", 0, &sealed[r1.start as usize..r1.end as usize])
            .unwrap_err();
        assert!(e.contains("does not decrypt"), "{e}");
        // Nor under another object's name.
        assert!(
            c.open_chunk("m", 0, &sealed[r0.start as usize..r0.end as usize])
                .is_err()
        );
        sealed[r0.start as usize + 5] ^= 1;
        assert!(
            c.open_chunk("n", 0, &sealed[r0.start as usize..r0.end as usize])
                .is_err()
        );
        let other = crypt(2);
        let e = other.check_header(&sealed).unwrap_err();
        assert!(e.contains("different key"), "{e}");
        assert!(
            other
                .open_chunk("n", 1, &sealed[r1.start as usize..r1.end as usize])
                .is_err()
        );
    }

    #[test]
    fn names_hide_the_content_hash_and_dedupe_within_a_key() {
        let h = blake3::hash(b"report");
        let (a, b) = (crypt(1), crypt(2));
        assert_eq!(a.object_name(&h), crypt(1).object_name(&h));
        assert_ne!(a.object_name(&h), b.object_name(&h));
        assert_ne!(a.object_name(&h), h.to_hex().to_string());
        // Identical content under one key: identical ciphertext.
        assert_eq!(seal_all(&a, "x", b"same"), seal_all(&a, "x", b"same"));
    }

    #[test]
    fn small_objects_round_trip_whole() {
        let c = crypt(3);
        let data: Vec<u8> = (0..(CHUNK + 77)).map(|i| (i % 13) as u8).collect();
        let sealed = c.seal_all("backup", &data);
        assert_eq!(c.open_all("backup", &sealed).unwrap(), data);
        assert!(c.open_all("other", &sealed).is_err());
        assert!(crypt(4).open_all("backup", &sealed).is_err());
        assert_eq!(c.open_all("e", &c.seal_all("e", b"")).unwrap(), b"");
    }

    #[test]
    fn key_files_are_created_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let id = generate_key_file(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(Crypt::load(&p).unwrap().key_id(), id);
        assert!(generate_key_file(&p).is_err(), "never overwrites");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Crypt::load(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let short = dir.path().join("short");
        std::fs::write(&short, b"abc").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Crypt::load(&short).unwrap_err().to_string();
        assert!(e.contains("3 bytes, expected 32"), "{e}");
    }
}
