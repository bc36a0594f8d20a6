//! Reads a topic as a member of a consumer group: subscribes, polls, prints each record and
//! commits what it printed after every poll; stops after COUNT records (or fails if they do not
//! come within 30 seconds), then leaves the group.
//!
//! ```sh
//! cargo run --release -p brook-client --example consume_group -- localhost:9092 hello my-group 10
//! ```
//!
//! Output: one line per record, `partition offset key value` (a null key or value prints as
//! `null`), then `committed N`.

use std::time::{Duration, Instant};

use brook_client::consumer::OffsetReset;
use brook_client::serde::{Deserializer, StringSerde};
use brook_client::{Consumer, ConsumerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, group, count] = args.as_slice() else {
        return Err("usage: consume_group BOOTSTRAP TOPIC GROUP COUNT".into());
    };
    let count: usize = count.parse()?;
    let mut config = ConsumerConfig::new(bootstrap, Some(group));
    // A new group starts at the beginning; commits are explicit, after each poll.
    config.auto_offset_reset = OffsetReset::Earliest;
    config.enable_auto_commit = false;
    let mut consumer = Consumer::new(config)?;
    consumer.subscribe(vec![topic.clone()])?;

    let strings = StringSerde;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut read = 0;
    while read < count {
        if Instant::now() > deadline {
            return Err(format!("only {read} of {count} records within 30 s").into());
        }
        let records = consumer.poll(Duration::from_millis(500)).await?;
        for r in &records {
            let key: Option<String> = strings.deserialize(topic, r.key.as_deref())?;
            let value: Option<String> = strings.deserialize(topic, r.value.as_deref())?;
            println!(
                "{} {} {} {}",
                r.partition,
                r.offset,
                key.as_deref().unwrap_or("null"),
                value.as_deref().unwrap_or("null")
            );
        }
        if !records.is_empty() {
            consumer.commit_sync().await?;
            read += records.len();
        }
    }
    println!("committed {read}");
    consumer.close().await?;
    Ok(())
}
