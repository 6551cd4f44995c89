//! Index lifecycle and documents: create / drop / info, upsert and its checks.

use super::*;

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
