//! Serializers and deserializers, encoding exactly as Kafka's Java ones do (big-endian numbers,
//! UTF-8 strings), so data crosses between Java and Rust programs.
//!
//! Kafka's built-ins: byte arrays and buffers (`Vec<u8>`, `&[u8]`, `Bytes`), `f64` (Double), `i64`
//! (Long), `i32` (Integer), `String`/`&str` (String), `()` (Void). Implement the traits for your
//! own types.

use bytes::Bytes;

/// Why bytes could not be turned into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeserializeError(pub String);

/// Turns a value into the bytes of a record key or value. `None` is Kafka's null.
pub trait Serializer<T: ?Sized> {
    fn serialize(&self, topic: &str, value: &T) -> Option<Bytes>;
}

/// Turns a record key or value (`None` = null) back into a value.
pub trait Deserializer<T> {
    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<T, DeserializeError>;
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
