//! The leaves' git transport: a `git2` smart subtransport for `http://`.
//!
//! libgit2's built-in HTTP transport stalls ~40 ms on every POST here (headers and body in
//! separate writes, no TCP_NODELAY: Nagle meets delayed ACK). This one buffers the request body
//! until the first read, sends headers and body in one `write_all` on a `TCP_NODELAY` socket,
//! and keeps one connection per thread and host alive. [`register`] installs it once per
//! process. [`with_headers`] adds request headers for the git calls made inside it on the
//! current thread (git2 runs the transport on the calling thread): the leaf passes its
//! `traceparent` and `x-herd-slot` this way. [`last_exchange`] tells what the hub said beyond
//! what libgit2 reports: the tip it last advertised for a push (libgit2 refuses a push locally
//! when that tip is not in the local store, without saying which tip it was) and the commit a
//! push became on the trunk ([`crate::LANDED_HEADER`], set when the merge queue replayed it).
//! Plain HTTP/1.1 only (the hub is loopback).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};

thread_local! {
    static EXTRA_HEADERS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    static EXCHANGE: RefCell<Exchange> = RefCell::new(Exchange::default());
    static CONNECTIONS: RefCell<HashMap<String, BufReader<TcpStream>>> = RefCell::new(HashMap::new());
}

/// Registers the transport for `http://` URLs (idempotent; later calls return the first result).
pub fn register() -> Result<(), String> {
    crate::libgit2_opts::tune();
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: called once per process (OnceLock), before any transport for "http" is used
            // by this crate; the factory is 'static and thread-safe.
            unsafe {
                git2::transport::register("http", |remote| {
                    Transport::smart(remote, true, HttpSubtransport)
                })
            }
            .map_err(|e| e.message().to_string())
        })
        .clone()
}

/// What the hub told this thread in the git calls of the last [`with_headers`] scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exchange {
    /// The trunk tip of the last receive-pack advertisement.
    pub advertised_tip: Option<git2::Oid>,
    /// The commit the last push landed as (the [`crate::LANDED_HEADER`] response header).
    pub landed: Option<git2::Oid>,
}

/// What the hub said during the last [`with_headers`] scope on this thread.
pub fn last_exchange() -> Exchange {
    EXCHANGE.with(|e| e.borrow().clone())
}

/// Sends one receive-pack request (`POST <url>/git-receive-pack`, the body already built)
/// through the same kept-alive connections the git2 transport uses, with `headers` added.
/// Returns the response body (report-status) and what the hub said beyond it. A non-200
/// answer is an error quoting the hub's reason.
pub fn receive_pack(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> io::Result<(Vec<u8>, Exchange)> {
    EXCHANGE.with(|e| *e.borrow_mut() = Exchange::default());
    let target = Target::parse(&format!("{}/git-receive-pack", url.trim_end_matches('/')))
        .map_err(io::Error::other)?;
    let mut stream = HttpStream {
        method: "POST",
        target,
        content_type: Some("application/x-git-receive-pack-request"),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body,
        response: None,
        action: Service::ReceivePack,
    };
    let answer = stream.exchange()?;
    Ok((answer, last_exchange()))
}

/// Runs `f` with extra HTTP request headers on this thread's git requests.
pub fn with_headers<R>(headers: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    EXCHANGE.with(|e| *e.borrow_mut() = Exchange::default());
    let new: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let old = EXTRA_HEADERS.with(|h| std::mem::replace(&mut *h.borrow_mut(), new));
    let out = f();
    EXTRA_HEADERS.with(|h| *h.borrow_mut() = old);
    out
}

struct HttpSubtransport;

impl SmartSubtransport for HttpSubtransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let base = url.trim_end_matches('/');
        let (method, path, content_type) = match action {
            Service::UploadPackLs => ("GET", "/info/refs?service=git-upload-pack", None),
            Service::ReceivePackLs => ("GET", "/info/refs?service=git-receive-pack", None),
            Service::UploadPack => (
                "POST",
                "/git-upload-pack",
                Some("application/x-git-upload-pack-request"),
            ),
            Service::ReceivePack => (
                "POST",
                "/git-receive-pack",
                Some("application/x-git-receive-pack-request"),
            ),
        };
        let target =
            Target::parse(&format!("{base}{path}")).map_err(|e| git2::Error::from_str(&e))?;
        let headers = EXTRA_HEADERS.with(|h| h.borrow().clone());
        Ok(Box::new(HttpStream {
            method,
            target,
            content_type,
            headers,
            body: Vec::new(),
            response: None,
            action,
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

struct Target {
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http:// URL: {url}"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        Ok(Target {
            authority: authority.to_string(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_string()
            },
        })
    }
}

struct HttpStream {
    method: &'static str,
    target: Target,
    content_type: Option<&'static str>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    response: Option<Cursor<Vec<u8>>>,
    action: Service,
}

impl Write for HttpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.body.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            let body = self.exchange()?;
            self.response = Some(Cursor::new(body));
        }
        match &mut self.response {
            Some(cursor) => cursor.read(buf),
            None => Ok(0),
        }
    }
}

impl HttpStream {
    fn request_bytes(&self) -> Vec<u8> {
        let mut req = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: git/2.0 (herd-hub client)\r\n",
            self.method, self.target.path, self.target.authority
        );
        if let Some(ct) = self.content_type {
            req.push_str(&format!(
                "Content-Type: {ct}\r\nAccept: {}\r\n",
                ct.replace("-request", "-result")
            ));
        }
        for (k, v) in &self.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Sends the request (one write) and reads the whole response body. A `503` (the hub shed
    /// the request before reading it: nothing was applied) is retried after a short pause, up
    /// to [`BUSY_RETRIES`] times.
    fn exchange(&mut self) -> io::Result<Vec<u8>> {
        let mut attempt = 0;
        loop {
            let response = self.round_trip()?;
            if response.status == 503 && attempt < BUSY_RETRIES {
                attempt += 1;
                std::thread::sleep(Duration::from_millis((50 << attempt).min(1000)));
                continue;
            }
            self.note(&response);
            if response.status != 200 {
                let reason = String::from_utf8_lossy(&response.body)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                return Err(io::Error::other(format!(
                    "hub answered {} for {} {}: {reason}",
                    response.status, self.method, self.target.path
                )));
            }
            return Ok(response.body);
        }
    }

    /// One request and its response. A kept-alive connection the server has closed is
    /// retried once on a fresh one.
    fn round_trip(&mut self) -> io::Result<Response> {
        let request = self.request_bytes();
        let key = self.target.authority.clone();
        if let Some(mut conn) = CONNECTIONS.with(|c| c.borrow_mut().remove(&key))
            && let Ok((response, keep)) = send(&mut conn, &request)
        {
            return self.keep(conn, response, keep);
        }
        let stream = TcpStream::connect(&key)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut conn = BufReader::new(stream);
        match send(&mut conn, &request) {
            Ok((response, keep)) => self.keep(conn, response, keep),
            Err(Stale) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("hub {key} closed the connection"),
            )),
        }
    }

    fn keep(
        &self,
        conn: BufReader<TcpStream>,
        response: io::Result<Response>,
        keep: bool,
    ) -> io::Result<Response> {
        let response = response?;
        if keep {
            CONNECTIONS.with(|c| c.borrow_mut().insert(self.target.authority.clone(), conn));
        }
        Ok(response)
    }
}

/// How often a request the hub shed (`503`) is sent again (pauses of 100, 200, 400, 800 ms,
/// then 1 s: ~7 s in all).
pub const BUSY_RETRIES: u32 = 8;

struct Response {
    status: u16,
    body: Vec<u8>,
    landed: Option<String>,
}

impl HttpStream {
    /// Keeps what [`Exchange`] reports from a response.
    fn note(&self, response: &Response) {
        match self.action {
            Service::ReceivePackLs => {
                let tip = advertised_tip(&response.body);
                EXCHANGE.with(|e| e.borrow_mut().advertised_tip = tip);
            }
            Service::ReceivePack => {
                let landed = response
                    .landed
                    .as_deref()
                    .and_then(|t| git2::Oid::from_str(t).ok());
                EXCHANGE.with(|e| e.borrow_mut().landed = landed);
            }
            _ => {}
        }
    }
}

/// The oid of the first ref line of an advertisement (after the `# service=` packet).
fn advertised_tip(body: &[u8]) -> Option<git2::Oid> {
    let mut reader = crate::pkt_line::PktReader::new(body);
    while let Ok(Some(pkt)) = reader.next_pkt() {
        if let crate::pkt_line::Pkt::Data(line) = pkt
            && !line.starts_with(b"#")
        {
            let hex = std::str::from_utf8(line.get(..40)?).ok()?;
            return git2::Oid::from_str(hex).ok();
        }
    }
    None
}

/// Nothing came back on a reused connection: safe to retry.
struct Stale;

/// Writes the request and reads one response. `Err(Stale)` only when the connection failed
/// before any response byte arrived.
#[allow(clippy::type_complexity)]
fn send(
    conn: &mut BufReader<TcpStream>,
    request: &[u8],
) -> Result<(io::Result<Response>, bool), Stale> {
    if conn.get_mut().write_all(request).is_err() {
        return Err(Stale);
    }
    let mut status_line = String::new();
    match conn.read_line(&mut status_line) {
        Ok(0) | Err(_) => return Err(Stale),
        Ok(_) => {}
    }
    Ok(read_response(conn, &status_line))
}

fn read_response(
    conn: &mut BufReader<TcpStream>,
    status_line: &str,
) -> (io::Result<Response>, bool) {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad HTTP response: {what}"),
        )
    };
    let Some(status) = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
    else {
        return (Err(bad(status_line.trim())), false);
    };
    let mut length = None;
    let mut chunked = false;
    let mut keep = true;
    let mut landed = None;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).map_err(|_| ()).unwrap_or(0) == 0 {
            return (Err(bad("headers cut short")), false);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => keep = !value.eq_ignore_ascii_case("close"),
                crate::mode::LANDED_HEADER => landed = Some(value.to_string()),
                _ => {}
            }
        }
    }
    let body = if chunked {
        read_chunked(conn)
    } else if let Some(n) = length {
        let mut body = vec![0; n];
        conn.read_exact(&mut body).map(|()| body)
    } else {
        keep = false;
        let mut body = Vec::new();
        conn.read_to_end(&mut body).map(|_| body)
    };
    match body {
        Ok(body) => (
            Ok(Response {
                status,
                body,
                landed,
            }),
            keep,
        ),
        Err(e) => (Err(e), false),
    }
}

fn read_chunked(conn: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        conn.read_line(&mut size_line)?;
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {size_text:?}"),
            )
        })?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let mut line = String::new();
                if conn.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf)?;
    }
}
