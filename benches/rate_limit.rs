//! Rate limiting: decisions per second through the library against the same
//! `EVALSHA` through raw redis-rs and through `redis-benchmark`, in one run on
//! a server spawned here; and memory per id (`MEMORY USAGE`).
//!
//! ```sh
//! cargo bench --bench rate_limit -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Criterion measures the library and raw redis-rs (64 requests in flight on
//! one multiplexed connection); then a table prints decisions/s of both and of
//! `redis-benchmark -c 50 -P 16 -n 200000 EVALSHA <sha> …` with the ratios, and
//! the memory of one id after 100 and after 1,000 requests at a limit of 1,000.

#[path = "../tests/support/mod.rs"]
mod support;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use redis::aio::MultiplexedConnection;
use redis_atomics::rate_limit::{Algorithm, Quota, RateLimiter};
use redis_atomics::{RedisConfig, RedisService, scripts};

const IN_FLIGHT: u64 = 64;

/// The script arguments after the 2 keys, as in the redis-benchmark command.
fn script_args(algo: Algorithm, limit: u32) -> Vec<String> {
    let mut args = vec![String::new(), "1".into(), String::new(), "check".into()];
    args.extend([limit.to_string(), "60000".into()]);
    if algo == Algorithm::Gcra {
        args.push(limit.to_string());
    }
    args
}

fn limiter(svc: &RedisService, algo: Algorithm, limit: u32) -> RateLimiter {
    let limit = NonZeroU32::new(limit).expect("a non-zero limit");
    svc.rate_limiter("bench", algo, Quota::new(limit, Duration::from_secs(60)))
        .expect("a valid quota")
}

/// `n` checks of one id, `IN_FLIGHT` at a time.
async fn run_library(l: &RateLimiter, n: u64) -> Duration {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..IN_FLIGHT {
        let l = l.clone();
        let share = n / IN_FLIGHT + u64::from(t < n % IN_FLIGHT);
        tasks.spawn(async move {
            for _ in 0..share {
                l.check("id").await.expect("check");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    start.elapsed()
}

/// The same `EVALSHA` through raw redis-rs, `IN_FLIGHT` at a time.
async fn run_raw(conn: &MultiplexedConnection, algo: Algorithm, n: u64) -> Duration {
    let sha = scripts::get(algo.script())
        .expect("embedded")
        .sha1()
        .to_string();
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(&sha).arg(2).arg("raw:{id}:0").arg("raw:{id}:req");
    for a in script_args(algo, 100) {
        cmd.arg(a);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..IN_FLIGHT {
        let (mut conn, cmd) = (conn.clone(), cmd.clone());
        let share = n / IN_FLIGHT + u64::from(t < n % IN_FLIGHT);
        tasks.spawn(async move {
            for _ in 0..share {
                let _: Vec<i64> = cmd.query_async(&mut conn).await.expect("evalsha");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    start.elapsed()
}

/// `redis-benchmark … EVALSHA`: requests per second, or None when it is missing.
fn redis_benchmark(port: u16, algo: Algorithm) -> Option<f64> {
    let sha = scripts::get(algo.script())?.sha1().to_string();
    let mut cmd = std::process::Command::new("redis-benchmark");
    cmd.args([
        "-p",
        &port.to_string(),
        "-c",
        "50",
        "-P",
        "16",
        "-n",
        "200000",
        "--csv",
    ])
    .args(["EVALSHA", &sha, "2", "rb:{id}:0", "rb:{id}:req"])
    .args(script_args(algo, 100));
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps",…  then  "EVALSHA …","123456.78",…
    let line = text.lines().nth(1)?;
    line.split(',').nth(1)?.trim_matches('"').parse().ok()
}

async fn memory_per_id(svc: &RedisService, algo: Algorithm, requests: u32) -> u64 {
    let l = limiter(svc, algo, 1000);
    let id = format!("mem-{requests}");
    for _ in 0..requests {
        l.check(&id).await.expect("check");
    }
    let mut conn = svc.connection();
    let mut total = 0;
    for key in l.keys(&id).expect("keys") {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .expect("MEMORY USAGE");
        total += bytes.unwrap_or(0);
    }
    total
}

fn main() {
    let server = support::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = RedisConfig::new(server.url()).expect("config");
    let svc = rt.block_on(RedisService::connect(config)).expect("connect");
    rt.block_on(svc.preload()).expect("preload");
    let raw = rt
        .block_on(server.client().get_multiplexed_async_connection())
        .expect("raw connection");

    let mut c = Criterion::default().configure_from_args();
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 100);
        let mut g = c.benchmark_group(format!("rate_limit/{}", algo.code()));
        g.throughput(Throughput::Elements(IN_FLIGHT));
        g.bench_function("library", |b| {
            b.iter_custom(|iters| rt.block_on(run_library(&l, iters * IN_FLIGHT)))
        });
        g.bench_function("raw_redis_rs", |b| {
            b.iter_custom(|iters| rt.block_on(run_raw(&raw, algo, iters * IN_FLIGHT)))
        });
        g.finish();
    }
    c.final_summary();

    // The table: fixed-size runs, same process, same server.
    const N: u64 = 100_000;
    println!(
        "\n| algorithm | library dec/s | raw redis-rs dec/s | redis-benchmark req/s | library/raw | library/redis-benchmark | bytes per id (100 req) | bytes per id (1,000 req) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 100);
        let lib = N as f64 / rt.block_on(run_library(&l, N)).as_secs_f64();
        let raw_rate = N as f64 / rt.block_on(run_raw(&raw, algo, N)).as_secs_f64();
        let rb = redis_benchmark(server.port(), algo);
        let m100 = rt.block_on(memory_per_id(&svc, algo, 100));
        let m1000 = rt.block_on(memory_per_id(&svc, algo, 1000));
        let rb_cell = rb.map_or("n/a".into(), |r| format!("{r:.0}"));
        let rb_ratio = rb.map_or("n/a".into(), |r| format!("{:.2}", lib / r));
        println!(
            "| {algo:?} | {lib:.0} | {raw_rate:.0} | {rb_cell} | {:.2} | {rb_ratio} | {m100} | {m1000} |",
            lib / raw_rate
        );
    }
}
