//! A real Brook broker started in-process on a free port, for the client's tests.

use std::time::Duration;

use brook_broker::{BoundServer, BrokerConfig};
use brook_client::cluster::ClientConfig;
use brook_client::Admin;

pub struct TestBroker {
    pub bootstrap: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(&[]).await
    }

    /// Starts a broker with extra `key=value` properties.
    pub async fn start_with(extra: &[&str]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut overrides = vec![
            "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
            format!("log.dirs={}", dir.path().display()),
        ];
        overrides.extend(extra.iter().map(|s| s.to_string()));
        let server = BoundServer::bind(BrokerConfig::load(None, &overrides).unwrap())
            .await
            .unwrap();
        let bootstrap = server.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(brook_broker::run(server, async {
            let _ = rx.await;
        }));
        TestBroker {
            bootstrap,
            stop: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn admin(&self) -> Admin {
        let mut c = ClientConfig::new(&self.bootstrap);
        c.request_timeout = Duration::from_secs(10);
        Admin::new(c).unwrap()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}
