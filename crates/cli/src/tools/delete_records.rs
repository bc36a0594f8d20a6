//! `kafka-delete-records`: deletes every record before the given offset in each listed partition
//! (`--offset-json-file` in Kafka's format), then prints each partition's new low watermark or
//! its error, as Kafka's DeleteRecordsCommand does.

use std::collections::BTreeSet;
use std::path::PathBuf;

use brook_client::Admin;
use clap::Parser;

use super::common::{self, ToolError, ToolResult};

#[derive(Parser)]
#[command(about = "Delete records of the given partitions down to the specified offset.")]
struct Args {
    /// REQUIRED: the server(s) to connect to (host:port, comma-separated).
    #[arg(long, num_args = 1.., required = true, value_name = "SERVERS")]
    bootstrap_server: Vec<String>,
    /// REQUIRED: JSON file with offset per partition, e.g.
    /// {"partitions":[{"topic":"foo","partition":1,"offset":1}],"version":1}
    #[arg(long, required = true, value_name = "FILE")]
    offset_json_file: PathBuf,
    /// Property file with configs for the admin client.
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OffsetFile {
    partitions: Vec<PartitionOffset>,
    #[serde(default = "one")]
    version: i32,
}

fn one() -> i32 {
    1
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionOffset {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Runs `kafka-delete-records`; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let args: Args = common::parse_args("kafka-delete-records", args);
    common::run("kafka-delete-records", execute(args))
}

/// The partitions and offsets of an offset JSON file, or why it is not one.
fn parse_offset_file(text: &str) -> Result<Vec<(String, i32, i64)>, ToolError> {
    let file: OffsetFile = serde_json::from_str(text)
        .map_err(|e| ToolError::new(format!("The input string is not a valid JSON: {e}")))?;
    if file.version != 1 {
        return Err(ToolError::new(format!(
            "Not supported version field value {}",
            file.version
        )));
    }
    let mut seen = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for p in &file.partitions {
        if !seen.insert((p.topic.clone(), p.partition)) {
            duplicates.insert(format!("{}-{}", p.topic, p.partition));
        }
    }
    if !duplicates.is_empty() {
        let list: Vec<String> = duplicates.into_iter().collect();
        return Err(ToolError::new(format!(
            "Offset json file contains duplicate topic partitions: {}",
            list.join(",")
        )));
    }
    Ok(file
        .partitions
        .into_iter()
        .map(|p| (p.topic, p.partition, p.offset))
        .collect())
}

async fn execute(args: Args) -> ToolResult {
    let client_config =
        common::admin_config(args.command_config.as_deref(), &args.bootstrap_server)?;
    let text = std::fs::read_to_string(&args.offset_json_file).map_err(|e| {
        ToolError::new(format!(
            "Cannot read {}: {e}",
            args.offset_json_file.display()
        ))
    })?;
    let targets = parse_offset_file(&text)?;
    let admin = Admin::new(client_config)?;
    println!("Executing records delete operation");
    let results = admin.delete_records(&targets).await?;
    println!("Records delete operation completed:");
    for ((topic, partition), result) in results {
        match result {
            Ok(low_watermark) => {
                println!("partition: {topic}-{partition}\tlow_watermark: {low_watermark}")
            }
            Err(e) => println!("partition: {topic}-{partition}\terror: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_offset_file_parses() {
        let t = r#"{"partitions":[{"topic":"hello","partition":0,"offset":3}],"version":1}"#;
        assert_eq!(parse_offset_file(t).unwrap(), vec![("hello".into(), 0, 3)]);
    }

    #[test]
    fn malformed_files_are_refused_with_a_reason() {
        for (text, why) in [
            ("{", "not a valid JSON"),
            (
                r#"{"partitions":[{"topic":"t","partition":0}],"version":1}"#,
                "offset",
            ),
            (r#"{"partitions":[],"version":2}"#, "version"),
            (
                r#"{"partitions":[{"topic":"t","partition":0,"offset":1},{"topic":"t","partition":0,"offset":2}]}"#,
                "duplicate topic partitions: t-0",
            ),
        ] {
            let e = parse_offset_file(text).unwrap_err();
            assert!(e.message.contains(why), "{text}: {}", e.message);
        }
    }
}
