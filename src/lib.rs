//! tierfs: a hybrid cloud storage tiering gateway.
//!
//! The mount (`fs`) passes every operation through to a local hot directory;
//! the catalog (`catalog`) records every file so that rules can later move cold
//! files to object storage. `control` is the socket protocol between `tierctl`
//! and the daemon, and `daemon` wires the parts together.
//!
//! Module dependencies point one way: `daemon` → `fs` → `catalog`;
//! `control` and `config` are leaves used by both binaries.

pub mod activity;
pub mod assets;
pub mod catalog;
pub mod config;
pub mod control;
pub mod cost;
pub mod daemon;
pub mod escape;
pub mod fs;
pub mod metrics;
pub mod remote;
pub mod rules;
pub mod tier;
