//! A bus whose JetStream store is smaller than the configured stream sizes still comes up: the
//! streams shrink to what the server grants (a CI machine with little free disk failed every
//! trial with "insufficient storage resources" before). A store too small for even the floor
//! fails with an error naming the stream and the cause.

use herd_bus::{Bus, NatsServer, TIP_STREAM};

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn streams_shrink_to_fit_a_small_store_and_still_carry_tips() {
    let server = NatsServer::builder().max_store(48 * MIB).start().unwrap();
    let bus = Bus::connect(server.url()).await.unwrap();
    let mut stream = bus.jetstream().get_stream(TIP_STREAM).await.unwrap();
    let granted = stream.info().await.unwrap().config.max_bytes;
    // Configured 1 GiB; the store holds 48 MiB shared with the 64 MiB turn stream.
    assert!(
        granted > 0 && granted as u64 <= 48 * MIB,
        "granted {granted}"
    );

    let mut tips = bus.tips().await.unwrap();
    let tip = herd_bus::TipChanged {
        oid: format!("{:040x}", 2),
        prev: format!("{:040x}", 1),
        seq: 1,
        slot: None,
        at: 1_700_000_000_000,
        pushed: None,
        pack_bytes: 0,
        pack_index: Vec::new(),
    };
    bus.publish_tips(&[herd_bus::TipOut {
        tip: tip.clone(),
        traceparent: None,
        pack: None,
    }])
    .await
    .unwrap();
    use futures::StreamExt;
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), tips.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.tip.oid, tip.oid);

    // The buckets reserve nothing: the shrunk streams left them room to write.
    for i in 0..100 {
        let won = bus
            .try_claim(
                &format!("t-{i}"),
                "leaf-0",
                std::time::Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert!(matches!(won, herd_bus::ClaimOutcome::Won { .. }), "{won:?}");
    }
}

#[tokio::test]
async fn a_store_below_the_floor_is_a_clear_error() {
    let server = NatsServer::builder().max_store(MIB).start().unwrap();
    let err = Bus::connect(server.url()).await.unwrap_err().to_string();
    assert!(err.contains("HERD_"), "{err}");
    assert!(err.contains("max_file_store"), "{err}");
}

/// Racing first connects on a small store: each shrinks on its own, the first to create wins,
/// the others bind its stream (sizes may differ, which a plain create refuses).
#[tokio::test]
async fn racing_connects_on_a_small_store_all_bind() {
    let server = NatsServer::builder().max_store(48 * MIB).start().unwrap();
    let joins: Vec<_> = (0..6)
        .map(|_| {
            let url = server.url().to_string();
            tokio::spawn(async move { Bus::connect(&url).await })
        })
        .collect();
    for j in joins {
        j.await.unwrap().expect("every racing connect binds");
    }
}
