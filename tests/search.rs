//! Vector search: index lifecycle, upserts, KNN / range / filtered / paged
//! queries, the schema-aware `filter`, injection safety (fixed cases and a
//! property test on the live server), typed results, vanished documents,
//! golden rendered commands, and the standalone-only rule on a cluster.
//!
//! Needs Redis 8.2 with the search module (`scripts/test` prepares it);
//! without it every live test prints `SKIPPED <test>: …` and returns, unless
//! `REDIS_ATOMICS_REQUIRE_SEARCH=1`, which makes it fail.

mod support;

use std::collections::BTreeSet;

use redis::AsyncCommands;
use redis_atomics::search::{
    DistanceMetric, Document, Filter, GeoUnit, HybridPolicy, IndexSchema, SchemaField, SearchIndex,
    VectorField,
};
use redis_atomics::{ErrorKind, RedisConfig, RedisService};
use serde::Deserialize;

/// A service on the shared search server, namespaced for this test; `None`
/// (after the support module printed why) when there is no search server.
async fn search_service() -> Option<RedisService> {
    let server = support::shared_search().await?;
    Some(connect(&server.url(), &support::current_test_name()).await)
}

async fn connect(url: &str, test: &str) -> RedisService {
    let config = RedisConfig::builder()
        .url(url)
        .namespace(support::unique_prefix(test))
        .build()
        .unwrap();
    RedisService::connect(config).await.unwrap()
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

// ---------------------------------------------------------------------------
// Golden rendered commands (no search module needed)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn golden_knn_commands() {
    let svc = plain_service().await;
    let name = svc.search_index("idx").name().to_owned();
    let q = svc.vector_query("idx").knn("v", &[1.0, 0.0], 5);
    let cmd = q.render().await.unwrap();
    assert_eq!(
        cmd.to_string(),
        format!(
            "FT.SEARCH {name} \"*=>[KNN 5 @v $vec AS __dist]\" SORTBY __dist ASC LIMIT 0 5 \
             PARAMS 2 vec <8 bytes> DIALECT 2"
        )
    );
    let args = cmd.args();
    assert_eq!(args[args.len() - 3], [0, 0, 0x80, 0x3f, 0, 0, 0, 0]);

    let q = svc
        .vector_query("idx")
        .knn("v", &[1.0, 0.0], 5)
        .where_(Filter::tag("genre").eq("sci-fi") & Filter::num("year").lt(2000.0))
        .hybrid_policy(HybridPolicy::Batches(Some(50)))
        .ef_runtime(40)
        .return_fields(["title", "year"])
        .page(10, 5);
    assert_eq!(
        q.render().await.unwrap().to_string(),
        format!(
            "FT.SEARCH {name} \"(@genre:{{sci\\\\-fi}} @year:[-inf (2000])=>[KNN 15 @v $vec \
             HYBRID_POLICY BATCHES BATCH_SIZE 50 EF_RUNTIME 40 AS __dist]\" \
             RETURN 3 title year __dist SORTBY __dist ASC LIMIT 10 5 PARAMS 2 vec <8 bytes> DIALECT 2"
        )
    );
    let q = svc
        .vector_query("idx")
        .knn("v", &[1.0, 0.0], 5)
        .where_(Filter::tag("genre").any_of(["a", "b"]))
        .hybrid_policy(HybridPolicy::AdHocBruteForce)
        .sort_by("year", false)
        .timeout(std::time::Duration::from_millis(250));
    assert_eq!(
        q.render().await.unwrap().query(),
        "(@genre:{a | b})=>[KNN 5 @v $vec HYBRID_POLICY ADHOC_BF AS __dist]"
    );
    assert!(
        q.render()
            .await
            .unwrap()
            .to_string()
            .ends_with(" SORTBY year DESC LIMIT 0 5 PARAMS 2 vec <8 bytes> TIMEOUT 250 DIALECT 2")
    );
}

#[tokio::test]
async fn golden_range_and_filter_commands() {
    let svc = plain_service().await;
    let name = svc.search_index("idx").name().to_owned();
    let q = svc
        .vector_query("idx")
        .range("v", &[0.0, 1.0], 0.5)
        .where_(Filter::text("title").word("space"));
    assert_eq!(
        q.render().await.unwrap().to_string(),
        format!(
            "FT.SEARCH {name} \"@v:[VECTOR_RANGE 0.5 $vec]=>{{$YIELD_DISTANCE_AS: __dist}} \
             @title:(space)\" SORTBY __dist ASC LIMIT 0 10 PARAMS 2 vec <8 bytes> DIALECT 2"
        )
    );
    let q = svc
        .vector_query("idx")
        .where_(Filter::geo("loc").radius(2.35, 48.85, 10.0, GeoUnit::Kilometers))
        .where_(!Filter::num("year").eq(1979.0))
        .sort_by("year", true)
        .limit(3);
    assert_eq!(
        q.render().await.unwrap().to_string(),
        format!(
            "FT.SEARCH {name} \"(@loc:[2.35 48.85 10 km] -(@year:[1979 1979]))\" \
             SORTBY year ASC LIMIT 0 3 DIALECT 2"
        )
    );
    let all = svc.vector_query("idx").render().await.unwrap();
    assert_eq!(
        all.to_string(),
        format!("FT.SEARCH {name} * LIMIT 0 10 DIALECT 2")
    );
}

#[tokio::test]
async fn invalid_queries_fail_before_any_round_trip() {
    let svc = plain_service().await;
    let q = || svc.vector_query("idx");
    let cases = [
        ("empty tag", q().where_(Filter::tag("t").eq(""))),
        ("blank tag", q().where_(Filter::tag("t").eq("  "))),
        ("empty text", q().where_(Filter::text("t").word(""))),
        ("nan number", q().where_(Filter::num("n").gt(f64::NAN))),
        ("bad field", q().where_(Filter::tag("t x").eq("a"))),
        ("bad sort field", q().sort_by("a)", true)),
        ("bad return field", q().return_fields(["ok", "@bad"])),
        ("nan vector", q().knn("v", &[f32::NAN, 1.0], 3)),
        ("inf vector", q().range("v", &[f32::INFINITY], 1.0)),
        ("empty vector", q().knn("v", &[], 3)),
        ("k = 0", q().knn("v", &[1.0], 0)),
        ("bad vector field", q().knn("v-1", &[1.0], 3)),
        ("negative radius", q().range("v", &[1.0], -1.0)),
        (
            "hybrid without filter",
            q().knn("v", &[1.0], 3)
                .hybrid_policy(HybridPolicy::AdHocBruteForce),
        ),
        ("ef without knn", q().ef_runtime(10)),
        ("ef = 0", q().knn("v", &[1.0], 3).ef_runtime(0)),
    ];
    for (what, query) in cases {
        let err = query.render().await.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Validation, "{what}: {err}");
        let err = query.execute().await.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Validation, "{what}: {err}");
    }
}

// ---------------------------------------------------------------------------
// Index lifecycle and documents
// ---------------------------------------------------------------------------

#[tokio::test]
async fn index_lifecycle_with_every_field_type() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = svc.search_index("lifecycle");
    assert!(!index.exists().await.unwrap());
    let schema = IndexSchema::new()
        .field(SchemaField::tag("tag").separator('|').case_sensitive())
        .field(SchemaField::text("text").weight(2.0).sortable())
        .numeric("num")
        .geo("geo")
        .vector("flat", VectorField::flat(3).metric(DistanceMetric::Ip))
        .vector(
            "hnsw",
            VectorField::hnsw(4)
                .metric(DistanceMetric::Cosine)
                .m(8)
                .ef_construction(100),
        );
    index.create(&schema).await.unwrap();
    assert!(index.exists().await.unwrap());
    assert!(!index.create_if_missing(&schema).await.unwrap());
    assert!(index.create(&schema).await.is_err(), "creating twice fails");

    let info = index.info().await.unwrap();
    assert_eq!(info.name, svc.key("lifecycle"));
    assert_eq!(
        info.prefixes,
        [svc.key("lifecycle:")],
        "default prefix, namespaced"
    );
    use redis_atomics::search::{FieldType, VectorAlgorithm};
    let types: Vec<_> = info
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.field_type))
        .collect();
    assert_eq!(
        types,
        [
            ("tag", FieldType::Tag),
            ("text", FieldType::Text),
            ("num", FieldType::Numeric),
            ("geo", FieldType::Geo),
            ("flat", FieldType::Vector),
            ("hnsw", FieldType::Vector)
        ]
    );
    let flat = info.field("flat").unwrap();
    assert_eq!(
        (flat.dim, flat.metric, flat.algorithm),
        (
            Some(3),
            Some(DistanceMetric::Ip),
            Some(VectorAlgorithm::Flat)
        )
    );
    let hnsw = info.field("hnsw").unwrap();
    assert_eq!(
        (hnsw.dim, hnsw.metric, hnsw.algorithm),
        (
            Some(4),
            Some(DistanceMetric::Cosine),
            Some(VectorAlgorithm::Hnsw)
        )
    );

    index
        .upsert(
            "a",
            &Document::new()
                .field("tag", "x")
                .vector("flat", &[1.0, 2.0, 3.0]),
        )
        .await
        .unwrap();
    assert_eq!(index.info().await.unwrap().num_docs, 1);
    let key = index.key("a").await.unwrap();
    assert_eq!(key, svc.key("lifecycle:a"));

    // Drop keeps the documents unless asked.
    assert!(index.drop(false).await.unwrap());
    assert!(!index.exists().await.unwrap());
    assert!(svc.exists("lifecycle:a").await.unwrap());
    assert!(
        !index.drop(false).await.unwrap(),
        "dropping a missing index"
    );
    assert!(index.create_if_missing(&schema).await.unwrap());
    // The existing document is indexed by a background scan.
    index
        .wait_until_indexed(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(index.info().await.unwrap().num_docs, 1);
    assert!(index.drop(true).await.unwrap());
    assert!(
        !svc.exists("lifecycle:a").await.unwrap(),
        "DD deletes the documents"
    );
}

#[tokio::test]
async fn upsert_encodes_vectors_and_checks_them() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = svc.search_index("docs");
    let schema = IndexSchema::new()
        .prefix("d:")
        .tag("t")
        .vector("v", VectorField::flat(3));
    index.create(&schema).await.unwrap();
    index
        .upsert(
            "1",
            &Document::new()
                .field("t", "x")
                .vector("v", &[1.0, -2.5, 0.0]),
        )
        .await
        .unwrap();
    let mut raw = svc.connection();
    let blob: Vec<u8> = raw.hget(svc.key("d:1"), "v").await.unwrap();
    let mut want = Vec::new();
    for x in [1.0f32, -2.5, 0.0] {
        want.extend_from_slice(&x.to_le_bytes());
    }
    assert_eq!(blob, want, "little-endian FLOAT32");
    // Upsert updates in place and keeps other fields.
    index
        .upsert("1", &Document::new().field("t", "y"))
        .await
        .unwrap();
    let t: String = raw.hget(svc.key("d:1"), "t").await.unwrap();
    assert_eq!(t, "y");
    let still: Vec<u8> = raw.hget(svc.key("d:1"), "v").await.unwrap();
    assert_eq!(still, want);

    let err = index
        .upsert("2", &Document::new().vector("v", &[1.0, 2.0]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!(
        err.to_string()
            .contains("vector field v: expected 3 dimensions, got 2"),
        "{err}"
    );
    assert_eq!(err.key(), Some(svc.key("d:2").as_str()));
    let err = index
        .upsert("2", &Document::new().vector("v", &[1.0, f32::NAN, 0.0]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!(err.to_string().contains("NaN"), "{err}");
    let err = index
        .upsert("2", &Document::new().vector("t", &[1.0, 2.0, 3.0]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("t is not a VECTOR field"), "{err}");
    let err = index
        .upsert("2", &Document::new().field("v", "not a vector"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("set it with Document::vector"),
        "{err}"
    );
    assert!(index.upsert("2", &Document::new()).await.is_err());
    assert!(
        index
            .upsert("", &Document::new().field("t", "x"))
            .await
            .is_err()
    );
    assert!(
        !svc.exists("d:2").await.unwrap(),
        "nothing written by failed upserts"
    );

    let typed = svc.search_index("typed");
    typed
        .create(&IndexSchema::new().numeric("n").geo("g"))
        .await
        .unwrap();
    for (field, value) in [
        ("n", "abc"),
        ("n", "NaN"),
        ("g", "2.35"),
        ("g", "200,1"),
        ("g", "x,y"),
    ] {
        let err = typed
            .upsert("bad", &Document::new().field(field, value))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation, "{field}={value}");
        assert!(err.to_string().contains("is not a valid value"), "{err}");
    }
    typed
        .upsert(
            "ok",
            &Document::new()
                .field("n", "-1.5e3")
                .field("g", "2.35, 48.85"),
        )
        .await
        .unwrap();
    typed
        .upsert(
            "inf",
            &Document::new().field("n", "inf").field("g", "-180,85"),
        )
        .await
        .unwrap();
    assert_eq!(typed.info().await.unwrap().num_docs, 2, "both indexed");
    assert!(index.delete("1").await.unwrap());
    assert!(!index.delete("1").await.unwrap());
    // Queries check the query vector too.
    let err = index
        .query()
        .knn("v", &[1.0], 1)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!(
        err.to_string().contains("expected 3 dimensions, got 1"),
        "{err}"
    );
    let err = index
        .query()
        .knn("t", &[1.0, 2.0, 3.0], 1)
        .execute()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("@t is not a VECTOR field"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// KNN and range
// ---------------------------------------------------------------------------

#[tokio::test]
async fn knn_orders_by_every_metric_on_flat_and_hnsw() {
    let Some(svc) = search_service().await else {
        return;
    };
    // (metric, query, docs a b c in order, expected distances)
    type Case = (DistanceMetric, [f32; 2], [[f32; 2]; 3], [f32; 3]);
    let cases: [Case; 3] = [
        (
            DistanceMetric::L2,
            [0.0, 0.0],
            [[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]],
            [1.0, 4.0, 9.0],
        ),
        (
            DistanceMetric::Ip,
            [1.0, 0.0],
            [[1.0, 0.0], [0.5, 0.5], [-1.0, 0.0]],
            [0.0, 0.5, 2.0],
        ),
        (
            DistanceMetric::Cosine,
            [1.0, 0.0],
            [[2.0, 0.0], [1.0, 1.0], [0.0, 5.0]],
            [0.0, 0.292_893_2, 1.0],
        ),
    ];
    for (metric, query, docs, want) in cases {
        for hnsw in [false, true] {
            let name = format!("knn_{metric:?}_{hnsw}");
            let field = if hnsw {
                VectorField::hnsw(2)
            } else {
                VectorField::flat(2)
            };
            let index = svc.search_index(&name);
            index
                .create(&IndexSchema::new().vector("v", field.metric(metric)))
                .await
                .unwrap();
            // Insert in reverse so that insertion order cannot explain the result.
            for (id, v) in ["a", "b", "c"].iter().zip(docs).rev() {
                index
                    .upsert(id, &Document::new().vector("v", &v))
                    .await
                    .unwrap();
            }
            let res = index.query().knn("v", &query, 3).execute().await.unwrap();
            assert_eq!(ids(&res), ["a", "b", "c"], "{name}");
            assert_eq!(res.total, 3);
            for (doc, want) in res.docs.iter().zip(want) {
                let d = doc.distance.unwrap();
                assert!(
                    (d - want).abs() < 1e-4,
                    "{name}: {} at {d}, want {want}",
                    doc.id
                );
            }
            let top = index.query().knn("v", &query, 1).execute().await.unwrap();
            assert_eq!(ids(&top), ["a"], "{name}: k = 1");
        }
    }
}

#[tokio::test]
async fn page_beyond_k_raises_k_instead_of_returning_nothing() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = svc.search_index("pages");
    index
        .create(
            &IndexSchema::new()
                .tag("t")
                .numeric("n")
                .vector("v", VectorField::flat(1)),
        )
        .await
        .unwrap();
    for i in 0..30 {
        let doc = Document::new()
            .field("t", if i % 2 == 0 { "even" } else { "odd" })
            .field("n", i)
            .vector("v", &[i as f32]);
        index.upsert(&format!("{i:02}"), &doc).await.unwrap();
    }
    let q = index.query().knn("v", &[0.0], 5);
    let first = q.clone().execute().await.unwrap();
    assert_eq!(ids(&first), ["00", "01", "02", "03", "04"]);
    let second = q.clone().page(5, 5).execute().await.unwrap();
    assert_eq!(ids(&second), ["05", "06", "07", "08", "09"]);
    let far = q.clone().page(20, 20).execute().await.unwrap();
    assert_eq!(far.docs.len(), 10, "only 30 documents");
    assert_eq!(far.docs[0].id, "20");
    assert_eq!(far.total, 30);
    let limited = q.clone().limit(2).execute().await.unwrap();
    assert_eq!(ids(&limited), ["00", "01"]);
    // Filtered pages.
    let odd = index
        .query()
        .knn("v", &[0.0], 3)
        .where_(Filter::tag("t").eq("odd"))
        .page(3, 3)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&odd), ["07", "09", "11"]);
    // Non-vector pages, sorted.
    let plain = index
        .query()
        .where_(Filter::tag("t").eq("even"))
        .sort_by("n", false)
        .page(2, 3)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&plain), ["24", "22", "20"]);
    assert_eq!(plain.total, 15);
    let beyond = index
        .query()
        .sort_by("n", true)
        .page(40, 10)
        .execute()
        .await
        .unwrap();
    assert!(
        beyond.docs.is_empty(),
        "a plain query past the end is empty"
    );
    assert_eq!(beyond.total, 30);
    // A KNN can be re-sorted by another field: the 5 nearest, by n descending.
    let resorted = q.clone().sort_by("n", false).execute().await.unwrap();
    assert_eq!(ids(&resorted), ["04", "03", "02", "01", "00"]);
}

#[tokio::test]
async fn range_query_returns_everything_within_the_radius() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = movies(&svc).await;
    // L2 is squared: within 0.1 of [1, 0] are 1 (0) and 2 (0.02).
    let res = index
        .query()
        .range("v", &[1.0, 0.0], 0.1)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["1", "2"]);
    assert_eq!(res.docs[0].distance, Some(0.0));
    assert!((res.docs[1].distance.unwrap() - 0.02).abs() < 1e-5);
    // Radius covering [0.5, 0.5] (0.5) but not [0.2, 0.8] (1.28).
    let res = index
        .query()
        .range("v", &[1.0, 0.0], 0.6)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["1", "2", "4"]);
    let res = index
        .query()
        .range("v", &[1.0, 0.0], 0.6)
        .where_(!Filter::tag("genre").eq("horror"))
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["1", "4"]);
    let some = index
        .query()
        .range("v", &[1.0, 0.0], 0.1)
        .return_fields(["title"])
        .execute()
        .await
        .unwrap();
    let fields: Vec<&str> = some.docs[1].fields().map(|(k, _)| k).collect();
    assert_eq!(fields, ["title"]);
    assert!((some.docs[1].distance.unwrap() - 0.02).abs() < 1e-5);
    let none = index
        .query()
        .range("v", &[-5.0, -5.0], 0.1)
        .execute()
        .await
        .unwrap();
    assert_eq!(none.total, 0);
    assert!(none.docs.is_empty());
}

#[tokio::test]
async fn return_fields_ef_runtime_and_hybrid_policies() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = movies(&svc).await;
    let res = index
        .query()
        .knn("v", &[1.0, 0.0], 2)
        .return_fields(["title", "year"])
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["1", "2"]);
    let fields: Vec<&str> = res.docs[0].fields().map(|(k, _)| k).collect();
    assert_eq!(fields, ["title", "year"]);
    assert_eq!(res.docs[0].get("title"), Some("Alien"));
    assert_eq!(res.docs[0].parse::<i64>("year"), Some(1979));
    assert_eq!(res.docs[0].distance, Some(0.0));
    assert_eq!(res.docs[0].key, svc.key("movie:1"));
    // Without return_fields: every field, the vector decodable.
    let all = index
        .query()
        .knn("v", &[0.0, 1.0], 1)
        .execute()
        .await
        .unwrap();
    assert_eq!(all.docs[0].vector("v"), Some(vec![0.0, 1.0]));
    assert_eq!(all.docs[0].get("loc"), Some("13.4,52.52"));

    // HNSW with EF_RUNTIME: exact on a tiny set.
    let h = svc.search_index("hnsw");
    h.create(
        &IndexSchema::new()
            .tag("t")
            .vector("v", VectorField::hnsw(2).m(4)),
    )
    .await
    .unwrap();
    for i in 0..50 {
        let doc = Document::new()
            .field("t", if i < 25 { "low" } else { "high" })
            .vector("v", &[i as f32, 1.0]);
        h.upsert(&i.to_string(), &doc).await.unwrap();
    }
    let res = h
        .query()
        .knn("v", &[10.2, 1.0], 3)
        .ef_runtime(100)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["10", "11", "9"]);
    for policy in [
        HybridPolicy::AdHocBruteForce,
        HybridPolicy::Batches(None),
        HybridPolicy::Batches(Some(2)),
    ] {
        let res = h
            .query()
            .knn("v", &[10.2, 1.0], 3)
            .where_(Filter::tag("t").eq("high"))
            .hybrid_policy(policy)
            .execute()
            .await
            .unwrap();
        assert_eq!(ids(&res), ["25", "26", "27"], "{policy:?}");
    }
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

#[tokio::test]
async fn filters_of_every_kind() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = movies(&svc).await;
    let paris = || Filter::geo("loc").radius(2.35, 48.85, 10.0, GeoUnit::Kilometers);
    let cases: Vec<(&str, Filter, &[&str])> = vec![
        (
            "tag eq",
            Filter::tag("genre").eq("sci-fi"),
            &["1", "2", "5"],
        ),
        (
            "tag eq of a multi-value tag",
            Filter::tag("genre").eq("horror"),
            &["2"],
        ),
        (
            "tag eq ignores case",
            Filter::tag("genre").eq("DRAMA"),
            &["3"],
        ),
        (
            "tag any_of",
            Filter::tag("genre").any_of(["drama", "comedy"]),
            &["3", "4"],
        ),
        (
            "tag prefix",
            Filter::tag("genre").prefix("sci"),
            &["1", "2", "5"],
        ),
        ("num eq", Filter::num("year").eq(1979.0), &["1"]),
        (
            "num ne",
            Filter::num("year").ne(1979.0),
            &["2", "3", "4", "5"],
        ),
        ("num gt", Filter::num("year").gt(1987.0), &["4"]),
        ("num gte", Filter::num("year").gte(1987.0), &["4", "5"]),
        ("num lt", Filter::num("year").lt(1979.0), &["3"]),
        ("num lte", Filter::num("year").lte(1979.0), &["1", "3"]),
        (
            "num between",
            Filter::num("year").between(1980.0, 1990.0),
            &["2", "5"],
        ),
        (
            "text word",
            Filter::text("title").word("space"),
            &["3", "5"],
        ),
        (
            "text words",
            Filter::text("title").word("odyssey SPACE"),
            &["3"],
        ),
        (
            "text phrase",
            Filter::text("title").phrase("space odyssey"),
            &["3"],
        ),
        (
            "text phrase order",
            Filter::text("title").phrase("odyssey space"),
            &[],
        ),
        ("geo radius", paris(), &["1", "4"]),
        (
            "geo miles",
            Filter::geo("loc").radius(-74.0, 40.7, 1.0, GeoUnit::Miles),
            &["5"],
        ),
        (
            "and",
            Filter::tag("genre").eq("sci-fi") & Filter::num("year").lt(1985.0),
            &["1", "2"],
        ),
        (
            "or",
            Filter::tag("genre").eq("drama") | Filter::num("year").gt(1990.0),
            &["3", "4"],
        ),
        ("not", !Filter::tag("genre").eq("sci-fi"), &["3", "4"]),
        (
            "and not",
            Filter::tag("genre").eq("sci-fi") & !Filter::text("title").word("space"),
            &["1", "2"],
        ),
        (
            "nested",
            (paris() | Filter::num("year").eq(1968.0)) & !Filter::tag("genre").eq("comedy"),
            &["1", "3"],
        ),
        (
            "all",
            Filter::all([
                Filter::tag("genre").eq("sci-fi"),
                Filter::num("year").gte(1980.0),
            ]),
            &["2", "5"],
        ),
        (
            "any",
            Filter::any([
                Filter::num("year").eq(1999.0),
                Filter::num("year").eq(1968.0),
            ]),
            &["3", "4"],
        ),
    ];
    for (what, filter, want) in cases {
        let res = index
            .query()
            .where_(filter.clone())
            .execute()
            .await
            .unwrap();
        assert_eq!(
            id_set(&res),
            set(want),
            "{what}: {}",
            filter.render().unwrap()
        );
        assert_eq!(res.total, want.len() as u64, "{what}");
        // The same filter as a KNN pre-filter.
        let knn = index
            .query()
            .knn("v", &[1.0, 0.0], 5)
            .where_(filter)
            .execute()
            .await
            .unwrap();
        assert_eq!(id_set(&knn), set(want), "{what} with KNN");
    }
    // Several where_ clauses all apply; sorting by a sortable field.
    let res = index
        .query()
        .where_(Filter::num("year").gte(1970.0))
        .where_(!Filter::tag("genre").eq("comedy"))
        .sort_by("year", false)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["5", "2", "1"]);
}

#[tokio::test]
async fn schema_aware_filter_picks_tag_numeric_and_text() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = movies(&svc).await;
    let q = svc
        .vector_query("movies")
        .filter("genre", "sci-fi")
        .filter("year", 1982);
    assert_eq!(
        q.render().await.unwrap().query(),
        r"(@genre:{sci\-fi} @year:[1982 1982])"
    );
    assert_eq!(ids(&q.execute().await.unwrap()), ["2"]);
    let res = svc
        .vector_query("movies")
        .filter("year", "1979")
        .execute()
        .await
        .unwrap();
    assert_eq!(
        ids(&res),
        ["1"],
        "a number given as text on a NUMERIC field"
    );
    let q = svc.vector_query("movies").filter("title", "Space Odyssey");
    assert_eq!(
        q.render().await.unwrap().query(),
        "@title:(\"Space Odyssey\")"
    );
    assert_eq!(ids(&q.execute().await.unwrap()), ["3"]);
    let res = index
        .query()
        .knn("v", &[0.0, 1.0], 2)
        .filter("genre", "sci-fi")
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["5", "2"]);

    for (field, value, why) in [
        ("nope", "x", "no such field"),
        ("loc", "1,2", "GEO"),
        ("v", "x", "VECTOR"),
        ("year", "abc", "is not a number"),
        ("genre", "", "empty value"),
        ("title", "?!", "has no words"),
    ] {
        let err = svc
            .vector_query("movies")
            .filter(field, value)
            .execute()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation, "{field}");
        assert!(err.to_string().contains(why), "{field}: {err}");
    }
}

/// Values that try to break out of a tag: each must find its own document only.
#[tokio::test]
async fn injection_attempts_match_only_the_exact_tag() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = svc.search_index("inject");
    let schema = IndexSchema::new()
        .field(SchemaField::tag("tenant").case_sensitive().separator(';'))
        .text("body")
        .vector("v", VectorField::flat(1));
    index.create(&schema).await.unwrap();
    let values = [
        "victim",
        "a",
        "b",
        "x",
        "a|b",
        "x} | @tenant:{victim",
        "x}|@tenant:{victim",
        "*",
        "a*",
        "\"quoted\"",
        "it's",
        "back\\slash",
        "\\",
        "-victim",
        "@tenant",
        "{}",
        "()",
        "(victim)",
        "$vec",
        "a b",
        "tab\there",
        "new\nline",
        "ünïcødé 🚀",
        "日本語",
        "%fuzzy%",
        "~opt",
        "a,b",
        "[1 2]",
        "nbsp\u{a0}here",
        "\u{3000}ideographic",
        "zero\u{200b}width",
        "=>[KNN 10 @v $vec]",
        "@tenant:{victim}",
    ];
    for (i, v) in values.iter().enumerate() {
        let doc = Document::new()
            .field("tenant", *v)
            .field("body", *v)
            .vector("v", &[i as f32]);
        index.upsert(&i.to_string(), &doc).await.unwrap();
    }
    for (i, v) in values.iter().enumerate() {
        let f = Filter::tag("tenant").eq(*v);
        let res = index.query().where_(f.clone()).execute().await.unwrap();
        assert_eq!(
            ids(&res),
            [i.to_string()],
            "tag eq {v:?} rendered as {}",
            f.render().unwrap()
        );
        let knn = index
            .query()
            .knn("v", &[0.0], 50)
            .where_(f.clone())
            .execute()
            .await
            .unwrap();
        assert_eq!(ids(&knn), [i.to_string()], "KNN + tag eq {v:?}");
        let auto = index.query().filter("tenant", *v).execute().await.unwrap();
        assert_eq!(ids(&auto), [i.to_string()], "filter(tenant, {v:?})");
    }
    // any_of with hostile values matches exactly those.
    let res = index
        .query()
        .where_(Filter::tag("tenant").any_of(["a|b", "*"]))
        .execute()
        .await
        .unwrap();
    assert_eq!(id_set(&res), set(&["4", "7"]));
    // A prefix full of syntax only matches real prefixes.
    let res = index
        .query()
        .where_(Filter::tag("tenant").prefix("x}"))
        .execute()
        .await
        .unwrap();
    assert_eq!(id_set(&res), set(&["5", "6"]));
    // Text: syntax is split away, never interpreted; "victim" alone is 3 docs.
    let res = index
        .query()
        .where_(Filter::text("body").word("x) | @tenant:(victim"))
        .execute()
        .await
        .unwrap();
    assert_eq!(
        id_set(&res),
        set(&["5", "6"]),
        "docs containing x, tenant and victim"
    );
}

/// What the index trims from a tag.
fn ascii_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

const DECOYS: [&str; 6] = ["victim", "a", "b", "*", "x", "\\"];

/// For random strings s, a document tagged s is the only one tag-eq(s) finds.
#[test]
fn property_tag_eq_finds_exactly_the_tagged_document() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let Some(server) = support::shared_search_blocking() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (svc, index) = rt.block_on(async {
        let svc = connect(&server.url(), "property").await;
        let index = svc.search_index("prop");
        let schema =
            IndexSchema::new().field(SchemaField::tag("t").case_sensitive().separator(','));
        index.create(&schema).await.unwrap();
        for decoy in DECOYS {
            index
                .upsert(
                    &format!("decoy-{decoy}"),
                    &Document::new().field("t", decoy),
                )
                .await
                .unwrap();
        }
        (svc, index)
    });
    let _ = &svc;
    // Any printable ASCII but the separator, ASCII whitespace, and some
    // unicode (non-ASCII spaces included).
    let value = "[ -+\\--~\t\n\\\\\"'{}|()*@$é日🚀\u{a0}\u{3000}\u{200b}]{1,24}"
        .prop_filter("not blank", |s: &String| !ascii_trim(s).is_empty());
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&value, |s| {
            let id = format!("p{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            let found = rt.block_on(async {
                index
                    .upsert(&id, &Document::new().field("t", s.as_str()))
                    .await
                    .unwrap();
                let res = index
                    .query()
                    .where_(Filter::tag("t").eq(s.as_str()))
                    .limit(1000)
                    .execute()
                    .await
                    .unwrap();
                index.delete(&id).await.unwrap();
                res
            });
            // The decoys are found too when s is one of them (modulo the
            // whitespace the index trims).
            let mut want = vec![id.clone()];
            want.extend(
                DECOYS
                    .iter()
                    .filter(|d| **d == ascii_trim(&s))
                    .map(|d| format!("decoy-{d}")),
            );
            want.sort();
            let mut got: Vec<String> = found.docs.iter().map(|d| d.id.clone()).collect();
            got.sort();
            prop_assert_eq!(got, want, "value {:?}", s);
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn huge_vectors_and_values() {
    let Some(svc) = search_service().await else {
        return;
    };
    const DIM: usize = 1536;
    let index = svc.search_index("huge");
    let schema = IndexSchema::new()
        .field(SchemaField::tag("t").case_sensitive())
        .no_stopwords()
        .text("body")
        .vector("v", VectorField::hnsw(DIM).metric(DistanceMetric::Cosine));
    index.create(&schema).await.unwrap();
    // 4,096 bytes is the longest tag the module indexes.
    let long_tag: String = (0..3_500)
        .map(|i| ['a', '|', '}', ' ', 'é', '\\', '*'][i % 7])
        .collect();
    let long_text: String = (0..10_000).map(|i| format!("w{i} ")).collect();
    for i in 0..20 {
        let mut v = vec![0.0f32; DIM];
        v[i] = 1.0;
        v[DIM - 1] = 0.5;
        let tag = if i == 7 {
            long_tag.clone()
        } else {
            format!("t{i}")
        };
        let doc = Document::new()
            .field("t", tag)
            .field("body", &long_text)
            .vector("v", &v);
        index.upsert(&i.to_string(), &doc).await.unwrap();
    }
    let mut q = vec![0.0f32; DIM];
    q[7] = 1.0;
    let res = index
        .query()
        .knn("v", &q, 3)
        .return_fields(["t"])
        .execute()
        .await
        .unwrap();
    assert_eq!(res.docs[0].id, "7");
    assert_eq!(res.docs[0].get("t"), Some(long_tag.as_str()));
    let res = index
        .query()
        .where_(Filter::tag("t").eq(long_tag.as_str()))
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["7"]);
    let too_long = "x".repeat(4_097);
    let err = index
        .upsert("long", &Document::new().field("t", too_long.as_str()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("would not be indexed"), "{err}");
    let err = index
        .query()
        .where_(Filter::tag("t").eq(too_long.as_str()))
        .execute()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("can never match"), "{err}");
    index
        .upsert("4096", &Document::new().field("t", "y".repeat(4_096)))
        .await
        .unwrap();
    let res = index
        .query()
        .where_(Filter::tag("t").eq("y".repeat(4_096)))
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["4096"], "exactly at the limit");
    let res = index
        .query()
        .where_(Filter::text("body").phrase("w9998 w9999") & Filter::tag("t").eq("t3"))
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["3"]);
    // "a" is a stop word, indexed here thanks to no_stopwords.
    index
        .upsert("s", &Document::new().field("t", "s").field("body", "a"))
        .await
        .unwrap();
    let res = index
        .query()
        .where_(Filter::text("body").word("a"))
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["s"]);
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, PartialEq)]
struct Movie {
    title: String,
    year: u16,
    genre: String,
    #[serde(default)]
    rating: Option<f32>,
}

#[tokio::test]
async fn typed_results_through_serde() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = movies(&svc).await;
    let res = index
        .query()
        .knn("v", &[1.0, 0.0], 2)
        .return_fields(["title", "year", "genre"])
        .execute_as::<Movie>()
        .await
        .unwrap();
    assert_eq!(res.total, 2);
    assert_eq!(res.docs[0].id, "1");
    assert_eq!(res.docs[0].distance, Some(0.0));
    assert_eq!(
        res.docs[0].value,
        Movie {
            title: "Alien".into(),
            year: 1979,
            genre: "sci-fi".into(),
            rating: None
        }
    );
    // A field that does not decode names the document and the field.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        title: u32,
    }
    let err = index
        .query()
        .knn("v", &[1.0, 0.0], 1)
        .execute_as::<Wrong>()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deserialization);
    assert_eq!(err.key(), Some(svc.key("movie:1").as_str()));
    assert_eq!(err.path(), Some(".title"));
}

#[tokio::test]
async fn namespaces_isolate_indexes_and_documents() {
    let Some(server) = support::shared_search().await else {
        return;
    };
    let a = connect(&server.url(), "ns-a").await;
    let b = connect(&server.url(), "ns-b").await;
    for svc in [&a, &b] {
        let index = svc.search_index("same");
        index
            .create(
                &IndexSchema::new()
                    .tag("t")
                    .vector("v", VectorField::flat(1)),
            )
            .await
            .unwrap();
        index
            .upsert(
                "1",
                &Document::new()
                    .field("t", svc.namespace().unwrap())
                    .vector("v", &[1.0]),
            )
            .await
            .unwrap();
    }
    for svc in [&a, &b] {
        let res = svc
            .vector_query("same")
            .knn("v", &[1.0], 10)
            .execute()
            .await
            .unwrap();
        assert_eq!(ids(&res), ["1"]);
        assert_eq!(res.docs[0].get("t"), svc.namespace());
        assert_eq!(res.docs[0].key, svc.key("same:1"));
    }
}

#[tokio::test]
async fn resp3_replies_parse_like_resp2() {
    let Some(server) = support::shared_search().await else {
        return;
    };
    let url = format!("{}?protocol=resp3", server.url());
    let svc = connect(&url, "resp3").await;
    let client_info: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut svc.connection())
        .await
        .unwrap();
    assert!(client_info.contains("resp=3"), "{client_info}");
    let index = movies(&svc).await;
    let res = index
        .query()
        .knn("v", &[1.0, 0.0], 2)
        .return_fields(["title"])
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&res), ["1", "2"]);
    assert_eq!(res.total, 2);
    assert_eq!(res.docs[1].get("title"), Some("The Thing"));
    assert!((res.docs[1].distance.unwrap() - 0.02).abs() < 1e-5);
    let info = index.info().await.unwrap();
    assert_eq!(info.fields.len(), 5);
    assert_eq!(info.field("v").unwrap().dim, Some(2));
}

/// Many tasks on two services (two connections) hit an index whose schema is
/// not cached yet: every query gets the right answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_queries_share_the_schema_cache() {
    let Some(server) = support::shared_search().await else {
        return;
    };
    let a = connect(&server.url(), "concurrent").await;
    let index = movies(&a).await;
    let b = RedisService::connect(
        RedisConfig::builder()
            .url(server.url())
            .namespace(a.namespace().unwrap())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let year = [1979, 1982, 1968, 1999, 1987][i % 5];
            let res = svc
                .vector_query("movies")
                .knn("v", &[1.0, 0.0], 5)
                .filter("year", year)
                .execute()
                .await
                .unwrap();
            (
                i % 5,
                res.ids().iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        }));
    }
    for task in tasks {
        let (n, got) = task.await.unwrap();
        assert_eq!(got, [(n + 1).to_string()]);
    }
    drop(index);
}

/// A dropped and re-created index is noticed: the failed query forgets the
/// cached schema, the next one fetches the new one.
#[tokio::test]
async fn a_recreated_index_refreshes_the_cached_schema() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = svc.search_index("recreated");
    index
        .create(
            &IndexSchema::new()
                .tag("kind")
                .vector("v", VectorField::flat(1)),
        )
        .await
        .unwrap();
    index
        .upsert(
            "1",
            &Document::new()
                .field("kind", vec!["a", "b"])
                .vector("v", &[1.0]),
        )
        .await
        .unwrap();
    let res = index.query().filter("kind", "b").execute().await.unwrap();
    assert_eq!(ids(&res), ["1"], "a list is a multi-value tag");

    // Another client drops the index and re-creates it with other types.
    let other = svc
        .with_namespace(svc.namespace().unwrap())
        .search_index("recreated");
    let mut raw = svc.connection();
    let _: () = redis::cmd("FT.DROPINDEX")
        .arg(other.name())
        .query_async(&mut raw)
        .await
        .unwrap();
    let err = index
        .query()
        .filter("kind", "b")
        .execute()
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("index"), "{err}");
    let _: () = redis::cmd("FT.CREATE")
        .arg(other.name())
        .arg(&[
            "ON",
            "HASH",
            "PREFIX",
            "1",
            &svc.key("recreated:"),
            "SCHEMA",
        ])
        .arg(&[
            "kind", "NUMERIC", "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "2",
        ])
        .arg(&["DISTANCE_METRIC", "L2"])
        .query_async(&mut raw)
        .await
        .unwrap();
    index
        .upsert(
            "2",
            &Document::new().field("kind", 7).vector("v", &[1.0, 2.0]),
        )
        .await
        .unwrap();
    let res = index.query().filter("kind", 7).execute().await.unwrap();
    assert_eq!(ids(&res), ["2"], "NUMERIC now, from a fresh FT.INFO");
}

/// Documents that expire between the index lookup and the fetch of their
/// fields are skipped and counted. Active expiry is off on this private
/// server, so expired keys stay in the index until a read notices them.
#[tokio::test]
async fn expired_documents_are_skipped_and_counted() {
    let Some(server) = support::SearchServer::start_with(
        &support::current_test_name(),
        &["--enable-debug-command", "yes"],
    ) else {
        return;
    };
    let svc = connect(&server.url(), "expired").await;
    let mut raw = svc.connection();
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query_async(&mut raw)
        .await
        .unwrap();
    let index = svc.search_index("exp");
    index
        .create(
            &IndexSchema::new()
                .tag("t")
                .numeric("n")
                .vector("v", VectorField::flat(1)),
        )
        .await
        .unwrap();
    for i in 0..6 {
        index
            .upsert(
                &i.to_string(),
                &Document::new().field("t", "x").vector("v", &[i as f32]),
            )
            .await
            .unwrap();
    }
    for i in [1, 3] {
        let key = index.key(&i.to_string()).await.unwrap();
        let _: () = redis::cmd("PEXPIRE")
            .arg(&key)
            .arg(1)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    // Wait until both keys are logically expired (PTTL never reports a
    // negative remaining time, so poll the clock instead).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let res = index.query().knn("v", &[0.0], 6).execute().await.unwrap();
    assert_eq!(ids(&res), ["0", "2", "4", "5"]);
    assert_eq!(res.skipped, 2, "{res:?}");
}

// ---------------------------------------------------------------------------
// Cluster and the skip rule
// ---------------------------------------------------------------------------

#[tokio::test]
async fn search_on_a_cluster_is_a_config_error() {
    let cluster = support::shared_cluster().await;
    let config = RedisConfig::builder()
        .cluster_nodes(cluster.nodes())
        .build()
        .unwrap();
    let svc = RedisService::connect(config).await.unwrap();
    let index = svc.search_index("idx");
    let schema = IndexSchema::new().vector("v", VectorField::flat(2));
    let errors = [
        index.create(&schema).await.unwrap_err(),
        index.drop(true).await.unwrap_err(),
        index.info().await.unwrap_err(),
        index
            .upsert("1", &Document::new().vector("v", &[1.0, 2.0]))
            .await
            .unwrap_err(),
        svc.vector_query("idx")
            .knn("v", &[1.0, 2.0], 3)
            .execute()
            .await
            .unwrap_err(),
        svc.vector_query("idx").render().await.unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("standalone-only"), "{err}");
    }
}

/// Runs one live test of this binary in a child process with the search
/// module path broken: it must fail under REDIS_ATOMICS_REQUIRE_SEARCH=1 and
/// pass with a `SKIPPED <test>: …` line otherwise.
#[test]
fn missing_search_server_fails_when_required_and_skips_otherwise() {
    let exe = std::env::current_exe().unwrap();
    let test = "range_query_returns_everything_within_the_radius";
    let run = |require: &str| {
        std::process::Command::new(&exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("REDIS_SEARCH_MODULE", "/nonexistent/redisearch.so")
            .env("REDIS_ATOMICS_REQUIRE_SEARCH", require)
            .output()
            .unwrap()
    };
    let required = run("1");
    let err = String::from_utf8_lossy(&required.stderr);
    assert!(!required.status.success(), "must fail when required: {err}");
    assert!(
        err.contains("REDIS_ATOMICS_REQUIRE_SEARCH=1")
            && err.contains("/nonexistent/redisearch.so"),
        "{err}"
    );

    let optional = run("0");
    let err = String::from_utf8_lossy(&optional.stderr);
    assert!(
        optional.status.success(),
        "must pass (skip) when optional: {err}"
    );
    assert!(
        err.contains(&format!("SKIPPED {test}: search server not available"))
            && err.contains("/nonexistent/redisearch.so"),
        "{err}"
    );
}
