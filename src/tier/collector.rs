//! The collector: deletes objects no file has referenced for a grace period.

use std::time::Duration;

use super::TierError;
use super::core::{Core, now_ns};
use super::summary::GcSummary;
use crate::catalog::tiering::{self, ObjectRow};
use crate::events::LedgerEntry;

/// Deletes objects that no file has referenced for at least `grace`.
pub(super) async fn gc(core: &Core, grace: Duration) -> Result<GcSummary, TierError> {
    let now = now_ns();
    let candidates = core
        .catalog
        .exec_durable_async("find unreferenced objects", move |c| {
            tiering::unreferenced_objects(c, now)
        })
        .await?;
    let mut summary = GcSummary {
        unreferenced: candidates.len() as u64,
        ..Default::default()
    };
    for (object, since) in candidates {
        if now.saturating_sub(since) >= grace.as_nanos() as i64 {
            collect(core, object, now, &mut summary).await?;
        }
    }
    Ok(summary)
}

/// Deletes one unreferenced object unless a migration reused it meanwhile.
async fn collect(
    core: &Core,
    object: ObjectRow,
    now: i64,
    summary: &mut GcSummary,
) -> Result<(), TierError> {
    let Some(remote) = core.remotes.get(&object.remote) else {
        summary.failures.push(format!(
            "{}: remote `{}` is not configured",
            object.key, object.remote
        ));
        return Ok(());
    };
    // Re-check right before deleting: a migration may have reused it.
    let bytes = blake3::Hash::from_hex(&object.blake3)
        .map(|h| *h.as_bytes())
        .unwrap_or([0; 32]);
    let referenced = core
        .catalog
        .exec_grouped_async("recheck object", move |c| {
            tiering::content_referenced(c, &bytes)
        })
        .await?;
    if referenced {
        return Ok(());
    }
    match remote.delete(&object.key).await {
        Ok(()) => {
            let id = object.id;
            core.catalog
                .exec_grouped_async("forget object", move |c| tiering::delete_object_row(c, id))
                .await?;
            summary.deleted += 1;
            summary.deleted_bytes += object.size;
            core.bill(LedgerEntry {
                remote: object.remote.clone(),
                op: "delete",
                requests: 1,
                bytes: object.size,
                storage_class: object.storage_class.clone(),
                object_age_ns: Some(now - object.created_at_ns),
                ..Default::default()
            });
        }
        Err(e) => summary.failures.push(e.to_string()),
    }
    Ok(())
}
