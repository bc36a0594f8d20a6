//! `kafka-consumer-perf-test`: joins a group on `--topic`, reads `--messages` records (or gives up
//! after `--timeout` ms without one) and prints Kafka's ConsumerPerformance report: the header,
//! then one data line (or a line per `--reporting-interval` with `--show-detailed-stats`).
//!
//! rebalance.time.ms is the time from the start until the group first assigned partitions, as
//! seen after each poll (Brook's consumer has no rebalance listener), so it may include the
//! first fetch of up to 100 ms. Dates are printed in UTC.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brook_client::cluster::Cluster;
use brook_client::{Consumer, ConsumerConfig};
use clap::Parser;

use super::common::{self, ToolError, ToolResult};
use super::producer_perf::print_metrics;

const TOOL: &str = "kafka-consumer-perf-test";
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser)]
#[command(about = "This tool is used to verify the consumer performance.")]
struct Args {
    /// REQUIRED: the server(s) to connect to.
    #[arg(long, num_args = 1.., required = true, value_name = "SERVERS")]
    bootstrap_server: Vec<String>,
    /// REQUIRED: the topic to consume from.
    #[arg(long, required = true, value_name = "TOPIC")]
    topic: String,
    /// REQUIRED: the number of messages to consume.
    #[arg(long, required = true, value_name = "COUNT")]
    messages: i64,
    /// The group id to consume on (default perf-consumer-NNNNN).
    #[arg(long, value_name = "GROUP_ID")]
    group: Option<String>,
    /// The amount of data to fetch in a single request (max.partition.fetch.bytes).
    #[arg(long, default_value_t = 1024 * 1024, value_name = "SIZE")]
    fetch_size: i32,
    /// The size of the TCP receive buffer (accepted; Brook's client uses the OS default).
    #[arg(long, default_value_t = 2 * 1024 * 1024, value_name = "SIZE")]
    socket_buffer_size: i32,
    /// Start from the latest offset when the group has no committed offset (default earliest).
    #[arg(long)]
    from_latest: bool,
    /// The maximum time in ms allowed between two returned records.
    #[arg(long, default_value_t = 10_000, value_name = "MILLISECONDS")]
    timeout: u64,
    /// Interval in ms between progress lines of --show-detailed-stats.
    #[arg(long, default_value_t = 5000, value_name = "MILLISECONDS")]
    reporting_interval: u64,
    /// Print a progress line every --reporting-interval instead of the final summary.
    #[arg(long)]
    show_detailed_stats: bool,
    /// Do not print the header line.
    #[arg(long)]
    hide_header: bool,
    /// Print the client's metrics at the end.
    #[arg(long)]
    print_metrics: bool,
    /// Consumer config properties file.
    #[arg(long = "consumer.config", value_name = "CONFIG-FILE")]
    consumer_config: Option<PathBuf>,
    /// Java SimpleDateFormat pattern for the times (y M d H h m s S a Z z E and 'quoted' text).
    #[arg(
        long,
        default_value = "yyyy-MM-dd HH:mm:ss:SSS",
        value_name = "DATE-FORMAT"
    )]
    date_format: String,
    /// Deprecated in Kafka 3.x and ignored.
    #[arg(long, value_name = "COUNT")]
    num_fetch_threads: Option<i32>,
    /// Deprecated in Kafka 3.x and ignored.
    #[arg(long, value_name = "COUNT")]
    threads: Option<i32>,
}

/// Runs `kafka-consumer-perf-test` with these arguments; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let args: Args = common::parse_args(TOOL, args);
    common::run(TOOL, execute(args))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A Java SimpleDateFormat pattern, checked once.
struct DateFormat(Vec<Piece>);

enum Piece {
    Text(String),
    Field(char, usize),
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

impl DateFormat {
    fn parse(pattern: &str) -> Result<DateFormat, ToolError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pieces = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // 'text' is literal; '' is a quote.
                let mut text = String::new();
                i += 1;
                if i < chars.len() && chars[i] == '\'' {
                    pieces.push(Piece::Text("'".into()));
                    i += 1;
                    continue;
                }
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ToolError::new(format!(
                                "Invalid --date-format {pattern:?}: unterminated quote"
                            )))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                pieces.push(Piece::Text(text));
            } else if c.is_ascii_alphabetic() {
                if !"yMdHhmsSaZzEX".contains(c) {
                    return Err(ToolError::new(format!(
                        "Invalid --date-format {pattern:?}: unsupported pattern letter '{c}'"
                    )));
                }
                let mut n = 1;
                while chars.get(i + n) == Some(&c) {
                    n += 1;
                }
                pieces.push(Piece::Field(c, n));
                i += n;
            } else {
                pieces.push(Piece::Text(c.to_string()));
                i += 1;
            }
        }
        Ok(DateFormat(pieces))
    }

    /// Formats milliseconds since the epoch (UTC).
    fn format(&self, epoch_ms: i64) -> String {
        let days = epoch_ms.div_euclid(86_400_000);
        let ms_of_day = epoch_ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let hour = ms_of_day / 3_600_000;
        let minute = ms_of_day / 60_000 % 60;
        let second = ms_of_day / 1000 % 60;
        let milli = ms_of_day % 1000;
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(c, n) => {
                    let n = *n;
                    let num = |v: i64| format!("{v:0n$}");
                    let text = match c {
                        'y' if n == 2 => format!("{:02}", year.rem_euclid(100)),
                        'y' => num(year),
                        'M' if n >= 4 => MONTHS[month as usize - 1].to_string(),
                        'M' if n == 3 => MONTHS[month as usize - 1][..3].to_string(),
                        'M' => num(i64::from(month)),
                        'd' => num(i64::from(day)),
                        'H' => num(hour),
                        'h' => num(if hour % 12 == 0 { 12 } else { hour % 12 }),
                        'm' => num(minute),
                        's' => num(second),
                        'S' => num(milli),
                        'a' => if hour < 12 { "AM" } else { "PM" }.to_string(),
                        'E' => {
                            let name = DAYS[days.rem_euclid(7) as usize];
                            if n >= 4 { name } else { &name[..3] }.to_string()
                        }
                        'Z' => "+0000".to_string(),
                        'X' => "Z".to_string(),
                        _ => "UTC".to_string(),
                    };
                    out.push_str(&text);
                }
            }
        }
        out
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random default group, as Kafka's "perf-consumer-" + nextInt(100000).
fn default_group() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0)
        ^ u64::from(std::process::id()).wrapping_mul(2_654_435_761);
    format!("perf-consumer-{}", n % 100_000)
}

/// The consumer properties: the file, then the flags, with Kafka's tool defaults.
fn properties(args: &Args) -> Result<BTreeMap<String, String>, ToolError> {
    let mut props = match &args.consumer_config {
        Some(path) => common::properties_file(path)?,
        None => BTreeMap::new(),
    };
    props.insert(
        "bootstrap.servers".into(),
        common::bootstrap(&args.bootstrap_server)?,
    );
    match &args.group {
        Some(g) => {
            props.insert("group.id".into(), g.clone());
        }
        None => {
            props.entry("group.id".into()).or_insert_with(default_group);
        }
    }
    props.insert(
        "max.partition.fetch.bytes".into(),
        args.fetch_size.to_string(),
    );
    props.insert(
        "auto.offset.reset".into(),
        if args.from_latest {
            "latest"
        } else {
            "earliest"
        }
        .into(),
    );
    props
        .entry("client.id".into())
        .or_insert_with(|| "perf-consumer-client".into());
    // Kafka's tool turns off CRC checks; Brook's consumer has no such setting.
    props.remove("check.crcs");
    props.remove("receive.buffer.bytes");
    Ok(props)
}

/// What a progress line needs from the run.
struct Progress {
    bytes: u64,
    messages: u64,
}

fn print_header(detailed: bool) {
    let extra = ", rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";
    if detailed {
        println!(
            "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec{extra}"
        );
    } else {
        println!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec{extra}");
    }
}

/// One --show-detailed-stats line (Kafka's printBasicProgress + printExtendedProgress).
fn progress_line(
    format: &DateFormat,
    now: Progress,
    last: &Progress,
    start_ms: i64,
    end_ms: i64,
    join_ms: i64,
) -> String {
    let elapsed = (end_ms - start_ms) as f64;
    let total_mb = now.bytes as f64 / MIB;
    let interval_mb = (now.bytes - last.bytes) as f64 / MIB;
    let interval_msgs = (now.messages - last.messages) as f64;
    let (mb_rate, msg_rate) = if elapsed > 0.0 {
        (
            1000.0 * interval_mb / elapsed,
            1000.0 * interval_msgs / elapsed,
        )
    } else {
        (0.0, 0.0)
    };
    let fetch_ms = end_ms - start_ms - join_ms;
    let (fetch_mb_rate, fetch_msg_rate) = if fetch_ms > 0 {
        (
            1000.0 * interval_mb / fetch_ms as f64,
            1000.0 * interval_msgs / fetch_ms as f64,
        )
    } else {
        (0.0, 0.0)
    };
    format!(
        "{}, 0, {total_mb:.4}, {mb_rate:.4}, {}, {msg_rate:.4}, {join_ms}, {fetch_ms}, {fetch_mb_rate:.4}, {fetch_msg_rate:.4}",
        format.format(end_ms),
        now.messages
    )
}

/// The summary line (Kafka's non-detailed output).
fn summary_line(
    format: &DateFormat,
    start_ms: i64,
    end_ms: i64,
    bytes: u64,
    messages: u64,
    join_ms: i64,
) -> String {
    let elapsed_sec = ((end_ms - start_ms) as f64 / 1000.0).max(1e-3);
    let mb = bytes as f64 / MIB;
    let fetch_ms = end_ms - start_ms - join_ms;
    let fetch_sec = (fetch_ms as f64 / 1000.0).max(1e-3);
    format!(
        "{}, {}, {mb:.4}, {:.4}, {messages}, {:.4}, {join_ms}, {fetch_ms}, {:.4}, {:.4}",
        format.format(start_ms),
        format.format(end_ms),
        mb / elapsed_sec,
        messages as f64 / elapsed_sec,
        mb / fetch_sec,
        messages as f64 / fetch_sec
    )
}

async fn execute(args: Args) -> ToolResult {
    if args.messages < 0 {
        return Err(ToolError::new("--messages must not be negative"));
    }
    if args.num_fetch_threads.is_some() || args.threads.is_some() {
        eprintln!(
            "WARNING: --num-fetch-threads and --threads are deprecated (as in Kafka 3.x) and ignored"
        );
    }
    let date_format = DateFormat::parse(&args.date_format)?;
    let props = properties(&args)?;
    let client_id = props.get("client.id").cloned().unwrap_or_default();
    let config = ConsumerConfig::from_properties(props)
        .map_err(|e| ToolError::new(format!("Invalid consumer properties: {e}")))?;

    // Fail fast (within request.timeout.ms) when no bootstrap server answers.
    let request_timeout = config.client.request_timeout;
    let cluster = Cluster::new(config.client.clone())?;
    match tokio::time::timeout(request_timeout, cluster.any()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(ToolError::new(format!("Cannot reach the cluster: {e}"))),
        Err(_) => {
            return Err(ToolError::new(format!(
                "Cannot reach the cluster: no answer within {} ms (request.timeout.ms)",
                request_timeout.as_millis()
            )))
        }
    }
    drop(cluster);

    let mut consumer = Consumer::new(config)?;
    if !args.hide_header {
        print_header(args.show_detailed_stats);
    }
    let count = args.messages as u64;
    let timeout = Duration::from_millis(args.timeout);
    let interval = Duration::from_millis(args.reporting_interval.max(1));
    let start_ms = now_ms();
    let started = Instant::now();
    consumer.subscribe(vec![args.topic.clone()])?;
    let mut join_ms: Option<i64> = None;
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut last = Progress {
        bytes: 0,
        messages: 0,
    };
    let mut last_report_ms = start_ms;
    // Kafka's periodic join time: the rebalance time falls into the first reported interval.
    let mut join_reported = false;
    let mut last_consumed = Instant::now();
    while messages < count && last_consumed.elapsed() <= timeout {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        if join_ms.is_none() && !consumer.assignment().is_empty() {
            join_ms = Some(started.elapsed().as_millis() as i64);
        }
        if records.is_empty() {
            continue;
        }
        last_consumed = Instant::now();
        for r in &records {
            messages += 1;
            bytes += r.key.as_ref().map_or(0, |k| k.len()) as u64;
            bytes += r.value.as_ref().map_or(0, |v| v.len()) as u64;
            if args.show_detailed_stats {
                let now = now_ms();
                if now - last_report_ms >= interval.as_millis() as i64 {
                    let current = Progress { bytes, messages };
                    println!(
                        "{}",
                        progress_line(
                            &date_format,
                            current,
                            &last,
                            last_report_ms,
                            now,
                            if join_reported {
                                0
                            } else {
                                join_ms.unwrap_or(0)
                            }
                        )
                    );
                    join_reported = join_ms.is_some();
                    last = Progress { bytes, messages };
                    last_report_ms = now;
                }
            }
        }
    }
    let end_ms = now_ms();
    let elapsed = started.elapsed();
    if messages < count {
        println!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.",
            args.timeout
        );
    }
    let _ = consumer.close().await;
    if !args.show_detailed_stats {
        println!(
            "{}",
            summary_line(
                &date_format,
                start_ms,
                end_ms,
                bytes,
                messages,
                join_ms.unwrap_or(0)
            )
        );
    }
    if args.print_metrics {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let tag = format!("{{client-id={client_id}}}");
        let metrics: Vec<(String, f64)> = [
            ("records-consumed-total", messages as f64),
            ("records-consumed-rate", messages as f64 / secs),
            ("bytes-consumed-total", bytes as f64),
            ("bytes-consumed-rate", bytes as f64 / secs),
        ]
        .into_iter()
        .map(|(n, v)| (format!("consumer-fetch-manager-metrics:{n}:{tag}"), v))
        .collect();
        print_metrics(&metrics);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_simple_date_format() {
        let f = DateFormat::parse("yyyy-MM-dd HH:mm:ss:SSS").unwrap();
        // 2024-02-29T13:05:09.007Z
        assert_eq!(f.format(1_709_211_909_007), "2024-02-29 13:05:09:007");
        assert_eq!(f.format(0), "1970-01-01 00:00:00:000");
        let f = DateFormat::parse("EEE, d MMM yy h:mm a 'at' ''Z''").unwrap();
        assert_eq!(
            f.format(1_709_211_909_007),
            "Thu, 29 Feb 24 1:05 PM at '+0000'"
        );
        assert!(DateFormat::parse("yyyy-QQ").is_err());
        assert!(DateFormat::parse("'open").is_err());
    }

    #[test]
    fn the_summary_line_has_kafkas_columns() {
        let f = DateFormat::parse("yyyy-MM-dd HH:mm:ss:SSS").unwrap();
        let line = summary_line(&f, 0, 2000, 2 * 1024 * 1024, 2048, 1000);
        assert_eq!(
            line,
            "1970-01-01 00:00:00:000, 1970-01-01 00:00:02:000, 2.0000, 1.0000, 2048, 1024.0000, 1000, 1000, 2.0000, 2048.0000"
        );
    }
}
