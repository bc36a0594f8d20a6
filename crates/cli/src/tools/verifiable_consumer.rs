//! `kafka-verifiable-consumer`: consumes a topic in a consumer group and prints the group's events
//! as JSON lines on stdout (partitions assigned and revoked, a summary of each batch of records,
//! each offset commit, shutdown), as Kafka's VerifiableConsumer does, so a test can check what a
//! group member saw and committed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use brook_client::consumer::Tp;
use brook_client::{ClientError, Consumer, ConsumerConfig, ConsumerRecord};
use clap::Parser;
use serde::Serialize;

use super::common::{self, ToolError, ToolResult};
use super::verifiable_producer::{emit, stop_signal, stopped, NoFields};

const TOOL: &str = "kafka-verifiable-consumer";

/// How long one poll waits before the loop looks at the assignment and the stop signal again.
const POLL_WAIT: Duration = Duration::from_millis(500);

#[derive(Parser)]
#[command(
    about = "This tool consumes messages from a specific topic and emits consumer events (e.g. \
             group rebalances, received messages, and offsets committed) as JSON objects to \
             STDOUT."
)]
struct Args {
    /// REQUIRED unless --broker-list (deprecated) is given: the server(s) to connect to
    /// (HOST1:PORT1[,HOST2:PORT2[...]]).
    #[arg(long, num_args = 1.., required_unless_present = "broker_list",
          conflicts_with = "broker_list", value_name = "HOST1:PORT1[,HOST2:PORT2[...]]")]
    bootstrap_server: Vec<String>,
    /// DEPRECATED, use --bootstrap-server instead.
    #[arg(long, num_args = 1.., value_name = "HOST1:PORT1[,HOST2:PORT2[...]]")]
    broker_list: Vec<String>,
    /// Consumes messages from this topic.
    #[arg(long, required = true, value_name = "TOPIC")]
    topic: String,
    /// Group protocol: classic (the only one this tool supports; consumer is KIP-848's).
    #[arg(long, default_value = "classic", value_name = "GROUP_PROTOCOL")]
    group_protocol: String,
    /// The groupId shared among members of the consumer group.
    #[arg(long, required = true, value_name = "GROUP_ID")]
    group_id: String,
    /// A unique identifier of the consumer instance (static membership).
    #[arg(long, value_name = "GROUP_INSTANCE_ID")]
    group_instance_id: Option<String>,
    /// Consume this many messages. If -1 (the default), the consumer will consume until the
    /// process is killed externally.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "MAX-MESSAGES")]
    max_messages: i64,
    /// Set the consumer's session timeout.
    #[arg(long, default_value_t = 30000, value_name = "TIMEOUT_MS")]
    session_timeout: u64,
    /// Enable to log individual consumed records.
    #[arg(long)]
    verbose: bool,
    /// Enable offset auto-commit on consumer.
    #[arg(long)]
    enable_autocommit: bool,
    /// Set reset policy (must be either 'earliest', 'latest', or 'none').
    #[arg(long, default_value = "earliest", value_parser = ["earliest", "latest", "none"])]
    reset_policy: String,
    /// Set assignment strategy (e.g. org.apache.kafka.clients.consumer.RoundRobinAssignor).
    #[arg(
        long,
        default_value = "org.apache.kafka.clients.consumer.RangeAssignor"
    )]
    assignment_strategy: String,
    /// Consumer config properties file (config options shared with command line parameters will
    /// be overridden).
    #[arg(long = "consumer.config", value_name = "CONFIG_FILE")]
    consumer_config: Option<PathBuf>,
}

#[derive(Serialize)]
struct PartitionData<'a> {
    topic: &'a str,
    partition: i32,
}

#[derive(Serialize)]
struct Partitions<'a> {
    partitions: Vec<PartitionData<'a>>,
}

#[derive(Serialize)]
struct RecordSetSummary<'a> {
    topic: &'a str,
    partition: i32,
    count: u64,
    #[serde(rename = "minOffset")]
    min_offset: i64,
    #[serde(rename = "maxOffset")]
    max_offset: i64,
}

#[derive(Serialize)]
struct RecordsConsumed<'a> {
    count: u64,
    partitions: Vec<RecordSetSummary<'a>>,
}

#[derive(Serialize)]
struct RecordData<'a> {
    key: Option<String>,
    value: Option<String>,
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Serialize)]
struct CommitData<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Serialize)]
struct OffsetsCommitted<'a> {
    offsets: Vec<CommitData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    success: bool,
}

/// Runs `kafka-verifiable-consumer` with these arguments; returns the exit code.
pub fn main(mut args: Vec<String>) -> i32 {
    if args.is_empty() {
        // Kafka's tool prints its usage and exits 0 when run without arguments.
        args.push("--help".into());
    }
    let args: Args = common::parse_args(TOOL, args);
    common::run(TOOL, execute(args))
}

/// The consumer's properties as Kafka builds them: the config file first, then the command
/// line, whose settings win.
fn consumer_properties(args: &Args) -> Result<BTreeMap<String, String>, ToolError> {
    if !args.group_protocol.eq_ignore_ascii_case("classic") {
        return Err(ToolError::new(format!(
            "{TOOL}: --group-protocol {} is not supported; only classic is",
            args.group_protocol
        )));
    }
    let mut props = match &args.consumer_config {
        Some(path) => common::properties_file(path)?,
        None => BTreeMap::new(),
    };
    let servers = if args.bootstrap_server.is_empty() {
        &args.broker_list
    } else {
        &args.bootstrap_server
    };
    props.insert(
        "partition.assignment.strategy".into(),
        args.assignment_strategy.clone(),
    );
    props.insert("group.id".into(), args.group_id.clone());
    if let Some(id) = &args.group_instance_id {
        props.insert("group.instance.id".into(), id.clone());
    }
    props.insert("bootstrap.servers".into(), common::bootstrap(servers)?);
    props.insert(
        "enable.auto.commit".into(),
        args.enable_autocommit.to_string(),
    );
    props.insert("auto.offset.reset".into(), args.reset_policy.clone());
    props.insert(
        "session.timeout.ms".into(),
        args.session_timeout.to_string(),
    );
    Ok(props)
}

/// What one batch of records amounts to, as Kafka's tool reports it.
struct Batch<'a> {
    /// Per partition, in the order the partitions first appear in the batch.
    summaries: Vec<RecordSetSummary<'a>>,
    /// Per partition, the offset to commit (one past the last record taken).
    offsets: BTreeMap<Tp, i64>,
    /// The records taken (all, or as many as `--max-messages` still allows).
    taken: Vec<&'a ConsumerRecord>,
}

/// Groups a batch by partition, taking at most `limit` records in all (Kafka's tool cuts the
/// partition that crosses the limit and skips the partitions after it).
fn summarize(records: &[ConsumerRecord], limit: Option<u64>) -> Batch<'_> {
    let mut order: Vec<Tp> = Vec::new();
    let mut by_partition: BTreeMap<Tp, Vec<&ConsumerRecord>> = BTreeMap::new();
    for r in records {
        let tp = (r.topic.clone(), r.partition);
        if !by_partition.contains_key(&tp) {
            order.push(tp.clone());
        }
        by_partition.entry(tp).or_default().push(r);
    }
    let mut batch = Batch {
        summaries: Vec::new(),
        offsets: BTreeMap::new(),
        taken: Vec::new(),
    };
    let mut taken = 0u64;
    for tp in order {
        let mut rs = by_partition.remove(&tp).unwrap_or_default();
        if let Some(limit) = limit {
            rs.truncate(limit.saturating_sub(taken) as usize);
        }
        let (Some(first), Some(last)) = (rs.first(), rs.last()) else {
            continue;
        };
        batch.offsets.insert(tp, last.offset + 1);
        batch.summaries.push(RecordSetSummary {
            topic: &first.topic,
            partition: first.partition,
            count: rs.len() as u64,
            min_offset: first.offset,
            max_offset: last.offset,
        });
        taken += rs.len() as u64;
        batch.taken.extend(rs);
        if limit.is_some_and(|l| taken >= l) {
            break;
        }
    }
    batch
}

fn partitions(tps: &[Tp]) -> Partitions<'_> {
    Partitions {
        partitions: tps
            .iter()
            .map(|(t, p)| PartitionData {
                topic: t,
                partition: *p,
            })
            .collect(),
    }
}

fn text(b: &Option<bytes::Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Whether an error, before the group was ever joined, means the cluster cannot be reached or
/// used at all (refused, silent past the request timeout, misconfigured), not a passing state.
fn unreachable(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Connect { .. }
            | ClientError::NoBroker(_)
            | ClientError::Timeout(_)
            | ClientError::Config(_)
    )
}

/// Kafka errors that waiting cannot cure: no offset to start from with `--reset-policy none`
/// (OFFSET_OUT_OF_RANGE), an inconsistent protocol (23), a bad group id (24), a session timeout
/// the broker refuses (26), missing authorization (29, 30), an unsupported version (35) and a
/// fenced static member (82).
fn fatal(e: &ClientError) -> bool {
    matches!(e.code(), Some(1 | 23 | 24 | 26 | 29 | 30 | 35 | 82))
}

async fn execute(args: Args) -> ToolResult {
    let props = consumer_properties(&args)?;
    let config = ConsumerConfig::from_properties(props).map_err(|e| format!("{TOOL}: {e}"))?;
    let request_timeout = config.client.request_timeout;
    let mut stop = stop_signal()?;
    let mut consumer = Consumer::new(config).map_err(|e| format!("{TOOL}: {e}"))?;
    let limit = (args.max_messages >= 0).then_some(args.max_messages as u64);
    let mut consumed = 0u64;

    emit("startup_complete", NoFields {});
    consumer.subscribe(vec![args.topic.clone()])?;

    let mut assignment: Vec<Tp> = Vec::new();
    let mut joined = false;
    let mut failing_since: Option<Instant> = None;
    let mut failure: Option<ToolError> = None;
    while limit.is_none_or(|l| consumed < l) {
        let polled = tokio::select! {
            r = consumer.poll(POLL_WAIT) => r,
            _ = stopped(&mut stop) => break,
        };
        // No rebalance listener in the client: a changed assignment after a poll is a rebalance.
        // With the eager protocol every partition is revoked, then the new set assigned; the
        // first join revokes nothing. A poll that failed may still have joined.
        let now = consumer.assignment();
        if now != assignment {
            if joined {
                emit("partitions_revoked", partitions(&assignment));
            }
            emit("partitions_assigned", partitions(&now));
            joined = true;
            assignment = now;
        }
        let records = match polled {
            Ok(r) => {
                failing_since = None;
                r
            }
            Err(e) => {
                // Fatal errors, and an unreachable cluster before the first assignment, end the
                // run; otherwise the group gets the request timeout to come back (a coordinator
                // move, a rebalance).
                let since = *failing_since.get_or_insert_with(Instant::now);
                if fatal(&e) || (!joined && unreachable(&e)) || since.elapsed() >= request_timeout {
                    failure = Some(ToolError::new(format!("{TOOL}: {e}")));
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped(&mut stop) => break,
                }
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        let batch = summarize(&records, limit.map(|l| l - consumed));
        if args.verbose {
            for r in &batch.taken {
                emit(
                    "record_data",
                    RecordData {
                        key: text(&r.key),
                        value: text(&r.value),
                        topic: &r.topic,
                        partition: r.partition,
                        offset: r.offset,
                    },
                );
            }
        }
        consumed += batch.taken.len() as u64;
        emit(
            "records_consumed",
            RecordsConsumed {
                count: records.len() as u64,
                partitions: batch.summaries,
            },
        );
        if !args.enable_autocommit {
            let result = consumer.commit_offsets(&batch.offsets).await;
            emit(
                "offsets_committed",
                OffsetsCommitted {
                    offsets: batch
                        .offsets
                        .iter()
                        .map(|((t, p), o)| CommitData {
                            topic: t,
                            partition: *p,
                            offset: *o,
                        })
                        .collect(),
                    success: result.is_ok(),
                    error: result.err().map(|e| e.to_string()),
                },
            );
        }
    }
    // Leave the group, then report; a failure to leave is not worth an error exit.
    let _ = tokio::time::timeout(request_timeout, consumer.close()).await;
    emit("shutdown_complete", NoFields {});
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(p: i32, offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: p,
            offset,
            timestamp: 0,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_batch_is_summarized_per_partition_in_order_of_appearance() {
        let records = vec![rec(2, 5), rec(2, 6), rec(0, 0), rec(2, 7)];
        let b = summarize(&records, None);
        let s: Vec<_> = b
            .summaries
            .iter()
            .map(|s| (s.partition, s.count, s.min_offset, s.max_offset))
            .collect();
        assert_eq!(s, [(2, 3, 5, 7), (0, 1, 0, 0)]);
        assert_eq!(b.offsets[&("t".to_string(), 2)], 8);
        assert_eq!(b.offsets[&("t".to_string(), 0)], 1);
    }

    #[test]
    fn max_messages_cuts_the_batch() {
        let records = vec![rec(1, 0), rec(1, 1), rec(1, 2), rec(0, 0)];
        let b = summarize(&records, Some(2));
        assert_eq!(b.taken.len(), 2);
        assert_eq!(b.summaries.len(), 1);
        assert_eq!(b.summaries[0].max_offset, 1);
        assert_eq!(b.offsets.len(), 1);
        assert_eq!(b.offsets[&("t".to_string(), 1)], 2);
    }

    #[test]
    fn a_failed_commit_names_its_error() {
        let e = OffsetsCommitted {
            offsets: vec![],
            error: Some("boom".into()),
            success: false,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"offsets":[],"error":"boom","success":false}"#
        );
        let ok = OffsetsCommitted {
            offsets: vec![CommitData {
                topic: "t",
                partition: 0,
                offset: 3,
            }],
            error: None,
            success: true,
        };
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"offsets":[{"topic":"t","partition":0,"offset":3}],"success":true}"#
        );
    }
}
