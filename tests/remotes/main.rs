//! Tests against object-store servers started on 127.0.0.1 by `tests/servers`
//! (SeaweedFS for S3, Azurite for Azure Blob, fake-gcs-server for GCS) and
//! against `file://` remotes: the `remote` layer on its own, and tiering
//! through a real FUSE mount (`tests/common`) on top of those servers.
//!
//! One test binary of modules (one module per former `tests/*.rs` file), so
//! `tests/common` and `tests/servers` compile once for all of them. Tests of
//! all modules run in parallel in this one process and share the servers
//! started by `SeaweedFs::shared()`, `Azurite::shared()` and
//! `FakeGcs::shared()` (while any test holds one), so every test uses a bucket
//! prefix of its own; tests that stop or restart a server start a private one.
//! Run one module with `cargo test --test remotes remote_s3::`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../servers/mod.rs"]
mod servers;

// `tierctl cost-report` end to end on SeaweedFS, and its HTML in headless
// Chromium.
mod cost_report;
// Disaster recovery: catalog backups in the bucket and `tierctl rebuild`.
mod disaster_recovery;
// Client-side encryption: objects hold no plaintext; a wrong key is refused.
mod encryption;
// A hostile bucket: crafted catalog backups and swapped or altered objects.
mod hostile_bucket;
// Integrity of cold data: corrupt objects read as EIO, `tierctl verify`,
// mirrors.
mod integrity;
// The S3 server killed mid-recall and mid-migration (a private server).
mod outage;
// The `remote` layer against Azurite.
mod remote_azure;
// The `remote` layer on a `file://` remote.
mod remote_file;
// The `remote` layer against fake-gcs-server.
mod remote_gcs;
// The `remote` layer against SeaweedFS (S3).
mod remote_s3;
// `tierctl remote list` and `tierctl remote test`.
mod remote_tierctl;
// A full hot disk during a recall; locked and corrupt catalogs.
mod resource_faults;
// Tiering through a live mount against each of the three servers.
mod tiering_backends;
