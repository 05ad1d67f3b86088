//! Task records move only by compare-and-swap on their revision.

mod common;

use herd_bus::{BusError, TaskRecord, TaskState};

fn record(id: &str) -> TaskRecord {
    TaskRecord {
        id: id.into(),
        title: "write the thing".into(),
        leaf: "leaf-0".into(),
        slot: "slot-0".into(),
        paths: vec!["slot-0/a.txt".into()],
        state: TaskState::Open,
        epoch: None,
        commit: None,
        updated: 1,
    }
}

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
    bus.create_task(&record("t-dup")).await.unwrap();
    assert!(
        matches!(bus.create_task(&record("t-dup")).await.unwrap_err(), BusError::TaskExists { task } if task == "t-dup")
    );
    assert!(bus.task("t-missing").await.unwrap().is_none());
}
