//! Sending a file's content to every target and verifying each copy.
//! Content is addressed by its hash: a copy the catalog knows as verified is
//! not sent again, and identical files in one run upload once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::Migrator;
use crate::catalog::tiering::{self, ObjectRow, TierFile};
use crate::events::LedgerEntry;
use crate::remote::{PutOptions, Remote};
use crate::rules::Target;
use crate::tier::TierError;
use crate::tier::core::{Core, now_ns};

impl Migrator {
    /// Makes sure every target holds a verified copy of content `hash`.
    /// Returns the bytes uploaded.
    pub(super) async fn ensure_copies(
        &self,
        core: &Core,
        f: &TierFile,
        hash: &blake3::Hash,
        targets: &[Target],
    ) -> Result<u64, TierError> {
        let bytes = *hash.as_bytes();
        // Identical files in one run upload once: the second waits here and
        // then finds the first one's verified object.
        let lock = self.uploads.lock().await.entry(bytes).or_default().clone();
        let same_content = lock.lock().await;
        let result = ensure_copies_locked(core, f, hash, targets).await;
        drop(same_content);
        self.uploads.lock().await.remove(&bytes);
        result
    }
}

async fn ensure_copies_locked(
    core: &Core,
    f: &TierFile,
    hash: &blake3::Hash,
    targets: &[Target],
) -> Result<u64, TierError> {
    let bytes = *hash.as_bytes();
    let known = core
        .catalog
        .exec_grouped_async("find objects", move |c| tiering::objects_for(c, &bytes))
        .await?;
    let mut uploaded = 0;
    for target in targets {
        let remote = core
            .remotes
            .get(&target.remote)
            .ok_or_else(|| TierError::NoRemote {
                name: target.remote.clone(),
            })?;
        let key = remote.object_key(hash);
        let have =
            |o: &ObjectRow| o.remote == target.remote && o.key == key && o.verified_at_ns.is_some();
        if !known.iter().any(have) {
            uploaded += send_copy(core, f, hash, target, remote, known.is_empty()).await?;
        }
    }
    Ok(uploaded)
}

/// Sends one copy of `f` (content `hash`) to `remote` and reads it back.
/// `new`: the catalog has never recorded this content anywhere. Returns the
/// bytes uploaded.
async fn send_copy(
    core: &Core,
    f: &TierFile,
    hash: &blake3::Hash,
    target: &Target,
    remote: &Remote,
    new: bool,
) -> Result<u64, TierError> {
    let bytes = *hash.as_bytes();
    let key = remote.object_key(hash);
    let class = target
        .storage_class
        .clone()
        .or_else(|| remote.storage_class().map(str::to_string));
    let progress = core.progress.clone();
    let last = AtomicU64::new(0);
    let report = move |done: u64| {
        let prev = last.swap(done, Ordering::Relaxed);
        progress
            .bytes_done
            .fetch_add(done.saturating_sub(prev), Ordering::Relaxed);
    };
    // New content: no HEAD first (objects are named by content, so in the
    // rare case it does exist, the PUT rewrites the same bytes).
    let opts = PutOptions {
        storage_class: class.clone(),
        part_size: None,
        concurrency: None,
        assume_new: new,
    };
    // Record the object before it exists, so a crash mid-upload leaves a
    // row (unverified, unreferenced) that gc cleans up, never an orphan.
    let (name, key2, class2, now, size) = (
        target.remote.clone(),
        key.clone(),
        class.clone(),
        now_ns(),
        f.size,
    );
    let object_id = core
        .catalog
        .exec_grouped_async("record object", move |c| {
            tiering::upsert_object(c, &name, &key2, &bytes, size, class2.as_deref(), now)
        })
        .await?;
    let upload_started = Instant::now();
    // The upload reads the file opened beneath the hot dir, never the path
    // again (a symlink may have taken its place since).
    let source = core.open_rel(&f.path, libc::O_RDONLY)?;
    let abs = core.hot_dir.join(&f.path);
    let outcome = remote
        .put_open_file(&abs, source, f.size, hash, &opts, &report)
        .await?;
    let upload_secs = upload_started.elapsed().as_secs_f64();
    let bill = |op, requests, bytes, path| LedgerEntry {
        remote: target.remote.clone(),
        op,
        requests,
        bytes,
        storage_class: class.clone(),
        path,
        ..Default::default()
    };
    if !opts.assume_new {
        // put_file asked first whether the object exists (one HEAD).
        core.bill(bill("head", 1, 0, None));
    }
    let mut uploaded = 0;
    if !outcome.already_present {
        uploaded = f.size;
        let path = Some(f.path.as_os_str().as_encoded_bytes().to_vec());
        core.bill(bill(
            "put",
            remote.put_requests(f.size, &opts),
            f.size,
            path,
        ));
    }
    let verify_started = Instant::now();
    let verified = remote.verify(&outcome.key, f.size, hash).await;
    tracing::debug!(
        path = %f.path.display(),
        remote = %target.remote,
        bytes = f.size,
        upload_secs,
        verify_secs = verify_started.elapsed().as_secs_f64(),
        already_present = outcome.already_present,
        "copy sent and read back"
    );
    // Billed even when the read-back fails (bytes as far as known).
    let got = if verified.is_ok() { f.size } else { 0 };
    core.bill(bill("get", 1, got, None));
    verified?;
    let now = now_ns();
    core.catalog
        .exec_grouped_async("mark verified", move |c| {
            tiering::mark_verified(c, object_id, now)
        })
        .await?;
    Ok(uploaded)
}
