//! Task records move only by compare-and-swap on their revision.

mod common;

use common::record;

use herd_bus::{BusError, TaskState};

#[tokio::test]
async fn update_at_revision_and_typed_conflict() {
    let (_server, bus) = common::bus().await;
    let rev = bus.create_task(&record("slot-0.t1")).await.unwrap();
    let (read, read_rev) = bus.task("slot-0.t1").await.unwrap().unwrap();
    assert_eq!((read.state, read_rev), (TaskState::Open, rev));

    let mut claimed = read.clone();
    claimed.state = TaskState::Claimed;
    claimed.epoch = Some(42);
    let rev2 = bus.update_task(&claimed, rev).await.unwrap();
    assert!(rev2 > rev);

    // A writer still holding the old revision loses, typed, and changes nothing.
    let mut stale = read;
    stale.state = TaskState::Released;
    match bus.update_task(&stale, rev).await.unwrap_err() {
        BusError::Conflict {
            bucket,
            key,
            expected,
        } => {
            assert_eq!(
                (bucket, key.as_str(), expected),
                ("herd-tasks", "slot-0.t1", rev)
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        bus.task("slot-0.t1").await.unwrap().unwrap(),
        (claimed, rev2)
    );
}

#[tokio::test]
async fn create_twice_is_task_exists_and_missing_is_none() {
    let (_server, bus) = common::bus().await;
    let rev = bus.create_task(&record("t-dup")).await.unwrap();
    // Another writer's record under the same id: refused, typed, the first one kept.
    let mut other = record("t-dup");
    other.leaf = "leaf-1".into();
    assert!(
        matches!(bus.create_task(&other).await.unwrap_err(), BusError::TaskExists { task } if task == "t-dup")
    );
    // The very same record again is the same write delivered twice (a retry across a lost
    // reply): it is done, at the revision it made, and nothing is written twice.
    assert_eq!(bus.create_task(&record("t-dup")).await.unwrap(), rev);
    assert_eq!(
        bus.task("t-dup").await.unwrap().unwrap(),
        (record("t-dup"), rev)
    );
    assert!(bus.task("t-missing").await.unwrap().is_none());
}

#[tokio::test]
async fn dump_holds_every_revision_in_order() {
    let (_server, bus) = common::bus().await;
    let rev = bus.create_task(&record("t-a")).await.unwrap();
    let mut next = record("t-a");
    next.state = TaskState::Closed;
    bus.update_task(&next, rev).await.unwrap();
    bus.create_task(&record("t-b")).await.unwrap();
    let herd_bus::ClaimOutcome::Won { revision } = bus
        .try_claim("t-a", "leaf-0", std::time::Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("claim must win")
    };
    bus.release("t-a", revision).await.unwrap();

    let tasks = bus.dump_bucket(herd_bus::TASKS_BUCKET).await.unwrap();
    let keys: Vec<_> = tasks
        .iter()
        .map(|r| (r.key.as_str(), r.value["state"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        keys,
        vec![("t-a", "open"), ("t-a", "closed"), ("t-b", "open")]
    );
    assert!(tasks.windows(2).all(|w| w[0].revision < w[1].revision));

    let claims = bus.dump_bucket(herd_bus::CLAIMS_BUCKET).await.unwrap();
    let ops: Vec<_> = claims
        .iter()
        .map(|r| (r.key.as_str(), r.operation.as_str()))
        .collect();
    assert_eq!(ops, vec![("t-a", "put"), ("t-a", "del")]);
    assert_eq!(claims[0].value["ttl_secs"], 30);
}
