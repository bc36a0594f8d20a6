//! `brook dev-cluster`: a local cluster of N combined broker+controller nodes on 127.0.0.1, each a
//! `brook broker <node-i.properties>` child process of this one, with settings that make failover
//! quick on a laptop. The properties files it writes are ordinary Kafka-style ones: a node can be
//! started by hand from them, and they show what a real deployment (config/cluster/) looks like.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use brook_broker::BrokerConfig;

/// How long a node may take from exec to accepting client connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the nodes get to shut down cleanly after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

pub const ABOUT: &str = "Run a local cluster of N broker+controller nodes on 127.0.0.1";

pub const LONG_ABOUT: &str = "\
Run a local cluster of N combined broker+controller nodes (process.roles=broker,controller) on
127.0.0.1, each a 'brook broker node-<i>.properties' child process, wait until every node lists
all N brokers and an active controller, and print the bootstrap servers (the last line of output:
bootstrap.servers=...). Ctrl-C (or SIGTERM) stops every node and exits 0;
if a node dies the command says which and exits 1.

Node i (1-based) gets the client port P+2(i-1) (listener PLAINTEXT) and the controller port
P+2(i-1)+1 (listener CONTROLLER) for --base-port P; with P=0 free ports are picked. The data
directory holds node-<i>.properties, node-<i>/ (log.dirs) and node-<i>.log (the node's output);
started again on the same --data-dir the cluster keeps its cluster.id, ports and data.

Settings written into every node's file (a Kafka user's dev cluster; --override wins):
  default.replication.factor=min(3,N)      as Kafka's 3-broker docker quickstart
  min.insync.replicas=2 (1 when N<3)       acks=all survives one broker down
  offsets.topic.replication.factor=min(3,N), transaction.state.log.replication.factor=min(3,N)
  transaction.state.log.min.isr=min(2,N), group.initial.rebalance.delay.ms=0
  broker.session.timeout.ms=2000, broker.heartbeat.interval.ms=250 (Kafka: 9000/2000)
  controller.quorum.election.timeout.ms=1000, replica.lag.time.max.ms=10000 (Kafka: 30000)
  so that a dead broker is fenced and its partitions get a new leader within a few seconds.";

/// `brook dev-cluster` flags.
#[derive(clap::Parser, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Number of nodes (each is a broker and a controller quorum voter).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub brokers: u32,
    /// Where the nodes' properties, data and logs go (default: a new temporary directory, kept
    /// after exit and printed at start).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// First port: node i listens on P+2(i-1) (clients) and P+2(i-1)+1 (controller); 0 picks free
    /// ports.
    #[arg(long, default_value_t = 0, value_name = "P")]
    pub base_port: u16,
    /// A broker property for every node: --override key=value (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// One node's address plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub id: u32,
    pub client_port: u16,
    pub controller_port: u16,
}

/// A bad command line or unusable data directory: one line for stderr.
fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("brook dev-cluster: {message} (see 'brook dev-cluster --help')");
    std::process::exit(2)
}

/// Parses the arguments (after `dev-cluster`); every error is one line naming the flag.
pub fn parse(args: Vec<String>) -> Args {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Args::command()
        .name("brook dev-cluster")
        .bin_name("brook dev-cluster");
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(String::from))
        .chain(["help".to_string()])
        .collect();
    if let Some(message) = crate::tools::common::unknown_flag(&known, &args) {
        fail(message);
    }
    let argv = std::iter::once("brook dev-cluster".to_string()).chain(args);
    let parsed = command
        .try_get_matches_from_mut(argv)
        .and_then(|m| Args::from_arg_matches(&m));
    match parsed {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            fail(first.trim_start_matches("error: "))
        }
    }
}

/// The dev defaults for an N-node cluster, in file order.
pub fn dev_defaults(n: u32) -> Vec<(&'static str, String)> {
    let rf = n.min(3);
    let min_isr = if n >= 3 { 2 } else { 1 };
    vec![
        ("num.partitions", "1".into()),
        ("default.replication.factor", rf.to_string()),
        ("min.insync.replicas", min_isr.to_string()),
        ("offsets.topic.replication.factor", rf.to_string()),
        ("transaction.state.log.replication.factor", rf.to_string()),
        ("transaction.state.log.min.isr", n.min(2).to_string()),
        ("group.initial.rebalance.delay.ms", "0".into()),
        ("broker.session.timeout.ms", "2000".into()),
        ("broker.heartbeat.interval.ms", "250".into()),
        ("controller.quorum.election.timeout.ms", "1000".into()),
        ("replica.lag.time.max.ms", "10000".into()),
    ]
}

/// The properties file of one node.
pub fn node_properties(
    plan: &[NodePlan],
    node: &NodePlan,
    cluster_id: &str,
    log_dir: &Path,
    overrides: &[(String, String)],
) -> String {
    let voters: Vec<String> = plan
        .iter()
        .map(|p| format!("{}@127.0.0.1:{}", p.id, p.controller_port))
        .collect();
    let mut props: Vec<(String, String)> = vec![
        ("process.roles".into(), "broker,controller".into()),
        ("node.id".into(), node.id.to_string()),
        ("cluster.id".into(), cluster_id.into()),
        ("controller.quorum.voters".into(), voters.join(",")),
        (
            "listeners".into(),
            format!(
                "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                node.client_port, node.controller_port
            ),
        ),
        (
            "advertised.listeners".into(),
            format!("PLAINTEXT://127.0.0.1:{}", node.client_port),
        ),
        ("controller.listener.names".into(), "CONTROLLER".into()),
        ("inter.broker.listener.name".into(), "PLAINTEXT".into()),
        (
            "listener.security.protocol.map".into(),
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        ),
        ("log.dirs".into(), log_dir.display().to_string()),
    ];
    props.extend(
        dev_defaults(plan.len() as u32)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    for (k, v) in overrides {
        match props.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => props.push((k.clone(), v.clone())),
        }
    }
    let mut out = format!(
        "# Node {} of a {}-node Brook dev cluster, written by 'brook dev-cluster'.\n\
         # Start it alone with: brook broker <this file>\n",
        node.id,
        plan.len()
    );
    for (k, v) in props {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

/// Ports for N nodes: from --base-port, or free ones picked by the OS (all bound at once, so no
/// two are the same; there is a small window before the nodes bind them again).
fn plan_ports(n: u32, base: u16) -> Result<Vec<NodePlan>, String> {
    if base != 0 {
        let last = base as u32 + 2 * n - 1;
        if last > u16::MAX as u32 {
            return Err(format!(
                "--base-port {base} leaves no room for {n} nodes (ports up to {last} needed)"
            ));
        }
        return Ok((1..=n)
            .map(|id| NodePlan {
                id,
                client_port: base + 2 * (id - 1) as u16,
                controller_port: base + 2 * (id - 1) as u16 + 1,
            })
            .collect());
    }
    let sockets: Vec<TcpListener> = (0..2 * n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot pick free ports: {e}"))?;
    let ports: Vec<u16> = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot pick free ports: {e}"))?;
    Ok((1..=n)
        .map(|id| NodePlan {
            id,
            client_port: ports[2 * (id - 1) as usize],
            controller_port: ports[2 * (id - 1) as usize + 1],
        })
        .collect())
}

/// What an earlier run left in the data directory: its cluster id and ports, so the cluster can be
/// started again on its data.
fn previous_run(dir: &Path, n: u32) -> Option<(String, Vec<NodePlan>)> {
    let mut cluster_id = None;
    let mut plan = Vec::new();
    for id in 1..=n {
        let text = std::fs::read_to_string(dir.join(format!("node-{id}.properties"))).ok()?;
        let props: BTreeMap<String, String> = brook_broker::config::parse_properties(&text, "")
            .ok()?
            .into_iter()
            .collect();
        let port_of = |name: &str| -> Option<u16> {
            props
                .get("listeners")?
                .split(',')
                .find_map(|l| l.trim().strip_prefix(&format!("{name}://")))?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()
        };
        let cid = props.get("cluster.id")?.clone();
        if cluster_id.get_or_insert_with(|| cid.clone()) != &cid {
            return None;
        }
        // The same number of voters as before, or the quorum would not be the same one.
        if props.get("controller.quorum.voters")?.split(',').count() != n as usize {
            return None;
        }
        plan.push(NodePlan {
            id,
            client_port: port_of("PLAINTEXT")?,
            controller_port: port_of("CONTROLLER")?,
        });
    }
    Some((cluster_id?, plan))
}

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "exited".to_string(),
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

struct Node {
    plan: NodePlan,
    child: Child,
    log: PathBuf,
}

/// Sends SIGTERM to every live node, waits up to the grace period, then SIGKILLs the rest.
fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter_mut() {
        if let Ok(None) = n.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        let running = nodes
            .iter_mut()
            .filter_map(|n| matches!(n.child.try_wait(), Ok(None)).then_some(()))
            .count();
        if running == 0 {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in nodes.iter_mut() {
        if let Ok(None) = n.child.try_wait() {
            eprintln!(
                "[dev-cluster] node {} did not stop within {}s; killing it",
                n.plan.id,
                STOP_GRACE.as_secs()
            );
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }
}

/// `brook dev-cluster ARGS...`: the exit code.
pub fn main(args: Vec<String>) -> i32 {
    run(parse(args))
}

/// Runs the cluster until a signal (exit 0) or a node's death (exit 1).
pub fn run(args: Args) -> i32 {
    if args.brokers < 1 {
        fail(format!(
            "--brokers must be at least 1 (got {})",
            args.brokers
        ));
    }
    let n = args.brokers;
    let mut overrides = Vec::new();
    for o in &args.overrides {
        match o.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                overrides.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => fail(format!("--override '{o}' is not of the form key=value")),
        }
    }
    for reserved in [
        "node.id",
        "broker.id",
        "listeners",
        "advertised.listeners",
        "controller.quorum.voters",
        "log.dirs",
        "log.dir",
    ] {
        if overrides.iter().any(|(k, _)| k == reserved) {
            fail(format!(
                "--override {reserved}=... is not possible: dev-cluster sets it per node \
                 (use --base-port and --data-dir)"
            ));
        }
    }
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            std::env::temp_dir().join(format!(
                "brook-dev-cluster-{}-{nanos:08x}",
                std::process::id()
            ))
        }
    };
    let dir = match dir.canonicalize() {
        Ok(d) => d,
        Err(_) if dir.is_absolute() => dir,
        Err(_) => std::env::current_dir().map(|c| c.join(&dir)).unwrap_or(dir),
    };
    let (cluster_id, plan) = match previous_run(&dir, n) {
        Some((cid, old_plan)) if args.base_port == 0 => (cid, old_plan),
        Some((cid, _)) => (
            cid,
            plan_ports(n, args.base_port).unwrap_or_else(|e| fail(e)),
        ),
        None if dir.join("node-1.properties").exists() => fail(format!(
            "{} holds another dev cluster (a different number of nodes or edited files); \
             start it with its own --brokers or use another --data-dir",
            dir.display()
        )),
        None => (
            brook_broker::state::short_uuid(uuid::Uuid::new_v4()),
            plan_ports(n, args.base_port).unwrap_or_else(|e| fail(e)),
        ),
    };

    // Check every node's configuration before writing or starting anything.
    let mut texts = Vec::new();
    for node in &plan {
        let log_dir = dir.join(format!("node-{}", node.id));
        let text = node_properties(&plan, node, &cluster_id, &log_dir, &overrides);
        let checked = brook_broker::config::parse_properties(&text, "")
            .and_then(BrokerConfig::from_properties);
        if let Err(e) = checked {
            fail(e);
        }
        texts.push(text);
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        fail(format!("cannot create --data-dir {}: {e}", dir.display()));
    }
    let mut files = Vec::new();
    for (node, text) in plan.iter().zip(texts) {
        let file = dir.join(format!("node-{}.properties", node.id));
        if let Err(e) = std::fs::write(&file, text) {
            fail(format!("cannot write {}: {e}", file.display()));
        }
        files.push(file);
    }

    install_signal_handlers();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => fail(format!("cannot find the brook executable: {e}")),
    };
    let mut nodes: Vec<Node> = Vec::new();
    for (node, file) in plan.iter().zip(&files) {
        let log = dir.join(format!("node-{}.log", node.id));
        let out = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            Ok(f) => f,
            Err(e) => {
                stop_all(&mut nodes);
                fail(format!("cannot open {}: {e}", log.display()));
            }
        };
        let err = out.try_clone().expect("duplicating a file handle");
        let mut cmd = Command::new(&exe);
        cmd.arg("broker")
            .arg(file)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        {
            use std::os::unix::process::CommandExt;
            // Own process group: a terminal's Ctrl-C reaches only dev-cluster, which then stops
            // the nodes in order. If dev-cluster itself is killed, the kernel sends the nodes
            // SIGTERM (PR_SET_PDEATHSIG), so no orphaned broker keeps its ports.
            cmd.process_group(0);
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        match cmd.spawn() {
            Ok(child) => nodes.push(Node {
                plan: node.clone(),
                child,
                log,
            }),
            Err(e) => {
                stop_all(&mut nodes);
                eprintln!("brook dev-cluster: cannot start node {}: {e}", node.id);
                return 1;
            }
        }
    }

    // Wait until every node accepts client connections, then until each one answers
    // DescribeCluster with all N brokers registered and an active controller: the cluster is
    // usable when the bootstrap line appears.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            stop_all(&mut nodes);
            eprintln!("brook dev-cluster: cannot start a runtime: {e}");
            return 1;
        }
    };
    let deadline = Instant::now() + START_TIMEOUT;
    let mut listening = vec![false; nodes.len()];
    let mut registered = vec![false; nodes.len()];
    let mut controller = -1;
    while registered.iter().any(|r| !r) {
        if SIGNALLED.load(Ordering::SeqCst) != 0 {
            stop_all(&mut nodes);
            return 0;
        }
        if let Some(code) = check_children(&mut nodes) {
            return code;
        }
        for (i, node) in nodes.iter().enumerate() {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, node.plan.client_port));
            if !listening[i] {
                listening[i] =
                    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            } else if !registered[i] {
                if let Some(c) = describe_cluster(&runtime, &addr.to_string(), n) {
                    registered[i] = true;
                    controller = c;
                }
            }
        }
        if Instant::now() > deadline {
            let late: Vec<String> = nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !registered[*i])
                .map(|(i, n)| {
                    let what = match listening[i] {
                        false => "not accepting connections",
                        true => "not listing every broker with a controller",
                    };
                    format!("node {} {what} (log {})", n.plan.id, n.log.display())
                })
                .collect();
            eprintln!(
                "brook dev-cluster: not ready after {}s: {}",
                START_TIMEOUT.as_secs(),
                late.join("; ")
            );
            stop_all(&mut nodes);
            return 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(runtime);

    let bootstrap: Vec<String> = plan
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.client_port))
        .collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "[dev-cluster] {n} node(s), cluster.id={cluster_id}, data in {}",
        dir.display()
    );
    for node in &nodes {
        let _ = writeln!(
            out,
            "[dev-cluster] node.id={} pid={} listening on PLAINTEXT://127.0.0.1:{} \
             (controller 127.0.0.1:{}), config {}, log {}",
            node.plan.id,
            node.child.id(),
            node.plan.client_port,
            node.plan.controller_port,
            dir.join(format!("node-{}.properties", node.plan.id))
                .display(),
            node.log.display()
        );
    }
    let _ = writeln!(
        out,
        "[dev-cluster] active controller: node {controller}; Ctrl-C stops the cluster"
    );
    // Tests and scripts read this line; keep it last and keep its form.
    let _ = writeln!(out, "bootstrap.servers={}", bootstrap.join(","));
    let _ = out.flush();
    drop(out);

    loop {
        if SIGNALLED.load(Ordering::SeqCst) != 0 {
            eprintln!("[dev-cluster] stopping {n} node(s)");
            stop_all(&mut nodes);
            println!("[dev-cluster] stopped");
            return 0;
        }
        if let Some(code) = check_children(&mut nodes) {
            return code;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The active controller's id when the node at `addr` answers DescribeCluster listing `n`
/// brokers and a controller.
fn describe_cluster(runtime: &tokio::runtime::Runtime, addr: &str, n: u32) -> Option<i32> {
    let mut config = brook_client::cluster::ClientConfig::new(addr);
    config.client_id = "brook-dev-cluster".into();
    config.request_timeout = Duration::from_secs(2);
    let admin = brook_client::Admin::new(config).ok()?;
    let described = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), admin.describe_cluster()).await
    });
    match described {
        Ok(Ok(d)) if d.brokers.len() == n as usize && d.controller_id >= 0 => Some(d.controller_id),
        _ => None,
    }
}

/// When a node has exited: says which, stops the others and gives the exit code.
fn check_children(nodes: &mut [Node]) -> Option<i32> {
    let dead = nodes
        .iter_mut()
        .enumerate()
        .find_map(|(i, n)| n.child.try_wait().ok().flatten().map(|status| (i, status)))?;
    // A node that stopped because of the same Ctrl-C is not a failure.
    if SIGNALLED.load(Ordering::SeqCst) != 0 {
        stop_all(nodes);
        return Some(0);
    }
    let (i, status) = dead;
    let node = &nodes[i];
    eprintln!(
        "brook dev-cluster: node {} (pid {}, PLAINTEXT://127.0.0.1:{}) {}; last lines of {}:\n{}",
        node.plan.id,
        node.child.id(),
        node.plan.client_port,
        describe_exit(status),
        node.log.display(),
        tail(&node.log, 15)
    );
    eprintln!("[dev-cluster] stopping the other nodes");
    stop_all(nodes);
    Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_file_is_a_valid_consistent_config() {
        let plan = plan_ports(3, 19092).unwrap();
        assert_eq!(plan[2].client_port, 19096);
        assert_eq!(plan[2].controller_port, 19097);
        let overrides = vec![("replica.lag.time.max.ms".to_string(), "2000".to_string())];
        for node in &plan {
            let text = node_properties(&plan, node, "abc", Path::new("/tmp/x"), &overrides);
            let props = brook_broker::config::parse_properties(&text, "f").unwrap();
            let c = BrokerConfig::from_properties(props).unwrap();
            assert_eq!(c.node_id, node.id as i32);
            assert_eq!(c.cluster.voters.len(), 3);
            assert_eq!(c.client_listener().port, node.client_port);
            assert_eq!(
                c.cluster.controller_listener.as_ref().unwrap().port,
                node.controller_port
            );
            assert_eq!(c.default_replication_factor, 3);
            assert_eq!(c.properties["min.insync.replicas"], "2");
            assert_eq!(c.cluster.replica_lag_time_max_ms, 2000);
            assert_eq!(c.cluster.broker_session_timeout_ms, 2000);
            assert_eq!(text.matches("replica.lag.time.max.ms").count(), 1);
        }
    }

    #[test]
    fn small_clusters_lower_replication() {
        let plan = plan_ports(1, 0).unwrap();
        let text = node_properties(&plan, &plan[0], "abc", Path::new("/tmp/x"), &[]);
        let props = brook_broker::config::parse_properties(&text, "f").unwrap();
        let c = BrokerConfig::from_properties(props).unwrap();
        assert_eq!(c.default_replication_factor, 1);
        assert_eq!(c.properties["min.insync.replicas"], "1");
        assert_eq!(c.coordinator.offsets_replication_factor, 1);
        assert!(plan_ports(3, 65533).is_err());
    }
}
