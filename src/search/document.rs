//! Documents to index: plain fields and vectors, written as one HASH.

use redis::ToRedisArgs;

use super::filter::MAX_TAG_BYTES;
use super::info::FieldInfo;
use super::schema::FieldType;
use crate::core::error::{Error, Result};

/// The fields of one HASH document: values as Redis arguments (strings,
/// numbers, bytes) and vectors as little-endian FLOAT32 blobs.
///
/// ```
/// use redis_atomics::search::Document;
///
/// let doc = Document::new()
///     .field("title", "Alien")
///     .field("year", 1979)
///     .field("location", "-0.12,51.5") // GEO: "lon,lat"
///     .vector("embedding", &[0.1, 0.2, 0.3]);
/// assert_eq!(doc.len(), 4);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct Document {
    fields: Vec<(String, Vec<u8>)>,
    vectors: Vec<(String, Vec<f32>)>,
}

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets field `name` to `value`: strings, numbers, bytes; a list (for a
    /// multi-value TAG) is joined with `,`, the default TAG separator.
    pub fn field(mut self, name: impl Into<String>, value: impl ToRedisArgs) -> Self {
        let mut args = value.to_redis_args();
        let bytes = if args.len() == 1 {
            args.swap_remove(0)
        } else {
            args.join(&b',')
        };
        self.fields.push((name.into(), bytes));
        self
    }

    /// Sets the VECTOR field `name` (checked against the index: dimension,
    /// finite values).
    pub fn vector(mut self, name: impl Into<String>, vector: &[f32]) -> Self {
        self.vectors.push((name.into(), vector.to_vec()));
        self
    }

    /// Number of fields, vectors included.
    pub fn len(&self) -> usize {
        self.fields.len() + self.vectors.len()
    }

    /// Whether the document has no field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn fields(&self) -> &[(String, Vec<u8>)] {
        &self.fields
    }

    pub(crate) fn vectors(&self) -> &[(String, Vec<f32>)] {
        &self.vectors
    }
}

/// Encodes a vector as little-endian FLOAT32 bytes (the format of VECTOR
/// fields and query PARAMS), rejecting NaN and infinities.
///
/// ```
/// use redis_atomics::search::encode_vector;
/// assert_eq!(encode_vector(&[1.0]).unwrap(), vec![0, 0, 0x80, 0x3f]);
/// assert!(encode_vector(&[f32::NAN]).is_err());
/// ```
pub fn encode_vector(vector: &[f32]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(vector.len() * 4);
    for (i, x) in vector.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::validation(format!(
                "vector element {i} is {x}: only finite numbers can be indexed"
            )));
        }
        out.extend_from_slice(&x.to_le_bytes());
    }
    Ok(out)
}

/// Decodes little-endian FLOAT32 bytes; `None` when the length is not a
/// multiple of 4.
///
/// ```
/// use redis_atomics::search::{decode_vector, encode_vector};
/// let v = [0.5, -2.0];
/// assert_eq!(decode_vector(&encode_vector(&v).unwrap()).unwrap(), v);
/// ```
pub fn decode_vector(bytes: &[u8]) -> Option<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Checks a vector's dimension against the index's, naming the field.
pub(crate) fn check_dim(field: &str, len: usize, dim: Option<usize>) -> Result<()> {
    match dim {
        Some(dim) if dim != len => Err(Error::validation(format!(
            "vector field {field}: expected {dim} dimensions, got {len}"
        ))),
        _ => Ok(()),
    }
}

/// Checks a plain value against its field's type, so that a value the index
/// would silently fail to index (counted only in `hash_indexing_failures`) is
/// an error instead: NUMERIC must be a number, GEO `"lon,lat"` in range,
/// VECTOR must be set with [`Document::vector`].
pub(crate) fn check_value(field: &FieldInfo, value: &[u8]) -> Result<()> {
    let name = &field.name;
    // As strict as the server: no surrounding spaces, no overflow to infinity.
    let text = || std::str::from_utf8(value).unwrap_or("");
    let number = |s: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() || (!x.is_nan() && s.to_ascii_lowercase().contains("inf")))
    };
    let ok = match field.field_type {
        FieldType::Numeric => number(text()).is_some(),
        FieldType::Geo => text().split_once(',').is_some_and(|(lon, lat)| {
            let lon = number(lon).unwrap_or(f64::NAN);
            let lat = number(lat.trim_start()).unwrap_or(f64::NAN);
            (-180.0..=180.0).contains(&lon) && (-85.051_128_78..=85.051_128_78).contains(&lat)
        }),
        FieldType::Tag => {
            let separator = field.separator.unwrap_or(',');
            let long = text()
                .split(separator)
                .map(|t| t.trim_matches(|c: char| c.is_ascii_whitespace()).len())
                .max();
            if let Some(len) = long.filter(|len| *len > MAX_TAG_BYTES) {
                return Err(Error::validation(format!(
                    "TAG field {name}: a tag of {len} bytes would not be indexed \
                     (the limit is {MAX_TAG_BYTES} bytes)"
                )));
            }
            true
        }
        FieldType::Vector => {
            return Err(Error::validation(format!(
                "{name} is a VECTOR field: set it with Document::vector"
            )));
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{} field {name}: {:?} is not a valid value",
            field.field_type.as_str(),
            String::from_utf8_lossy(value)
        )))
    }
}
