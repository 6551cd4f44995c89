//! get_or_compute and the cache wrapper against a spawned server.
//!
//! - `hit/*`: a cached value read through `get_or_compute` and `Cached::call`
//!   against a raw redis-rs `GET` + `serde_json` decode on the same
//!   connection, in the same run (goal: ≤ 10 % overhead).
//! - herd report (printed first): 200 callers on a cold key whose computation
//!   takes 100 ms, with and without protection: computations and the
//!   callers' latency beyond the computation (p50/p99; goal p99 ≤ 10 ms).
//! - `breaker_open/*`: a cached call while the breaker is open against the
//!   bare function (goal: < 1 µs more).
//!
//! Run: `cargo bench --bench cache -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use redis_atomics::{
    Args, CacheOptions, CircuitBreakerOptions, ComputeOptions, RedisConfig, RedisService,
};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use tokio::sync::Barrier;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
}

fn profile() -> Profile {
    Profile {
        id: 42,
        name: "Ada Lovelace".into(),
        tags: vec!["math".into(), "engines".into(), "poetry".into()],
        score: 99.5,
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn service(url: &str) -> RedisService {
    RedisService::connect(RedisConfig::new(url).expect("config"))
        .await
        .expect("connect")
}

fn hit(c: &mut Criterion, server: &support::RedisServer) {
    let rt = runtime();
    let svc = rt.block_on(service(&server.url()));
    let opts = ComputeOptions::new().ttl(Duration::from_secs(3600));
    let cached = svc.cache::<Profile>(
        "profile",
        CacheOptions::new().ttl(Duration::from_secs(3600)),
    );
    let args = Args::new().arg("id", &42);
    rt.block_on(async {
        let _: Profile = svc
            .get_or_compute("bench:hit", async { profile() }, opts.clone())
            .await
            .expect("prime");
        let _ = cached.call(&args, async { profile() }).await;
    });
    let mut g = c.benchmark_group("hit");
    g.bench_function("raw_get_and_decode", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = svc.connection();
            let bytes: Vec<u8> = redis::cmd("GET")
                .arg("bench:hit")
                .query_async(&mut conn)
                .await
                .expect("get");
            black_box(serde_json::from_slice::<Profile>(&bytes).expect("decode"))
        })
    });
    g.bench_function("get_or_compute", |b| {
        b.to_async(&rt).iter(|| async {
            let p: Profile = svc
                .get_or_compute("bench:hit", async { profile() }, opts.clone())
                .await
                .expect("hit");
            black_box(p)
        })
    });
    g.bench_function("cached_call", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                cached
                    .call(&Args::new().arg("id", &42), async { profile() })
                    .await,
            )
        })
    });
    g.finish();
}

fn breaker_open(c: &mut Criterion) {
    let rt = runtime();
    let mut server = support::RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .retry_count(0)
        .circuit_breaker(
            CircuitBreakerOptions::new()
                .with_failure_threshold(1)
                .with_cool_down(Duration::from_secs(3600)),
        )
        .build()
        .expect("config");
    let svc = rt.block_on(RedisService::connect(config)).expect("connect");
    server.stop();
    let cached = svc.cache::<u64>("f", CacheOptions::new());
    let args = Args::new().arg("id", &7);
    rt.block_on(async { cached.call(&args, async { 1 }).await });
    assert_eq!(svc.circuit_state(), redis_atomics::CircuitState::Open);
    let mut g = c.benchmark_group("breaker_open");
    g.bench_function("function_alone", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(async { black_box(7u64) }.await) })
    });
    g.bench_function("cached_call", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cached.call(&args, async { black_box(7u64) }).await) })
    });
    g.bench_function("cached_call_with_args", |b| {
        b.to_async(&rt).iter(|| async {
            let args = Args::new().arg("id", &7);
            black_box(cached.call(&args, async { black_box(7u64) }).await)
        })
    });
    g.bench_function("get_or_compute", |b| {
        b.to_async(&rt).iter(|| async {
            let v: u64 = svc
                .get_or_compute("k", async { black_box(7u64) }, ComputeOptions::new())
                .await
                .expect("degraded");
            black_box(v)
        })
    });
    g.finish();
}

/// 200 callers over 4 services on a cold key; returns (computations, p50, p99)
/// of the latency beyond the 100 ms computation.
fn herd_once(url: &str, protect: bool, round: usize) -> (usize, Duration, Duration) {
    let rt = runtime();
    rt.block_on(async {
        let mut svcs = Vec::new();
        for _ in 0..4 {
            svcs.push(service(url).await);
        }
        let computations = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(200));
        let compute_time = Duration::from_millis(100);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let svc = svcs[i % 4].clone();
            let (computations, barrier) = (computations.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let f = svc.cache::<String>(
                    "herd",
                    CacheOptions::new()
                        .key_prefix(format!("bench-{protect}-{round}"))
                        .ttl(Duration::from_secs(60))
                        .prevent_thundering_herd(protect),
                );
                barrier.wait().await;
                let start = Instant::now();
                let v = f
                    .call(&Args::new(), async {
                        computations.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(compute_time).await;
                        "report".to_string()
                    })
                    .await;
                black_box(v);
                start.elapsed().saturating_sub(compute_time)
            }));
        }
        let mut extra = Vec::new();
        for t in tasks {
            extra.push(t.await.expect("task"));
        }
        extra.sort();
        let pct = |p: f64| extra[((extra.len() as f64 * p) as usize).min(extra.len() - 1)];
        (computations.load(Ordering::SeqCst), pct(0.50), pct(0.99))
    })
}

fn herd_report(url: &str) {
    for protect in [true, false] {
        let mut p99s = Vec::new();
        let mut comps = Vec::new();
        let mut p50s = Vec::new();
        for round in 0..5 {
            let (n, p50, p99) = herd_once(url, protect, round);
            comps.push(n);
            p50s.push(p50);
            p99s.push(p99);
        }
        p99s.sort();
        p50s.sort();
        println!(
            "herd (200 callers, 4 services, 100 ms compute) protection={protect}: \
             computations per round {comps:?}, added latency median-of-5 p50 {:?}, p99 {:?} (worst p99 {:?})",
            p50s[2], p99s[2], p99s[4]
        );
    }
}

/// The hit-path ratio, robust to a machine whose load drifts: the three
/// variants run interleaved in blocks of 50 calls, medians of 200 blocks.
fn hit_ratio_report(url: &str) {
    let rt = runtime();
    rt.block_on(async {
        let svc = service(url).await;
        let opts = ComputeOptions::new().ttl(Duration::from_secs(3600));
        let cached =
            svc.cache::<Profile>("ratio", CacheOptions::new().ttl(Duration::from_secs(3600)));
        let _: Profile = svc
            .get_or_compute("bench:ratio", async { profile() }, opts.clone())
            .await
            .expect("prime");
        let _ = cached
            .call(&Args::new().arg("id", &42), async { profile() })
            .await;
        let mut conn = svc.connection();
        let mut blocks: [Vec<Duration>; 3] = Default::default();
        for _ in 0..200 {
            for (variant, times) in blocks.iter_mut().enumerate() {
                let start = Instant::now();
                for _ in 0..50 {
                    match variant {
                        0 => {
                            let bytes: Vec<u8> = redis::cmd("GET")
                                .arg("bench:ratio")
                                .query_async(&mut conn)
                                .await
                                .expect("get");
                            black_box(serde_json::from_slice::<Profile>(&bytes).expect("decode"));
                        }
                        1 => {
                            let p: Profile = svc
                                .get_or_compute("bench:ratio", async { profile() }, opts.clone())
                                .await
                                .expect("hit");
                            black_box(p);
                        }
                        _ => {
                            let args = Args::new().arg("id", &42);
                            black_box(cached.call(&args, async { profile() }).await);
                        }
                    }
                }
                times.push(start.elapsed() / 50);
            }
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let [raw, goc, call] = &mut blocks;
        let (raw, goc, call) = (median(raw), median(goc), median(call));
        let pct = |d: Duration| (d.as_secs_f64() / raw.as_secs_f64() - 1.0) * 100.0;
        println!(
            "hit path (interleaved, median of 200 blocks of 50): raw GET+decode {raw:?}, \
             get_or_compute {goc:?} ({:+.1} %), Cached::call with Args {call:?} ({:+.1} %)",
            pct(goc),
            pct(call)
        );
    });
}

fn benches(c: &mut Criterion) {
    let server = support::RedisServer::start();
    herd_report(&server.url());
    hit_ratio_report(&server.url());
    hit(c, &server);
    breaker_open(c);
}

criterion_group!(cache, benches);

fn main() {
    cache();
    Criterion::default().configure_from_args().final_summary();
}
