//! Consumer throughput: reads N records of partition 0 of TOPIC from offset 0 by manual
//! assignment and prints "records/s MB/s" (MB = 10^6 bytes of keys and values, as
//! rdkafka_performance counts them).
//!
//! ```sh
//! cargo run --release -p brook-client --example perf_consumer -- 127.0.0.1:9092 topic 1000000
//! ```

use std::time::{Duration, Instant};

use brook_client::consumer::OffsetReset;
use brook_client::{Consumer, ConsumerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, count] = args.as_slice() else {
        return Err("usage: perf_consumer BOOTSTRAP TOPIC N".into());
    };
    let count: usize = count.parse()?;
    let mut config = ConsumerConfig::new(bootstrap, None);
    config.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(config)?;
    consumer.assign(vec![(topic.clone(), 0)]);
    consumer.seek((topic.clone(), 0), 0);
    let (mut records, mut bytes) = (0usize, 0usize);
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while records < count {
        if Instant::now() > deadline {
            return Err(format!("only {records} of {count} records in 300 s").into());
        }
        let got = consumer.poll(Duration::from_millis(500)).await?;
        // The clock starts with the first records, as rdkafka_performance's does.
        if started.is_none() && !got.is_empty() {
            started = Some(Instant::now());
        }
        for r in &got {
            // Every record exactly once, in order: a fast wrong answer is no answer.
            if r.offset != records as i64 {
                return Err(format!("offset {} where {records} was due", r.offset).into());
            }
            records += 1;
            bytes +=
                r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len());
        }
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64()).max(1e-9);
    println!(
        "{:.0} {:.2}",
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
