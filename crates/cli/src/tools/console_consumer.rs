//! `kafka-console-consumer`: prints records to stdout as Kafka's ConsoleConsumer with its
//! DefaultMessageFormatter does. Owns the flag checks (topic or include regex, partition and
//! offset, group ids), the consumer properties Kafka derives from the flags (a random
//! `console-consumer-NNNNN` group without auto-commit when no group is given), the record
//! formatting (`print.*` properties, separators, null literal, Kafka's simple deserializers),
//! and the stop conditions (max messages, `--timeout-ms`, SIGINT/SIGTERM, stdout closed), after
//! which it commits what it printed (for a real group) and reports the total on stderr.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use brook_client::admin::{ConfigResource, OffsetSpec};
use brook_client::cluster::{ClientConfig, Cluster};
use brook_client::consumer::Tp;
use brook_client::{Admin, ClientError, Consumer, ConsumerConfig, ConsumerRecord};
use clap::Parser;
use regex::Regex;

use super::common::{self, ToolError, ToolResult};

/// The formatter class names meaning Kafka's DefaultMessageFormatter (the only one here).
const FORMATTERS: &[&str] = &[
    "org.apache.kafka.tools.consumer.DefaultMessageFormatter",
    "kafka.tools.DefaultMessageFormatter",
];

#[derive(Parser)]
#[command(
    about = "This tool helps to read data from Kafka topics and outputs it to standard output."
)]
struct Args {
    /// REQUIRED: the server(s) to connect to (HOST1:PORT1,HOST2:PORT2).
    #[arg(long, num_args = 1.., required = true, value_name = "SERVERS")]
    bootstrap_server: Vec<String>,
    /// The topic to consume from.
    #[arg(long)]
    topic: Option<String>,
    /// Regular expression for the topics to consume from (the whole name must match).
    #[arg(long, value_name = "REGEX")]
    include: Option<String>,
    /// The partition to consume from; consumption starts at its end unless --offset is given.
    #[arg(long, allow_hyphen_values = true)]
    partition: Option<i32>,
    /// The offset to start from: a non-negative number, 'earliest' or 'latest' (the default).
    #[arg(long, allow_hyphen_values = true, value_name = "OFFSET")]
    offset: Option<String>,
    /// Start with the earliest message when the group has no committed offset.
    #[arg(long)]
    from_beginning: bool,
    /// The consumer group id (created if new; its offsets are committed).
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Exit after this many messages.
    #[arg(long, value_name = "NUM", allow_hyphen_values = true)]
    max_messages: Option<i64>,
    /// Exit when no message arrived for this long.
    #[arg(long, value_name = "MS", allow_hyphen_values = true)]
    timeout_ms: Option<i64>,
    /// Skip a message that cannot be formatted instead of stopping.
    #[arg(long)]
    skip_message_on_error: bool,
    /// Formatter property key=value: print.timestamp, print.key, print.offset, print.partition,
    /// print.headers, print.value, print.delivery, key.separator, line.separator,
    /// headers.separator, null.literal, key.deserializer, value.deserializer,
    /// headers.deserializer.
    #[arg(long, value_name = "PROP")]
    property: Vec<String>,
    /// The same as --property (Kafka 4's name).
    #[arg(long, value_name = "PROP")]
    formatter_property: Vec<String>,
    /// Formatter properties file (--property takes precedence).
    #[arg(long, value_name = "FILE")]
    formatter_config: Option<PathBuf>,
    /// The formatter class; only Kafka's DefaultMessageFormatter is supported.
    #[arg(long, value_name = "CLASS")]
    formatter: Option<String>,
    /// A consumer property key=value (repeatable).
    #[arg(long, value_name = "CONSUMER_PROP")]
    consumer_property: Vec<String>,
    /// The same as --consumer-property (Kafka 4's name).
    #[arg(long, value_name = "CONSUMER_PROP")]
    command_property: Vec<String>,
    /// Consumer properties file.
    #[arg(long = "consumer.config", value_name = "FILE")]
    consumer_config: Option<PathBuf>,
    /// The same as --consumer.config (Kafka 4's name).
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
    /// The key deserializer class (String, ByteArray, Long, Integer or Short).
    #[arg(long, value_name = "CLASS")]
    key_deserializer: Option<String>,
    /// The value deserializer class (String, ByteArray, Long, Integer or Short).
    #[arg(long, value_name = "CLASS")]
    value_deserializer: Option<String>,
    /// read_committed or read_uncommitted (the default).
    #[arg(long, value_name = "LEVEL")]
    isolation_level: Option<String>,
    /// Print "shutdown_complete" at the end (for system tests).
    #[arg(long)]
    enable_systest_events: bool,
}

/// Runs `kafka-console-consumer` with these arguments; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let args: Args = common::parse_args("kafka-console-consumer", args);
    common::run("kafka-console-consumer", execute(args))
}

/// How bytes become text: Kafka's deserializers that need no class of their own.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Deserializer {
    /// String, ByteArray, Bytes, ByteBuffer: the bytes as they are.
    Raw,
    Long,
    Integer,
    Short,
}

impl Deserializer {
    fn from_class(class: &str) -> Result<Deserializer, ToolError> {
        let simple = class.rsplit('.').next().unwrap_or(class);
        Ok(match simple {
            "StringDeserializer"
            | "ByteArrayDeserializer"
            | "BytesDeserializer"
            | "ByteBufferDeserializer" => Deserializer::Raw,
            "LongDeserializer" => Deserializer::Long,
            "IntegerDeserializer" => Deserializer::Integer,
            "ShortDeserializer" => Deserializer::Short,
            _ => {
                return Err(ToolError::new(format!(
                    "Unsupported deserializer {class}: String, ByteArray, Bytes, ByteBuffer, \
                     Long, Integer and Short deserializers are supported"
                )))
            }
        })
    }

    /// The text for these bytes (Kafka hands the null literal's bytes to the deserializer too).
    fn apply(self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let fixed = |n: usize, name: &str| -> Result<(), String> {
            if bytes.len() == n {
                Ok(())
            } else {
                Err(format!("Size of data received by {name} is not {n}"))
            }
        };
        match self {
            Deserializer::Raw => out.extend_from_slice(bytes),
            Deserializer::Long => {
                fixed(8, "LongDeserializer")?;
                let mut b = [0u8; 8];
                b.copy_from_slice(bytes);
                out.extend_from_slice(i64::from_be_bytes(b).to_string().as_bytes());
            }
            Deserializer::Integer => {
                fixed(4, "IntegerDeserializer")?;
                let mut b = [0u8; 4];
                b.copy_from_slice(bytes);
                out.extend_from_slice(i32::from_be_bytes(b).to_string().as_bytes());
            }
            Deserializer::Short => {
                fixed(2, "ShortDeserializer")?;
                out.extend_from_slice(
                    i16::from_be_bytes([bytes[0], bytes[1]])
                        .to_string()
                        .as_bytes(),
                );
            }
        }
        Ok(())
    }
}

/// Kafka's DefaultMessageFormatter.
#[derive(Debug, Clone)]
struct Formatter {
    print_timestamp: bool,
    print_key: bool,
    print_value: bool,
    print_partition: bool,
    print_offset: bool,
    print_delivery: bool,
    print_headers: bool,
    key_separator: Vec<u8>,
    line_separator: Vec<u8>,
    headers_separator: Vec<u8>,
    null_literal: Vec<u8>,
    key_deserializer: Deserializer,
    value_deserializer: Deserializer,
    headers_deserializer: Deserializer,
}

impl Formatter {
    fn from_properties(p: &BTreeMap<String, String>) -> Result<Formatter, ToolError> {
        let flag = |k: &str, default: bool| {
            p.get(k)
                .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
        };
        let bytes = |k: &str, default: &str| {
            p.get(k)
                .map_or(default.as_bytes().to_vec(), |v| v.as_bytes().to_vec())
        };
        let deserializer = |k: &str| match p.get(k) {
            Some(class) => Deserializer::from_class(class),
            None => Ok(Deserializer::Raw),
        };
        Ok(Formatter {
            print_timestamp: flag("print.timestamp", false),
            print_key: flag("print.key", false),
            print_value: flag("print.value", true),
            print_partition: flag("print.partition", false),
            print_offset: flag("print.offset", false),
            print_delivery: flag("print.delivery", false),
            print_headers: flag("print.headers", false),
            key_separator: bytes("key.separator", "\t"),
            line_separator: bytes("line.separator", "\n"),
            headers_separator: bytes("headers.separator", ","),
            null_literal: bytes("null.literal", "null"),
            key_deserializer: deserializer("key.deserializer")?,
            value_deserializer: deserializer("value.deserializer")?,
            headers_deserializer: deserializer("headers.deserializer")?,
        })
    }

    fn field(&self, d: Deserializer, b: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), String> {
        d.apply(b.unwrap_or(&self.null_literal), out)
    }

    /// One record as Kafka prints it: timestamp, partition, offset, delivery, headers, key and
    /// value, each followed by the key separator when something follows it, and the value by
    /// the line separator. `timestamp_type` is "CreateTime" or "LogAppendTime".
    fn format(
        &self,
        r: &ConsumerRecord,
        timestamp_type: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let fields = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_delivery,
            self.print_headers,
            self.print_key,
            self.print_value,
        ];
        // After field i, a column separator when a later field is printed; else a line end.
        let separator = |i: usize, out: &mut Vec<u8>| {
            if fields[i + 1..].iter().any(|f| *f) {
                out.extend_from_slice(&self.key_separator);
            } else {
                out.extend_from_slice(&self.line_separator);
            }
        };
        if self.print_timestamp {
            out.extend_from_slice(format!("{timestamp_type}:{}", r.timestamp).as_bytes());
            separator(0, out);
        }
        if self.print_partition {
            out.extend_from_slice(format!("Partition:{}", r.partition).as_bytes());
            separator(1, out);
        }
        if self.print_offset {
            out.extend_from_slice(format!("Offset:{}", r.offset).as_bytes());
            separator(2, out);
        }
        if self.print_delivery {
            out.extend_from_slice(b"Delivery:NONE");
            separator(3, out);
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.extend_from_slice(b"NO_HEADERS");
            }
            for (i, (k, v)) in r.headers.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(&self.headers_separator);
                }
                out.extend_from_slice(k.as_bytes());
                out.push(b':');
                self.field(self.headers_deserializer, v.as_deref(), out)?;
            }
            separator(4, out);
        }
        if self.print_key {
            self.field(self.key_deserializer, r.key.as_deref(), out)?;
            separator(5, out);
        }
        if self.print_value {
            self.field(self.value_deserializer, r.value.as_deref(), out)?;
            out.extend_from_slice(&self.line_separator);
        }
        Ok(())
    }
}

/// What to read.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// One partition from an offset, outside any group.
    Partition {
        topic: String,
        partition: i32,
        start: Start,
    },
    /// A topic, as a member of the group.
    Topic(String),
    /// Every topic whose whole name matches the regex, as a member of the group.
    Include(String),
}

/// Where `--partition` reading starts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    Earliest,
    Latest,
    At(i64),
}

/// The flags checked as Kafka's ConsoleConsumerOptions checks them.
fn source(args: &Args) -> Result<Source, ToolError> {
    let start = match args.offset.as_deref() {
        None if args.from_beginning => Start::Earliest,
        None => Start::Latest,
        Some(o) => match o.to_ascii_lowercase().as_str() {
            "earliest" => Start::Earliest,
            "latest" => Start::Latest,
            _ => match o.parse::<i64>() {
                Ok(n) if n >= 0 => Start::At(n),
                _ => {
                    return Err(ToolError::new(format!(
                        "The provided offset value '{o}' is incorrect. Valid values are \
                         'earliest', 'latest', or a non-negative long."
                    )))
                }
            },
        },
    };
    let subscription = match (&args.topic, &args.include) {
        (Some(t), None) => Source::Topic(t.clone()),
        (None, Some(re)) => Source::Include(re.clone()),
        _ => {
            return Err(ToolError::new(
                "Exactly one of the following arguments is required: --topic, --include",
            ))
        }
    };
    if let Some(partition) = args.partition {
        let Some(topic) = &args.topic else {
            return Err(ToolError::new(
                "The topic is required when partition is specified.",
            ));
        };
        if args.from_beginning && args.offset.is_some() {
            return Err(ToolError::new(
                "Options from-beginning and offset cannot be specified together.",
            ));
        }
        return Ok(Source::Partition {
            topic: topic.clone(),
            partition,
            start,
        });
    }
    if args.offset.is_some() {
        return Err(ToolError::new(
            "The partition is required when offset is specified.",
        ));
    }
    Ok(subscription)
}

/// A group id for a consumer without `--group`: Kafka's `console-consumer-NNNNN`.
fn random_group() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("console-consumer-{}", h.finish() % 100_000)
}

/// The consumer's properties, as Kafka builds them from files, flags and defaults.
fn consumer_properties(args: &Args) -> Result<BTreeMap<String, String>, ToolError> {
    if !args.consumer_property.is_empty() && !args.command_property.is_empty() {
        return Err(ToolError::new(
            "Options --consumer-property and --command-property cannot be specified together.",
        ));
    }
    if args.consumer_config.is_some() && args.command_config.is_some() {
        return Err(ToolError::new(
            "Options --consumer.config and --command-config cannot be specified together.",
        ));
    }
    let mut props = match args
        .consumer_config
        .as_ref()
        .or(args.command_config.as_ref())
    {
        Some(path) => common::properties_file(path)?,
        None => BTreeMap::new(),
    };
    let from_file = props.get("group.id").cloned();
    let extra = if args.consumer_property.is_empty() {
        common::key_values(&args.command_property, "--command-property")?
    } else {
        common::key_values(&args.consumer_property, "--consumer-property")?
    };
    let from_flags = extra.get("group.id").cloned();
    props.extend(extra);
    let groups: BTreeSet<String> = [args.group.clone(), from_file, from_flags]
        .into_iter()
        .flatten()
        .collect();
    if groups.len() > 1 {
        let list: Vec<String> = groups.iter().map(|g| format!("'{g}'")).collect();
        return Err(ToolError::new(format!(
            "The group ids provided in different places (directly using '--group', via \
             '--consumer-property', or via '--consumer.config') do not match. Detected group \
             ids: {}",
            list.join(", ")
        )));
    }
    if !groups.is_empty() && args.partition.is_some() {
        return Err(ToolError::new(
            "Options group and partition cannot be specified together.",
        ));
    }
    match props.get("auto.offset.reset") {
        Some(reset) if args.from_beginning && reset != "earliest" => {
            return Err(ToolError::new(format!(
                "Can't simultaneously specify --from-beginning and 'auto.offset.reset={reset}', \
                 please remove one option"
            )))
        }
        Some(_) => {}
        None => {
            let reset = if args.from_beginning {
                "earliest"
            } else {
                "latest"
            };
            props.insert("auto.offset.reset".into(), reset.into());
        }
    }
    props.insert(
        "bootstrap.servers".into(),
        common::bootstrap(&args.bootstrap_server)?,
    );
    props
        .entry("client.id".into())
        .or_insert_with(|| "console-consumer".into());
    match &args.isolation_level {
        Some(level) => {
            props.insert("isolation.level".into(), level.clone());
        }
        None => {
            props
                .entry("isolation.level".into())
                .or_insert_with(|| "read_uncommitted".into());
        }
    }
    match groups.into_iter().next() {
        Some(g) => {
            props.insert("group.id".into(), g);
        }
        None => {
            props.insert("group.id".into(), random_group());
            // Kafka: the made-up group's offsets are not meant to be used again.
            props
                .entry("enable.auto.commit".into())
                .or_insert_with(|| "false".into());
        }
    }
    Ok(props)
}

/// The formatter's properties: `--formatter-config`, the deserializer flags, `--property`.
fn formatter_properties(args: &Args) -> Result<BTreeMap<String, String>, ToolError> {
    if !args.property.is_empty() && !args.formatter_property.is_empty() {
        return Err(ToolError::new(
            "Options --property and --formatter-property cannot be specified together.",
        ));
    }
    if let Some(f) = &args.formatter {
        if !FORMATTERS.contains(&f.as_str()) {
            return Err(ToolError::new(format!(
                "--formatter {f} is not supported: only Kafka's DefaultMessageFormatter is"
            )));
        }
    }
    let mut props = match &args.formatter_config {
        Some(path) => common::properties_file(path)?,
        None => BTreeMap::new(),
    };
    if let Some(d) = args.key_deserializer.as_ref().filter(|d| !d.is_empty()) {
        props.insert("key.deserializer".into(), d.clone());
    }
    if let Some(d) = args.value_deserializer.as_ref().filter(|d| !d.is_empty()) {
        props.insert("value.deserializer".into(), d.clone());
    }
    let (values, flag) = if args.property.is_empty() {
        (&args.formatter_property, "--formatter-property")
    } else {
        (&args.property, "--property")
    };
    props.extend(common::key_values(values, flag)?);
    Ok(props)
}

/// A property the tool reads itself, parsed as milliseconds.
fn take_ms(
    props: &mut BTreeMap<String, String>,
    key: &str,
    default: u64,
) -> Result<Duration, ToolError> {
    match props.get(key) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| ToolError::new(format!("invalid value {v:?} for configuration {key}"))),
    }
}

/// Waits until the topic has partitions (asking the broker to create it when it may, as Kafka's
/// consumer does), for at most `limit`. A cluster that cannot be reached fails at once.
async fn await_topic(
    cluster: &Cluster,
    topic: &str,
    allow_creation: bool,
    limit: Duration,
) -> Result<(), ClientError> {
    let start = Instant::now();
    let topics = [topic.to_string()];
    loop {
        let md = cluster
            .refresh_allowing_creation(Some(&topics), allow_creation)
            .await?;
        if let Some(t) = md.topics.get(topic) {
            if t.error_code == 0 && !t.partitions.is_empty() {
                return Ok(());
            }
            if !matches!(t.error_code, 0 | 3 | 5) {
                return Err(ClientError::kafka(t.error_code, None));
            }
        }
        if start.elapsed() >= limit {
            return Err(ClientError::kafka(
                3,
                Some(format!(
                    "topic {topic} not present in metadata after {} ms",
                    limit.as_millis()
                )),
            ));
        }
        tokio::time::sleep(
            limit
                .saturating_sub(start.elapsed())
                .min(Duration::from_millis(100)),
        )
        .await;
    }
}

/// The topics whose whole name matches the regex (internal ones excluded, as Kafka does).
async fn matching_topics(admin: &Admin, regex: &Regex) -> Result<Vec<String>, ClientError> {
    let mut topics: Vec<String> = admin
        .list_topics(false)
        .await?
        .into_iter()
        .filter(|t| regex.is_match(t))
        .collect();
    topics.sort();
    Ok(topics)
}

/// How long a stopping consumer lets an unfinished group join complete, so that it can leave.
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// What ended a wait for records.
enum Woke {
    Polled(Result<Vec<ConsumerRecord>, ClientError>),
    Deadline,
    Signal,
}

/// Why reading stopped.
enum Stop {
    /// Max messages, timeout, a signal, stdout closed: exit 0.
    Done,
    /// An error: exit 1.
    Failed(String),
}

/// The per-topic timestamp type name, from the topic's `message.timestamp.type`.
async fn timestamp_type(
    admin: &Admin,
    cache: &mut HashMap<String, &'static str>,
    topic: &str,
) -> &'static str {
    if let Some(t) = cache.get(topic) {
        return t;
    }
    let kind = match admin
        .describe_configs(&ConfigResource::Topic(topic.to_string()))
        .await
    {
        Ok(entries) => match entries
            .iter()
            .find(|e| e.name == "message.timestamp.type")
            .and_then(|e| e.value.as_deref())
        {
            Some("LogAppendTime") => "LogAppendTime",
            _ => "CreateTime",
        },
        // Kafka's default when the config cannot be read.
        Err(_) => "CreateTime",
    };
    cache.insert(topic.to_string(), kind);
    kind
}

async fn execute(args: Args) -> ToolResult {
    let source = source(&args)?;
    let formatter = Formatter::from_properties(&formatter_properties(&args)?)?;
    let mut props = consumer_properties(&args)?;
    // The tool commits what it printed itself (the client's auto-commit would also commit
    // records fetched but not yet printed), at the auto-commit interval and on exit.
    let auto_commit = props
        .remove("enable.auto.commit")
        .is_none_or(|v| v.trim().eq_ignore_ascii_case("true"));
    let commit_interval = take_ms(&mut props, "auto.commit.interval.ms", 5000)?;
    let api_timeout = take_ms(&mut props, "default.api.timeout.ms", 60_000)?;
    let allow_creation = props
        .get("allow.auto.create.topics")
        .is_none_or(|v| v.trim().eq_ignore_ascii_case("true"));
    props.insert("enable.auto.commit".into(), "false".into());
    let mut config =
        ConsumerConfig::from_properties(props).map_err(|e| ToolError::new(e.to_string()))?;
    config.enable_auto_commit = false;
    let grouped = !matches!(source, Source::Partition { .. });
    let commits = grouped && auto_commit;
    let timeout = args
        .timeout_ms
        .filter(|t| *t >= 0)
        .map(|t| Duration::from_millis(t as u64));
    let max_messages = args.max_messages.filter(|m| *m >= 0);
    let include = match &source {
        Source::Include(re) => Some(
            Regex::new(&format!("^(?:{re})$"))
                .map_err(|e| ToolError::new(format!("Invalid --include regex {re:?}: {e}")))?,
        ),
        _ => None,
    };

    let client: ClientConfig = config.client.clone();
    let cluster = Cluster::new(client.clone())?;
    let admin = Admin::new(client)?;
    let mut consumer = Consumer::new(config)?;

    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;

    let mut count: u64 = 0;
    let mut printed: BTreeMap<Tp, i64> = BTreeMap::new();
    let stop = {
        // Setup: the topic must exist (bounded by default.api.timeout.ms and --timeout-ms).
        let limit = timeout.map_or(api_timeout, |t| t.min(api_timeout));
        let setup = async {
            match &source {
                Source::Partition {
                    topic,
                    partition,
                    start,
                } => {
                    await_topic(&cluster, topic, allow_creation, limit).await?;
                    let tp = (topic.clone(), *partition);
                    let offset = match start {
                        Start::At(n) => *n,
                        Start::Earliest | Start::Latest => {
                            let spec = if *start == Start::Earliest {
                                OffsetSpec::Earliest
                            } else {
                                OffsetSpec::Latest
                            };
                            let found = admin.list_offsets(std::slice::from_ref(&tp), spec).await?;
                            match found.get(&tp) {
                                Some(Ok(o)) => o.offset,
                                Some(Err(e)) => {
                                    return Err(ClientError::kafka(
                                        e.code().unwrap_or(-1),
                                        Some(format!("partition {}-{}", tp.0, tp.1)),
                                    ))
                                }
                                None => return Err(ClientError::kafka(3, None)),
                            }
                        }
                    };
                    consumer.assign(vec![tp.clone()]);
                    consumer.seek(tp, offset);
                    Ok(Vec::new())
                }
                Source::Topic(topic) => {
                    await_topic(&cluster, topic, allow_creation, limit).await?;
                    consumer.subscribe(vec![topic.clone()])?;
                    Ok(vec![topic.clone()])
                }
                Source::Include(_) => {
                    let re = include.as_ref().expect("compiled for Source::Include");
                    let topics = matching_topics(&admin, re).await?;
                    consumer.subscribe(topics.clone())?;
                    Ok(topics)
                }
            }
        };
        let setup = tokio::select! {
            r = setup => Some(r),
            _ = interrupt.recv() => None,
            _ = terminate.recv() => None,
        };
        match setup {
            None => Stop::Done,
            Some(Err(e)) => Stop::Failed(format!("Cannot start consuming: {e}")),
            Some(Ok(mut subscribed)) => {
                let mut stdout = std::io::stdout().lock();
                let mut buf = Vec::new();
                let mut last_commit = Instant::now();
                let mut last_include_check = Instant::now();
                let mut ts_types = HashMap::new();
                'run: loop {
                    if max_messages.is_some_and(|m| count >= m as u64) {
                        break Stop::Done;
                    }
                    // Wait for records, at most `timeout` (Kafka's ConsumerWrapper.receive).
                    let waiting_since = Instant::now();
                    let records = loop {
                        let chunk = match timeout {
                            Some(t) => t.saturating_sub(waiting_since.elapsed()),
                            None => Duration::from_secs(1),
                        }
                        .min(Duration::from_secs(1));
                        let deadline = timeout.map(|t| waiting_since + t);
                        // Before the first assignment a poll may be joining the group.
                        let joining = grouped && consumer.assignment().is_empty();
                        let woke = {
                            let poll = consumer.poll(chunk);
                            tokio::pin!(poll);
                            let woke = tokio::select! {
                                r = &mut poll => Woke::Polled(r),
                                // A poll that is joining the group does not end by itself.
                                _ = sleep_until(deadline) => Woke::Deadline,
                                _ = interrupt.recv() => Woke::Signal,
                                _ = terminate.recv() => Woke::Signal,
                            };
                            if joining && !matches!(woke, Woke::Polled(_)) {
                                // Dropping a join midway leaves a member the group waits for
                                // until its session times out; let it finish (the broker's
                                // initial rebalance delay is 3 s), so close() can leave.
                                let _ = tokio::time::timeout(JOIN_GRACE, &mut poll).await;
                            }
                            woke
                        };
                        let polled = match woke {
                            Woke::Polled(r) => r,
                            Woke::Deadline => Ok(Vec::new()),
                            Woke::Signal => break 'run Stop::Done,
                        };
                        match polled {
                            Ok(records) if !records.is_empty() => break records,
                            Ok(_) => {}
                            Err(e) => {
                                break 'run Stop::Failed(format!(
                                    "Error processing message, terminating consumer process: {e}"
                                ))
                            }
                        }
                        if commits && last_commit.elapsed() >= commit_interval {
                            last_commit = Instant::now();
                            commit(&mut consumer, &printed, false).await;
                        }
                        if let Some(re) = &include {
                            if last_include_check.elapsed() >= Duration::from_secs(3) {
                                last_include_check = Instant::now();
                                if let Ok(now) = matching_topics(&admin, re).await {
                                    if now != subscribed {
                                        if let Err(e) = consumer.subscribe(now.clone()) {
                                            break 'run Stop::Failed(e.to_string());
                                        }
                                        subscribed = now;
                                    }
                                }
                            }
                        }
                        if timeout.is_some_and(|t| waiting_since.elapsed() >= t) {
                            eprintln!(
                                "[ERROR] Error processing message, terminating consumer process: \
                                 TimeoutException (no message in {} ms)",
                                timeout.unwrap_or_default().as_millis()
                            );
                            break 'run Stop::Done;
                        }
                    };
                    for r in records {
                        if max_messages.is_some_and(|m| count >= m as u64) {
                            break;
                        }
                        count += 1;
                        printed.insert((r.topic.clone(), r.partition), r.offset + 1);
                        let kind = if formatter.print_timestamp {
                            timestamp_type(&admin, &mut ts_types, &r.topic).await
                        } else {
                            "CreateTime"
                        };
                        buf.clear();
                        if let Err(e) = formatter.format(&r, kind, &mut buf) {
                            if args.skip_message_on_error {
                                eprintln!(
                                    "[ERROR] Error processing message, skipping this message: {e}"
                                );
                                continue;
                            }
                            break 'run Stop::Failed(format!(
                                "Error processing message {}-{} offset {}: {e}",
                                r.topic, r.partition, r.offset
                            ));
                        }
                        if stdout.write_all(&buf).is_err() {
                            eprintln!("Unable to write to standard out, closing consumer.");
                            break 'run Stop::Done;
                        }
                    }
                    if stdout.flush().is_err() {
                        eprintln!("Unable to write to standard out, closing consumer.");
                        break 'run Stop::Done;
                    }
                    if commits && last_commit.elapsed() >= commit_interval {
                        last_commit = Instant::now();
                        commit(&mut consumer, &printed, false).await;
                    }
                }
            }
        }
    };
    // Kafka's consumer commits on close what was handed out (here: what was printed).
    let close = async {
        if commits {
            commit(&mut consumer, &printed, true).await;
        }
        let _ = consumer.close().await;
    };
    if tokio::time::timeout(Duration::from_secs(10), close)
        .await
        .is_err()
    {
        eprintln!(
            "[WARN] Closing the consumer took longer than 10 s; offsets may not be committed"
        );
    }
    if let Stop::Failed(e) = &stop {
        eprintln!("[ERROR] {e}");
    }
    eprintln!("Processed a total of {count} messages");
    if args.enable_systest_events {
        println!("shutdown_complete");
    }
    match stop {
        Stop::Done => Ok(()),
        Stop::Failed(_) => Err(ToolError {
            message: String::new(),
            code: 1,
        }),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Commits the next offset after each printed record of the partitions still assigned.
async fn commit(consumer: &mut Consumer, printed: &BTreeMap<Tp, i64>, last: bool) {
    let assigned: BTreeSet<Tp> = consumer.assignment().into_iter().collect();
    let offsets: BTreeMap<Tp, i64> = printed
        .iter()
        .filter(|(tp, _)| assigned.contains(*tp))
        .map(|(tp, o)| (tp.clone(), *o))
        .collect();
    if let Err(e) = consumer.commit_offsets(&offsets).await {
        let when = if last { "on close" } else { "periodic" };
        eprintln!("[WARN] {when} offset commit failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn formatter(pairs: &[(&str, &str)]) -> Formatter {
        let p = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Formatter::from_properties(&p).unwrap()
    }

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1234,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![
                ("h1".into(), Some(Bytes::from_static(b"v1"))),
                ("h2".into(), None),
            ],
        }
    }

    fn text(f: &Formatter, r: &ConsumerRecord) -> String {
        let mut out = Vec::new();
        f.format(r, "CreateTime", &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_default_prints_the_value_only() {
        assert_eq!(text(&formatter(&[]), &record()), "null\n");
    }

    #[test]
    fn every_field_in_kafkas_order() {
        let f = formatter(&[
            ("print.timestamp", "true"),
            ("print.partition", "true"),
            ("print.offset", "true"),
            ("print.headers", "true"),
            ("print.key", "true"),
            ("key.separator", "|"),
            ("null.literal", "NIL"),
        ]);
        assert_eq!(
            text(&f, &record()),
            "CreateTime:1234|Partition:2|Offset:7|h1:v1,h2:NIL|k|NIL\n"
        );
        let mut r = record();
        r.headers.clear();
        let f = formatter(&[("print.headers", "true"), ("print.value", "false")]);
        assert_eq!(text(&f, &r), "NO_HEADERS\n");
        let f = formatter(&[("print.key", "true"), ("print.value", "false")]);
        assert_eq!(text(&f, &r), "k\n");
    }

    #[test]
    fn numeric_deserializers_check_the_size() {
        let f = formatter(&[(
            "value.deserializer",
            "org.apache.kafka.common.serialization.LongDeserializer",
        )]);
        let mut r = record();
        r.value = Some(Bytes::copy_from_slice(&(-5i64).to_be_bytes()));
        assert_eq!(text(&f, &r), "-5\n");
        r.value = Some(Bytes::from_static(b"abc"));
        let mut out = Vec::new();
        assert!(f.format(&r, "CreateTime", &mut out).is_err());
        assert!(Deserializer::from_class("com.example.Avro").is_err());
    }

    fn args(a: &[&str]) -> Args {
        let argv = std::iter::once("kafka-console-consumer").chain(a.iter().copied());
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn flag_combinations_follow_kafka() {
        let b = ["--bootstrap-server", "h:1"];
        let with = |extra: &[&str]| args(&[&b[..], extra].concat());
        assert_eq!(
            source(&with(&["--topic", "t"])).unwrap(),
            Source::Topic("t".into())
        );
        assert_eq!(
            source(&with(&[
                "--topic",
                "t",
                "--partition",
                "1",
                "--offset",
                "5"
            ]))
            .unwrap(),
            Source::Partition {
                topic: "t".into(),
                partition: 1,
                start: Start::At(5)
            }
        );
        assert!(source(&with(&["--topic", "t", "--offset", "5"]))
            .unwrap_err()
            .message
            .contains("partition is required"));
        assert!(source(&with(&["--include", "a.*", "--topic", "t"])).is_err());
        assert!(source(&with(&[
            "--topic",
            "t",
            "--partition",
            "0",
            "--offset",
            "x"
        ]))
        .unwrap_err()
        .message
        .contains("'x' is incorrect"));
        let p = consumer_properties(&with(&["--topic", "t"])).unwrap();
        assert!(p["group.id"].starts_with("console-consumer-"));
        assert_eq!(p["enable.auto.commit"], "false");
        assert_eq!(p["auto.offset.reset"], "latest");
        let p = consumer_properties(&with(&["--topic", "t", "--group", "g", "--from-beginning"]))
            .unwrap();
        assert_eq!(p["group.id"], "g");
        assert!(!p.contains_key("enable.auto.commit"));
        assert_eq!(p["auto.offset.reset"], "earliest");
        assert!(consumer_properties(&with(&[
            "--topic",
            "t",
            "--group",
            "g",
            "--consumer-property",
            "group.id=h"
        ]))
        .is_err());
        assert!(consumer_properties(&with(&[
            "--topic",
            "t",
            "--from-beginning",
            "--consumer-property",
            "auto.offset.reset=latest"
        ]))
        .is_err());
    }
}
