//! The value format of a computed value: JSON, or raw bytes for types that
//! serialize as a string or bytes (`String`, `Vec<u8>`, `Box<str>`, …).
//!
//! Raw mode goes through serde too, so one generic bound serves both: a
//! tiny serializer accepts strings, bytes and sequences of `u8`, and
//! decoding offers the bytes to the type (as bytes, then as a sequence).

use serde::de::DeserializeOwned;
use serde::ser::{self, Impossible, Serialize};

use crate::core::codec;
use crate::core::error::{Error, ErrorKind, Result};

/// How [`get_or_compute`](crate::RedisService::get_or_compute) and the
/// cache wrapper store a value, set with [`ComputeOptions::format`].
///
/// ```
/// use redis_atomics::{ComputeOptions, Format};
///
/// let opts = ComputeOptions::new().format(Format::Raw);
/// assert_eq!(opts, ComputeOptions::new().serialize_json(false));
/// assert_eq!(Format::default(), Format::Json);
/// ```
///
/// [`ComputeOptions::format`]: crate::ComputeOptions::format
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// JSON text (serde_json). The default.
    #[default]
    Json,
    /// The bytes themselves, for types that serialize as a string or bytes
    /// (`String`, `Vec<u8>`, `Box<str>`, …); any other type is a
    /// serialization error.
    Raw,
}

impl Format {
    pub(crate) fn encode<T: Serialize + ?Sized>(self, key: &str, value: &T) -> Result<Vec<u8>> {
        match self {
            Format::Json => codec::to_json(key, value),
            Format::Raw => value
                .serialize(RawSer)
                .map_err(|e| Error::new(ErrorKind::Serialization, e.0).with_key(key)),
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(self, key: &str, bytes: &[u8]) -> Result<T> {
        match self {
            Format::Json => codec::from_json(key, bytes),
            Format::Raw => decode_raw(bytes).map_err(|e| {
                let err = Error::new(ErrorKind::Deserialization, e.to_string()).with_key(key);
                tracing::warn!(key, error = %err, "stored raw value does not decode");
                err
            }),
        }
    }
}

fn decode_raw<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<T, serde::de::value::Error> {
    use serde::de::value::{BytesDeserializer, Error as DeError, SeqDeserializer};
    match T::deserialize(BytesDeserializer::<DeError>::new(bytes)) {
        Ok(value) => Ok(value),
        Err(first) => T::deserialize(SeqDeserializer::<_, DeError>::new(bytes.iter().copied()))
            .map_err(|_| first),
    }
}

#[derive(Debug)]
pub(crate) struct RawError(String);

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RawError {}

impl ser::Error for RawError {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        RawError(msg.to_string())
    }
}

fn unsupported(what: &str) -> RawError {
    RawError(format!(
        "Format::Raw (serialize_json = false) stores strings and bytes only, not {what}"
    ))
}

macro_rules! reject {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ret:ty, $what:expr;)*) => {
        $(fn $method(self, $($arg: $ty),*) -> std::result::Result<$ret, RawError> {
            let _ = ($($arg),*);
            Err(unsupported($what))
        })*
    };
}

/// Serializes a string, bytes or a sequence of `u8` as raw bytes.
struct RawSer;

impl ser::Serializer for RawSer {
    type Ok = Vec<u8>;
    type Error = RawError;
    type SerializeSeq = ByteSeq;
    type SerializeTuple = Impossible<Vec<u8>, RawError>;
    type SerializeTupleStruct = Impossible<Vec<u8>, RawError>;
    type SerializeTupleVariant = Impossible<Vec<u8>, RawError>;
    type SerializeMap = Impossible<Vec<u8>, RawError>;
    type SerializeStruct = Impossible<Vec<u8>, RawError>;
    type SerializeStructVariant = Impossible<Vec<u8>, RawError>;

    fn serialize_str(self, v: &str) -> std::result::Result<Vec<u8>, RawError> {
        Ok(v.as_bytes().to_vec())
    }
    fn serialize_bytes(self, v: &[u8]) -> std::result::Result<Vec<u8>, RawError> {
        Ok(v.to_vec())
    }
    fn serialize_char(self, v: char) -> std::result::Result<Vec<u8>, RawError> {
        Ok(v.to_string().into_bytes())
    }
    fn serialize_some<T: ?Sized + Serialize>(
        self,
        v: &T,
    ) -> std::result::Result<Vec<u8>, RawError> {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        v: &T,
    ) -> std::result::Result<Vec<u8>, RawError> {
        v.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> std::result::Result<ByteSeq, RawError> {
        Ok(ByteSeq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _v: &T,
    ) -> std::result::Result<Vec<u8>, RawError> {
        Err(unsupported("an enum"))
    }
    reject! {
        serialize_bool(v: bool) -> Vec<u8>, "a bool";
        serialize_i8(v: i8) -> Vec<u8>, "a number";
        serialize_i16(v: i16) -> Vec<u8>, "a number";
        serialize_i32(v: i32) -> Vec<u8>, "a number";
        serialize_i64(v: i64) -> Vec<u8>, "a number";
        serialize_u8(v: u8) -> Vec<u8>, "a number";
        serialize_u16(v: u16) -> Vec<u8>, "a number";
        serialize_u32(v: u32) -> Vec<u8>, "a number";
        serialize_u64(v: u64) -> Vec<u8>, "a number";
        serialize_f32(v: f32) -> Vec<u8>, "a number";
        serialize_f64(v: f64) -> Vec<u8>, "a number";
        serialize_none() -> Vec<u8>, "None";
        serialize_unit() -> Vec<u8>, "()";
        serialize_unit_struct(name: &'static str) -> Vec<u8>, "a unit struct";
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> Vec<u8>, "an enum";
        serialize_tuple(len: usize) -> Self::SerializeTuple, "a tuple";
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct, "a tuple struct";
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeTupleVariant, "an enum";
        serialize_map(len: Option<usize>) -> Self::SerializeMap, "a map";
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct, "a struct";
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeStructVariant, "an enum";
    }
}

/// Collects a sequence of `u8`.
struct ByteSeq(Vec<u8>);

impl ser::SerializeSeq for ByteSeq {
    type Ok = Vec<u8>;
    type Error = RawError;

    fn serialize_element<T: ?Sized + Serialize>(
        &mut self,
        v: &T,
    ) -> std::result::Result<(), RawError> {
        self.0.push(v.serialize(ByteSer)?);
        Ok(())
    }

    fn end(self) -> std::result::Result<Vec<u8>, RawError> {
        Ok(self.0)
    }
}

/// Accepts one `u8`.
struct ByteSer;

impl ser::Serializer for ByteSer {
    type Ok = u8;
    type Error = RawError;
    type SerializeSeq = Impossible<u8, RawError>;
    type SerializeTuple = Impossible<u8, RawError>;
    type SerializeTupleStruct = Impossible<u8, RawError>;
    type SerializeTupleVariant = Impossible<u8, RawError>;
    type SerializeMap = Impossible<u8, RawError>;
    type SerializeStruct = Impossible<u8, RawError>;
    type SerializeStructVariant = Impossible<u8, RawError>;

    fn serialize_u8(self, v: u8) -> std::result::Result<u8, RawError> {
        Ok(v)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _v: &T) -> std::result::Result<u8, RawError> {
        Err(unsupported("a sequence of options"))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        v: &T,
    ) -> std::result::Result<u8, RawError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _v: &T,
    ) -> std::result::Result<u8, RawError> {
        Err(unsupported("a sequence of enums"))
    }
    reject! {
        serialize_bool(v: bool) -> u8, "a sequence of bools";
        serialize_i8(v: i8) -> u8, "a sequence of i8";
        serialize_i16(v: i16) -> u8, "a sequence of numbers";
        serialize_i32(v: i32) -> u8, "a sequence of numbers";
        serialize_i64(v: i64) -> u8, "a sequence of numbers";
        serialize_u16(v: u16) -> u8, "a sequence of numbers";
        serialize_u32(v: u32) -> u8, "a sequence of numbers";
        serialize_u64(v: u64) -> u8, "a sequence of numbers";
        serialize_f32(v: f32) -> u8, "a sequence of numbers";
        serialize_f64(v: f64) -> u8, "a sequence of numbers";
        serialize_char(v: char) -> u8, "a sequence of chars";
        serialize_str(v: &str) -> u8, "a sequence of strings";
        serialize_bytes(v: &[u8]) -> u8, "nested bytes";
        serialize_none() -> u8, "a sequence of options";
        serialize_unit() -> u8, "a sequence of ()";
        serialize_unit_struct(name: &'static str) -> u8, "a sequence of structs";
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> u8, "a sequence of enums";
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq, "nested sequences";
        serialize_tuple(len: usize) -> Self::SerializeTuple, "a sequence of tuples";
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct, "a sequence of tuples";
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeTupleVariant, "a sequence of enums";
        serialize_map(len: Option<usize>) -> Self::SerializeMap, "a sequence of maps";
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct, "a sequence of structs";
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeStructVariant, "a sequence of enums";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_bytes_round_trip() {
        let f = Format::Raw;
        assert_eq!(f.encode("k", "héllo").unwrap(), "héllo".as_bytes());
        let s: String = f.decode("k", "héllo".as_bytes()).unwrap();
        assert_eq!(s, "héllo");
        let bytes = vec![0u8, 255, 10, 13];
        assert_eq!(f.encode("k", &bytes).unwrap(), bytes);
        let back: Vec<u8> = f.decode("k", &bytes).unwrap();
        assert_eq!(back, bytes);
        let text_as_bytes: Vec<u8> = f.decode("k", b"abc").unwrap();
        assert_eq!(text_as_bytes, b"abc");
    }

    #[test]
    fn other_types_are_clear_errors() {
        let err = Format::Raw.encode("k", &42u32).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert!(err.to_string().contains("strings and bytes only"), "{err}");
        assert!(Format::Raw.encode("k", &vec![1u32]).is_err());
        let err = Format::Raw
            .decode::<String>("k", &[0xff, 0xfe])
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Deserialization);
        assert_eq!(err.key(), Some("k"));
    }
}
