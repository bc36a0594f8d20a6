//! The `brook` binary: `brook broker` runs a broker; Kafka's command-line tools follow as further
//! subcommands. This crate only parses command lines and wires crates together; it owns no
//! protocol, storage or broker logic.

mod dev_cluster;
mod tools;

use std::path::PathBuf;

use anyhow::Context;
use brook_broker::{BoundServer, BrokerConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "brook",
    version,
    about = "Brook: Apache Kafka, rebuilt in Rust",
    after_help = tools_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (as kafka-server-start.sh does). With no arguments: node 1 on
    /// PLAINTEXT://localhost:9092, data in ./brook-data, topics auto-created.
    Broker {
        /// A server.properties file with Kafka's property names.
        properties: Option<PathBuf>,
        /// Override one property: --override key=value (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    #[command(about = dev_cluster::ABOUT, long_about = dev_cluster::LONG_ABOUT)]
    DevCluster(dev_cluster::Args),
}

fn tools_help() -> String {
    let mut s = String::from("Kafka's tools (also as bin/<tool>.sh):\n");
    for (name, _, about) in tools::TOOLS {
        s.push_str(&format!("  {name:<28}{about}\n"));
    }
    s.push_str("Run 'brook <tool> --help' for a tool's options.");
    s
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(first) = args.first().cloned() {
        if let Some((name, tool)) = tools::find(&first) {
            args.remove(0);
            // A tool piped into `head` should end quietly when the pipe closes, as Unix tools
            // and Kafka's do, not panic in println!: restore the default SIGPIPE action that
            // Rust's runtime replaced with "ignore".
            #[cfg(unix)]
            if !tools::HANDLES_CLOSED_STDOUT.contains(&name) {
                // SAFETY: called before any thread is started; SIG_DFL is a valid action.
                unsafe {
                    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                }
            }
            std::process::exit(tool(args));
        }
        if first == "dev-cluster" {
            // Its own parser, for one-line errors with a did-you-mean.
            std::process::exit(dev_cluster::main(args.split_off(1)));
        }
        let builtin = [
            "broker",
            "dev-cluster",
            "help",
            "--help",
            "-h",
            "--version",
            "-V",
        ];
        if !builtin.contains(&first.as_str()) {
            let names: Vec<String> = tools::TOOLS
                .iter()
                .map(|(n, _, _)| n.to_string())
                .chain(["broker".to_string(), "dev-cluster".to_string()])
                .collect();
            let base = first.strip_suffix(".sh").unwrap_or(&first);
            let base = match base.starts_with("kafka-")
                || brook_broker::config::strsim(base, "broker") <= 2
            {
                true => base.to_string(),
                false => format!("kafka-{base}"),
            };
            let hint = match tools::common::suggestions(&names, &base).as_slice() {
                [] => String::new(),
                [one] => format!("; did you mean '{one}'?"),
                many => format!("; did you mean one of: {}?", many.join(", ")),
            };
            eprintln!("brook: '{first}' is not a tool{hint}\nRun 'brook --help' for the list.");
            std::process::exit(1);
        }
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Broker {
            properties,
            overrides,
        } => run_broker(properties, overrides),
        Command::DevCluster(args) => std::process::exit(dev_cluster::run(args)),
    }
}

/// Keeps glibc malloc from handing the broker's megabyte-sized buffers (produce requests, fetch
/// reads) back to the kernel after each use. By default a freed buffer at the top of a heap is
/// trimmed once 2 MiB are free there, so the next request's buffer page-faults every page in
/// again (about 10% of a replication leader's CPU, more on VMs whose hypervisor reclaims freed
/// pages). Up to 32 MiB of free heap is kept for reuse instead; buffers up to 32 MiB come from
/// the heap rather than their own mapping.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

fn run_broker(properties: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BROOK_LOG")
                // openraft logs every unreachable peer at ERROR twice a second while a voter is
                // down; its failures that matter reach Brook's own logs through its API.
                // `BROOK_LOG=info,openraft=info` brings them back.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match BrokerConfig::load(properties.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("brook: configuration error: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let server = match BoundServer::bind(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("brook: cannot start: {e}");
                std::process::exit(1);
            }
        };
        let a = server.advertised().clone();
        let bound = server.local_addr()?;
        // Tests and scripts wait for this line; keep its wording.
        println!(
            "[brook] node.id={} listening on {}://{}:{} (bound {bound}), data in {}",
            server.broker.config.node_id,
            a.name,
            a.host,
            a.port,
            server.broker.config.log_dir.display()
        );
        brook_broker::run(server, shutdown).await;
        println!("[brook] stopped");
        anyhow::Ok(())
    })
}

/// Registers SIGINT and SIGTERM handlers now (before the broker announces itself, so a signal
/// that follows the "listening" line at once is never lost) and returns the future that completes
/// on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
