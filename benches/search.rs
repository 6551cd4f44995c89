//! The query builder's own cost: a KNN (k = 10 over 3,000 documents of 128
//! dimensions) and a filtered, sorted page through `VectorQueryBuilder`,
//! against the same `FT.SEARCH` sent raw through a redis-rs
//! `ConnectionManager`, on one spawned Redis 8.2 + search server, in the same
//! run. Goal: ≤ 5% overhead.
//!
//! `cargo bench --bench search`, then `scripts/bench-ratios`. Besides
//! criterion's groups, the bench prints a paired ratio (builder and raw calls
//! interleaved one by one; ratio of the median and of the lower-quartile
//! latencies), which cancels most of the drift of a shared machine. Without the search server (see
//! tests/support) it prints why and measures nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
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

/// `calls` calls of each, interleaved one by one (the order flipping every
/// call); returns the ratio of the median latencies and of the lower
/// quartiles (builder / raw), which shrug off the stalls of a shared machine.
async fn paired_ratio<B, R, FB, FR>(calls: usize, mut builder: B, mut raw: R) -> (f64, f64)
where
    B: FnMut() -> FB,
    R: FnMut() -> FR,
    FB: std::future::Future<Output = ()>,
    FR: std::future::Future<Output = ()>,
{
    let (mut tb, mut tr) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for i in 0..calls {
        for builder_turn in [i % 2 == 0, i % 2 != 0] {
            let start = Instant::now();
            if builder_turn {
                builder().await;
                tb.push(start.elapsed());
            } else {
                raw().await;
                tr.push(start.elapsed());
            }
        }
    }
    tb.sort();
    tr.sort();
    let at = |v: &[Duration], q: f64| v[(v.len() as f64 * q) as usize].as_secs_f64();
    (at(&tb, 0.5) / at(&tr, 0.5), at(&tb, 0.25) / at(&tr, 0.25))
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
        // Generous timeouts on both sides: a loaded machine must not fail the run.
        let config = RedisConfig::builder()
            .url(server.url())
            .response_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let service = RedisService::connect(config).await.unwrap();
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
        let raw_config =
            ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
        let raw = ConnectionManager::new_with_config(server.client(), raw_config)
            .await
            .unwrap();
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
        5_000,
        || async {
            std::hint::black_box(knn(&service, &q).execute().await.unwrap());
        },
        || raw_call(&knn_cmd),
    ));
    let page_ratio = rt.block_on(paired_ratio(
        2_000,
        || async {
            std::hint::black_box(filtered_page(&service).execute().await.unwrap());
        },
        || raw_call(&page_cmd),
    ));
    println!(
        "paired builder/raw ratio (median, p25): search_knn {:.3}, {:.3}; \
         search_filter_page {:.3}, {:.3}",
        knn_ratio.0, knn_ratio.1, page_ratio.0, page_ratio.1
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
