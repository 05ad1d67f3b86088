//! `BusServer`: where the bus runs for a trial — the topology seam. An external server or
//! cluster named by `NATS_URL`, or servers started for the occasion in one of three layouts
//! ([`BusLayout`]): one server (`direct`), the hub's server with one leaf-node server per group
//! of leaves (`leafnodes`, the Go reference's layout), or a 3-node JetStream cluster on
//! loopback (`cluster3`, replicas = 3). Every server is a [`NatsServer`] child, stopped when
//! this drops; all of them share one set of users ([`crate::access`]).

use std::time::{Duration, Instant};

use crate::access::{Credentials, HUB_DOMAIN, Role};
use crate::error::{BusError, Result};
use crate::fixture::{NatsServer, Shape, free_ports};

/// The environment variable naming an external NATS server; set, no fixture is started.
pub const NATS_URL_ENV: &str = "NATS_URL";

/// How the bus is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BusLayout {
    /// One server; hub and leaves are its clients.
    #[default]
    Direct,
    /// The hub's server holds JetStream and accepts leaf-node links; each group of `per`
    /// leaves gets its own local server (no JetStream) linked to it, and those leaves talk only
    /// to their local server.
    LeafNodes {
        /// Leaves per local server.
        per: u32,
    },
    /// Three servers in one JetStream cluster; the stream and buckets have 3 replicas and every
    /// client is given all three URLs.
    Cluster3,
}

/// The server(s) a trial talks to.
#[derive(Debug)]
pub enum BusServer {
    /// An external server (or cluster seed) we neither start nor stop.
    External {
        /// Its client URL.
        url: String,
    },
    /// A child process this process started; stopped when dropped.
    Fixture(NatsServer),
    /// The hub's server and the leaf-node servers linked to it.
    LeafNodes {
        /// The server holding JetStream; the hub connects here.
        hub: NatsServer,
        /// One per group of `per` leaves.
        locals: Vec<NatsServer>,
        /// Leaves per local server.
        per: u32,
    },
    /// A 3-node JetStream cluster.
    Cluster(Vec<NatsServer>),
}

/// How long a new cluster may take to elect its JetStream meta leader (usually ~1 s, seen up
/// to ~10 s: Raft election timeouts are randomised), or a leaf-node server to link to the hub's.
pub const CLUSTER_READY: Duration = Duration::from_secs(60);

impl BusServer {
    /// `NATS_URL` if set and non-empty, else a freshly started fixture with users and
    /// permissions ([`NatsServer::start_secured`]).
    pub fn from_env() -> Result<BusServer> {
        BusServer::resolve(std::env::var(NATS_URL_ENV).ok().as_deref())
    }

    /// An external server at `url` if given and non-empty, else a freshly started secured
    /// fixture.
    pub fn resolve(url: Option<&str>) -> Result<BusServer> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => Ok(BusServer::External {
                url: url.to_string(),
            }),
            None => Ok(BusServer::Fixture(NatsServer::start_secured()?)),
        }
    }

    /// The bus for `leaves` leaves in `layout`: `NATS_URL` (direct only) or started servers.
    pub async fn start(layout: BusLayout, leaves: u32) -> Result<BusServer> {
        let external = std::env::var(NATS_URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty());
        match (layout, external) {
            (BusLayout::Direct, url) => BusServer::resolve(url.as_deref()),
            (_, Some(_)) => Err(BusError::Layout {
                reason: format!(
                    "{NATS_URL_ENV} names an external bus; herd lays out only buses it starts (use --bus direct)"
                ),
            }),
            (BusLayout::LeafNodes { per }, None) => start_leafnodes(leaves, per.max(1)).await,
            (BusLayout::Cluster3, None) => start_cluster3().await,
        }
    }

    /// The client URL for `role` (with its credentials for a secured fixture; an external
    /// server's URL as given, for every role). A cluster's URL lists all three servers.
    pub fn url_as(&self, role: Role) -> String {
        match self {
            BusServer::External { url } => url.clone(),
            BusServer::Fixture(server) => server.url_as(role),
            BusServer::LeafNodes { hub, .. } => hub.url_as(role),
            BusServer::Cluster(nodes) => nodes
                .iter()
                .map(|n| n.url_as(role))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The URL leaf `index` connects with (its local server in `leafnodes`).
    pub fn leaf_url(&self, index: usize) -> String {
        match (self, self.local_of(index)) {
            (BusServer::LeafNodes { locals, .. }, Some(group)) => locals[group].url_as(Role::Leaf),
            _ => self.url_as(Role::Leaf),
        }
    }

    /// The leaf-node server (`local-K`) leaf `index` connects to; `None` in other layouts.
    pub fn local_of(&self, index: usize) -> Option<usize> {
        match self {
            BusServer::LeafNodes { locals, per, .. } => {
                Some((index / *per as usize).min(locals.len().saturating_sub(1)))
            }
            _ => None,
        }
    }

    /// The JetStream domain leaves address (the hub's, when they sit on leaf-node servers).
    pub fn leaf_domain(&self) -> Option<&'static str> {
        match self {
            BusServer::LeafNodes { .. } => Some(HUB_DOMAIN),
            _ => None,
        }
    }

    /// Replicas for the stream and buckets: 3 in a cluster, else 1.
    pub fn replicas(&self) -> usize {
        match self {
            BusServer::Cluster(nodes) => nodes.len(),
            _ => 1,
        }
    }

    /// The layout's name for reports (`direct`, `leafnodes(4 servers)`, `cluster3`).
    pub fn layout_name(&self) -> String {
        match self {
            BusServer::External { .. } | BusServer::Fixture(_) => "direct".into(),
            BusServer::LeafNodes { locals, per, .. } => {
                format!(
                    "leafnodes ({} local servers, {per} leaves each)",
                    locals.len()
                )
            }
            BusServer::Cluster(nodes) => format!("cluster{}", nodes.len()),
        }
    }

    /// The hub's client URL ([`url_as`](Self::url_as) `Role::Hub`).
    pub fn url(&self) -> String {
        self.url_as(Role::Hub)
    }

    /// The URL without credentials, for reports.
    pub fn public_url(&self) -> String {
        self.url()
            .split(',')
            .map(crate::access::redact)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The version of the fixture's binary (`None` for an external server: ask the server).
    pub fn fixture_version(&self) -> Option<String> {
        let server = match self {
            BusServer::External { .. } => return None,
            BusServer::Fixture(server) | BusServer::LeafNodes { hub: server, .. } => server,
            BusServer::Cluster(nodes) => nodes.first()?,
        };
        crate::binary::version_of(server.binary())
            .ok()
            .map(|v| v.to_string())
    }

    /// Stops every started server gracefully (leaf-node servers first); an external server is
    /// left alone.
    pub fn stop(&mut self) -> Result<()> {
        match self {
            BusServer::External { .. } => Ok(()),
            BusServer::Fixture(server) => server.stop(),
            BusServer::LeafNodes { hub, locals, .. } => {
                for local in locals.iter_mut() {
                    local.stop()?;
                }
                hub.stop()
            }
            BusServer::Cluster(nodes) => {
                for node in nodes.iter_mut() {
                    node.stop()?;
                }
                Ok(())
            }
        }
    }
}

fn credentials() -> Result<Credentials> {
    Credentials::generate().map_err(|source| BusError::Io {
        what: "generating bus credentials",
        path: std::env::temp_dir(),
        source,
    })
}

async fn start_leafnodes(leaves: u32, per: u32) -> Result<BusServer> {
    let creds = credentials()?;
    let hub = NatsServer::builder()
        .credentials(creds.clone())
        .shape(Shape {
            leafnode_port: Some(free_ports(1)?[0]),
            domain: Some(HUB_DOMAIN.into()),
            ..Shape::default()
        })
        .start()?;
    let link = hub
        .leafnode_url()
        .map(str::to_string)
        .ok_or_else(|| BusError::Layout {
            reason: "the hub's server announced no leaf-node port".into(),
        })?;
    let groups = leaves.div_ceil(per).max(1);
    let mut locals = Vec::new();
    for _ in 0..groups {
        locals.push(
            NatsServer::builder()
                .credentials(creds.clone())
                .jetstream(false)
                .shape(Shape {
                    leafnode_remote: Some(link.clone()),
                    ..Shape::default()
                })
                .start()?,
        );
    }
    // A local server answers JetStream requests once its link to the hub is up.
    for local in &locals {
        let url = local.url_as(Role::Leaf);
        wait_jetstream(
            &url,
            Some(HUB_DOMAIN),
            "a leaf-node server's link to the hub",
        )
        .await?;
    }
    Ok(BusServer::LeafNodes { hub, locals, per })
}

async fn start_cluster3() -> Result<BusServer> {
    let creds = credentials()?;
    let ports = free_ports(3)?;
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        nodes.push(
            NatsServer::builder()
                .credentials(creds.clone())
                .shape(Shape {
                    name: Some(format!("herd-{}", i + 1)),
                    cluster: Some(("herd".into(), *port, ports.clone())),
                    ..Shape::default()
                })
                .start()?,
        );
    }
    let cluster = BusServer::Cluster(nodes);
    wait_jetstream(
        &cluster.url(),
        None,
        "the 3-node cluster's JetStream meta leader",
    )
    .await?;
    Ok(cluster)
}

/// Waits until `url` answers JetStream requests (a cluster's meta leader is elected, a
/// leaf-node server's link is up).
async fn wait_jetstream(url: &str, domain: Option<&str>, what: &str) -> Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    let mut client = None;
    while started.elapsed() < CLUSTER_READY {
        if client.is_none() {
            client = crate::bus::connect_urls(url, "herd-ready").await.ok();
        }
        if let Some(client) = client.clone() {
            let js = match domain {
                Some(d) => async_nats::jetstream::with_domain(client, d),
                None => async_nats::jetstream::new(client),
            };
            match js.query_account().await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BusError::Layout {
        reason: format!("{what} not ready in {CLUSTER_READY:?}: {last}"),
    })
}
