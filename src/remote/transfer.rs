//! Moving bytes: uploads ([`Remote::put_file`]), whole-object checks
//! ([`Remote::verify`]), ranged reads and downloads into a local file.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStoreExt, PutMultipartOptions, PutPayload,
};
use tokio::task::JoinSet;

use super::abort::AbortOnDrop;
use super::backend::Backend;
use super::buffers::PoolBuf;

use super::{
    META_BLAKE3, META_SIZE, ObjectInfo, PutOptions, PutOutcome, Remote, RemoteError, io_error,
};

const MIB: u64 = 1 << 20;
/// Smallest part size used (S3's minimum is 5 MiB; 8 MiB keeps the request
/// count reasonable).
pub const MIN_PART_SIZE: u64 = 8 * MIB;
/// S3, GCS (XML API) and B2 allow at most 10,000 parts per upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest part.
const MAX_PART_SIZE: u64 = 5 << 30;
/// Large objects are verified in ranged GETs of this size.
const VERIFY_RANGE: u64 = 8 << 20;
/// Downloads are written to the destination in blocks of this size.
const WRITE_BLOCK: usize = 4 << 20;

/// The part size for a `size`-byte upload: the requested size raised to at
/// least [`MIN_PART_SIZE`] and to what keeps it within [`MAX_PARTS`] parts,
/// rounded up to a whole MiB.
pub fn part_size_for(size: u64, requested: Option<u64>) -> u64 {
    let want = requested.unwrap_or(MIN_PART_SIZE).max(MIN_PART_SIZE);
    let need = size.div_ceil(MAX_PARTS);
    want.max(need).next_multiple_of(MIB).min(MAX_PART_SIZE)
}

impl Remote {
    /// Uploads the file at `path` (`size` bytes, blake3 `expected`, both
    /// computed by the caller beforehand) to [`Remote::object_key`]`(expected)`.
    ///
    /// If an object of that size already exists nothing is sent
    /// (`already_present`). Files larger than one part go up as a multipart
    /// upload with up to `concurrency` parts in flight (memory: about
    /// `(concurrency + 1) × part size`); any failure aborts it. The bytes are
    /// hashed as they are read; if they don't hash to `expected` (the file
    /// changed) the upload is abandoned and [`RemoteError::SourceChanged`]
    /// returned, leaving nothing behind.
    ///
    /// `progress` is called with the cumulative number of bytes the store
    /// has acknowledged (after each part, and `size` at the end).
    pub async fn put_file(
        &self,
        path: &Path,
        size: u64,
        expected: &blake3::Hash,
        opts: &PutOptions,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PutOutcome, RemoteError> {
        self.put_file_from(path, None, size, expected, opts, progress)
            .await
    }

    /// [`Remote::put_file`] reading from `file`, already open (the tier
    /// engine opens files beneath the hot dir without following symlinks;
    /// opening `path` again could reach another file). `path` only names it
    /// in messages.
    pub async fn put_open_file(
        &self,
        path: &Path,
        file: File,
        size: u64,
        expected: &blake3::Hash,
        opts: &PutOptions,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PutOutcome, RemoteError> {
        self.put_file_from(path, Some(file), size, expected, opts, progress)
            .await
    }

    async fn put_file_from(
        &self,
        path: &Path,
        source: Option<File>,
        size: u64,
        expected: &blake3::Hash,
        opts: &PutOptions,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PutOutcome, RemoteError> {
        if let Some(crypt) = &self.inner.crypt {
            return self
                .put_file_encrypted(crypt, path, source, size, expected, opts, progress)
                .await;
        }
        let key = self.object_key(expected);
        let loc = self.location(&key, "PUT")?;

        let existing = if opts.assume_new {
            Ok(None)
        } else {
            self.head(&key).await
        };
        match existing {
            Ok(Some(info)) if info.size == size => {
                progress(size);
                return Ok(PutOutcome {
                    key,
                    size,
                    e_tag: info.e_tag,
                    already_present: true,
                });
            }
            Ok(_) => {}
            // A 403 on HEAD has no body, so it can't say whether the key is
            // bad or merely not allowed to read (write-only keys exist).
            // Upload anyway: the PUT's answer is precise.
            Err(RemoteError::PermissionDenied { .. }) => {}
            Err(e) => return Err(e),
        }

        let file = {
            let p = path.to_path_buf();
            tokio::task::spawn_blocking(move || {
                let f = match source {
                    Some(f) => f,
                    None => File::open(&p)?,
                };
                Ok((f.metadata()?, f))
            })
            .await
            .map_err(|e| self.join_error("open", path, e))?
            .map_err(|e: std::io::Error| io_error(self, "open", path, &e))?
        };
        let (meta, file) = file;
        if meta.len() != size {
            return Err(self.source_changed(path));
        }
        let file = Arc::new(file);

        let part = part_size_for(size, opts.part_size.or(self.inner.part_size));
        let concurrency = opts
            .concurrency
            .unwrap_or(self.inner.max_concurrency)
            .clamp(1, 256);
        let attributes = self.put_attributes(size, expected, opts);

        let e_tag = if size <= part {
            self.put_single(&key, &loc, path, &file, size, expected, attributes)
                .await?
        } else {
            self.put_multipart(
                &key,
                &loc,
                path,
                &file,
                size,
                expected,
                part,
                concurrency,
                attributes,
                progress,
            )
            .await?
        };
        progress(size);
        self.make_private(&loc).await;
        Ok(PutOutcome {
            key,
            size,
            e_tag,
            already_present: false,
        })
    }

    /// How many PUT-class requests [`Remote::put_file`] makes to send a
    /// `size`-byte file with `opts`: 1 for a single PUT, or parts + 2 for a
    /// multipart upload (create, each part, complete). The HEAD it sends
    /// first is a GET-class request and not counted here.
    pub fn put_requests(&self, size: u64, opts: &PutOptions) -> u64 {
        let part = part_size_for(size, opts.part_size.or(self.inner.part_size));
        if size <= part {
            1
        } else {
            size.div_ceil(part) + 2
        }
    }

    pub(super) fn put_attributes(
        &self,
        size: u64,
        hash: &blake3::Hash,
        opts: &PutOptions,
    ) -> Attributes {
        let mut attrs = Attributes::new();
        if !self.takes_attributes() {
            return attrs;
        }
        attrs.insert(
            Attribute::Metadata(META_BLAKE3.into()),
            hash.to_hex().to_string().into(),
        );
        attrs.insert(
            Attribute::Metadata(META_SIZE.into()),
            size.to_string().into(),
        );
        if let Some(class) = self.effective_storage_class(opts) {
            attrs.insert(Attribute::StorageClass, class.into());
        }
        attrs
    }

    pub(super) fn source_changed(&self, path: &Path) -> RemoteError {
        RemoteError::SourceChanged {
            remote: self.inner.name.clone(),
            path: path.to_path_buf(),
        }
    }

    pub(super) fn join_error(
        &self,
        op: &str,
        path: &Path,
        e: tokio::task::JoinError,
    ) -> RemoteError {
        RemoteError::Other {
            remote: self.inner.name.clone(),
            op: format!("{op} {}", path.display()),
            detail: format!("worker task failed: {e}"),
        }
    }

    /// Reads `len` bytes at `offset`, feeding them to `hasher`. A short
    /// read means the file shrank: [`RemoteError::SourceChanged`].
    async fn read_part(
        &self,
        path: &Path,
        file: &Arc<File>,
        offset: u64,
        len: u64,
        mut hasher: Box<blake3::Hasher>,
    ) -> Result<(Bytes, Box<blake3::Hasher>), RemoteError> {
        let f = Arc::clone(file);
        let mut buf = self.inner.buffers.take(len as usize);
        let res = tokio::task::spawn_blocking(move || {
            buf.resize(len as usize, 0);
            f.read_exact_at(&mut buf, offset)?;
            hasher.update(&buf);
            Ok::<_, std::io::Error>((buf.into_bytes(), hasher))
        })
        .await
        .map_err(|e| self.join_error("read", path, e))?;
        match res {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.source_changed(path))
            }
            Err(e) => Err(io_error(self, "read", path, &e)),
        }
    }

    /// The file's length is still `size`.
    async fn check_len(&self, path: &Path, file: &Arc<File>, size: u64) -> Result<(), RemoteError> {
        let f = Arc::clone(file);
        let len = tokio::task::spawn_blocking(move || f.metadata().map(|m| m.len()))
            .await
            .map_err(|e| self.join_error("stat", path, e))?
            .map_err(|e| io_error(self, "stat", path, &e))?;
        if len != size {
            return Err(self.source_changed(path));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_single(
        &self,
        key: &str,
        loc: &ObjPath,
        path: &Path,
        file: &Arc<File>,
        size: u64,
        expected: &blake3::Hash,
        attributes: Attributes,
    ) -> Result<Option<String>, RemoteError> {
        let _buffer = self.reserve_upload_buffer(size).await;
        let (bytes, hasher) = self
            .read_part(path, file, 0, size, Box::new(blake3::Hasher::new()))
            .await?;
        if hasher.finalize() != *expected {
            return Err(self.source_changed(path));
        }
        self.check_len(path, file, size).await?;
        let opts = object_store::PutOptions {
            attributes,
            ..Default::default()
        };
        let res = self
            .inner
            .store
            .put_opts(loc, PutPayload::from(bytes), opts)
            .await
            .map_err(|e| self.map_err("PUT", key, e))?;
        Ok(res.e_tag)
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_multipart(
        &self,
        key: &str,
        loc: &ObjPath,
        path: &Path,
        file: &Arc<File>,
        size: u64,
        expected: &blake3::Hash,
        part: u64,
        concurrency: usize,
        attributes: Attributes,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Option<String>, RemoteError> {
        let opts = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let upload = self
            .inner
            .store
            .put_multipart_opts(loc, opts)
            .await
            .map_err(|e| self.map_err("PUT (start multipart)", key, e))?;
        let mut guard = AbortOnDrop::new(upload, &self.inner.aborts);
        let mut parts: JoinSet<Result<u64, object_store::Error>> = JoinSet::new();

        let result = async {
            let mut hasher = Box::new(blake3::Hasher::new());
            let mut offset = 0u64;
            let mut done = 0u64;
            while offset < size {
                while parts.len() >= concurrency {
                    done += self.join_part(key, path, &mut parts).await?;
                    progress(done);
                }
                let len = part.min(size - offset);
                let buffer = self.reserve_upload_buffer(len).await;
                let (bytes, h) = self.read_part(path, file, offset, len, hasher).await?;
                hasher = h;
                let fut = guard.put_part(PutPayload::from(bytes));
                parts.spawn(async move {
                    let sent = fut.await.map(|()| len);
                    drop(buffer);
                    sent
                });
                offset += len;
            }
            if hasher.finalize() != *expected {
                return Err(self.source_changed(path));
            }
            self.check_len(path, file, size).await?;
            while !parts.is_empty() {
                done += self.join_part(key, path, &mut parts).await?;
                progress(done);
            }
            guard
                .complete()
                .await
                .map_err(|e| self.map_err("PUT (complete multipart)", key, e))
        }
        .await;

        match result {
            Ok(put) => Ok(put.e_tag),
            Err(e) => {
                // Stop the parts still in flight, then abort the upload so
                // the store frees them.
                parts.abort_all();
                while parts.join_next().await.is_some() {}
                if let Err(abort_err) = guard.abort().await {
                    tracing::warn!(
                        remote = %self.inner.name,
                        key,
                        "aborting multipart upload failed: {}",
                        self.redact(abort_err.to_string())
                    );
                }
                Err(e)
            }
        }
    }

    async fn join_part(
        &self,
        key: &str,
        path: &Path,
        parts: &mut JoinSet<Result<u64, object_store::Error>>,
    ) -> Result<u64, RemoteError> {
        match parts.join_next().await {
            Some(Ok(Ok(n))) => Ok(n),
            Some(Ok(Err(e))) => Err(self.map_err("PUT (part)", key, e)),
            Some(Err(e)) => Err(self.join_error("upload part of", path, e)),
            None => Ok(0),
        }
    }

    /// Reads the whole object and checks that it has `size` bytes hashing
    /// to `expected`; otherwise [`RemoteError::Corrupt`]. Objects larger
    /// than a few parts are read as `max_concurrency` ranged GETs at once
    /// (hashed in order), within the remote's transfer buffer budget.
    pub async fn verify(
        &self,
        key: &str,
        size: u64,
        expected: &blake3::Hash,
    ) -> Result<(), RemoteError> {
        if let Some(crypt) = &self.inner.crypt {
            return self
                .read_encrypted(crypt, key, size, expected, |_, _| Ok(()))
                .await;
        }
        if self.inner.max_concurrency > 1 && size > 2 * VERIFY_RANGE {
            return self.verify_ranged(key, size, expected).await;
        }
        let loc = self.location(key, "GET")?;
        let res = self
            .inner
            .store
            .get_opts(&loc, GetOptions::default())
            .await
            .map_err(|e| self.map_err("GET", key, e))?;
        self.inner.health.record_up();
        if res.meta.size != size {
            return Err(self.corrupt(key, size, expected, format!("size {}", res.meta.size)));
        }
        let mut stream = res.into_stream();
        let mut hasher = blake3::Hasher::new();
        let mut got = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.map_err("GET", key, e))?;
            got += chunk.len() as u64;
            if got > size {
                return Err(self.corrupt(key, size, expected, format!("more than {size} bytes")));
            }
            hasher.update(&chunk);
        }
        self.check_content(key, size, expected, got, &hasher.finalize())
    }

    /// [`Remote::verify`] of a large object: HEAD for the size, then the
    /// object in [`VERIFY_RANGE`] pieces, several in flight, hashed in order.
    async fn verify_ranged(
        &self,
        key: &str,
        size: u64,
        expected: &blake3::Hash,
    ) -> Result<(), RemoteError> {
        match self.head(key).await? {
            None => return Err(self.corrupt(key, size, expected, "no object".into())),
            Some(info) if info.size != size => {
                return Err(self.corrupt(key, size, expected, format!("size {}", info.size)));
            }
            Some(_) => {}
        }
        let ranges = (0..size)
            .step_by(VERIFY_RANGE as usize)
            .map(|start| start..(start + VERIFY_RANGE).min(size));
        let mut pieces = futures::stream::iter(ranges.map(|range| async move {
            let buffer = self.reserve_upload_buffer(range.end - range.start).await;
            self.get_range_pooled(key, range)
                .await
                .map(|bytes| (bytes, buffer))
        }))
        .buffered(self.inner.max_concurrency);
        let mut hasher = blake3::Hasher::new();
        let mut got = 0u64;
        while let Some(piece) = pieces.next().await {
            let (bytes, _buffer) = piece?;
            got += bytes.len() as u64;
            hasher.update(&bytes);
        }
        self.check_content(key, size, expected, got, &hasher.finalize())
    }

    /// Bytes `range` of an object, streamed into a buffer from the pool
    /// (`file://` and encrypted remotes: read whole, then copied in).
    async fn get_range_pooled(&self, key: &str, range: Range<u64>) -> Result<PoolBuf, RemoteError> {
        let stream = if self.reads_ranges_whole() {
            None
        } else {
            self.stream_range(key, range.clone()).await?
        };
        let Some(mut stream) = stream else {
            let bytes = self.get_range_raw(key, range).await?;
            let mut buf = self.inner.buffers.take(bytes.len());
            buf.extend_from_slice(&bytes);
            return Ok(buf);
        };
        let want = range.end - range.start;
        let mut buf = self.inner.buffers.take(want as usize);
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        let got = buf.len() as u64;
        if got != want {
            return Err(self.short_or_long(key, &range, got));
        }
        Ok(buf)
    }

    pub(super) fn corrupt(
        &self,
        key: &str,
        size: u64,
        expected: &blake3::Hash,
        got: String,
    ) -> RemoteError {
        RemoteError::Corrupt {
            remote: self.inner.name.clone(),
            key: key.to_string(),
            expected: format!("size {size}, blake3 {}", expected.to_hex()),
            got,
        }
    }

    pub(super) fn check_content(
        &self,
        key: &str,
        size: u64,
        expected: &blake3::Hash,
        got_size: u64,
        got_hash: &blake3::Hash,
    ) -> Result<(), RemoteError> {
        if got_size != size {
            return Err(self.corrupt(key, size, expected, format!("{got_size} bytes")));
        }
        if got_hash != expected {
            return Err(self.corrupt(key, size, expected, format!("blake3 {}", got_hash.to_hex())));
        }
        Ok(())
    }

    /// Bytes `range` of the object. A range past the end of the object is
    /// an error. From a network store the bytes land in a pooled buffer
    /// (it returns to the pool once every clone of the `Bytes` is dropped),
    /// so reading a cold file chunk by chunk does not map and fault in a
    /// fresh 4 MiB buffer per chunk.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, RemoteError> {
        match &self.inner.crypt {
            Some(crypt) if !range.is_empty() => {
                self.location(key, "GET")?;
                self.get_range_encrypted(crypt, key, range).await
            }
            _ if range.is_empty() || self.reads_ranges_whole() => {
                self.get_range_raw(key, range).await
            }
            _ => Ok(self.get_range_pooled(key, range).await?.into_bytes()),
        }
    }

    /// Whether a ranged read is better made in one call than streamed:
    /// `file://` reads a range with one pread, while its stream comes in
    /// 8 KiB pieces.
    fn reads_ranges_whole(&self) -> bool {
        matches!(self.inner.backend, Backend::File { .. })
    }

    /// Bytes `range` of a plaintext object as one streamed GET: the stream
    /// yields the bytes in order as they arrive, and fails (never ends
    /// early) if the object is shorter than `range`. `None` on an encrypted
    /// remote, whose objects are read chunk by chunk ([`Remote::get_range`]).
    /// Nothing here is verified: the caller checks what it gets.
    pub async fn stream_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<BoxStream<'static, Result<Bytes, RemoteError>>>, RemoteError> {
        if self.inner.crypt.is_some() {
            return Ok(None);
        }
        let loc = self.location(key, "GET")?;
        let op = format!("GET {}..{}", range.start, range.end);
        let opts = GetOptions {
            range: Some(object_store::GetRange::Bounded(range.clone())),
            ..Default::default()
        };
        let res = self
            .inner
            .store
            .get_opts(&loc, opts)
            .await
            .map_err(|e| self.map_err(&op, key, e))?;
        self.inner.health.record_up();
        let want = range.end - range.start;
        let (this, key) = (self.clone(), key.to_string());
        let mut got = 0u64;
        let stream = res
            .into_stream()
            .map(move |chunk| {
                let chunk = chunk.map_err(|e| this.map_err(&op, &key, e))?;
                got += chunk.len() as u64;
                if got > want {
                    return Err(this.short_or_long(&key, &range, got));
                }
                Ok(chunk)
            })
            .boxed();
        Ok(Some(stream))
    }

    /// The error for a ranged read that did not get `range` exactly.
    pub(super) fn short_or_long(&self, key: &str, range: &Range<u64>, got: u64) -> RemoteError {
        RemoteError::Other {
            remote: self.inner.name.clone(),
            op: format!("GET {key}"),
            detail: format!(
                "asked for bytes {}..{} but got {got} bytes",
                range.start, range.end
            ),
        }
    }

    /// Stored bytes `range` of the object (ciphertext on an encrypted remote).
    pub(super) async fn get_range_raw(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, RemoteError> {
        let loc = self.location(key, "GET")?;
        if range.start > range.end {
            return Err(RemoteError::Other {
                remote: self.inner.name.clone(),
                op: format!("GET {key}"),
                detail: format!("invalid range {}..{}", range.start, range.end),
            });
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        let bytes = self
            .inner
            .store
            .get_range(&loc, range.clone())
            .await
            .map_err(|e| self.map_err(&format!("GET {}..{}", range.start, range.end), key, e))?;
        self.inner.health.record_up();
        if bytes.len() as u64 != want {
            return Err(RemoteError::Other {
                remote: self.inner.name.clone(),
                op: format!("GET {key}"),
                detail: format!(
                    "asked for bytes {}..{} but got {} bytes (object shorter?)",
                    range.start,
                    range.end,
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }

    /// Streams the whole object into `dest` from offset 0 (positional
    /// writes; `dest` is neither truncated nor synced), then checks size
    /// and blake3 ([`RemoteError::Corrupt`] if they differ: `dest` then
    /// holds unverified data and must not be used). Never writes past
    /// `size`. `progress` gets the cumulative bytes written.
    pub async fn download_to(
        &self,
        key: &str,
        size: u64,
        expected: &blake3::Hash,
        dest: &File,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RemoteError> {
        if let Some(crypt) = &self.inner.crypt {
            let mut written = 0u64;
            return self
                .read_encrypted(crypt, key, size, expected, |offset, plain| {
                    dest.write_all_at(plain, offset).map_err(|e| {
                        io_error(self, "write", Path::new("<download destination>"), &e)
                    })?;
                    written += plain.len() as u64;
                    progress(written);
                    Ok(())
                })
                .await;
        }
        let loc = self.location(key, "GET")?;
        let dest_path = Path::new("<download destination>");
        let res = self
            .inner
            .store
            .get_opts(&loc, GetOptions::default())
            .await
            .map_err(|e| self.map_err("GET", key, e))?;
        self.inner.health.record_up();
        if res.meta.size != size {
            return Err(self.corrupt(key, size, expected, format!("size {}", res.meta.size)));
        }
        let out = dest
            .try_clone()
            .map_err(|e| io_error(self, "dup", dest_path, &e))?;
        let written = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Bytes)>(4);
        // If this future is dropped (a caller's timeout), no block may land in
        // `dest` afterwards: the caller is about to free it, or a new download
        // may be writing it.
        let stop = StopWritesOnDrop::default();
        let writer = {
            let written = Arc::clone(&written);
            let (stopped, busy) = (Arc::clone(&stop.stopped), Arc::clone(&stop.busy));
            tokio::task::spawn_blocking(move || {
                let mut hasher = blake3::Hasher::new();
                while let Some((offset, block)) = rx.blocking_recv() {
                    let _writing = busy.lock().unwrap_or_else(|e| e.into_inner());
                    if stopped.load(Ordering::Acquire) {
                        return Err(std::io::Error::from(std::io::ErrorKind::Interrupted));
                    }
                    hasher.update(&block);
                    out.write_all_at(&block, offset)?;
                    written.fetch_add(block.len() as u64, Ordering::Relaxed);
                }
                Ok::<_, std::io::Error>(hasher.finalize())
            })
        };

        let mut stream = res.into_stream();
        let mut buf = BytesMut::with_capacity(WRITE_BLOCK);
        let mut offset = 0u64;
        let mut received = 0u64;
        let mut reported = 0u64;
        let mut failure: Option<RemoteError> = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    failure = Some(self.map_err("GET", key, e));
                    break;
                }
            };
            received += chunk.len() as u64;
            if received > size {
                failure =
                    Some(self.corrupt(key, size, expected, format!("more than {size} bytes")));
                break;
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= WRITE_BLOCK {
                let block = buf.split().freeze();
                let n = block.len() as u64;
                if tx.send((offset, block)).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
                offset += n;
                let w = written.load(Ordering::Relaxed);
                if w != reported {
                    reported = w;
                    progress(w);
                }
            }
        }
        if failure.is_none() && !buf.is_empty() {
            let _ = tx.send((offset, buf.split().freeze())).await;
        }
        drop(tx);
        let hashed = writer
            .await
            .map_err(|e| self.join_error("write", dest_path, e))?;
        if let Some(f) = failure {
            return Err(f);
        }
        let hash = hashed.map_err(|e| RemoteError::LocalIo {
            remote: self.inner.name.clone(),
            op: format!("GET {key}"),
            detail: e.to_string(),
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
        let w = written.load(Ordering::Relaxed);
        if w != reported {
            progress(w);
        }
        self.check_content(key, size, expected, received, &hash)
    }

    /// HEAD as [`ObjectInfo`] plus the object's tierfs metadata
    /// (`tierfs_blake3`, `tierfs_size`) where the backend keeps it.
    pub async fn head_with_metadata(
        &self,
        key: &str,
    ) -> Result<Option<(ObjectInfo, Vec<(String, String)>)>, RemoteError> {
        let loc = self.location(key, "HEAD")?;
        let opts = GetOptions::default().with_head(true);
        match self.inner.store.get_opts(&loc, opts).await {
            Ok(res) => {
                let meta = res
                    .attributes
                    .iter()
                    .filter_map(|(k, v)| match k {
                        Attribute::Metadata(name) => {
                            Some((name.to_string(), v.as_ref().to_string()))
                        }
                        _ => None,
                    })
                    .collect();
                Ok(Some((
                    ObjectInfo {
                        key: key.to_string(),
                        size: res.meta.size,
                        e_tag: res.meta.e_tag,
                        last_modified: res.meta.last_modified.into(),
                    },
                    meta,
                )))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => match self.map_err("HEAD", key, e) {
                RemoteError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }
}

/// Aborts a multipart upload that is dropped before completing (e.g. the
/// caller's future was cancelled), in a background task.
/// Stops a download's writer thread when the download future is dropped,
/// waiting for a block being written to finish (at most one `WRITE_BLOCK`).
#[derive(Default)]
struct StopWritesOnDrop {
    stopped: Arc<std::sync::atomic::AtomicBool>,
    busy: Arc<std::sync::Mutex<()>>,
}

impl Drop for StopWritesOnDrop {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Release);
        drop(self.busy.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_download_waits_for_the_block_being_written_and_stops_the_rest() {
        let stop = StopWritesOnDrop::default();
        let (stopped, busy) = (Arc::clone(&stop.stopped), Arc::clone(&stop.busy));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            let mut writes = 0;
            for _ in 0..3 {
                let _writing = busy.lock().unwrap();
                if stopped.load(Ordering::Acquire) {
                    break;
                }
                let _ = started_tx.send(());
                std::thread::sleep(std::time::Duration::from_millis(100));
                writes += 1;
            }
            writes
        });
        started_rx.recv().unwrap();
        let t = std::time::Instant::now();
        drop(stop);
        // The drop waited for the write in progress...
        assert!(t.elapsed() >= std::time::Duration::from_millis(50));
        // ...and no further block was written.
        assert_eq!(writer.join().unwrap(), 1);
    }

    #[test]
    fn part_sizes_scale_with_the_file() {
        assert_eq!(part_size_for(1, None), MIN_PART_SIZE);
        assert_eq!(part_size_for(40 * MIB, Some(8 * MIB)), 8 * MIB);
        assert_eq!(part_size_for(40 * MIB, Some(MIB)), MIN_PART_SIZE);
        assert_eq!(part_size_for(40 * MIB, Some(16 * MIB)), 16 * MIB);
        // 1 TiB needs > 104 MiB parts to stay within 10,000 parts.
        let p = part_size_for(1 << 40, None);
        assert!((1u64 << 40).div_ceil(p) <= MAX_PARTS, "{p}");
        assert_eq!(p % MIB, 0);
        assert_eq!(part_size_for(u64::MAX / 2, None), MAX_PART_SIZE);
    }
}
