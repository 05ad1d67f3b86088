//! Connection and load limits: a client that stalls in its headers, sits idle, stops reading
//! its response, or arrives when the hub is full is cut off or turned away — never left to
//! hold a connection (or make others wait) for ever.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use herd_hub::{ConnLimits, HubConfig};

fn limits() -> HubConfig {
    HubConfig {
        conn_limits: ConnLimits {
            header_read: Duration::from_millis(500),
            write_stall: Duration::from_millis(500),
        },
        ..HubConfig::default()
    }
}

/// Reads until the server closes (`true`) or 20 s pass without it (`false`); returns the
/// bytes read too.
fn read_until_closed(stream: &mut TcpStream) -> (bool, usize) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (mut buf, mut total) = (vec![0u8; 1 << 16], 0);
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (true, total),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (true, total),
            Err(_) => return (false, total),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_headers_and_idle_connections_are_closed() {
    let s = common::hub_in(tempfile::tempdir().unwrap(), limits()).await;
    let addr = s.hub.addr();
    tokio::task::spawn_blocking(move || {
        // Half a request head, then nothing.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /herd.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        assert!(
            read_until_closed(&mut slow).0,
            "a stalled head kept its connection"
        );

        // One complete request on a keep-alive connection, then silence.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(
            format!(
                "GET /herd.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: {addr}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let (closed, read) = read_until_closed(&mut idle);
        assert!(read > 0, "the request was answered");
        assert!(closed, "an idle keep-alive connection stayed open");
    })
    .await
    .unwrap();
    // The hub still serves.
    let (status, _) = common::http(
        addr,
        "GET",
        "/herd.git/info/refs?service=git-upload-pack",
        &[],
        b"",
    );
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_hub_answers_503_at_once_and_lands_the_held_push_after() {
    let s = common::hub_in(
        tempfile::tempdir().unwrap(),
        HubConfig {
            max_in_flight: 1,
            ..HubConfig::default()
        },
    )
    .await;
    let (oid, body) = common::one_commit_push(&s, "slot-0/a.txt").await;
    let addr = s.hub.addr();
    // The one slot is taken by a push that cannot finish while the store is held.
    let hold = s.hub.hold_store().await;
    let push = tokio::task::spawn_blocking(move || {
        common::http(
            addr,
            "POST",
            "/herd.git/git-receive-pack",
            &[("Content-Type", "application/x-git-receive-pack-request")],
            &body,
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let turned_away = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            common::http_full(
                addr,
                "GET",
                "/herd.git/info/refs?service=git-upload-pack",
                &[],
                b"",
            )
        }),
    )
    .await
    .expect("the second request waited instead of being turned away")
    .unwrap();
    assert_eq!(turned_away.0, 503, "{turned_away:?}");
    assert!(
        turned_away
            .1
            .to_ascii_lowercase()
            .contains("retry-after: 1")
    );
    assert_eq!(s.hub.stats().overloaded, 1);
    drop(hold);
    let (status, answer) = push.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("ok refs/heads/main"), "{answer}");
    assert_eq!(s.hub.tip().unwrap(), oid.to_string());
}

/// A fetch client that never reads its (large) response is cut off after the write stall.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_cut_off() {
    let s = common::hub_in(tempfile::tempdir().unwrap(), limits()).await;
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let tip = tokio::task::spawn_blocking(move || {
        let a = common::clone(&url, &work.join("a"));
        // ~40 MiB of barely compressible text (random printable ASCII, ~6.6 bits a byte),
        // 4 MiB a push (under the body limit): far more than the socket buffers hold.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut oid = None;
        for i in 0..10 {
            let text: String = (0..(4 << 20))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'!' + (x % 94) as u8)
                })
                .collect();
            oid = Some(common::commit_file(&a, &format!("slot-0/blob{i}"), &text));
            common::push(&a).unwrap();
        }
        oid.unwrap().to_string()
    })
    .await
    .unwrap();
    let addr = s.hub.addr();
    tokio::task::spawn_blocking(move || {
        let mut body = Vec::new();
        herd_hub::pkt_line::write(&mut body, format!("want {tip}\n").as_bytes());
        herd_hub::pkt_line::flush(&mut body);
        herd_hub::pkt_line::write(&mut body, b"done\n");
        let mut stream = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /herd.git/git-upload-pack HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        // Not reading (past a peek that waits for the first byte: the pack is being written):
        // the hub's writes fill the socket buffers and stall.
        stream.peek(&mut [0u8; 1]).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let (closed, read) = read_until_closed(&mut stream);
        assert!(closed, "the stalled response kept its connection");
        assert!(read < 30 << 20, "the whole response arrived ({read} bytes)");
    })
    .await
    .unwrap();
}

/// A push whose client hung up still holds its slot until it has landed: hanging up cannot be
/// used to pile up pushes past `max_in_flight`.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_up_push_keeps_its_slot_until_it_lands() {
    let s = common::hub_in(
        tempfile::tempdir().unwrap(),
        HubConfig {
            max_in_flight: 1,
            ..HubConfig::default()
        },
    )
    .await;
    let (oid, body) = common::one_commit_push(&s, "slot-0/a.txt").await;
    let addr = s.hub.addr();
    let hold = s.hub.hold_store().await;
    common::push_and_hang_up(addr, body).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let get = move || {
        common::http(
            addr,
            "GET",
            "/herd.git/info/refs?service=git-upload-pack",
            &[],
            b"",
        )
        .0
    };
    assert_eq!(
        tokio::task::spawn_blocking(get).await.unwrap(),
        503,
        "the hung-up push gave its slot away"
    );
    drop(hold);
    for _ in 0..200 {
        if s.hub.tip() == Some(oid.to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(s.hub.tip(), Some(oid.to_string()), "the push landed");
    let mut status = 0;
    for _ in 0..100 {
        status = tokio::task::spawn_blocking(get).await.unwrap();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the slot came back after the push landed");
}
