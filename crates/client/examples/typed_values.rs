//! Writes one record each with Kafka's Long, Integer, Double and String serializers (the key
//! names the type: `long`, `integer`, `double`, `string`) to partition 0, so that other clients
//! can check the encoding (big-endian numbers, UTF-8 text, as Java's serializers write them).
//!
//! ```sh
//! cargo run --release -p brook-client --example typed_values -- localhost:9092 typed -42 7 2.5 héllo
//! ```

use brook_client::serde::{DoubleSerde, IntegerSerde, LongSerde, Serializer, StringSerde};
use brook_client::{Producer, ProducerConfig, ProducerRecord};
use bytes::Bytes;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, long, integer, double, string] = args.as_slice() else {
        return Err("usage: typed_values BOOTSTRAP TOPIC LONG INTEGER DOUBLE STRING".into());
    };
    let values: [(&str, Option<Bytes>); 4] = [
        ("long", LongSerde.serialize(topic, &long.parse::<i64>()?)),
        (
            "integer",
            IntegerSerde.serialize(topic, &integer.parse::<i32>()?),
        ),
        (
            "double",
            DoubleSerde.serialize(topic, &double.parse::<f64>()?),
        ),
        ("string", StringSerde.serialize(topic, string.as_str())),
    ];
    let producer = Producer::new(ProducerConfig::new(bootstrap))?;
    let mut deliveries = Vec::new();
    for (key, value) in values {
        let mut r = ProducerRecord::new(topic.as_str(), Some(key), value);
        r.partition = Some(0);
        deliveries.push((key, producer.send(r).await?));
    }
    producer.flush().await?;
    for (key, d) in deliveries {
        println!("{key} {}", d.await?.offset);
    }
    Ok(())
}
