//! Shared set-up: a real nats-server started by the fixture and a bus connected to it.
#![allow(dead_code)]

use herd_bus::{Bus, NatsServer, TaskRecord, TaskState};

pub async fn bus() -> (NatsServer, Bus) {
    let server = NatsServer::start().expect("start nats-server");
    let bus = Bus::connect(server.url()).await.expect("connect bus");
    (server, bus)
}

/// An open task record in slot-0 (`updated` = 1), for the task-record tests.
pub fn record(id: &str) -> TaskRecord {
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
