//! Vector and filtered search on RediSearch (Redis 8 / Redis Stack), with an
//! injection-safe query builder.
//!
//! * [`SearchIndex`] (from [`RedisService::search_index`](crate::RedisService::search_index)): create and drop an
//!   index over HASH documents ([`IndexSchema`]: TAG, TEXT, NUMERIC, GEO and
//!   VECTOR fields), upsert [`Document`]s (vectors as little-endian FLOAT32,
//!   dimension checked), read `FT.INFO`.
//! * [`VectorQueryBuilder`] (from [`SearchIndex::query`] or
//!   [`RedisService::vector_query`](crate::RedisService::vector_query)): KNN or range queries, filters
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
//! with [`ErrorKind::Config`](crate::ErrorKind::Config) before any round trip.
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
mod index;
mod info;
mod query;
mod results;
mod schema;

pub use document::{Document, decode_vector, encode_vector};
pub use filter::{
    Filter, GeoCondition, GeoUnit, NumCondition, Number, TagCondition, TextCondition,
    escape_tag_value,
};
pub use index::SearchIndex;
pub use info::{FieldInfo, IndexInfo};
pub use query::{FilterValue, HybridPolicy, SearchCommand, VectorQueryBuilder};
pub use results::{DISTANCE_FIELD, Hit, SearchDoc, SearchResults};
pub use schema::{
    DistanceMetric, FieldType, IndexSchema, SchemaField, VectorAlgorithm, VectorField,
};
