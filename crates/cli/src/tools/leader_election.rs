//! `kafka-leader-election`: asks the controller for preferred or unclean leader elections of one
//! partition (`--topic`/`--partition`), the partitions of a JSON file (`--path-to-json-file`) or
//! every partition (`--all-topic-partitions`), with Kafka's LeaderElectionCommand checks, output
//! and exit code (1 when any partition could not be elected).

use std::collections::BTreeSet;
use std::path::PathBuf;

use brook_client::admin::ElectionType;
use brook_client::{Admin, ClientError};
use clap::Parser;

use super::common::{self, ToolError, ToolResult};

const ABOUT: &str = "This tool attempts to elect a new leader for a set of topic partitions. The \
                     type of elections supported are preferred replicas and unclean replicas.";

#[derive(Parser)]
#[command(about = ABOUT)]
struct Args {
    /// A hostname and port for the broker to connect to, in the form host:port. Multiple comma
    /// separated URLs can be given. REQUIRED.
    #[arg(long, num_args = 1.., value_name = "host:port")]
    bootstrap_server: Vec<String>,
    /// Configuration properties files to pass to the admin client.
    #[arg(long = "admin.config", value_name = "config file")]
    admin_config: Option<PathBuf>,
    /// The JSON file with the list of partitions for which leader elections should be performed,
    /// e.g. {"partitions": [{"topic": "foo", "partition": 1}, {"topic": "foobar", "partition": 2}]}.
    /// Not allowed if --all-topic-partitions or --topic flags are specified.
    #[arg(long, value_name = "Path to JSON file")]
    path_to_json_file: Option<PathBuf>,
    /// Name of topic for which to perform an election. Not allowed if --path-to-json-file or
    /// --all-topic-partitions is specified.
    #[arg(long, value_name = "topic name")]
    topic: Option<String>,
    /// Partition id for which to perform an election. REQUIRED if --topic is specified.
    #[arg(long, value_name = "partition id", allow_hyphen_values = true)]
    partition: Option<String>,
    /// Perform election on all of the eligible topic partitions based on the type of election
    /// (see the --election-type flag). Not allowed if --topic or --path-to-json-file is specified.
    #[arg(long)]
    all_topic_partitions: bool,
    /// Type of election to attempt: "preferred" (only where the current leader is not the
    /// preferred leader) or "unclean" (only where the partition has no leader). REQUIRED.
    #[arg(long, value_name = "election type")]
    election_type: Option<String>,
}

/// Which partitions to elect: `None` for every partition.
type Targets = Option<Vec<(String, i32)>>;

/// Runs `kafka-leader-election`; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    if args.is_empty() {
        eprintln!("{ABOUT}\nRun 'kafka-leader-election --help' for the list of options.");
        return 1;
    }
    let args: Args = common::parse_args("kafka-leader-election", args);
    common::run("kafka-leader-election", execute(args))
}

/// Kafka's checks in LeaderElectionCommand's order, with its messages: the election type and
/// the partitions to elect.
fn check_args(a: &Args) -> Result<(ElectionType, Targets), ToolError> {
    let mut missing = Vec::new();
    if a.bootstrap_server.is_empty() {
        missing.push("bootstrap-server");
    }
    if a.election_type.is_none() {
        missing.push("election-type");
    }
    if !missing.is_empty() {
        return Err(ToolError::new(format!(
            "Missing required option(s): {}",
            missing.join(", ")
        )));
    }
    let chosen = [
        a.topic.is_some(),
        a.all_topic_partitions,
        a.path_to_json_file.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() != 1 {
        return Err(ToolError::new(
            "One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file",
        ));
    }
    if a.topic.is_some() && a.partition.is_none() {
        return Err(ToolError::new("Missing required option(s): partition"));
    }
    if a.topic.is_none() && a.partition.is_some() {
        return Err(ToolError::new(
            "Option partition is only allowed if topic is used",
        ));
    }
    let cannot_parse =
        |value: &str, option: &str| format!("Cannot parse argument '{value}' of option {option}");
    let given = a.election_type.as_deref().unwrap_or_default();
    let election_type: ElectionType = given
        .parse()
        .map_err(|_| ToolError::new(cannot_parse(given, "election-type")))?;
    let targets = match (&a.topic, &a.partition, &a.path_to_json_file) {
        (Some(topic), Some(partition), _) => {
            let p: i32 = partition
                .trim()
                .parse()
                .map_err(|_| ToolError::new(cannot_parse(partition, "partition")))?;
            Some(vec![(topic.clone(), p)])
        }
        (_, _, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ToolError::new(format!("Cannot read {}: {e}", path.display())))?;
            Some(parse_election_file(&text)?)
        }
        _ => None,
    };
    Ok((election_type, targets))
}

/// The partitions of Kafka's replica election JSON (`{"partitions": [{"topic": "t",
/// "partition": 0}]}`), with Kafka's messages for what is wrong with it.
fn parse_election_file(text: &str) -> Result<Vec<(String, i32)>, ToolError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|_| ToolError::new("Replica election data is empty"))?;
    let list = json
        .as_object()
        .and_then(|o| o.get("partitions"))
        .ok_or_else(|| ToolError::new("Replica election data is missing \"partitions\" field"))?
        .as_array()
        .ok_or_else(|| ToolError::new("Replica election data: \"partitions\" is not an array"))?;
    let mut partitions = Vec::new();
    for entry in list {
        let field = |name: &str| {
            entry
                .get(name)
                .ok_or_else(|| ToolError::new(format!("No such field exists: `{name}`")))
        };
        let topic = field("topic")?
            .as_str()
            .ok_or_else(|| ToolError::new(format!("Expected a string for `topic`: {entry}")))?;
        let partition = field("partition")?
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| ToolError::new(format!("Expected an int for `partition`: {entry}")))?;
        partitions.push((topic.to_string(), partition));
    }
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = partitions
        .iter()
        .filter(|tp| !seen.insert((*tp).clone()))
        .map(|(t, p)| format!("{t}-{p}"))
        .collect();
    if !duplicates.is_empty() {
        let list: Vec<String> = duplicates.into_iter().collect();
        return Err(ToolError::new(format!(
            "Replica election data contains duplicate partitions: [{}]",
            list.join(", ")
        )));
    }
    Ok(partitions)
}

/// A partition's error as Kafka's Java exception prints it (`org.apache...XException: message`),
/// the broker's message first, else Kafka's default one.
fn java_error(e: &ClientError) -> String {
    let ClientError::Kafka { code, message, .. } = e else {
        return e.to_string();
    };
    let (class, default) = match code {
        3 => (
            "UnknownTopicOrPartitionException",
            "This server does not host this topic-partition.",
        ),
        5 => (
            "LeaderNotAvailableException",
            "There is no leader for this topic-partition as we are in the middle of a leadership election.",
        ),
        7 => ("TimeoutException", "The request timed out."),
        31 => ("ClusterAuthorizationException", "Cluster authorization failed."),
        41 => (
            "NotControllerException",
            "This is not the correct controller for this cluster.",
        ),
        80 => (
            "PreferredLeaderNotAvailableException",
            "The preferred leader was not available.",
        ),
        83 => (
            "EligibleLeadersNotAvailableException",
            "Eligible topic partition leaders are not available.",
        ),
        84 => (
            "ElectionNotNeededException",
            "Leader election not needed for topic partition.",
        ),
        _ => return e.to_string(),
    };
    let message = message
        .as_deref()
        .filter(|m| !m.is_empty())
        .unwrap_or(default);
    format!("org.apache.kafka.common.errors.{class}: {message}")
}

/// Kafka's lines for the results: the elected partitions, those whose leader was already the
/// wanted one, then one line per failure (partitions sorted; Kafka's order is a hash set's).
/// Returns the lines and the number of failures.
fn report(
    election_type: ElectionType,
    results: Vec<(String, i32, Result<(), ClientError>)>,
) -> (Vec<String>, usize) {
    let mut results = results;
    results.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut succeeded = Vec::new();
    let mut noop = Vec::new();
    let mut failed = Vec::new();
    for (topic, partition, result) in results {
        let name = format!("{topic}-{partition}");
        match result {
            Ok(()) => succeeded.push(name),
            Err(e) if e.code() == Some(84) => noop.push(name),
            Err(e) => failed.push((name, e)),
        }
    }
    let mut lines = Vec::new();
    if !succeeded.is_empty() {
        lines.push(format!(
            "Successfully completed leader election ({election_type}) for partitions {}",
            succeeded.join(", ")
        ));
    }
    if !noop.is_empty() {
        lines.push(format!(
            "Valid replica already elected for partitions {}",
            noop.join(", ")
        ));
    }
    for (name, e) in &failed {
        lines.push(format!(
            "Error completing leader election ({election_type}) for partition: {name}: {}",
            java_error(e)
        ));
    }
    (lines, failed.len())
}

async fn execute(args: Args) -> ToolResult {
    let (election_type, targets) = check_args(&args)?;
    let config = common::admin_config(args.admin_config.as_deref(), &args.bootstrap_server)?;
    let admin = Admin::new(config)?;
    let results = match admin.elect_leaders(election_type, targets.as_deref()).await {
        Ok(r) => r,
        Err(e) => {
            let message = match &e {
                ClientError::Timeout(_) => "Timeout waiting for election results",
                e if e.code() == Some(31) => "Not authorized to perform leader election",
                e => return Err(ToolError::new(e.to_string())),
            };
            println!("{message}");
            return Err(ToolError::new(message));
        }
    };
    let (lines, failures) = report(election_type, results);
    for line in lines {
        println!("{line}");
    }
    if failures > 0 {
        return Err(ToolError::new(format!(
            "{failures} replica(s) could not be elected"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("kafka-leader-election").chain(a.iter().copied()))
            .unwrap()
    }

    fn check(a: &[&str]) -> Result<(ElectionType, Targets), String> {
        check_args(&args(a)).map_err(|e| e.message)
    }

    #[test]
    fn flags_are_checked_with_kafkas_messages() {
        fn with<'a>(more: &[&'a str]) -> Vec<&'a str> {
            [&["--bootstrap-server", "h:1"][..], more].concat()
        }
        assert_eq!(
            check(&["--all-topic-partitions"]).unwrap_err(),
            "Missing required option(s): bootstrap-server, election-type"
        );
        assert_eq!(
            check(&with(&["--all-topic-partitions"])).unwrap_err(),
            "Missing required option(s): election-type"
        );
        let one = "One and only one of the following options is required: topic, \
                   all-topic-partitions, path-to-json-file";
        for bad in [
            &["--election-type", "preferred"][..],
            &[
                "--election-type",
                "preferred",
                "--all-topic-partitions",
                "--topic",
                "t",
                "--partition",
                "0",
            ],
        ] {
            assert_eq!(check(&with(bad)).unwrap_err(), one);
        }
        assert_eq!(
            check(&with(&["--election-type", "unclean", "--topic", "t"])).unwrap_err(),
            "Missing required option(s): partition"
        );
        assert_eq!(
            check(&with(&[
                "--election-type",
                "unclean",
                "--all-topic-partitions",
                "--partition",
                "0"
            ]))
            .unwrap_err(),
            "Option partition is only allowed if topic is used"
        );
        assert_eq!(
            check(&with(&[
                "--election-type",
                "dirty",
                "--all-topic-partitions"
            ]))
            .unwrap_err(),
            "Cannot parse argument 'dirty' of option election-type"
        );
        assert_eq!(
            check(&with(&[
                "--election-type",
                "Unclean",
                "--topic",
                "t",
                "--partition",
                "2"
            ]))
            .unwrap(),
            (ElectionType::Unclean, Some(vec![("t".to_string(), 2)]))
        );
        assert_eq!(
            check(&with(&[
                "--election-type",
                "PREFERRED",
                "--all-topic-partitions"
            ]))
            .unwrap(),
            (ElectionType::Preferred, None)
        );
    }

    #[test]
    fn election_files_parse_as_kafkas() {
        let t = r#"{"partitions": [{"topic": "foo", "partition": 1}, {"topic": "bar", "partition": 0}]}"#;
        assert_eq!(
            parse_election_file(t).unwrap(),
            vec![("foo".into(), 1), ("bar".into(), 0)]
        );
        for (text, why) in [
            ("{", "Replica election data is empty"),
            (r#"{"version": 1}"#, "missing \"partitions\" field"),
            (r#"{"partitions": [{"topic": "t"}]}"#, "`partition`"),
            (
                r#"{"partitions": [{"topic": "t", "partition": 0}, {"topic": "t", "partition": 0}]}"#,
                "duplicate partitions: [t-0]",
            ),
        ] {
            let e = parse_election_file(text).unwrap_err();
            assert!(e.message.contains(why), "{text}: {}", e.message);
        }
    }

    #[test]
    fn results_print_as_kafkas_lines() {
        let results = vec![
            ("t".to_string(), 3, Err(ClientError::kafka(3, None))),
            ("t".to_string(), 1, Ok(())),
            (
                "t".to_string(),
                2,
                Err(ClientError::kafka(84, Some("not needed".into()))),
            ),
            ("t".to_string(), 0, Ok(())),
        ];
        let (lines, failures) = report(ElectionType::Preferred, results);
        assert_eq!(failures, 1);
        assert_eq!(
            lines,
            vec![
                "Successfully completed leader election (PREFERRED) for partitions t-0, t-1",
                "Valid replica already elected for partitions t-2",
                "Error completing leader election (PREFERRED) for partition: t-3: \
                 org.apache.kafka.common.errors.UnknownTopicOrPartitionException: This server \
                 does not host this topic-partition.",
            ]
        );
        assert!(report(ElectionType::Unclean, Vec::new()).0.is_empty());
    }
}
