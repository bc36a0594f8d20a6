//! `kafka-producer-perf-test`: sends `--num-records` records of `--record-size` random bytes
//! (or payloads from `--payload-file`) as fast as `--throughput` allows, and prints Kafka's
//! ProducerPerformance report: a progress line every 5 s and a final line with the average, max
//! and percentile latencies (send to acknowledgement of each record).
//!
//! Acknowledgements are observed in send order (one collector task awaits each record's
//! [`DeliveryFuture`] in turn). With one partition that is the exact acknowledgement time; with
//! several, a record acknowledged before an earlier-sent record of another partition is counted
//! when that earlier record is acknowledged (its latency is an upper bound).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brook_client::cluster::Cluster;
use brook_client::producer::DeliveryFuture;
use brook_client::{Producer, ProducerConfig, ProducerRecord};
use bytes::Bytes;
use clap::Parser;
use tokio::sync::mpsc;

use super::common::{self, ToolError, ToolResult};

const TOOL: &str = "kafka-producer-perf-test";

#[derive(Parser)]
#[command(about = "This tool is used to verify the producer performance.")]
struct Args {
    /// REQUIRED: produce messages to this topic.
    #[arg(long, required = true, value_name = "TOPIC")]
    topic: String,
    /// REQUIRED: number of messages to produce.
    #[arg(long, required = true, value_name = "NUM-RECORDS")]
    num_records: i64,
    /// Message size in bytes. Exactly one of --record-size or --payload-file must be given.
    #[arg(long, value_name = "RECORD-SIZE", conflicts_with = "payload_file")]
    record_size: Option<usize>,
    /// File to read the message payloads from (UTF-8, split by --payload-delimiter); a random
    /// payload of the file is sent each time.
    #[arg(long, value_name = "PAYLOAD-FILE")]
    payload_file: Option<PathBuf>,
    /// Delimiter between the payloads of --payload-file.
    #[arg(long, value_name = "PAYLOAD-DELIMITER", default_value = "\\n")]
    payload_delimiter: String,
    /// REQUIRED: throttle to approximately this many messages/sec; -1 for no throttling.
    #[arg(
        long,
        required = true,
        value_name = "THROUGHPUT",
        allow_negative_numbers = true
    )]
    throughput: f64,
    /// Kafka producer properties (k=v ...); they override --producer.config.
    #[arg(long, num_args = 1.., value_name = "PROP-NAME=PROP-VALUE")]
    producer_props: Vec<String>,
    /// Producer config properties file.
    #[arg(long = "producer.config", value_name = "CONFIG-FILE")]
    producer_config: Option<PathBuf>,
    /// The server(s) to connect to (overrides bootstrap.servers of the properties).
    #[arg(long, num_args = 1.., value_name = "BOOTSTRAP-SERVERS")]
    bootstrap_server: Vec<String>,
    /// Print the client's metrics at the end of the test.
    #[arg(long)]
    print_metrics: bool,
    /// Transactional id (transactions are not supported by Brook's producer yet).
    #[arg(long, value_name = "TRANSACTIONAL-ID")]
    transactional_id: Option<String>,
    /// Transaction duration (transactions are not supported by Brook's producer yet).
    #[arg(long, value_name = "TRANSACTION-DURATION")]
    transaction_duration_ms: Option<i64>,
}

/// Runs `kafka-producer-perf-test` with these arguments; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let args: Args = common::parse_args(TOOL, args);
    common::run(TOOL, execute(args))
}

/// Kafka's `--payload-delimiter` is given escaped ("\n"); these are the escapes it undoes.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\r", "\r")
}

/// The producer properties: the file, then `--producer-props`, then `--bootstrap-server`, with
/// the tool's client.id default (as ProducerPerformance reads them).
fn properties(args: &Args) -> Result<BTreeMap<String, String>, ToolError> {
    let mut props = match &args.producer_config {
        Some(path) => common::properties_file(path)?,
        None => BTreeMap::new(),
    };
    props.extend(common::key_values(
        &args.producer_props,
        "--producer-props",
    )?);
    if !args.bootstrap_server.is_empty() {
        props.insert(
            "bootstrap.servers".into(),
            common::bootstrap(&args.bootstrap_server)?,
        );
    }
    if !props.contains_key("bootstrap.servers") {
        return Err(ToolError::new(
            "Either --bootstrap-server, --producer-props bootstrap.servers=... or --producer.config \
             must give the bootstrap servers",
        ));
    }
    props
        .entry("client.id".into())
        .or_insert_with(|| "perf-producer-client".into());
    if args.transactional_id.is_some()
        || args.transaction_duration_ms.is_some()
        || props.contains_key("transactional.id")
    {
        return Err(ToolError::new(
            "Transactions are not supported by Brook's producer yet \
             (--transactional-id, --transaction-duration-ms, transactional.id)",
        ));
    }
    Ok(props)
}

/// A small xorshift generator: random payload letters need no cryptographic quality.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Rng(nanos | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The payloads to send: one random record of uppercase letters (as Kafka generates it), or the
/// non-empty pieces of the payload file.
fn payloads(args: &Args, rng: &mut Rng) -> Result<Vec<Bytes>, ToolError> {
    match (&args.record_size, &args.payload_file) {
        (Some(size), None) => {
            let payload: Vec<u8> = (0..*size).map(|_| b'A' + rng.below(26) as u8).collect();
            Ok(vec![Bytes::from(payload)])
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ToolError::new(format!("Cannot read {}: {e}", path.display())))?;
            println!("Reading payloads from: {}", path.display());
            let delimiter = unescape(&args.payload_delimiter);
            let list: Vec<Bytes> = if delimiter.is_empty() {
                vec![Bytes::from(text.into_bytes())]
            } else {
                text.split(delimiter.as_str())
                    .filter(|p| !p.is_empty())
                    .map(|p| Bytes::from(p.as_bytes().to_vec()))
                    .collect()
            };
            if list.is_empty() {
                return Err(ToolError::new("File does not contain any payloads"));
            }
            println!("Number of messages read: {}", list.len());
            Ok(list)
        }
        _ => Err(ToolError::new(
            "Either --record-size or --payload-file must be specified but not both.",
        )),
    }
}

/// Kafka's ThroughputThrottler: sleeps in steps of at least 2 ms to keep the average rate of
/// sends at `target` per second.
struct Throttler {
    target: f64,
    start: Instant,
    sleep_per_op_ns: u64,
    deficit_ns: u64,
}

impl Throttler {
    const MIN_SLEEP_NS: u64 = 2_000_000;

    fn new(target: f64, start: Instant) -> Throttler {
        let sleep_per_op_ns = if target > 0.0 {
            (1e9 / target) as u64
        } else {
            0
        };
        Throttler {
            target,
            start,
            sleep_per_op_ns,
            deficit_ns: 0,
        }
    }

    /// Whether `sent` sends by `now` are above the target rate.
    fn should_throttle(&self, sent: i64, now: Instant) -> bool {
        if self.target < 0.0 {
            return false;
        }
        let elapsed = now.duration_since(self.start).as_secs_f64();
        elapsed > 0.0 && sent as f64 / elapsed > self.target
    }

    async fn throttle(&mut self) {
        self.deficit_ns += self.sleep_per_op_ns;
        if self.deficit_ns >= Self::MIN_SLEEP_NS {
            let started = Instant::now();
            tokio::time::sleep(Duration::from_nanos(self.deficit_ns)).await;
            let slept = started.elapsed().as_nanos() as u64;
            self.deficit_ns = self.deficit_ns.saturating_sub(slept);
        }
    }
}

/// Kafka's ProducerPerformance.Stats: totals, a 5 s reporting window, sampled latencies.
struct Stats {
    start: Instant,
    window_start: Instant,
    iteration: u64,
    sampling: u64,
    latencies: Vec<u32>,
    count: u64,
    bytes: u64,
    max_latency: u64,
    total_latency: u64,
    window_count: u64,
    window_bytes: u64,
    window_max_latency: u64,
    window_total_latency: u64,
    reporting_interval: Duration,
    errors: u64,
    first_error: Option<String>,
    max_size: usize,
}

/// Kafka's MB: 1024 * 1024 bytes.
const MIB: f64 = 1024.0 * 1024.0;

impl Stats {
    fn new(num_records: u64, start: Instant) -> Stats {
        let sampling = (num_records / num_records.clamp(1, 500_000)).max(1);
        Stats {
            start,
            window_start: start,
            iteration: 0,
            sampling,
            latencies: Vec::with_capacity((num_records / sampling) as usize + 1),
            count: 0,
            bytes: 0,
            max_latency: 0,
            total_latency: 0,
            window_count: 0,
            window_bytes: 0,
            window_max_latency: 0,
            window_total_latency: 0,
            reporting_interval: Duration::from_millis(5000),
            errors: 0,
            first_error: None,
            max_size: 0,
        }
    }

    fn record(&mut self, latency_ms: u64, bytes: usize, now: Instant) {
        self.count += 1;
        self.bytes += bytes as u64;
        self.max_size = self.max_size.max(bytes);
        self.total_latency += latency_ms;
        self.max_latency = self.max_latency.max(latency_ms);
        self.window_count += 1;
        self.window_bytes += bytes as u64;
        self.window_total_latency += latency_ms;
        self.window_max_latency = self.window_max_latency.max(latency_ms);
        if self.iteration.is_multiple_of(self.sampling) {
            self.latencies
                .push(latency_ms.min(u64::from(u32::MAX)) as u32);
        }
        self.iteration += 1;
        if now.duration_since(self.window_start) >= self.reporting_interval {
            self.print_window(now);
            self.window_start = now;
            self.window_count = 0;
            self.window_bytes = 0;
            self.window_total_latency = 0;
            self.window_max_latency = 0;
        }
    }

    fn failed(&mut self, error: String) {
        self.iteration += 1;
        self.errors += 1;
        if self.first_error.is_none() {
            eprintln!("Error sending a record: {error}");
            self.first_error = Some(error);
        }
    }

    fn print_window(&self, now: Instant) {
        let elapsed_ms = now.duration_since(self.window_start).as_secs_f64() * 1000.0;
        let n = self.window_count as f64;
        println!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.window_count,
            1000.0 * n / elapsed_ms,
            1000.0 * self.window_bytes as f64 / elapsed_ms / MIB,
            self.window_total_latency as f64 / n.max(1.0),
            self.window_max_latency as f64
        );
    }

    /// Kafka's final line: totals and the 50th, 95th, 99th and 99.9th percentile latencies.
    fn total_line(&mut self, now: Instant) -> String {
        let elapsed_ms = (now.duration_since(self.start).as_secs_f64() * 1000.0).max(1e-3);
        self.latencies.sort_unstable();
        let pct = |p: f64| -> u32 {
            if self.latencies.is_empty() {
                return 0;
            }
            let i = ((p * self.latencies.len() as f64) as usize).min(self.latencies.len() - 1);
            self.latencies[i]
        };
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            1000.0 * self.count as f64 / elapsed_ms,
            1000.0 * self.bytes as f64 / elapsed_ms / MIB,
            self.total_latency as f64 / (self.count as f64).max(1.0),
            self.max_latency as f64,
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(0.999)
        )
    }

    /// What the tool measured of the client, by Kafka's producer metric names (only the ones
    /// this tool counts itself; Brook's client exposes no metrics registry yet).
    fn metrics(&self, elapsed: Duration, client_id: &str) -> Vec<(String, f64)> {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let tag = format!("{{client-id={client_id}}}");
        let avg_size = if self.count > 0 {
            self.bytes as f64 / self.count as f64
        } else {
            0.0
        };
        [
            ("record-send-total", self.count as f64),
            ("record-send-rate", self.count as f64 / secs),
            ("record-error-total", self.errors as f64),
            ("record-size-avg", avg_size),
            ("record-size-max", self.max_size as f64),
        ]
        .into_iter()
        .map(|(name, v)| (format!("producer-metrics:{name}:{tag}"), v))
        .collect()
    }
}

/// Prints metrics as Kafka's ToolsUtils.printMetrics does: a name column and the value.
pub fn print_metrics(metrics: &[(String, f64)]) {
    let width = metrics
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max("Metric Name".len());
    println!("\n{:<width$}   Value", "Metric Name");
    for (name, value) in metrics {
        println!("{name:<width$} : {value:.3}");
    }
}

type Pending = (DeliveryFuture, Instant, usize);

/// Awaits each record's acknowledgement in send order and feeds the stats.
async fn collect(mut stats: Stats, mut rx: mpsc::UnboundedReceiver<Pending>) -> Stats {
    while let Some((delivery, sent, size)) = rx.recv().await {
        match delivery.await {
            Ok(_) => {
                let now = Instant::now();
                let latency = now.duration_since(sent).as_millis() as u64;
                stats.record(latency, size, now);
            }
            Err(e) => stats.failed(e.to_string()),
        }
    }
    stats
}

async fn execute(args: Args) -> ToolResult {
    if args.num_records < 0 {
        return Err(ToolError::new("--num-records must not be negative"));
    }
    if args.throughput == 0.0 {
        return Err(ToolError::new(
            "--throughput 0 would never send a record; use a positive rate or -1 for no limit",
        ));
    }
    let props = properties(&args)?;
    let client_id = props.get("client.id").cloned().unwrap_or_default();
    let config = ProducerConfig::from_properties(props)
        .map_err(|e| ToolError::new(format!("Invalid producer properties: {e}")))?;
    let mut rng = Rng::seeded();
    let payloads = payloads(&args, &mut rng)?;

    // Fail fast (within request.timeout.ms) when no bootstrap server answers, instead of
    // waiting delivery.timeout.ms for every record.
    let timeout = config.client.request_timeout;
    let cluster = Cluster::new(config.client.clone())?;
    match tokio::time::timeout(timeout, cluster.any()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(ToolError::new(format!("Cannot reach the cluster: {e}"))),
        Err(_) => {
            return Err(ToolError::new(format!(
                "Cannot reach the cluster: no answer within {} ms (request.timeout.ms)",
                timeout.as_millis()
            )))
        }
    }
    drop(cluster);

    let producer = Producer::new(config)?;
    let num_records = args.num_records as u64;
    let start = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel::<Pending>();
    let collector = tokio::spawn(collect(Stats::new(num_records, start), rx));
    let mut throttler = Throttler::new(args.throughput, start);
    for i in 0..args.num_records {
        let payload = if payloads.len() == 1 {
            payloads[0].clone()
        } else {
            payloads[rng.below(payloads.len())].clone()
        };
        let size = payload.len();
        let record = ProducerRecord {
            topic: args.topic.clone(),
            value: Some(payload),
            ..Default::default()
        };
        let sent = Instant::now();
        let delivery = producer.send(record).await?;
        if tx.send((delivery, sent, size)).is_err() {
            return Err(ToolError::new("the acknowledgement collector stopped"));
        }
        if throttler.should_throttle(i + 1, sent) {
            throttler.throttle().await;
        }
    }
    drop(tx);
    producer.flush().await?;
    let mut stats = collector
        .await
        .map_err(|e| ToolError::new(format!("the acknowledgement collector failed: {e}")))?;
    let now = Instant::now();
    println!("{}", stats.total_line(now));
    if args.print_metrics {
        print_metrics(&stats.metrics(now.duration_since(start), &client_id));
    }
    if stats.errors > 0 {
        return Err(ToolError::new(format!(
            "{} of {} records failed; the first error: {}",
            stats.errors,
            num_records,
            stats.first_error.unwrap_or_default()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_totals_follow_kafkas_format() {
        let start = Instant::now();
        let mut s = Stats::new(1000, start);
        for i in 0..1000u64 {
            s.record(i % 100, 10, start);
        }
        let line = s.total_line(start + Duration::from_secs(1));
        assert!(
            line.starts_with("1000 records sent, 1000.000000 records/sec (0.01 MB/sec), 49.50 ms avg latency, 99.00 ms max latency, 50 ms 50th, 95 ms 95th, 99 ms 99th, 99 ms 99.9th."),
            "{line}"
        );
    }

    #[test]
    fn latencies_are_sampled_beyond_half_a_million_records() {
        let s = Stats::new(2_000_000, Instant::now());
        assert_eq!(s.sampling, 4);
        assert_eq!(Stats::new(10, Instant::now()).sampling, 1);
        assert_eq!(Stats::new(0, Instant::now()).sampling, 1);
    }

    #[test]
    fn the_throttler_holds_the_rate() {
        let start = Instant::now();
        let t = Throttler::new(500.0, start);
        assert!(t.should_throttle(1000, start + Duration::from_secs(1)));
        assert!(!t.should_throttle(400, start + Duration::from_secs(1)));
        assert!(!Throttler::new(-1.0, start)
            .should_throttle(1_000_000, start + Duration::from_millis(1)));
        assert_eq!(t.sleep_per_op_ns, 2_000_000);
    }

    #[test]
    fn the_payload_delimiter_is_unescaped() {
        assert_eq!(unescape("\\n"), "\n");
        assert_eq!(unescape(","), ",");
    }
}
