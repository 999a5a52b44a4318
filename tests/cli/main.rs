//! The command-line programs and the library without a mount or a server:
//! `tierctl` against fake control sockets and catalogs it reads directly,
//! `--help` of every command, the cost model, and the Debian package.
//!
//! One test binary of modules (one module per former `tests/*.rs` file).
//! Tests of all modules run in parallel in this one process.
//! Run one module with `cargo test --test cli tierctl_cli::`.

#[path = "../common/mod.rs"]
mod common;

// Every `tierctl` and `tierfs` command's `--help`.
mod cli_help;
// The cost model reproduces Backblaze's hybrid-cloud comparison.
mod cost_comparison;
// The systemd units and the .deb (installs into /usr while it runs; its tests
// are serialised by a lock inside the module).
mod packaging;
// `tierctl`: config lookup and errors, `status`, against fake daemons.
mod tierctl_cli;
// `tierctl` tiering commands: rules with the daemon down, against fake daemons.
mod tierctl_tiering;
