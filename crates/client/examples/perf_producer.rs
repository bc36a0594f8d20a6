//! Producer throughput, for bench/run.sh: sends N records of S bytes to one partition with
//! acks=1 and prints "records/s MB/s" (MB = 10^6 bytes, as rdkafka_performance prints).
//!
//! ```sh
//! cargo run --release -p brook-client --example perf_producer -- 127.0.0.1:9092 topic 500000 1024
//! ```

use std::time::Instant;

use brook_client::producer::Acks;
use brook_client::{Producer, ProducerConfig, ProducerRecord};
use bytes::Bytes;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, count, size] = args.as_slice() else {
        return Err("usage: perf_producer BOOTSTRAP TOPIC COUNT SIZE".into());
    };
    let (count, size): (usize, usize) = (count.parse()?, size.parse()?);
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = Acks::Leader;
    config.enable_idempotence = false;
    config.batch_size = 1_000_000;
    let producer = Producer::new(config)?;
    let value = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut last = None;
    for _ in 0..count {
        let mut r = ProducerRecord::new(topic.as_str(), None::<Bytes>, Some(value.clone()));
        r.partition = Some(0);
        last = Some(producer.send(r).await?);
    }
    producer.flush().await?;
    if let Some(last) = last {
        last.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:.0} {:.2}",
        count as f64 / secs,
        (count * size) as f64 / secs / 1e6
    );
    Ok(())
}
