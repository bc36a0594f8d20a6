//! `kafka-metadata-quorum`: describes the controller quorum (Kafka's MetadataQuorumCommand):
//! `describe --status`, a summary of the metadata log's leader, high watermark, lag, voters and
//! observers, and `describe --replication [--human-readable]`, a table with one row per replica.
//! Voters of Brook's quorum are fixed (`controller.quorum.voters`), so `add-controller` and
//! `remove-controller` are refused clearly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use brook_client::admin::{QuorumInfo, QuorumReplica};
use brook_client::Admin;
use clap::Parser;

use super::common::{self, ToolError, ToolResult};

const ABOUT: &str = "This tool describes kraft metadata quorum status.";

#[derive(Parser)]
#[command(about = ABOUT)]
struct Args {
    /// The subcommand: describe (add-controller and remove-controller are not supported).
    command: Option<String>,
    /// A comma-separated list of host:port pairs to use for establishing the connection to the
    /// Kafka cluster.
    #[arg(long, num_args = 1, value_name = "BOOTSTRAP_SERVER")]
    bootstrap_server: Vec<String>,
    /// The controllers to connect to (not supported: Brook's controllers serve no clients).
    #[arg(long, value_name = "BOOTSTRAP_CONTROLLER")]
    bootstrap_controller: Option<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(long, value_name = "COMMAND_CONFIG")]
    command_config: Option<PathBuf>,
    /// A short summary of the quorum status.
    #[arg(long)]
    status: bool,
    /// Detailed information about the status of replication.
    #[arg(long)]
    replication: bool,
    /// Human-readable output (with --replication).
    #[arg(long)]
    human_readable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Status,
    Replication { human_readable: bool },
}

/// Runs `kafka-metadata-quorum`; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    if args.is_empty() {
        eprintln!("{ABOUT}\nRun 'kafka-metadata-quorum --help' for the list of options.");
        return 1;
    }
    let args: Args = common::parse_args("kafka-metadata-quorum", args);
    common::run("kafka-metadata-quorum", execute(args))
}

/// The checks of Kafka's tool, with its messages (argparse's for the arguments).
fn check_args(a: &Args) -> Result<View, ToolError> {
    let usage = |m: &str| ToolError::new(format!("kafka-metadata-quorum: error: {m}"));
    match (
        a.bootstrap_server.is_empty(),
        a.bootstrap_controller.is_some(),
    ) {
        (false, true) => {
            return Err(usage(
                "argument --bootstrap-controller: not allowed with argument --bootstrap-server",
            ))
        }
        (true, false) => {
            return Err(usage(
                "one of the arguments --bootstrap-server --bootstrap-controller is required",
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
    match a.command.as_deref() {
        None => return Err(usage("too few arguments")),
        Some("describe") => {}
        Some(c @ ("add-controller" | "remove-controller")) => {
            return Err(ToolError::new(format!(
                "{c} is not supported: Brook's controller quorum has fixed voters \
                 (controller.quorum.voters)"
            )))
        }
        Some(other) => {
            return Err(usage(&format!(
                "argument command: invalid choice: '{other}' (choose from 'describe', \
                 'add-controller', 'remove-controller')"
            )))
        }
    }
    match (a.status, a.replication) {
        (true, true) => Err(ToolError::new(
            "Only one of --status or --replication should be specified with describe sub-command",
        )),
        (false, true) => Ok(View::Replication {
            human_readable: a.human_readable,
        }),
        (true, false) if a.human_readable => Err(ToolError::new(
            "The option --human-readable is only supported along with --replication",
        )),
        (true, false) => Ok(View::Status),
        (false, false) => Err(ToolError::new(
            "One of --status or --replication must be specified with describe sub-command",
        )),
    }
}

async fn execute(args: Args) -> ToolResult {
    let view = check_args(&args)?;
    let config = common::admin_config(args.command_config.as_deref(), &args.bootstrap_server)?;
    let admin = Admin::new(config)?;
    let fail = |e: brook_client::ClientError| match e {
        brook_client::ClientError::Kafka {
            code: 3, message, ..
        } => ToolError::new(format!(
            "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: {}",
            message.unwrap_or_else(|| {
                "This server does not host this topic-partition. (__cluster_metadata: a Brook \
                 broker in single-node mode has no controller quorum)"
                    .into()
            })
        )),
        e => ToolError::new(e.to_string()),
    };
    match view {
        View::Status => {
            let cluster_id = admin.describe_cluster().await.map_err(fail)?.cluster_id;
            let quorum = admin.describe_metadata_quorum().await.map_err(fail)?;
            println!("{}", status(&cluster_id, &quorum)?);
        }
        View::Replication { human_readable } => {
            let quorum = admin.describe_metadata_quorum().await.map_err(fail)?;
            for line in replication(&quorum, human_readable, now_ms())? {
                println!("{line}");
            }
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn leader(q: &QuorumInfo) -> Result<&QuorumReplica, ToolError> {
    q.voters
        .iter()
        .find(|v| v.id == q.leader_id)
        .ok_or_else(|| ToolError::new("No value present"))
}

/// Kafka's node list: `[{"id": 1, "endpoints": ["CONTROLLER://h:9093"]}, {"id": 4}]`, endpoints
/// when the broker reported some (DescribeQuorum v2); no directory ids (Brook's are the zero
/// UUID, which Kafka leaves out).
fn nodes(replicas: &[QuorumReplica], endpoints: &BTreeMap<i32, Vec<String>>) -> String {
    let items: Vec<String> = replicas
        .iter()
        .map(|r| match endpoints.get(&r.id).filter(|e| !e.is_empty()) {
            Some(e) => {
                let quoted: Vec<String> = e.iter().map(|e| format!("\"{e}\"")).collect();
                format!(
                    "{{\"id\": {}, \"endpoints\": [{}]}}",
                    r.id,
                    quoted.join(", ")
                )
            }
            None => format!("{{\"id\": {}}}", r.id),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// `describe --status`: Kafka's labels, each padded to 24 characters.
fn status(cluster_id: &str, q: &QuorumInfo) -> Result<String, ToolError> {
    let leader = leader(q)?;
    // The voter furthest behind; the first of equals, as Kafka's stream min.
    let laggard = q
        .voters
        .iter()
        .fold(None::<&QuorumReplica>, |min, v| match min {
            Some(m) if m.log_end_offset <= v.log_end_offset => Some(m),
            _ => Some(v),
        })
        .unwrap_or(leader);
    let lag_time = if std::ptr::eq(laggard, leader) {
        0
    } else {
        match (leader.last_caught_up_ms, laggard.last_caught_up_ms) {
            (Some(l), Some(f)) => l - f,
            _ => -1,
        }
    };
    Ok(format!(
        "ClusterId:              {cluster_id}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {}\n\
         MaxFollowerLagTimeMs:   {lag_time}\n\
         CurrentVoters:          {}\n\
         CurrentObservers:       {}",
        q.leader_id,
        q.leader_epoch,
        q.high_watermark,
        leader.log_end_offset - laggard.log_end_offset,
        nodes(&q.voters, &q.nodes),
        nodes(&q.observers, &q.nodes),
    ))
}

/// `describe --replication`: Kafka's table (every cell left-justified to its column's width and
/// followed by a tab), the leader first, then the other voters, then the observers.
fn replication(q: &QuorumInfo, human_readable: bool, now: i64) -> Result<Vec<String>, ToolError> {
    let leader = leader(q)?;
    let time = |t: Option<i64>, what: &str| -> Result<String, ToolError> {
        match t {
            None => Ok("-1".into()),
            Some(t) if !human_readable => Ok(t.to_string()),
            Some(t) if t > 0 && t <= now => Ok(format!("{} ms ago", now - t)),
            Some(t) => Err(ToolError::new(format!(
                "Error while computing relative time, possible drift in system clock.\n\
                 Current timestamp is {now}, {what} timestamp is {t}"
            ))),
        }
    };
    let row = |r: &QuorumReplica, status: &str| -> Result<Vec<String>, ToolError> {
        Ok(vec![
            r.id.to_string(),
            // Kafka's Uuid.ZERO_UUID: DescribeQuorum v1 carries no directory ids.
            "AAAAAAAAAAAAAAAAAAAAAA".to_string(),
            r.log_end_offset.to_string(),
            (leader.log_end_offset - r.log_end_offset).to_string(),
            time(r.last_fetch_ms, "last fetch")?,
            time(r.last_caught_up_ms, "last caught up")?,
            status.to_string(),
        ])
    };
    let mut rows = vec![row(leader, "Leader")?];
    for v in q.voters.iter().filter(|v| v.id != q.leader_id) {
        rows.push(row(v, "Follower")?);
    }
    for o in &q.observers {
        rows.push(row(o, "Observer")?);
    }
    let header: Vec<String> = [
        "NodeId",
        "DirectoryId",
        "LogEndOffset",
        "Lag",
        "LastFetchTimestamp",
        "LastCaughtUpTimestamp",
        "Status",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r[c].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    Ok(std::iter::once(&header)
        .chain(&rows)
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}\t"))
                .collect::<String>()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("kafka-metadata-quorum").chain(a.iter().copied()))
            .unwrap()
    }

    fn check(a: &[&str]) -> Result<View, String> {
        check_args(&args(a)).map_err(|e| e.message)
    }

    fn replica(id: i32, end: i64, seen: Option<i64>) -> QuorumReplica {
        QuorumReplica {
            id,
            log_end_offset: end,
            last_fetch_ms: seen,
            last_caught_up_ms: seen,
        }
    }

    fn quorum() -> QuorumInfo {
        QuorumInfo {
            leader_id: 2,
            leader_epoch: 3,
            high_watermark: 40,
            voters: vec![
                replica(1, 38, Some(900)),
                replica(2, 40, Some(1000)),
                replica(3, 40, Some(1000)),
            ],
            observers: vec![replica(4, 40, Some(990))],
            nodes: BTreeMap::from([(1, vec!["CONTROLLER://h:1".to_string()])]),
        }
    }

    #[test]
    fn describe_options_are_checked_with_kafkas_messages() {
        let b = ["--bootstrap-server", "h:1", "describe"];
        let with = |more: &[&'static str]| -> Vec<&'static str> { [&b[..], more].concat() };
        assert_eq!(check(&with(&["--status"])), Ok(View::Status));
        assert_eq!(
            check(&with(&["--replication", "--human-readable"])),
            Ok(View::Replication {
                human_readable: true
            })
        );
        assert_eq!(
            check(&with(&["--status", "--replication"])).unwrap_err(),
            "Only one of --status or --replication should be specified with describe sub-command"
        );
        assert_eq!(
            check(&with(&[])).unwrap_err(),
            "One of --status or --replication must be specified with describe sub-command"
        );
        assert_eq!(
            check(&with(&["--status", "--human-readable"])).unwrap_err(),
            "The option --human-readable is only supported along with --replication"
        );
        assert!(check(&["describe", "--status"])
            .unwrap_err()
            .contains("one of the arguments --bootstrap-server --bootstrap-controller"));
        assert!(check(&["--bootstrap-server", "h:1", "add-controller"])
            .unwrap_err()
            .contains("not supported"));
    }

    #[test]
    fn status_is_kafkas_summary() {
        assert_eq!(
            status("cid", &quorum()).unwrap(),
            "ClusterId:              cid\n\
             LeaderId:               2\n\
             LeaderEpoch:            3\n\
             HighWatermark:          40\n\
             MaxFollowerLag:         2\n\
             MaxFollowerLagTimeMs:   100\n\
             CurrentVoters:          [{\"id\": 1, \"endpoints\": [\"CONTROLLER://h:1\"]}, {\"id\": 2}, {\"id\": 3}]\n\
             CurrentObservers:       [{\"id\": 4}]"
        );
        let mut q = quorum();
        q.voters[0].log_end_offset = 40;
        q.voters[0].last_caught_up_ms = None;
        // Every voter at the leader's end: the first of them is "the" laggard, lag 0, and its
        // unknown caught-up time makes the lag time -1.
        assert!(status("cid", &q)
            .unwrap()
            .contains("MaxFollowerLag:         0\nMaxFollowerLagTimeMs:   -1\n"));
    }

    #[test]
    fn replication_is_kafkas_table() {
        let lines = replication(&quorum(), false, 2000).unwrap();
        assert_eq!(
            lines[0],
            "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t"
        );
        assert_eq!(
            lines[1],
            "2     \tAAAAAAAAAAAAAAAAAAAAAA\t40          \t0  \t1000              \t1000                 \tLeader  \t"
        );
        assert!(lines[2].starts_with("1     \t") && lines[2].ends_with("\tFollower\t"));
        assert!(lines[2].contains("\t2  \t"), "{}", lines[2]);
        assert!(lines[4].starts_with("4     \t") && lines[4].ends_with("\tObserver\t"));
        let human = replication(&quorum(), true, 2000).unwrap();
        assert!(human[1].contains("\t1000 ms ago       \t"), "{}", human[1]);
        assert!(replication(&quorum(), true, 500)
            .unwrap_err()
            .message
            .starts_with("Error while computing relative time"));
    }
}
