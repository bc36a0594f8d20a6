//! Kafka's topic-level configuration: names, types, defaults, the broker property each one falls
//! back to, and validation of values.

/// Kafka's config types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker property that supplies the default when the topic does not override it.
    pub broker_synonym: Option<&'static str>,
    pub kind: ConfigType,
    pub default: &'static str,
    pub doc: &'static str,
    validate: fn(&str) -> Result<(), String>,
}

impl TopicConfigDef {
    pub fn validate(&self, value: &str) -> Result<(), String> {
        (self.validate)(value)
    }
}

const LONG_MAX: &str = "9223372036854775807";

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v: &str| match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(format!("Value must be at least {min}, was {n}")),
        Err(_) => Err(format!("Expected a long integer, was '{v}'")),
    }
}

macro_rules! long_min {
    ($min:expr) => {{
        fn f(v: &str) -> Result<(), String> {
            long_at_least($min)(v)
        }
        f
    }};
}

fn int_min_0(v: &str) -> Result<(), String> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 0 => Ok(()),
        Ok(n) => Err(format!("Value must be at least 0, was {n}")),
        Err(_) => Err(format!("Expected an integer, was '{v}'")),
    }
}

fn int_min_1(v: &str) -> Result<(), String> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 1 => Ok(()),
        Ok(n) => Err(format!("Value must be at least 1, was {n}")),
        Err(_) => Err(format!("Expected an integer, was '{v}'")),
    }
}

fn segment_bytes(v: &str) -> Result<(), String> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 14 => Ok(()),
        Ok(n) => Err(format!("Value must be at least 14, was {n}")),
        Err(_) => Err(format!("Expected an integer, was '{v}'")),
    }
}

fn boolean(v: &str) -> Result<(), String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "false" => Ok(()),
        _ => Err(format!("Expected true or false, was '{v}'")),
    }
}

fn ratio(v: &str) -> Result<(), String> {
    match v.trim().parse::<f64>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Ok(()),
        _ => Err(format!("Expected a number between 0 and 1, was '{v}'")),
    }
}

fn cleanup_policy(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.is_empty() || parts.iter().any(|p| !matches!(*p, "delete" | "compact")) {
        return Err(format!(
            "Invalid value {v}: cleanup.policy must be a list of delete and/or compact"
        ));
    }
    Ok(())
}

fn compression_type(v: &str) -> Result<(), String> {
    match v.trim() {
        "uncompressed" | "zstd" | "lz4" | "snappy" | "gzip" | "producer" => Ok(()),
        _ => Err(format!(
            "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer, was '{v}'"
        )),
    }
}

fn timestamp_type(v: &str) -> Result<(), String> {
    match v.trim() {
        "CreateTime" | "LogAppendTime" => Ok(()),
        _ => Err(format!(
            "String must be one of: CreateTime, LogAppendTime, was '{v}'"
        )),
    }
}

macro_rules! def {
    ($name:expr, $syn:expr, $kind:ident, $default:expr, $validate:expr, $doc:expr) => {
        TopicConfigDef {
            name: $name,
            broker_synonym: $syn,
            kind: ConfigType::$kind,
            default: $default,
            doc: $doc,
            validate: $validate,
        }
    };
}

/// Every topic config Brook knows, in Kafka's (alphabetical) order.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!("cleanup.policy", Some("log.cleanup.policy"), List, "delete", cleanup_policy,
        "A string that is either \"delete\" or \"compact\" or both: the retention policy for old log segments."),
    def!("compression.type", Some("compression.type"), String, "producer", compression_type,
        "The final compression type for a topic; \"producer\" keeps the producer's codec."),
    def!("delete.retention.ms", Some("log.cleaner.delete.retention.ms"), Long, "86400000", long_min!(0),
        "How long delete tombstones are retained for log compacted topics."),
    def!("file.delete.delay.ms", Some("log.segment.delete.delay.ms"), Long, "60000", long_min!(0),
        "The time to wait before deleting a file from the filesystem."),
    def!("flush.messages", Some("log.flush.interval.messages"), Long, LONG_MAX, long_min!(1),
        "Force an fsync of the log after this many messages."),
    def!("flush.ms", Some("log.flush.interval.ms"), Long, LONG_MAX, long_min!(0),
        "Force an fsync of the log after this much time."),
    def!("index.interval.bytes", Some("log.index.interval.bytes"), Int, "4096", int_min_0,
        "How frequently an entry is added to the offset index."),
    def!("max.compaction.lag.ms", Some("log.cleaner.max.compaction.lag.ms"), Long, LONG_MAX, long_min!(1),
        "The maximum time a message will remain ineligible for compaction."),
    def!("max.message.bytes", Some("message.max.bytes"), Int, "1048588", int_min_0,
        "The largest record batch size allowed by Kafka (after compression if compression is enabled)."),
    def!("message.timestamp.after.max.ms", Some("log.message.timestamp.after.max.ms"), Long, "3600000", long_min!(0),
        "The maximum allowed difference by which the message timestamp can be ahead of the broker's timestamp."),
    def!("message.timestamp.before.max.ms", Some("log.message.timestamp.before.max.ms"), Long, LONG_MAX, long_min!(0),
        "The maximum allowed difference by which the message timestamp can be behind the broker's timestamp."),
    def!("message.timestamp.type", Some("log.message.timestamp.type"), String, "CreateTime", timestamp_type,
        "Whether the timestamp in the message is the creation time or the log append time."),
    def!("min.cleanable.dirty.ratio", Some("log.cleaner.min.cleanable.ratio"), Double, "0.5", ratio,
        "How frequently the log compactor will attempt to clean the log."),
    def!("min.compaction.lag.ms", Some("log.cleaner.min.compaction.lag.ms"), Long, "0", long_min!(0),
        "The minimum time a message will remain uncompacted in the log."),
    def!("min.insync.replicas", Some("min.insync.replicas"), Int, "1", int_min_1,
        "The minimum number of replicas that must acknowledge a write with acks=all."),
    def!("preallocate", Some("log.preallocate"), Boolean, "false", boolean,
        "True if we should preallocate the file on disk when creating a new log segment."),
    def!("retention.bytes", Some("log.retention.bytes"), Long, "-1", long_min!(-1),
        "The maximum size a partition can grow to before old segments are discarded; -1 means no limit."),
    def!("retention.ms", Some("log.retention.ms"), Long, "604800000", long_min!(-1),
        "The maximum time a log is retained before old segments are discarded; -1 means no limit."),
    def!("segment.bytes", Some("log.segment.bytes"), Int, "1073741824", segment_bytes,
        "The segment file size for the log."),
    def!("segment.index.bytes", Some("log.index.size.max.bytes"), Int, "10485760", int_min_0,
        "The size of the index that maps offsets to file positions."),
    def!("segment.jitter.ms", Some("log.roll.jitter.ms"), Long, "0", long_min!(0),
        "The maximum random jitter subtracted from the scheduled segment roll time."),
    def!("segment.ms", Some("log.roll.ms"), Long, "604800000", long_min!(1),
        "The period of time after which Kafka will force the log to roll even if the segment file isn't full."),
    def!("unclean.leader.election.enable", Some("unclean.leader.election.enable"), Boolean, "false", boolean,
        "Whether replicas not in the ISR may be elected as leader as a last resort."),
];

/// The definition of a topic config name, if it is one.
pub fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Why a topic config cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Unknown topic config name: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
}

/// Checks one topic config assignment.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = topic_config(name).ok_or_else(|| ConfigError::Unknown(name.to_string()))?;
    def.validate(value)
        .map_err(|reason| ConfigError::InvalidValue {
            name: name.to_string(),
            value: value.to_string(),
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid() {
        for d in TOPIC_CONFIGS {
            assert!(d.validate(d.default).is_ok(), "{}", d.name);
        }
    }

    #[test]
    fn configs_are_sorted_and_unique() {
        for w in TOPIC_CONFIGS.windows(2) {
            assert!(w[0].name < w[1].name, "{} / {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        assert_eq!(
            validate_topic_config("retention.msx", "1"),
            Err(ConfigError::Unknown("retention.msx".into()))
        );
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "forever").is_err());
    }
}
