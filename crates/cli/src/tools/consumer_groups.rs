//! `kafka-consumer-groups`: lists consumer groups, describes them (offsets and lag, members,
//! state), resets their committed offsets, and deletes groups or their offsets, printing what
//! Kafka's ConsumerGroupCommand prints (same columns, widths, messages and exit codes).
//!
//! Like Kafka, a refusal the command reports about one group (a group that does not exist, a
//! reset of an active group, a failed deletion) is printed as `Error: ...` on stdout and the
//! command still exits 0; failures to talk to the cluster and bad arguments exit non-zero.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use brook_client::admin::OffsetSpec;
use brook_client::admin_groups::{GroupDescription, TopicPartition};
use brook_client::{Admin, ClientError};
use clap::Parser;

use super::common::{self, ToolError, ToolResult};

const TOOL: &str = "kafka-consumer-groups";
const MISSING: &str = "-";

#[derive(Parser)]
#[command(
    about = "This tool helps to list all consumer groups, describe a consumer group, delete \
             consumer group info, or reset consumer group offsets."
)]
struct Args {
    /// REQUIRED: The server(s) to connect to (host:port, comma-separated).
    #[arg(long, num_args = 1.., value_name = "SERVERS")]
    bootstrap_server: Vec<String>,
    /// List all consumer groups.
    #[arg(long)]
    list: bool,
    /// Describe consumer group and list offset lag (number of messages not yet processed)
    /// related to given group.
    #[arg(long)]
    describe: bool,
    /// Pass in groups to delete topic partition offsets and ownership information over the
    /// entire consumer group.
    #[arg(long)]
    delete: bool,
    /// Reset offsets of consumer group. Supports one consumer group at the time, and instances
    /// should be inactive. Has 2 execution options: --dry-run (the default) and --execute.
    #[arg(long)]
    reset_offsets: bool,
    /// Delete offsets of consumer group. Supports one consumer group at the time, and multiple
    /// topics.
    #[arg(long)]
    delete_offsets: bool,
    /// The consumer group we wish to act on.
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// Apply to all consumer groups.
    #[arg(long)]
    all_groups: bool,
    /// The topic whose consumer group information should be deleted or included in the reset
    /// offset process (`topic:0,1,2` for specific partitions).
    #[arg(long, value_name = "TOPIC")]
    topic: Vec<String>,
    /// Consider all topics assigned to a group in the reset-offsets process.
    #[arg(long)]
    all_topics: bool,
    /// Describe members of the group.
    #[arg(long)]
    members: bool,
    /// Describe the group and list all topic partitions in the group along with their offset
    /// lag. This is the default sub-action.
    #[arg(long)]
    offsets: bool,
    /// When used with --describe, includes the state of the group. When used with --list, with
    /// an optional comma-separated state list, lists the groups in those states.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "STATE")]
    state: Option<String>,
    /// Provide additional information, if any, when describing the group.
    #[arg(long)]
    verbose: bool,
    /// Only show results without executing changes on consumer groups (the default).
    #[arg(long)]
    dry_run: bool,
    /// Execute operation.
    #[arg(long)]
    execute: bool,
    /// Export operation execution to a CSV file (printed on stdout).
    #[arg(long)]
    export: bool,
    /// Reset offsets to earliest offset.
    #[arg(long)]
    to_earliest: bool,
    /// Reset offsets to latest offset.
    #[arg(long)]
    to_latest: bool,
    /// Reset offsets to current offset.
    #[arg(long)]
    to_current: bool,
    /// Reset offsets to a specific offset.
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    to_offset: Option<i64>,
    /// Reset offsets shifting current offset by 'n', where 'n' can be positive or negative.
    #[arg(long, value_name = "NUMBER-OF-OFFSETS", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Reset offsets to offset from datetime. Format: 'YYYY-MM-DDTHH:mm:SS.sss'
    /// (optionally followed by Z or a zone offset such as +01:00).
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
    /// Reset offsets to offset by duration from current timestamp. Format: 'PnDTnHnMnS'.
    #[arg(long, value_name = "DURATION")]
    by_duration: Option<String>,
    /// The timeout in milliseconds for some use cases, e.g. describing a group or waiting for a
    /// broker.
    #[arg(long, value_name = "TIMEOUT (MS)", default_value_t = 5000)]
    timeout: u64,
    /// Property file containing configs to be passed to the admin client.
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
}

/// Runs `kafka-consumer-groups`; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let args: Args = common::parse_args(TOOL, args);
    common::run(TOOL, execute(args))
}

/// Kafka's usage error: the message, then the hint to `--help`, exit code 1.
fn usage(message: impl Into<String>) -> ToolError {
    ToolError::new(format!(
        "{}\nRun '{TOOL} --help' for the list of options.",
        message.into()
    ))
}

/// Kafka's `Error: ...` line for a refusal about one group (stdout, as Kafka prints it).
fn print_error(message: &str) {
    println!("\nError: {message}");
}

/// The failure of the whole command, as Kafka words it.
fn failed(e: impl std::fmt::Display) -> ToolError {
    ToolError::new(format!(
        "Error: Executing consumer group command failed due to {e}"
    ))
}

/// A broker error as Kafka's Java exception prints it (`org.apache...XException: message`).
fn java_error(e: &ClientError) -> String {
    let known = match e.code() {
        Some(3) => Some((
            "UnknownTopicOrPartitionException",
            "This server does not host this topic-partition.",
        )),
        Some(15) => Some((
            "CoordinatorNotAvailableException",
            "The coordinator is not available.",
        )),
        Some(16) => Some((
            "NotCoordinatorException",
            "This is not the correct coordinator.",
        )),
        Some(24) => Some((
            "InvalidGroupIdException",
            "The configured groupId is invalid.",
        )),
        Some(25) => Some((
            "UnknownMemberIdException",
            "The coordinator is not aware of this member.",
        )),
        Some(30) => Some(("GroupAuthorizationException", "Group authorization failed.")),
        Some(68) => Some(("GroupNotEmptyException", "The group is not empty.")),
        Some(69) => Some(("GroupIdNotFoundException", "The group id does not exist.")),
        Some(86) => Some((
            "GroupSubscribedToTopicException",
            "Deleting offsets of a topic is forbidden while the consumer group is actively \
             subscribed to it.",
        )),
        _ => None,
    };
    match known {
        Some((class, message)) => format!("org.apache.kafka.common.errors.{class}: {message}"),
        None => e.to_string(),
    }
}

/// Left-aligns `value` in `width` columns (Java's `%-Ns`: never truncates).
fn pad(value: &str, width: usize) -> String {
    format!("{value:<width$}")
}

async fn execute(args: Args) -> ToolResult {
    let actions = [
        args.list,
        args.describe,
        args.delete,
        args.reset_offsets,
        args.delete_offsets,
    ]
    .iter()
    .filter(|a| **a)
    .count();
    if actions != 1 {
        return Err(usage(
            "Command must include exactly one action: --list, --describe, --delete, \
             --reset-offsets, --delete-offsets",
        ));
    }
    if args.bootstrap_server.is_empty() {
        return Err(usage("Missing required argument \"[bootstrap-server]\""));
    }
    check_options(&args)?;
    let client_config =
        common::admin_config(args.command_config.as_deref(), &args.bootstrap_server)?;
    let mut config = client_config;
    // --timeout bounds every request (and so the connection to an unreachable server).
    let timeout = Duration::from_millis(args.timeout.max(1));
    config.request_timeout = config.request_timeout.min(timeout);
    let admin = Admin::new(config)?;
    // The whole command gets a generous bound on top, so nothing can hang.
    let overall = timeout * 6 + Duration::from_secs(5);
    let body = async {
        if args.list {
            list(&admin, &args).await
        } else if args.describe {
            describe(&admin, &args).await
        } else if args.delete {
            delete(&admin, &args).await
        } else if args.reset_offsets {
            reset_offsets(&admin, &args).await
        } else {
            delete_offsets(&admin, &args).await
        }
    };
    match tokio::time::timeout(overall, body).await {
        Ok(r) => r,
        Err(_) => Err(failed(format!(
            "the operation did not finish within {} ms",
            overall.as_millis()
        ))),
    }
}

/// Kafka's checks of which options go with which action.
fn check_options(a: &Args) -> ToolResult {
    let groups_given = !a.group.is_empty() || a.all_groups;
    let scope = "[all-groups], [group]";
    if a.describe {
        if !groups_given {
            return Err(usage(format!(
                "Option [describe] takes one of these options: {scope}"
            )));
        }
        let views = [a.members, a.offsets, a.state.is_some()];
        if views.iter().filter(|x| **x).count() > 1 {
            return Err(usage(
                "Option [describe] takes at most one of these options: [members], [offsets], \
                 [state]",
            ));
        }
        if a.state.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(usage("Option [describe] does not take a value for [state]"));
        }
    }
    if a.delete {
        if !groups_given {
            return Err(usage(format!(
                "Option [delete] takes one of these options: {scope}"
            )));
        }
        if !a.topic.is_empty() {
            return Err(usage(
                "The consumer does not support topic-specific offset deletion from a consumer \
                 group.",
            ));
        }
    }
    if a.delete_offsets && (a.group.is_empty() || a.topic.is_empty()) {
        return Err(usage(
            "Option [delete-offsets] takes the following options: [topic], [group]",
        ));
    }
    if a.delete_offsets && a.group.len() > 1 {
        return Err(usage(
            "Option [delete-offsets] supports one consumer group at a time",
        ));
    }
    let scenarios = [
        ("to-offset", a.to_offset.is_some()),
        ("to-datetime", a.to_datetime.is_some()),
        ("by-duration", a.by_duration.is_some()),
        ("to-earliest", a.to_earliest),
        ("to-latest", a.to_latest),
        ("to-current", a.to_current),
        ("shift-by", a.shift_by.is_some()),
    ];
    let used: Vec<&str> = scenarios
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
    if a.reset_offsets {
        if a.dry_run && a.execute {
            return Err(usage(
                "Option [reset-offsets] only accepts one of [execute] and [dry-run]",
            ));
        }
        if !a.dry_run && !a.execute {
            eprintln!(
                "WARN: No action will be performed as the --execute option is missing. In a \
                 future major release, the default behavior of this command will be to prompt \
                 the user before executing the reset rather than doing a dry run. You should add \
                 the --dry-run option explicitly if you are scripting this command and want to \
                 keep the current default behavior without prompting."
            );
        }
        if !groups_given {
            return Err(usage(format!(
                "Option [reset-offsets] takes one of these options: {scope}"
            )));
        }
        if used.len() > 1 {
            return Err(usage(format!(
                "Option \"[{}]\" can't be used with option \"[{}]\"",
                used[0], used[1]
            )));
        }
        if used.is_empty() {
            let all: Vec<String> = scenarios.iter().map(|(n, _)| format!("[{n}]")).collect();
            return Err(usage(format!(
                "Option '[reset-offsets]' requires one of the following scenarios: [{}]",
                all.join(", ")
            )));
        }
        if a.all_topics && !a.topic.is_empty() {
            return Err(usage(
                "Option \"[all-topics]\" can't be used with option \"[topic]\"",
            ));
        }
        if !a.all_topics && a.topic.is_empty() {
            return Err(usage(
                "One of the reset scopes should be defined: --all-topics, --topic.",
            ));
        }
    } else {
        let reset_only = [
            ("dry-run", a.dry_run),
            ("execute", a.execute),
            ("export", a.export),
            ("all-topics", a.all_topics),
        ];
        if let Some(name) = used
            .first()
            .copied()
            .or_else(|| reset_only.iter().find(|(_, on)| *on).map(|(n, _)| *n))
        {
            return Err(usage(format!(
                "Option [{name}] takes one of these options: [reset-offsets]"
            )));
        }
    }
    if a.all_groups && !a.group.is_empty() {
        return Err(usage(
            "Option \"[group]\" can't be used with option \"[all-groups]\"",
        ));
    }
    if !a.group.is_empty() && a.list {
        return Err(usage(
            "Option \"[group]\" can't be used with option \"[list]\"",
        ));
    }
    if !a.describe && (a.members || a.offsets || a.verbose) {
        let name = if a.members {
            "members"
        } else if a.offsets {
            "offsets"
        } else {
            "verbose"
        };
        return Err(usage(format!(
            "Option [{name}] takes one of these options: [describe]"
        )));
    }
    if a.state.is_some() && !(a.describe || a.list) {
        return Err(usage(
            "Option [state] takes one of these options: [describe], [list]",
        ));
    }
    let topic_allowed = a.reset_offsets || a.delete_offsets;
    if !a.topic.is_empty() && !topic_allowed {
        let action = if a.list { "list" } else { "describe" };
        return Err(usage(format!(
            "Option \"[topic]\" can't be used with option \"[{action}]\""
        )));
    }
    Ok(())
}

/// Kafka's consumer groups: classic groups of protocol type "consumer", and groups that only
/// hold offsets (empty protocol type).
async fn consumer_groups(
    admin: &Admin,
    states: &[String],
) -> Result<Vec<brook_client::admin_groups::GroupListing>, ToolError> {
    let mut groups = admin.list_groups(states).await.map_err(failed)?;
    groups.retain(|g| g.protocol_type.is_empty() || g.protocol_type == "consumer");
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(groups)
}

/// The valid `--state` names, in Kafka's spelling.
const STATES: &[&str] = &[
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
];

async fn list(admin: &Admin, args: &Args) -> ToolResult {
    let Some(state) = &args.state else {
        for g in consumer_groups(admin, &[]).await? {
            println!("{}", g.group_id);
        }
        return Ok(());
    };
    let mut states = Vec::new();
    for s in state.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match STATES.iter().find(|k| k.eq_ignore_ascii_case(s)) {
            Some(k) => states.push(k.to_string()),
            None => {
                return Err(usage(format!(
                    "Invalid state list '{state}'. Valid states are: {}",
                    STATES.join(", ")
                )))
            }
        }
    }
    let groups = consumer_groups(admin, &states).await?;
    let width = groups
        .iter()
        .map(|g| g.group_id.len().max(15))
        .max()
        .unwrap_or(15)
        + 10;
    println!("{} {}", pad("GROUP", width), pad("STATE", 20));
    for g in groups {
        let state = if g.state.is_empty() {
            "Unknown"
        } else {
            &g.state
        };
        println!("{} {}", pad(&g.group_id, width), pad(state, 20));
    }
    Ok(())
}

/// The groups an action is about: `--group`s (sorted, as Kafka's TreeMap prints them) or every
/// consumer group.
async fn target_groups(admin: &Admin, args: &Args) -> Result<Vec<String>, ToolError> {
    let mut groups: Vec<String> = if args.all_groups {
        consumer_groups(admin, &[])
            .await?
            .into_iter()
            .map(|g| g.group_id)
            .collect()
    } else {
        args.group.clone()
    };
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// Kafka's check before printing a group: says so when the group does not exist, is empty or
/// is rebalancing; true when there are rows to print.
fn should_print(group: &GroupDescription, rows: usize) -> bool {
    match group.state.as_str() {
        "Dead" => {
            print_error(&format!(
                "Consumer group '{}' does not exist.",
                group.group_id
            ));
            return false;
        }
        "Empty" => eprintln!(
            "\nConsumer group '{}' has no active members.",
            group.group_id
        ),
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            eprintln!(
                "\nWarning: Consumer group '{}' is rebalancing.",
                group.group_id
            )
        }
        _ => {}
    }
    rows > 0
}

async fn describe(admin: &Admin, args: &Args) -> ToolResult {
    let groups = target_groups(admin, args).await?;
    let described = admin.describe_groups(&groups).await.map_err(failed)?;
    if args.members {
        for g in &described {
            print_members(g, args.verbose);
        }
    } else if args.state.is_some() {
        for g in &described {
            print_state(g, args.verbose);
        }
    } else {
        for g in &described {
            print_offsets(admin, g, args.verbose).await?;
        }
    }
    Ok(())
}

/// One row of the offsets view.
struct OffsetRow {
    topic: String,
    partition: i32,
    leader_epoch: Option<i32>,
    offset: Option<i64>,
    log_end: Option<i64>,
    consumer_id: String,
    host: String,
    client_id: String,
}

async fn print_offsets(admin: &Admin, g: &GroupDescription, verbose: bool) -> ToolResult {
    if g.is_dead() {
        should_print(g, 0);
        return Ok(());
    }
    let committed = admin
        .list_group_offsets_detailed(&g.group_id, None)
        .await
        .map_err(failed)?;
    // Members with partitions, the busiest first; then committed partitions nobody owns.
    let mut members: Vec<_> = g
        .members
        .iter()
        .filter(|m| !m.assignment.is_empty())
        .collect();
    members.sort_by_key(|m| std::cmp::Reverse(m.assignment.len()));
    let mut owned: Vec<(TopicPartition, String, String, String)> = Vec::new();
    for m in &members {
        for tp in &m.assignment {
            owned.push((
                tp.clone(),
                m.member_id.clone(),
                m.host.clone(),
                m.client_id.clone(),
            ));
        }
    }
    for tp in committed.keys() {
        if !owned.iter().any(|(o, ..)| o == tp) {
            owned.push((tp.clone(), MISSING.into(), MISSING.into(), MISSING.into()));
        }
    }
    let partitions: Vec<TopicPartition> = owned.iter().map(|(tp, ..)| tp.clone()).collect();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        admin
            .list_offsets(&partitions, OffsetSpec::Latest)
            .await
            .map_err(failed)?
    };
    // `owned` is already in print order (members busiest first, then unowned partitions);
    // Kafka sorts each member's rows by topic and partition.
    let mut ordered: Vec<OffsetRow> = Vec::new();
    let mut start = 0;
    while start < owned.len() {
        let id = owned[start].1.clone();
        let end = start + owned[start..].iter().take_while(|o| o.1 == id).count();
        let mut chunk: Vec<_> = owned[start..end].to_vec();
        chunk.sort_by(|a, b| a.0.cmp(&b.0));
        for (tp, consumer_id, host, client_id) in chunk {
            let c = committed.get(&tp);
            ordered.push(OffsetRow {
                leader_epoch: c.and_then(|c| c.leader_epoch),
                offset: c.map(|c| c.offset),
                log_end: ends
                    .get(&tp)
                    .and_then(|r| r.as_ref().ok())
                    .map(|o| o.offset),
                topic: tp.0,
                partition: tp.1,
                consumer_id,
                host,
                client_id,
            });
        }
        start = end;
    }
    if !should_print(g, ordered.len()) {
        return Ok(());
    }
    let group_w = g.group_id.len().max(15);
    let topic_w = ordered
        .iter()
        .map(|r| r.topic.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let consumer_w = ordered
        .iter()
        .map(|r| r.consumer_id.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let host_w = ordered
        .iter()
        .map(|r| r.host.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let line = |cols: [&str; 10]| {
        let mut s = format!(
            "{} {} {}",
            pad(cols[0], group_w),
            pad(cols[1], topic_w),
            pad(cols[2], 10)
        );
        if verbose {
            s.push_str(&format!(" {}", pad(cols[3], 15)));
        }
        s.push_str(&format!(
            " {} {} {} {} {} {}",
            pad(cols[4], 15),
            pad(cols[5], 15),
            pad(cols[6], 15),
            pad(cols[7], consumer_w),
            pad(cols[8], host_w),
            cols[9]
        ));
        s
    };
    let mut out = String::from("\n");
    out.push_str(&line([
        "GROUP",
        "TOPIC",
        "PARTITION",
        "LEADER-EPOCH",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]));
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| MISSING.into());
    for r in &ordered {
        let lag = match (r.offset, r.log_end) {
            (Some(o), Some(e)) if o != -1 => Some(e - o),
            _ => None,
        };
        let partition = r.partition.to_string();
        let epoch = opt(r.leader_epoch.map(i64::from));
        let offset = opt(r.offset);
        let end = opt(r.log_end);
        let lag = opt(lag);
        out.push('\n');
        out.push_str(&line([
            &g.group_id,
            &r.topic,
            &partition,
            &epoch,
            &offset,
            &end,
            &lag,
            &r.consumer_id,
            &r.host,
            &r.client_id,
        ]));
    }
    println!("{out}");
    Ok(())
}

/// `topic:0,1;other:2`, topics sorted, partitions sorted (Kafka's assignment column).
fn assignment_string(assignment: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in assignment {
        by_topic.entry(t).or_default().push(*p);
    }
    by_topic
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort();
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}:{}", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn print_members(g: &GroupDescription, verbose: bool) {
    if g.is_dead() {
        should_print(g, 0);
        return;
    }
    let mut group_w = 15;
    let mut consumer_w = 15;
    let mut instance_w = 17;
    let mut host_w = 15;
    let mut client_w = 15;
    let mut current_w = 20;
    let mut target_w = 20;
    let mut with_instance = false;
    if should_print(g, g.members.len()) {
        for m in &g.members {
            group_w = group_w.max(g.group_id.len());
            consumer_w = consumer_w.max(m.member_id.len());
            let instance = m.group_instance_id.as_deref().unwrap_or("");
            instance_w = instance_w.max(instance.len());
            with_instance |= !instance.is_empty();
            host_w = host_w.max(m.host.len());
            client_w = client_w.max(m.client_id.len());
            let a = if m.assignment.is_empty() {
                MISSING.to_string()
            } else {
                assignment_string(&m.assignment)
            };
            current_w = current_w.max(a.len());
            if let Some(target) = m.target_assignment.as_ref().filter(|t| !t.is_empty()) {
                target_w = target_w.max(assignment_string(target).len());
            }
        }
    }
    let line = |group: &str, consumer: &str, instance: &str, host: &str, client: &str, n: &str| {
        let mut s = format!("{} {} ", pad(group, group_w), pad(consumer, consumer_w));
        if with_instance {
            s.push_str(&format!("{} ", pad(instance, instance_w)));
        }
        s.push_str(&format!(
            "{} {} {} ",
            pad(host, host_w),
            pad(client, client_w),
            pad(n, 15)
        ));
        s
    };
    let extra = |a: &str, b: &str, c: &str, d: &str| {
        format!(
            "{} {} {} {}",
            pad(a, 15),
            pad(b, current_w),
            pad(c, 15),
            pad(d, target_w)
        )
    };
    let mut header = line(
        "GROUP",
        "CONSUMER-ID",
        "GROUP-INSTANCE-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
    );
    if verbose {
        header.push_str(&extra(
            "CURRENT-EPOCH",
            "CURRENT-ASSIGNMENT",
            "TARGET-EPOCH",
            "TARGET-ASSIGNMENT",
        ));
    }
    println!("\n{header}");
    for m in &g.members {
        let mut row = line(
            &g.group_id,
            &m.member_id,
            m.group_instance_id.as_deref().unwrap_or(""),
            &m.host,
            &m.client_id,
            &m.assignment.len().to_string(),
        );
        if verbose {
            let a = if m.assignment.is_empty() {
                MISSING.to_string()
            } else {
                assignment_string(&m.assignment)
            };
            // Classic groups have no member epochs or target assignments.
            let epoch = m.member_epoch.map(|e| e.to_string());
            let target_epoch = g.target_assignment_epoch.map(|e| e.to_string());
            let target = match &m.target_assignment {
                Some(t) if !t.is_empty() => assignment_string(t),
                _ => MISSING.to_string(),
            };
            row.push_str(&extra(
                epoch.as_deref().unwrap_or(MISSING),
                &a,
                target_epoch.as_deref().unwrap_or(MISSING),
                &target,
            ));
        }
        println!("{row}");
    }
}

fn print_state(g: &GroupDescription, verbose: bool) {
    if !should_print(g, 1) {
        return;
    }
    let c = &g.coordinator;
    let coordinator = format!("{}:{}  ({})", c.host, c.port, c.node_id);
    let coordinator_w = coordinator.len().max(25);
    let group_w = g.group_id.len().max(15);
    let strategy = if g.assignor.is_empty() {
        MISSING
    } else {
        &g.assignor
    };
    let line = |cols: [&str; 7]| {
        let mut s = format!(
            "{} {} {} {}",
            pad(cols[0], group_w),
            pad(cols[1], coordinator_w),
            pad(cols[2], 20),
            pad(cols[3], 20)
        );
        if verbose {
            s.push_str(&format!(" {} {}", pad(cols[4], 15), pad(cols[5], 25)));
        }
        s.push_str(&format!(" {}", cols[6]));
        s
    };
    let members = g.members.len().to_string();
    let epoch = |e: Option<i32>| e.map(|e| e.to_string()).unwrap_or_else(|| MISSING.into());
    let (group_epoch, target_epoch) = (epoch(g.group_epoch), epoch(g.target_assignment_epoch));
    println!(
        "\n{}\n{}",
        line([
            "GROUP",
            "COORDINATOR (ID)",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "GROUP-EPOCH",
            "TARGET-ASSIGNMENT-EPOCH",
            "#MEMBERS",
        ]),
        line([
            &g.group_id,
            &coordinator,
            strategy,
            &g.state,
            &group_epoch,
            &target_epoch,
            &members,
        ])
    );
}

async fn delete(admin: &Admin, args: &Args) -> ToolResult {
    let groups = target_groups(admin, args).await?;
    let results = admin.delete_groups(&groups).await.map_err(failed)?;
    let quoted = |names: Vec<&String>| {
        names
            .iter()
            .map(|g| format!("'{g}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ok: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(g, _)| g)
        .collect();
    let failures: Vec<(&String, &ClientError)> = results
        .iter()
        .filter_map(|(g, r)| r.as_ref().err().map(|e| (g, e)))
        .collect();
    if failures.is_empty() {
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            quoted(ok)
        );
    } else {
        print_error("Deletion of some consumer groups failed:");
        for (g, e) in &failures {
            println!(
                "* Group '{g}' could not be deleted due to: {}",
                java_error(e)
            );
        }
        if !ok.is_empty() {
            println!(
                "\nThese consumer groups were deleted successfully: {}",
                quoted(ok)
            );
        }
    }
    Ok(())
}

async fn delete_offsets(admin: &Admin, args: &Args) -> ToolResult {
    let group = &args.group[0];
    let mut results: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
    let mut partitions: Vec<TopicPartition> = Vec::new();
    let mut whole = Vec::new();
    for arg in &args.topic {
        if arg.contains(':') {
            partitions.extend(parse_topic_partitions(admin, std::slice::from_ref(arg)).await?);
        } else {
            whole.push(arg.clone());
        }
    }
    for topic in whole {
        match admin.describe_topics(std::slice::from_ref(&topic)).await {
            Ok(ts) => {
                for t in ts {
                    partitions.extend(t.partitions.iter().map(|p| (t.name.clone(), p.partition)));
                }
            }
            Err(e) if e.code().is_some() => {
                let e = ClientError::kafka(e.code().unwrap_or(-1), None);
                results.insert((topic, MISSING.into()), Some(java_error(&e)));
            }
            Err(e) => return Err(failed(e)),
        }
    }
    partitions.sort();
    partitions.dedup();
    let mut top: Option<ClientError> = None;
    if !partitions.is_empty() {
        match admin.delete_group_offsets(group, &partitions).await {
            Ok(per_partition) => {
                for ((t, p), r) in per_partition {
                    if let Err(e) = &r {
                        if top.is_none() {
                            top = Some(ClientError::kafka(e.code().unwrap_or(-1), None));
                        }
                    }
                    results.insert((t, p.to_string()), r.err().map(|e| java_error(&e)));
                }
            }
            Err(e) if e.code().is_some() => {
                for (t, p) in &partitions {
                    results.insert((t.clone(), p.to_string()), Some(java_error(&e)));
                }
                top = Some(e);
            }
            Err(e) => return Err(failed(e)),
        }
    }
    match top.as_ref().and_then(ClientError::code) {
        None => println!("Request succeeded for deleting offsets from group {group}."),
        Some(24) => print_error("The configured groupId is invalid."),
        Some(69) => print_error("The group id does not exist."),
        Some(30) => print_error("Group authorization failed."),
        Some(68) => print_error("The group is not empty."),
        Some(86 | 29 | 3) => {
            print_error("Encountered some partition-level error, see the follow-up details.")
        }
        Some(code) => print_error(&format!(
            "Encountered some unknown error: {}",
            top.as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| code.to_string())
        )),
    }
    let topic_w = results
        .keys()
        .map(|(t, _)| t.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let line =
        |t: &str, p: &str, s: &str| format!("{} {} {}", pad(t, topic_w), pad(p, 10), pad(s, 15));
    let mut out = String::from("\n");
    out.push_str(&line("TOPIC", "PARTITION", "STATUS"));
    // Kafka orders the rows by topic name followed by the partition number, as a string.
    let mut rows: Vec<_> = results.into_iter().collect();
    rows.sort_by(|a, b| format!("{}{}", a.0 .0, a.0 .1).cmp(&format!("{}{}", b.0 .0, b.0 .1)));
    for ((t, p), e) in rows {
        let status = match e {
            None => "Successful".to_string(),
            Some(e) => format!("Error: {e}"),
        };
        out.push('\n');
        out.push_str(&line(&t, &p, &status));
    }
    println!("{out}");
    Ok(())
}

/// `topic:0,1` or `topic` (every partition) as Kafka's `--topic` takes them.
async fn parse_topic_partitions(
    admin: &Admin,
    topics: &[String],
) -> Result<Vec<TopicPartition>, ToolError> {
    let mut out = Vec::new();
    let mut whole = Vec::new();
    for arg in topics {
        if arg.contains(':') {
            let parts: Vec<&str> = arg.split(':').collect();
            if parts.len() != 2 {
                return Err(usage(format!(
                    "Invalid topic arg '{arg}', expected topic name and partitions"
                )));
            }
            for p in parts[1].split(',') {
                let p: i32 = p.trim().parse().map_err(|_| {
                    usage(format!(
                        "Invalid partition '{p}' specified in topic arg '{arg}''"
                    ))
                })?;
                out.push((parts[0].to_string(), p));
            }
        } else {
            whole.push(arg.clone());
        }
    }
    if !whole.is_empty() {
        let described = admin.describe_topics(&whole).await.map_err(|e| {
            if e.code() == Some(3) {
                failed(format!(
                    "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: {}",
                    match &e {
                        ClientError::Kafka {
                            message: Some(m), ..
                        } => m.clone(),
                        _ => "This server does not host this topic-partition.".into(),
                    }
                ))
            } else {
                failed(e)
            }
        })?;
        for t in described {
            for p in &t.partitions {
                out.push((t.name.clone(), p.partition));
            }
        }
    }
    Ok(out)
}

async fn reset_offsets(admin: &Admin, args: &Args) -> ToolResult {
    let groups = target_groups(admin, args).await?;
    let described = admin.describe_groups(&groups).await.map_err(failed)?;
    let mut plans: BTreeMap<String, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
    for g in &described {
        match g.state.as_str() {
            "Empty" | "Dead" => {}
            state => {
                print_error(&format!(
                    "Assignments can only be reset if the group '{}' is inactive, but the \
                     current state is {state}.",
                    g.group_id
                ));
                plans.insert(g.group_id.clone(), BTreeMap::new());
                continue;
            }
        }
        let committed = admin
            .list_group_offsets(&g.group_id, None)
            .await
            .map_err(failed)?;
        let partitions: Vec<TopicPartition> = if args.all_topics {
            committed.keys().cloned().collect()
        } else {
            parse_topic_partitions(admin, &args.topic).await?
        };
        check_partitions_exist(admin, &partitions).await?;
        let plan = prepare(admin, args, &partitions, &committed).await?;
        let dry_run = args.dry_run || !args.execute;
        if !dry_run {
            let results = admin
                .alter_group_offsets(&g.group_id, &plan)
                .await
                .map_err(failed)?;
            if let Some(((t, p), Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
                return Err(failed(format!("{} (partition {t}-{p})", java_error(e))));
            }
        }
        plans.insert(g.group_id.clone(), plan);
    }
    if args.export {
        let single = args.group.len() == 1;
        let mut out = String::new();
        for (g, plan) in &plans {
            for ((t, p), o) in plan {
                if single {
                    out.push_str(&format!("{t},{p},{o}\n"));
                } else {
                    out.push_str(&format!("{g},{t},{p},{o}\n"));
                }
            }
        }
        println!("{out}");
        return Ok(());
    }
    let group_w = plans.keys().map(String::len).max().unwrap_or(0).max(15);
    let topic_w = plans
        .values()
        .flat_map(|p| p.keys())
        .map(|(t, _)| t.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let line = |g: &str, t: &str, p: &str, o: &str| {
        format!("{} {} {} {o}", pad(g, group_w), pad(t, topic_w), pad(p, 10))
    };
    let mut out = String::new();
    if !plans.is_empty() {
        out.push('\n');
        out.push_str(&line("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"));
    }
    for (g, plan) in &plans {
        for ((t, p), o) in plan {
            out.push('\n');
            out.push_str(&line(g, t, &p.to_string(), &o.to_string()));
        }
    }
    println!("{out}");
    Ok(())
}

/// Kafka refuses a reset that names partitions the cluster does not have.
async fn check_partitions_exist(admin: &Admin, partitions: &[TopicPartition]) -> ToolResult {
    let mut topics: Vec<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
    topics.sort();
    topics.dedup();
    if topics.is_empty() {
        return Ok(());
    }
    let md = admin
        .cluster()
        .refresh(Some(&topics))
        .await
        .map_err(failed)?;
    let missing: Vec<String> = partitions
        .iter()
        .filter(|(t, p)| {
            !md.topics.get(t).is_some_and(|ti| {
                ti.error_code == 0 && ti.partitions.iter().any(|x| x.partition == *p)
            })
        })
        .map(|(t, p)| format!("{t}-{p}"))
        .collect();
    if !missing.is_empty() {
        return Err(failed(format!(
            "The partitions \"{}\" do not exist",
            missing.join(",")
        )));
    }
    Ok(())
}

/// One ListOffsets answer per partition, or the error Kafka gives when one is missing.
async fn offsets_for(
    admin: &Admin,
    partitions: &[TopicPartition],
    spec: OffsetSpec,
    what: &str,
) -> Result<BTreeMap<TopicPartition, i64>, ToolError> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let listed = admin.list_offsets(partitions, spec).await.map_err(failed)?;
    let mut out = BTreeMap::new();
    for tp in partitions {
        match listed.get(tp) {
            Some(Ok(o)) => {
                out.insert(tp.clone(), o.offset);
            }
            _ => {
                return Err(usage(format!(
                    "Error getting {what} of topic partition: {}-{}",
                    tp.0, tp.1
                )))
            }
        }
    }
    Ok(out)
}

/// Clamps requested offsets into [log start, log end], warning as Kafka does.
async fn clamp(
    admin: &Admin,
    requested: BTreeMap<TopicPartition, i64>,
) -> Result<BTreeMap<TopicPartition, i64>, ToolError> {
    let tps: Vec<TopicPartition> = requested.keys().cloned().collect();
    let starts = offsets_for(admin, &tps, OffsetSpec::Earliest, "starting offset").await?;
    let ends = offsets_for(admin, &tps, OffsetSpec::Latest, "ending offset").await?;
    let mut out = BTreeMap::new();
    for (tp, o) in requested {
        let (start, end) = (starts[&tp], ends[&tp]);
        let v = if o > end {
            eprintln!(
                "WARN New offset ({o}) is higher than latest offset for topic partition {}-{}. \
                 Value will be set to {end}.",
                tp.0, tp.1
            );
            end
        } else if o < start {
            eprintln!(
                "WARN New offset ({o}) is lower than earliest offset for topic partition {}-{}. \
                 Value will be set to {start}.",
                tp.0, tp.1
            );
            start
        } else {
            o
        };
        out.insert(tp, v);
    }
    Ok(out)
}

/// The new offset of every partition, by the chosen scenario.
async fn prepare(
    admin: &Admin,
    args: &Args,
    partitions: &[TopicPartition],
    committed: &BTreeMap<TopicPartition, i64>,
) -> Result<BTreeMap<TopicPartition, i64>, ToolError> {
    if let Some(n) = args.to_offset {
        return clamp(admin, partitions.iter().map(|tp| (tp.clone(), n)).collect()).await;
    }
    if args.to_earliest {
        return offsets_for(admin, partitions, OffsetSpec::Earliest, "starting offset").await;
    }
    if args.to_latest {
        return offsets_for(admin, partitions, OffsetSpec::Latest, "ending offset").await;
    }
    if let Some(n) = args.shift_by {
        let mut requested = BTreeMap::new();
        for tp in partitions {
            let Some(c) = committed.get(tp) else {
                return Err(usage(format!(
                    "Cannot shift offset for partition {}-{} since there is no current \
                     committed offset",
                    tp.0, tp.1
                )));
            };
            requested.insert(tp.clone(), c.saturating_add(n));
        }
        return clamp(admin, requested).await;
    }
    if args.to_current {
        let without: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| !committed.contains_key(*tp))
            .cloned()
            .collect();
        let mut out = offsets_for(admin, &without, OffsetSpec::Latest, "ending offset").await?;
        for tp in partitions {
            if let Some(c) = committed.get(tp) {
                out.insert(tp.clone(), *c);
            }
        }
        return Ok(out);
    }
    let timestamp = if let Some(d) = &args.to_datetime {
        parse_datetime(d).map_err(failed)?
    } else if let Some(d) = &args.by_duration {
        let ms = parse_duration(d).map_err(failed)?;
        now_ms() - ms
    } else {
        return Err(usage("Option [reset-offsets] requires a scenario"));
    };
    let listed = admin
        .list_offsets(partitions, OffsetSpec::Timestamp(timestamp))
        .await
        .map_err(failed)?;
    let mut out = BTreeMap::new();
    let mut fallback = Vec::new();
    for tp in partitions {
        match listed.get(tp) {
            Some(Ok(o)) if o.offset >= 0 => {
                out.insert(tp.clone(), o.offset);
            }
            Some(Ok(_)) => {
                println!(
                    "\nWarn: Partition {} from topic {} is empty. Falling back to latest known \
                     offset.",
                    tp.1, tp.0
                );
                fallback.push(tp.clone());
            }
            _ => {
                return Err(usage(format!(
                    "Error getting offset by timestamp of topic partition: {}-{}",
                    tp.0, tp.1
                )))
            }
        }
    }
    out.extend(offsets_for(admin, &fallback, OffsetSpec::Latest, "ending offset").await?);
    Ok(out)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYY-MM-DDTHH:mm:SS.sss` with an optional `Z` or `±hh:mm` / `±hhmm` / `±hh` zone, in ms
/// since the epoch. Without a zone the time is taken as UTC (Kafka uses the JVM's local zone).
fn parse_datetime(text: &str) -> Result<i64, String> {
    let bad = || format!("Unparseable date: \"{text}\"");
    let (date, rest) = text.split_once('T').ok_or_else(|| {
        "Error parsing timestamp. It does not contain a 'T' according to ISO8601 format".to_string()
    })?;
    let (time, zone_ms) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(pos);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
        if !(digits.len() == 2 || digits.len() == 4) || !digits.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let h: i64 = digits[..2].parse().map_err(|_| bad())?;
        let m: i64 = if digits.len() == 4 {
            digits[2..].parse().map_err(|_| bad())?
        } else {
            0
        };
        (t, sign * (h * 3600 + m * 60) * 1000)
    } else {
        (rest, 0)
    };
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 {
        return Err(bad());
    }
    let (y, mo, da) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (hms, frac) = time.split_once('.').ok_or_else(bad)?;
    let t: Vec<&str> = hms.split(':').collect();
    if t.len() != 3 || frac.is_empty() || frac.len() > 3 {
        return Err(bad());
    }
    let (h, mi, s) = (num(t[0])?, num(t[1])?, num(t[2])?);
    let ms = num(frac)? * 10i64.pow(3 - frac.len() as u32);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, da);
    Ok(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms - zone_ms)
}

/// Java's `Duration.parse` subset Kafka documents: `PnDTnHnMn.nS` (sign allowed), in ms.
fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("Text cannot be parsed to a Duration: {text}");
    let upper = text.to_ascii_uppercase();
    let (sign, body) = match upper.strip_prefix('-') {
        Some(b) => (-1.0, b),
        None => (1.0, upper.strip_prefix('+').unwrap_or(&upper)),
    };
    let body = body.strip_prefix('P').ok_or_else(bad)?;
    let (days_part, time_part) = match body.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(bad());
            }
            (d, Some(t))
        }
        None => (body, None),
    };
    let mut total = 0.0f64;
    let mut any = false;
    if !days_part.is_empty() {
        let n = days_part.strip_suffix('D').ok_or_else(bad)?;
        total += n.parse::<f64>().map_err(|_| bad())? * 86_400_000.0;
        any = true;
    }
    if let Some(mut t) = time_part {
        for (unit, ms) in [('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)] {
            if let Some(pos) = t.find(unit) {
                let n = &t[..pos];
                if n.is_empty() || (unit != 'S' && n.contains('.')) {
                    return Err(bad());
                }
                total += n.parse::<f64>().map_err(|_| bad())? * ms;
                t = &t[pos + 1..];
                any = true;
            }
        }
        if !t.is_empty() {
            return Err(bad());
        }
    }
    if !any {
        return Err(bad());
    }
    Ok((sign * total).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_with_and_without_zones() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000").unwrap(), 0);
        assert_eq!(
            parse_datetime("2021-03-04T05:06:07.089Z").unwrap(),
            1_614_834_367_089
        );
        assert_eq!(
            parse_datetime("2021-03-04T06:06:07.089+01:00").unwrap(),
            1_614_834_367_089
        );
        assert_eq!(
            parse_datetime("2021-03-04T04:06:07.089-0100").unwrap(),
            1_614_834_367_089
        );
        assert!(parse_datetime("2021-03-04").is_err());
        assert!(parse_datetime("2021-13-04T00:00:00.000").is_err());
        assert!(parse_datetime("2021-03-04T00:00:00").is_err());
    }

    #[test]
    fn durations_parse_as_java_does() {
        assert_eq!(parse_duration("PT0.5S").unwrap(), 500);
        assert_eq!(parse_duration("P1DT2H3M4S").unwrap(), 93_784_000);
        assert_eq!(parse_duration("PT10M").unwrap(), 600_000);
        assert_eq!(parse_duration("P2D").unwrap(), 172_800_000);
        assert_eq!(parse_duration("-PT1S").unwrap(), -1000);
        for bad in ["", "P", "PT", "1D", "PT1X", "P1H"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn assignment_strings_sort_topics_and_partitions() {
        let a = vec![
            ("b".to_string(), 1),
            ("a".to_string(), 2),
            ("b".to_string(), 0),
        ];
        assert_eq!(assignment_string(&a), "a:2;b:0,1");
    }
}
