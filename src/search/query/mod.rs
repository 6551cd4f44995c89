//! [`VectorQueryBuilder`]: KNN, range and filter queries rendered to one
//! `FT.SEARCH … DIALECT 2`.

mod command;
mod render;

use redis::Value;
use serde::de::DeserializeOwned;

pub use command::SearchCommand;

use super::document::encode_vector;
use super::filter::{Filter, Number};
use super::index::SearchIndex;
use super::results::{Hit, SearchResults};
use crate::core::error::Result;
use crate::core::retry::Idempotency;
use crate::core::service::RedisService;

/// How RediSearch combines a filter with KNN (inside the KNN brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HybridPolicy {
    /// `ADHOC_BF`: compute the distance of every document that passes the
    /// filter (best when the filter is selective).
    AdHocBruteForce,
    /// `BATCHES`: take batches of nearest neighbours and filter them; with a
    /// batch size, or the server's choice.
    Batches(Option<u32>),
}

/// A value for [`VectorQueryBuilder::filter`]: text or a number.
///
/// Integers (up to `i128`, `u64` included) stay integers and are rendered
/// digit for digit on TAG, TEXT and NUMERIC fields, never through `f64`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FilterValue {
    /// Text (a tag, words, or a number as text).
    Text(String),
    /// A number: an exact integer or a float.
    Number(Number),
}

impl From<&str> for FilterValue {
    fn from(v: &str) -> Self {
        FilterValue::Text(v.to_owned())
    }
}
impl From<String> for FilterValue {
    fn from(v: String) -> Self {
        FilterValue::Text(v)
    }
}
impl From<&String> for FilterValue {
    fn from(v: &String) -> Self {
        FilterValue::Text(v.clone())
    }
}
macro_rules! number_value {
    ($($t:ty),*) => {$(
        impl From<$t> for FilterValue {
            fn from(v: $t) -> Self {
                FilterValue::Number(Number::from(v))
            }
        }
    )*};
}
number_value!(
    i8, i16, i32, i64, i128, u8, u16, u32, u64, usize, isize, f32, f64, Number
);

#[derive(Debug, Clone)]
enum Clause {
    Typed(Filter),
    Auto(String, FilterValue),
}

/// A KNN or range clause; the vector is encoded when it is set (a NaN is
/// kept as an error message and reported when the query is rendered).
#[derive(Debug, Clone)]
struct VectorClause {
    field: String,
    blob: std::result::Result<Vec<u8>, String>,
    dim: usize,
    kind: VectorKind,
}

#[derive(Debug, Clone, Copy)]
enum VectorKind {
    Knn(usize),
    Range(f64),
}

impl VectorClause {
    fn new(field: String, vector: &[f32], kind: VectorKind) -> Self {
        VectorClause {
            field,
            blob: encode_vector(vector).map_err(|e| e.message().to_owned()),
            dim: vector.len(),
            kind,
        }
    }
}

/// A fluent, injection-safe `FT.SEARCH` builder; from
/// [`SearchIndex::query`] or [`RedisService::vector_query`](crate::RedisService::vector_query).
///
/// Setting methods never fail; everything is checked when the query is
/// rendered ([`render`](Self::render), [`execute`](Self::execute)), before
/// any round trip.
///
/// ```no_run
/// # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
/// use redis_atomics::search::Filter;
///
/// let results = service
///     .vector_query("movies")
///     .knn("embedding", &[0.1, 0.7, 0.2], 5)
///     .filter("genre", "sci-fi")            // TAG, NUMERIC or TEXT: from FT.INFO
///     .where_(Filter::num("year").gte(1990.0))
///     .return_fields(["title", "year"])
///     .execute()
///     .await?;
/// for doc in &results.docs {
///     println!("{} {:?} {:?}", doc.id, doc.distance, doc.get("title"));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct VectorQueryBuilder {
    index: SearchIndex,
    clauses: Vec<Clause>,
    vector: Option<VectorClause>,
    sort: Option<(String, bool)>,
    page: Option<(usize, usize)>,
    return_fields: Option<Vec<String>>,
    ef_runtime: Option<u32>,
    hybrid: Option<HybridPolicy>,
    timeout: Option<std::time::Duration>,
}

impl RedisService {
    /// A query on the index `name`: `service.vector_query("movies").knn(…)`.
    pub fn vector_query(&self, name: &str) -> VectorQueryBuilder {
        VectorQueryBuilder::new(self.search_index(name))
    }
}

impl SearchIndex {
    /// A query builder on this index.
    pub fn query(&self) -> VectorQueryBuilder {
        VectorQueryBuilder::new(self.clone())
    }
}

impl VectorQueryBuilder {
    pub(crate) fn new(index: SearchIndex) -> Self {
        VectorQueryBuilder {
            index,
            clauses: Vec::new(),
            vector: None,
            sort: None,
            page: None,
            return_fields: None,
            ef_runtime: None,
            hybrid: None,
            timeout: None,
        }
    }

    /// Only documents whose `field` equals `value`; the syntax (TAG, NUMERIC
    /// or TEXT phrase) comes from the index schema (`FT.INFO`, cached per
    /// service). Several filters must all match.
    pub fn filter(mut self, field: impl Into<String>, value: impl Into<FilterValue>) -> Self {
        self.clauses.push(Clause::Auto(field.into(), value.into()));
        self
    }

    /// Only documents matching `filter` (see [`Filter`]); combined with the
    /// other filters by and.
    pub fn where_(mut self, filter: Filter) -> Self {
        self.clauses.push(Clause::Typed(filter));
        self
    }

    /// The `k` nearest neighbours of `vector` in the VECTOR field `field`
    /// (among the filtered documents). Sorted by distance unless
    /// [`sort_by`](Self::sort_by) says otherwise.
    pub fn knn(mut self, field: impl Into<String>, vector: &[f32], k: usize) -> Self {
        self.vector = Some(VectorClause::new(field.into(), vector, VectorKind::Knn(k)));
        self
    }

    /// Every document within `radius` (in the field's metric) of `vector`.
    pub fn range(mut self, field: impl Into<String>, vector: &[f32], radius: f64) -> Self {
        self.vector = Some(VectorClause::new(
            field.into(),
            vector,
            VectorKind::Range(radius),
        ));
        self
    }

    /// Sorts by `field`. Defaults to the distance for vector queries, to the
    /// relevance score otherwise.
    pub fn sort_by(mut self, field: impl Into<String>, ascending: bool) -> Self {
        self.sort = Some((field.into(), ascending));
        self
    }

    /// At most `count` documents (same as `page(0, count)`). Defaults to k
    /// for KNN, 10 otherwise.
    pub fn limit(self, count: usize) -> Self {
        self.page(0, count)
    }

    /// `count` documents starting at `offset`. For KNN, a page that goes
    /// beyond k raises k to `offset + count`, so the page is not empty.
    pub fn page(mut self, offset: usize, count: usize) -> Self {
        self.page = Some((offset, count));
        self
    }

    /// Returns only these fields (plus the distance). Defaults to every field.
    pub fn return_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.return_fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// HNSW: candidates examined per query (`EF_RUNTIME`). Defaults to the
    /// index's (10).
    pub fn ef_runtime(mut self, ef: u32) -> Self {
        self.ef_runtime = Some(ef);
        self
    }

    /// How the filter combines with KNN. Defaults to the server's choice.
    pub fn hybrid_policy(mut self, policy: HybridPolicy) -> Self {
        self.hybrid = Some(policy);
        self
    }

    /// The server-side query time limit (`TIMEOUT`, whole milliseconds,
    /// at least 1). Defaults to the server's `search-timeout` (500 ms; what
    /// happens then is the server's `search-on-timeout` policy).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The `FT.SEARCH` command this builder sends, checked (the schema is
    /// fetched only when [`filter`](Self::filter) needs it and is not cached).
    pub async fn render(&self) -> Result<SearchCommand> {
        self.index.standalone()?;
        let info = match self.index.cached_schema() {
            Some(info) => Some(info),
            None if self.clauses.iter().any(|c| matches!(c, Clause::Auto(..))) => {
                self.render_with(None)?;
                Some(self.index.schema().await?)
            }
            None => None,
        };
        self.render_with(info.as_deref())
    }

    /// Runs the query (the first query of an index also fetches its schema
    /// with `FT.INFO`; invalid input fails before any round trip).
    pub async fn execute(&self) -> Result<SearchResults> {
        self.index.standalone()?;
        let info = match self.index.cached_schema() {
            Some(info) => info,
            None => {
                self.render_with(None)?;
                self.index.schema().await?
            }
        };
        let cmd = self.render_with(Some(&info))?;
        let reply: Value = self
            .index
            .service
            .query(
                "ft.search",
                Some(self.index.name()),
                Idempotency::Idempotent,
                cmd.cmd(),
            )
            .await
            .inspect_err(|e| self.index.forget_schema_if_gone(e))?;
        SearchResults::parse(reply, &info)
    }

    /// Runs the query and decodes every document into `T` (numbers parsed
    /// from text, nested values from JSON; errors name the key and field).
    pub async fn execute_as<T: DeserializeOwned>(&self) -> Result<SearchResults<Hit<T>>> {
        self.execute().await?.into_typed()
    }
}
