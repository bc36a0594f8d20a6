//! Configuration by Kafka's property names (`bootstrap.servers`, `acks`, `group.id`, ...), as the
//! Java client and librdkafka take it, layered over the typed configs: a property map is validated
//! once into [`ClientConfig`], [`ProducerConfig`] or [`ConsumerConfig`]. An unknown name or a bad
//! value is a [`ClientError::Config`] naming the property.
//!
//! Properties every Kafka client accepts but that have no meaning here (security, metrics and
//! serializer class names) are accepted and ignored, so that a Java client's properties file
//! works unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use brook_protocol::kafka::records::Compression;

use crate::cluster::ClientConfig;
use crate::consumer::{Assignor, ConsumerConfig, OffsetReset};
use crate::error::ClientError;
use crate::producer::{Acks, ProducerConfig};
use std::sync::Arc;

/// Properties a Kafka client accepts and Brook's client ignores (no effect here).
const IGNORED: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "security.protocol",
    "metrics.recording.level",
    "metrics.num.samples",
    "metrics.sample.window.ms",
    "metric.reporters",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "connections.max.idle.ms",
    "send.buffer.bytes",
    "receive.buffer.bytes",
    "socket.connection.setup.timeout.ms",
    "socket.connection.setup.timeout.max.ms",
    "metadata.max.age.ms",
    "client.dns.lookup",
    "retries",
    "retry.backoff.max.ms",
    "auto.include.jmx.reporter",
    "enable.metrics.push",
    "metadata.recovery.strategy",
    "metadata.max.idle.ms",
    "security.providers",
    "max.block.ms",
    "max.request.size",
    "check.crcs",
    "exclude.internal.topics",
    "allow.auto.create.topics",
    "default.api.timeout.ms",
    "client.rack",
    "group.protocol",
    "interceptor.classes",
];

/// Parses `key=value` lines of a Java properties file (`#`/`!` comments, blank lines skipped;
/// `key: value` also accepted).
pub fn parse_properties_file(text: &str) -> Result<BTreeMap<String, String>, ClientError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (k, v) = line
            .split_once(['=', ':'])
            .ok_or_else(|| ClientError::Config(format!("line {}: no '=' in {line:?}", n + 1)))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Takes properties out of the map one by one, so that what is left over is unknown.
struct Props(BTreeMap<String, String>);

impl Props {
    fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    fn ms(&mut self, key: &str) -> Result<Option<Duration>, ClientError> {
        self.parsed::<u64>(key)
            .map(|v| v.map(Duration::from_millis))
    }

    fn parsed<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>, ClientError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ClientError::Config(format!("invalid value {v:?} for configuration {key}"))
            }),
        }
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>, ClientError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(ClientError::Config(format!(
                    "invalid value {v:?} for configuration {key}: expected true or false"
                ))),
            },
        }
    }

    fn finish(mut self) -> Result<(), ClientError> {
        for k in IGNORED {
            self.0.remove(*k);
        }
        self.0
            .retain(|k, _| !k.starts_with("ssl.") && !k.starts_with("sasl."));
        match self.0.keys().next() {
            None => Ok(()),
            Some(k) => Err(ClientError::Config(format!("unknown configuration {k:?}"))),
        }
    }
}

fn client(props: &mut Props) -> Result<ClientConfig, ClientError> {
    let bootstrap = props
        .take("bootstrap.servers")
        .ok_or_else(|| ClientError::Config("bootstrap.servers is required".into()))?;
    let mut c = ClientConfig::new(&bootstrap);
    if c.bootstrap_servers.is_empty() {
        return Err(ClientError::Config("bootstrap.servers is empty".into()));
    }
    if let Some(id) = props.take("client.id") {
        c.client_id = id;
    }
    if let Some(t) = props.ms("request.timeout.ms")? {
        c.request_timeout = t;
    }
    Ok(c)
}

impl ClientConfig {
    /// The settings shared by every client, from Kafka's property names (`bootstrap.servers`
    /// required, `client.id`, `request.timeout.ms`); for the admin client.
    pub fn from_properties(props: BTreeMap<String, String>) -> Result<ClientConfig, ClientError> {
        let mut p = Props(props);
        let c = client(&mut p)?;
        // The admin client retries inside the request timeout; its backoff is not tunable here.
        p.take("retry.backoff.ms");
        p.finish()?;
        Ok(c)
    }
}

/// Kafka's `compression.type` names.
pub fn parse_compression(name: &str) -> Result<Compression, ClientError> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            return Err(ClientError::Config(format!(
                "invalid compression.type {other:?}: expected none, gzip, snappy, lz4 or zstd"
            )))
        }
    })
}

/// Kafka's `acks` values: `0`, `1`, `all` or `-1`.
pub fn parse_acks(value: &str) -> Result<Acks, ClientError> {
    Ok(match value.trim() {
        "0" => Acks::None,
        "1" => Acks::Leader,
        "all" | "-1" => Acks::All,
        other => {
            return Err(ClientError::Config(format!(
                "invalid acks {other:?}: expected 0, 1, all or -1"
            )))
        }
    })
}

impl ProducerConfig {
    /// A producer from Kafka's property names: `bootstrap.servers`, `client.id`, `acks`,
    /// `linger.ms`, `batch.size`, `compression.type`, `enable.idempotence`, `retry.backoff.ms`,
    /// `delivery.timeout.ms`, `request.timeout.ms`, `buffer.memory`, `max.block.ms`,
    /// `max.request.size`, `max.in.flight.requests.per.connection`, `partitioner.class`
    /// (`round_robin` or the default).
    pub fn from_properties(props: BTreeMap<String, String>) -> Result<ProducerConfig, ClientError> {
        let mut p = Props(props);
        let client = client(&mut p)?;
        let mut c = ProducerConfig::new("");
        c.client = client;
        let acks_given = p.0.contains_key("acks");
        if let Some(a) = p.take("acks") {
            c.acks = parse_acks(&a)?;
        }
        let idempotence = p.bool("enable.idempotence")?;
        match idempotence {
            Some(true) if c.acks != Acks::All => {
                return Err(ClientError::Config(
                    "enable.idempotence=true needs acks=all".into(),
                ))
            }
            Some(v) => c.enable_idempotence = v,
            // Kafka turns idempotence off quietly when the user picked weaker acks.
            None if acks_given && c.acks != Acks::All => c.enable_idempotence = false,
            None => {}
        }
        if let Some(v) = p.ms("linger.ms")? {
            c.linger = v;
        }
        if let Some(v) = p.parsed::<usize>("batch.size")? {
            c.batch_size = v.max(1);
        }
        if let Some(v) = p.take("compression.type") {
            c.compression = parse_compression(&v)?;
        }
        if let Some(v) = p.ms("retry.backoff.ms")? {
            c.retry_backoff = v;
        }
        if let Some(v) = p.ms("delivery.timeout.ms")? {
            c.delivery_timeout = v;
        }
        if let Some(v) = p.parsed::<usize>("buffer.memory")? {
            c.buffer_memory = v.max(1);
        }
        if let Some(v) = p.ms("max.block.ms")? {
            c.max_block = v;
        }
        if let Some(v) = p.parsed::<usize>("max.request.size")? {
            c.max_request_size = v.max(1);
        }
        if let Some(v) = p.parsed::<usize>("max.in.flight.requests.per.connection")? {
            c.max_in_flight = v.max(1);
        }
        if let Some(v) = p.take("partitioner.class") {
            if v.to_ascii_lowercase().contains("roundrobin") || v == "round_robin" {
                c.partitioner = Arc::new(crate::partitioner::RoundRobinPartitioner::default());
            }
        }
        p.take("partitioner.ignore.keys");
        p.finish()?;
        Ok(c)
    }
}

impl ConsumerConfig {
    /// A consumer from Kafka's property names: `bootstrap.servers`, `group.id`,
    /// `group.instance.id`, `client.id`, `auto.offset.reset`, `enable.auto.commit`,
    /// `auto.commit.interval.ms`, `session.timeout.ms`, `heartbeat.interval.ms`,
    /// `max.poll.interval.ms`, `max.poll.records`, `fetch.min.bytes`, `fetch.max.wait.ms`,
    /// `fetch.max.bytes`, `max.partition.fetch.bytes`, `isolation.level`,
    /// `partition.assignment.strategy`, `metadata.max.age.ms`, `group.protocol` (`classic` or
    /// `consumer`), `group.remote.assignor`.
    pub fn from_properties(props: BTreeMap<String, String>) -> Result<ConsumerConfig, ClientError> {
        let mut p = Props(props);
        let client = client(&mut p)?;
        let mut c = ConsumerConfig::new("", None);
        c.client = client;
        c.group_id = p.take("group.id").filter(|g| !g.is_empty());
        c.group_instance_id = p.take("group.instance.id").filter(|g| !g.is_empty());
        if let Some(v) = p.take("auto.offset.reset") {
            c.auto_offset_reset = match v.trim().to_ascii_lowercase().as_str() {
                "earliest" => OffsetReset::Earliest,
                "latest" => OffsetReset::Latest,
                "none" => OffsetReset::None,
                other => {
                    return Err(ClientError::Config(format!(
                        "invalid auto.offset.reset {other:?}: expected earliest, latest or none"
                    )))
                }
            };
        }
        if let Some(v) = p.bool("enable.auto.commit")? {
            c.enable_auto_commit = v;
        }
        if let Some(v) = p.ms("auto.commit.interval.ms")? {
            c.auto_commit_interval = v;
        }
        if let Some(v) = p.ms("session.timeout.ms")? {
            c.session_timeout = v;
        }
        if let Some(v) = p.ms("heartbeat.interval.ms")? {
            c.heartbeat_interval = v;
        }
        if let Some(v) = p.ms("max.poll.interval.ms")? {
            c.max_poll_interval = v;
        }
        if let Some(v) = p.parsed::<usize>("max.poll.records")? {
            c.max_poll_records = v.max(1);
        }
        if let Some(v) = p.parsed::<i32>("fetch.min.bytes")? {
            c.fetch_min_bytes = v;
        }
        if let Some(v) = p.ms("fetch.max.wait.ms")? {
            c.fetch_max_wait = v;
        }
        if let Some(v) = p.parsed::<i32>("fetch.max.bytes")? {
            c.fetch_max_bytes = v;
        }
        if let Some(v) = p.parsed::<i32>("max.partition.fetch.bytes")? {
            c.max_partition_fetch_bytes = v;
        }
        if let Some(v) = p.take("isolation.level") {
            c.read_committed = match v.trim().to_ascii_lowercase().as_str() {
                "read_committed" => true,
                "read_uncommitted" => false,
                other => {
                    return Err(ClientError::Config(format!(
                        "invalid isolation.level {other:?}: expected read_uncommitted or read_committed"
                    )))
                }
            };
        }
        if let Some(v) = p.take("partition.assignment.strategy") {
            let first = v
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            c.assignor = if first.contains("roundrobin") {
                Assignor::RoundRobin
            } else if first.contains("range") {
                Assignor::Range
            } else {
                return Err(ClientError::Config(format!(
                    "unsupported partition.assignment.strategy {v:?}: expected range or roundrobin"
                )));
            };
        }
        if let Some(v) = p.ms("metadata.max.age.ms")? {
            c.metadata_max_age = v;
        }
        if let Some(v) = p.take("group.protocol") {
            c.group_protocol = match v.trim().to_ascii_lowercase().as_str() {
                "classic" => crate::consumer::GroupProtocol::Classic,
                "consumer" => crate::consumer::GroupProtocol::Consumer,
                other => {
                    return Err(ClientError::Config(format!(
                        "invalid group.protocol {other:?}: expected classic or consumer"
                    )))
                }
            };
        }
        if let Some(v) = p.take("group.remote.assignor") {
            c.group_remote_assignor = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        }
        p.finish()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn producer_properties_map_to_the_typed_config() {
        let c = ProducerConfig::from_properties(map(&[
            ("bootstrap.servers", "a:1,b:2"),
            ("acks", "1"),
            ("linger.ms", "20"),
            ("compression.type", "zstd"),
            (
                "key.serializer",
                "org.apache.kafka.common.serialization.StringSerializer",
            ),
        ]))
        .unwrap();
        assert_eq!(c.client.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(c.acks, Acks::Leader);
        assert!(!c.enable_idempotence, "acks=1 turns idempotence off");
        assert_eq!(c.linger, Duration::from_millis(20));
        assert!(matches!(c.compression, Compression::Zstd));
    }

    #[test]
    fn unknown_names_and_bad_values_are_errors_naming_the_property() {
        let e = ProducerConfig::from_properties(map(&[("bootstrap.servers", "a:1"), ("ack", "1")]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("\"ack\""), "{e}");
        let e = ConsumerConfig::from_properties(map(&[
            ("bootstrap.servers", "a:1"),
            ("auto.offset.reset", "smallest"),
        ]))
        .err()
        .unwrap();
        assert!(e.to_string().contains("auto.offset.reset"), "{e}");
        let e = ProducerConfig::from_properties(map(&[
            ("bootstrap.servers", "a:1"),
            ("acks", "1"),
            ("enable.idempotence", "true"),
        ]))
        .err()
        .unwrap();
        assert!(e.to_string().contains("acks=all"), "{e}");
        assert!(ClientConfig::from_properties(map(&[])).is_err());
    }

    #[test]
    fn consumer_properties_map_to_the_typed_config() {
        let c = ConsumerConfig::from_properties(map(&[
            ("bootstrap.servers", "a:1"),
            ("group.id", "g"),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.RoundRobinAssignor",
            ),
        ]))
        .unwrap();
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert!(!c.enable_auto_commit);
        assert!(c.read_committed);
        assert_eq!(c.assignor, Assignor::RoundRobin);
    }

    #[test]
    fn properties_files_parse_as_java_does() {
        let p = parse_properties_file("# c\n\nbootstrap.servers = h:1\n! x\nacks:all\n").unwrap();
        assert_eq!(p, map(&[("bootstrap.servers", "h:1"), ("acks", "all")]));
        assert!(parse_properties_file("novalue").is_err());
    }
}
