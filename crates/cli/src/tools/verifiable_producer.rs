//! `kafka-verifiable-producer`: produces increasing integers ("0", "1", ...) to a topic and
//! prints one JSON event per line on stdout for every send (acknowledged or failed), as Kafka's
//! VerifiableProducer does, so a test can see which records were acknowledged and where they
//! landed. Also owns the JSON event line and the SIGINT/SIGTERM watch that
//! `kafka-verifiable-consumer` shares.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brook_client::producer::{DeliveryFuture, ProducerRecord};
use brook_client::{ClientError, Producer, ProducerConfig};
use clap::Parser;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::common::{self, ToolError, ToolResult};

const TOOL: &str = "kafka-verifiable-producer";

#[derive(Parser)]
#[command(
    about = "This tool produces increasing integers to the specified topic and prints JSON \
             metadata to stdout on each \"send\" request, making externally visible which \
             messages have been acked and which have not."
)]
struct Args {
    /// REQUIRED: the server(s) to connect to (HOST1:PORT1[,HOST2:PORT2[...]]).
    #[arg(long, num_args = 1.., required = true, value_name = "HOST1:PORT1[,HOST2:PORT2[...]]")]
    bootstrap_server: Vec<String>,
    /// Produce messages to this topic.
    #[arg(long, required = true, value_name = "TOPIC")]
    topic: String,
    /// Produce this many messages. If -1, produce messages until the process is killed externally.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "MAX-MESSAGES")]
    max_messages: i64,
    /// If set >= 0, throttle maximum message throughput to *approximately* THROUGHPUT messages/sec.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "THROUGHPUT")]
    throughput: i64,
    /// Acks required on each produced message (0, 1 or -1). See Kafka docs on acks for details.
    #[arg(long, default_value = "-1", allow_negative_numbers = true, value_name = "ACKS",
          value_parser = ["0", "1", "-1"])]
    acks: String,
    /// (DEPRECATED) Producer config properties file. Use --command-config instead.
    #[arg(long = "producer.config", value_name = "CONFIG-FILE")]
    producer_config: Option<PathBuf>,
    /// Send messages with creation time starting at the arguments value, in milliseconds since
    /// epoch.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "CREATE-TIME")]
    message_create_time: i64,
    /// If specified, each produced value will have this prefix with a dot separator.
    #[arg(long, allow_negative_numbers = true, value_name = "VALUE-PREFIX")]
    value_prefix: Option<i32>,
    /// If specified, each produced record will have a key starting at 0 increment by 1 up to the
    /// number specified (exclusive), then the key is set to 0 again.
    #[arg(long, value_name = "REPEATING-KEYS")]
    repeating_keys: Option<i32>,
    /// Config properties file (config options shared with command line parameters will be
    /// overridden).
    #[arg(long, value_name = "CONFIG-FILE")]
    command_config: Option<PathBuf>,
}

/// Milliseconds since the Unix epoch, the `timestamp` of every event.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    timestamp: i64,
    name: &'a str,
    #[serde(flatten)]
    body: T,
}

/// An event without fields beyond `timestamp` and `name`.
#[derive(Serialize)]
pub(crate) struct NoFields {}

/// Prints one event line on stdout: `{"timestamp":...,"name":...,<body's fields>}`, with the
/// fields in Kafka's order (timestamp, name, then the body's in declaration order).
pub(crate) fn emit<T: Serialize>(name: &str, body: T) {
    let event = Event {
        timestamp: now_ms(),
        name,
        body,
    };
    let line = match serde_json::to_string(&event) {
        Ok(l) => l,
        Err(e) => format!("Bad data can't be written as json: {e}"),
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout (the reader went away) is no reason to stop producing or consuming.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Starts watching SIGINT and SIGTERM; the receiver turns `true` on the first of them. The
/// handlers are installed before this returns, so no signal after it is lost.
pub(crate) fn stop_signal() -> Result<watch::Receiver<bool>, ToolError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| ToolError::new(format!("cannot install the SIGINT handler: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| ToolError::new(format!("cannot install the SIGTERM handler: {e}")))?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        let _ = tx.send(true);
        // Later signals are absorbed: shutting down is already under way.
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
    });
    Ok(rx)
}

/// Resolves once a stop signal has arrived (at once if it already has).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        // The watcher is gone, so no signal can come any more.
        std::future::pending::<()>().await;
    }
}

/// The Java exception class Kafka's tools would name for this error (`exception` fields).
pub(crate) fn exception_class(e: &ClientError) -> String {
    let name = match e {
        ClientError::Kafka {
            error: Some(err), ..
        } => format!("errors.{err:?}Exception"),
        ClientError::Kafka { .. } => "errors.UnknownServerException".to_string(),
        ClientError::Timeout(_) => "errors.TimeoutException".to_string(),
        ClientError::Connect { .. } | ClientError::Connection { .. } | ClientError::NoBroker(_) => {
            "errors.NetworkException".to_string()
        }
        ClientError::Config(_) => "config.ConfigException".to_string(),
        ClientError::Protocol(_) => "KafkaException".to_string(),
        ClientError::BufferExhausted(_) => {
            return "class org.apache.kafka.clients.producer.BufferExhaustedException".to_string()
        }
    };
    format!("class org.apache.kafka.common.{name}")
}

#[derive(Serialize)]
struct SendSuccess<'a> {
    key: Option<&'a str>,
    value: &'a str,
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Serialize)]
struct SendError<'a> {
    exception: String,
    message: String,
    topic: &'a str,
    key: Option<&'a str>,
    value: &'a str,
}

#[derive(Serialize)]
struct ToolData {
    sent: u64,
    acked: u64,
    target_throughput: i64,
    avg_throughput: f64,
}

/// The value of the `i`-th record: `i`, or `prefix.i` with `--value-prefix`.
fn value_of(prefix: Option<i32>, i: u64) -> String {
    match prefix {
        Some(p) => format!("{p}.{i}"),
        None => i.to_string(),
    }
}

/// Keys "0", "1", ..., "n-1", "0", ... with `--repeating-keys n`; none without it.
struct Keys {
    repeating: Option<i32>,
    counter: i32,
}

impl Keys {
    fn next_key(&mut self) -> Option<String> {
        let n = self.repeating?;
        let key = self.counter.to_string();
        self.counter += 1;
        if self.counter >= n {
            self.counter = 0;
        }
        Some(key)
    }
}

/// Runs `kafka-verifiable-producer` with these arguments; returns the exit code.
pub fn main(mut args: Vec<String>) -> i32 {
    if args.is_empty() {
        // Kafka's tool prints its usage and exits 0 when run without arguments.
        args.push("--help".into());
    }
    let args: Args = common::parse_args(TOOL, args);
    common::run(TOOL, execute(args))
}

/// The producer's properties as Kafka builds them: the command line first, then the config
/// file, whose entries win.
fn producer_properties(args: &Args) -> Result<BTreeMap<String, String>, ToolError> {
    if args.producer_config.is_some() && args.command_config.is_some() {
        return Err(ToolError::new(
            "Options --producer.config and --command-config are mutually exclusive.",
        ));
    }
    if let Some(n) = args.repeating_keys {
        if n <= 0 {
            return Err(ToolError::new(format!(
                "--repeating-keys must be positive, not {n}"
            )));
        }
    }
    let mut props = BTreeMap::new();
    props.insert(
        "bootstrap.servers".to_string(),
        common::bootstrap(&args.bootstrap_server)?,
    );
    props.insert("acks".to_string(), args.acks.clone());
    if let Some(path) = &args.producer_config {
        eprintln!(
            "Option --producer.config has been deprecated and will be removed in a future \
             version. Use --command-config instead."
        );
        props.extend(common::properties_file(path)?);
    }
    if let Some(path) = &args.command_config {
        props.extend(common::properties_file(path)?);
    }
    Ok(props)
}

async fn execute(args: Args) -> ToolResult {
    let props = producer_properties(&args)?;
    let config = ProducerConfig::from_properties(props).map_err(|e| format!("{TOOL}: {e}"))?;
    // Kafka's tool would block in send() until max.block.ms; failing at once, with the reason,
    // is clearer than a stream of send errors when no broker can be reached.
    brook_client::Admin::new(config.client.clone())?
        .cluster()
        .refresh(Some(&[]))
        .await
        .map_err(|e| ToolError::new(format!("{TOOL}: cannot reach the cluster: {e}")))?;
    let mut stop = stop_signal()?;
    let producer = Producer::new(config).map_err(|e| format!("{TOOL}: {e}"))?;

    let start = Instant::now();
    let start_ms = now_ms();
    emit("startup_complete", NoFields {});

    // Acknowledgements are reported in send order (so per partition in offset order) by one task.
    let topic = args.topic.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<(Option<String>, String, DeliveryFuture)>();
    let reporter = tokio::spawn(async move {
        let mut acked = 0u64;
        while let Some((key, value, delivery)) = rx.recv().await {
            match delivery.await {
                Ok(md) => {
                    acked += 1;
                    emit(
                        "producer_send_success",
                        SendSuccess {
                            key: key.as_deref(),
                            value: &value,
                            topic: &md.topic,
                            partition: md.partition,
                            offset: md.offset,
                        },
                    );
                }
                Err(e) => emit(
                    "producer_send_error",
                    SendError {
                        exception: exception_class(&e),
                        message: e.to_string(),
                        topic: &topic,
                        key: key.as_deref(),
                        value: &value,
                    },
                ),
            }
        }
        acked
    });

    let max = if args.max_messages < 0 {
        u64::MAX
    } else {
        args.max_messages as u64
    };
    let mut keys = Keys {
        repeating: args.repeating_keys,
        counter: 0,
    };
    let mut create_time = (args.message_create_time != -1).then_some(args.message_create_time);
    let mut sent = 0u64;
    for i in 0..max {
        if *stop.borrow() {
            break;
        }
        if args.throughput >= 0 && i > 0 {
            // Record i goes out no earlier than i/throughput seconds after the start.
            let wait = if args.throughput == 0 {
                None
            } else {
                Some(start + Duration::from_secs_f64(i as f64 / args.throughput as f64))
            };
            tokio::select! {
                _ = stopped(&mut stop) => break,
                _ = sleep_until(wait) => {}
            }
        }
        let key = keys.next_key();
        let value = value_of(args.value_prefix, i);
        let mut record = ProducerRecord::new(
            args.topic.clone(),
            key.clone(),
            Some(value.clone().into_bytes()),
        );
        if let Some(t) = create_time {
            record.timestamp = Some(t);
            // Kafka's tool advances the create time by the time elapsed since the start.
            create_time = Some(t + (now_ms() - start_ms));
        }
        sent += 1;
        let queued = tokio::select! {
            q = producer.send(record) => q,
            _ = stopped(&mut stop) => { sent -= 1; break }
        };
        match queued {
            Ok(delivery) => {
                let _ = tx.send((key, value, delivery));
            }
            Err(e) => emit(
                "producer_send_error",
                SendError {
                    exception: exception_class(&e),
                    message: e.to_string(),
                    topic: &args.topic,
                    key: key.as_deref(),
                    value: &value,
                },
            ),
        }
    }

    // Close: send what is queued and report every outcome before the summary.
    let _ = producer.flush().await;
    drop(tx);
    let acked = reporter.await.unwrap_or(0);
    drop(producer);
    emit("shutdown_complete", NoFields {});
    let elapsed_ms = (start.elapsed().as_secs_f64() * 1000.0).max(1.0);
    emit(
        "tool_data",
        ToolData {
            sent,
            acked,
            target_throughput: args.throughput,
            avg_throughput: 1000.0 * acked as f64 / elapsed_ms,
        },
    );
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_keys_follow_kafka() {
        assert_eq!(value_of(None, 7), "7");
        assert_eq!(value_of(Some(3), 7), "3.7");
        let mut k = Keys {
            repeating: Some(3),
            counter: 0,
        };
        let got: Vec<_> = (0..7).map(|_| k.next_key().unwrap()).collect();
        assert_eq!(got, ["0", "1", "2", "0", "1", "2", "0"]);
        let mut none = Keys {
            repeating: None,
            counter: 0,
        };
        assert_eq!(none.next_key(), None);
    }

    #[test]
    fn events_put_timestamp_and_name_first() {
        let e = Event {
            timestamp: 5,
            name: "producer_send_success",
            body: SendSuccess {
                key: None,
                value: "0",
                topic: "t",
                partition: 1,
                offset: 2,
            },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"timestamp":5,"name":"producer_send_success","key":null,"value":"0","topic":"t","partition":1,"offset":2}"#
        );
    }

    #[test]
    fn kafka_errors_name_their_java_exception() {
        let e = ClientError::kafka(3, None);
        assert_eq!(
            exception_class(&e),
            "class org.apache.kafka.common.errors.UnknownTopicOrPartitionException"
        );
    }
}
