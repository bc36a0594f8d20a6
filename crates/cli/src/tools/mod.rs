//! Kafka's command-line tools, each a module with a `main(args) -> exit code`, built on
//! `brook-client` only (they work against any Kafka cluster, not just Brook).

pub mod common;
pub mod configs;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod consumer_perf;
pub mod delete_records;
pub mod leader_election;
pub mod metadata_quorum;
pub mod producer_perf;
pub mod reassign_partitions;
pub mod topics;
pub mod verifiable_consumer;
pub mod verifiable_producer;

/// A tool's entry point: its arguments (without the tool name) in, the exit code out.
pub type ToolMain = fn(Vec<String>) -> i32;

/// Every tool by Kafka's script name (without `.sh`), with a line for `brook --help`.
pub const TOOLS: &[(&str, ToolMain, &str)] = &[
    (
        "kafka-topics",
        topics::main,
        "create, list, describe, alter and delete topics",
    ),
    (
        "kafka-configs",
        configs::main,
        "describe and alter topic and broker configs",
    ),
    (
        "kafka-console-producer",
        console_producer::main,
        "send stdin lines as records",
    ),
    (
        "kafka-console-consumer",
        console_consumer::main,
        "print records to stdout",
    ),
    (
        "kafka-consumer-groups",
        consumer_groups::main,
        "list, describe, reset and delete groups",
    ),
    (
        "kafka-verifiable-producer",
        verifiable_producer::main,
        "produce with JSON event lines",
    ),
    (
        "kafka-verifiable-consumer",
        verifiable_consumer::main,
        "consume with JSON event lines",
    ),
    (
        "kafka-delete-records",
        delete_records::main,
        "delete records before given offsets",
    ),
    (
        "kafka-leader-election",
        leader_election::main,
        "elect preferred or unclean partition leaders",
    ),
    (
        "kafka-metadata-quorum",
        metadata_quorum::main,
        "describe the controller quorum",
    ),
    (
        "kafka-reassign-partitions",
        reassign_partitions::main,
        "move partitions between brokers",
    ),
    (
        "kafka-producer-perf-test",
        producer_perf::main,
        "measure producer throughput and latency",
    ),
    (
        "kafka-consumer-perf-test",
        consumer_perf::main,
        "measure consumer throughput",
    ),
];

/// Tools that notice a closed stdout themselves and end cleanly (the console consumer still prints
/// its "Processed a total of N messages" and commits); every other tool simply ends on SIGPIPE.
pub const HANDLES_CLOSED_STDOUT: &[&str] = &["kafka-console-consumer"];

/// The tool called `name`: Kafka's script name with or without `kafka-` and `.sh`.
pub fn find(name: &str) -> Option<(&'static str, ToolMain)> {
    let base = name.strip_suffix(".sh").unwrap_or(name);
    TOOLS
        .iter()
        .find(|(n, _, _)| *n == base || n.strip_prefix("kafka-") == Some(base))
        .map(|(n, f, _)| (*n, *f))
}
