//! KNN ordering for every metric on FLAT and HNSW, paging beyond k, range
//! queries, returned fields, EF_RUNTIME and hybrid policies.

use super::*;

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
