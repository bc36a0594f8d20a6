//! The cluster as a client sees it: bootstrap servers, broker connections by node id, and the
//! metadata (brokers, topics, partition leaders) that routes requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::kafka::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka::messages::{
    ApiKey, MetadataRequest, RequestKind, ResponseKind, TopicName,
};
use brook_protocol::kafka::protocol::StrBytes;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::connection::Connection;
use crate::error::{unexpected, ClientError};

/// Client settings shared by the admin client, producer and consumer (Kafka's names).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// bootstrap.servers: `host:port` entries (comma- or space-separated in the string form).
    pub bootstrap_servers: Vec<String>,
    /// client.id
    pub client_id: String,
    /// request.timeout.ms
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// Defaults (client id `brook-client`, request timeout 30 s) for `bootstrap` (`host:port` entries, comma- or space-separated).
    pub fn new(bootstrap: &str) -> ClientConfig {
        ClientConfig {
            bootstrap_servers: bootstrap
                .split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            client_id: "brook-client".into(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A partition's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition's index.
    pub partition: i32,
    /// The leader's node id (-1: none).
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// Node ids of its replicas.
    pub replicas: Vec<i32>,
    /// Node ids of its in-sync replicas.
    pub isr: Vec<i32>,
    /// The partition's error code (0: none).
    pub error_code: i16,
}

/// A topic's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// The topic's id.
    pub topic_id: Uuid,
    /// Whether it is an internal topic (`__consumer_offsets`).
    pub is_internal: bool,
    /// Its partitions.
    pub partitions: Vec<PartitionInfo>,
    /// The topic's error code (0: none; 3: unknown topic).
    pub error_code: i16,
}

/// A broker's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: i32,
    /// Its advertised host.
    pub host: String,
    /// Its advertised port.
    pub port: i32,
    /// Its rack, if configured.
    pub rack: Option<String>,
}

/// A metadata snapshot.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// The cluster's id.
    pub cluster_id: Option<String>,
    /// The node id of the active controller.
    pub controller_id: i32,
    /// The brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// The topics fetched so far, by name.
    pub topics: BTreeMap<String, TopicInfo>,
}

/// Connections and metadata for one cluster.
pub struct Cluster {
    /// The settings it was made with.
    pub config: ClientConfig,
    connections: Mutex<HashMap<i32, Arc<Connection>>>,
    bootstrap: Mutex<Option<Arc<Connection>>>,
    metadata: Mutex<Metadata>,
}

impl Cluster {
    /// A cluster reached through the config's bootstrap servers (no connection is made yet).
    pub fn new(config: ClientConfig) -> Result<Cluster, ClientError> {
        if config.bootstrap_servers.is_empty() {
            return Err(ClientError::Config("bootstrap.servers is empty".into()));
        }
        Ok(Cluster {
            config,
            connections: Mutex::new(HashMap::new()),
            bootstrap: Mutex::new(None),
            metadata: Mutex::new(Metadata::default()),
        })
    }

    /// A connection to any broker: an existing one, or the first bootstrap server that answers.
    pub async fn any(&self) -> Result<Arc<Connection>, ClientError> {
        if let Some(c) = self
            .connections
            .lock()
            .await
            .values()
            .find(|c| !c.is_closed())
        {
            return Ok(c.clone());
        }
        let mut boot = self.bootstrap.lock().await;
        if let Some(c) = boot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let mut errors = Vec::new();
        for addr in &self.config.bootstrap_servers {
            match Connection::connect(addr, &self.config.client_id, self.config.request_timeout)
                .await
            {
                Ok(c) => {
                    let c = Arc::new(c);
                    *boot = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(ClientError::NoBroker(errors.join("; ")))
    }

    /// The connection to a broker by node id (opened on first use from the metadata).
    pub async fn broker(&self, node_id: i32) -> Result<Arc<Connection>, ClientError> {
        // A connection the broker closed (or that failed) is replaced by a new one.
        if let Some(c) = self
            .connections
            .lock()
            .await
            .get(&node_id)
            .filter(|c| !c.is_closed())
        {
            return Ok(c.clone());
        }
        // Bind the lookup first: a guard in a `match` scrutinee lives through the arms, and the
        // refresh below takes the same lock.
        let known = self.metadata.lock().await.brokers.get(&node_id).cloned();
        let info = match known {
            Some(b) => b,
            None => {
                self.refresh(None).await?;
                let md = self.metadata.lock().await;
                md.brokers.get(&node_id).cloned().ok_or_else(|| {
                    ClientError::NoBroker(format!("broker {node_id} is not in the metadata"))
                })?
            }
        };
        let addr = format!("{}:{}", info.host, info.port);
        let c = Arc::new(
            Connection::connect(&addr, &self.config.client_id, self.config.request_timeout).await?,
        );
        self.connections.lock().await.insert(node_id, c.clone());
        Ok(c)
    }

    /// The current metadata snapshot.
    pub async fn metadata(&self) -> Metadata {
        self.metadata.lock().await.clone()
    }

    /// The leader of a partition in the current snapshot, if it is known and has one (cheaper
    /// than cloning the whole snapshot with [`Cluster::metadata`]).
    pub async fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.metadata
            .lock()
            .await
            .topics
            .get(topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
    }

    /// Fetches metadata for some topics (`None` = all) and updates the snapshot.
    pub async fn refresh(&self, topics: Option<&[String]>) -> Result<Metadata, ClientError> {
        self.refresh_allowing_creation(topics, false).await
    }

    /// [`Cluster::refresh`], letting the broker auto-create unknown topics when it is configured
    /// to (a producer's `allow.auto.create.topics`).
    pub async fn refresh_allowing_creation(
        &self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<Metadata, ClientError> {
        let conn = self.any().await?;
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let (_, resp) = conn
            .send(RequestKind::Metadata(req), ApiKey::Metadata, 12)
            .await?;
        let ResponseKind::Metadata(r) = resp else {
            return Err(unexpected("Metadata"));
        };
        let mut md = self.metadata.lock().await;
        md.cluster_id = r.cluster_id.map(|c| c.to_string());
        md.controller_id = r.controller_id.0;
        md.brokers = r
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        if topics.is_none() {
            md.topics.clear();
        }
        for t in r.topics {
            let Some(name) = t.name.map(|n| n.to_string()) else {
                continue;
            };
            md.topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    topic_id: t.topic_id,
                    is_internal: t.is_internal,
                    error_code: t.error_code,
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| PartitionInfo {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                            error_code: p.error_code,
                        })
                        .collect(),
                },
            );
        }
        Ok(md.clone())
    }

    /// The connection to the active controller (admin requests that change metadata go there).
    pub async fn controller(&self) -> Result<Arc<Connection>, ClientError> {
        let id = {
            let md = self.metadata.lock().await;
            (md.controller_id >= 0 && !md.brokers.is_empty()).then_some(md.controller_id)
        };
        let id = match id {
            Some(id) => id,
            None => self.refresh(Some(&[])).await?.controller_id,
        };
        self.broker(id).await
    }
}
