//! [`VectorQueryBuilder`]: KNN, range and filter queries rendered to one
//! `FT.SEARCH … DIALECT 2`.

use std::fmt::{self, Write as _};

use redis::{Cmd, Value};
use serde::de::DeserializeOwned;

use super::SearchIndex;
use super::document::{check_dim, encode_vector};
use super::filter::{Filter, check_field};
use super::results::{DISTANCE_FIELD, Hit, SearchResults};
use super::schema::{FieldType, IndexInfo};
use crate::error::{Error, Result};
use crate::retry::Idempotency;

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
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FilterValue {
    /// Text (a tag, words, or a number as text).
    Text(String),
    /// A number.
    Number(f64),
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
                FilterValue::Number(v as f64)
            }
        }
    )*};
}
number_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize, f32, f64);

#[derive(Debug, Clone)]
enum Clause {
    Typed(Filter),
    Auto(String, FilterValue),
}

#[derive(Debug, Clone)]
enum VectorClause {
    Knn {
        field: String,
        vector: Vec<f32>,
        k: usize,
    },
    Range {
        field: String,
        vector: Vec<f32>,
        radius: f64,
    },
}

impl VectorClause {
    fn field(&self) -> &str {
        match self {
            VectorClause::Knn { field, .. } | VectorClause::Range { field, .. } => field,
        }
    }

    fn vector(&self) -> &[f32] {
        match self {
            VectorClause::Knn { vector, .. } | VectorClause::Range { vector, .. } => vector,
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
        self.vector = Some(VectorClause::Knn {
            field: field.into(),
            vector: vector.to_vec(),
            k,
        });
        self
    }

    /// Every document within `radius` (in the field's metric) of `vector`.
    pub fn range(mut self, field: impl Into<String>, vector: &[f32], radius: f64) -> Self {
        self.vector = Some(VectorClause::Range {
            field: field.into(),
            vector: vector.to_vec(),
            radius,
        });
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
                &cmd.cmd,
            )
            .await?;
        SearchResults::parse(reply, &info)
    }

    /// Runs the query and decodes every document into `T` (numbers parsed
    /// from text, nested values from JSON; errors name the key and field).
    pub async fn execute_as<T: DeserializeOwned>(&self) -> Result<SearchResults<Hit<T>>> {
        self.execute().await?.into_typed()
    }

    fn render_with(&self, info: Option<&IndexInfo>) -> Result<SearchCommand> {
        let index = self.index.name();
        let err = |msg: String| Error::validation(msg).with_key(index);
        let mut filter = String::new();
        let mut n = 0;
        for clause in &self.clauses {
            if n > 0 {
                filter.push(' ');
            }
            match clause {
                Clause::Typed(f) => f.render_into(&mut filter),
                Clause::Auto(field, value) => match info {
                    Some(info) => auto_filter(info, field, value)?.render_into(&mut filter),
                    // Checking only (see `execute`): the type is not known yet.
                    None => check_field(field).map(|()| filter.push('*')),
                },
            }
            .map_err(|e| e.with_key(index))?;
            n += 1;
        }
        if n > 1 {
            filter.insert(0, '(');
            filter.push(')');
        }

        let mut query = String::with_capacity(filter.len() + 64);
        let (mut offset, mut count) = self.page.unwrap_or((0, 10));
        let mut blob = None;
        match &self.vector {
            None => query.push_str(if filter.is_empty() { "*" } else { &filter }),
            Some(v) => {
                check_field(v.field()).map_err(|e| e.with_key(index))?;
                if v.vector().is_empty() {
                    return Err(err(format!("vector query on @{}: empty vector", v.field())));
                }
                if let Some(info) = info {
                    let field = info
                        .field(v.field())
                        .filter(|f| f.field_type == FieldType::Vector);
                    let field = field.ok_or_else(|| {
                        err(format!(
                            "@{} is not a VECTOR field of index {index}",
                            v.field()
                        ))
                    })?;
                    check_dim(v.field(), v.vector(), field.dim).map_err(|e| e.with_key(index))?;
                }
                blob = Some(encode_vector(v.vector()).map_err(|e| {
                    err(format!("vector query on @{}: {}", v.field(), e.message()))
                })?);
                match v {
                    VectorClause::Knn { field, k, .. } => {
                        if *k == 0 {
                            return Err(err(format!("KNN on @{field}: k must be at least 1")));
                        }
                        (offset, count) = self.page.unwrap_or((0, *k));
                        let k = (*k).max(offset.saturating_add(count));
                        if filter.is_empty() {
                            query.push('*');
                        } else if is_wrapped(&filter) {
                            query.push_str(&filter);
                        } else {
                            query.push('(');
                            query.push_str(&filter);
                            query.push(')');
                        }
                        let _ = write!(query, "=>[KNN {k} @{field} $vec");
                        match self.hybrid {
                            None => {}
                            Some(_) if filter.is_empty() => {
                                return Err(err("a hybrid policy needs a filter".into()));
                            }
                            Some(HybridPolicy::AdHocBruteForce) => {
                                query.push_str(" HYBRID_POLICY ADHOC_BF")
                            }
                            Some(HybridPolicy::Batches(size)) => {
                                query.push_str(" HYBRID_POLICY BATCHES");
                                if let Some(size) = size {
                                    let _ = write!(query, " BATCH_SIZE {size}");
                                }
                            }
                        }
                        if let Some(ef) = self.ef_runtime {
                            if ef == 0 {
                                return Err(err("EF_RUNTIME must be at least 1".into()));
                            }
                            let _ = write!(query, " EF_RUNTIME {ef}");
                        }
                        let _ = write!(query, " AS {DISTANCE_FIELD}]");
                    }
                    VectorClause::Range { field, radius, .. } => {
                        if !radius.is_finite() || *radius < 0.0 {
                            return Err(err(format!(
                                "range on @{field}: radius {radius} must be finite and >= 0"
                            )));
                        }
                        if self.hybrid.is_some() || self.ef_runtime.is_some() {
                            return Err(err(
                                "hybrid_policy and ef_runtime apply to KNN only".into()
                            ));
                        }
                        let _ = write!(
                            query,
                            "@{field}:[VECTOR_RANGE {radius} $vec]=>{{$YIELD_DISTANCE_AS: {DISTANCE_FIELD}}}"
                        );
                        if !filter.is_empty() {
                            query.push(' ');
                            query.push_str(&filter);
                        }
                    }
                }
            }
        }
        if self.vector.is_none() && (self.hybrid.is_some() || self.ef_runtime.is_some()) {
            return Err(err("hybrid_policy and ef_runtime need a knn query".into()));
        }

        let mut cmd = redis::cmd("FT.SEARCH");
        cmd.arg(index).arg(&query);
        if let Some(fields) = &self.return_fields {
            let extra = usize::from(blob.is_some());
            cmd.arg("RETURN").arg(fields.len() + extra);
            for f in fields {
                check_field(f).map_err(|e| e.with_key(index))?;
                cmd.arg(f);
            }
            if blob.is_some() {
                cmd.arg(DISTANCE_FIELD);
            }
        }
        match (&self.sort, blob.is_some()) {
            (Some((field, asc)), _) => {
                check_field(field).map_err(|e| e.with_key(index))?;
                cmd.arg("SORTBY")
                    .arg(field)
                    .arg(if *asc { "ASC" } else { "DESC" });
            }
            (None, true) => {
                cmd.arg("SORTBY").arg(DISTANCE_FIELD).arg("ASC");
            }
            (None, false) => {}
        }
        cmd.arg("LIMIT").arg(offset).arg(count);
        if let Some(blob) = &blob {
            cmd.arg("PARAMS").arg(2).arg("vec").arg(blob.as_slice());
        }
        cmd.arg("DIALECT").arg(2);
        Ok(SearchCommand { cmd })
    }
}

/// Whether `query` is one parenthesized group: `(a b)`, not `(a) (b)`.
fn is_wrapped(query: &str) -> bool {
    if !query.starts_with('(') || !query.ends_with(')') {
        return false;
    }
    let mut depth = 0usize;
    let mut chars = query.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            // Numeric and geo ranges: `[(1 +inf]` has an unbalanced `(`.
            '[' => {
                for (_, c) in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                }
            }
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i == query.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// The filter `filter(field, value)` stands for, given the field's type.
fn auto_filter(info: &IndexInfo, field: &str, value: &FilterValue) -> Result<Filter> {
    let ty = info.field(field).map(|f| f.field_type).ok_or_else(|| {
        Error::validation(format!(
            "filter on @{field}: no such field in index {}",
            info.name
        ))
    })?;
    Ok(match (ty, value) {
        (FieldType::Tag, FilterValue::Text(s)) => Filter::tag(field).eq(s.as_str()),
        (FieldType::Tag, FilterValue::Number(x)) => Filter::tag(field).eq(x.to_string()),
        (FieldType::Numeric, FilterValue::Number(x)) => Filter::num(field).eq(*x),
        (FieldType::Numeric, FilterValue::Text(s)) => {
            let x: f64 = s.trim().parse().map_err(|_| {
                Error::validation(format!("filter on NUMERIC @{field}: {s:?} is not a number"))
            })?;
            Filter::num(field).eq(x)
        }
        (FieldType::Text, FilterValue::Text(s)) => Filter::text(field).phrase(s.as_str()),
        (FieldType::Text, FilterValue::Number(x)) => Filter::text(field).phrase(x.to_string()),
        (other, _) => {
            return Err(Error::validation(format!(
                "filter on @{field}: a {} field needs a typed Filter (e.g. Filter::geo)",
                other.as_str()
            )));
        }
    })
}

/// A rendered `FT.SEARCH` command. `Display` prints it like `redis-cli`
/// input, with the vector blob as `<N bytes>`.
#[derive(Debug, Clone)]
pub struct SearchCommand {
    cmd: Cmd,
}

impl SearchCommand {
    /// The command arguments (the name `FT.SEARCH` first).
    pub fn args(&self) -> Vec<Vec<u8>> {
        self.cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect()
    }

    /// The query string (the third argument).
    pub fn query(&self) -> String {
        self.args()
            .get(2)
            .map(|q| String::from_utf8_lossy(q).into_owned())
            .unwrap_or_default()
    }

    /// The command for redis-rs, e.g. to run it on another connection.
    pub fn cmd(&self) -> &Cmd {
        &self.cmd
    }
}

impl fmt::Display for SearchCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args = self.args();
        let mut blob_next = false;
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            match std::str::from_utf8(arg) {
                Ok(s) if !blob_next => {
                    if s.is_empty()
                        || s.contains(|c: char| {
                            c.is_whitespace() || c == '"' || c == '\'' || c == '\\'
                        })
                    {
                        write!(f, "{s:?}")?;
                    } else {
                        f.write_str(s)?;
                    }
                }
                _ => write!(f, "<{} bytes>", arg.len())?,
            }
            blob_next =
                arg.as_slice() == b"vec" && args.get(i.wrapping_sub(1)).is_some_and(|p| p == b"2");
        }
        Ok(())
    }
}
