//! Aborting multipart uploads that are abandoned mid-way.
//!
//! An upload future can be dropped before it finishes (a migration stopped
//! at shutdown drops its upload). The upload must still be aborted, or the
//! store keeps its parts (S3 bills them; `file://` leaves a `KEY#N` staging
//! file). Aborting is async, so a drop can only start it; [`PendingAborts`]
//! keeps those tasks so the daemon can wait for them before its runtime
//! stops.

use std::sync::Mutex;
use std::time::Duration;

use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};
use tokio::task::JoinSet;

/// Abort tasks started by dropped uploads, awaited at shutdown.
#[derive(Debug, Default)]
pub(super) struct PendingAborts {
    tasks: Mutex<JoinSet<()>>,
}

impl PendingAborts {
    /// Starts aborting `upload` on the current runtime (nothing to do
    /// outside one: the process is exiting and `gc` finds leftovers).
    fn start(&self, mut upload: Box<dyn MultipartUpload>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Finished tasks are dropped as new ones come, so the set stays small.
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(
            async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!("aborting an abandoned multipart upload failed: {e}");
                }
            },
            &handle,
        );
    }

    /// Waits, at most `timeout`, for every abort started so far.
    pub(super) async fn finish(&self, timeout: Duration) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("abandoned multipart uploads still aborting after {timeout:?}");
        }
    }
}

/// Owns a multipart upload until it completes or is aborted; a drop before
/// either starts the abort in [`PendingAborts`].
pub(super) struct AbortOnDrop<'a> {
    /// `None` once completed or aborted.
    upload: Option<Box<dyn MultipartUpload>>,
    pending: &'a PendingAborts,
}

impl<'a> AbortOnDrop<'a> {
    pub(super) fn new(upload: Box<dyn MultipartUpload>, pending: &'a PendingAborts) -> Self {
        AbortOnDrop {
            upload: Some(upload),
            pending,
        }
    }

    /// Starts sending one part (see [`MultipartUpload::put_part`]).
    pub(super) fn put_part(&mut self, data: PutPayload) -> UploadPart {
        match self.upload.as_mut() {
            Some(upload) => upload.put_part(data),
            None => Box::pin(async { Err(closed()) }),
        }
    }

    /// Completes the upload; if that fails it stays open (to abort).
    pub(super) async fn complete(&mut self) -> object_store::Result<PutResult> {
        let Some(upload) = self.upload.as_mut() else {
            return Err(closed());
        };
        let put = upload.complete().await?;
        self.upload = None;
        Ok(put)
    }

    /// Aborts the upload here, waiting for the store's answer.
    pub(super) async fn abort(&mut self) -> object_store::Result<()> {
        match self.upload.take() {
            Some(mut upload) => upload.abort().await,
            None => Ok(()),
        }
    }
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            self.pending.start(upload);
        }
    }
}

fn closed() -> object_store::Error {
    object_store::Error::Generic {
        store: "tierfs",
        source: "multipart upload already closed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::path::Path;

    #[tokio::test]
    async fn a_dropped_upload_is_aborted_by_the_time_finish_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let pending = PendingAborts::default();
        {
            let mut upload = store.put_multipart(&Path::from("obj")).await.unwrap();
            upload
                .put_part(PutPayload::from(vec![7u8; 1024]))
                .await
                .unwrap();
            let _guard = AbortOnDrop::new(upload, &pending);
        }
        pending.finish(Duration::from_secs(10)).await;
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "staging files left: {left:?}");
        assert!(store.head(&Path::from("obj")).await.is_err());
    }
}
