//! Bus permissions on a real secured nats-server: a leaf can do everything a leaf does and
//! nothing the hub alone may do; a client without credentials gets nothing.

use std::time::Duration;

use futures::StreamExt;
use herd_bus::{
    Bus, ClaimOutcome, NatsServer, Role, TaskRecord, TaskState, TipChanged, TurnKind, TurnMsg,
};

fn task(id: &str) -> TaskRecord {
    TaskRecord {
        id: id.into(),
        title: "t".into(),
        leaf: "leaf-0".into(),
        slot: "slots/leaf-0".into(),
        paths: vec!["slots/leaf-0/a".into()],
        state: TaskState::Open,
        epoch: None,
        commit: None,
        updated: 0,
    }
}

fn tip(seq: u64) -> TipChanged {
    TipChanged {
        oid: format!("{seq:040x}"),
        prev: format!("{:040x}", seq - 1),
        seq,
        slot: None,
        at: 0,
        pushed: None,
        pack_bytes: 0,
        pack_index: Vec::new(),
    }
}

#[tokio::test]
async fn a_leaf_does_its_work_and_nothing_else() {
    let server = NatsServer::start_secured().expect("start secured nats-server");
    let hub = Bus::connect(&server.url_as(Role::Hub))
        .await
        .expect("hub connects");
    let leaf = Bus::join(&server.url_as(Role::Leaf))
        .await
        .expect("leaf joins");

    // Everything a leaf does.
    let mut tips = leaf.tips().await.expect("leaf subscribes to tips");
    let mut turns = leaf.turns().await.expect("leaf subscribes to turns");
    let rev = leaf
        .create_task(&task("t1"))
        .await
        .expect("leaf opens a task");
    let (mut record, _) = leaf.task("t1").await.unwrap().expect("task readable");
    let epoch = match leaf
        .try_claim("t1", "leaf-0", Duration::from_secs(30))
        .await
        .expect("leaf claims")
    {
        ClaimOutcome::Won { revision } => revision,
        other => panic!("claim lost: {other:?}"),
    };
    assert!(
        leaf.renew("t1", epoch, "leaf-0", Duration::from_secs(30))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(leaf.claim("t1").await.unwrap().map(|(_, e)| e), Some(epoch));
    record.state = TaskState::Claimed;
    record.epoch = Some(epoch);
    leaf.update_task(&record, rev)
        .await
        .expect("leaf updates its task");
    assert!(leaf.release("t1", epoch).await.unwrap());
    let turn = TurnMsg {
        kind: TurnKind::Request,
        leaf: "leaf-0".into(),
        id: 1,
    };
    leaf.publish_turn(&turn)
        .await
        .expect("leaf asks for a turn");
    let got = tokio::time::timeout(Duration::from_secs(10), turns.next())
        .await
        .expect("turn arrives")
        .unwrap()
        .unwrap();
    assert_eq!(got, turn);
    hub.publish_tip(&tip(1), None)
        .await
        .expect("hub publishes a tip");
    let got = tokio::time::timeout(Duration::from_secs(10), tips.next())
        .await
        .expect("tip arrives")
        .unwrap()
        .unwrap();
    assert_eq!(got.tip.seq, 1);
    assert_eq!(hub.last_tip().await.unwrap().map(|t| t.seq), Some(1));

    // What only the hub may do.
    let forged = tokio::time::timeout(Duration::from_secs(15), leaf.publish_tip(&tip(99), None))
        .await
        .map(|r| r.is_ok());
    assert_ne!(forged, Ok(true), "a leaf published a tip broadcast");
    let created = leaf
        .jetstream()
        .create_stream(async_nats::jetstream::stream::Config {
            name: "EVIL".into(),
            subjects: vec!["evil.>".into()],
            ..Default::default()
        })
        .await;
    assert!(created.is_err(), "a leaf created a stream");
    let purged = tokio::time::timeout(
        Duration::from_secs(15),
        leaf.client()
            .request("$JS.API.STREAM.PURGE.HERD_TIP", "".into()),
    )
    .await;
    assert!(
        !matches!(purged, Ok(Ok(ref m)) if !String::from_utf8_lossy(&m.payload).contains("error"))
    );
    assert_eq!(
        hub.last_tip().await.unwrap().map(|t| t.seq),
        Some(1),
        "the tip stream is as the hub left it"
    );
    // A put with `Nats-Rollup: all` would erase every key of the bucket: the stream refuses it.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "all");
    let rollup = match leaf
        .jetstream()
        .publish_with_headers("$KV.herd-tasks.t2", headers, "{}".into())
        .await
    {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(rollup.is_err(), "a leaf rolled up the tasks bucket");
    assert!(
        hub.task("t1").await.unwrap().is_some(),
        "the tasks survived the rollup attempt"
    );
    // The server refused exactly the three forbidden publishes: the leaf's own work above
    // needed no permission it lacks.
    let log = server.log_tail(400);
    let refused: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("Publish Violation - Subject ").map(|(_, s)| s))
        .collect();
    assert_eq!(
        refused,
        [
            "\"herd.tip.changed\"",
            "\"$JS.API.STREAM.CREATE.EVIL\"",
            "\"$JS.API.STREAM.PURGE.HERD_TIP\""
        ],
        "server log:\n{log}"
    );
    assert!(
        !log.contains("Subscription Violation"),
        "server log:\n{log}"
    );
    hub.flush().await.unwrap();
}

#[tokio::test]
async fn without_credentials_nothing_connects() {
    let server = NatsServer::start_secured().expect("start secured nats-server");
    assert!(server.is_secured());
    let anonymous = Bus::join(server.url()).await;
    assert!(anonymous.is_err(), "an anonymous client joined the bus");
    let wrong = server.url_as(Role::Leaf).replace("leaf:", "hub:");
    assert!(
        Bus::connect(&wrong).await.is_err(),
        "a leaf's password opened the hub's user"
    );
}
