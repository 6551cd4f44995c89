//! Index definitions ([`IndexSchema`]) for `FT.CREATE`.

use super::filter::check_field;
use crate::core::error::{Error, Result};

/// The definition of a search index over HASH documents: a key prefix and
/// the indexed fields.
///
/// ```
/// use redis_atomics::search::{DistanceMetric, IndexSchema, VectorField};
///
/// let schema = IndexSchema::new()
///     .prefix("movie:")
///     .tag("genre")
///     .text("title")
///     .numeric("year")
///     .geo("location")
///     .vector("embedding", VectorField::hnsw(384).metric(DistanceMetric::Cosine));
/// assert_eq!(schema.fields().len(), 5);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct IndexSchema {
    prefix: Option<String>,
    no_stopwords: bool,
    fields: Vec<SchemaField>,
}

/// One indexed field of an [`IndexSchema`].
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct SchemaField {
    name: String,
    kind: FieldKind,
    sortable: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldKind {
    Tag {
        separator: char,
        case_sensitive: bool,
    },
    Text {
        weight: f64,
    },
    Numeric,
    Geo,
    Vector(VectorField),
}

/// The type of an indexed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldType {
    /// TAG: exact-match values.
    Tag,
    /// TEXT: full-text, tokenized.
    Text,
    /// NUMERIC: ranges.
    Numeric,
    /// GEO: `lon,lat` points.
    Geo,
    /// VECTOR: embeddings for KNN and range queries.
    Vector,
    /// A type this crate does not know (GEOSHAPE, …).
    Other,
}

impl FieldType {
    /// The type as FT.CREATE spells it (`TAG`, `TEXT`, …; `OTHER`).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Tag => "TAG",
            FieldType::Text => "TEXT",
            FieldType::Numeric => "NUMERIC",
            FieldType::Geo => "GEO",
            FieldType::Vector => "VECTOR",
            FieldType::Other => "OTHER",
        }
    }
}

/// The vector index algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VectorAlgorithm {
    /// Brute force: exact, linear in the number of documents.
    Flat,
    /// Hierarchical navigable small world graph: approximate, fast.
    Hnsw,
}

/// How vector distance is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DistanceMetric {
    /// Squared Euclidean distance.
    L2,
    /// Inner product (the reported distance is `1 - a·b`).
    Ip,
    /// Cosine distance (`1 - cos`).
    Cosine,
}

impl DistanceMetric {
    fn as_str(self) -> &'static str {
        match self {
            DistanceMetric::L2 => "L2",
            DistanceMetric::Ip => "IP",
            DistanceMetric::Cosine => "COSINE",
        }
    }
}

/// A VECTOR field: algorithm, FLOAT32 elements, dimension and metric.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct VectorField {
    algorithm: VectorAlgorithm,
    dim: usize,
    metric: DistanceMetric,
    m: Option<u32>,
    ef_construction: Option<u32>,
}

impl VectorField {
    /// An exact (FLAT) index of `dim`-dimensional FLOAT32 vectors, L2 metric.
    pub fn flat(dim: usize) -> Self {
        VectorField {
            algorithm: VectorAlgorithm::Flat,
            dim,
            metric: DistanceMetric::L2,
            m: None,
            ef_construction: None,
        }
    }

    /// An approximate (HNSW) index of `dim`-dimensional FLOAT32 vectors, L2.
    pub fn hnsw(dim: usize) -> Self {
        VectorField {
            algorithm: VectorAlgorithm::Hnsw,
            ..Self::flat(dim)
        }
    }

    /// The distance metric. Defaults to L2.
    pub fn metric(mut self, metric: DistanceMetric) -> Self {
        self.metric = metric;
        self
    }

    /// HNSW: edges per node (`M`). Defaults to the server's (16).
    pub fn m(mut self, m: u32) -> Self {
        self.m = Some(m);
        self
    }

    /// HNSW: `EF_CONSTRUCTION`. Defaults to the server's (200).
    pub fn ef_construction(mut self, ef: u32) -> Self {
        self.ef_construction = Some(ef);
        self
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl SchemaField {
    /// A TAG field (separator `,`, case-insensitive).
    pub fn tag(name: impl Into<String>) -> Self {
        Self::new(
            name,
            FieldKind::Tag {
                separator: ',',
                case_sensitive: false,
            },
        )
    }

    /// A TEXT field (weight 1).
    pub fn text(name: impl Into<String>) -> Self {
        Self::new(name, FieldKind::Text { weight: 1.0 })
    }

    /// A NUMERIC field.
    pub fn numeric(name: impl Into<String>) -> Self {
        Self::new(name, FieldKind::Numeric)
    }

    /// A GEO field (`"lon,lat"` values).
    pub fn geo(name: impl Into<String>) -> Self {
        Self::new(name, FieldKind::Geo)
    }

    /// A VECTOR field.
    pub fn vector(name: impl Into<String>, vector: VectorField) -> Self {
        Self::new(name, FieldKind::Vector(vector))
    }

    fn new(name: impl Into<String>, kind: FieldKind) -> Self {
        SchemaField {
            name: name.into(),
            kind,
            sortable: false,
        }
    }

    /// Makes the field SORTABLE (faster SORTBY). Defaults to off.
    pub fn sortable(mut self) -> Self {
        self.sortable = true;
        self
    }

    /// TAG: the character that splits a value into several tags. Defaults to `,`.
    pub fn separator(mut self, separator: char) -> Self {
        if let FieldKind::Tag { separator: s, .. } = &mut self.kind {
            *s = separator;
        }
        self
    }

    /// TAG: match case-sensitively. Defaults to off (tags are lowercased).
    pub fn case_sensitive(mut self) -> Self {
        if let FieldKind::Tag { case_sensitive, .. } = &mut self.kind {
            *case_sensitive = true;
        }
        self
    }

    /// TEXT: the field's weight in scoring. Defaults to 1.
    pub fn weight(mut self, weight: f64) -> Self {
        if let FieldKind::Text { weight: w } = &mut self.kind {
            *w = weight;
        }
        self
    }

    /// The field name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field type.
    pub fn field_type(&self) -> FieldType {
        match self.kind {
            FieldKind::Tag { .. } => FieldType::Tag,
            FieldKind::Text { .. } => FieldType::Text,
            FieldKind::Numeric => FieldType::Numeric,
            FieldKind::Geo => FieldType::Geo,
            FieldKind::Vector(_) => FieldType::Vector,
        }
    }

    fn push_args(&self, args: &mut Vec<String>) -> Result<()> {
        check_field(&self.name)?;
        args.push(self.name.clone());
        match &self.kind {
            FieldKind::Tag {
                separator,
                case_sensitive,
            } => {
                args.push("TAG".into());
                if !separator.is_ascii() || separator.is_ascii_alphanumeric() {
                    return Err(Error::validation(format!(
                        "tag field {}: separator {separator:?} must be ASCII punctuation",
                        self.name
                    )));
                }
                args.extend(["SEPARATOR".into(), separator.to_string()]);
                if *case_sensitive {
                    args.push("CASESENSITIVE".into());
                }
            }
            FieldKind::Text { weight } => {
                if !weight.is_finite() || *weight <= 0.0 {
                    return Err(Error::validation(format!(
                        "text field {}: weight {weight} must be positive",
                        self.name
                    )));
                }
                args.extend(["TEXT".into(), "WEIGHT".into(), weight.to_string()]);
            }
            FieldKind::Numeric => args.push("NUMERIC".into()),
            FieldKind::Geo => args.push("GEO".into()),
            FieldKind::Vector(v) => {
                if v.dim == 0 {
                    return Err(Error::validation(format!(
                        "vector field {}: dimension must be at least 1",
                        self.name
                    )));
                }
                let mut attrs = vec![
                    "TYPE".to_string(),
                    "FLOAT32".into(),
                    "DIM".into(),
                    v.dim.to_string(),
                    "DISTANCE_METRIC".into(),
                    v.metric.as_str().into(),
                ];
                if v.algorithm == VectorAlgorithm::Hnsw {
                    if let Some(m) = v.m {
                        attrs.extend(["M".into(), m.to_string()]);
                    }
                    if let Some(ef) = v.ef_construction {
                        attrs.extend(["EF_CONSTRUCTION".into(), ef.to_string()]);
                    }
                }
                args.push("VECTOR".into());
                args.push(match v.algorithm {
                    VectorAlgorithm::Flat => "FLAT".into(),
                    VectorAlgorithm::Hnsw => "HNSW".into(),
                });
                args.push(attrs.len().to_string());
                args.extend(attrs);
            }
        }
        if self.sortable && !matches!(self.kind, FieldKind::Vector(_)) {
            args.push("SORTABLE".into());
        }
        Ok(())
    }
}

impl IndexSchema {
    /// An empty schema; add fields with the methods below.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key prefix of the indexed documents (namespaced by the service).
    /// Defaults to `"{index name}:"`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Index every word, even stop words like "the" (`STOPWORDS 0`).
    /// Defaults to the server's stop-word list.
    pub fn no_stopwords(mut self) -> Self {
        self.no_stopwords = true;
        self
    }

    /// Adds a field with options (see [`SchemaField`]).
    pub fn field(mut self, field: SchemaField) -> Self {
        self.fields.push(field);
        self
    }

    /// Adds a TAG field.
    pub fn tag(self, name: impl Into<String>) -> Self {
        self.field(SchemaField::tag(name))
    }

    /// Adds a TEXT field.
    pub fn text(self, name: impl Into<String>) -> Self {
        self.field(SchemaField::text(name))
    }

    /// Adds a NUMERIC field.
    pub fn numeric(self, name: impl Into<String>) -> Self {
        self.field(SchemaField::numeric(name))
    }

    /// Adds a GEO field.
    pub fn geo(self, name: impl Into<String>) -> Self {
        self.field(SchemaField::geo(name))
    }

    /// Adds a VECTOR field.
    pub fn vector(self, name: impl Into<String>, vector: VectorField) -> Self {
        self.field(SchemaField::vector(name, vector))
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[SchemaField] {
        &self.fields
    }

    /// The prefix as given (before namespacing), if set.
    pub fn key_prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The arguments of `FT.CREATE` after the index name, for a full key prefix.
    pub(crate) fn create_args(&self, full_prefix: &str) -> Result<Vec<String>> {
        if self.fields.is_empty() {
            return Err(Error::validation("an index needs at least one field"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut args = vec!["ON".to_string(), "HASH".into()];
        if !full_prefix.is_empty() {
            args.extend(["PREFIX".into(), "1".into(), full_prefix.to_owned()]);
        }
        if self.no_stopwords {
            args.extend(["STOPWORDS".into(), "0".into()]);
        }
        args.push("SCHEMA".into());
        for field in &self.fields {
            if !seen.insert(field.name.as_str()) {
                return Err(Error::validation(format!(
                    "field {} is defined twice",
                    field.name
                )));
            }
            field.push_args(&mut args)?;
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_args_golden() {
        let schema = IndexSchema::new()
            .field(
                SchemaField::tag("genre")
                    .separator('|')
                    .case_sensitive()
                    .sortable(),
            )
            .field(SchemaField::text("title").weight(2.0))
            .numeric("year")
            .geo("loc")
            .vector(
                "v",
                VectorField::hnsw(4).metric(DistanceMetric::Cosine).m(8),
            )
            .vector("w", VectorField::flat(2));
        let args = schema.create_args("app:movie:").unwrap().join(" ");
        assert_eq!(
            args,
            "ON HASH PREFIX 1 app:movie: SCHEMA genre TAG SEPARATOR | CASESENSITIVE SORTABLE \
             title TEXT WEIGHT 2 year NUMERIC loc GEO \
             v VECTOR HNSW 8 TYPE FLOAT32 DIM 4 DISTANCE_METRIC COSINE M 8 \
             w VECTOR FLAT 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2"
        );
    }

    #[test]
    fn create_args_reject_bad_schemas() {
        assert!(IndexSchema::new().create_args("p:").is_err());
        assert!(IndexSchema::new().tag("a b").create_args("p:").is_err());
        assert!(
            IndexSchema::new()
                .tag("a")
                .numeric("a")
                .create_args("p:")
                .is_err()
        );
        let zero = IndexSchema::new().vector("v", VectorField::flat(0));
        assert!(zero.create_args("p:").is_err());
    }
}
