//! What `FT.INFO` says about an index ([`IndexInfo`]), from RESP2 or RESP3
//! replies.

use redis::Value;

use super::schema::{DistanceMetric, FieldType, VectorAlgorithm};
use crate::core::error::{Error, Result};

/// What `FT.INFO` says about an index (the parts this crate uses).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IndexInfo {
    /// The full index name (namespaced).
    pub name: String,
    /// The full key prefixes of indexed documents.
    pub prefixes: Vec<String>,
    /// The indexed fields.
    pub fields: Vec<FieldInfo>,
    /// Number of indexed documents.
    pub num_docs: u64,
    /// Share of existing documents indexed so far (1 when done; an index
    /// created over existing keys scans them in the background).
    pub percent_indexed: f64,
}

/// One field of an [`IndexInfo`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FieldInfo {
    /// The name used in queries (the attribute).
    pub name: String,
    /// The field type.
    pub field_type: FieldType,
    /// VECTOR: the dimension.
    pub dim: Option<usize>,
    /// VECTOR: the metric.
    pub metric: Option<DistanceMetric>,
    /// VECTOR: the algorithm.
    pub algorithm: Option<VectorAlgorithm>,
    /// TAG: the separator of multiple values.
    pub separator: Option<char>,
}

impl IndexInfo {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The Redis key of document `id`: the first prefix followed by `id`.
    pub fn doc_key(&self, id: &str) -> String {
        let prefix = self.prefixes.first().map(String::as_str).unwrap_or("");
        let mut key = String::with_capacity(prefix.len() + id.len());
        key.push_str(prefix);
        key.push_str(id);
        key
    }

    /// The caller's id of a document key (the key without its prefix).
    pub fn doc_id<'a>(&self, key: &'a str) -> &'a str {
        self.prefixes
            .iter()
            .filter(|p| !p.is_empty())
            .find_map(|p| key.strip_prefix(p.as_str()))
            .unwrap_or(key)
    }

    /// Parses an `FT.INFO` reply (RESP2 flat arrays or RESP3 maps).
    pub(crate) fn parse(name: &str, reply: &Value) -> Result<Self> {
        let bad = |what: &str| Error::protocol(format!("FT.INFO {name}: {what}")).with_key(name);
        let top = pairs(reply).ok_or_else(|| bad("reply is not a map"))?;
        let mut info = IndexInfo {
            name: name.to_owned(),
            prefixes: Vec::new(),
            fields: Vec::new(),
            num_docs: 0,
            percent_indexed: 1.0,
        };
        for (k, v) in top {
            match k.as_str() {
                "index_definition" => {
                    for (dk, dv) in pairs(v).ok_or_else(|| bad("bad index_definition"))? {
                        if dk == "prefixes" {
                            info.prefixes = list(dv).iter().filter_map(text).collect();
                        }
                    }
                }
                "attributes" => {
                    for attr in list(v) {
                        info.fields
                            .push(parse_attribute(attr).ok_or_else(|| bad("bad attribute"))?);
                    }
                }
                "num_docs" => info.num_docs = text(v).and_then(|s| s.parse().ok()).unwrap_or(0),
                "percent_indexed" => {
                    info.percent_indexed = text(v).and_then(|s| s.parse().ok()).unwrap_or(1.0);
                }
                _ => {}
            }
        }
        Ok(info)
    }
}

fn parse_attribute(attr: &Value) -> Option<FieldInfo> {
    let mut info = FieldInfo {
        name: String::new(),
        field_type: FieldType::Other,
        dim: None,
        metric: None,
        algorithm: None,
        separator: None,
    };
    for (k, v) in pairs(attr)? {
        let v = text(v);
        match k.to_ascii_lowercase().as_str() {
            "attribute" => info.name = v?,
            "type" => {
                info.field_type = match v?.as_str() {
                    "TAG" => FieldType::Tag,
                    "TEXT" => FieldType::Text,
                    "NUMERIC" => FieldType::Numeric,
                    "GEO" => FieldType::Geo,
                    "VECTOR" => FieldType::Vector,
                    _ => FieldType::Other,
                }
            }
            "dim" => info.dim = v.and_then(|s| s.parse().ok()),
            "distance_metric" => {
                info.metric = match v.as_deref() {
                    Some("L2") => Some(DistanceMetric::L2),
                    Some("IP") => Some(DistanceMetric::Ip),
                    Some("COSINE") => Some(DistanceMetric::Cosine),
                    _ => None,
                }
            }
            "separator" => info.separator = v.and_then(|s| s.chars().next()),
            "algorithm" => {
                info.algorithm = match v.as_deref() {
                    Some("FLAT") => Some(VectorAlgorithm::Flat),
                    Some("HNSW") => Some(VectorAlgorithm::Hnsw),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    (!info.name.is_empty()).then_some(info)
}

/// Key/value pairs of a RESP2 flat array or a RESP3 map (keys as text).
fn pairs(v: &Value) -> Option<Vec<(String, &Value)>> {
    match v {
        Value::Array(items) => Some(
            items
                .chunks(2)
                .filter(|c| c.len() == 2)
                .filter_map(|c| Some((text(&c[0])?, &c[1])))
                .collect(),
        ),
        Value::Map(items) => Some(
            items
                .iter()
                .filter_map(|(k, v)| Some((text(k)?, v)))
                .collect(),
        ),
        _ => None,
    }
}

fn list(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}
