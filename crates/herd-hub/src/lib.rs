//! # herd-hub — the repository hub
//!
//! This room is the one git repository every leaf pushes to: a bare repository served over git
//! smart HTTP (protocol v0/v1, stateless-rpc) by axum, so libgit2 and the stock `git` CLI can
//! both clone, fetch and push. Everything runs in process — no `git` subprocess on any request.
//!
//! - **Push** ([`hub`]): pkt-line commands ([`pkt_line`], [`receive_pack`]) → the trunk policy
//!   ([`policy`]: ordered rules, first refusal wins; a refusal is a [`Refusal`] whose kind tells
//!   a pusher *fork* or *policy*) → integration by the [`HubMode`] chosen at construction:
//!   [`race`] (compare-and-swap of the tip; a stale push is refused before its pack is read) or
//!   [`queue`] (a merge queue that replays disjoint stale pushes onto the tip and lands groups
//!   in one ref update). Both run on the store thread ([`store`]): the pack is staged in
//!   memory ([`pack`]) and written to disk only once accepted, before the ref moves.
//! - **Broadcasts**: one `TipChanged` per landed commit, in trunk order, published before the
//!   push is answered, carrying the commit's objects as a pack under a size cap ([`payload`])
//!   with each entry's id and offset, so leaves holding the previous tip never ask the hub and
//!   keep the entries without inflating them ([`kept_objects`], beside [`mem_objects`]: the
//!   leaves' object-database backends, the only direct libgit2 calls).
//! - **Fetch** ([`upload_pack`]): negotiation and pack building in process (revwalk +
//!   `PackBuilder`), through read-only handles ([`read_pool`]).
//! - [`stats`]: requests by route, pushes, landed commits, broadcasts, payload bytes, latency;
//!   [`repack`]: pack hygiene in a background task; [`tree_diff`]: O(changed) tree diffs.
//! - [`client`]: the fast `http://` transport leaves use with git2 (request headers, the
//!   landed-commit response header, the last advertised tip).
//!
//! - **Who may push** ([`auth`]): open, read-only, or slot tokens (the slot comes from the
//!   token); **what may land** ([`policy`], [`tree_rules`], pack [`pack::Limits`], claim
//!   [`fence`]); **tips never lost** ([`tips`]: publish retries, catch-up at start, a repairer);
//!   **connection limits** ([`serve`]: header/idle and write-stall timeouts; a cap on requests in
//!   flight answered with 503); **crash hygiene** ([`leftovers`]: a dead hub's temporary packs,
//!   quarantines and ref locks removed at start; [`Hub::crash`] and [`Hub::restart`] stop the
//!   hub as a crash would and start it again on the same directory and port, and race-mode
//!   [`failpoint`]s stop a push after its objects are written or after its ref moved).
//!   `docs/security.md` has the threat model.
//!
//! Bad input (malformed pkt-lines, truncated packs, unknown services, wrong content types,
//! oversized bodies) gets a 4xx with a one-line reason and leaves the repository unchanged.
//! Calls: herd-bus (publishing, reading claims to fence). Called by: herd-leaf (client side), herd-trial.

pub mod advertise;
pub mod auth;
pub mod client;
pub mod error;
pub mod failpoint;
pub mod fence;
pub mod hub;
pub mod kept_objects;
pub mod leftovers;
pub mod libgit2_opts;
pub mod mem_objects;
pub mod mode;
pub mod pack;
pub mod payload;
pub mod pkt_line;
pub mod policy;
pub mod queue;
pub mod race;
pub mod read_pool;
pub mod receive_pack;
pub mod refusal;
pub mod repack;
pub mod repo;
pub mod routes;
pub mod serve;
pub mod stats;
pub mod store;
pub mod tips;
pub mod tree_diff;
pub mod tree_rules;
pub mod upload_pack;

pub use auth::{Access, Tokens};
pub use error::{HubError, RequestError};
pub use hub::{Hub, HubConfig};
pub use mode::{HubMode, LANDED_HEADER, Landed};
pub use policy::QUEUE_REF;
pub use refusal::{Refusal, RefusalKind, Refused, classify};
pub use repack::RepackPolicy;
pub use routes::SLOT_HEADER;
pub use serve::ConnLimits;
pub use stats::HubStats;
