//! `NatsServer`: a real `nats-server` with JetStream as a child process, for tests and trials.
//!
//! The server binds 127.0.0.1 on a random port (`-p -1`; note `-p 0` means 4222) and keeps its
//! JetStream store, log and ports file in its own directory. Readiness is the ports file the
//! server writes (`<exe>_<pid>.ports`, JSON with the client URL) plus an accepted TCP connection.
//! The child is killed when the fixture drops and, on Linux, also when the thread that started it
//! dies (`PR_SET_PDEATHSIG`), so a test binary that exits or is killed leaves no server behind.
//! `restart()` reuses the store directory and the port, which is what fault tests need: clients
//! reconnect to the same address and find their KV values again.

use std::fs::File;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::access::Credentials;
use crate::access::Role;
use crate::binary;
use crate::error::{BusError, Result};

/// How long `start` waits for the server to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) nats-server child process.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    child: Option<Child>,
    port: u16,
    url: String,
    auth: Option<Credentials>,
    max_store: Option<u64>,
    jetstream: bool,
    shape: Shape,
    leafnode_url: Option<String>,
}

/// How to start a [`NatsServer`]: which binary, where its store lives, users, store size.
#[derive(Debug, Clone)]
pub struct NatsServerBuilder {
    binary: Option<PathBuf>,
    dir: Option<PathBuf>,
    secured: bool,
    credentials: Option<Credentials>,
    max_store: Option<u64>,
    jetstream: bool,
    shape: Shape,
}

impl Default for NatsServerBuilder {
    fn default() -> Self {
        NatsServerBuilder {
            binary: None,
            dir: None,
            secured: false,
            credentials: None,
            max_store: None,
            jetstream: true,
            shape: Shape::default(),
        }
    }
}

/// Where a server sits in a topology: cluster membership and leaf-node links.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// `server_name` (required in a JetStream cluster).
    pub name: Option<String>,
    /// Cluster membership: (cluster name, this server's route port, every member's route port).
    pub cluster: Option<(String, u16, Vec<u16>)>,
    /// Accept leaf-node links on this loopback port (user `link`).
    pub leafnode_port: Option<u16>,
    /// The JetStream domain (the hub's server of a leaf-node layout).
    pub domain: Option<String>,
    /// Link to this hub leaf-node URL (`nats-leaf://127.0.0.1:PORT`) as user `link`.
    pub leafnode_remote: Option<String>,
}

impl NatsServerBuilder {
    /// Runs this binary instead of the resolved one ([`binary::resolve`]).
    pub fn binary(mut self, binary: &Path) -> Self {
        self.binary = Some(binary.to_path_buf());
        self
    }

    /// Keeps the store, log and ports file in `dir` (created if missing, kept after drop)
    /// instead of a fresh temp dir.
    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Starts with users and permissions ([`crate::access`]): a `hub` user that may do
    /// everything and a `leaf` user limited to what a leaf needs.
    pub fn secured(mut self, secured: bool) -> Self {
        self.secured = secured;
        self
    }

    /// Starts with users and permissions using these passwords (servers of one topology share
    /// them).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self.secured = true;
        self
    }

    /// Runs JetStream (default) or not (a leaf-node server that forwards to the hub's).
    pub fn jetstream(mut self, on: bool) -> Self {
        self.jetstream = on;
        self
    }

    /// Places the server in a topology.
    pub fn shape(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    /// Caps the JetStream file store (`max_file_store`) at `bytes`; by default the server derives
    /// it from the free disk.
    pub fn max_store(mut self, bytes: u64) -> Self {
        self.max_store = Some(bytes);
        self
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(self) -> Result<NatsServer> {
        let binary = match self.binary {
            Some(b) => b,
            None => binary::resolve()?.path,
        };
        let auth = match (self.credentials, self.secured) {
            (Some(c), _) => Some(c),
            (None, true) => Some(Credentials::generate().map_err(|source| BusError::Io {
                what: "generating bus credentials",
                path: std::env::temp_dir(),
                source,
            })?),
            (None, false) => None,
        };
        let (dir, temp) = match self.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| BusError::Io {
                    what: "creating",
                    path: dir.clone(),
                    source,
                })?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("herd-nats-")
                    .tempdir()
                    .map_err(|source| BusError::Io {
                        what: "creating temp dir",
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let mut server = NatsServer {
            binary,
            dir,
            _temp: temp,
            child: None,
            port: 0,
            url: String::new(),
            auth,
            max_store: self.max_store,
            jetstream: self.jetstream,
            leafnode_url: self
                .shape
                .leafnode_port
                .map(|p| format!("nats-leaf://127.0.0.1:{p}")),
            shape: self.shape,
        };
        server.launch(None)?;
        Ok(server)
    }
}

impl NatsServer {
    /// A builder for a server with non-default settings.
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder::default()
    }

    /// Starts a server with the resolved binary (see [`binary::resolve`]) in a fresh temp dir.
    pub fn start() -> Result<NatsServer> {
        NatsServer::builder().start()
    }

    /// Starts a server with users and permissions ([`crate::access`]): a `hub` user that may do
    /// everything and a `leaf` user limited to what a leaf needs. Connect with
    /// [`url_as`](Self::url_as); [`url`](Self::url) (no credentials) is refused.
    pub fn start_secured() -> Result<NatsServer> {
        NatsServer::builder().secured(true).start()
    }

    /// Starts `binary` with its store in `dir` (created if missing, kept after drop).
    pub fn start_in(binary: &Path, dir: &Path) -> Result<NatsServer> {
        NatsServer::builder().binary(binary).dir(dir).start()
    }

    /// The client URL, e.g. `nats://127.0.0.1:34567` (no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The client URL with `role`'s credentials when the server is secured, else [`url`](Self::url).
    pub fn url_as(&self, role: Role) -> String {
        match &self.auth {
            Some(c) => crate::access::url_with(&self.url, role, c.password(role)),
            None => self.url.clone(),
        }
    }

    /// The URL leaf-node servers link to (`nats-leaf://127.0.0.1:PORT`), when this server
    /// accepts links.
    pub fn leafnode_url(&self) -> Option<&str> {
        self.leafnode_url.as_deref()
    }

    /// The passwords, when secured.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.auth.as_ref()
    }

    /// Is this server started with users and permissions?
    pub fn is_secured(&self) -> bool {
        self.auth.is_some()
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The child's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding the JetStream store (`js/`), the log and the ports file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The binary this fixture runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Is the child still running?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Graceful stop: SIGTERM, then SIGKILL if it has not exited after 5 s.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Abrupt stop (SIGKILL), as a crash would be. The store stays for [`restart`](Self::restart).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Starts the server again on the same store dir and port (stopping it first if running).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let port = self.port;
        self.launch(Some(port))
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(self.dir.join("nats.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn launch(&mut self, port: Option<u16>) -> Result<()> {
        let mut cmd = Command::new(&self.binary);
        let mut conf_text = String::new();
        if let Some(auth) = &self.auth {
            conf_text.push_str(&auth.server_config());
        }
        if self.max_store.is_some() || self.shape.domain.is_some() {
            conf_text.push_str("jetstream {\n");
            if let Some(bytes) = self.max_store {
                conf_text.push_str(&format!("  max_file_store: {bytes}\n"));
            }
            if let Some(domain) = &self.shape.domain {
                conf_text.push_str(&format!("  domain: {domain:?}\n"));
            }
            conf_text.push_str("}\n");
        }
        conf_text.push_str(&self.shape_config());
        if !conf_text.is_empty() {
            // Written private: it may hold passwords.
            let conf = self.dir.join("herd.conf");
            write_private(&conf, &conf_text).map_err(|source| BusError::Io {
                what: "writing",
                path: conf.clone(),
                source,
            })?;
            cmd.arg("-c").arg(&conf);
        }
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.dir.join("js"));
        }
        cmd.args(["-a", "127.0.0.1", "-p"])
            .arg(port.map_or("-1".to_string(), |p| p.to_string()))
            .arg("--ports_file_dir")
            .arg(&self.dir)
            .arg("-l")
            .arg(self.dir.join("nats.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| BusError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        let pid = child.id();
        self.child = Some(child);
        let started = Instant::now();
        match self.wait_ready(pid, started) {
            Ok((port, url)) => {
                self.port = port;
                self.url = url;
                Ok(())
            }
            Err(reason) => {
                let _ = self.kill();
                Err(BusError::NotReady {
                    binary: self.binary.clone(),
                    dir: self.dir.clone(),
                    waited: started.elapsed(),
                    reason,
                    log_tail: self.log_tail(20),
                })
            }
        }
    }

    fn wait_ready(
        &mut self,
        pid: u32,
        started: Instant,
    ) -> std::result::Result<(u16, String), String> {
        let ports_file = self
            .dir
            .join(format!("{}_{pid}.ports", exe_name(&self.binary)));
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("exited early with {status}"));
            }
            if let Some((port, url)) = read_ports_file(&ports_file)
                && TcpStream::connect_timeout(
                    &([127, 0, 0, 1], port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            {
                return Ok((port, url));
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "no connectable port announced in {}",
                    ports_file.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl NatsServer {
    /// The config blocks of this server's place in a topology.
    fn shape_config(&self) -> String {
        let mut text = String::new();
        if let Some(name) = &self.shape.name {
            text.push_str(&format!("server_name: {name:?}\n"));
        }
        if let Some((cluster, port, members)) = &self.shape.cluster {
            let routes: Vec<String> = members
                .iter()
                .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
                .collect();
            text.push_str(&format!(
                "cluster {{\n  name: {cluster:?}\n  listen: \"127.0.0.1:{port}\"\n  routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        let link = self.auth.as_ref().map(|a| a.link_password().to_string());
        if let Some(listen) = self.shape.leafnode_port {
            text.push_str(&format!("leafnodes {{\n  listen: \"127.0.0.1:{listen}\"\n"));
            if let Some(link) = &link {
                text.push_str(&format!(
                    "  authorization {{ user: \"link\", password: {link:?} }}\n"
                ));
            }
            text.push_str("}\n");
        }
        if let Some(remote) = &self.shape.leafnode_remote {
            let url = match (&link, remote.split_once("://")) {
                (Some(link), Some((scheme, rest))) => format!("{scheme}://link:{link}@{rest}"),
                _ => remote.clone(),
            };
            text.push_str(&format!(
                "leafnodes {{\n  remotes: [ {{ url: {url:?} }} ]\n}}\n"
            ));
        }
        text
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Writes `text` to a file only its owner can read (it holds passwords).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

fn exe_name(binary: &Path) -> String {
    binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nats-server".into())
}

/// (client port, client URL) from the ports file the server writes.
fn read_ports_file(path: &Path) -> Option<(u16, String)> {
    #[derive(serde::Deserialize)]
    struct Ports {
        nats: Vec<String>,
    }
    let text = std::fs::read_to_string(path).ok()?;
    let ports: Ports = serde_json::from_str(&text).ok()?;
    let url = ports.nats.into_iter().next()?;
    let port = url.rsplit(':').next()?.parse().ok()?;
    Some((port, url))
}

/// `n` distinct free loopback ports (bound, read, released): cluster routes and leaf-node
/// listeners must be known before the servers that use them start (the ports file announces
/// only the client port).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let err = |source| BusError::Io {
        what: "finding a free port on",
        path: "127.0.0.1".into(),
        source,
    };
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<_>>()
        .map_err(err)?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()
        .map_err(err)
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid; the child is not yet reaped, so the pid is ours.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}
