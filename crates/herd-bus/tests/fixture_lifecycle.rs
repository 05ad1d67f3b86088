//! The fixture starts, stops, restarts on the same store, and survives a crash (SIGKILL).

mod common;

use bytes::Bytes;
use herd_bus::{Bus, BusError, BusOptions};
use std::time::Duration;

#[tokio::test]
async fn start_stop_restart_reuses_port_and_store() {
    let (mut server, bus) = common::bus().await;
    let port = server.port();
    assert!(
        server.url().starts_with("nats://127.0.0.1:"),
        "{}",
        server.url()
    );
    assert!(server.is_running());
    drop(bus);

    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(server.pid().is_none());

    server.restart().unwrap();
    assert!(server.is_running());
    assert_eq!(
        server.port(),
        port,
        "restart keeps the port so clients reconnect"
    );
    Bus::connect(server.url())
        .await
        .expect("connect after restart");
}

#[tokio::test]
async fn kv_value_written_before_kill_is_readable_after_restart() {
    let (mut server, bus) = common::bus().await;
    let kv = bus
        .jetstream()
        .get_key_value(herd_bus::TASKS_BUCKET)
        .await
        .unwrap();
    kv.put("survivor", Bytes::from_static(b"still here"))
        .await
        .unwrap();
    drop(kv);
    drop(bus);

    server.kill().unwrap();
    assert!(!server.is_running());
    server.restart().unwrap();

    let bus = Bus::connect(server.url()).await.unwrap();
    let kv = bus
        .jetstream()
        .get_key_value(herd_bus::TASKS_BUCKET)
        .await
        .unwrap();
    let value = kv.get("survivor").await.unwrap();
    assert_eq!(value.as_deref(), Some(&b"still here"[..]));
}

#[tokio::test]
async fn unreachable_server_fails_fast_and_names_the_url() {
    // Bind then drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let opts = BusOptions {
        connect_attempts: 3,
        connect_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let err = Bus::connect_with(&url, opts).await.unwrap_err();
    match &err {
        BusError::Connect {
            url: u, attempts, ..
        } => {
            assert_eq!(u, &url);
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected Connect error, got {other:?}"),
    }
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn a_failed_start_reports_the_log_tail() {
    // A store dir that is a file makes JetStream fail at start; the error must carry the log.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("js"), b"not a directory").unwrap();
    let binary = herd_bus::binary::resolve().unwrap().path;
    let err = herd_bus::NatsServer::start_in(&binary, dir.path()).unwrap_err();
    match err {
        BusError::NotReady {
            log_tail, reason, ..
        } => {
            assert!(!log_tail.is_empty(), "log tail empty; reason: {reason}");
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
}

#[tokio::test]
async fn nats_url_selects_an_external_server_and_none_starts_a_fixture() {
    let (server, _bus) = common::bus().await;
    let external = herd_bus::BusServer::resolve(Some(server.url())).unwrap();
    assert!(matches!(&external, herd_bus::BusServer::External { url } if url == server.url()));
    assert!(external.fixture_version().is_none());
    Bus::connect(&external.url())
        .await
        .expect("external server is usable");

    let mut own = herd_bus::BusServer::resolve(Some("  ")).unwrap();
    assert!(
        matches!(own, herd_bus::BusServer::Fixture(_)),
        "blank NATS_URL means no external server"
    );
    assert_ne!(own.url(), server.url());
    assert_eq!(
        own.fixture_version().as_deref(),
        Some(herd_bus::binary::PINNED_VERSION)
    );
    own.stop().unwrap();
}
