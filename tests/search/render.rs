//! Golden rendered commands and checks before any round trip (no search module
//! needed).

use super::*;

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
