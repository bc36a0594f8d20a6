//! A group member for cross-client tests: subscribes to TOPIC in GROUP with extra Kafka
//! properties (e.g. `group.protocol=consumer`), prints `assigned T-P,...` whenever its assignment
//! changes and `record P OFFSET` for each record, commits after each batch, and leaves the group
//! when stdin closes (or after 60 s).
//!
//! ```sh
//! cargo run --release -p brook-client --example group_consumer -- 127.0.0.1:9092 grp topic group.protocol=consumer
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_client::{Consumer, ConsumerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, group, topic, extra @ ..] = args.as_slice() else {
        return Err("usage: group_consumer BOOTSTRAP GROUP TOPIC [key=value ...]".into());
    };
    let mut props: BTreeMap<String, String> = [
        ("bootstrap.servers", bootstrap.as_str()),
        ("group.id", group.as_str()),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for kv in extra {
        let (k, v) = kv.split_once('=').ok_or("properties are key=value")?;
        props.insert(k.to_string(), v.to_string());
    }
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(props)?)?;
    consumer.subscribe(vec![topic.clone()])?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        stop2.store(true, Ordering::Relaxed);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut shown = None;
    let mut out = std::io::stdout();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        let assignment = consumer.assignment();
        if shown.as_ref() != Some(&assignment) {
            let list: Vec<String> = assignment.iter().map(|(t, p)| format!("{t}-{p}")).collect();
            writeln!(out, "assigned {}", list.join(","))?;
            shown = Some(assignment);
        }
        for r in &records {
            writeln!(out, "record {} {}", r.partition, r.offset)?;
        }
        if !records.is_empty() {
            // A commit refused mid-rebalance is retried with the next batch's.
            if let Err(e) = consumer.commit_sync().await {
                eprintln!("commit failed: {e}");
            }
        }
        out.flush()?;
    }
    consumer.close().await?;
    Ok(())
}
