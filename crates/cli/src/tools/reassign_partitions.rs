//! `kafka-reassign-partitions`: moves partitions between brokers (KIP-455), with Kafka's
//! ReassignPartitionsCommand actions, checks, JSON formats and output: `--generate` proposes an
//! assignment of some topics over a broker list, `--execute` starts the reassignment of a JSON
//! file, `--verify` reports its progress, `--cancel` stops it, `--list` shows what is moving.
//! Brook has neither replication quotas nor several log directories per broker, so `--throttle`,
//! `--replica-alter-log-dirs-throttle` and log directories other than "any" are refused clearly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use brook_client::{Admin, ClientError};
use clap::Parser;
use std::hash::{BuildHasher, Hasher};

use super::common::{self, ToolError, ToolResult};

const ABOUT: &str = "This tool helps to move topic partitions between replicas.";

#[derive(Parser)]
#[command(about = ABOUT)]
struct Args {
    /// The server(s) to use for bootstrapping.
    #[arg(long, num_args = 1.., value_name = "Server(s) to use for bootstrapping")]
    bootstrap_server: Vec<String>,
    /// The controller to connect to (not supported: Brook's controllers serve no clients).
    #[arg(long, value_name = "bootstrap controller to connect to")]
    bootstrap_controller: Option<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(long, value_name = "Admin client property file")]
    command_config: Option<PathBuf>,
    /// Verify if the reassignment completed as specified by the --reassignment-json-file option.
    #[arg(long)]
    verify: bool,
    /// Generate a candidate partition reassignment configuration. Note that this only generates
    /// a candidate assignment, it does not execute it.
    #[arg(long)]
    generate: bool,
    /// Kick off the reassignment as specified by the --reassignment-json-file option.
    #[arg(long)]
    execute: bool,
    /// Cancel an active reassignment.
    #[arg(long)]
    cancel: bool,
    /// List all active partition reassignments.
    #[arg(long)]
    list: bool,
    /// The JSON file with the partition reassignment configuration. The format to use is -
    /// {"partitions": [{"topic": "foo", "partition": 1, "replicas": [1,2,3],
    /// "log_dirs": ["dir1","dir2","dir3"]}], "version":1}
    #[arg(long, value_name = "manual assignment json file path")]
    reassignment_json_file: Option<PathBuf>,
    /// Generate a reassignment configuration to move the partitions of the specified topics to
    /// the list of brokers specified by the --broker-list option. The format to use is -
    /// {"topics": [{"topic": "foo"},{"topic": "foo1"}], "version":1}
    #[arg(long, value_name = "topics to reassign json file path")]
    topics_to_move_json_file: Option<PathBuf>,
    /// The list of brokers to which the partitions need to be reassigned in the form "0,1,2".
    #[arg(long, value_name = "brokerlist")]
    broker_list: Option<String>,
    /// Disable rack aware replica assignment.
    #[arg(long)]
    disable_rack_aware: bool,
    /// The movement of partitions between brokers will be throttled to this value (bytes/sec);
    /// not supported by Brook.
    #[arg(long, value_name = "throttle", allow_hyphen_values = true)]
    throttle: Option<i64>,
    /// The movement of replicas between log directories on the same broker will be throttled to
    /// this value (bytes/sec); not supported by Brook.
    #[arg(
        long,
        value_name = "replicaAlterLogDirsThrottle",
        allow_hyphen_values = true
    )]
    replica_alter_log_dirs_throttle: Option<i64>,
    /// The maximum time in ms to wait for log directory replica assignment to begin.
    #[arg(long, value_name = "timeout")]
    timeout: Option<i64>,
    /// Execute this reassignment in addition to any other ongoing ones.
    #[arg(long)]
    additional: bool,
    /// Do not modify broker or topic throttles.
    #[arg(long)]
    preserve_throttles: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Generate,
    Execute,
    Verify,
    Cancel,
    List,
}

/// Runs `kafka-reassign-partitions`; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    if args.is_empty() {
        eprintln!("{ABOUT}\nRun 'kafka-reassign-partitions --help' for the list of options.");
        return 1;
    }
    let args: Args = common::parse_args("kafka-reassign-partitions", args);
    common::run("kafka-reassign-partitions", execute(args))
}

/// Kafka's option checks, in ReassignPartitionsCommand's order and with its messages.
fn check_args(a: &Args) -> Result<Action, ToolError> {
    let actions: Vec<Action> = [
        (a.generate, Action::Generate),
        (a.execute, Action::Execute),
        (a.verify, Action::Verify),
        (a.cancel, Action::Cancel),
        (a.list, Action::List),
    ]
    .into_iter()
    .filter_map(|(given, action)| given.then_some(action))
    .collect();
    let [action] = actions[..] else {
        return Err(ToolError::new(
            "Command must include exactly one action: --generate, --execute, --verify, --cancel, --list",
        ));
    };
    match (
        a.bootstrap_server.is_empty(),
        a.bootstrap_controller.is_some(),
    ) {
        (false, true) => {
            return Err(ToolError::new(
                "Please don't specify both --bootstrap-server and --bootstrap-controller",
            ))
        }
        (true, false) => {
            return Err(ToolError::new(
                "Please specify either --bootstrap-server or --bootstrap-controller",
            ))
        }
        (true, true) => {
            return Err(ToolError::new(
                "The --bootstrap-controller option is not supported: Brook's controllers serve no \
                 clients; use --bootstrap-server",
            ))
        }
        (false, false) => {}
    }
    let missing = |name: &str| {
        Err(ToolError::new(format!(
            "Missing required argument \"[{name}]\""
        )))
    };
    match action {
        Action::Verify | Action::Execute | Action::Cancel if a.reassignment_json_file.is_none() => {
            return missing("reassignment-json-file")
        }
        Action::Generate if a.topics_to_move_json_file.is_none() => {
            return missing("topics-to-move-json-file")
        }
        Action::Generate if a.broker_list.is_none() => return missing("broker-list"),
        _ => {}
    }
    let given = [
        ("reassignment-json-file", a.reassignment_json_file.is_some()),
        (
            "topics-to-move-json-file",
            a.topics_to_move_json_file.is_some(),
        ),
        ("broker-list", a.broker_list.is_some()),
        ("disable-rack-aware", a.disable_rack_aware),
        ("throttle", a.throttle.is_some()),
        (
            "replica-alter-log-dirs-throttle",
            a.replica_alter_log_dirs_throttle.is_some(),
        ),
        ("timeout", a.timeout.is_some()),
        ("additional", a.additional),
        ("preserve-throttles", a.preserve_throttles),
    ];
    let permitted: &[&str] = match action {
        Action::Verify => &["reassignment-json-file", "preserve-throttles"],
        Action::Generate => &[
            "topics-to-move-json-file",
            "broker-list",
            "disable-rack-aware",
        ],
        Action::Execute => &[
            "reassignment-json-file",
            "additional",
            "throttle",
            "replica-alter-log-dirs-throttle",
            "timeout",
        ],
        Action::Cancel => &["reassignment-json-file", "preserve-throttles", "timeout"],
        Action::List => &[],
    };
    let name = match action {
        Action::Generate => "generate",
        Action::Execute => "execute",
        Action::Verify => "verify",
        Action::Cancel => "cancel",
        Action::List => "list",
    };
    if let Some((option, _)) = given
        .iter()
        .find(|(o, present)| *present && !permitted.contains(o))
    {
        return Err(ToolError::new(format!(
            "Option \"[{option}]\" can't be used with action \"[{name}]\""
        )));
    }
    for (option, value) in [
        ("throttle", a.throttle),
        (
            "replica-alter-log-dirs-throttle",
            a.replica_alter_log_dirs_throttle,
        ),
    ] {
        if value.is_some_and(|v| v >= 0) {
            return Err(ToolError::new(format!(
                "--{option} is not supported: Brook has no replication quotas, so the reassignment \
                 cannot be throttled"
            )));
        }
    }
    Ok(action)
}

/// One partition of a reassignment JSON file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Move {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
}

impl Move {
    fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

fn read(path: &PathBuf) -> Result<String, ToolError> {
    std::fs::read_to_string(path)
        .map_err(|e| ToolError::new(format!("Error: Cannot read {}: {e}", path.display())))
}

/// Kafka's `parsePartitionReassignmentData`: version 1, `partitions` with topic, partition,
/// replicas and optional log_dirs (only "any" here: one log directory per broker).
fn parse_reassignment(text: &str) -> Result<Vec<Move>, ToolError> {
    if text.trim().is_empty() {
        return Err(ToolError::new(
            "Error: com.fasterxml.jackson.core.JsonParseException: The input string shouldn't be empty",
        ));
    }
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ToolError::new(format!(
            "Error: com.fasterxml.jackson.core.JsonParseException: {e}"
        ))
    })?;
    let obj = json
        .as_object()
        .ok_or_else(|| ToolError::new(format!("Error: Expected JSON object, received {json}")))?;
    let list = versioned_list(obj, "partitions")?;
    let mut out = Vec::new();
    for entry in list {
        let field = |name: &str| {
            entry
                .get(name)
                .ok_or_else(|| ToolError::new(format!("Error: No such field exists: `{name}`")))
        };
        let topic = field("topic")?.as_str().ok_or_else(|| {
            ToolError::new(format!(
                "Error: Expected `String` value, received {}",
                entry["topic"]
            ))
        })?;
        let partition = field("partition")?
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| {
                ToolError::new(format!(
                    "Error: Expected `Integer` value, received {}",
                    entry["partition"]
                ))
            })?;
        let replicas_json = field("replicas")?;
        let replicas: Option<Vec<i32>> = replicas_json.as_array().and_then(|a| {
            a.iter()
                .map(|v| v.as_i64().and_then(|v| i32::try_from(v).ok()))
                .collect()
        });
        let replicas = replicas.ok_or_else(|| {
            ToolError::new(format!(
                "Error: Expected `JSON array` value, received {replicas_json}"
            ))
        })?;
        if let Some(dirs) = entry.get("log_dirs") {
            let dirs: Vec<String> = dirs
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
                .ok_or_else(|| {
                    ToolError::new(format!(
                        "Error: Expected `JSON array` value, received {dirs}"
                    ))
                })?;
            if dirs.len() != replicas.len() {
                return Err(ToolError::new(format!(
                    "Error: Size of replicas list {replicas:?} is different from size of log dirs \
                     list {dirs:?} for partition {topic}-{partition}"
                )));
            }
            if let Some(dir) = dirs.iter().find(|d| *d != "any") {
                return Err(ToolError::new(format!(
                    "Error: Moving replicas between log directories is not supported (log dir \
                     \"{dir}\" for partition {topic}-{partition}): a Brook broker has one log \
                     directory; use \"any\""
                )));
            }
        }
        out.push(Move {
            topic: topic.to_string(),
            partition,
            replicas,
        });
    }
    Ok(out)
}

/// A version-1 file's list under `key` (absent: empty), with Kafka's messages.
fn versioned_list<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<&'a [serde_json::Value], ToolError> {
    check_version(obj)?;
    match obj.get(key) {
        None => Ok(&[]),
        Some(list) => list
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| ToolError::new(format!("Error: Expected JSON array, received {list}"))),
    }
}

fn check_version(obj: &serde_json::Map<String, serde_json::Value>) -> Result<(), ToolError> {
    match obj.get("version") {
        None => Ok(()),
        Some(v) => match v.as_i64() {
            Some(1) => Ok(()),
            Some(n) => Err(ToolError::new(format!(
                "Error: Not supported version field value {n}"
            ))),
            None => Err(ToolError::new(format!(
                "Error: Expected `Integer` value, received {v}"
            ))),
        },
    }
}

/// The checks `--execute` adds (Kafka's `validateReplicaAssignment` and friends).
fn check_moves(moves: &[Move]) -> Result<(), ToolError> {
    if moves.is_empty() {
        return Err(ToolError::new(
            "Error: Partition reassignment list cannot be empty",
        ));
    }
    if moves.iter().any(|m| m.replicas.is_empty()) {
        return Err(ToolError::new(
            "Error: Partition replica list cannot be empty",
        ));
    }
    let mut seen = BTreeSet::new();
    let dup: BTreeSet<String> = moves
        .iter()
        .filter(|m| !seen.insert((m.topic.clone(), m.partition)))
        .map(Move::name)
        .collect();
    if !dup.is_empty() {
        return Err(ToolError::new(format!(
            "Error: Partition reassignment contains duplicate topic partitions: {}",
            dup.into_iter().collect::<Vec<_>>().join(",")
        )));
    }
    let dup_replicas: Vec<String> = moves
        .iter()
        .filter_map(|m| {
            let mut seen = BTreeSet::new();
            let d: BTreeSet<i32> = m
                .replicas
                .iter()
                .copied()
                .filter(|r| !seen.insert(*r))
                .collect();
            (!d.is_empty()).then(|| {
                format!(
                    "{} contains multiple entries for {}",
                    m.name(),
                    join(d.iter())
                )
            })
        })
        .collect();
    if !dup_replicas.is_empty() {
        return Err(ToolError::new(format!(
            "Error: Partition replica lists may not contain duplicate entries: {}",
            dup_replicas.join(". ")
        )));
    }
    Ok(())
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Kafka's reassignment JSON: one line, keys in its order, partitions sorted.
fn assignment_json(assignment: &BTreeMap<(String, i32), Vec<i32>>) -> String {
    let parts: Vec<String> = assignment
        .iter()
        .map(|((topic, partition), replicas)| {
            format!(
                "{{\"topic\":{},\"partition\":{partition},\"replicas\":[{}],\"log_dirs\":[{}]}}",
                serde_json::Value::from(topic.as_str()),
                join(replicas),
                vec!["\"any\""; replicas.len()].join(",")
            )
        })
        .collect();
    format!("{{\"version\":1,\"partitions\":[{}]}}", parts.join(","))
}

/// The current replicas of the topics named, by (topic, partition); Kafka's messages for a
/// missing topic.
async fn current_assignment(
    admin: &Admin,
    topics: &BTreeSet<String>,
) -> Result<BTreeMap<(String, i32), Vec<i32>>, ToolError> {
    let mut out = BTreeMap::new();
    for topic in topics {
        let described = admin
            .describe_topics(std::slice::from_ref(topic))
            .await
            .map_err(|e| match e.code() {
                Some(3) => ToolError::new(format!(
                    "Error: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Topic {topic} not found."
                )),
                _ => ToolError::new(format!("Error: {e}")),
            })?;
        for t in described {
            for p in t.partitions {
                out.insert((t.name.clone(), p.partition), p.replicas);
            }
        }
    }
    Ok(out)
}

/// Kafka prints usage and admin errors on stdout: this does, and exits 1.
fn fail(message: impl Into<String>) -> ToolResult {
    println!("{}", message.into());
    Err(ToolError {
        message: String::new(),
        code: 1,
    })
}

async fn execute(args: Args) -> ToolResult {
    let action = check_args(&args)?;
    let config = common::admin_config(args.command_config.as_deref(), &args.bootstrap_server)?;
    let admin = Admin::new(config)?;
    let result = match action {
        Action::Execute => run_execute(&admin, &args).await,
        Action::Verify => run_verify(&admin, &args).await,
        Action::Cancel => run_cancel(&admin, &args).await,
        Action::List => run_list(&admin).await,
        Action::Generate => run_generate(&admin, &args).await,
    };
    match result {
        Err(e) if !e.message.is_empty() => fail(e.message),
        other => other,
    }
}

fn moves_of(args: &Args) -> Result<Vec<Move>, ToolError> {
    let path = args
        .reassignment_json_file
        .as_ref()
        .ok_or_else(|| ToolError::new("Missing required argument \"[reassignment-json-file]\""))?;
    parse_reassignment(&read(path)?)
}

fn admin_error(e: ClientError) -> ToolError {
    ToolError::new(format!("Error: {e}"))
}

async fn run_execute(admin: &Admin, args: &Args) -> ToolResult {
    let moves = moves_of(args)?;
    check_moves(&moves)?;
    let ongoing = admin
        .list_partition_reassignments(None)
        .await
        .map_err(admin_error)?;
    if !ongoing.is_empty() && !args.additional {
        return fail(
            "Cannot execute because there is an existing partition assignment.  Use --additional \
             to override this and create a new partition assignment in addition to the existing \
             one. The --additional flag can also be used to change the throttle by resubmitting \
             the current reassignment.",
        );
    }
    let brokers: BTreeSet<i32> = admin
        .describe_cluster()
        .await
        .map_err(admin_error)?
        .brokers
        .iter()
        .map(|b| b.node_id)
        .collect();
    if let Some(unknown) = moves
        .iter()
        .flat_map(|m| m.replicas.iter())
        .find(|r| !brokers.contains(r))
    {
        return fail(format!("Error: Unknown broker id {unknown}"));
    }
    let topics: BTreeSet<String> = moves.iter().map(|m| m.topic.clone()).collect();
    let current_all = current_assignment(admin, &topics).await?;
    let missing: Vec<String> = moves
        .iter()
        .filter(|m| !current_all.contains_key(&(m.topic.clone(), m.partition)))
        .map(Move::name)
        .collect();
    if !missing.is_empty() {
        return fail(format!(
            "Error: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: Unable to find partition: {}",
            missing.join(", ")
        ));
    }
    let current: BTreeMap<(String, i32), Vec<i32>> = moves
        .iter()
        .map(|m| {
            let key = (m.topic.clone(), m.partition);
            let replicas = current_all[&key].clone();
            (key, replicas)
        })
        .collect();
    println!("Current partition replica assignment\n");
    println!("{}\n", assignment_json(&current));
    println!("Save this to use as the --reassignment-json-file option during rollback");
    let request: Vec<(String, i32, Option<Vec<i32>>)> = moves
        .iter()
        .map(|m| (m.topic.clone(), m.partition, Some(m.replicas.clone())))
        .collect();
    alter(admin, &request, |_| {
        "Error reassigning partition(s):".into()
    })
    .await?;
    let names: Vec<String> = current.keys().map(|(t, p)| format!("{t}-{p}")).collect();
    println!(
        "Successfully started partition reassignment{} for {}",
        if names.len() == 1 { "" } else { "s" },
        names.join(",")
    );
    Ok(())
}

/// Sends AlterPartitionReassignments; when partitions fail, prints `header(failures)` and one
/// `topic-partition: message` line per failure (sorted), as Kafka does, and fails.
async fn alter(
    admin: &Admin,
    request: &[(String, i32, Option<Vec<i32>>)],
    header: impl Fn(usize) -> String,
) -> ToolResult {
    let results = admin
        .alter_partition_reassignments(request)
        .await
        .map_err(admin_error)?;
    let mut failed: Vec<(&String, i32, String)> = results
        .iter()
        .filter_map(|(t, p, r)| r.as_ref().err().map(|e| (t, *p, message(e))))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    failed.sort();
    let lines: Vec<String> = failed
        .iter()
        .map(|(t, p, m)| format!("{t}-{p}: {m}"))
        .collect();
    fail(format!("{}\n{}", header(lines.len()), lines.join("\n")))
}

/// A per-partition error as Kafka's exceptions word it: the broker's message, else its
/// default for the code.
fn message(e: &ClientError) -> String {
    match e {
        ClientError::Kafka {
            message: Some(m), ..
        } if !m.is_empty() => m.clone(),
        e => match e.code() {
            Some(3) => "This server does not host this topic-partition.".into(),
            Some(39) => "Replica assignment is invalid.".into(),
            Some(85) => "No partition reassignment is in progress.".into(),
            _ => e.to_string(),
        },
    }
}

/// Kafka's "Clearing ... throttles" lines. Brook sets no throttles, so there is nothing to
/// remove; the lines say what Kafka's tool says at this point.
async fn clear_throttles(admin: &Admin, moves: &[Move]) -> ToolResult {
    let mut brokers: BTreeSet<i32> = admin
        .describe_cluster()
        .await
        .map_err(admin_error)?
        .brokers
        .iter()
        .map(|b| b.node_id)
        .collect();
    brokers.extend(moves.iter().flat_map(|m| m.replicas.iter().copied()));
    let topics: BTreeSet<&str> = moves.iter().map(|m| m.topic.as_str()).collect();
    println!(
        "Clearing broker-level throttles on broker{} {}",
        if brokers.len() == 1 { "" } else { "s" },
        join(&brokers)
    );
    println!(
        "Clearing topic-level throttles on topic{} {}",
        if topics.len() == 1 { "" } else { "s" },
        join(&topics)
    );
    Ok(())
}

async fn run_verify(admin: &Admin, args: &Args) -> ToolResult {
    let mut moves = moves_of(args)?;
    moves.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let ongoing = admin
        .list_partition_reassignments(None)
        .await
        .map_err(admin_error)?;
    let moving: BTreeSet<(String, i32)> = ongoing
        .iter()
        .map(|o| (o.topic.clone(), o.partition))
        .collect();
    let mut current: BTreeMap<(String, i32), Vec<i32>> = BTreeMap::new();
    for topic in moves.iter().map(|m| &m.topic).collect::<BTreeSet<_>>() {
        // An unknown topic has no replicas (Kafka reports its partitions as not moved).
        if let Ok(ts) = admin.describe_topics(std::slice::from_ref(topic)).await {
            for t in ts {
                for p in t.partitions {
                    current.insert((t.name.clone(), p.partition), p.replicas);
                }
            }
        }
    }
    println!("Status of partition reassignment:");
    for m in &moves {
        let key = (m.topic.clone(), m.partition);
        if moving.contains(&key) {
            println!(
                "Reassignment of partition {} is still in progress.",
                m.name()
            );
            continue;
        }
        let now = current.get(&key).cloned().unwrap_or_default();
        if now == m.replicas {
            println!("Reassignment of partition {} is completed.", m.name());
        } else {
            println!(
                "There is no active reassignment of partition {}, but replica set is {} rather than {}.",
                m.name(),
                join(&now),
                join(&m.replicas)
            );
        }
    }
    // Kafka's second block, the log directory moves: none here.
    println!();
    if ongoing.is_empty() && !args.preserve_throttles {
        clear_throttles(admin, &moves).await?;
    }
    Ok(())
}

async fn run_cancel(admin: &Admin, args: &Args) -> ToolResult {
    let moves = moves_of(args)?;
    let targets: Vec<(String, i32)> = moves
        .iter()
        .map(|m| (m.topic.clone(), m.partition))
        .collect();
    let active = admin
        .list_partition_reassignments(Some(&targets))
        .await
        .map_err(admin_error)?;
    if active.is_empty() {
        println!("None of the specified partition reassignments are active.");
    } else {
        let request: Vec<(String, i32, Option<Vec<i32>>)> = active
            .iter()
            .map(|o| (o.topic.clone(), o.partition, None))
            .collect();
        alter(admin, &request, |failed| {
            format!(
                "Error cancelling partition reassignment{} for:",
                if failed == 1 { "" } else { "s" }
            )
        })
        .await?;
        let names: Vec<String> = active
            .iter()
            .map(|o| format!("{}-{}", o.topic, o.partition))
            .collect();
        println!(
            "Successfully cancelled partition reassignment{} for: {}",
            if names.len() == 1 { "" } else { "s" },
            names.join(",")
        );
    }
    // Kafka prints this without a line end, so its next line follows on the same one.
    print!("None of the specified partition moves are active.");
    if args.preserve_throttles {
        println!();
        return Ok(());
    }
    clear_throttles(admin, &moves).await
}

async fn run_list(admin: &Admin) -> ToolResult {
    let ongoing = admin
        .list_partition_reassignments(None)
        .await
        .map_err(admin_error)?;
    if ongoing.is_empty() {
        println!("No partition reassignments found.");
        return Ok(());
    }
    println!("Current partition reassignments:");
    for o in ongoing {
        let mut line = format!(
            "{}-{}: replicas: {}.",
            o.topic,
            o.partition,
            join(&o.replicas)
        );
        if !o.adding.is_empty() {
            line.push_str(&format!(" adding: {}.", join(&o.adding)));
        }
        if !o.removing.is_empty() {
            line.push_str(&format!(" removing: {}.", join(&o.removing)));
        }
        println!("{line}");
    }
    Ok(())
}

/// Kafka's `--topics-to-move-json-file`: {"topics": [{"topic": "foo"}], "version": 1}.
fn parse_topics_to_move(text: &str) -> Result<Vec<String>, ToolError> {
    let invalid = || ToolError::new("Error: The input string is not a valid JSON");
    let json: serde_json::Value = serde_json::from_str(text).map_err(|_| invalid())?;
    let obj = json.as_object().ok_or_else(invalid)?;
    let list = versioned_list(obj, "topics")?;
    let mut topics = Vec::new();
    for entry in list {
        let topic = entry
            .get("topic")
            .ok_or_else(|| ToolError::new("Error: No such field exists: `topic`"))?
            .as_str()
            .ok_or_else(|| {
                ToolError::new(format!(
                    "Error: Expected `String` value, received {}",
                    entry["topic"]
                ))
            })?;
        topics.push(topic.to_string());
    }
    let mut seen = BTreeSet::new();
    let dup: Vec<&String> = topics.iter().filter(|t| !seen.insert(*t)).collect();
    if !dup.is_empty() {
        return Err(ToolError::new(format!(
            "Error: List of topics to reassign contains duplicate entries: [{}]",
            dup.iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(topics)
}

/// Kafka's `--broker-list`: ids separated by commas (no spaces).
fn parse_broker_list(text: &str) -> Result<Vec<i32>, ToolError> {
    let ids: Vec<i32> = text
        .split(',')
        .map(|s| {
            s.parse::<i32>()
                .map_err(|_| ToolError::new(format!("Error: For input string: \"{s}\"")))
        })
        .collect::<Result<_, _>>()?;
    let mut seen = BTreeSet::new();
    let dup: Vec<String> = ids
        .iter()
        .filter(|i| !seen.insert(**i))
        .map(|i| i.to_string())
        .collect();
    if !dup.is_empty() {
        return Err(ToolError::new(format!(
            "Error: Broker list contains duplicate entries: [{}]",
            dup.join(", ")
        )));
    }
    Ok(ids)
}

/// A random number below `n` (std's per-process random hash keys; no RNG crate for this).
fn random_below(n: usize) -> usize {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() % n.max(1) as u64) as usize
}

/// Kafka's `AdminUtils.assignReplicasToBrokers` with a random start index and shift: each
/// partition's first replica walks the broker list, the others follow at a shifting distance;
/// with racks, the list alternates racks and followers prefer racks and brokers not yet used.
fn assign(
    brokers: &[(i32, Option<String>)],
    partitions: i32,
    replication_factor: usize,
    random_below: &mut dyn FnMut(usize) -> usize,
) -> Result<Vec<Vec<i32>>, ToolError> {
    let n = brokers.len();
    if partitions <= 0 {
        return Err(ToolError::new(
            "Error: Number of partitions must be larger than 0.",
        ));
    }
    if replication_factor == 0 {
        return Err(ToolError::new(
            "Error: Replication factor must be larger than 0.",
        ));
    }
    if replication_factor > n {
        return Err(ToolError::new(format!(
            "Error: Replication factor: {replication_factor} larger than available brokers: {n}."
        )));
    }
    let with_rack = brokers.iter().filter(|(_, r)| r.is_some()).count();
    if with_rack != 0 && with_rack != n {
        return Err(ToolError::new(
            "Error: Not all brokers have rack information. Add --disable-rack-aware in command \
             line to make replica assignment without rack information.",
        ));
    }
    let start = random_below(n);
    let mut shift = random_below(n);
    let replica_index = |first: usize, shift: usize, j: usize| -> usize {
        (first + 1 + (shift + j) % (n - 1).max(1)) % n
    };
    let mut out = Vec::new();
    if with_rack == 0 {
        let ids: Vec<i32> = brokers.iter().map(|(id, _)| *id).collect();
        for p in 0..partitions as usize {
            if p > 0 && p % n == 0 {
                shift += 1;
            }
            let first = (p + start) % n;
            let mut replicas = vec![ids[first]];
            for j in 0..replication_factor - 1 {
                replicas.push(ids[replica_index(first, shift, j)]);
            }
            out.push(replicas);
        }
        return Ok(out);
    }
    // Racks sorted by name, ids ascending within each, taken one rack at a time.
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack
            .entry(rack.as_deref().unwrap_or_default())
            .or_default()
            .push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let num_racks = by_rack.len();
    let mut alternated = Vec::new();
    for i in 0.. {
        let before = alternated.len();
        for ids in by_rack.values() {
            if let Some(id) = ids.get(i) {
                alternated.push(*id);
            }
        }
        if alternated.len() == before {
            break;
        }
    }
    let rack_of: BTreeMap<i32, &str> = brokers
        .iter()
        .map(|(id, r)| (*id, r.as_deref().unwrap_or_default()))
        .collect();
    for p in 0..partitions as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let leader = alternated[first];
        let mut replicas = vec![leader];
        let mut racks: BTreeSet<&str> = BTreeSet::from([rack_of[&leader]]);
        let mut used: BTreeSet<i32> = BTreeSet::from([leader]);
        let mut k = 0;
        while replicas.len() < replication_factor {
            let b = alternated[replica_index(first, shift * num_racks, k)];
            let rack = rack_of[&b];
            if (!racks.contains(rack) || racks.len() == num_racks)
                && (!used.contains(&b) || used.len() == n)
            {
                replicas.push(b);
                racks.insert(rack);
                used.insert(b);
            }
            k += 1;
        }
        out.push(replicas);
    }
    Ok(out)
}

async fn run_generate(admin: &Admin, args: &Args) -> ToolResult {
    let path = args.topics_to_move_json_file.as_ref().ok_or_else(|| {
        ToolError::new("Missing required argument \"[topics-to-move-json-file]\"")
    })?;
    let topics = parse_topics_to_move(&read(path)?)?;
    let wanted = parse_broker_list(args.broker_list.as_deref().unwrap_or_default())?;
    let cluster = admin.describe_cluster().await.map_err(admin_error)?;
    let brokers: Vec<(i32, Option<String>)> = cluster
        .brokers
        .iter()
        .filter(|b| wanted.contains(&b.node_id))
        .map(|b| {
            let rack = if args.disable_rack_aware {
                None
            } else {
                b.rack.clone()
            };
            (b.node_id, rack)
        })
        .collect();
    let names: BTreeSet<String> = topics.into_iter().collect();
    let current = current_assignment(admin, &names).await?;
    let mut proposed = BTreeMap::new();
    let mut rng = random_below;
    for topic in &names {
        let parts: Vec<&Vec<i32>> = current
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|(_, r)| r)
            .collect();
        let rf = parts.first().map_or(0, |r| r.len());
        let assignment = assign(&brokers, parts.len() as i32, rf, &mut rng)?;
        for (p, replicas) in assignment.into_iter().enumerate() {
            proposed.insert((topic.clone(), p as i32), replicas);
        }
    }
    println!("Current partition replica assignment");
    println!("{}\n", assignment_json(&current));
    println!("Proposed partition reassignment configuration");
    println!("{}", assignment_json(&proposed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("kafka-reassign-partitions").chain(a.iter().copied()))
            .unwrap()
    }

    fn check(a: &[&str]) -> Result<Action, String> {
        check_args(&args(a)).map_err(|e| e.message)
    }

    #[test]
    fn options_are_checked_in_kafkas_order_with_its_messages() {
        let b = ["--bootstrap-server", "h:1"];
        let with = |more: &[&'static str]| -> Vec<&'static str> { [&b[..], more].concat() };
        assert_eq!(
            check(&with(&[])).unwrap_err(),
            "Command must include exactly one action: --generate, --execute, --verify, --cancel, --list"
        );
        assert_eq!(
            check(&with(&["--verify", "--list"])).unwrap_err(),
            "Command must include exactly one action: --generate, --execute, --verify, --cancel, --list"
        );
        assert_eq!(
            check(&["--list"]).unwrap_err(),
            "Please specify either --bootstrap-server or --bootstrap-controller"
        );
        assert_eq!(
            check(&with(&["--list", "--bootstrap-controller", "c:1"])).unwrap_err(),
            "Please don't specify both --bootstrap-server and --bootstrap-controller"
        );
        assert_eq!(
            check(&with(&["--execute"])).unwrap_err(),
            "Missing required argument \"[reassignment-json-file]\""
        );
        assert_eq!(
            check(&with(&["--generate", "--topics-to-move-json-file", "f"])).unwrap_err(),
            "Missing required argument \"[broker-list]\""
        );
        assert_eq!(
            check(&with(&[
                "--verify",
                "--reassignment-json-file",
                "f",
                "--additional"
            ]))
            .unwrap_err(),
            "Option \"[additional]\" can't be used with action \"[verify]\""
        );
        assert!(check(&with(&[
            "--execute",
            "--reassignment-json-file",
            "f",
            "--throttle",
            "1000"
        ]))
        .unwrap_err()
        .contains("--throttle is not supported"));
        assert_eq!(check(&with(&["--list"])), Ok(Action::List));
        assert_eq!(
            check(&with(&[
                "--execute",
                "--reassignment-json-file",
                "f",
                "--additional"
            ])),
            Ok(Action::Execute)
        );
    }

    #[test]
    fn reassignment_files_are_parsed_and_checked_as_kafka_does() {
        let moves = parse_reassignment(
            r#"{"version":1,"partitions":[{"topic":"a","partition":1,"replicas":[3,1],"log_dirs":["any","any"]},{"topic":"b","partition":0,"replicas":[2]}]}"#,
        )
        .unwrap();
        assert_eq!(
            moves,
            vec![
                Move {
                    topic: "a".into(),
                    partition: 1,
                    replicas: vec![3, 1]
                },
                Move {
                    topic: "b".into(),
                    partition: 0,
                    replicas: vec![2]
                }
            ]
        );
        let err = |text: &str| parse_reassignment(text).unwrap_err().message;
        assert_eq!(
            err(r#"{"version":2}"#),
            "Error: Not supported version field value 2"
        );
        assert_eq!(
            err(r#"{"partitions":[{"partition":0,"replicas":[1]}]}"#),
            "Error: No such field exists: `topic`"
        );
        assert!(err(
            r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1],"log_dirs":["/d"]}]}"#
        )
        .contains("not supported"));
        let dup = parse_reassignment(
            r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1,1]},{"topic":"a","partition":0,"replicas":[2]}]}"#,
        )
        .unwrap();
        assert_eq!(
            check_moves(&dup).unwrap_err().message,
            "Error: Partition reassignment contains duplicate topic partitions: a-0"
        );
        assert_eq!(
            check_moves(&dup[..1]).unwrap_err().message,
            "Error: Partition replica lists may not contain duplicate entries: a-0 contains multiple entries for 1"
        );
        assert_eq!(
            check_moves(&[]).unwrap_err().message,
            "Error: Partition reassignment list cannot be empty"
        );
    }

    #[test]
    fn the_json_output_is_kafkas_one_line_format() {
        let a = BTreeMap::from([
            (("b".to_string(), 0), vec![2, 1]),
            (("a".to_string(), 1), vec![3]),
        ]);
        assert_eq!(
            assignment_json(&a),
            r#"{"version":1,"partitions":[{"topic":"a","partition":1,"replicas":[3],"log_dirs":["any"]},{"topic":"b","partition":0,"replicas":[2,1],"log_dirs":["any","any"]}]}"#
        );
    }

    #[test]
    fn generated_assignments_spread_replicas_over_distinct_brokers_and_racks() {
        let mut rng = random_below;
        let plain: Vec<(i32, Option<String>)> = (1..=4).map(|i| (i, None)).collect();
        for _ in 0..50 {
            let a = assign(&plain, 8, 3, &mut rng).unwrap();
            assert_eq!(a.len(), 8);
            for r in &a {
                assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "{a:?}");
            }
            // Leaders walk the broker list: each broker leads two of the eight.
            let mut leaders = BTreeMap::new();
            for r in &a {
                *leaders.entry(r[0]).or_insert(0) += 1;
            }
            assert!(leaders.values().all(|c| *c == 2), "{a:?}");
        }
        let racks: Vec<(i32, Option<String>)> = vec![
            (1, Some("r1".into())),
            (2, Some("r1".into())),
            (3, Some("r2".into())),
            (4, Some("r2".into())),
        ];
        for _ in 0..50 {
            for r in assign(&racks, 6, 2, &mut rng).unwrap() {
                let rs: BTreeSet<&str> = r
                    .iter()
                    .map(|b| {
                        racks
                            .iter()
                            .find(|(i, _)| i == b)
                            .unwrap()
                            .1
                            .as_deref()
                            .unwrap()
                    })
                    .collect();
                assert_eq!(rs.len(), 2, "{r:?} shares a rack");
            }
        }
        assert_eq!(
            assign(&plain, 1, 5, &mut rng).unwrap_err().message,
            "Error: Replication factor: 5 larger than available brokers: 4."
        );
    }

    #[test]
    fn broker_and_topic_lists_are_parsed_as_kafka_does() {
        assert_eq!(parse_broker_list("1,2,3").unwrap(), vec![1, 2, 3]);
        assert_eq!(
            parse_broker_list("1, 2").unwrap_err().message,
            "Error: For input string: \" 2\""
        );
        assert_eq!(
            parse_broker_list("1,1").unwrap_err().message,
            "Error: Broker list contains duplicate entries: [1]"
        );
        assert_eq!(
            parse_topics_to_move(r#"{"topics":[{"topic":"a"},{"topic":"b"}],"version":1}"#)
                .unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            parse_topics_to_move("nope").unwrap_err().message,
            "Error: The input string is not a valid JSON"
        );
    }
}
