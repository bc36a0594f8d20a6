//! Serializers and deserializers, encoding exactly as Kafka's Java ones do (big-endian numbers,
//! UTF-8 strings), so data crosses between Java and Rust programs.
//!
//! Kafka's built-ins: byte arrays and buffers (`Vec<u8>`, `&[u8]`, `Bytes`), `f64` (Double), `i64`
//! (Long), `i32` (Integer), `String`/`&str` (String), `()` (Void). Implement the traits for your
//! own types; with the `json` feature, [`JsonSerde`] handles any serde type.
//!
//! A consumed record's key or value is turned into a value with
//! [`ConsumerRecord::key_as`]/[`ConsumerRecord::value_as`], whose error
//! ([`RecordDeserializeError`]) says which record (topic, partition, offset) could not be read,
//! so that the caller can skip it (`seek` past its offset) or stop, as Kafka's
//! `RecordDeserializationException` allows.

use bytes::Bytes;

use crate::consumer::ConsumerRecord;

/// Why bytes could not be turned into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeserializeError(pub String);

/// Why a value could not be turned into bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerializeError(pub String);

/// Turns a value into the bytes of a record key or value. `None` is Kafka's null.
pub trait Serializer<T: ?Sized> {
    /// The bytes of `value` for a record of `topic`.
    fn serialize(&self, topic: &str, value: &T) -> Option<Bytes>;

    /// [`Serializer::serialize`] for formats in which serializing can fail (the built-ins
    /// cannot): the error instead of a value.
    fn try_serialize(&self, topic: &str, value: &T) -> Result<Option<Bytes>, SerializeError> {
        Ok(self.serialize(topic, value))
    }
}

/// Turns a record key or value (`None` = null) back into a value.
pub trait Deserializer<T> {
    /// The value in `data` (a record of `topic`'s key or value; `None` = null).
    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<T, DeserializeError>;
}

/// Which part of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPart {
    /// The key.
    Key,
    /// The value.
    Value,
}

impl std::fmt::Display for RecordPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordPart::Key => "key",
            RecordPart::Value => "value",
        })
    }
}

/// A consumed record whose key or value could not be deserialized, and where it is: skip it
/// with `consumer.seek((topic, partition), offset + 1)`, or stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Error deserializing {part} for partition {topic}-{partition} at offset {offset}: {source}"
)]
pub struct RecordDeserializeError {
    /// The record's topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Whether the key or the value failed.
    pub part: RecordPart,
    /// What the deserializer said.
    pub source: DeserializeError,
}

impl ConsumerRecord {
    /// The record's key through a deserializer; the error names the record.
    pub fn key_as<T>(&self, d: &impl Deserializer<T>) -> Result<T, RecordDeserializeError> {
        self.part_as(d, RecordPart::Key)
    }

    /// The record's value through a deserializer; the error names the record.
    pub fn value_as<T>(&self, d: &impl Deserializer<T>) -> Result<T, RecordDeserializeError> {
        self.part_as(d, RecordPart::Value)
    }

    fn part_as<T>(
        &self,
        d: &impl Deserializer<T>,
        part: RecordPart,
    ) -> Result<T, RecordDeserializeError> {
        let data = match part {
            RecordPart::Key => self.key.as_deref(),
            RecordPart::Value => self.value.as_deref(),
        };
        d.deserialize(&self.topic, data)
            .map_err(|source| RecordDeserializeError {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: self.offset,
                part,
                source,
            })
    }
}

/// JSON keys and values for any serde type (feature `json`): `serde_json`'s encoding, UTF-8,
/// as Kafka Connect's and most JSON serializers write it. Null is `None` for `Option` types.
#[cfg(feature = "json")]
pub struct JsonSerde<T>(std::marker::PhantomData<fn() -> T>);

#[cfg(feature = "json")]
impl<T> JsonSerde<T> {
    /// A JSON serializer/deserializer for `T`.
    pub fn new() -> Self {
        JsonSerde(std::marker::PhantomData)
    }
}

#[cfg(feature = "json")]
impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "json")]
impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

#[cfg(feature = "json")]
impl<T> std::fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonSerde<{}>", std::any::type_name::<T>())
    }
}

#[cfg(feature = "json")]
impl<T: ::serde::Serialize> Serializer<T> for JsonSerde<T> {
    /// The JSON text. A value JSON cannot hold (a map whose keys are not strings, or a
    /// `Serialize` impl that fails) becomes null here; [`Serializer::try_serialize`] returns
    /// the error instead.
    fn serialize(&self, topic: &str, value: &T) -> Option<Bytes> {
        self.try_serialize(topic, value).ok().flatten()
    }

    fn try_serialize(&self, _topic: &str, value: &T) -> Result<Option<Bytes>, SerializeError> {
        serde_json::to_vec(value)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| SerializeError(format!("cannot write JSON: {e}")))
    }
}

#[cfg(feature = "json")]
impl<T: ::serde::de::DeserializeOwned> Deserializer<T> for JsonSerde<T> {
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<T, DeserializeError> {
        // Null reads as JSON null: `None` for an `Option`, an error for anything else.
        serde_json::from_slice(data.unwrap_or(b"null"))
            .map_err(|e| DeserializeError(format!("not JSON of the expected shape: {e}")))
    }
}

/// Kafka's ByteArraySerializer / ByteBufferSerializer / BytesSerializer: the bytes themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serializer<[u8]> for BytesSerde {
    fn serialize(&self, _topic: &str, value: &[u8]) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(value))
    }
}
impl Serializer<Vec<u8>> for BytesSerde {
    fn serialize(&self, _topic: &str, value: &Vec<u8>) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(value))
    }
}
impl Serializer<Bytes> for BytesSerde {
    fn serialize(&self, _topic: &str, value: &Bytes) -> Option<Bytes> {
        Some(value.clone())
    }
}
impl Deserializer<Vec<u8>> for BytesSerde {
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<Vec<u8>, DeserializeError> {
        Ok(data.map(<[u8]>::to_vec).unwrap_or_default())
    }
}
impl Deserializer<Bytes> for BytesSerde {
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<Bytes, DeserializeError> {
        Ok(data.map(Bytes::copy_from_slice).unwrap_or_default())
    }
}
impl Deserializer<Option<Bytes>> for BytesSerde {
    fn deserialize(
        &self,
        _topic: &str,
        data: Option<&[u8]>,
    ) -> Result<Option<Bytes>, DeserializeError> {
        Ok(data.map(Bytes::copy_from_slice))
    }
}

/// Kafka's StringSerializer / StringDeserializer (UTF-8).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serializer<str> for StringSerde {
    fn serialize(&self, _topic: &str, value: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(value.as_bytes()))
    }
}
impl Serializer<String> for StringSerde {
    fn serialize(&self, _topic: &str, value: &String) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(value.as_bytes()))
    }
}
impl Deserializer<String> for StringSerde {
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<String, DeserializeError> {
        let Some(d) = data else {
            return Err(DeserializeError("null cannot be a String".into()));
        };
        String::from_utf8(d.to_vec()).map_err(|e| DeserializeError(format!("not UTF-8: {e}")))
    }
}
impl Deserializer<Option<String>> for StringSerde {
    fn deserialize(
        &self,
        topic: &str,
        data: Option<&[u8]>,
    ) -> Result<Option<String>, DeserializeError> {
        match data {
            None => Ok(None),
            Some(_) => Deserializer::<String>::deserialize(self, topic, data).map(Some),
        }
    }
}

macro_rules! numeric_serde {
    ($name:ident, $t:ty, $java:literal) => {
        #[doc = concat!("Kafka's ", $java, "Serializer / ", $java, "Deserializer (big-endian).")]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Serializer<$t> for $name {
            fn serialize(&self, _topic: &str, value: &$t) -> Option<Bytes> {
                Some(Bytes::copy_from_slice(&value.to_be_bytes()))
            }
        }

        impl Deserializer<$t> for $name {
            fn deserialize(
                &self,
                _topic: &str,
                data: Option<&[u8]>,
            ) -> Result<$t, DeserializeError> {
                let d =
                    data.ok_or_else(|| DeserializeError(format!("null cannot be a {}", $java)))?;
                let bytes: [u8; std::mem::size_of::<$t>()] = d.try_into().map_err(|_| {
                    DeserializeError(format!(
                        "Size of data received by {}Deserializer is not {}",
                        $java,
                        std::mem::size_of::<$t>()
                    ))
                })?;
                Ok(<$t>::from_be_bytes(bytes))
            }
        }
    };
}

numeric_serde!(LongSerde, i64, "Long");
numeric_serde!(IntegerSerde, i32, "Integer");
numeric_serde!(DoubleSerde, f64, "Double");

/// Kafka's VoidSerializer / VoidDeserializer: always null.
#[derive(Debug, Clone, Copy, Default)]
pub struct VoidSerde;

impl Serializer<()> for VoidSerde {
    fn serialize(&self, _topic: &str, _value: &()) -> Option<Bytes> {
        None
    }
}
impl Deserializer<()> for VoidSerde {
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<(), DeserializeError> {
        match data {
            None => Ok(()),
            Some(_) => Err(DeserializeError(
                "Data of VoidDeserializer must be null".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_are_big_endian_like_java() {
        // java.nio.ByteBuffer.allocate(8).putLong(1L) == 00 00 00 00 00 00 00 01
        assert_eq!(
            LongSerde.serialize("t", &1).unwrap(),
            Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            IntegerSerde.serialize("t", &-2).unwrap(),
            Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe])
        );
        // Double.doubleToLongBits(1.5) == 0x3FF8000000000000
        assert_eq!(
            DoubleSerde.serialize("t", &1.5).unwrap(),
            Bytes::from_static(&[0x3f, 0xf8, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(VoidSerde.serialize("t", &()), None);
    }

    #[test]
    fn bad_sizes_and_nulls_are_errors() {
        assert!(Deserializer::<i64>::deserialize(&LongSerde, "t", Some(&[1, 2, 3])).is_err());
        assert!(Deserializer::<i32>::deserialize(&IntegerSerde, "t", None).is_err());
        assert!(Deserializer::<String>::deserialize(&StringSerde, "t", Some(&[0xff])).is_err());
        assert_eq!(
            Deserializer::<Option<String>>::deserialize(&StringSerde, "t", None),
            Ok(None)
        );
        assert!(VoidSerde.deserialize("t", Some(b"x")).is_err());
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trips_and_reports_bad_input() {
        use std::collections::BTreeMap;
        #[derive(Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        struct Order {
            id: u64,
            item: String,
            price: f64,
            tags: Vec<String>,
            note: Option<String>,
        }
        let serde = JsonSerde::<Order>::new();
        let order = Order {
            id: 7,
            item: "tea".into(),
            price: 2.5,
            tags: vec!["hot".into()],
            note: None,
        };
        let bytes = serde.serialize("t", &order).unwrap();
        assert_eq!(
            &bytes[..],
            br#"{"id":7,"item":"tea","price":2.5,"tags":["hot"],"note":null}"#
        );
        assert_eq!(serde.deserialize("t", Some(&bytes)), Ok(order));
        assert!(serde.deserialize("t", Some(b"{\"id\":1}")).is_err());
        assert!(serde.deserialize("t", Some(b"not json")).is_err());
        assert!(serde.deserialize("t", None).is_err());
        assert_eq!(
            JsonSerde::<Option<u32>>::new().deserialize("t", None),
            Ok(None)
        );
        // JSON object keys must be strings: a map keyed by pairs cannot be written.
        let bad: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
        let j = JsonSerde::<BTreeMap<(u8, u8), u8>>::new();
        assert!(j.try_serialize("t", &bad).is_err());
        assert_eq!(j.serialize("t", &bad), None);
    }

    #[test]
    fn a_record_that_does_not_deserialize_names_itself() {
        let record = ConsumerRecord {
            topic: "prices".into(),
            partition: 2,
            offset: 41,
            timestamp: 0,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(&[1, 2, 3])),
            headers: Vec::new(),
        };
        assert_eq!(record.key_as(&StringSerde), Ok("k".to_string()));
        let e = record.value_as(&LongSerde).unwrap_err();
        assert_eq!(
            (e.topic.as_str(), e.partition, e.offset, e.part),
            ("prices", 2, 41, RecordPart::Value)
        );
        assert_eq!(
            e.to_string(),
            "Error deserializing value for partition prices-2 at offset 41: \
             Size of data received by LongDeserializer is not 8"
        );
    }

    proptest! {
        #[test]
        fn round_trips(l in any::<i64>(), i in any::<i32>(), d in any::<f64>(), s in ".*") {
            prop_assert_eq!(LongSerde.deserialize("t", LongSerde.serialize("t", &l).as_deref()), Ok(l));
            prop_assert_eq!(IntegerSerde.deserialize("t", IntegerSerde.serialize("t", &i).as_deref()), Ok(i));
            let back: f64 = DoubleSerde.deserialize("t", DoubleSerde.serialize("t", &d).as_deref()).unwrap();
            prop_assert_eq!(back.to_bits(), d.to_bits());
            let back: String = StringSerde.deserialize("t", StringSerde.serialize("t", s.as_str()).as_deref()).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
