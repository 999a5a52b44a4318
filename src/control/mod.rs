//! The control socket: how `tierctl` talks to a running `tierfs` daemon.
//!
//! # Wire format
//!
//! Newline-delimited JSON over a Unix stream socket. The client writes one
//! [`Request`] object on one line; the daemon answers with one [`Response`]
//! object on one line. A connection may carry several request/response pairs
//! in turn; the client closes it when done.
//!
//! ```text
//! → {"op":"status"}
//! ← {"ok":true,"status":{"pid":4242,"version":"0.1.0",...}}
//! → {"op":"rule_remove","id":9}
//! ← {"ok":false,"error":{"kind":"not_found","message":"no rule #9"}}
//! → {"op":"frobnicate"}
//! ← {"ok":false,"error":{"kind":"invalid_request","message":"unsupported request: unknown op `frobnicate` ..."}}
//! ```
//!
//! Requests are tagged by `"op"`; successful responses carry exactly one
//! payload key, the request's op (`"status"`, `"rule_add"`, …), next to
//! `"ok":true`: each [`Request`] variant has a [`Reply`] variant of the same
//! name with its own payload type. Failures carry a [`RequestError`]: an
//! [`ErrorKind`] that clients decide on, and a message for humans. New
//! operations are added as a new [`Request`] variant with a matching
//! [`Reply`] variant; an older daemon answers an op it does not know with an
//! `invalid_request` error rather than dropping the connection.
//!
//! # Access
//!
//! The socket file is created with mode `0600`, and every connection's peer
//! credentials (`SO_PEERCRED`) are checked: only root (and the user the daemon
//! itself runs as) may issue requests. Anyone else gets an `ok:false` answer
//! that says why, and the connection is closed.

mod client;
mod error;
mod peer;
mod protocol;
mod server;

pub use client::{call, request, status};
pub use error::ControlError;
pub use protocol::{
    DaemonStatus, ErrorKind, JobProgress, PinSummary, Reply, Request, RequestError, Response,
    RuleAdded, RuleMoved, RuleRemoved, Synced,
};
pub use server::{ControlServer, Handler, MAX_CONNECTIONS, serve, serve_with_group};

/// Largest request line the server accepts, in bytes (newline included).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Largest response line the client accepts, in bytes (newline included).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

#[cfg(test)]
mod tests;
