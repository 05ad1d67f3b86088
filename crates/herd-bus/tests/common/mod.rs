//! Shared set-up: a real nats-server started by the fixture and a bus connected to it.
#![allow(dead_code)]

use herd_bus::{Bus, NatsServer};

pub async fn bus() -> (NatsServer, Bus) {
    let server = NatsServer::start().expect("start nats-server");
    let bus = Bus::connect(server.url()).await.expect("connect bus");
    (server, bus)
}
