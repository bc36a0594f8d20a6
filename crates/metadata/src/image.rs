//! The metadata image: the state that applying every record in order builds.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::{ConfigResource, MetadataRecord};

/// A partition's replica assignment and leadership (serde: the controller answers AlterPartition
/// with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

impl PartitionImage {
    /// The record that sets partition `self` of `topic_id` to exactly this state.
    pub fn record(&self, topic_id: Uuid) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition: self.partition,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        }
    }
}

/// A partition reassignment in progress (Kafka's `PartitionReassignment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// The replicas before the reassignment began (what a cancellation restores).
    pub original: Vec<i32>,
    /// The replicas it ends with.
    pub target: Vec<i32>,
}

impl Reassignment {
    /// Replicas being added: in the target, not in the original assignment.
    pub fn adding(&self) -> Vec<i32> {
        self.target
            .iter()
            .copied()
            .filter(|b| !self.original.contains(b))
            .collect()
    }

    /// Replicas being removed: in the original assignment, not in the target.
    pub fn removing(&self) -> Vec<i32> {
        self.original
            .iter()
            .copied()
            .filter(|b| !self.target.contains(b))
            .collect()
    }
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
    /// A fenced broker leads nothing, is in no ISR (unless it was the last member) and gets no
    /// new replicas.
    pub fenced: bool,
    /// The epoch of its current registration.
    pub epoch: i64,
}

/// Everything the cluster knows, rebuilt from the records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names: HashMap<Uuid, String>,
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    pub brokers: BTreeMap<i32, BrokerImage>,
    pub next_producer_id: i64,
    /// The epoch the next broker registration gets (one past the highest handed out).
    pub next_broker_epoch: i64,
    /// Partition reassignments in progress, by topic id and partition.
    pub reassignments: BTreeMap<(Uuid, i32), Reassignment>,
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
                epoch,
                fenced,
            } => {
                self.brokers.insert(
                    *node_id,
                    BrokerImage {
                        node_id: *node_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced: *fenced,
                        epoch: *epoch,
                    },
                );
                self.next_broker_epoch = self.next_broker_epoch.max(epoch.saturating_add(1));
            }
            MetadataRecord::FenceBroker { node_id } => {
                if let Some(b) = self.brokers.get_mut(node_id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker { node_id } => {
                if let Some(b) = self.brokers.get_mut(node_id) {
                    b.fenced = false;
                }
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
                self.reassignments.retain(|(id, _), _| id != topic_id);
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
            MetadataRecord::Reassignment {
                topic_id,
                partition,
                reassignment,
            } => match reassignment {
                Some(r) if self.topic_names.contains_key(topic_id) => {
                    self.reassignments
                        .insert((*topic_id, *partition), r.clone());
                }
                Some(_) => {}
                None => {
                    self.reassignments.remove(&(*topic_id, *partition));
                }
            },
        }
    }

    /// The reassignment in progress of partition `partition` of `topic_id`, if any.
    pub fn reassignment(&self, topic_id: &Uuid, partition: i32) -> Option<&Reassignment> {
        self.reassignments.get(&(*topic_id, partition))
    }

    /// Brokers that are registered and not fenced, by id: the only ones that may lead partitions
    /// or receive new replicas.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.node_id)
            .collect()
    }

    /// Whether `node_id` is registered and not fenced.
    pub fn is_live(&self, node_id: i32) -> bool {
        self.brokers.get(&node_id).is_some_and(|b| !b.fenced)
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
                epoch: b.epoch,
                fenced: b.fenced,
            });
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.topic_id,
            });
            for p in t.partitions.values() {
                out.push(p.record(t.topic_id));
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
        for ((topic_id, partition), r) in &self.reassignments {
            out.push(MetadataRecord::Reassignment {
                topic_id: *topic_id,
                partition: *partition,
                reassignment: Some(r.clone()),
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
            MetadataRecord::RegisterBroker {
                node_id: 1,
                host: "a".into(),
                port: 9092,
                rack: Some("r1".into()),
                epoch: 3,
                fenced: true,
            },
            MetadataRecord::RegisterBroker {
                node_id: 2,
                host: "b".into(),
                port: 9092,
                rack: None,
                epoch: 7,
                fenced: true,
            },
            MetadataRecord::UnfenceBroker { node_id: 2 },
            MetadataRecord::RegisterBroker {
                node_id: 3,
                host: "c".into(),
                port: 9092,
                rack: None,
                epoch: 8,
                fenced: false,
            },
            MetadataRecord::FenceBroker { node_id: 3 },
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
            MetadataRecord::Reassignment {
                topic_id: id,
                partition: 0,
                reassignment: Some(Reassignment {
                    original: vec![1],
                    target: vec![2],
                }),
            },
        ] {
            image.apply(&r);
        }
        let mut rebuilt = MetadataImage::default();
        for r in image.to_records() {
            rebuilt.apply(&r);
        }
        assert_eq!(rebuilt, image);
        assert_eq!(rebuilt.next_broker_epoch, 9);
        assert_eq!(rebuilt.live_brokers(), vec![2]);
        assert!(rebuilt.brokers[&1].fenced && rebuilt.brokers[&3].fenced);
        assert_eq!(
            rebuilt.reassignment(&id, 0).map(|r| r.adding()),
            Some(vec![2])
        );
        rebuilt.apply(&MetadataRecord::RemoveTopic { topic_id: id });
        assert!(rebuilt.topic("t").is_none());
        assert!(rebuilt.reassignments.is_empty());
        assert!(rebuilt.topic_configs("t").is_none());
    }

    #[test]
    fn a_registration_from_a_single_node_log_is_live() {
        // What single-node Brook wrote before brokers had epochs and fencing.
        let old = r#"{"RegisterBroker":{"node_id":1,"host":"localhost","port":9092,"rack":null}}"#;
        let record: MetadataRecord = serde_json::from_str(old).unwrap();
        let mut image = MetadataImage::default();
        image.apply(&record);
        assert_eq!(image.live_brokers(), vec![1]);
        assert!(image.is_live(1));
        assert_eq!(image.brokers[&1].epoch, 0);
        assert_eq!(image.next_broker_epoch, 1);
        // Fencing records for unknown brokers are ignored.
        image.apply(&MetadataRecord::FenceBroker { node_id: 9 });
        assert!(!image.brokers.contains_key(&9));
        image.apply(&MetadataRecord::FenceBroker { node_id: 1 });
        assert!(image.live_brokers().is_empty());
        assert!(!image.is_live(1));
    }
}
