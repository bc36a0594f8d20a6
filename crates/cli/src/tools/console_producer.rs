//! `kafka-console-producer`: reads stdin line by line and sends each line as one record, as
//! Kafka's ConsoleProducer with its default LineMessageReader does (optional key and headers
//! parsed out of the line by separators, a null marker). Owns the line parsing, the mapping of
//! the tool's flags onto producer properties (Kafka's defaults: linger 1000 ms, acks -1, request
//! timeout 1500 ms, max.block.ms 60000) and the reporting of delivery errors.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_client::cluster::{ClientConfig, Cluster};
use brook_client::{ClientError, Producer, ProducerConfig, ProducerRecord};
use bytes::Bytes;
use clap::Parser;
use tokio::sync::mpsc;

use super::common::{self, ToolError, ToolResult};

/// The only line reader there is (Kafka's class names for it are accepted).
const LINE_READERS: &[&str] = &[
    "org.apache.kafka.tools.LineMessageReader",
    "kafka.tools.LineMessageReader",
    "kafka.tools.ConsoleProducer$LineMessageReader",
    "kafka.common.MessageReader",
];

#[derive(Parser)]
#[command(about = "This tool helps to read data from standard input and publish it to Kafka.")]
struct Args {
    /// REQUIRED unless --broker-list is given: the server(s) to connect to
    /// (HOST1:PORT1,HOST2:PORT2).
    #[arg(long, num_args = 1.., value_name = "SERVERS")]
    bootstrap_server: Vec<String>,
    /// DEPRECATED, use --bootstrap-server; ignored if --bootstrap-server is given.
    #[arg(long, num_args = 1.., value_name = "SERVERS")]
    broker_list: Vec<String>,
    /// REQUIRED: the topic to produce messages to.
    #[arg(long, required = true)]
    topic: String,
    /// Send each message synchronously, one at a time as it arrives.
    #[arg(long)]
    sync: bool,
    /// The compression codec: none, gzip, snappy, lz4 or zstd; gzip when given without a value.
    #[arg(long, num_args = 0..=1, default_missing_value = "gzip", value_name = "CODEC")]
    compression_codec: Option<String>,
    /// batch.size in bytes (default 16384).
    #[arg(long, value_name = "SIZE")]
    batch_size: Option<u64>,
    /// retries (default 3; the producer retries within delivery.timeout.ms).
    #[arg(long, value_name = "N")]
    message_send_max_retries: Option<u64>,
    /// retry.backoff.ms (default 100).
    #[arg(long, value_name = "MS")]
    retry_backoff_ms: Option<u64>,
    /// linger.ms: how long a message may wait for a fuller batch (default 1000).
    #[arg(long, value_name = "TIMEOUT_MS")]
    timeout: Option<u64>,
    /// acks: 0, 1, all or -1 (default -1).
    #[arg(long, value_name = "ACKS", allow_hyphen_values = true)]
    request_required_acks: Option<String>,
    /// request.timeout.ms (default 1500).
    #[arg(long, value_name = "MS")]
    request_timeout_ms: Option<u64>,
    /// metadata.max.age.ms (accepted; the client refreshes metadata on errors).
    #[arg(long, value_name = "MS")]
    metadata_expiry_ms: Option<u64>,
    /// max.block.ms: how long to wait for the topic's metadata (default 60000).
    #[arg(long, value_name = "MS")]
    max_block_ms: Option<u64>,
    /// buffer.memory (default 33554432).
    #[arg(long, value_name = "BYTES")]
    max_memory_bytes: Option<u64>,
    /// batch.size as well (overrides --batch-size).
    #[arg(long, value_name = "BYTES")]
    max_partition_memory_bytes: Option<u64>,
    /// The line reader class; only Kafka's LineMessageReader is supported.
    #[arg(long, value_name = "CLASS")]
    line_reader: Option<String>,
    /// send.buffer.bytes (accepted, no effect).
    #[arg(long, value_name = "SIZE")]
    socket_buffer_size: Option<u64>,
    /// Line reader properties key=value: parse.key, key.separator (tab), parse.headers,
    /// headers.delimiter (tab), headers.separator (,), headers.key.separator (:), ignore.error,
    /// null.marker.
    #[arg(long, value_name = "PROP")]
    property: Vec<String>,
    /// Line reader properties file (--property takes precedence).
    #[arg(long, value_name = "FILE")]
    reader_config: Option<PathBuf>,
    /// A producer property key=value (repeatable).
    #[arg(long, value_name = "PRODUCER_PROP")]
    producer_property: Vec<String>,
    /// Producer properties file (--producer-property takes precedence).
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<PathBuf>,
}

/// Runs `kafka-console-producer` with these arguments; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let args: Args = common::parse_args("kafka-console-producer", args);
    common::run("kafka-console-producer", execute(args))
}

/// Kafka's LineMessageReader settings.
#[derive(Debug, Clone)]
struct LineReader {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    ignore_error: bool,
    null_marker: Option<String>,
}

/// A line turned into a record's parts.
#[derive(Debug, PartialEq)]
struct ParsedLine {
    key: Option<String>,
    value: Option<String>,
    headers: Vec<(String, Option<String>)>,
}

fn is_true(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true")
}

impl LineReader {
    /// The reader configured by these properties, or Kafka's complaint about them.
    fn from_properties(p: &BTreeMap<String, String>) -> Result<LineReader, ToolError> {
        let get = |k: &str, default: &str| p.get(k).cloned().unwrap_or_else(|| default.into());
        let r = LineReader {
            parse_key: p.get("parse.key").is_some_and(|v| is_true(v)),
            key_separator: get("key.separator", "\t"),
            parse_headers: p.get("parse.headers").is_some_and(|v| is_true(v)),
            headers_delimiter: get("headers.delimiter", "\t"),
            headers_separator: get("headers.separator", ","),
            headers_key_separator: get("headers.key.separator", ":"),
            ignore_error: p.get("ignore.error").is_some_and(|v| is_true(v)),
            null_marker: p.get("null.marker").cloned(),
        };
        let pairs = [
            (
                &r.headers_delimiter,
                &r.headers_separator,
                "headers.delimiter and headers.separator",
            ),
            (
                &r.headers_delimiter,
                &r.headers_key_separator,
                "headers.delimiter and headers.key.separator",
            ),
            (
                &r.headers_separator,
                &r.headers_key_separator,
                "headers.separator and headers.key.separator",
            ),
        ];
        for (a, b, names) in pairs {
            if a == b {
                return Err(ToolError::new(format!("{names} may not be equal")));
            }
        }
        if let Some(m) = &r.null_marker {
            for (other, name) in [
                (&r.key_separator, "key.separator"),
                (&r.headers_separator, "headers.separator"),
                (&r.headers_delimiter, "headers.delimiter"),
                (&r.headers_key_separator, "headers.key.separator"),
            ] {
                if m == other {
                    return Err(ToolError::new(format!(
                        "null.marker and {name} may not be equal"
                    )));
                }
            }
        }
        Ok(r)
    }

    /// The part of `line` from `start` up to `separator`, when that part is to be parsed.
    fn split_off<'a>(
        &self,
        enabled: bool,
        line: &'a str,
        start: usize,
        separator: &str,
        name: &str,
        number: usize,
    ) -> Result<Option<&'a str>, String> {
        if !enabled {
            return Ok(None);
        }
        match line[start..].find(separator) {
            Some(i) => Ok(Some(&line[start..start + i])),
            None if self.ignore_error => Ok(None),
            None => Err(format!("No {name} found on line number {number}: '{line}'")),
        }
    }

    fn nullable(&self, s: &str) -> Option<String> {
        match &self.null_marker {
            Some(m) if m == s => None,
            _ => Some(s.to_string()),
        }
    }

    /// Parses line number `number` (1-based) as Kafka's LineMessageReader does.
    fn parse(&self, line: &str, number: usize) -> Result<ParsedLine, String> {
        let headers = self.split_off(
            self.parse_headers,
            line,
            0,
            &self.headers_delimiter,
            "headers delimiter",
            number,
        )?;
        let header_offset = headers.map_or(0, |h| h.len() + self.headers_delimiter.len());
        let key = self.split_off(
            self.parse_key,
            line,
            header_offset,
            &self.key_separator,
            "key separator",
            number,
        )?;
        let key_offset = key.map_or(0, |k| k.len() + self.key_separator.len());
        let value = &line[header_offset + key_offset..];
        let mut parsed = ParsedLine {
            key: key.and_then(|k| self.nullable(k)),
            value: self.nullable(value),
            headers: Vec::new(),
        };
        if let Some(h) = headers {
            if self.null_marker.as_deref() != Some(h) {
                parsed.headers = self.split_headers(h, number)?;
            }
        }
        Ok(parsed)
    }

    fn split_headers(
        &self,
        headers: &str,
        number: usize,
    ) -> Result<Vec<(String, Option<String>)>, String> {
        // Java's String.split: trailing empty pieces are dropped (but "" stays one piece).
        let mut pairs: Vec<&str> = headers.split(self.headers_separator.as_str()).collect();
        if !headers.is_empty() {
            while pairs.last() == Some(&"") {
                pairs.pop();
            }
        }
        let mut out = Vec::new();
        for pair in pairs {
            let Some(i) = pair.find(self.headers_key_separator.as_str()) else {
                if self.ignore_error {
                    out.push((pair.to_string(), None));
                    continue;
                }
                return Err(format!(
                    "No header key separator found in pair '{pair}' on line number {number}"
                ));
            };
            let key = &pair[..i];
            if self.null_marker.as_deref() == Some(key) {
                return Err(format!(
                    "Header keys should not be equal to the null marker '{key}' as they can't be null"
                ));
            }
            let value = &pair[i + self.headers_key_separator.len()..];
            out.push((key.to_string(), self.nullable(value)));
        }
        Ok(out)
    }
}

/// Sets `key` from a flag when the flag was given or the properties lack it (Kafka's
/// `CommandLineUtils.maybeMergeOptions`: an explicit flag wins, a flag's default does not).
fn merge(props: &mut BTreeMap<String, String>, key: &str, flag: Option<String>, default: &str) {
    match flag {
        Some(v) => {
            props.insert(key.into(), v);
        }
        None => {
            props
                .entry(key.to_string())
                .or_insert_with(|| default.to_string());
        }
    }
}

/// The producer properties the flags and files make, Kafka's defaults filled in.
fn producer_properties(args: &Args) -> Result<BTreeMap<String, String>, ToolError> {
    let mut props = match &args.producer_config {
        Some(path) => common::properties_file(path)?,
        None => BTreeMap::new(),
    };
    props.extend(common::key_values(
        &args.producer_property,
        "--producer-property",
    )?);
    let servers = if args.bootstrap_server.is_empty() {
        &args.broker_list
    } else {
        &args.bootstrap_server
    };
    if servers.is_empty() {
        return Err(ToolError::new(
            "Missing required argument \"[bootstrap-server]\"",
        ));
    }
    props.insert("bootstrap.servers".into(), common::bootstrap(servers)?);
    merge(
        &mut props,
        "compression.type",
        args.compression_codec
            .clone()
            .map(|c| if c.is_empty() { "gzip".into() } else { c }),
        "none",
    );
    props
        .entry("client.id".into())
        .or_insert_with(|| "console-producer".into());
    let s = |v: Option<u64>| v.map(|v| v.to_string());
    merge(&mut props, "linger.ms", s(args.timeout), "1000");
    merge(&mut props, "acks", args.request_required_acks.clone(), "-1");
    merge(
        &mut props,
        "request.timeout.ms",
        s(args.request_timeout_ms),
        "1500",
    );
    merge(&mut props, "retries", s(args.message_send_max_retries), "3");
    merge(
        &mut props,
        "retry.backoff.ms",
        s(args.retry_backoff_ms),
        "100",
    );
    merge(
        &mut props,
        "send.buffer.bytes",
        s(args.socket_buffer_size),
        "102400",
    );
    merge(
        &mut props,
        "buffer.memory",
        s(args.max_memory_bytes),
        "33554432",
    );
    merge(&mut props, "batch.size", s(args.batch_size), "16384");
    if args.max_partition_memory_bytes.is_some() {
        merge(
            &mut props,
            "batch.size",
            s(args.max_partition_memory_bytes),
            "16384",
        );
    }
    merge(
        &mut props,
        "metadata.max.age.ms",
        s(args.metadata_expiry_ms),
        "300000",
    );
    merge(&mut props, "max.block.ms", s(args.max_block_ms), "60000");
    Ok(props)
}

/// The line reader's properties: `--reader-config`, then `--property`.
fn reader_properties(args: &Args) -> Result<BTreeMap<String, String>, ToolError> {
    let mut props = match &args.reader_config {
        Some(path) => common::properties_file(path)?,
        None => BTreeMap::new(),
    };
    props.extend(common::key_values(&args.property, "--property")?);
    Ok(props)
}

/// Kafka's ErrorLoggingCallback line for a record that could not be sent.
fn send_error(topic: &str, key: Option<usize>, value: Option<usize>, e: &dyn std::fmt::Display) {
    let describe = |n: Option<usize>| n.map_or("null".to_string(), |n| format!("{n} bytes"));
    eprintln!(
        "Error when sending message to topic {topic} with key: {}, value: {} with error: {e}",
        describe(key),
        describe(value)
    );
}

/// Stdin lines on a thread of their own (stdin reads block), `None` at the end.
fn spawn_line_reader(prompt: bool) -> mpsc::Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel(1024);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut buf = Vec::new();
        loop {
            if prompt {
                print!(">");
                let _ = std::io::stdout().flush();
            }
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                        if buf.last() == Some(&b'\r') {
                            buf.pop();
                        }
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("cannot read stdin: {e}")));
                    return;
                }
            }
        }
    });
    rx
}

/// Waits until the topic has partitions in the metadata (creating it if the broker auto-creates
/// topics), as Kafka's producer does before its first send, for at most `max_block`. An
/// unreachable cluster fails at once.
async fn await_topic(cluster: &Cluster, topic: &str, max_block: Duration) -> Result<(), String> {
    let start = Instant::now();
    let topics = [topic.to_string()];
    loop {
        let md = cluster
            .refresh_allowing_creation(Some(&topics), true)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(t) = md.topics.get(topic) {
            if t.error_code == 0 && !t.partitions.is_empty() {
                return Ok(());
            }
            // Anything but "unknown" or "no leader yet" will not get better by waiting.
            if !matches!(t.error_code, 0 | 3 | 5) {
                return Err(ClientError::kafka(t.error_code, None).to_string());
            }
        }
        if start.elapsed() >= max_block {
            return Err(format!(
                "Topic {topic} not present in metadata after {} ms.",
                max_block.as_millis()
            ));
        }
        let left = max_block.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}

async fn execute(args: Args) -> ToolResult {
    if let Some(reader) = &args.line_reader {
        if !LINE_READERS.contains(&reader.as_str()) {
            return Err(ToolError::new(format!(
                "--line-reader {reader} is not supported: only Kafka's LineMessageReader is"
            )));
        }
    }
    let reader = LineReader::from_properties(&reader_properties(&args)?)?;
    let mut props = producer_properties(&args)?;
    let max_block = props
        .remove("max.block.ms")
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| ToolError::new(format!("invalid value {v:?} for max.block.ms")))
        })
        .transpose()?
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(60));
    // Accepted by Kafka's producer, no meaning for this client.
    props.remove("metadata.max.age.ms");
    let config =
        ProducerConfig::from_properties(props).map_err(|e| ToolError::new(e.to_string()))?;
    let cluster = Cluster::new(ClientConfig {
        client_id: config.client.client_id.clone(),
        ..config.client.clone()
    })?;
    let producer = Producer::new(config)?;
    let topic = args.topic.clone();
    let prompt = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut lines = spawn_line_reader(prompt);
    let failures = Arc::new(AtomicUsize::new(0));
    let mut deliveries = tokio::task::JoinSet::new();
    let mut topic_ready = false;
    let mut number = 0usize;
    let mut parse_error = None;
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        let next = tokio::select! {
            l = lines.recv() => l,
            _ = interrupt.recv() => None,
            _ = terminate.recv() => None,
        };
        let Some(line) = next else { break };
        let line = line.map_err(ToolError::new)?;
        number += 1;
        let parsed = match reader.parse(&line, number) {
            Ok(p) => p,
            Err(e) => {
                parse_error = Some(e);
                break;
            }
        };
        let record = ProducerRecord {
            topic: topic.clone(),
            key: parsed.key.map(Bytes::from),
            value: parsed.value.map(Bytes::from),
            headers: parsed
                .headers
                .into_iter()
                .map(|(k, v)| (k, v.map(Bytes::from)))
                .collect(),
            ..Default::default()
        };
        let sizes = (
            record.key.as_ref().map(|k| k.len()),
            record.value.as_ref().map(|v| v.len()),
        );
        if !topic_ready {
            match await_topic(&cluster, &topic, max_block).await {
                Ok(()) => topic_ready = true,
                Err(e) => {
                    send_error(&topic, sizes.0, sizes.1, &e);
                    if args.sync {
                        return Err(ToolError::new(""));
                    }
                    failures.fetch_add(1, Ordering::Relaxed);
                    // Later records go straight to the producer, which fails them at once if
                    // the topic is still missing (no second wait of max.block.ms).
                    topic_ready = true;
                    continue;
                }
            }
        }
        let delivery = producer.send(record).await?;
        if args.sync {
            if let Err(e) = delivery.await {
                send_error(&topic, sizes.0, sizes.1, &e);
                return Err(ToolError::new(""));
            }
            continue;
        }
        let failures = failures.clone();
        let topic = topic.clone();
        deliveries.spawn(async move {
            if let Err(e) = delivery.await {
                send_error(&topic, sizes.0, sizes.1, &e);
                failures.fetch_add(1, Ordering::Relaxed);
            }
        });
        while deliveries.try_join_next().is_some() {}
    }
    producer.flush().await?;
    while deliveries.join_next().await.is_some() {}
    if let Some(e) = parse_error {
        return Err(ToolError::new(e));
    }
    match failures.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => Err(ToolError::new(format!(
            "{n} message{} could not be sent",
            if n == 1 { "" } else { "s" }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(pairs: &[(&str, &str)]) -> LineReader {
        let p = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LineReader::from_properties(&p).unwrap()
    }

    fn parsed(
        key: Option<&str>,
        value: Option<&str>,
        headers: &[(&str, Option<&str>)],
    ) -> ParsedLine {
        ParsedLine {
            key: key.map(String::from),
            value: value.map(String::from),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(String::from)))
                .collect(),
        }
    }

    #[test]
    fn plain_lines_are_values() {
        let r = reader(&[]);
        assert_eq!(r.parse("a\tb", 1).unwrap(), parsed(None, Some("a\tb"), &[]));
        assert_eq!(r.parse("", 1).unwrap(), parsed(None, Some(""), &[]));
    }

    #[test]
    fn keys_split_at_the_first_separator() {
        let r = reader(&[("parse.key", "true"), ("key.separator", ":")]);
        assert_eq!(
            r.parse("abc1:ppp:123", 1).unwrap(),
            parsed(Some("abc1"), Some("ppp:123"), &[])
        );
        assert_eq!(
            r.parse("nokey", 7).unwrap_err(),
            "No key separator found on line number 7: 'nokey'"
        );
        let lenient = reader(&[("parse.key", "TRUE"), ("ignore.error", "true")]);
        assert_eq!(
            lenient.parse("nokey", 1).unwrap(),
            parsed(None, Some("nokey"), &[])
        );
    }

    #[test]
    fn headers_keys_and_null_markers_parse_as_kafka_does() {
        let r = reader(&[
            ("parse.key", "true"),
            ("parse.headers", "true"),
            ("null.marker", "<NULL>"),
        ]);
        assert_eq!(
            r.parse("h1:v1,h2:<NULL>\tk\t<NULL>", 1).unwrap(),
            parsed(Some("k"), None, &[("h1", Some("v1")), ("h2", None)])
        );
        assert_eq!(
            r.parse("<NULL>\t<NULL>\tv", 1).unwrap(),
            parsed(None, Some("v"), &[])
        );
        assert!(r
            .parse("h1\tk\tv", 3)
            .unwrap_err()
            .contains("No header key separator found in pair 'h1' on line number 3"));
        assert!(r.parse("<NULL>:x\tk\tv", 1).is_err());
    }

    #[test]
    fn clashing_separators_are_refused() {
        let p: BTreeMap<String, String> = [("headers.separator", ":")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let e = LineReader::from_properties(&p).unwrap_err();
        assert!(e.message.contains("may not be equal"), "{}", e.message);
    }

    #[test]
    fn explicit_flags_win_and_defaults_do_not() {
        let mut p = BTreeMap::from([("linger.ms".to_string(), "5".to_string())]);
        merge(&mut p, "linger.ms", None, "1000");
        assert_eq!(p["linger.ms"], "5");
        merge(&mut p, "linger.ms", Some("7".into()), "1000");
        assert_eq!(p["linger.ms"], "7");
        merge(&mut p, "acks", None, "-1");
        assert_eq!(p["acks"], "-1");
    }
}
