//! Decoding a document's fields (HASH values, all strings on the wire) into a
//! serde type: numbers and booleans are parsed from their text, nested
//! objects and lists from JSON text, vector blobs into `Vec<f32>`.

use serde::de::value::{Error as DeError, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Error as _, IntoDeserializer, Visitor};

use crate::core::codec::field_path;
use crate::core::error::{Error, ErrorKind, Result};

/// Decodes `fields` into `T`; a failure names the document key and the field.
pub(crate) fn from_fields<T: DeserializeOwned>(
    key: &str,
    fields: &[(String, Vec<u8>)],
) -> Result<T> {
    let iter = fields.iter().map(|(k, v)| (k.as_str(), FieldDe(v)));
    let de = MapDeserializer::<_, DeError>::new(iter);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = field_path(e.path());
        let inner = e.into_inner();
        let err = Error::new(ErrorKind::Deserialization, inner.to_string())
            .with_key(key)
            .with_path(path)
            .with_source(inner);
        tracing::warn!(key, error = %err, "search document does not decode");
        err
    })
}

/// One field value.
#[derive(Clone, Copy)]
struct FieldDe<'a>(&'a [u8]);

impl<'a> IntoDeserializer<'a, DeError> for FieldDe<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'a> FieldDe<'a> {
    fn str(&self) -> Result<&'a str, DeError> {
        std::str::from_utf8(self.0).map_err(|_| DeError::custom("field value is not UTF-8 text"))
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        let s = self.str()?;
        s.trim()
            .parse()
            .map_err(|_| DeError::custom(format!("invalid {what} {s:?}")))
    }

    /// Whether the value is JSON text (checked without building a
    /// `serde_json::Value`, which would hold integers beyond u64 as f64).
    fn is_json(&self) -> bool {
        serde_json::from_slice::<de::IgnoredAny>(self.0).is_ok()
    }

    /// The value as JSON, decoded straight into the visitor's type: integers
    /// of any width stay exact.
    fn json_deserializer(&self) -> serde_json::Deserializer<serde_json::de::SliceRead<'a>> {
        serde_json::Deserializer::from_slice(self.0)
    }
}

macro_rules! parse_num {
    ($($method:ident $visit:ident $ty:ty),*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            visitor.$visit(self.parse::<$ty>(stringify!($ty))?)
        }
    )*};
}

impl<'a> de::Deserializer<'a> for FieldDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match std::str::from_utf8(self.0) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => visitor.visit_borrowed_bytes(self.0),
        }
    }

    parse_num!(
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32, deserialize_i64 visit_i64 i64,
        deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64,
        deserialize_i128 visit_i128 i128, deserialize_u128 visit_u128 u128,
        deserialize_f32 visit_f32 f32, deserialize_f64 visit_f64 f64,
        deserialize_char visit_char char
    );

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.str()?.trim() {
            "1" | "true" | "TRUE" | "True" => visitor.visit_bool(true),
            "0" | "false" | "FALSE" | "False" => visitor.visit_bool(false),
            other => Err(DeError::custom(format!("invalid bool {other:?}"))),
        }
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_bytes(self.0)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_bytes(self.0)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// A list: JSON text, or else a FLOAT32 vector blob.
    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_json() {
            return self
                .json_deserializer()
                .deserialize_seq(visitor)
                .map_err(DeError::custom);
        }
        match super::document::decode_vector(self.0) {
            Some(v) => visitor.visit_seq(SeqDeserializer::new(v.into_iter())),
            None => Err(DeError::custom(
                "expected a JSON list or a FLOAT32 vector blob",
            )),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    /// A map or struct stored as JSON text.
    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if !self.is_json() {
            return Err(DeError::custom("expected a JSON object"));
        }
        self.json_deserializer()
            .deserialize_map(visitor)
            .map_err(DeError::custom)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_enum(self.str()?.into_deserializer())
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Movie {
        title: String,
        year: u16,
        rating: f32,
        seen: bool,
        tags: Vec<String>,
        note: Option<String>,
        embedding: Vec<f32>,
    }

    fn fields(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect()
    }

    #[test]
    fn decodes_text_values() {
        let blob = super::super::document::encode_vector(&[1.0, 2.0]).unwrap();
        let f = fields(&[
            ("title", b"Alien"),
            ("year", b"1979"),
            ("rating", b"8.5"),
            ("seen", b"1"),
            ("tags", br#"["a","b"]"#),
            ("embedding", &blob),
            ("extra", b"ignored"),
        ]);
        let m: Movie = from_fields("movie:1", &f).unwrap();
        assert_eq!(m.year, 1979);
        assert_eq!(m.tags, ["a", "b"]);
        assert_eq!(m.note, None);
        assert_eq!(m.embedding, [1.0, 2.0]);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Ids {
        id: u64,
        big: i128,
        huge: u128,
        nested: Vec<u128>,
        signed: std::collections::BTreeMap<String, i128>,
    }

    /// Integers never pass through f64 (nor through serde_json::Value, which
    /// holds an integer beyond u64 as f64).
    #[test]
    fn decodes_integers_exactly() {
        let nested = format!("[{}, 18446744073709551617]", u128::MAX);
        let signed = format!(r#"{{"min": {}}}"#, i128::MIN);
        let f = vec![
            ("id".to_owned(), b"9007199254740993".to_vec()),
            ("big".to_owned(), i128::MIN.to_string().into_bytes()),
            ("huge".to_owned(), u128::MAX.to_string().into_bytes()),
            ("nested".to_owned(), nested.into_bytes()),
            ("signed".to_owned(), signed.into_bytes()),
        ];
        let ids: Ids = from_fields("k", &f).unwrap();
        assert_eq!(
            ids,
            Ids {
                id: 9_007_199_254_740_993,
                big: i128::MIN,
                huge: u128::MAX,
                nested: vec![u128::MAX, 18_446_744_073_709_551_617],
                signed: [("min".to_owned(), i128::MIN)].into(),
            }
        );
    }

    #[test]
    fn errors_name_key_and_field() {
        let f = fields(&[("title", b"A"), ("year", b"old")]);
        let err = from_fields::<Movie>("movie:1", &f).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Deserialization);
        assert_eq!(err.key(), Some("movie:1"));
        assert_eq!(err.path(), Some(".year"));
    }
}
