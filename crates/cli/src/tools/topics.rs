//! `kafka-topics`: creates, lists, describes, alters (grows) and deletes topics with Kafka's
//! TopicCommand options, checks and output (`Created topic X.`, the tab-separated describe lines
//! with Kafka 4's `Elr`/`LastKnownElr`, and `Adding Replicas`/`Removing Replicas` for a partition
//! that is moving). `--topic` is a regular expression that must match a whole name, as in Kafka,
//! except with `--create`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use brook_client::admin::{ConfigResource, ConfigSource, NewTopic, OngoingReassignment};
use brook_client::admin_topics::{PartitionDescription, TopicDescription};
use brook_client::{Admin, ClientError};
use clap::Parser;

use super::common::{self, ToolError, ToolResult};

/// `println!` that ignores a closed stdout (`| head`), as Java's `System.out` does, instead of
/// panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(about = "This tool helps to create, delete, describe, or change a topic.")]
struct Args {
    /// REQUIRED: The Kafka server to connect to (host:port, comma-separated).
    #[arg(long, num_args = 1.., value_name = "SERVERS")]
    bootstrap_server: Vec<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
    /// List all available topics.
    #[arg(long)]
    list: bool,
    /// Create a new topic.
    #[arg(long)]
    create: bool,
    /// Delete a topic.
    #[arg(long)]
    delete: bool,
    /// Alter the number of partitions and replica assignment. (To alter topic configurations, the
    /// kafka-configs tool can be used.)
    #[arg(long)]
    alter: bool,
    /// List details for the given topics.
    #[arg(long)]
    describe: bool,
    /// The topic to create, alter, describe or delete. It also accepts a regular expression,
    /// except for --create option.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// The topic-id to describe.
    #[arg(long, value_name = "TOPIC_ID")]
    topic_id: Option<String>,
    /// A topic configuration override (name=value) for the topic being created; repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    config: Vec<String>,
    /// The number of partitions for the topic being created or altered. If not supplied with
    /// --create, the topic uses the cluster default.
    #[arg(long, value_name = "N")]
    partitions: Option<i32>,
    /// The replication factor for each partition in the topic being created. If not supplied,
    /// the topic uses the cluster default.
    #[arg(long, value_name = "N")]
    replication_factor: Option<i32>,
    /// Manual partition-to-broker assignments: "b1:b2,b3:b4,..." (one list per partition).
    #[arg(long, value_name = "ASSIGNMENT")]
    replica_assignment: Option<String>,
    /// If set when describing topics, only show under-replicated partitions.
    #[arg(long)]
    under_replicated_partitions: bool,
    /// If set when describing topics, only show partitions whose leader is not available.
    #[arg(long)]
    unavailable_partitions: bool,
    /// If set when describing topics, only show partitions whose isr count is less than the
    /// configured minimum.
    #[arg(long)]
    under_min_isr_partitions: bool,
    /// If set when describing topics, only show partitions whose isr count is equal to the
    /// configured minimum.
    #[arg(long)]
    at_min_isr_partitions: bool,
    /// If set when describing topics, only show topics that have overridden configs.
    #[arg(long)]
    topics_with_overrides: bool,
    /// If set when altering or deleting or describing topics, the action will only execute if the
    /// topic exists.
    #[arg(long)]
    if_exists: bool,
    /// If set when creating topics, the create request will not fail if the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
    /// Exclude internal topics when listing or describing topics. By default, the internal topics
    /// are included.
    #[arg(long)]
    exclude_internal: bool,
    /// The maximum number of partitions to be included in one DescribeTopicPartitions response
    /// (default 2000).
    #[arg(long, value_name = "N")]
    partition_size_limit_per_response: Option<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Create,
    List,
    Alter,
    Describe,
    Delete,
}

/// Runs `kafka-topics` with these arguments; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    if args.is_empty() {
        eprintln!(
            "Create, delete, describe, or change a topic.\nRun 'kafka-topics --help' for the list of options."
        );
        return 1;
    }
    let args: Args = common::parse_args("kafka-topics", args);
    common::run("kafka-topics", async move {
        let action = check_args(&args)?;
        execute(args, action).await
    })
}

fn option_conflict(used: &str, other: &str) -> ToolError {
    ToolError::new(format!(
        "Option \"[{used}]\" can't be used with option \"[{other}]\""
    ))
}

/// Kafka's argument checks (exactly one action, required and incompatible options), in
/// TopicCommand's order and with its messages.
fn check_args(a: &Args) -> Result<Action, ToolError> {
    let actions: Vec<Action> = [
        (a.create, Action::Create),
        (a.list, Action::List),
        (a.alter, Action::Alter),
        (a.describe, Action::Describe),
        (a.delete, Action::Delete),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, act)| act)
    .collect();
    if actions.len() != 1 {
        return Err(ToolError::new(
            "Command must include exactly one action: --list, --describe, --create, --alter or --delete",
        ));
    }
    let action = actions[0];
    if a.bootstrap_server.is_empty() {
        return Err(ToolError::new("--bootstrap-server must be specified"));
    }
    if action == Action::Describe && a.if_exists && a.topic.is_none() && a.topic_id.is_none() {
        return Err(ToolError::new(
            "--topic or --topic-id is required to describe a topic",
        ));
    }
    if !matches!(action, Action::List | Action::Describe) && a.topic.is_none() {
        return Err(ToolError::new("Missing required argument \"[topic]\""));
    }
    let name = |act: Action| match act {
        Action::Create => "create",
        Action::List => "list",
        Action::Alter => "alter",
        Action::Describe => "describe",
        Action::Delete => "delete",
    };
    if action == Action::Alter {
        if !a.config.is_empty() {
            return Err(ToolError::new(
                "Option \"[alter]\" can't be used with option \"[config]\" (To alter topic configurations, the kafka-configs tool can be used.)",
            ));
        }
        if a.partitions.is_none() {
            return Err(ToolError::new("Missing required argument \"[partitions]\""));
        }
    }
    // Each option with the actions it may be used with.
    let allowed: [(&str, bool, &[Action]); 13] = [
        (
            "config",
            !a.config.is_empty(),
            &[Action::Alter, Action::Create],
        ),
        (
            "partitions",
            a.partitions.is_some(),
            &[Action::Alter, Action::Create],
        ),
        (
            "replication-factor",
            a.replication_factor.is_some(),
            &[Action::Create],
        ),
        (
            "replica-assignment",
            a.replica_assignment.is_some(),
            &[Action::Alter, Action::Create],
        ),
        (
            "under-replicated-partitions",
            a.under_replicated_partitions,
            &[Action::Describe],
        ),
        (
            "under-min-isr-partitions",
            a.under_min_isr_partitions,
            &[Action::Describe],
        ),
        (
            "at-min-isr-partitions",
            a.at_min_isr_partitions,
            &[Action::Describe],
        ),
        (
            "unavailable-partitions",
            a.unavailable_partitions,
            &[Action::Describe],
        ),
        (
            "topics-with-overrides",
            a.topics_with_overrides,
            &[Action::Describe],
        ),
        (
            "if-exists",
            a.if_exists,
            &[Action::Alter, Action::Delete, Action::Describe],
        ),
        ("if-not-exists", a.if_not_exists, &[Action::Create]),
        (
            "exclude-internal",
            a.exclude_internal,
            &[Action::List, Action::Describe],
        ),
        ("topic-id", a.topic_id.is_some(), &[Action::Describe]),
    ];
    for (opt, used, ok) in allowed {
        if used && !ok.contains(&action) {
            return Err(option_conflict(opt, name(action)));
        }
    }
    if action == Action::Create && a.replica_assignment.is_some() {
        if a.partitions.is_some() {
            return Err(option_conflict("replica-assignment", "partitions"));
        }
        if a.replication_factor.is_some() {
            return Err(option_conflict("replica-assignment", "replication-factor"));
        }
    }
    let reports = [
        a.under_replicated_partitions,
        a.under_min_isr_partitions,
        a.at_min_isr_partitions,
        a.unavailable_partitions,
    ];
    if a.topics_with_overrides && reports.iter().any(|r| *r) {
        return Err(option_conflict(
            "topics-with-overrides",
            "under-replicated-partitions, under-min-isr-partitions, at-min-isr-partitions or unavailable-partitions",
        ));
    }
    Ok(action)
}

/// Kafka's `Topic.isInternal`, or what the broker's metadata says.
fn is_internal(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | "__share_group_state"
    )
}

/// Kafka's topic filter: the `--topic` value with commas read as alternation, spaces and
/// surrounding quotes removed, matched against whole names.
fn topic_filter(raw: &str) -> Result<regex::Regex, ToolError> {
    let cleaned: String = raw.trim().replace(',', "|").replace(' ', "");
    let cleaned = cleaned.trim_start_matches(['"', '\'']);
    let cleaned = cleaned.trim_end_matches(['"', '\'']);
    regex::Regex::new(&format!("^(?:{cleaned})$"))
        .map_err(|_| ToolError::new(format!("{cleaned} is an invalid regex.")))
}

/// The sorted topic names the options select (Kafka's `getTopics`).
fn select(
    all: &[String],
    topic: Option<&str>,
    exclude_internal: bool,
) -> Result<Vec<String>, ToolError> {
    let filter = topic.map(topic_filter).transpose()?;
    let mut out: Vec<String> = all
        .iter()
        .filter(|t| !(exclude_internal && is_internal(t)))
        .filter(|t| filter.as_ref().is_none_or(|f| f.is_match(t)))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// "Topic 'x' does not exist as expected" when a named topic matched nothing.
fn ensure_exists(found: &[String], topic: Option<&str>, required: bool) -> ToolResult {
    match topic {
        Some(t) if !t.is_empty() && required && found.is_empty() => Err(ToolError::new(format!(
            "Topic '{t}' does not exist as expected"
        ))),
        _ => Ok(()),
    }
}

/// The broker's own message for a refusal (what Kafka's exception carries), else the error.
fn broker_message(e: &ClientError) -> String {
    match e {
        ClientError::Kafka {
            message: Some(m), ..
        } if !m.is_empty() => m.clone(),
        ClientError::Kafka { error: Some(e), .. } => e.to_string(),
        other => other.to_string(),
    }
}

/// Kafka's wrapper for a failed admin call.
fn command_error(e: ClientError) -> ToolError {
    ToolError::new(format!(
        "Error while executing topic command : {}",
        broker_message(&e)
    ))
}

/// Kafka's `--replica-assignment` format: partitions separated by commas, brokers by colons.
fn parse_replica_assignment(text: &str) -> Result<Vec<Vec<i32>>, ToolError> {
    let mut out: Vec<Vec<i32>> = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let mut brokers = Vec::new();
        for b in part.split(':') {
            let b = b.trim();
            let id = b.parse::<i32>().map_err(|_| {
                ToolError::new(format!(
                    "Error while executing topic command : For input string: \"{b}\""
                ))
            })?;
            brokers.push(id);
        }
        let mut seen = BTreeSet::new();
        let dups: BTreeSet<i32> = brokers
            .iter()
            .filter(|b| !seen.insert(**b))
            .copied()
            .collect();
        if !dups.is_empty() {
            let list: Vec<String> = dups.iter().map(i32::to_string).collect();
            return Err(ToolError::new(format!(
                "Error while executing topic command : Partition replica lists may not contain duplicate entries: {}",
                list.join(",")
            )));
        }
        if let Some(first) = out.first() {
            if first.len() != brokers.len() {
                let list: Vec<String> = brokers.iter().map(i32::to_string).collect();
                return Err(ToolError::new(format!(
                    "Error while executing topic command : Partition {i} has different replication factor: [{}]",
                    list.join(", ")
                )));
            }
        }
        out.push(brokers);
    }
    Ok(out)
}

/// `--config` values: each exactly `key=value` (Kafka splits on `=` with spaces around it).
fn parse_configs(values: &[String]) -> Result<Vec<(String, String)>, ToolError> {
    let mut out = Vec::new();
    for v in values {
        let parts: Vec<&str> = v.split('=').map(str::trim).collect();
        // Java's split drops trailing empty strings, so "k=" is one part and refused too.
        if parts.len() != 2 || parts[1].is_empty() {
            return Err(ToolError::new(
                "requirement failed: Invalid topic config: all configs to be added must be in the format \"key=val\".",
            ));
        }
        out.push((parts[0].to_string(), parts[1].to_string()));
    }
    Ok(out)
}

/// Kafka's base64 (URL-safe, unpadded) form of a topic id, as its tools print it.
fn topic_id_string(bytes: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn execute(args: Args, action: Action) -> ToolResult {
    let client_config =
        common::admin_config(args.command_config.as_deref(), &args.bootstrap_server)?;
    let admin = Admin::new(client_config)?;
    match action {
        Action::Create => create(&admin, &args).await,
        Action::List => {
            let topics = all_topics(&admin, &args).await?;
            outln!("{}", topics.join("\n"));
            Ok(())
        }
        Action::Alter => alter(&admin, &args).await,
        Action::Describe => describe(&admin, &args).await,
        Action::Delete => {
            let topics = all_topics(&admin, &args).await?;
            ensure_exists(&topics, args.topic.as_deref(), !args.if_exists)?;
            if topics.is_empty() {
                return Ok(());
            }
            for (_, result) in admin.delete_topics(&topics).await.map_err(command_error)? {
                result.map_err(command_error)?;
            }
            Ok(())
        }
    }
}

/// The selected topic names (internal ones included unless `--exclude-internal`).
async fn all_topics(admin: &Admin, args: &Args) -> Result<Vec<String>, ToolError> {
    let all = admin.list_topics(true).await.map_err(command_error)?;
    select(&all, args.topic.as_deref(), args.exclude_internal)
}

async fn create(admin: &Admin, args: &Args) -> ToolResult {
    let name = args.topic.clone().unwrap_or_default();
    let configs = parse_configs(&args.config)?;
    if name.contains('.') || name.contains('_') {
        outln!(
            "WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both."
        );
    }
    if let Some(rf) = args.replication_factor {
        if !(1..=i32::from(i16::MAX)).contains(&rf) {
            return Err(ToolError::new(format!(
                "The replication factor must be between 1 and {} inclusive",
                i16::MAX
            )));
        }
    }
    if let Some(p) = args.partitions {
        if p < 1 {
            return Err(ToolError::new("The partitions must be greater than 0"));
        }
    }
    let result = match &args.replica_assignment {
        Some(text) if !text.is_empty() => {
            let assignment = parse_replica_assignment(text)?;
            admin
                .create_topic_with_assignment(&name, &assignment, &configs)
                .await
        }
        _ => {
            let mut topic = NewTopic::new(
                name.clone(),
                args.partitions.unwrap_or(-1),
                args.replication_factor.map(|r| r as i16).unwrap_or(-1),
            );
            for (k, v) in configs {
                topic = topic.config(k, v);
            }
            match admin.create_topics(&[topic], false).await {
                Ok(results) => results.into_iter().next().map(|(_, r)| r).unwrap_or(Ok(())),
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => {
            outln!("Created topic {name}.");
            Ok(())
        }
        // TOPIC_ALREADY_EXISTS
        Err(e) if e.code() == Some(36) && args.if_not_exists => Ok(()),
        Err(e) => Err(command_error(e)),
    }
}

async fn alter(admin: &Admin, args: &Args) -> ToolResult {
    let topics = all_topics(admin, args).await?;
    ensure_exists(&topics, args.topic.as_deref(), !args.if_exists)?;
    let count = args.partitions.unwrap_or_default();
    let assignment = match &args.replica_assignment {
        Some(text) if !text.is_empty() => Some(parse_replica_assignment(text)?),
        _ => None,
    };
    for topic in &topics {
        let result = match &assignment {
            Some(all) => {
                let described = admin
                    .describe_topic_partitions(std::slice::from_ref(topic), 2000)
                    .await
                    .map_err(command_error)?;
                let current = described.first().map_or(0, |d| d.partitions.len());
                let new: Vec<Vec<i32>> = all.iter().skip(current).cloned().collect();
                admin
                    .create_partitions_with_assignment(topic, count, &new)
                    .await
            }
            None => admin.create_partitions(topic, count, false).await,
        };
        if let Err(e) = result {
            // INVALID_PARTITIONS for a count that is not an increase: Kafka's wording first.
            if e.code() == Some(37) {
                let message = broker_message(&e);
                if message.contains("higher than the requested") || message.contains("already has")
                {
                    return Err(ToolError::new(format!(
                        "Error while executing topic command : The number of partitions for a topic can only be increased. {message}"
                    )));
                }
            }
            return Err(command_error(e));
        }
    }
    Ok(())
}

/// What a partition line needs beyond the partition: the topic's min.insync.replicas and the
/// live brokers.
struct PartitionView<'a> {
    topic: &'a str,
    p: &'a PartitionDescription,
    min_isr: usize,
    /// Its reassignment in progress, if any.
    moving: Option<&'a OngoingReassignment>,
}

/// Kafka's replication factor of a partition: while it moves, its replicas minus those being
/// added.
fn replication_factor(p: &PartitionDescription, moving: Option<&OngoingReassignment>) -> usize {
    moving.map_or(p.replicas.len(), |r| {
        r.replicas.len().saturating_sub(r.adding.len())
    })
}

impl PartitionView<'_> {
    fn under_replicated(&self) -> bool {
        replication_factor(self.p, self.moving) > self.p.isr.len()
    }
    fn has_leader(&self) -> bool {
        self.p.leader >= 0
    }
    fn under_min_isr(&self) -> bool {
        !self.has_leader() || self.p.isr.len() < self.min_isr
    }
    fn at_min_isr(&self) -> bool {
        self.p.isr.len() == self.min_isr
    }
    fn unavailable(&self, live: &BTreeSet<i32>) -> bool {
        !self.has_leader() || !live.contains(&self.p.leader)
    }
    fn line(&self) -> String {
        let list = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        let leader = if self.has_leader() {
            self.p.leader.to_string()
        } else {
            "none".to_string()
        };
        let elr = self.p.elr.as_deref().map_or("N/A".to_string(), list);
        let last = self
            .p
            .last_known_elr
            .as_deref()
            .map_or("N/A".to_string(), list);
        let moving = self.moving.map_or(String::new(), |r| {
            format!(
                "\tAdding Replicas: {}\tRemoving Replicas: {}",
                list(&r.adding),
                list(&r.removing)
            )
        });
        format!(
            "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}{moving}\tElr: {elr}\tLastKnownElr: {last}",
            self.topic,
            self.p.partition,
            list(&self.p.replicas),
            list(&self.p.isr)
        )
    }
}

async fn describe(admin: &Admin, args: &Args) -> ToolResult {
    let page_limit = args.partition_size_limit_per_response.unwrap_or(2000);
    let use_id = args
        .topic_id
        .as_deref()
        .filter(|id| *id != "AAAAAAAAAAAAAAAAAAAAAA");
    let descriptions: Vec<TopicDescription> = match use_id {
        Some(id) => {
            let all = admin.list_topics(true).await.map_err(command_error)?;
            let all = select(&all, None, args.exclude_internal)?;
            let found: Vec<TopicDescription> = if all.is_empty() {
                Vec::new()
            } else {
                admin
                    .describe_topic_partitions(&all, page_limit)
                    .await
                    .map_err(command_error)?
                    .into_iter()
                    .filter(|d| topic_id_string(d.topic_id.as_bytes()) == id)
                    .collect()
            };
            if found.is_empty() && !args.if_exists {
                return Err(ToolError::new(format!(
                    "TopicId '{id}' does not exist as expected"
                )));
            }
            found
        }
        None => {
            let names = all_topics(admin, args).await?;
            ensure_exists(&names, args.topic.as_deref(), !args.if_exists)?;
            if names.is_empty() {
                return Ok(());
            }
            admin
                .describe_topic_partitions(&names, page_limit)
                .await
                .map_err(command_error)?
        }
    };
    let live: BTreeSet<i32> = admin
        .describe_cluster()
        .await
        .map_err(command_error)?
        .brokers
        .iter()
        .map(|b| b.node_id)
        .collect();
    // Kafka's TopicCommand asks for reassignments in progress, and goes on without them when the
    // broker cannot say.
    let moving: BTreeMap<(String, i32), OngoingReassignment> = admin
        .list_partition_reassignments(None)
        .await
        .map(|all| {
            all.into_iter()
                .map(|r| ((r.topic.clone(), r.partition), r))
                .collect()
        })
        .unwrap_or_default();
    let reports = args.under_replicated_partitions
        || args.unavailable_partitions
        || args.under_min_isr_partitions
        || args.at_min_isr_partitions;
    let describe_configs = !reports;
    let describe_partitions = !args.topics_with_overrides;
    let mut sorted = descriptions;
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for td in &sorted {
        let configs = admin
            .describe_configs(&ConfigResource::Topic(td.name.clone()))
            .await
            .map_err(command_error)?;
        let min_isr = configs
            .iter()
            .find(|c| c.name == "min.insync.replicas")
            .and_then(|c| c.value.as_deref())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1);
        let overrides: Vec<String> = configs
            .iter()
            .filter(|c| c.source != ConfigSource::Default)
            .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
            .collect();
        if describe_configs && (!args.topics_with_overrides || !overrides.is_empty()) {
            let mut line = format!("Topic: {}", td.name);
            if !td.topic_id.is_nil() {
                line.push_str(&format!(
                    "\tTopicId: {}",
                    topic_id_string(td.topic_id.as_bytes())
                ));
            }
            let rf = td.partitions.first().map_or(0, |p| {
                replication_factor(p, moving.get(&(td.name.clone(), p.partition)))
            });
            line.push_str(&format!(
                "\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}",
                td.partitions.len(),
                overrides.join(",")
            ));
            outln!("{line}");
        }
        if !describe_partitions {
            continue;
        }
        for p in &td.partitions {
            let view = PartitionView {
                topic: &td.name,
                p,
                min_isr,
                moving: moving.get(&(td.name.clone(), p.partition)),
            };
            let show = describe_configs
                || (args.under_replicated_partitions && view.under_replicated())
                || (args.unavailable_partitions && view.unavailable(&live))
                || (args.under_min_isr_partitions && view.under_min_isr())
                || (args.at_min_isr_partitions && view.at_min_isr());
            if show {
                outln!("{}", view.line());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn topic_filters_match_whole_names_like_java() {
        let all = names(&["orders", "orders-eu", "payments", "__consumer_offsets"]);
        assert_eq!(
            select(&all, Some("orders"), false).unwrap(),
            names(&["orders"])
        );
        assert_eq!(
            select(&all, Some("orders.*"), false).unwrap(),
            names(&["orders", "orders-eu"])
        );
        assert_eq!(
            select(&all, Some("orders,payments"), false).unwrap(),
            names(&["orders", "payments"])
        );
        assert_eq!(select(&all, Some("__.*"), true).unwrap(), names(&[]));
        assert_eq!(select(&all, None, true).unwrap().len(), 3);
        assert!(select(&all, Some("("), false).is_err());
    }

    fn check(args: &[&str]) -> Result<Action, String> {
        let argv = std::iter::once("kafka-topics").chain(args.iter().copied());
        let a = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        check_args(&a).map_err(|e| e.message)
    }

    #[test]
    fn argument_checks_follow_topic_command() {
        let b = ["--bootstrap-server", "h:1"];
        let with = |more: &[&str]| check(&[&b[..], more].concat());
        assert_eq!(with(&["--list"]), Ok(Action::List));
        assert!(with(&["--list", "--delete"])
            .unwrap_err()
            .contains("exactly one action"));
        assert!(with(&["--topic", "t"])
            .unwrap_err()
            .contains("exactly one action"));
        assert_eq!(
            check(&["--list"]).unwrap_err(),
            "--bootstrap-server must be specified"
        );
        assert!(with(&["--create"]).unwrap_err().contains("[topic]"));
        assert!(with(&["--alter", "--topic", "t"])
            .unwrap_err()
            .contains("[partitions]"));
        assert!(with(&[
            "--alter",
            "--topic",
            "t",
            "--partitions",
            "2",
            "--config",
            "a=b"
        ])
        .unwrap_err()
        .contains("kafka-configs"));
        assert_eq!(
            with(&["--list", "--partitions", "2"]).unwrap_err(),
            "Option \"[partitions]\" can't be used with option \"[list]\""
        );
        assert!(with(&[
            "--create",
            "--topic",
            "t",
            "--replica-assignment",
            "1",
            "--partitions",
            "1"
        ])
        .unwrap_err()
        .contains("[replica-assignment]"));
        assert!(with(&["--describe", "--if-not-exists"]).is_err());
        assert!(with(&[
            "--describe",
            "--topics-with-overrides",
            "--under-replicated-partitions"
        ])
        .is_err());
        assert_eq!(
            with(&["--describe", "--under-replicated-partitions"]),
            Ok(Action::Describe)
        );
    }

    #[test]
    fn topic_ids_print_as_kafka_base64() {
        let id: [u8; 16] = [
            0x72, 0xca, 0x02, 0x7b, 0x81, 0x66, 0x4f, 0x5f, 0xaa, 0xfa, 0x3d, 0x09, 0x34, 0x79,
            0x55, 0x80,
        ];
        assert_eq!(topic_id_string(&id), "csoCe4FmT1-q-j0JNHlVgA");
        assert_eq!(topic_id_string(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn replica_assignments_and_configs_parse_as_kafka_does() {
        assert_eq!(
            parse_replica_assignment("1:2, 2:3").unwrap(),
            vec![vec![1, 2], vec![2, 3]]
        );
        assert!(parse_replica_assignment("1:1")
            .unwrap_err()
            .message
            .contains("duplicate entries: 1"));
        assert!(parse_replica_assignment("1:2,3")
            .unwrap_err()
            .message
            .contains("Partition 1 has different replication factor"));
        assert_eq!(
            parse_configs(&names(&["retention.ms = 172800000"])).unwrap(),
            vec![("retention.ms".to_string(), "172800000".to_string())]
        );
        for bad in ["a", "a=", "a=b=c"] {
            assert!(parse_configs(&names(&[bad])).is_err(), "{bad}");
        }
    }
}
