//! Vector and filtered search on RediSearch (Redis 8 / Redis Stack), with an
//! injection-safe query builder.
//!
//! * [`SearchIndex`] (from [`RedisService::search_index`]): create and drop an
//!   index over HASH documents ([`IndexSchema`]: TAG, TEXT, NUMERIC, GEO and
//!   VECTOR fields), upsert [`Document`]s (vectors as little-endian FLOAT32,
//!   dimension checked), read `FT.INFO`.
//! * [`VectorQueryBuilder`] (from [`SearchIndex::query`] or
//!   [`RedisService::vector_query`]): KNN or range queries, filters
//!   ([`Filter`], or the schema-aware `filter(field, value)`), paging, sorting,
//!   returned fields, `EF_RUNTIME` and the hybrid policy; rendered as one
//!   `FT.SEARCH … DIALECT 2` with the vector as a `PARAMS` blob.
//! * [`SearchResults`]: total, documents (id, distance, fields) or typed
//!   [`Hit`]s through serde, and how many documents vanished mid-search.
//!
//! Index names and document prefixes are namespaced like keys. The schema of
//! an index (`FT.INFO`) is cached per service (shared by its namespace views
//! and clones): [`SearchIndex::create`], [`SearchIndex::drop`] and
//! [`SearchIndex::info`] refresh it.
//!
//! Search is standalone-only: RediSearch on a Redis Cluster needs the search
//! coordinator (Redis Enterprise, or Redis 8 built with it), which an open
//! source cluster does not have. On a cluster service every operation fails
//! with [`ErrorKind::Config`] before any round trip.
//!
//! ```no_run
//! # async fn demo(service: redis_atomics::RedisService) -> redis_atomics::Result<()> {
//! use redis_atomics::search::{Document, Filter, IndexSchema, VectorField};
//!
//! let movies = service.search_index("movies");
//! movies
//!     .create(&IndexSchema::new().prefix("movie:").tag("genre").numeric("year")
//!         .vector("embedding", VectorField::hnsw(3)))
//!     .await?;
//! movies
//!     .upsert("1", &Document::new().field("genre", "sci-fi").field("year", 1979)
//!         .vector("embedding", &[0.1, 0.9, 0.0]))
//!     .await?;
//! let hits = movies
//!     .query()
//!     .knn("embedding", &[0.1, 0.8, 0.1], 3)
//!     .where_(Filter::tag("genre").eq("sci-fi") & Filter::num("year").lt(2000.0))
//!     .execute()
//!     .await?;
//! assert_eq!(hits.ids(), ["1"]);
//! # Ok(()) }
//! ```

mod de;
mod document;
mod filter;
mod info;
mod query;
mod results;
mod schema;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::Value;

pub use document::{Document, decode_vector, encode_vector};
pub use filter::{
    Filter, GeoCondition, GeoUnit, NumCondition, Number, TagCondition, TextCondition,
    escape_tag_value,
};
pub use info::{FieldInfo, IndexInfo};
pub use query::{FilterValue, HybridPolicy, SearchCommand, VectorQueryBuilder};
pub use results::{DISTANCE_FIELD, Hit, SearchDoc, SearchResults};
pub use schema::{
    DistanceMetric, FieldType, IndexSchema, SchemaField, VectorAlgorithm, VectorField,
};

use crate::error::{Error, ErrorKind, Result};
use crate::retry::Idempotency;
use crate::service::RedisService;

/// Index schemas (`FT.INFO`) cached per service, by full index name.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache(Mutex<HashMap<String, Arc<IndexInfo>>>);

impl SchemaCache {
    fn get(&self, name: &str) -> Option<Arc<IndexInfo>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn put(&self, info: Arc<IndexInfo>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(info.name.clone(), info);
    }

    fn remove(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

/// A search index, by name (namespaced). Cheap to clone; holds no state of
/// its own besides the service (the schema cache lives in the service).
#[derive(Debug, Clone)]
pub struct SearchIndex {
    service: RedisService,
    name: Arc<str>,
}

impl RedisService {
    /// The search index `name` (namespaced: `{namespace}:{name}`). Nothing is
    /// sent until an operation runs.
    pub fn search_index(&self, name: &str) -> SearchIndex {
        SearchIndex {
            service: self.clone(),
            name: Arc::from(self.key(name)),
        }
    }

    /// A query on the index `name`: `service.vector_query("movies").knn(…)`.
    pub fn vector_query(&self, name: &str) -> VectorQueryBuilder {
        VectorQueryBuilder::new(self.search_index(name))
    }
}

impl SearchIndex {
    /// The full index name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A query builder on this index.
    pub fn query(&self) -> VectorQueryBuilder {
        VectorQueryBuilder::new(self.clone())
    }

    /// `FT.CREATE` over HASH keys starting with the schema's prefix
    /// (namespaced; defaults to `"{name}:"`). Fails if the index exists.
    pub async fn create(&self, schema: &IndexSchema) -> Result<()> {
        self.standalone()?;
        let prefix = match schema.key_prefix() {
            Some(p) => self.service.key(p),
            None => self
                .service
                .key(&format!("{}:", strip_ns(&self.service, &self.name))),
        };
        let args = schema
            .create_args(&prefix)
            .map_err(|e| e.with_key(self.name()))?;
        let cmd = redis::cmd("FT.CREATE").arg(self.name()).arg(&args).clone();
        self.service.schemas().remove(&self.name);
        let _: Value = self
            .service
            .query(
                "ft.create",
                Some(self.name()),
                Idempotency::NonIdempotent,
                &cmd,
            )
            .await?;
        Ok(())
    }

    /// Creates the index unless it exists; `true` when it was created. An
    /// existing index is kept as it is, even if its schema differs.
    pub async fn create_if_missing(&self, schema: &IndexSchema) -> Result<bool> {
        if self.exists().await? {
            return Ok(false);
        }
        match self.create(schema).await {
            Ok(()) => Ok(true),
            Err(e) if e.message().contains("already exists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the index exists.
    pub async fn exists(&self) -> Result<bool> {
        match self.info().await {
            Ok(_) => Ok(true),
            Err(e) if is_unknown_index(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `FT.DROPINDEX`, deleting the documents too when `delete_docs`;
    /// `false` when there was no such index.
    pub async fn drop(&self, delete_docs: bool) -> Result<bool> {
        self.standalone()?;
        let mut cmd = redis::cmd("FT.DROPINDEX");
        cmd.arg(self.name());
        if delete_docs {
            cmd.arg("DD");
        }
        self.service.schemas().remove(&self.name);
        match self
            .service
            .query::<Value>(
                "ft.dropindex",
                Some(self.name()),
                Idempotency::Idempotent,
                &cmd,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_unknown_index(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `FT.INFO`, fresh from the server (and cached for queries and upserts).
    pub async fn info(&self) -> Result<Arc<IndexInfo>> {
        self.standalone()?;
        let cmd = redis::cmd("FT.INFO").arg(self.name()).clone();
        let reply: Value = self
            .service
            .query("ft.info", Some(self.name()), Idempotency::Idempotent, &cmd)
            .await?;
        let info = Arc::new(IndexInfo::parse(self.name(), &reply)?);
        self.service.schemas().put(Arc::clone(&info));
        Ok(info)
    }

    /// Waits until the background scan of existing documents is done (an
    /// index created over existing keys indexes them asynchronously), polling
    /// `FT.INFO`; a [`Timeout`](ErrorKind::Timeout) error after `timeout`.
    pub async fn wait_until_indexed(&self, timeout: std::time::Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let info = self.info().await?;
            if info.percent_indexed >= 1.0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "index still {:.0}% indexed after {timeout:?}",
                        info.percent_indexed * 100.0
                    ),
                )
                .with_key(self.name()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The Redis key of document `id` (the index prefix followed by `id`).
    pub async fn key(&self, id: &str) -> Result<String> {
        Ok(self.schema().await?.doc_key(id))
    }

    /// Writes document `id` (`HSET` of every field; fields not in `doc` are
    /// kept). Vector fields must be VECTOR fields of the index with its
    /// dimension and finite values.
    pub async fn upsert(&self, id: &str, doc: &Document) -> Result<()> {
        self.standalone()?;
        let info = self.schema().await?;
        let key = info.doc_key(id);
        let err = |msg: String| Error::validation(msg).with_key(&key);
        if id.is_empty() {
            return Err(err("a document id must not be empty".into()));
        }
        if doc.is_empty() {
            return Err(err("a document needs at least one field".into()));
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&key);
        for (name, value) in doc.fields() {
            if let Some(field) = info.field(name) {
                document::check_value(field, value).map_err(|e| e.with_key(&key))?;
            }
            cmd.arg(name).arg(value.as_slice());
        }
        for (name, vector) in doc.vectors() {
            let field = info
                .field(name)
                .filter(|f| f.field_type == FieldType::Vector);
            let field = field.ok_or_else(|| {
                err(format!(
                    "{name} is not a VECTOR field of index {}",
                    self.name
                ))
            })?;
            document::check_dim(name, vector.len(), field.dim).map_err(|e| e.with_key(&key))?;
            let blob = encode_vector(vector)
                .map_err(|e| err(format!("vector field {name}: {}", e.message())))?;
            cmd.arg(name).arg(blob);
        }
        let _: Value = self
            .service
            .query("search.upsert", Some(&key), Idempotency::Idempotent, &cmd)
            .await?;
        Ok(())
    }

    /// Deletes document `id`; `true` when it existed.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        self.standalone()?;
        let key = self.schema().await?.doc_key(id);
        let cmd = redis::cmd("UNLINK").arg(&key).clone();
        let n: u64 = self
            .service
            .query("search.delete", Some(&key), Idempotency::Idempotent, &cmd)
            .await?;
        Ok(n > 0)
    }

    /// The cached schema, fetched once.
    pub(crate) async fn schema(&self) -> Result<Arc<IndexInfo>> {
        match self.cached_schema() {
            Some(info) => Ok(info),
            None => self.info().await,
        }
    }

    /// Drops the cached schema when the server says the index is gone (it
    /// may come back with another schema).
    pub(crate) fn forget_schema_if_gone(&self, err: &Error) {
        if is_unknown_index(err) {
            self.service.schemas().remove(&self.name);
        }
    }

    pub(crate) fn cached_schema(&self) -> Option<Arc<IndexInfo>> {
        self.service.schemas().get(&self.name)
    }

    /// Search needs a standalone server (see the module docs).
    pub(crate) fn standalone(&self) -> Result<()> {
        if self.service.is_cluster() {
            return Err(Error::new(
                ErrorKind::Config,
                "search is standalone-only: RediSearch on a Redis Cluster needs the search \
                 coordinator, which open source Redis Cluster does not have; connect to a \
                 standalone server",
            )
            .with_key(self.name()));
        }
        Ok(())
    }
}

/// The index name without the service's namespace (for the default prefix).
fn strip_ns<'a>(service: &RedisService, full: &'a str) -> &'a str {
    match service.namespace() {
        Some(ns) => full
            .strip_prefix(ns)
            .and_then(|r| r.strip_prefix(':'))
            .unwrap_or(full),
        None => full,
    }
}

fn is_unknown_index(e: &Error) -> bool {
    // redis-rs splits "Unknown index name" into a code and a message.
    let m = e.message().to_ascii_lowercase();
    (m.contains("unknown") && m.contains("index name")) || m.contains("no such index")
}
