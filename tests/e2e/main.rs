//! End-to-end tests through a real FUSE mount, without object-store servers:
//! every test starts its own `tierfs mount -f` daemon on a private temporary
//! root (`common::TestMount`); remotes, where used, are `file://`.
//!
//! One test binary of modules (one module per former `tests/*.rs` file), so
//! the harness in `tests/common` compiles once for all of them. Tests of all
//! modules run in parallel in this one process (`--test-threads`), so a test
//! must not change process-wide state (current directory, umask, environment,
//! signal handlers) or use fixed paths and ports without a lock of its own.
//! Run one module with `cargo test --test e2e posix_ops::`.

#[path = "../common/mod.rs"]
mod common;

// The SQLite catalog as `tierctl status --json` shows it: converges with the
// hot dir (through the mount, beside it, while unmounted); access times.
mod catalog_sync;
// Cold files as users' tools (cp, tar, rsync, mmap, sqlite3 ...) see them, and
// the bytes each operation downloads.
mod cold_files;
// A config file holding secrets must be private and its secrets never shown.
mod config_secrets;
// The control socket admits root and, if configured, one group only.
mod control_group;
// The daemon as an admin sees it: unmounting, background mode, mount errors,
// descriptor use.
mod daemon_lifecycle;
// A full ext4 loop disk under the hot dir and the catalog.
mod full_disk;
// A hostile local user against an `allow_other` mount (issue 15). Creates the
// account `tierfs-hostile`; one test lowers this process's open-file limit to
// 4096 (soft and hard).
mod hostile_user;
// The Prometheus endpoint of a real mount.
mod metrics;
// Mounting through mount(8) and `mount.fuse3`; its tests share
// /usr/local/sbin/tierfs (serialised by a lock inside the module).
mod mount_helper;
// File handles (name_to_handle_at / open_by_handle_at, as NFS servers use
// them) across dropped inode caches and daemon restarts.
mod nfs_handles;
// POSIX behaviour: every call compared with a plain directory.
mod posix_ops;
// Read-your-writes: `tierctl` right after an operation through the mount
// sees it (1,000 rounds of change-then-ask).
mod read_your_writes;
// Samba (smbd on 127.0.0.1, smbclient) sharing a directory of the mount:
// cold files show the offline attribute; listing them downloads nothing.
mod smb;
// SIGTERM while a transfer runs.
mod shutdown;
// What `tierctl status` reports about the daemon's recent work.
mod status_activity;
// Tiering through a live mount with a `file://` remote: rules, migrate,
// release, recall, dedupe, gc, fsck, `kill -9` at every step.
mod tiering;
