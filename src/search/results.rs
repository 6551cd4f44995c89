//! Search results: the total, the documents (id, distance, fields) and how
//! many documents vanished (expired or deleted) between the index lookup and
//! the fetch of their fields.

use redis::Value;
use serde::de::DeserializeOwned;

use super::info::{IndexInfo, text};
use crate::core::error::{Error, Result};

/// The field under which vector queries return the distance.
pub const DISTANCE_FIELD: &str = "__dist";

/// The answer to a search: `docs` in result order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SearchResults<D = SearchDoc> {
    /// How many documents matched (for KNN at most k).
    pub total: u64,
    /// The documents of the requested page.
    pub docs: Vec<D>,
    /// Documents the index returned whose key was gone when their fields were
    /// read (expired or deleted during the search); not in `docs`.
    pub skipped: usize,
}

/// One document of a result.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SearchDoc {
    /// The caller's id (the key without the index prefix), as given to
    /// [`SearchIndex::upsert`](super::SearchIndex::upsert).
    pub id: String,
    /// The full Redis key.
    pub key: String,
    /// The vector distance (KNN and range queries; smaller is closer).
    pub distance: Option<f32>,
    fields: Vec<(String, Vec<u8>)>,
}

/// One typed document of a result (from
/// [`VectorQueryBuilder::execute_as`](super::VectorQueryBuilder::execute_as)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Hit<T> {
    /// The caller's id (the key without the index prefix).
    pub id: String,
    /// The full Redis key.
    pub key: String,
    /// The vector distance (KNN and range queries).
    pub distance: Option<f32>,
    /// The document's fields, decoded.
    pub value: T,
}

impl SearchDoc {
    /// Field `name` as text (`None` when absent or not UTF-8).
    pub fn get(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.get_bytes(name)?).ok()
    }

    /// Field `name` as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Field `name` parsed from its text (`None` when absent or unparsable).
    pub fn parse<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.get(name)?.trim().parse().ok()
    }

    /// VECTOR field `name`, decoded from its FLOAT32 blob.
    pub fn vector(&self, name: &str) -> Option<Vec<f32>> {
        super::document::decode_vector(self.get_bytes(name)?)
    }

    /// All returned fields (the distance excluded), in reply order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Decodes the fields into `T` (numbers and booleans parsed from text,
    /// JSON text for nested values, vector blobs as `Vec<f32>`).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        super::de::from_fields(&self.key, &self.fields)
    }
}

impl SearchResults<SearchDoc> {
    /// The ids of `docs`, in order.
    pub fn ids(&self) -> Vec<&str> {
        self.docs.iter().map(|d| d.id.as_str()).collect()
    }

    /// Decodes every document into `T`.
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<SearchResults<Hit<T>>> {
        let docs = self
            .docs
            .into_iter()
            .map(|d| {
                let value = d.deserialize()?;
                Ok(Hit {
                    id: d.id,
                    key: d.key,
                    distance: d.distance,
                    value,
                })
            })
            .collect::<Result<_>>()?;
        Ok(SearchResults {
            total: self.total,
            docs,
            skipped: self.skipped,
        })
    }

    /// Parses an `FT.SEARCH` reply (RESP2 array or RESP3 map).
    pub(crate) fn parse(reply: Value, info: &IndexInfo) -> Result<Self> {
        let bad = |what: &str| {
            Error::protocol(format!("FT.SEARCH {}: {what}", info.name)).with_key(&info.name)
        };
        match reply {
            Value::Array(items) => {
                let mut items = items.into_iter();
                let total = match items.next() {
                    Some(Value::Int(n)) => u64::try_from(n).unwrap_or(0),
                    _ => return Err(bad("missing total")),
                };
                let mut out = SearchResults {
                    total,
                    docs: Vec::new(),
                    skipped: 0,
                };
                let mut items = items.peekable();
                while let Some(id) = items.next() {
                    let key = match id {
                        Value::BulkString(b) => {
                            String::from_utf8(b).map_err(|_| bad("key is not UTF-8"))?
                        }
                        Value::SimpleString(s) => s,
                        other => return Err(bad(&format!("unexpected {other:?} for a key"))),
                    };
                    match items.next_if(|v| matches!(v, Value::Array(_) | Value::Nil)) {
                        Some(Value::Array(flat)) => {
                            let pairs = flat_pairs(flat);
                            out.docs.push(doc(key, pairs, info));
                        }
                        Some(_) => out.skipped += 1,
                        None => out.docs.push(doc(key, Vec::new(), info)),
                    }
                }
                Ok(out)
            }
            Value::Map(map) => {
                let mut out = SearchResults {
                    total: 0,
                    docs: Vec::new(),
                    skipped: 0,
                };
                for (k, v) in map {
                    match text(&k).as_deref() {
                        Some("total_results") => {
                            out.total = text(&v).and_then(|s| s.parse().ok()).unwrap_or(0);
                        }
                        Some("results") => {
                            let Value::Array(results) = v else {
                                return Err(bad("results is not a list"));
                            };
                            for r in results {
                                let Value::Map(entry) = r else {
                                    return Err(bad("a result is not a map"));
                                };
                                let mut key = None;
                                let mut fields = None;
                                for (ek, ev) in entry {
                                    match text(&ek).as_deref() {
                                        Some("id") => key = text(&ev),
                                        Some("extra_attributes") => {
                                            if let Value::Map(m) = ev {
                                                fields = Some(
                                                    m.into_iter()
                                                        .filter_map(|(k, v)| {
                                                            Some((text(&k)?, bytes(v)?))
                                                        })
                                                        .collect(),
                                                );
                                            }
                                        }
                                        _ => {}
                                    }
                                }
                                let key = key.ok_or_else(|| bad("a result has no id"))?;
                                match fields {
                                    Some(fields) => out.docs.push(doc(key, fields, info)),
                                    None => out.skipped += 1,
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Ok(out)
            }
            other => Err(bad(&format!("unexpected reply {other:?}"))),
        }
    }
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        other => text(&other).map(String::into_bytes),
    }
}

fn flat_pairs(flat: Vec<Value>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let k = match k {
            Value::BulkString(b) => String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            other => text(&other).unwrap_or_default(),
        };
        if let Some(v) = bytes(v) {
            out.push((k, v));
        }
    }
    out
}

fn doc(key: String, mut fields: Vec<(String, Vec<u8>)>, info: &IndexInfo) -> SearchDoc {
    let distance = fields
        .iter()
        .position(|(k, _)| k == DISTANCE_FIELD)
        .and_then(|i| {
            let (_, v) = fields.remove(i);
            std::str::from_utf8(&v).ok()?.trim().parse::<f32>().ok()
        });
    SearchDoc {
        id: info.doc_id(&key).to_owned(),
        key,
        distance,
        fields,
    }
}
