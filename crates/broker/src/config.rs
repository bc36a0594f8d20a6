//! Broker configuration in two layers: raw properties under Kafka's names (from a
//! `server.properties` file and `--override key=value`), validated once into a typed
//! [`BrokerConfig`]. An unknown name or a malformed value is an error naming the property.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brook_coordinator::consumer_group::ConsumerGroupConfig;
use brook_coordinator::GroupConfig;
use brook_metadata::topic_config::TOPIC_CONFIGS;

use crate::groups::CoordinatorSettings;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown configuration property '{0}'{1}")]
    Unknown(String, String),
    #[error("invalid value '{value}' for configuration property '{name}': {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("malformed line {line} in {file}: '{text}' (expected key=value)")]
    Malformed {
        file: String,
        line: usize,
        text: String,
    },
    #[error("cannot read {file}: {reason}")]
    Unreadable { file: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Long,
    Bool,
    Str,
    List,
    Double,
}

/// Broker properties Brook accepts, with their types. Properties that only tune Kafka's JVM
/// implementation (thread pools, socket buffers) are accepted so Kafka's own files load; they are
/// documented in README as having no effect.
const BROKER_PROPERTIES: &[(&str, Kind)] = &[
    ("advertised.listeners", Kind::List),
    ("auto.create.topics.enable", Kind::Bool),
    ("auto.leader.rebalance.enable", Kind::Bool),
    ("broker.heartbeat.interval.ms", Kind::Int),
    ("broker.id", Kind::Int),
    ("broker.rack", Kind::Str),
    ("broker.session.timeout.ms", Kind::Int),
    ("cluster.id", Kind::Str),
    ("compression.type", Kind::Str),
    ("controller.listener.names", Kind::List),
    ("controller.quorum.bootstrap.servers", Kind::List),
    ("controller.quorum.election.timeout.ms", Kind::Int),
    ("controller.quorum.fetch.timeout.ms", Kind::Int),
    ("controller.quorum.voters", Kind::List),
    ("default.replication.factor", Kind::Int),
    ("delete.topic.enable", Kind::Bool),
    ("group.consumer.heartbeat.interval.ms", Kind::Int),
    ("group.consumer.max.size", Kind::Int),
    ("group.consumer.session.timeout.ms", Kind::Int),
    ("group.coordinator.rebalance.protocols", Kind::List),
    ("group.initial.rebalance.delay.ms", Kind::Int),
    ("group.max.session.timeout.ms", Kind::Int),
    ("group.max.size", Kind::Int),
    ("group.min.session.timeout.ms", Kind::Int),
    ("inter.broker.listener.name", Kind::Str),
    ("leader.imbalance.check.interval.seconds", Kind::Long),
    ("leader.imbalance.per.broker.percentage", Kind::Int),
    ("listener.security.protocol.map", Kind::List),
    ("listeners", Kind::List),
    ("log.cleaner.delete.retention.ms", Kind::Long),
    ("log.cleaner.enable", Kind::Bool),
    ("log.cleaner.max.compaction.lag.ms", Kind::Long),
    ("log.cleaner.min.cleanable.ratio", Kind::Double),
    ("log.cleaner.min.compaction.lag.ms", Kind::Long),
    ("log.cleanup.policy", Kind::List),
    ("log.dir", Kind::Str),
    ("log.dirs", Kind::List),
    ("log.flush.interval.messages", Kind::Long),
    ("log.flush.interval.ms", Kind::Long),
    ("log.index.interval.bytes", Kind::Int),
    ("log.index.size.max.bytes", Kind::Int),
    ("log.message.timestamp.after.max.ms", Kind::Long),
    ("log.message.timestamp.before.max.ms", Kind::Long),
    ("log.message.timestamp.type", Kind::Str),
    ("log.preallocate", Kind::Bool),
    ("log.retention.bytes", Kind::Long),
    ("log.retention.check.interval.ms", Kind::Long),
    ("log.retention.hours", Kind::Int),
    ("log.retention.minutes", Kind::Int),
    ("log.retention.ms", Kind::Long),
    ("log.roll.hours", Kind::Int),
    ("log.roll.jitter.ms", Kind::Long),
    ("log.roll.ms", Kind::Long),
    ("log.segment.bytes", Kind::Int),
    ("log.segment.delete.delay.ms", Kind::Long),
    ("max.connections", Kind::Int),
    ("max.incremental.fetch.session.cache.slots", Kind::Int),
    ("message.max.bytes", Kind::Int),
    ("min.insync.replicas", Kind::Int),
    ("node.id", Kind::Int),
    ("num.io.threads", Kind::Int),
    ("num.network.threads", Kind::Int),
    ("num.partitions", Kind::Int),
    ("num.recovery.threads.per.data.dir", Kind::Int),
    ("num.replica.fetchers", Kind::Int),
    ("offset.metadata.max.bytes", Kind::Int),
    ("offsets.retention.check.interval.ms", Kind::Long),
    ("offsets.retention.minutes", Kind::Int),
    ("offsets.topic.num.partitions", Kind::Int),
    ("offsets.topic.replication.factor", Kind::Int),
    ("offsets.topic.segment.bytes", Kind::Int),
    ("process.roles", Kind::List),
    ("replica.fetch.max.bytes", Kind::Int),
    ("replica.fetch.min.bytes", Kind::Int),
    ("replica.fetch.response.max.bytes", Kind::Int),
    ("replica.fetch.wait.max.ms", Kind::Int),
    ("replica.high.watermark.checkpoint.interval.ms", Kind::Long),
    ("replica.lag.time.max.ms", Kind::Long),
    ("replica.socket.timeout.ms", Kind::Int),
    ("share.coordinator.state.topic.min.isr", Kind::Int),
    (
        "share.coordinator.state.topic.replication.factor",
        Kind::Int,
    ),
    ("socket.receive.buffer.bytes", Kind::Int),
    ("socket.request.max.bytes", Kind::Int),
    ("socket.send.buffer.bytes", Kind::Int),
    ("transaction.state.log.min.isr", Kind::Int),
    ("transaction.state.log.replication.factor", Kind::Int),
    ("unclean.leader.election.enable", Kind::Bool),
];

/// Kafka's defaults of the broker properties that have one, for DescribeConfigs (source
/// DEFAULT_CONFIG) when the property was not set.
pub const BROKER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "true"),
    ("auto.leader.rebalance.enable", "true"),
    ("broker.heartbeat.interval.ms", "2000"),
    ("broker.session.timeout.ms", "9000"),
    ("compression.type", "producer"),
    ("controller.quorum.election.timeout.ms", "1000"),
    ("controller.quorum.fetch.timeout.ms", "2000"),
    ("default.replication.factor", "1"),
    ("delete.topic.enable", "true"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("group.consumer.max.size", "2147483647"),
    ("group.consumer.session.timeout.ms", "45000"),
    ("group.coordinator.rebalance.protocols", "classic,consumer"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "2147483647"),
    ("group.min.session.timeout.ms", "6000"),
    ("leader.imbalance.check.interval.seconds", "300"),
    ("leader.imbalance.per.broker.percentage", "10"),
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.cleaner.enable", "true"),
    ("log.cleaner.max.compaction.lag.ms", "9223372036854775807"),
    ("log.cleaner.min.cleanable.ratio", "0.5"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("log.cleanup.policy", "delete"),
    ("log.flush.interval.messages", "9223372036854775807"),
    ("log.index.interval.bytes", "4096"),
    ("log.index.size.max.bytes", "10485760"),
    ("log.message.timestamp.after.max.ms", "3600000"),
    ("log.message.timestamp.before.max.ms", "9223372036854775807"),
    ("log.message.timestamp.type", "CreateTime"),
    ("log.preallocate", "false"),
    ("log.retention.bytes", "-1"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.retention.hours", "168"),
    ("log.roll.hours", "168"),
    ("log.segment.bytes", "1073741824"),
    ("log.segment.delete.delay.ms", "60000"),
    ("max.connections", "2147483647"),
    ("max.incremental.fetch.session.cache.slots", "1000"),
    ("message.max.bytes", "1048588"),
    ("min.insync.replicas", "1"),
    ("num.io.threads", "8"),
    ("num.network.threads", "3"),
    ("num.partitions", "1"),
    ("num.recovery.threads.per.data.dir", "2"),
    ("num.replica.fetchers", "1"),
    ("offset.metadata.max.bytes", "4096"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.topic.segment.bytes", "104857600"),
    ("replica.fetch.max.bytes", "1048576"),
    ("replica.fetch.min.bytes", "1"),
    ("replica.fetch.response.max.bytes", "10485760"),
    ("replica.fetch.wait.max.ms", "500"),
    ("replica.high.watermark.checkpoint.interval.ms", "5000"),
    ("replica.lag.time.max.ms", "30000"),
    ("replica.socket.timeout.ms", "30000"),
    ("socket.receive.buffer.bytes", "102400"),
    ("socket.request.max.bytes", "104857600"),
    ("socket.send.buffer.bytes", "102400"),
    ("transaction.state.log.min.isr", "2"),
    ("transaction.state.log.replication.factor", "3"),
    ("unclean.leader.election.enable", "false"),
];

/// A listener: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    fn parse(prop: &str, s: &str) -> Result<Listener, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: prop.to_string(),
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (name, rest) = s
            .split_once("://")
            .ok_or_else(|| invalid("expected NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected NAME://host:port"))?;
        let port: u16 = port.parse().map_err(|_| invalid("port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() {
            return Err(invalid("listener name is empty"));
        }
        Ok(Listener {
            name: name.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

/// The validated broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub cluster_id: Option<String>,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    /// max.incremental.fetch.session.cache.slots: fetch sessions (KIP-227) kept; 0 disables them.
    pub fetch_session_cache_slots: usize,
    pub log_retention_check_interval_ms: u64,
    /// How often the high watermarks are written to `replication-offset-checkpoint`.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    pub rack: Option<String>,
    /// Group coordinator settings (group.* and offsets.* properties).
    pub coordinator: CoordinatorSettings,
    /// Cluster mode: controller quorum, broker liveness, replication.
    pub cluster: ClusterSettings,
    /// Every property as given (after defaults), for DescribeConfigs on the broker.
    pub properties: BTreeMap<String, String>,
    /// Broker-level defaults for topic configs, by topic config name, from their broker synonyms.
    pub topic_defaults: BTreeMap<&'static str, String>,
}

/// The defaults that make `brook broker` work with nothing configured.
/// Which roles this node plays (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// One member of the controller quorum (`controller.quorum.voters`: `id@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// Settings of cluster mode: the controller quorum, broker liveness and partition replication.
/// With no voters configured the node runs alone on its embedded single-node metadata log.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub process_roles: ProcessRoles,
    pub voters: Vec<QuorumVoter>,
    /// The listener the controller quorum speaks on (named by `controller.listener.names`), when
    /// this node is a controller in cluster mode.
    pub controller_listener: Option<Listener>,
    /// The first of `controller.listener.names` (the voters' listener, as DescribeQuorum names
    /// their endpoints).
    pub controller_listener_name: String,
    /// The listener other brokers fetch from (`inter.broker.listener.name`).
    pub inter_broker_listener_name: String,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    pub election_timeout_ms: u64,
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_socket_timeout_ms: u64,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_ms: u64,
    pub leader_imbalance_per_broker_percentage: i32,
}

impl ClusterSettings {
    /// Whether this node is part of a multi-node cluster (a controller quorum is configured).
    pub fn enabled(&self) -> bool {
        !self.voters.is_empty()
    }
}

fn parse_voters(value: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "controller.quorum.voters".into(),
        value: value.to_string(),
        reason,
    };
    let mut out: Vec<QuorumVoter> = Vec::new();
    for v in list(value) {
        let (id, addr) = v
            .split_once('@')
            .ok_or_else(|| invalid(format!("'{v}' is not of the form id@host:port")))?;
        let id: i32 = id
            .parse()
            .map_err(|_| invalid(format!("'{id}' in '{v}' is not a node id")))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| invalid(format!("'{v}' is not of the form id@host:port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(format!("'{port}' in '{v}' is not a port")))?;
        if out.iter().any(|o| o.id == id) {
            return Err(invalid(format!("node id {id} is listed twice")));
        }
        out.push(QuorumVoter {
            id,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        });
    }
    Ok(out)
}

pub const EMBEDDED_DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("process.roles", "broker,controller"),
    ("listeners", "PLAINTEXT://localhost:9092"),
    ("log.dirs", "./brook-data"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
];

/// Parses a Java-style properties file (key=value or key: value, `#`/`!` comments).
pub fn parse_properties(text: &str, file: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        // A trailing backslash continues the logical line.
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let logical = std::mem::take(&mut pending);
        let split = logical.find(['=', ':']);
        match split {
            Some(at) => {
                let key = logical[..at].trim().to_string();
                let value = logical[at + 1..].trim().to_string();
                if key.is_empty() {
                    return Err(ConfigError::Malformed {
                        file: file.into(),
                        line: i + 1,
                        text: raw.to_string(),
                    });
                }
                out.push((key, value));
            }
            None => {
                return Err(ConfigError::Malformed {
                    file: file.into(),
                    line: i + 1,
                    text: raw.to_string(),
                })
            }
        }
    }
    Ok(out)
}

fn suggestion(name: &str) -> String {
    let best = BROKER_PROPERTIES
        .iter()
        .map(|(k, _)| *k)
        .chain(TOPIC_CONFIGS.iter().filter_map(|d| d.broker_synonym))
        .map(|k| (strsim(name, k), k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 3 => format!(" (did you mean '{k}'?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn kind_of(name: &str) -> Option<Kind> {
    BROKER_PROPERTIES
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, kind)| *kind)
}

fn check_value(name: &str, kind: Kind, value: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    match kind {
        Kind::Int => value
            .parse::<i32>()
            .map(|_| ())
            .map_err(|_| invalid("expected an integer")),
        Kind::Long => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| invalid("expected a long integer")),
        Kind::Double => value
            .parse::<f64>()
            .map(|_| ())
            .map_err(|_| invalid("expected a number")),
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err(invalid("expected true or false")),
        },
        Kind::Str | Kind::List => Ok(()),
    }
}

impl BrokerConfig {
    /// Builds the configuration from an optional properties file and `key=value` overrides
    /// (later ones win), on top of [`EMBEDDED_DEFAULTS`].
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<BrokerConfig, ConfigError> {
        let mut props: Vec<(String, String)> = Vec::new();
        if let Some(f) = file {
            let name = f.display().to_string();
            let text = std::fs::read_to_string(f).map_err(|e| ConfigError::Unreadable {
                file: name.clone(),
                reason: e.to_string(),
            })?;
            props.extend(parse_properties(&text, &name)?);
        }
        for o in overrides {
            let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::Malformed {
                file: "--override".into(),
                line: 0,
                text: o.clone(),
            })?;
            props.push((k.trim().to_string(), v.trim().to_string()));
        }
        Self::from_properties(props)
    }

    /// Validates raw properties into a configuration.
    pub fn from_properties(
        props: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut map: BTreeMap<String, String> = EMBEDDED_DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in props {
            let kind = kind_of(&k).ok_or_else(|| {
                let hint = suggestion(&k);
                ConfigError::Unknown(k.clone(), hint)
            })?;
            check_value(&k, kind, &v)?;
            map.insert(k, v);
        }
        if let Some(id) = map.get("broker.id").cloned() {
            map.insert("node.id".into(), id);
        }
        let get = |k: &str| map.get(k).cloned();
        let int = |k: &str, d: i64| -> i64 { get(k).and_then(|v| v.parse().ok()).unwrap_or(d) };
        let boolean = |k: &str, d: bool| -> bool {
            get(k).map(|v| v.eq_ignore_ascii_case("true")).unwrap_or(d)
        };
        let invalid = |name: &str, reason: &str| ConfigError::Invalid {
            name: name.to_string(),
            value: get(name).unwrap_or_default(),
            reason: reason.to_string(),
        };

        let node_id = int("node.id", 1);
        if node_id < 0 {
            return Err(invalid("node.id", "must be non-negative"));
        }
        let listeners: Vec<Listener> = list(&get("listeners").unwrap_or_default())
            .iter()
            .map(|l| Listener::parse("listeners", l))
            .collect::<Result<_, _>>()?;
        if listeners.is_empty() {
            return Err(invalid("listeners", "at least one listener is needed"));
        }
        let controller_names = list(&get("controller.listener.names").unwrap_or_default());
        let advertised_listeners: Vec<Listener> = match get("advertised.listeners") {
            Some(a) => list(&a)
                .iter()
                .map(|l| Listener::parse("advertised.listeners", l))
                .collect::<Result<_, _>>()?,
            None => listeners
                .iter()
                .filter(|l| !controller_names.contains(&l.name))
                .cloned()
                .collect(),
        };
        let log_dir = match get("log.dirs").or_else(|| get("log.dir")) {
            Some(d) => {
                let dirs = list(&d);
                if dirs.len() != 1 {
                    return Err(invalid(
                        "log.dirs",
                        "Brook supports exactly one log directory per broker",
                    ));
                }
                PathBuf::from(&dirs[0])
            }
            None => PathBuf::from("./brook-data"),
        };
        let num_partitions = int("num.partitions", 1);
        if num_partitions < 1 {
            return Err(invalid("num.partitions", "must be at least 1"));
        }
        let default_replication_factor = int("default.replication.factor", 1);
        if !(1..=i16::MAX as i64).contains(&default_replication_factor) {
            return Err(invalid("default.replication.factor", "must be at least 1"));
        }
        let socket_request_max_bytes = int("socket.request.max.bytes", 104_857_600);
        if socket_request_max_bytes < 1 {
            return Err(invalid("socket.request.max.bytes", "must be at least 1"));
        }
        let max_connections = int("max.connections", i32::MAX as i64);
        if max_connections < 1 {
            return Err(invalid("max.connections", "must be at least 1"));
        }
        let fetch_session_cache_slots = int("max.incremental.fetch.session.cache.slots", 1000);
        if fetch_session_cache_slots < 0 {
            return Err(invalid(
                "max.incremental.fetch.session.cache.slots",
                "must be at least 0",
            ));
        }
        let check_interval = int("log.retention.check.interval.ms", 300_000);
        if check_interval < 1 {
            return Err(invalid(
                "log.retention.check.interval.ms",
                "must be at least 1",
            ));
        }

        let positive = |name: &str, default: i64| -> Result<i64, ConfigError> {
            let v = int(name, default);
            if v < 1 {
                return Err(invalid(name, "must be at least 1"));
            }
            Ok(v)
        };
        let min_session = positive("group.min.session.timeout.ms", 6_000)?;
        let max_session = positive("group.max.session.timeout.ms", 1_800_000)?;
        if min_session > max_session {
            return Err(invalid(
                "group.min.session.timeout.ms",
                "must not exceed group.max.session.timeout.ms",
            ));
        }
        let initial_delay = int("group.initial.rebalance.delay.ms", 3_000);
        if initial_delay < 0 {
            return Err(invalid(
                "group.initial.rebalance.delay.ms",
                "must not be negative",
            ));
        }
        let coordinator = CoordinatorSettings {
            group: GroupConfig {
                min_session_timeout_ms: min_session as i32,
                max_session_timeout_ms: max_session as i32,
                initial_rebalance_delay_ms: initial_delay,
                max_size: positive("group.max.size", i32::MAX as i64)? as usize,
            },
            consumer_group: ConsumerGroupConfig {
                session_timeout_ms: positive("group.consumer.session.timeout.ms", 45_000)?,
                heartbeat_interval_ms: positive("group.consumer.heartbeat.interval.ms", 5_000)?
                    .min(i32::MAX as i64) as i32,
                max_size: positive("group.consumer.max.size", i32::MAX as i64)? as usize,
            },
            offsets_partitions: positive("offsets.topic.num.partitions", 50)? as i32,
            offsets_replication_factor: positive("offsets.topic.replication.factor", 3)?
                .min(i16::MAX as i64) as i16,
            offsets_segment_bytes: positive("offsets.topic.segment.bytes", 104_857_600)?,
            offsets_retention_ms: positive("offsets.retention.minutes", 10_080)? * 60_000,
            offsets_retention_check_interval_ms: positive(
                "offsets.retention.check.interval.ms",
                600_000,
            )?,
            offset_metadata_max_bytes: int("offset.metadata.max.bytes", 4096).max(0) as usize,
        };

        // Topic defaults from broker synonyms; retention and roll accept hours/minutes too.
        let roles = list(&get("process.roles").unwrap_or_default());
        if roles.is_empty() || roles.iter().any(|r| r != "broker" && r != "controller") {
            return Err(invalid(
                "process.roles",
                "must be broker, controller, or broker,controller",
            ));
        }
        let process_roles = ProcessRoles {
            broker: roles.iter().any(|r| r == "broker"),
            controller: roles.iter().any(|r| r == "controller"),
        };
        let voters = match get("controller.quorum.voters") {
            Some(v) => parse_voters(&v)?,
            None => Vec::new(),
        };
        if voters.is_empty() && !(process_roles.broker && process_roles.controller) {
            return Err(invalid(
                "process.roles",
                "a node without both roles needs controller.quorum.voters",
            ));
        }
        if !process_roles.controller && voters.iter().any(|v| v.id == node_id as i32) {
            return Err(ConfigError::Invalid {
                name: "controller.quorum.voters".into(),
                value: get("controller.quorum.voters").unwrap_or_default(),
                reason: format!(
                    "node.id {node_id} has just the broker role, so it must not be a voter"
                ),
            });
        }
        let controller_listener = if voters.is_empty() || !process_roles.controller {
            None
        } else {
            if !voters.iter().any(|v| v.id == node_id as i32) {
                return Err(ConfigError::Invalid {
                    name: "controller.quorum.voters".into(),
                    value: get("controller.quorum.voters").unwrap_or_default(),
                    reason: format!("node.id {node_id} has the controller role but is not a voter"),
                });
            }
            let name = controller_names.first().ok_or_else(|| {
                invalid(
                    "controller.listener.names",
                    "must name the controller listener in cluster mode",
                )
            })?;
            Some(
                listeners
                    .iter()
                    .find(|l| &l.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        invalid(
                            "controller.listener.names",
                            "names a listener that is not in listeners",
                        )
                    })?,
            )
        };
        if process_roles.broker
            && !listeners
                .iter()
                .any(|l| !controller_names.contains(&l.name))
        {
            return Err(invalid(
                "listeners",
                "a broker needs a listener that is not a controller listener",
            ));
        }
        let inter_broker_listener_name = get("inter.broker.listener.name").unwrap_or_else(|| {
            listeners
                .iter()
                .find(|l| !controller_names.contains(&l.name))
                .map(|l| l.name.clone())
                .unwrap_or_default()
        });
        let session_timeout = positive("broker.session.timeout.ms", 9_000)?;
        let heartbeat_interval = positive("broker.heartbeat.interval.ms", 2_000)?;
        if heartbeat_interval >= session_timeout {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                "must be less than broker.session.timeout.ms",
            ));
        }
        let cluster = ClusterSettings {
            process_roles,
            voters,
            controller_listener,
            controller_listener_name: controller_names
                .first()
                .cloned()
                .unwrap_or_else(|| "CONTROLLER".to_string()),
            inter_broker_listener_name,
            broker_heartbeat_interval_ms: heartbeat_interval as u64,
            broker_session_timeout_ms: session_timeout as u64,
            election_timeout_ms: positive("controller.quorum.election.timeout.ms", 1_000)? as u64,
            replica_lag_time_max_ms: positive("replica.lag.time.max.ms", 30_000)? as u64,
            replica_fetch_wait_max_ms: positive("replica.fetch.wait.max.ms", 500)? as i32,
            replica_fetch_min_bytes: positive("replica.fetch.min.bytes", 1)? as i32,
            replica_fetch_max_bytes: positive("replica.fetch.max.bytes", 1_048_576)? as i32,
            replica_fetch_response_max_bytes: positive(
                "replica.fetch.response.max.bytes",
                10_485_760,
            )? as i32,
            replica_socket_timeout_ms: positive("replica.socket.timeout.ms", 30_000)? as u64,
            auto_leader_rebalance_enable: boolean("auto.leader.rebalance.enable", true),
            leader_imbalance_check_interval_ms: positive(
                "leader.imbalance.check.interval.seconds",
                300,
            )? as u64
                * 1000,
            leader_imbalance_per_broker_percentage: int(
                "leader.imbalance.per.broker.percentage",
                10,
            )
            .clamp(0, 100) as i32,
        };

        let mut topic_defaults = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            let mut value = def.broker_synonym.and_then(get);
            if def.name == "retention.ms" && value.is_none() {
                value = get("log.retention.minutes")
                    .and_then(|m| m.parse::<i64>().ok())
                    .map(|m| (m * 60_000).to_string())
                    .or_else(|| {
                        get("log.retention.hours")
                            .and_then(|h| h.parse::<i64>().ok())
                            .map(|h| (h * 3_600_000).to_string())
                    });
            }
            if def.name == "segment.ms" && value.is_none() {
                value = get("log.roll.hours")
                    .and_then(|h| h.parse::<i64>().ok())
                    .map(|h| (h * 3_600_000).to_string());
            }
            if let Some(v) = value {
                def.validate(&v).map_err(|reason| ConfigError::Invalid {
                    name: def.broker_synonym.unwrap_or(def.name).to_string(),
                    value: v.clone(),
                    reason,
                })?;
                topic_defaults.insert(def.name, v);
            }
        }

        Ok(BrokerConfig {
            node_id: node_id as i32,
            cluster_id: get("cluster.id"),
            listeners,
            advertised_listeners,
            log_dir,
            num_partitions: num_partitions as i32,
            default_replication_factor: default_replication_factor as i16,
            auto_create_topics_enable: boolean("auto.create.topics.enable", true),
            delete_topic_enable: boolean("delete.topic.enable", true),
            socket_request_max_bytes: socket_request_max_bytes as usize,
            max_connections: max_connections as usize,
            fetch_session_cache_slots: fetch_session_cache_slots as usize,
            log_retention_check_interval_ms: check_interval as u64,
            replica_high_watermark_checkpoint_interval_ms: positive(
                "replica.high.watermark.checkpoint.interval.ms",
                5_000,
            )? as u64,
            rack: get("broker.rack"),
            coordinator,
            cluster,
            properties: map,
            topic_defaults,
        })
    }

    /// The listener clients connect to: the first one that is not a controller listener.
    pub fn client_listener(&self) -> &Listener {
        let controller: Vec<String> = list(
            &self
                .properties
                .get("controller.listener.names")
                .cloned()
                .unwrap_or_default(),
        );
        self.listeners
            .iter()
            .find(|l| !controller.contains(&l.name))
            .unwrap_or(&self.listeners[0])
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(props: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_properties(props.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn embedded_defaults_need_nothing() {
        let c = load(&[]).unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.listeners,
            vec![Listener {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092
            }]
        );
        assert_eq!(c.log_dir, PathBuf::from("./brook-data"));
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.num_partitions, 1);
    }

    #[test]
    fn unknown_and_malformed_properties_are_errors() {
        let e = load(&[("log.retention.msx", "1")]).unwrap_err();
        assert!(
            e.to_string().contains("did you mean 'log.retention.ms'"),
            "{e}"
        );
        assert!(matches!(
            load(&[("num.partitions", "three")]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(load(&[("listeners", "localhost:9092")]).is_err());
        assert!(load(&[("log.retention.ms", "-7")]).is_err());
    }

    #[test]
    fn retention_hours_become_topic_default_ms() {
        let c = load(&[
            ("log.retention.hours", "168"),
            ("log.segment.bytes", "1024"),
        ])
        .unwrap();
        assert_eq!(c.topic_defaults["retention.ms"], "604800000");
        assert_eq!(c.topic_defaults["segment.bytes"], "1024");
    }

    #[test]
    fn properties_files_parse_like_java() {
        let text = "# comment\n! also\nnode.id=3\nlisteners = PLAINTEXT://:9093\nlog.dirs: /tmp/x\nlong.value=a,\\\n  b\n";
        let p = parse_properties(text, "f").unwrap();
        assert_eq!(p[0], ("node.id".into(), "3".into()));
        assert_eq!(p[1], ("listeners".into(), "PLAINTEXT://:9093".into()));
        assert_eq!(p[2], ("log.dirs".into(), "/tmp/x".into()));
        assert_eq!(p[3], ("long.value".into(), "a,b".into()));
        assert!(parse_properties("novalue\n", "f").is_err());
    }

    #[test]
    fn every_documented_default_is_a_valid_known_property() {
        for (name, value) in BROKER_DEFAULTS {
            let kind = kind_of(name).unwrap_or_else(|| panic!("{name} is not a known property"));
            check_value(name, kind, value).unwrap();
        }
    }

    #[test]
    fn cluster_settings_follow_kafka_names() {
        let c = load(&[
            ("node.id", "2"),
            ("process.roles", "broker,controller"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:9093,2@127.0.0.1:9095,3@[::1]:9097",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095",
            ),
        ])
        .unwrap();
        assert!(c.cluster.enabled());
        assert_eq!(c.cluster.voters.len(), 3);
        assert_eq!(c.cluster.voters[2].host, "::1");
        assert_eq!(c.cluster.controller_listener.as_ref().unwrap().port, 9095);
        assert_eq!(c.client_listener().name, "PLAINTEXT");
        assert_eq!(c.cluster.inter_broker_listener_name, "PLAINTEXT");
        assert_eq!(c.cluster.broker_session_timeout_ms, 9_000);
        assert_eq!(c.cluster.replica_lag_time_max_ms, 30_000);
        // A controller that is not a voter, a voter list that is not id@host:port, a controller
        // listener that does not exist: each is refused with the property named.
        let base = [
            ("node.id", "4"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "PLAINTEXT://:9094,CONTROLLER://:9095"),
        ];
        let e = load(&base).unwrap_err();
        assert!(e.to_string().contains("not a voter"), "{e}");
        let e = load(&[("controller.quorum.voters", "127.0.0.1:9093")]).unwrap_err();
        assert!(e.to_string().contains("id@host:port"), "{e}");
        // A broker-only node observes the voters: no controller listener, and never a voter.
        let c = load(&[
            ("node.id", "4"),
            ("process.roles", "broker"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "PLAINTEXT://:9094"),
        ])
        .unwrap();
        assert!(c.cluster.enabled());
        assert!(c.cluster.process_roles.broker && !c.cluster.process_roles.controller);
        assert!(c.cluster.controller_listener.is_none());
        let e = load(&[
            ("node.id", "1"),
            ("process.roles", "broker"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("listeners", "PLAINTEXT://:9094"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("must not be a voter"), "{e}");
        // A dedicated controller: a voter with just the controller listener.
        let c = load(&[
            ("node.id", "1"),
            ("process.roles", "controller"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "CONTROLLER://127.0.0.1:9093"),
        ])
        .unwrap();
        assert!(!c.cluster.process_roles.broker && c.cluster.process_roles.controller);
        assert_eq!(c.cluster.controller_listener.as_ref().unwrap().port, 9093);
        let mut controller_only = base.to_vec();
        controller_only.push(("process.roles", "controller"));
        let e = load(&controller_only).unwrap_err();
        assert!(e.to_string().contains("not a voter"), "{e}");
        let e = load(&[("process.roles", "controller")]).unwrap_err();
        assert!(e.to_string().contains("controller.quorum.voters"), "{e}");
        let e = load(&[
            ("node.id", "1"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("controller.listener.names", "CTL"),
            ("listeners", "PLAINTEXT://:9094,CONTROLLER://:9095"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not in listeners"), "{e}");
    }

    #[test]
    fn shipped_example_properties_are_valid() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/server.properties"
        );
        let c = BrokerConfig::load(Some(Path::new(path)), &[]).unwrap();
        assert_eq!(c.node_id, 1);
    }
}
