//! # herd-hub — the repository hub
//!
//! This room is the one git repository every leaf pushes to: a bare repository served over git
//! smart HTTP (protocol v0/v1, stateless-rpc) by axum, so libgit2 and the stock `git` CLI can
//! both clone, fetch and push.
//!
//! - **receive-pack runs in process** ([`receive_pack`]): pkt-line commands ([`pkt_line`]), the
//!   pack indexed into a quarantine, policy checks, then `reference_matching` moves
//!   `refs/heads/main` as a compare-and-swap of the tip. A stale push is a *fork* and gets
//!   `ng refs/heads/main non-fast-forward`; forced pushes, deletes and other refs are refused;
//!   with an `x-herd-slot` header, commits touching paths outside that slot are refused.
//! - **upload-pack pipes to `git upload-pack --stateless-rpc`** ([`upload_pack`]): read-only,
//!   and git's negotiation is well tested; the in-process push path is where speed matters.
//! - After each accepted push the hub publishes exactly one `TipChanged` on the bus, with the
//!   request's `traceparent`, before answering the push ([`hub`]).
//! - [`stats`]: pushes accepted/rejected, bytes, receive latency; [`repack`]: pack hygiene.
//! - [`client`]: the fast `http://` transport leaves use with git2, and request headers.
//!
//! Bad input (malformed pkt-lines, truncated packs, unknown services, wrong content types,
//! oversized bodies) gets a 4xx with a one-line reason and leaves the repository unchanged.
//! Calls: herd-bus (publishing). Called by: herd-leaf (client side), herd-trial.

pub mod advertise;
pub mod client;
pub mod error;
pub mod hub;
pub mod pkt_line;
pub mod receive_pack;
pub mod repack;
pub mod repo;
pub mod routes;
pub mod stats;
pub mod upload_pack;

pub use error::{HubError, RequestError};
pub use hub::{Hub, HubConfig};
pub use repack::RepackPolicy;
pub use routes::SLOT_HEADER;
pub use stats::HubStats;
