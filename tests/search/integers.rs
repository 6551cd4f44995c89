//! Defect 10 of issue 12: integers in filters render exactly (never through
//! f64) on TAG, TEXT and NUMERIC fields, so a filter on one id never matches
//! the document of a neighbouring id.

use super::*;

/// Ids that f64 cannot hold: each one's f64 rounding is another real id.
const NEAR_2_53: u64 = 9_007_199_254_740_993; // as f64: …992
const BIG_U64: u64 = 12_345_678_901_234_567_891; // as f64: 12345678901234567000 (printed)

/// Documents whose tag / text / numeric field holds an integer, two by two
/// with the integer an f64 rounding turns the first one into.
async fn ids_index(svc: &RedisService) -> SearchIndex {
    let index = svc.search_index("ids");
    let schema = IndexSchema::new()
        .prefix("ids:")
        .tag("uid")
        .text("code")
        .numeric("n");
    index.create(&schema).await.unwrap();
    let rows: [(&str, String, i64); 8] = [
        ("exact", NEAR_2_53.to_string(), 1),
        ("rounded", (NEAR_2_53 - 1).to_string(), 2),
        ("big", BIG_U64.to_string(), 3),
        ("big-rounded", "12345678901234567000".into(), 4),
        ("i64-max", i64::MAX.to_string(), 5),
        ("i64-max-rounded", "9223372036854775808".into(), 6),
        ("i128-max", i128::MAX.to_string(), 7),
        ("i128-min", i128::MIN.to_string(), 8),
    ];
    for (id, value, n) in rows {
        let doc = Document::new()
            .field("uid", value.as_str())
            .field("code", value.as_str())
            .field("n", n);
        index.upsert(id, &doc).await.unwrap();
    }
    index
}

#[tokio::test]
async fn integer_filters_match_exactly_on_tag_and_text_fields() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = ids_index(&svc).await;
    // (value, its exact decimal text, the document it must match)
    let cases: Vec<(redis_atomics::search::FilterValue, String, &str)> = vec![
        (NEAR_2_53.into(), NEAR_2_53.to_string(), "exact"),
        ((NEAR_2_53 as i64).into(), NEAR_2_53.to_string(), "exact"),
        (BIG_U64.into(), BIG_U64.to_string(), "big"),
        (i64::MAX.into(), i64::MAX.to_string(), "i64-max"),
        ((i64::MAX as u64).into(), i64::MAX.to_string(), "i64-max"),
        (i128::MAX.into(), i128::MAX.to_string(), "i128-max"),
        (i128::MIN.into(), i128::MIN.to_string(), "i128-min"),
    ];
    for (value, text, want) in cases {
        // TAG: the exact digits (a leading '-' is escaped).
        let q = index.query().filter("uid", value.clone());
        let rendered = q.render().await.unwrap().query();
        let escaped = text.replace('-', "\\-");
        assert_eq!(rendered, format!("@uid:{{{escaped}}}"), "tag {text}");
        let got = q.execute().await.unwrap();
        assert_eq!(ids(&got), [want], "tag filter on {text} matched {got:?}");

        // TEXT: a phrase of the exact digits (the tokenizer drops the '-').
        let q = index.query().filter("code", value);
        let rendered = q.render().await.unwrap().query();
        let digits = text.trim_start_matches('-');
        assert_eq!(rendered, format!("@code:(\"{digits}\")"), "text {text}");
        let got = q.execute().await.unwrap();
        assert_eq!(ids(&got), [want], "text filter on {text} matched {got:?}");
    }
}

#[tokio::test]
async fn integer_filters_render_exactly_on_numeric_fields() {
    let Some(svc) = search_service().await else {
        return;
    };
    let index = ids_index(&svc).await;
    let render = |v: redis_atomics::search::FilterValue| {
        let q = index.query().filter("n", v);
        async move { q.render().await.unwrap().query() }
    };
    assert_eq!(
        render(NEAR_2_53.into()).await,
        format!("@n:[{NEAR_2_53} {NEAR_2_53}]")
    );
    assert_eq!(
        render(BIG_U64.into()).await,
        format!("@n:[{BIG_U64} {BIG_U64}]")
    );
    assert_eq!(
        render(i64::MIN.into()).await,
        format!("@n:[{} {}]", i64::MIN, i64::MIN)
    );
    assert_eq!(
        render(i128::MAX.into()).await,
        format!("@n:[{} {}]", i128::MAX, i128::MAX)
    );
    // Integer text on a NUMERIC field is not parsed through f64 either.
    assert_eq!(
        render(" 9007199254740993 ".into()).await,
        format!("@n:[{NEAR_2_53} {NEAR_2_53}]")
    );
    // Small integers still match (the server holds NUMERIC values as doubles).
    let got = index.query().filter("n", 3u64).execute().await.unwrap();
    assert_eq!(ids(&got), ["big"]);
    let got = index.query().filter("n", "4").execute().await.unwrap();
    assert_eq!(ids(&got), ["big-rounded"]);
}
