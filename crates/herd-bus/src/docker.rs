//! `DockerNats`: the bus in a container (testcontainers), for machines with a Docker daemon.
//!
//! Opt-in through the `docker` feature: it adds minutes to a build and needs a daemon, which the
//! herd CI machines do not run, so the default is the child-process fixture
//! ([`crate::NatsServer`]). The image is the official `nats` image at the pinned version.

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::binary::PINNED_VERSION;
use crate::error::{BusError, Result};

/// A nats-server with JetStream running in a Docker container; removed on drop.
pub struct DockerNats {
    _container: ContainerAsync<GenericImage>,
    url: String,
}

impl DockerNats {
    /// Starts `nats:<PINNED_VERSION>` with `-js` and waits until it reports ready.
    pub async fn start() -> Result<DockerNats> {
        let fail = |e: testcontainers::TestcontainersError| BusError::NotReady {
            binary: format!("docker image nats:{PINNED_VERSION}").into(),
            dir: std::path::PathBuf::new(),
            waited: std::time::Duration::ZERO,
            reason: e.to_string(),
            log_tail: String::new(),
        };
        let container = GenericImage::new("nats", PINNED_VERSION)
            .with_exposed_port(4222.tcp())
            .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
            .with_cmd(["-js"])
            .start()
            .await
            .map_err(fail)?;
        let port = container.get_host_port_ipv4(4222).await.map_err(fail)?;
        let host = container.get_host().await.map_err(fail)?;
        Ok(DockerNats {
            _container: container,
            url: format!("nats://{host}:{port}"),
        })
    }

    /// The client URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}
