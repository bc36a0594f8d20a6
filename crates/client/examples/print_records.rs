//! Reads partition 0 of a topic from offset 0 (manual assignment, no group) and prints COUNT
//! records exactly as the consumer returns them, one per line, tab-separated:
//! `offset timestamp key value headers`, where key and value are hex (`-` for null) and headers
//! are `name:hex` (`name:-` for a null value) joined by `,` (the names hex too).
//!
//! ```sh
//! cargo run --release -p brook-client --example print_records -- localhost:9092 topic 10
//! ```

use std::time::{Duration, Instant};

use brook_client::{Consumer, ConsumerConfig};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn opt_hex(b: &Option<bytes::Bytes>) -> String {
    b.as_deref().map_or_else(|| "-".into(), hex)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, count] = args.as_slice() else {
        return Err("usage: print_records BOOTSTRAP TOPIC COUNT".into());
    };
    let count: usize = count.parse()?;
    let mut consumer = Consumer::new(ConsumerConfig::new(bootstrap, None))?;
    consumer.assign(vec![(topic.clone(), 0)]);
    consumer.seek((topic.clone(), 0), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut printed = 0;
    while printed < count {
        if Instant::now() > deadline {
            return Err(format!("only {printed} of {count} records within 30 s").into());
        }
        for r in consumer.poll(Duration::from_millis(500)).await? {
            if printed == count {
                break;
            }
            let headers: Vec<String> = r
                .headers
                .iter()
                .map(|(k, v)| format!("{}:{}", hex(k.as_bytes()), opt_hex(v)))
                .collect();
            println!(
                "{}\t{}\t{}\t{}\t{}",
                r.offset,
                r.timestamp,
                opt_hex(&r.key),
                opt_hex(&r.value),
                headers.join(",")
            );
            printed += 1;
        }
    }
    Ok(())
}
