//! Filters of every kind, the schema-aware `filter`, injection attempts, the
//! live property test, huge values.

use super::*;

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
