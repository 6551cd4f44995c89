//! The façade's own cost: `get`, `set` and an embedded script through
//! `RedisService` against the same commands through a raw redis-rs
//! `ConnectionManager`, on one spawned server, in the same run.
//!
//! `cargo bench --bench core`, then `scripts/bench-ratios` prints each
//! façade/raw ratio (criterion's HTML report is in target/criterion/report/).

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis_atomics::{Idempotency, RedisConfig, RedisService, SetOptions, scripts};

fn bench(c: &mut Criterion) {
    let server = support::RedisServer::start();
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
        let raw = ConnectionManager::new(server.client()).await.unwrap();
        service.preload().await.unwrap();
        service
            .set("bench:k", "x".repeat(100), SetOptions::new())
            .await
            .unwrap();
        (service, raw)
    });

    let mut g = c.benchmark_group("get");
    g.bench_function("raw", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            async move {
                let _: Option<String> = raw.get("bench:k").await.unwrap();
            }
        })
    });
    g.bench_function("facade", |b| {
        b.to_async(&rt).iter(|| async {
            let _: Option<String> = service.get("bench:k").await.unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("set_ex");
    let value = "x".repeat(100);
    g.bench_function("raw", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            let value = value.clone();
            async move {
                let _: () = raw.set_ex("bench:s", value, 60).await.unwrap();
            }
        })
    });
    g.bench_function("facade", |b| {
        b.to_async(&rt).iter(|| async {
            service
                .set(
                    "bench:s",
                    value.as_str(),
                    SetOptions::new().ex(std::time::Duration::from_secs(60)),
                )
                .await
                .unwrap();
        })
    });
    g.finish();

    let unlock = scripts::get("unlock").unwrap();
    let mut g = c.benchmark_group("evalsha");
    g.bench_function("raw", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            async move {
                let _: i64 = redis::cmd("EVALSHA")
                    .arg(unlock.sha1())
                    .arg(1)
                    .arg("{bench}:lock")
                    .arg("tok")
                    .query_async(&mut raw)
                    .await
                    .unwrap();
            }
        })
    });
    g.bench_function("facade", |b| {
        b.to_async(&rt).iter(|| async {
            let _: i64 = service
                .eval_script(
                    "unlock",
                    &["{bench}:lock"],
                    &["tok"],
                    Idempotency::Idempotent,
                )
                .await
                .unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
