//! Produces ten keyed records and prints where each landed.
//!
//! ```sh
//! cargo run --release -p brook-client --example produce -- localhost:9092 hello
//! ```

use brook_client::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let topic = args.next().unwrap_or_else(|| "hello".into());
    let producer = Producer::new(ProducerConfig::new(&bootstrap))?;
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let record =
            ProducerRecord::new(&topic, Some(format!("key-{i}")), Some(format!("value-{i}")));
        deliveries.push(producer.send(record).await?);
    }
    producer.flush().await?;
    for d in deliveries {
        let md = d.await?;
        println!(
            "{} partition {} offset {}",
            md.topic, md.partition, md.offset
        );
    }
    Ok(())
}
