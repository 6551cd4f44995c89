//! Vector search: index lifecycle, upserts, KNN / range / filtered / paged
//! queries, the schema-aware `filter`, injection safety (fixed cases and a
//! property test on the live server), typed results, vanished documents,
//! golden rendered commands, exact integers in filters, and the
//! standalone-only rule on a cluster.
//!
//! Needs Redis 8.2 with the search module (`scripts/test` prepares it);
//! without it every live test prints `SKIPPED <test>: …` and returns, unless
//! `REDIS_ATOMICS_REQUIRE_SEARCH=1`, which makes it fail.

mod support;

#[path = "search/filters.rs"]
mod filters;
#[path = "search/index.rs"]
mod index;
#[path = "search/integers.rs"]
mod integers;
#[path = "search/knn.rs"]
mod knn;
#[path = "search/render.rs"]
mod render;
#[path = "search/results.rs"]
mod results;
#[path = "search/rules.rs"]
mod rules;

use std::collections::BTreeSet;

use redis::AsyncCommands;
use redis_atomics::search::{
    DistanceMetric, Document, Filter, GeoUnit, HybridPolicy, IndexSchema, SchemaField, SearchIndex,
    VectorField,
};
use redis_atomics::{ErrorKind, RedisService};
use serde::Deserialize;

/// A service on the shared search server, namespaced for this test; `None`
/// (after the support module printed why) when there is no search server.
async fn search_service() -> Option<RedisService> {
    let server = support::shared_search().await?;
    Some(connect(&server.url(), &support::current_test_name()).await)
}

async fn connect(url: &str, test: &str) -> RedisService {
    support::service_at(url, &support::unique_prefix(test)).await
}

/// A service on the plain shared server (no search module): enough to render.
async fn plain_service() -> RedisService {
    let server = support::shared_server().await;
    connect(&server.url(), "render").await
}

fn ids(results: &redis_atomics::search::SearchResults) -> Vec<&str> {
    results.ids()
}

fn id_set(results: &redis_atomics::search::SearchResults) -> BTreeSet<String> {
    results.docs.iter().map(|d| d.id.clone()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Five movies with every field type.
async fn movies(svc: &RedisService) -> SearchIndex {
    let index = svc.search_index("movies");
    let schema = IndexSchema::new()
        .prefix("movie:")
        .tag("genre")
        .text("title")
        .field(SchemaField::numeric("year").sortable())
        .geo("loc")
        .vector("v", VectorField::flat(2));
    index.create(&schema).await.unwrap();
    // (id, genre, title, year, location, vector)
    type Row<'a> = (&'a str, &'a str, &'a str, i64, &'a str, [f32; 2]);
    let rows: [Row; 5] = [
        ("1", "sci-fi", "Alien", 1979, "2.35,48.85", [1.0, 0.0]),
        (
            "2",
            "sci-fi,horror",
            "The Thing",
            1982,
            "-0.12,51.5",
            [0.9, 0.1],
        ),
        (
            "3",
            "drama",
            "2001: A Space Odyssey",
            1968,
            "13.4,52.52",
            [0.0, 1.0],
        ),
        (
            "4",
            "comedy",
            "Galaxy Quest",
            1999,
            "2.30,48.86",
            [0.5, 0.5],
        ),
        ("5", "sci-fi", "Space Balls", 1987, "-74.0,40.7", [0.2, 0.8]),
    ];
    for (id, genre, title, year, loc, v) in rows {
        let doc = Document::new()
            .field("genre", genre)
            .field("title", title)
            .field("year", year)
            .field("loc", loc)
            .vector("v", &v);
        index.upsert(id, &doc).await.unwrap();
    }
    index
}
