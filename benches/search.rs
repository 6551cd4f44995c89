//! The query builder's own cost: a KNN (k = 10 over 3,000 documents of 128
//! dimensions) and a filtered, sorted page through `VectorQueryBuilder`,
//! against the same `FT.SEARCH` sent raw through a redis-rs
//! `ConnectionManager`, on one spawned Redis 8.2 + search server, in the same
//! run. Goal: ≤ 5% overhead.
//!
//! `cargo bench --bench search`, then `scripts/bench-ratios`. Besides
//! criterion's groups, the bench prints a paired ratio (builder and raw calls
//! interleaved in rounds, median of the per-round ratios), which cancels most
//! of the drift of a shared machine. Without the search server (see
//! tests/support) it prints why and measures nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use redis::Value;
use redis::aio::ConnectionManager;
use redis_atomics::search::{Document, Filter, IndexSchema, VectorField, VectorQueryBuilder};
use redis_atomics::{RedisConfig, RedisService};

const DOCS: usize = 3_000;
const DIM: usize = 128;

/// A deterministic pseudo-random vector.
fn vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f32 / 10_000.0
        })
        .collect()
}

fn knn(service: &RedisService, q: &[f32]) -> VectorQueryBuilder {
    service
        .vector_query("bench")
        .knn("v", q, 10)
        .return_fields(["title", "n"])
}

fn filtered_page(service: &RedisService) -> VectorQueryBuilder {
    service
        .vector_query("bench")
        .where_(Filter::tag("t").eq("even") & Filter::num("n").gte(100.0))
        .sort_by("n", true)
        .page(200, 20)
        .return_fields(["title", "n"])
}

/// Median over `rounds` of (builder time / raw time) for `per_round` calls
/// of each, interleaved.
async fn paired_ratio<B, R, FB, FR>(
    rounds: usize,
    per_round: usize,
    mut builder: B,
    mut raw: R,
) -> f64
where
    B: FnMut() -> FB,
    R: FnMut() -> FR,
    FB: std::future::Future<Output = ()>,
    FR: std::future::Future<Output = ()>,
{
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (mut tb, mut tr) = (Duration::ZERO, Duration::ZERO);
        for i in 0..per_round * 2 {
            let start = Instant::now();
            if (i + round) % 2 == 0 {
                builder().await;
                tb += start.elapsed();
            } else {
                raw().await;
                tr += start.elapsed();
            }
        }
        ratios.push(tb.as_secs_f64() / tr.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

fn bench(c: &mut Criterion) {
    let Some(server) = support::SearchServer::start("benches/search") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (service, raw) = rt.block_on(async {
        let service =
            RedisService::connect(RedisConfig::builder().url(server.url()).build().unwrap())
                .await
                .unwrap();
        let index = service.search_index("bench");
        let schema = IndexSchema::new()
            .tag("t")
            .text("title")
            .numeric("n")
            .vector("v", VectorField::flat(DIM));
        index.create(&schema).await.unwrap();
        for i in 0..DOCS {
            let doc = Document::new()
                .field("t", if i % 2 == 0 { "even" } else { "odd" })
                .field("title", format!("document number {i}"))
                .field("n", i)
                .vector("v", &vector(i as u64));
            index.upsert(&i.to_string(), &doc).await.unwrap();
        }
        let raw = ConnectionManager::new(server.client()).await.unwrap();
        (service, raw)
    });
    let q = vector(u64::MAX);
    // The raw commands are exactly what the builder sends.
    let knn_cmd = rt
        .block_on(knn(&service, &q).render())
        .unwrap()
        .cmd()
        .clone();
    let page_cmd = rt
        .block_on(filtered_page(&service).render())
        .unwrap()
        .cmd()
        .clone();
    let check = rt.block_on(knn(&service, &q).execute()).unwrap();
    assert_eq!(check.docs.len(), 10);

    let raw_call = |cmd: &redis::Cmd| {
        let mut raw = raw.clone();
        let cmd = cmd.clone();
        async move {
            let v: Value = cmd.query_async(&mut raw).await.unwrap();
            std::hint::black_box(v);
        }
    };

    let mut g = c.benchmark_group("search_knn");
    g.bench_function("raw", |b| b.to_async(&rt).iter(|| raw_call(&knn_cmd)));
    g.bench_function("builder", |b| {
        b.to_async(&rt).iter(|| async {
            let r = knn(&service, &q).execute().await.unwrap();
            std::hint::black_box(r);
        })
    });
    g.finish();

    // The client-side work alone (no round trip): build and render the query.
    let mut g = c.benchmark_group("search_render");
    g.bench_function("knn", |b| {
        b.to_async(&rt).iter(|| async {
            std::hint::black_box(knn(&service, &q).render().await.unwrap());
        })
    });
    g.bench_function("filter_page", |b| {
        b.to_async(&rt).iter(|| async {
            std::hint::black_box(filtered_page(&service).render().await.unwrap());
        })
    });
    g.finish();

    let mut g = c.benchmark_group("search_filter_page");
    g.bench_function("raw", |b| b.to_async(&rt).iter(|| raw_call(&page_cmd)));
    g.bench_function("builder", |b| {
        b.to_async(&rt).iter(|| async {
            let r = filtered_page(&service).execute().await.unwrap();
            std::hint::black_box(r);
        })
    });
    g.finish();

    let knn_ratio = rt.block_on(paired_ratio(
        60,
        50,
        || async {
            std::hint::black_box(knn(&service, &q).execute().await.unwrap());
        },
        || raw_call(&knn_cmd),
    ));
    let page_ratio = rt.block_on(paired_ratio(
        60,
        50,
        || async {
            std::hint::black_box(filtered_page(&service).execute().await.unwrap());
        },
        || raw_call(&page_cmd),
    ));
    println!(
        "paired ratio builder/raw: search_knn {knn_ratio:.3}, search_filter_page {page_ratio:.3}"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
