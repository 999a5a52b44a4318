//! tierfs: a hybrid cloud storage tiering gateway.
//!
//! The mount (`fs`) passes every operation through to a local hot directory;
//! the catalog (`catalog`) records every file so that rules can later move cold
//! files to object storage. `control` is the socket protocol between `tierctl`
//! and the daemon, and `daemon` wires the parts together.
//!
//! Module dependencies point one way (docs/architecture.md has the table):
//! the leaves `sys`, `config`, `escape`, `events` and `assets` use nothing of
//! the crate; `remote` and `metrics` use leaves; `catalog` and `activity` use
//! those; `rules` uses `catalog`; `tier` and `cost` use the layers below;
//! `fs` and `control` use `tier`; `daemon` wires everything. The tiering
//! engine reports what it does as plain data through `events`; its
//! recorders (`activity`, `metrics`, the catalog's cost ledger) never use
//! `tier`.

#![deny(missing_docs)]

pub mod activity;
pub mod assets;
pub mod catalog;
pub mod config;
pub mod control;
pub mod cost;
pub mod daemon;
pub mod escape;
pub mod events;
pub mod fs;
pub mod metrics;
pub mod remote;
pub mod rules;
pub mod sys;
pub mod tier;

/// The error and its causes joined by ": ", leaving out a cause whose text
/// the message so far already contains: many errors (`thiserror` types with
/// a `source` field, `io::Error` wrappers) print their cause in their own
/// message and also return it from `source()`, which `{:#}` would print a
/// second time ("Permission denied (os error 13): Permission denied (os
/// error 13)").
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(err);
    while let Some(cause) = next {
        next = cause.source();
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod error_text_tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Wrapped {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let e = anyhow::Error::new(Wrapped {
            path: "/x".into(),
            source: io,
        })
        .context("loading config");
        let text = error_text(e.as_ref());
        assert_eq!(text.matches("Permission denied").count(), 1, "{text}");
        assert!(
            text.starts_with("loading config: cannot read /x: "),
            "{text}"
        );
    }
}
