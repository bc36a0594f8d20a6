//! A type of your own as record values: `Reading` has its own [`Serializer`] and
//! [`Deserializer`] (a compact binary format: a 2-byte big-endian length, the sensor name in
//! UTF-8, then the temperature as a big-endian IEEE 754 double). Produces COUNT readings,
//! reads them back from the partition, checks they are what was sent and prints them.
//!
//! ```sh
//! cargo run --release -p brook-client --example custom_serializer -- localhost:9092 readings 5
//! ```
//!
//! Output: one line per reading, `offset sensor celsius`, then `round-tripped N readings`.

use std::time::{Duration, Instant};

use brook_client::consumer::OffsetReset;
use brook_client::serde::{DeserializeError, Deserializer, Serializer};
use brook_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use bytes::{BufMut, Bytes, BytesMut};

/// A sensor's temperature reading.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// Writes and reads [`Reading`]s.
struct ReadingSerde;

impl Serializer<Reading> for ReadingSerde {
    fn serialize(&self, _topic: &str, r: &Reading) -> Option<Bytes> {
        let name = r.sensor.as_bytes();
        let mut out = BytesMut::with_capacity(2 + name.len() + 8);
        out.put_u16(name.len() as u16);
        out.put_slice(name);
        out.put_f64(r.celsius);
        Some(out.freeze())
    }
}

impl Deserializer<Reading> for ReadingSerde {
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<Reading, DeserializeError> {
        let d = data.ok_or_else(|| DeserializeError("a Reading cannot be null".into()))?;
        let bad = || DeserializeError(format!("not a Reading: {} bytes", d.len()));
        let len = u16::from_be_bytes(d.get(..2).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let name = d.get(2..2 + len as usize).ok_or_else(bad)?;
        let rest: [u8; 8] = d
            .get(2 + len as usize..)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?;
        Ok(Reading {
            sensor: String::from_utf8(name.to_vec()).map_err(|_| bad())?,
            celsius: f64::from_be_bytes(rest),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, count] = args.as_slice() else {
        return Err("usage: custom_serializer BOOTSTRAP TOPIC COUNT".into());
    };
    let count: usize = count.parse()?;
    let sent: Vec<Reading> = (0..count)
        .map(|i| Reading {
            sensor: format!("sensor-{}", i % 3),
            celsius: 20.0 + i as f64 * 0.25,
        })
        .collect();

    let producer = Producer::new(ProducerConfig::new(bootstrap))?;
    let mut deliveries = Vec::new();
    for r in &sent {
        let mut record = ProducerRecord::new(
            topic.as_str(),
            None::<Bytes>,
            ReadingSerde.serialize(topic, r),
        );
        record.partition = Some(0);
        deliveries.push(producer.send(record).await?);
    }
    producer.flush().await?;
    let first = deliveries.remove(0).await?.offset;
    for d in deliveries {
        d.await?;
    }

    let mut config = ConsumerConfig::new(bootstrap, None);
    config.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(config)?;
    consumer.assign(vec![(topic.clone(), 0)]);
    consumer.seek((topic.clone(), 0), first);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut received = Vec::new();
    while received.len() < count {
        if Instant::now() > deadline {
            return Err(format!("only {} of {count} readings within 30 s", received.len()).into());
        }
        for r in consumer.poll(Duration::from_millis(500)).await? {
            let reading: Reading = ReadingSerde.deserialize(topic, r.value.as_deref())?;
            println!("{} {} {}", r.offset, reading.sensor, reading.celsius);
            received.push(reading);
        }
    }
    received.truncate(count);
    if received != sent {
        return Err("the readings read back differ from those sent".into());
    }
    println!("round-tripped {count} readings");
    Ok(())
}
