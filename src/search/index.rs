//! [`SearchIndex`]: one index of the search module, and the per-service
//! cache of index schemas that the query builder checks filters against.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::Value;

use super::document::{self, Document, encode_vector};
use super::info::IndexInfo;
use super::schema::{FieldType, IndexSchema};
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::retry::Idempotency;
use crate::core::service::RedisService;

/// Index schemas (`FT.INFO`) cached per service, by full index name.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache(Mutex<HashMap<String, Arc<IndexInfo>>>);

impl crate::core::slots::SlotState for SchemaCache {
    fn init(_: &crate::core::config::RedisConfig) -> Self {
        SchemaCache::default()
    }
}

impl RedisService {
    /// The search schema cache shared by every view of this service.
    pub(crate) fn schemas(&self) -> Arc<SchemaCache> {
        self.slot::<SchemaCache>()
    }
}

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
    pub(super) service: RedisService,
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
}

impl SearchIndex {
    /// The full index name.
    pub fn name(&self) -> &str {
        &self.name
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
