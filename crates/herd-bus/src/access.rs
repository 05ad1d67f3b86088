//! Who may do what on the bus. A secured fixture ([`crate::NatsServer::start_secured`]) has two
//! users, each with a random password written to the server's config file (mode 0600):
//!
//! - **hub** — everything: it creates the stream and buckets and is the only one allowed to
//!   publish `herd.tip.changed` (the trial runner uses it too, to read the history back).
//! - **leaf** — what a leaf needs and no more: read and write the claim and task buckets
//!   (`$KV.herd-claims.>`, `$KV.herd-tasks.>`), publish and read turns (`herd.turn.>`), bind
//!   the tip and turn streams and run its own consumers on them; replies on `_INBOX.>`.
//!   Everything else is denied: publishing a tip, creating, updating, purging or deleting a
//!   stream, any other JetStream API (an allow of `$JS.>` would let it run admin APIs).
//!
//! What a leaf can still do, by the subject layout: write *any* task's record and claim (keys
//! are task ids — fencing, epochs and compare-and-swap keep that honest, not permissions), and
//! publish turn messages in another leaf's name. An unauthenticated client gets nothing.

use std::fmt::Write as _;

/// The two bus users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The hub (and the trial runner).
    Hub,
    /// A leaf.
    Leaf,
}

impl Role {
    /// The user name.
    pub fn user(self) -> &'static str {
        match self {
            Role::Hub => "hub",
            Role::Leaf => "leaf",
        }
    }
}

/// Subjects a leaf may publish to (requests included).
pub const LEAF_PUBLISH: &[&str] = &[
    "$KV.herd-claims.>",
    "$KV.herd-tasks.>",
    "herd.turn.>",
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.HERD_TIP",
    "$JS.API.STREAM.INFO.HERD_TURN",
    "$JS.API.STREAM.INFO.KV_herd-claims",
    "$JS.API.STREAM.INFO.KV_herd-tasks",
    "$JS.API.DIRECT.GET.KV_herd-claims.>",
    "$JS.API.DIRECT.GET.KV_herd-tasks.>",
    "$JS.API.STREAM.MSG.GET.KV_herd-claims",
    "$JS.API.STREAM.MSG.GET.KV_herd-tasks",
    "$JS.API.CONSUMER.CREATE.HERD_TIP",
    "$JS.API.CONSUMER.CREATE.HERD_TURN",
    "$JS.API.CONSUMER.CREATE.HERD_TIP.>",
    "$JS.API.CONSUMER.CREATE.HERD_TURN.>",
    "$JS.API.CONSUMER.MSG.NEXT.HERD_TIP.>",
    "$JS.API.CONSUMER.MSG.NEXT.HERD_TURN.>",
    "$JS.API.CONSUMER.INFO.HERD_TIP.>",
    "$JS.API.CONSUMER.INFO.HERD_TURN.>",
    "$JS.API.CONSUMER.DELETE.HERD_TIP.>",
    "$JS.API.CONSUMER.DELETE.HERD_TURN.>",
];

/// The JetStream domain of the hub's server in the `leafnodes` layout: leaves on a leaf-node
/// server reach its JetStream through `$JS.herd.API` (a leaf-node server without JetStream does
/// not forward the plain `$JS.API`).
pub const HUB_DOMAIN: &str = "herd";

/// Subjects a leaf may never publish to, whatever the allow list says (deny wins).
pub const LEAF_DENY: &[&str] = &[
    "herd.tip.>",
    "$JS.API.STREAM.CREATE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
];

/// Subjects a leaf may subscribe to.
pub const LEAF_SUBSCRIBE: &[&str] = &["_INBOX.>"];

/// The passwords of a secured server.
#[derive(Clone)]
pub struct Credentials {
    hub: String,
    leaf: String,
    link: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

impl Credentials {
    /// Fresh random passwords (128 bits each, hex).
    pub fn generate() -> std::io::Result<Credentials> {
        let secret = || -> std::io::Result<String> {
            let mut raw = [0u8; 16];
            getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(raw.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            }))
        };
        Ok(Credentials {
            hub: secret()?,
            leaf: secret()?,
            link: secret()?,
        })
    }

    /// `role`'s password.
    pub fn password(&self, role: Role) -> &str {
        match role {
            Role::Hub => &self.hub,
            Role::Leaf => &self.leaf,
        }
    }

    /// The password of leaf-node links (user `link`): a local leaf-node server's connection to
    /// the hub's server. Links are infrastructure, not clients: each local server enforces the
    /// hub and leaf users' permissions on its own clients.
    pub fn link_password(&self) -> &str {
        &self.link
    }

    /// The server's `authorization` block.
    pub fn server_config(&self) -> String {
        // Each JetStream subject also in its form from a leaf-node server, through the hub's
        // domain ([`HUB_DOMAIN`]): `$JS.herd.API.…` for the API, `$JS.herd.API.$KV.…` for puts.
        let list = |subjects: &[&str]| {
            subjects
                .iter()
                .flat_map(|s| {
                    let domained = if let Some(api) = s.strip_prefix("$JS.API") {
                        Some(format!("$JS.{HUB_DOMAIN}.API{api}"))
                    } else {
                        s.starts_with("$KV.")
                            .then(|| format!("$JS.{HUB_DOMAIN}.API.{s}"))
                    };
                    std::iter::once(s.to_string()).chain(domained)
                })
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "authorization {{\n  users = [\n    {{ user: \"hub\", password: {hub:?} }}\n    {{ user: \"leaf\", password: {leaf:?}, permissions: {{\n        publish: {{ allow: [{allow}], deny: [{deny}] }}\n        subscribe: {{ allow: [{sub}] }}\n    }} }}\n  ]\n}}\n",
            hub = self.hub,
            leaf = self.leaf,
            allow = list(LEAF_PUBLISH),
            deny = list(LEAF_DENY),
            sub = list(LEAF_SUBSCRIBE),
        )
    }
}

/// `url` with `role`'s credentials in it (`nats://user:password@host:port`).
pub fn url_with(url: &str, role: Role, password: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}:{password}@{rest}", role.user()),
        None => format!("nats://{}:{password}@{url}", role.user()),
    }
}

/// `url` without any credentials, for logs and reports.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_and_shed_credentials() {
        let u = url_with("nats://127.0.0.1:4222", Role::Leaf, "pw");
        assert_eq!(u, "nats://leaf:pw@127.0.0.1:4222");
        assert_eq!(redact(&u), "nats://127.0.0.1:4222");
        assert_eq!(redact("nats://127.0.0.1:1"), "nats://127.0.0.1:1");
        let c = Credentials::generate().unwrap();
        assert_ne!(c.password(Role::Hub), c.password(Role::Leaf));
        assert!(!format!("{c:?}").contains(c.password(Role::Hub)));
        let conf = c.server_config();
        assert!(conf.contains("\"herd.tip.>\"") && conf.contains(c.password(Role::Leaf)));
    }
}
