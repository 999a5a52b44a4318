//! Catalog backups on a remote: small whole objects under
//! `<prefix>/catalog/`, named by the time they were taken so that the
//! newest sorts last (`<prefix>/catalog/20261122T081500.123456789Z.db.zst`).

use std::time::SystemTime;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use super::{ObjectInfo, Remote, RemoteError};

/// The name part of a key (after the last `/`).
fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// File name suffix of a catalog backup: an SQLite file compressed with zstd.
pub const BACKUP_SUFFIX: &str = ".db.zst";

impl Remote {
    /// `<prefix>/catalog/` (or `catalog/` without a prefix).
    pub fn catalog_prefix(&self) -> String {
        format!("{}catalog/", self.prefix_slash())
    }

    /// The key of a backup taken at `at`: a compact UTC timestamp with
    /// nanoseconds, so keys sort in time order.
    pub fn catalog_backup_key(&self, at: SystemTime) -> String {
        let stamp: String = humantime::format_rfc3339_nanos(at)
            .to_string()
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        format!("{}{stamp}{BACKUP_SUFFIX}", self.catalog_prefix())
    }

    /// Stores `data` at `key` in one PUT (for small objects such as
    /// catalog backups; files go through [`Remote::put_file`]). Encrypted
    /// first on a remote with `encryption_key_file`.
    pub async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), RemoteError> {
        let loc = self.location(key, "PUT")?;
        let data = match &self.inner.crypt {
            Some(c) => c.seal_all(name_of(key), &data),
            None => data,
        };
        self.inner
            .store
            .put(&loc, PutPayload::from(data))
            .await
            .map_err(|e| self.map_err("PUT", key, e))?;
        self.make_private(&loc).await;
        Ok(())
    }

    /// The whole object at `key`.
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes, RemoteError> {
        let loc = self.location(key, "GET")?;
        let res = self
            .inner
            .store
            .get(&loc)
            .await
            .map_err(|e| self.map_err("GET", key, e))?;
        let data = res.bytes().await.map_err(|e| self.map_err("GET", key, e))?;
        match &self.inner.crypt {
            Some(c) => c
                .open_all(name_of(key), &data)
                .map(Bytes::from)
                .map_err(|detail| RemoteError::Corrupt {
                    remote: self.inner.name.clone(),
                    key: key.to_string(),
                    expected: "an object this remote's key decrypts".into(),
                    got: detail,
                }),
            None => Ok(data),
        }
    }

    /// The catalog backups on this remote, oldest first.
    pub async fn list_catalog_backups(&self) -> Result<Vec<ObjectInfo>, RemoteError> {
        let prefix = self.catalog_prefix();
        let mut backups: Vec<ObjectInfo> = self
            .list_under(&prefix)
            .await?
            .into_iter()
            .filter(|o| {
                o.key
                    .strip_prefix(&prefix)
                    .is_some_and(|name| !name.contains('/') && name.ends_with(BACKUP_SUFFIX))
            })
            .collect();
        backups.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(backups)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use crate::config::RemoteConfig;

    use super::*;

    fn file_remote(dir: &std::path::Path, prefix: &str) -> Remote {
        let url = format!("file://{}/{prefix}", dir.display());
        std::fs::create_dir_all(dir.join(prefix)).unwrap();
        Remote::from_config(&RemoteConfig {
            name: "local".into(),
            url,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn keys_sort_in_time_order_and_stay_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let r = file_remote(dir.path(), "");
        let a = r.catalog_backup_key(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let b = r.catalog_backup_key(UNIX_EPOCH + Duration::new(1_700_000_000, 5));
        let c = r.catalog_backup_key(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a.starts_with(&r.catalog_prefix()), "{a}");
        assert!(a.ends_with(BACKUP_SUFFIX) && !a.contains(':'), "{a}");
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_prefix() {
        // Refused before any request is made (the endpoint does not exist).
        let s3 = Remote::from_config(&RemoteConfig {
            name: "s3".into(),
            url: "s3://bucket/tier".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("AK".into()),
            secret_access_key: Some("SK".into()),
            allow_http: true,
            ..Default::default()
        })
        .unwrap();
        for bad in [
            "tier/../x",
            "tier/data/../../outside",
            "/tier/data/x",
            "tier//data/x",
            "tier/./data/x",
            "tierx/data/a",
            "../tier/data/x",
            "tier",
            "tier/",
            "data/x",
        ] {
            for e in [
                s3.put_bytes(bad, Bytes::from_static(b"x"))
                    .await
                    .unwrap_err(),
                s3.get_bytes(bad).await.unwrap_err(),
                s3.delete(bad).await.unwrap_err(),
            ] {
                let e = e.to_string();
                assert!(e.contains("prefix") || e.contains("segment"), "{bad}: {e}");
            }
        }

        // A file:// remote: whatever a key spells, the object stays inside.
        let dir = tempfile::tempdir().unwrap();
        let r = file_remote(dir.path(), "bucket");
        for bad in ["../x", "/etc/x", "a/../../x", "a//b", "./a"] {
            assert!(
                r.put_bytes(bad, Bytes::from_static(b"x")).await.is_err(),
                "{bad}"
            );
        }
        let odd = "data/%2e%2e/%2E%2E/x";
        if r.put_bytes(odd, Bytes::from_static(b"odd")).await.is_ok() {
            assert_eq!(&r.get_bytes(odd).await.unwrap()[..], b"odd");
        }
        let inside = dir.path().join("bucket");
        for e in std::fs::read_dir(dir.path()).unwrap() {
            assert_eq!(
                e.unwrap().path(),
                inside,
                "something escaped the remote's root"
            );
        }
    }

    #[tokio::test]
    async fn backups_round_trip_and_list_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let r = file_remote(dir.path(), "");
        assert!(r.list_catalog_backups().await.unwrap().is_empty());
        let new = r.catalog_backup_key(UNIX_EPOCH + Duration::from_secs(2_000_000_000));
        let old = r.catalog_backup_key(UNIX_EPOCH + Duration::from_secs(1_000_000_000));
        r.put_bytes(&new, Bytes::from_static(b"new")).await.unwrap();
        r.put_bytes(&old, Bytes::from_static(b"old")).await.unwrap();
        // Not a backup: wrong suffix.
        let stray = format!("{}notes.txt", r.catalog_prefix());
        r.put_bytes(&stray, Bytes::from_static(b"x")).await.unwrap();
        let keys: Vec<String> = r
            .list_catalog_backups()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, vec![old.clone(), new.clone()]);
        assert_eq!(&r.get_bytes(&new).await.unwrap()[..], b"new");
        // Keys outside the prefix are refused.
        assert!(r.get_bytes("../etc/passwd").await.is_err());
    }
}
