//! `Bus`: one NATS connection with the herd stream and buckets bound.
//!
//! `connect` retries a bounded number of times (a trial that starts a server and immediately
//! connects should not fail on a race, but an unreachable URL must fail in seconds), sets a short
//! ping interval so a dead server is noticed in seconds rather than minutes, and then ensures the
//! stream and buckets idempotently. Operations live next to their concept: [`crate::tip`],
//! [`crate::claims`], [`crate::tasks`].

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::error::{BusError, Result};

/// The JetStream stream carrying tip broadcasts.
pub const TIP_STREAM: &str = "HERD_TIP";
/// The subject of [`crate::TipChanged`] messages.
pub const TIP_SUBJECT: &str = "herd.tip.changed";
/// Task records, updated by compare-and-swap on the key's revision.
pub const TASKS_BUCKET: &str = "herd-tasks";
/// Claims: key = task id, create wins, per-key TTL is the lease.
pub const CLAIMS_BUCKET: &str = "herd-claims";
/// TTL of the delete marker a lapsed claim leaves. It must be the minimum (1 s): nats-server
/// 2.15 raises every message's `Nats-TTL` to at least this value (measured: a 1 s claim in a
/// bucket with 3600 s markers was stored with a 3600 s TTL), so a longer marker TTL would
/// silently stretch every claim lease.
pub const CLAIM_MARKER_TTL: Duration = Duration::from_secs(1);
/// KV history kept per key (the server's maximum), so a trial's history can be read back.
pub const KV_HISTORY: i64 = 64;

/// Connection knobs; the defaults suit a loopback server.
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// Connection name shown by the server (`connz`).
    pub name: String,
    /// Attempts before `connect` gives up.
    pub connect_attempts: u32,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Ping interval; two missed pings mark the server dead.
    pub ping_interval: Duration,
    /// Timeout of a request (KV op, publish ack).
    pub request_timeout: Duration,
    /// Limits of the tip stream when this connection creates it.
    pub tip_limits: TipLimits,
    /// Replicas of the stream and buckets this connection creates (3 in a cluster).
    pub replicas: usize,
}

/// How much the tip stream keeps: broadcasts carry packs, so a long run must not grow it without
/// bound. The oldest messages are discarded first; a leaf that falls further behind than the
/// stream keeps fetches from the hub instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipLimits {
    /// Oldest message kept.
    pub max_age: Duration,
    /// Bytes kept.
    pub max_bytes: i64,
    /// Largest message accepted (the hub caps payloads below this).
    pub max_message_size: i32,
}

impl Default for TipLimits {
    fn default() -> Self {
        TipLimits {
            max_age: Duration::from_secs(3600),
            max_bytes: 1 << 30,
            max_message_size: 1 << 20,
        }
    }
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            name: "herd".into(),
            connect_attempts: 8,
            connect_timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(1),
            // A request in flight when its server dies is not failed by the client: it waits
            // this long (measured: every operation in flight stalled 5 s after a SIGKILL at
            // 5 s). Loopback KV requests take milliseconds (claim p99 under 10 ms), and a
            // request that times out is repeated or settled (reads, writes), so short is safe.
            request_timeout: Duration::from_secs(2),
            tip_limits: TipLimits::default(),
            replicas: 1,
        }
    }
}

/// A connection to the herd bus. Cheap to clone (shares the connection).
#[derive(Clone)]
pub struct Bus {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) tasks: kv::Store,
    pub(crate) claims: kv::Store,
    url: Arc<str>,
    /// Prefix of raw KV writes: empty, or `$JS.<domain>.API.` through a JetStream domain.
    kv_prefix: Arc<str>,
    /// Counts (re)connections to the server: see [`Bus::connections`].
    connections: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Connects with [`BusOptions::default`] and ensures the stream and buckets.
    pub async fn connect(url: &str) -> Result<Bus> {
        Bus::connect_with(url, BusOptions::default()).await
    }

    /// Connects with explicit options and ensures the stream and buckets.
    pub async fn connect_with(url: &str, opts: BusOptions) -> Result<Bus> {
        let (client, connections) = connect_client(url, &opts).await?;
        let js = jetstream::new(client.clone());
        let replicas = opts.replicas.max(1);
        ensure_tip_stream(&js, opts.tip_limits, replicas).await?;
        crate::turns::ensure_turn_stream(&js, replicas).await?;
        let tasks = ensure_bucket(&js, TASKS_BUCKET, None, replicas).await?;
        let claims = ensure_bucket(&js, CLAIMS_BUCKET, Some(CLAIM_MARKER_TTL), replicas).await?;
        Ok(Bus {
            client,
            js,
            tasks,
            claims,
            url: crate::access::redact(url).into(),
            kv_prefix: "".into(),
            connections,
        })
    }

    /// Connects as a leaf: binds the buckets the hub created, creating nothing (a leaf's
    /// credentials may not create or change streams: [`crate::access`]).
    pub async fn join(url: &str) -> Result<Bus> {
        Bus::join_domain(url, None).await
    }

    /// [`join`](Self::join) through JetStream domain `domain` (a leaf on a leaf-node server
    /// reaches the hub's JetStream as `$JS.<domain>.API`).
    pub async fn join_domain(url: &str, domain: Option<&str>) -> Result<Bus> {
        let opts = BusOptions {
            name: "herd-leaf".into(),
            ..BusOptions::default()
        };
        let (client, connections) = connect_client(url, &opts).await?;
        let js = match domain {
            Some(d) => jetstream::with_domain(client.clone(), d),
            None => jetstream::new(client.clone()),
        };
        let bind = |bucket: &'static str| {
            let js = js.clone();
            async move {
                js.get_key_value(bucket)
                    .await
                    .map_err(|e| BusError::Stream {
                        stream: bucket,
                        op: "bind (does the hub's bus exist yet?)",
                        source: Box::new(e),
                    })
            }
        };
        // A bus busy with hundreds of leaves joining at once can time a bind out (measured: a
        // 256-leaf sweep cell that failed to start): binding is a read, tried again within the
        // bus's patience for transient failures.
        let tasks = read_retrying(|| bind(TASKS_BUCKET)).await?;
        let claims = read_retrying(|| bind(CLAIMS_BUCKET)).await?;
        Ok(Bus {
            client,
            js,
            tasks,
            claims,
            url: crate::access::redact(url).into(),
            kv_prefix: domain
                .map(|d| format!("$JS.{d}.API."))
                .unwrap_or_default()
                .into(),
            connections,
        })
    }

    /// The subject a raw write of `key` in `bucket` goes to (through the domain, if any).
    pub(crate) fn kv_subject(&self, bucket: &str, key: &str) -> String {
        format!("{}$KV.{bucket}.{key}", self.kv_prefix)
    }

    /// Changes each time the client (re)connects to a server. A server that restarted has
    /// lost its consumers: subscribers resubscribe on a change instead of waiting for the
    /// client's missed-heartbeat detection (measured: ~15 s of deafness after a restart).
    pub fn connections(&self) -> tokio::sync::watch::Receiver<u64> {
        self.connections.clone()
    }

    /// Is the client connected right now? (False while it reconnects to a lost server.)
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The server URL this bus connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying NATS client, for callers that need raw access.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Flushes buffered publishes to the server.
    pub async fn flush(&self) -> Result<()> {
        self.client.flush().await.map_err(|e| BusError::Publish {
            subject: "flush",
            source: Box::new(e),
        })
    }
}

async fn connect_client(
    url: &str,
    opts: &BusOptions,
) -> Result<(async_nats::Client, tokio::sync::watch::Receiver<u64>)> {
    let (connected, connections) = tokio::sync::watch::channel(0u64);
    let connected = Arc::new(connected);
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let counter = connected.clone();
        let result = options_for(url)
            .event_callback(move |event| {
                let counter = counter.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        counter.send_modify(|n| *n += 1);
                    }
                }
            })
            .name(&opts.name)
            .connection_timeout(opts.connect_timeout)
            .ping_interval(opts.ping_interval)
            .request_timeout(Some(opts.request_timeout))
            .reconnect_delay_callback(reconnect_delay)
            .connect(server_list(url))
            .await;
        match result {
            Ok(client) => return Ok((client, connections)),
            Err(e) if attempt >= opts.connect_attempts.max(1) => {
                return Err(BusError::Connect {
                    url: crate::access::redact(url),
                    attempts: attempt,
                    source: Box::new(e),
                });
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The longest pull request of the tip and turn subscribers. async-nats derives the idle
/// heartbeat from it (half of it) and recreates an ordered consumer after two missed
/// heartbeats; with its defaults (30 s, 15 s) a consumer lost with a cluster node went
/// unnoticed for ~30 s, and a leaf stayed deaf to tips and turns that long (measured, F1 on
/// `cluster3`). At 2 s a lost consumer is recreated within ~4 s, for one pull request per
/// subscriber every 2 s.
pub(crate) const PULL_MAX_EXPIRES: Duration = Duration::from_secs(2);

/// How long a KV operation keeps trying while it fails transiently ([`BusError::is_transient`]):
/// a request sent into a server that died is lost (the client reconnects within a second, but
/// the request only times out), and a cluster that lost a node answers "no stream found" until
/// the stream's new leader is elected (seen: ~5–8 s). Reads are safe to repeat; writes settle.
pub(crate) const TRANSIENT_PATIENCE: Duration = Duration::from_secs(15);

/// The wait before try `attempt` (1, 2, …) of an operation that failed transiently: 200 ms,
/// doubling, at most 1 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(4)).min(1000))
}

/// Runs the read `op` again while it fails transiently, for up to [`TRANSIENT_PATIENCE`].
pub(crate) async fn read_retrying<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = tokio::time::Instant::now();
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_transient() && started.elapsed() < TRANSIENT_PATIENCE => {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// What a KV write whose reply was lost turned out to be, read back from the key.
pub(crate) enum Settled<T> {
    /// The key holds what the write wrote: it happened (with this result).
    Done(T),
    /// The key is as the write expected it: the write did not happen; send it again.
    Again,
    /// Someone else changed the key: the write's own definite failure.
    Lost(BusError),
}

/// Runs the KV write `op`; when it fails, reads the key back through `settle` to learn what
/// happened, and sends the write again only if it did not happen and the failure was
/// transient. A request sent into a dying or frozen server may be applied with its reply lost,
/// and the client may deliver its own copy twice across a reconnect (the second copy then
/// "conflicts" with the first): either way the key holds exactly what the write wrote, and the
/// write is done, never reported failed.
pub(crate) async fn write_settling<T, W, WF, S, SF>(mut op: W, mut settle: S) -> Result<T>
where
    W: FnMut() -> WF,
    WF: std::future::Future<Output = Result<T>>,
    S: FnMut() -> SF,
    SF: std::future::Future<Output = Result<Settled<T>>>,
{
    let started = tokio::time::Instant::now();
    let mut attempt = 0;
    loop {
        let failed = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let transient = failed.is_transient();
        attempt += 1;
        if transient {
            tokio::time::sleep(backoff(attempt)).await;
        }
        match settle().await? {
            Settled::Done(v) => return Ok(v),
            Settled::Again if transient && started.elapsed() < TRANSIENT_PATIENCE => {}
            Settled::Again => return Err(failed),
            Settled::Lost(e) => return Err(e),
        }
    }
}

/// The wait before reconnect attempt `attempts`: 0 for the first, then 100 ms more per
/// attempt up to 1 s. (async-nats' default doubles up to 4 s, so a client that lost its server
/// for one second could sleep four more after it was back: measured as 4 s of no bus
/// operations after a restart, F1.) Loopback servers cost nothing to knock on.
fn reconnect_delay(attempts: usize) -> Duration {
    Duration::from_millis((attempts.saturating_sub(1) as u64 * 100).min(1000))
}

/// Options carrying the credentials of `url` (`nats://user:password@host`; for a list, the
/// first URL's): async-nats reads credentials only from options.
fn options_for(url: &str) -> async_nats::ConnectOptions {
    let options = async_nats::ConnectOptions::new();
    let first = url.split(',').next().unwrap_or(url).trim();
    match first.parse::<async_nats::ServerAddr>() {
        Ok(addr) => match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => options.user_and_password(user.into(), password.into()),
            (Some(user), None) => options.token(user.into()),
            _ => options,
        },
        Err(_) => options,
    }
}

/// The servers of a comma-separated URL list (one URL is a list of one).
fn server_list(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// A plain client for `url` (a list allowed), one attempt: for readiness probes.
pub(crate) async fn connect_urls(url: &str, name: &str) -> Result<async_nats::Client> {
    options_for(url)
        .name(name)
        .connection_timeout(Duration::from_secs(1))
        // A cluster without a meta leader does not answer: probe often rather than wait.
        .request_timeout(Some(Duration::from_millis(500)))
        .connect(server_list(url))
        .await
        .map_err(|e| BusError::Connect {
            url: crate::access::redact(url),
            attempts: 1,
            source: Box::new(e),
        })
}

async fn ensure_tip_stream(
    js: &jetstream::Context,
    limits: TipLimits,
    replicas: usize,
) -> Result<()> {
    let config = stream::Config {
        name: TIP_STREAM.to_string(),
        subjects: vec![TIP_SUBJECT.to_string()],
        storage: stream::StorageType::File,
        max_age: limits.max_age,
        max_bytes: limits.max_bytes,
        max_message_size: limits.max_message_size,
        discard: stream::DiscardPolicy::Old,
        // Dedupe on Nats-Msg-Id (the new tip oid): a retried publish is not a second broadcast.
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas,
        ..Default::default()
    };
    create_stream_fitting(js, TIP_STREAM, config).await
}

/// The smallest byte limit [`create_stream_fitting`] will shrink a stream to.
pub(crate) const MIN_STREAM_BYTES: i64 = 4 << 20;

/// Creates (or binds) a stream, halving its `max_bytes` while the server refuses it for lack of
/// storage. JetStream reserves a stream's `max_bytes` against the server's store limit, which by
/// default is derived from the free disk at server start: on a machine with little free disk a
/// fixed 1 GiB reservation fails the whole trial although it writes a few MiB. Once a size fits,
/// the stream is shrunk to half of it, leaving room for the buckets, which reserve nothing but
/// must still write. The size granted is logged; below [`MIN_STREAM_BYTES`] the refusal is
/// returned, naming the cause.
pub(crate) async fn create_stream_fitting(
    js: &jetstream::Context,
    name: &'static str,
    mut config: stream::Config,
) -> Result<()> {
    let asked = config.max_bytes;
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(_) => {
                if config.max_bytes != asked {
                    // It fits with less than twice its size to spare: give half of that back so
                    // the unreserved buckets (claims, tasks) still have room to write.
                    // Racing connects may each have shrunk on their own: the stream is the one
                    // whichever created it first sized, and shrinking it further is only ever
                    // worth it when it is larger than half this connection's fit. A refused
                    // shrink (another connection's reservation took the room meanwhile) leaves
                    // a working stream: bind it as it is.
                    let current = match js.get_stream(name).await {
                        Ok(mut s) => s.info().await.ok().map(|i| i.config.max_bytes),
                        Err(_) => None,
                    };
                    let half = config.max_bytes / 2;
                    if half >= MIN_STREAM_BYTES && current.is_none_or(|c| c > half) {
                        config.max_bytes = half;
                        if let Err(e) = js.update_stream(config.clone()).await {
                            if js.get_stream(name).await.is_err() {
                                return Err(BusError::Stream {
                                    stream: name,
                                    op: "shrink",
                                    source: Box::new(e),
                                });
                            }
                            tracing::warn!(stream = name, error = %e, "shrinking a raced stream; bound as it is");
                        }
                    }
                    tracing::warn!(
                        stream = name,
                        asked,
                        granted = config.max_bytes,
                        "the bus's store is too small for the configured stream size; shrunk it"
                    );
                }
                return Ok(());
            }
            Err(e) if storage_exceeded(&e) && config.max_bytes / 2 >= MIN_STREAM_BYTES => {
                config.max_bytes /= 2;
            }
            // Lost a creation race with another connection (its size may differ after a
            // shrink): bind what it created.
            Err(_) if js.get_stream(name).await.is_ok() => return Ok(()),
            Err(e) => {
                let op = if storage_exceeded(&e) {
                    "create (the server's JetStream store is full or smaller than 4 MiB: free disk, or raise max_file_store)"
                } else {
                    "create"
                };
                return Err(BusError::Stream {
                    stream: name,
                    op,
                    source: Box::new(e),
                });
            }
        }
    }
}

fn storage_exceeded(e: &jetstream::context::CreateStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::CreateStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STORAGE_RESOURCES_EXCEEDED
                || js.error_code() == jetstream::ErrorCode::INSUFFICIENT_RESOURCES
    )
}

async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &'static str,
    limit_markers: Option<Duration>,
    replicas: usize,
) -> Result<kv::Store> {
    create_bucket(js, bucket, limit_markers, replicas).await?;
    harden(js, bucket).await?;
    // Bound after hardening: a store reads through direct gets only if the stream allows them.
    js.get_key_value(bucket)
        .await
        .map_err(|e| BusError::Bucket {
            bucket,
            op: "bind",
            source: Box::new(e),
        })
}

/// Takes rollups and purges away from a bucket's stream, and follower reads from a replicated
/// one. A KV stream allows `Nats-Rollup` headers (the KV purge uses them, herd does not), and a
/// client allowed to put a key could publish `Nats-Rollup: all` and erase every key — the
/// permission to write claims would be the power to wipe them. Idempotent; only the hub's user
/// may update streams.
async fn harden(js: &jetstream::Context, bucket: &'static str) -> Result<()> {
    let err = |op, e: Box<dyn std::error::Error + Send + Sync>| BusError::Bucket {
        bucket,
        op,
        source: e,
    };
    let mut stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(|e| err("bind stream", Box::new(e)))?;
    let mut config = stream
        .info()
        .await
        .map_err(|e| err("read stream config", Box::new(e)))?
        .config
        .clone();
    // Replicated, a direct get may be answered by a follower that has not applied the latest
    // write: a leaf that just opened a task could read it as missing (seen on cluster3). Reads
    // go through the stream leader instead.
    let direct = config.num_replicas <= 1;
    if !config.allow_rollup && config.deny_purge && config.allow_direct == direct {
        return Ok(());
    }
    config.allow_rollup = false;
    config.deny_purge = true;
    config.allow_direct = direct;
    js.update_stream(config)
        .await
        .map_err(|e| err("disallow rollups and purges", Box::new(e)))?;
    Ok(())
}

async fn create_bucket(
    js: &jetstream::Context,
    bucket: &'static str,
    limit_markers: Option<Duration>,
    replicas: usize,
) -> Result<kv::Store> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: bucket.to_string(),
        history: KV_HISTORY,
        storage: jetstream::stream::StorageType::File,
        limit_markers,
        num_replicas: replicas,
        ..Default::default()
    };
    // A store reserved to the brim by a racing connect's stream (created at the size that
    // fit, shrunk to half a moment later) refuses the bucket for that moment: try again,
    // briefly.
    let mut tries = 0;
    loop {
        match js.create_key_value(config.clone()).await {
            Ok(store) => return Ok(store),
            // Lost a creation race with another connection: bind what it created.
            Err(create_err) => match js.get_key_value(bucket).await {
                Ok(store) => return Ok(store),
                Err(_) if tries < 40 && storage_full(&create_err) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => {
                    return Err(BusError::Bucket {
                        bucket,
                        op: "create",
                        source: Box::new(create_err),
                    });
                }
            },
        }
    }
}

/// Whether `e` (or a cause) is JetStream refusing for lack of storage.
fn storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if text.contains("insufficient storage") || text.contains("storage resources exceeded") {
            return true;
        }
        cur = err.source();
    }
    false
}
