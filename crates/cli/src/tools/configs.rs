//! `kafka-configs`: describes and alters topic and broker configs as Kafka's ConfigCommand does
//! (`Dynamic configs for topic X are:` with each config's synonyms, `--all`, `--add-config` with
//! `[a,b]` grouping, `--delete-config`), altering through IncrementalAlterConfigs. Entity types
//! other than topics and brokers (users, clients, ips, ...) are refused as unsupported.

use std::path::PathBuf;

use brook_client::admin::{AlterConfigOp, ConfigResource, ConfigSource};
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
#[command(
    about = "This tool helps to manipulate and describe entity config for a topic or a broker."
)]
struct Args {
    /// The Kafka servers to connect to (host:port, comma-separated).
    #[arg(long, num_args = 1.., value_name = "SERVERS")]
    bootstrap_server: Vec<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
    /// Alter the configuration for the entity.
    #[arg(long)]
    alter: bool,
    /// List configs for the given entity.
    #[arg(long)]
    describe: bool,
    /// List all configs for the given entity, including static configs if available.
    #[arg(long)]
    all: bool,
    /// Type of entity (topics/brokers).
    #[arg(long, value_name = "TYPE")]
    entity_type: Vec<String>,
    /// Name of entity (topic name/broker id).
    #[arg(long, value_name = "NAME")]
    entity_name: Vec<String>,
    /// Default entity name for brokers (the cluster-wide broker defaults).
    #[arg(long)]
    entity_default: bool,
    /// Key Value pairs of configs to add. Square brackets can be used to group values which
    /// contain commas: 'k1=v1,k2=[v1,v2,v2],k3=v3'.
    #[arg(long, value_name = "K=V,...")]
    add_config: Option<String>,
    /// Path to a properties file with configs to add.
    #[arg(long, value_name = "FILE")]
    add_config_file: Option<PathBuf>,
    /// Config keys to remove 'k1,k2'.
    #[arg(long, value_name = "K,...", value_delimiter = ',')]
    delete_config: Vec<String>,
    /// The topic's name (instead of --entity-type topics --entity-name).
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// The broker's ID (instead of --entity-type brokers --entity-name).
    #[arg(long, value_name = "ID")]
    broker: Option<String>,
    /// The config defaults for all brokers (instead of --entity-type brokers --entity-default).
    #[arg(long)]
    broker_defaults: bool,
}

/// Every entity type Kafka knows; only topics and brokers are supported here.
const KAFKA_ENTITY_TYPES: &[&str] = &[
    "topics",
    "clients",
    "users",
    "brokers",
    "broker-loggers",
    "ips",
    "client-metrics",
    "groups",
];

/// The one entity a command is about: its type (`topics`/`brokers`) and name ("" for the
/// broker defaults); `None` as the name when describing every entity of the type.
struct Entity {
    kind: &'static str,
    name: Option<String>,
}

/// Runs `kafka-configs` with these arguments; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let line = args.join(" ");
    let args: Args = common::parse_args("kafka-configs", args);
    common::run("kafka-configs", async move {
        let entity = check_args(&args)?;
        execute(args, entity, line).await
    })
}

/// Kafka's argument checks (ConfigCommandOptions.checkArgs), with its messages.
fn check_args(a: &Args) -> Result<Entity, ToolError> {
    if usize::from(a.alter) + usize::from(a.describe) != 1 {
        return Err(ToolError::new(
            "Command must include exactly one action: --describe, --alter",
        ));
    }
    if a.describe {
        if a.add_config.is_some() {
            return Err(ToolError::new(
                "Option \"[describe]\" can't be used with option \"[add-config]\"",
            ));
        }
        if !a.delete_config.is_empty() {
            return Err(ToolError::new(
                "Option \"[describe]\" can't be used with option \"[delete-config]\"",
            ));
        }
    }
    let mut types: Vec<String> = a.entity_type.clone();
    let mut names: Vec<String> = a.entity_name.clone();
    if a.entity_default {
        names.push(String::new());
    }
    let specific = a.topic.is_some() || a.broker.is_some() || a.broker_defaults;
    if let Some(t) = &a.topic {
        types.push("topics".into());
        names.push(t.clone());
    }
    if let Some(b) = &a.broker {
        types.push("brokers".into());
        names.push(b.clone());
    }
    if a.broker_defaults {
        types.push("brokers".into());
        names.push(String::new());
    }
    let mut dups: Vec<&str> = Vec::new();
    for (i, t) in types.iter().enumerate() {
        if types[..i].contains(t) && !dups.contains(&t.as_str()) {
            dups.push(t);
        }
    }
    if !dups.is_empty() {
        return Err(ToolError::new(format!(
            "Duplicate entity type(s) specified: {}",
            dups.join(",")
        )));
    }
    if a.bootstrap_server.is_empty() {
        return Err(ToolError::new(
            "Either --bootstrap-server or --bootstrap-controller must be specified.",
        ));
    }
    for t in &types {
        if !KAFKA_ENTITY_TYPES.contains(&t.as_str()) {
            return Err(ToolError::new(format!(
                "Invalid entity type {t}, the entity type must be one of {} with a --bootstrap-server or --bootstrap-controller argument",
                KAFKA_ENTITY_TYPES.join(", ")
            )));
        }
    }
    let kind: &'static str = match types.as_slice() {
        [] => return Err(ToolError::new("At least one entity type must be specified")),
        [t] if t == "topics" => "topics",
        [t] if t == "brokers" => "brokers",
        [t] => {
            return Err(ToolError::new(format!(
                "Entity type '{t}' is not supported by this kafka-configs (only topics and brokers)"
            )))
        }
        _ => {
            return Err(ToolError::new(
                "Only 'users' and 'clients' entity types may be specified together",
            ))
        }
    };
    if specific && (!a.entity_name.is_empty() || !a.entity_type.is_empty() || a.entity_default) {
        return Err(ToolError::new(
            "--entity-{type,name,default} should not be used in conjunction with specific entity flags",
        ));
    }
    let has_name = names.iter().any(|n| !n.is_empty());
    let has_default = names.iter().any(String::is_empty);
    if kind == "brokers" {
        for n in names.iter().filter(|n| !n.is_empty()) {
            if n.parse::<i32>().is_err() {
                return Err(ToolError::new(format!(
                    "The entity name for brokers must be a valid integer broker id, but it is: {n}"
                )));
            }
        }
    }
    if a.describe && kind == "topics" && has_default {
        return Err(ToolError::new(
            "--entity-default must not be specified with --describe of topics",
        ));
    }
    if a.alter {
        if kind == "brokers" {
            if !has_name && !has_default {
                return Err(ToolError::new(
                    "An entity-name or default entity must be specified with --alter of users, clients, brokers or ips",
                ));
            }
        } else if !has_name {
            return Err(ToolError::new(format!(
                "An entity name must be specified with --alter of {kind}"
            )));
        }
        if a.add_config.is_some() && a.add_config_file.is_some() {
            return Err(ToolError::new(
                "Only one of --add-config or --add-config-file must be specified",
            ));
        }
        if a.add_config.is_none() && a.add_config_file.is_none() && a.delete_config.is_empty() {
            return Err(ToolError::new(
                "At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter",
            ));
        }
        if names.len() != types.len() {
            return Err(ToolError::new(
                "An entity name must be specified for every entity type",
            ));
        }
    }
    if names.len() > 1 {
        return Err(ToolError::new(
            "More entity names specified than entity types",
        ));
    }
    Ok(Entity {
        kind,
        name: names.into_iter().next(),
    })
}

/// Splits at commas that are not inside `[...]` (Kafka's `,(?=[^\]]*(?:\[|$))`).
fn split_outside_brackets(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = (depth - 1).max(0),
            _ => {}
        }
        if c == sep && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// `--add-config` pairs: `k=v` separated by commas, `[...]` grouping a value with commas (the
/// brackets are dropped), an empty value allowed (`k=`).
fn parse_add_config(text: &str) -> Result<Vec<(String, String)>, ToolError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in split_outside_brackets(text, ',') {
        let kv = split_outside_brackets(&pair, '=');
        if kv.len() != 2 {
            return Err(ToolError::new(
                "Invalid entity config: all configs to be added must be in the format \"key=val\" or  \"key=[val1,val2]\" to group values which contain commas.",
            ));
        }
        let key = kv[0].trim().to_string();
        let value: String = kv[1].chars().filter(|c| *c != '[' && *c != ']').collect();
        out.retain(|(k, _)| *k != key);
        out.push((key, value.trim().to_string()));
    }
    Ok(out)
}

/// Kafka refuses config keys with characters outside `[a-zA-Z0-9._-]`.
fn validate_keys(pairs: &[(String, String)]) -> ToolResult {
    for (k, _) in pairs {
        if !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ToolError::new(format!(
                "Invalid character found for config key: {k}"
            )));
        }
    }
    Ok(())
}

/// Kafka's name for a config source (ConfigEntry.ConfigSource), as describe prints it.
fn source_name(s: ConfigSource) -> &'static str {
    match s {
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
        ConfigSource::Other(6) => "DYNAMIC_BROKER_LOGGER_CONFIG",
        ConfigSource::Other(7) => "DYNAMIC_CLIENT_METRICS_CONFIG",
        ConfigSource::Other(8) => "DYNAMIC_GROUP_CONFIG",
        ConfigSource::Unknown | ConfigSource::Other(_) => "UNKNOWN",
    }
}

/// The config source that counts as "dynamic" for an entity (what describe lists without --all).
fn dynamic_source(kind: &str, name: &str) -> ConfigSource {
    match (kind, name) {
        ("topics", _) => ConfigSource::DynamicTopic,
        (_, "") => ConfigSource::DynamicDefaultBroker,
        _ => ConfigSource::DynamicBroker,
    }
}

fn resource(kind: &str, name: &str) -> ConfigResource {
    if kind == "topics" {
        ConfigResource::Topic(name.to_string())
    } else {
        ConfigResource::Broker(name.to_string())
    }
}

/// The broker's own message for a refusal, else the error.
fn broker_message(e: &ClientError) -> String {
    match e {
        ClientError::Kafka {
            message: Some(m), ..
        } if !m.is_empty() => m.clone(),
        ClientError::Kafka { error: Some(e), .. } => e.to_string(),
        other => other.to_string(),
    }
}

async fn execute(args: Args, entity: Entity, line: String) -> ToolResult {
    let client_config =
        common::admin_config(args.command_config.as_deref(), &args.bootstrap_server)?;
    let admin = Admin::new(client_config)?;
    // Kafka reports a failed admin call with the command line, then the cause.
    let failed = |e: ClientError| {
        ToolError::new(format!(
            "Error while executing config command with args '{line}': {}",
            broker_message(&e)
        ))
    };
    if args.alter {
        let name = entity.name.clone().unwrap_or_default();
        alter(&admin, &args, entity.kind, &name)
            .await
            .map_err(|e| match e {
                Failure::Tool(t) => t,
                Failure::Client(c) => failed(c),
            })?;
        let singular = entity.kind.trim_end_matches('s');
        if name.is_empty() {
            outln!(
                "Completed updating default config for {} in the cluster.",
                entity.kind
            );
        } else {
            outln!("Completed updating config for {singular} {name}.");
        }
        return Ok(());
    }
    describe(&admin, &args, &entity).await.map_err(|e| match e {
        Failure::Tool(t) => t,
        Failure::Client(c) => failed(c),
    })
}

/// Why a step failed: a usage error (printed as is) or an admin call (wrapped).
enum Failure {
    Tool(ToolError),
    Client(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl From<ToolError> for Failure {
    fn from(e: ToolError) -> Self {
        Failure::Tool(e)
    }
}

async fn alter(admin: &Admin, args: &Args, kind: &str, name: &str) -> Result<(), Failure> {
    let mut add: Vec<(String, String)> = Vec::new();
    if let Some(path) = &args.add_config_file {
        add.extend(common::properties_file(path)?);
    }
    if let Some(text) = &args.add_config {
        add.extend(parse_add_config(text)?);
    }
    validate_keys(&add)?;
    let delete: Vec<String> = args
        .delete_config
        .iter()
        .map(|k| k.trim().to_string())
        .collect();
    let res = resource(kind, name);
    if !delete.is_empty() {
        let dynamic = dynamic_source(kind, name);
        let current = admin.describe_configs(&res).await?;
        let invalid: Vec<&str> = delete
            .iter()
            .filter(|k| !current.iter().any(|c| c.name == **k && c.source == dynamic))
            .map(String::as_str)
            .collect();
        if !invalid.is_empty() {
            return Err(ToolError::new(format!("Invalid config(s): {}", invalid.join(","))).into());
        }
    }
    let ops: Vec<AlterConfigOp> = delete
        .into_iter()
        .map(AlterConfigOp::Delete)
        .chain(add.into_iter().map(|(k, v)| AlterConfigOp::Set(k, v)))
        .collect();
    admin.incremental_alter_configs(&res, &ops, false).await?;
    Ok(())
}

async fn describe(admin: &Admin, args: &Args, entity: &Entity) -> Result<(), Failure> {
    let kind = entity.kind;
    let singular = kind.trim_end_matches('s');
    if !args.all {
        if let Some(name) = &entity.name {
            let exists = if kind == "topics" {
                admin.list_topics(true).await?.iter().any(|t| t == name)
            } else {
                name.is_empty()
                    || admin
                        .describe_cluster()
                        .await?
                        .brokers
                        .iter()
                        .any(|b| b.node_id.to_string() == *name)
            };
            if !exists {
                outln!("The {singular} '{name}' doesn't exist and doesn't have dynamic config.");
                return Ok(());
            }
        }
    }
    let entities: Vec<String> = match &entity.name {
        Some(n) => vec![n.clone()],
        None if kind == "topics" => {
            let mut t = admin.list_topics(true).await?;
            t.sort();
            t
        }
        None => {
            let mut ids: Vec<String> = admin
                .describe_cluster()
                .await?
                .brokers
                .iter()
                .map(|b| b.node_id.to_string())
                .collect();
            ids.push(String::new());
            ids
        }
    };
    for name in entities {
        if kind == "brokers" && name.is_empty() {
            outln!("Default configs for {kind} in the cluster are:");
        } else {
            let which = if args.all { "All" } else { "Dynamic" };
            outln!("{which} configs for {singular} {name} are:");
        }
        let dynamic = dynamic_source(kind, &name);
        let mut configs = admin
            .describe_configs_with_synonyms(&resource(kind, &name), true)
            .await?;
        configs.retain(|c| args.all || c.entry.source == dynamic);
        configs.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        for c in configs {
            let synonyms: Vec<String> = c
                .synonyms
                .iter()
                .map(|y| {
                    format!(
                        "{}:{}={}",
                        source_name(y.source),
                        y.name,
                        y.value.as_deref().unwrap_or("null")
                    )
                })
                .collect();
            outln!(
                "  {}={} sensitive={} synonyms={{{}}}",
                c.entry.name,
                c.entry.value.as_deref().unwrap_or("null"),
                c.entry.sensitive,
                synonyms.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(args: &[&str]) -> Result<(&'static str, Option<String>), String> {
        let argv = std::iter::once("kafka-configs").chain(args.iter().copied());
        let a = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        check_args(&a)
            .map(|e| (e.kind, e.name))
            .map_err(|e| e.message)
    }

    #[test]
    fn argument_checks_follow_config_command() {
        let b = ["--bootstrap-server", "h:1"];
        let with = |more: &[&str]| check(&[&b[..], more].concat());
        assert_eq!(
            with(&[
                "--entity-type",
                "topics",
                "--entity-name",
                "t",
                "--describe"
            ]),
            Ok(("topics", Some("t".to_string())))
        );
        assert_eq!(
            with(&["--topic", "t", "--alter", "--delete-config", "a,b"]),
            Ok(("topics", Some("t".to_string())))
        );
        assert_eq!(
            with(&["--entity-type", "brokers", "--entity-default", "--describe"]),
            Ok(("brokers", Some(String::new())))
        );
        assert_eq!(
            with(&["--entity-type", "brokers", "--describe"]),
            Ok(("brokers", None))
        );
        assert!(with(&["--topic", "t"])
            .unwrap_err()
            .contains("exactly one action"));
        assert!(with(&["--topic", "t", "--describe", "--add-config", "a=1"])
            .unwrap_err()
            .contains("[add-config]"));
        assert!(
            with(&["--entity-type", "topics", "--alter", "--add-config", "a=1"])
                .unwrap_err()
                .contains("An entity name must be specified with --alter of topics")
        );
        assert!(with(&["--topic", "t", "--alter"])
            .unwrap_err()
            .contains("At least one of --add-config"));
        assert_eq!(
            with(&["--topic", "t", "--entity-type", "topics", "--describe"]).unwrap_err(),
            "Duplicate entity type(s) specified: topics"
        );
        assert!(with(&["--broker", "x", "--describe"])
            .unwrap_err()
            .contains("valid integer broker id"));
        assert!(with(&["--topic", "t", "--entity-name", "u", "--describe"])
            .unwrap_err()
            .contains("specific entity flags"));
        assert!(
            with(&["--entity-type", "users", "--entity-name", "u", "--describe"])
                .unwrap_err()
                .contains("not supported")
        );
        assert!(check(&["--topic", "t", "--describe"])
            .unwrap_err()
            .contains("--bootstrap-server"));
    }

    #[test]
    fn add_config_splits_like_kafka() {
        assert_eq!(
            parse_add_config("retention.ms=1000, cleanup.policy = compact").unwrap(),
            kv(&[("retention.ms", "1000"), ("cleanup.policy", "compact")])
        );
        assert_eq!(
            parse_add_config("k1=v1,k2=[v1,v2,v3],k3=v3").unwrap(),
            kv(&[("k1", "v1"), ("k2", "v1,v2,v3"), ("k3", "v3")])
        );
        assert_eq!(parse_add_config("k=").unwrap(), kv(&[("k", "")]));
        for bad in ["k", "k=v=w", "a=1,b"] {
            assert!(parse_add_config(bad).is_err(), "{bad}");
        }
        assert!(validate_keys(&kv(&[("bad key!", "1")])).is_err());
        assert!(validate_keys(&kv(&[("retention.ms", "1")])).is_ok());
    }
}
