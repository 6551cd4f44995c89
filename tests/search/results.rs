//! Results: typed decoding, namespaces, RESP3, concurrency, a re-created index,
//! vanished documents.

use super::*;

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
    let b = support::service_at(&server.url(), a.namespace().unwrap()).await;
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
