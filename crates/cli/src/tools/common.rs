//! What every tool shares: argument parsing with Kafka's conventions ("did you mean" for a
//! mistyped flag, `--bootstrap-server` lists, `--property k=v`), property files, the runtime,
//! and turning an error into a message and an exit code (never a stack trace).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use brook_broker::config::strsim;
use brook_client::properties::parse_properties_file;

/// A tool's failure: the message for stderr and the exit code.
#[derive(Debug)]
pub struct ToolError {
    pub message: String,
    pub code: i32,
}

impl ToolError {
    /// Exit code 1 with this message.
    pub fn new(message: impl Into<String>) -> ToolError {
        ToolError {
            message: message.into(),
            code: 1,
        }
    }
}

impl<E: std::fmt::Display> From<E> for ToolError {
    fn from(e: E) -> ToolError {
        ToolError::new(e.to_string())
    }
}

/// A tool's result.
pub type ToolResult = Result<(), ToolError>;

/// Parses a tool's arguments. A flag the tool does not know (`--topics`), or Kafka's flag split by
/// a space (`-- all-config`), is an error that names the closest flag; `--help` prints the usage.
/// Exits the process on error (code 1, as Kafka's tools do) or after help (code 0).
pub fn parse_args<A: clap::Parser>(tool: &'static str, args: Vec<String>) -> A {
    let mut command = A::command().name(tool).bin_name(tool);
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(String::from))
        .chain(["help".to_string(), "version".to_string()])
        .collect();
    if let Some(message) = unknown_flag(&known, &args) {
        eprintln!("{tool}: {message}\nRun '{tool} --help' for the list of options.");
        std::process::exit(1);
    }
    let argv = std::iter::once(OsString::from(tool)).chain(args.into_iter().map(OsString::from));
    let matches = match command.try_get_matches_from_mut(argv) {
        Ok(m) => m,
        Err(e) => exit_on_clap_error(e),
    };
    match A::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => exit_on_clap_error(e),
    }
}

fn exit_on_clap_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            std::process::exit(0)
        }
        _ => {
            let _ = e.print();
            std::process::exit(1)
        }
    }
}

/// The first argument that is not one of `known` long flags, with a suggestion.
pub fn unknown_flag(known: &[String], args: &[String]) -> Option<String> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            // Kafka's tools have no positional arguments, so a bare "--" is a typo for a flag
            // written with a space after the dashes ("-- all-config").
            let next = args.get(i + 1).cloned().unwrap_or_default();
            let suggestion = closest(known, &next)
                .map(|s| format!("; did you mean '--{s}'?"))
                .unwrap_or_default();
            return Some(format!(
                "'-- {next}' is not an option (there is a space after '--'){suggestion}"
            ));
        }
        if let Some(name) = arg.strip_prefix("--") {
            let name = name.split('=').next().unwrap_or(name);
            if !known.iter().any(|k| k == name) {
                let suggestion = closest(known, name)
                    .map(|s| format!("; did you mean '--{s}'?"))
                    .unwrap_or_default();
                return Some(format!("'--{name}' is not a recognized option{suggestion}"));
            }
        }
        i += 1;
    }
    None
}

/// The known name nearest to `name` by edit distance, if it is near enough to be a typo.
pub fn closest<'a>(known: &'a [String], name: &str) -> Option<&'a str> {
    let (best, distance) = known
        .iter()
        .map(|k| (k.as_str(), strsim(k, name)))
        .min_by_key(|(_, d)| *d)?;
    let near = distance <= 3.max(name.len() / 3) && distance < name.len().max(1);
    // "all-config" is far from "add-config" by letters but shares the "-config" suffix.
    let shares_word = name
        .split('-')
        .filter(|w| w.len() > 3)
        .any(|w| best.split('-').any(|b| b == w));
    (near || shares_word).then_some(best)
}

/// Names a mistyped tool name may have meant: every known name sharing two words with it
/// (`kafka-console-consumer-groups` → `kafka-consumer-groups` and `kafka-console-consumer`),
/// nearest first; or else the single closest one.
pub fn suggestions<'a>(known: &'a [String], name: &str) -> Vec<&'a str> {
    let words = |s: &str| -> Vec<String> {
        s.split(['-', '.', '_'])
            .filter(|w| w.len() > 3 && *w != "kafka")
            .map(str::to_string)
            .collect()
    };
    let mine = words(name);
    let mut sharing: Vec<&str> = known
        .iter()
        .filter(|k| words(k).iter().filter(|w| mine.contains(w)).count() >= 2)
        .map(String::as_str)
        .collect();
    sharing.sort_by_key(|k| strsim(k, name));
    if sharing.is_empty() {
        closest(known, name).into_iter().collect()
    } else {
        sharing
    }
}

/// `--bootstrap-server` values as one comma-separated list: Kafka separates servers with commas;
/// the seed's notes separate them with spaces, which also arrive here as several values.
pub fn bootstrap(values: &[String]) -> Result<String, ToolError> {
    let servers: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split([',', ' ']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return Err(ToolError::new(
            "Missing required argument \"[bootstrap-server]\"",
        ));
    }
    for s in &servers {
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return Err(ToolError::new(format!(
                    "Invalid bootstrap server {s:?}: expected host:port"
                )))
            }
        }
    }
    Ok(servers.join(","))
}

/// `key=value` pairs from repeated `--property`/`--producer-property`/`--config` flags.
pub fn key_values(values: &[String], flag: &str) -> Result<BTreeMap<String, String>, ToolError> {
    let mut out = BTreeMap::new();
    for v in values {
        let (k, val) = v
            .split_once('=')
            .ok_or_else(|| ToolError::new(format!("Invalid {flag} {v:?}: expected key=value")))?;
        out.insert(k.trim().to_string(), val.to_string());
    }
    Ok(out)
}

/// A Java properties file (`--command-config`, `--producer.config`, `--consumer.config`).
pub fn properties_file(path: &Path) -> Result<BTreeMap<String, String>, ToolError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ToolError::new(format!("Cannot read {}: {e}", path.display())))?;
    parse_properties_file(&text).map_err(|e| ToolError::new(format!("{}: {e}", path.display())))
}

/// The admin client's settings: `--command-config`'s properties with `--bootstrap-server` on top.
pub fn admin_config(
    command_config: Option<&Path>,
    bootstrap_server: &[String],
) -> Result<brook_client::cluster::ClientConfig, ToolError> {
    let mut props = match command_config {
        Some(path) => properties_file(path)?,
        None => BTreeMap::new(),
    };
    props.insert("bootstrap.servers".into(), bootstrap(bootstrap_server)?);
    Ok(brook_client::cluster::ClientConfig::from_properties(props)?)
}

/// Runs a tool's async body on a Tokio runtime and turns its outcome into an exit code.
pub fn run<F>(tool: &str, body: F) -> i32
where
    F: std::future::Future<Output = ToolResult>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{tool}: cannot start the Tokio runtime: {e}");
            return 1;
        }
    };
    let outcome = runtime.block_on(body);
    // Background tasks (heartbeats, connections) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("{}", e.message);
            }
            e.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        [
            "topic",
            "bootstrap-server",
            "add-config",
            "delete-config",
            "describe",
            "alter",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_seeds_typos_get_a_did_you_mean() {
        let m = unknown_flag(
            &known(),
            &args(&["--bootstrap-server", "h:1", "--topics", "t"]),
        )
        .unwrap();
        assert!(
            m.contains("'--topics'") && m.contains("did you mean '--topic'"),
            "{m}"
        );
        let m = unknown_flag(&known(), &args(&["--alter", "--", "all-config", "x=1"])).unwrap();
        assert!(m.contains("did you mean '--add-config'"), "{m}");
        assert!(unknown_flag(&known(), &args(&["--topic", "x", "--describe"])).is_none());
        assert!(unknown_flag(&known(), &args(&["--topic=x"])).is_none());
        let tools: Vec<String> = [
            "kafka-console-consumer",
            "kafka-consumer-groups",
            "kafka-topics",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = suggestions(&tools, "kafka-console-consumer-groups");
        assert!(
            s.contains(&"kafka-consumer-groups") && s.len() == 2,
            "{s:?}"
        );
        assert_eq!(suggestions(&tools, "kafka-topic"), vec!["kafka-topics"]);
        let m = unknown_flag(&known(), &args(&["--zzzzzzzz"])).unwrap();
        assert!(!m.contains("did you mean"), "{m}");
    }

    #[test]
    fn bootstrap_servers_take_commas_and_spaces() {
        assert_eq!(
            bootstrap(&args(&["a:1,b:2", "c:3"])).unwrap(),
            "a:1,b:2,c:3"
        );
        assert!(bootstrap(&args(&["localhost"])).is_err());
        assert!(bootstrap(&[]).is_err());
    }

    #[test]
    fn key_values_need_an_equals_sign() {
        let kv = key_values(&args(&["a=1", "b=x=y"]), "--property").unwrap();
        assert_eq!(kv["a"], "1");
        assert_eq!(kv["b"], "x=y");
        assert!(key_values(&args(&["a"]), "--property").is_err());
    }
}
