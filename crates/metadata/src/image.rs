//! The metadata image: the state that applying every record in order builds.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::record::{ConfigResource, MetadataRecord};

/// A partition's replica assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// A topic and its partitions, by partition index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Everything the cluster knows, rebuilt from the records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names: HashMap<Uuid, String>,
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    pub brokers: BTreeMap<i32, BrokerImage>,
    pub next_producer_id: i64,
}

impl MetadataImage {
    /// Applies one record. Records that name something unknown are ignored: they can only come
    /// from a log written by a newer or buggy controller, and the rest of the image stays usable.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack,
            } => {
                self.brokers.insert(
                    *node_id,
                    BrokerImage {
                        node_id: *node_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                    },
                );
            }
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_names.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                if let Some(topic) = self
                    .topic_names
                    .get(topic_id)
                    .and_then(|n| self.topics.get_mut(n))
                {
                    topic.partitions.insert(
                        *partition,
                        PartitionImage {
                            partition: *partition,
                            replicas: replicas.clone(),
                            isr: isr.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            partition_epoch: *partition_epoch,
                        },
                    );
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                    self.configs.remove(&ConfigResource::Topic(name));
                }
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => match value {
                Some(v) => {
                    self.configs
                        .entry(resource.clone())
                        .or_default()
                        .insert(name.clone(), v.clone());
                }
                None => {
                    if let Some(c) = self.configs.get_mut(resource) {
                        c.remove(name);
                        if c.is_empty() {
                            self.configs.remove(resource);
                        }
                    }
                }
            },
            MetadataRecord::ProducerIds { next_producer_id } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
        }
    }

    /// How many brokers can host new replicas (registered; in cluster mode also unfenced).
    pub fn live_broker_count(&self) -> usize {
        self.brokers.len()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }

    /// Dynamic configs set on a topic.
    pub fn topic_configs(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.configs.get(&ConfigResource::Topic(name.to_string()))
    }

    /// Dynamic configs of a broker (`None`: the cluster-wide default), by broker property name.
    pub fn broker_configs(&self, broker: Option<i32>) -> Option<&BTreeMap<String, String>> {
        self.configs.get(&ConfigResource::Broker(broker))
    }

    /// The records that rebuild this image from nothing: a snapshot.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker {
                node_id: b.node_id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
            });
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.topic_id,
            });
            for p in t.partitions.values() {
                out.push(MetadataRecord::Partition {
                    topic_id: t.topic_id,
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                });
            }
        }
        for (resource, configs) in &self.configs {
            for (name, value) in configs {
                out.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds {
                next_producer_id: self.next_producer_id,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_records_rebuild_the_same_image() {
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        for r in [
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::ProducerIds {
                next_producer_id: 7,
            },
        ] {
            image.apply(&r);
        }
        let mut rebuilt = MetadataImage::default();
        for r in image.to_records() {
            rebuilt.apply(&r);
        }
        assert_eq!(rebuilt, image);
        rebuilt.apply(&MetadataRecord::RemoveTopic { topic_id: id });
        assert!(rebuilt.topic("t").is_none());
        assert!(rebuilt.topic_configs("t").is_none());
    }
}
