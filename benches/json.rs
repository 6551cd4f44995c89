//! Batch JSON against raw redis-rs, in one run on a server spawned here.
//!
//! ```sh
//! cargo bench --bench json -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! For 10, 100 and 1,000 keys of about 1 KB each:
//!
//! - `mget_json` vs raw `MGET` + `serde_json::from_slice` per value;
//! - `mset_json` vs raw `serde_json::to_vec` + `MSET`;
//! - `mset_json` with a TTL (the atomic `mset_expire` script) vs a raw
//!   pipeline of `SET k v PX ttl` (not atomic);
//! - `N × get_json` (sequential) vs one `mget_json`, to show what batching buys.
//!
//! Criterion prints the times; then a table prints paired ratios
//! (library / baseline, median over alternating rounds, so both sides see the
//! same machine load).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use redis::aio::MultiplexedConnection;
use redis_atomics::{RedisConfig, RedisService};
use serde::{Deserialize, Serialize};

const SIZES: [usize; 3] = [10, 100, 1000];
const TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Doc {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
    body: String,
}

fn doc(i: usize) -> Doc {
    Doc {
        id: i as u64,
        name: format!("document number {i}"),
        tags: vec!["alpha".into(), "beta".into(), "gamma".into()],
        score: i as f64 * 0.5,
        body: "lorem ipsum dolor sit amet ".repeat(34), // ≈ 1 KB in total
    }
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

async fn lib_mget(svc: &RedisService, keys: &[String]) {
    let got: HashMap<String, Doc> = svc.mget_json(keys).await.expect("mget_json");
    assert_eq!(got.len(), keys.len());
}

async fn raw_mget(conn: &MultiplexedConnection, keys: &[String]) {
    let mut conn = conn.clone();
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .expect("MGET");
    let mut out = HashMap::with_capacity(keys.len());
    for (k, v) in keys.iter().zip(values) {
        if let Some(bytes) = v {
            let d: Doc = serde_json::from_slice(&bytes).expect("json");
            out.insert(k.clone(), d);
        }
    }
    assert_eq!(out.len(), keys.len());
}

async fn lib_mset(svc: &RedisService, keys: &[String], docs: &[Doc], ex: Option<Duration>) {
    svc.mset_json(keys.iter().zip(docs), ex)
        .await
        .expect("mset_json");
}

async fn raw_mset(conn: &MultiplexedConnection, keys: &[String], docs: &[Doc]) {
    let mut conn = conn.clone();
    let mut cmd = redis::cmd("MSET");
    for (k, d) in keys.iter().zip(docs) {
        cmd.arg(k).arg(serde_json::to_vec(d).expect("json"));
    }
    let () = cmd.query_async(&mut conn).await.expect("MSET");
}

async fn raw_set_px_pipeline(conn: &MultiplexedConnection, keys: &[String], docs: &[Doc]) {
    let mut conn = conn.clone();
    let mut pipe = redis::pipe();
    for (k, d) in keys.iter().zip(docs) {
        pipe.cmd("SET")
            .arg(k)
            .arg(serde_json::to_vec(d).expect("json"))
            .arg("PX")
            .arg(TTL.as_millis() as u64)
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.expect("pipeline");
}

/// The same atomic script the library runs, called raw: what is left of
/// the `+ex` ratio is the price of atomicity, not of the library.
async fn raw_evalsha_mset_expire(conn: &MultiplexedConnection, keys: &[String], docs: &[Doc]) {
    let mut conn = conn.clone();
    let sha = redis_atomics::scripts::get("mset_expire")
        .expect("embedded")
        .sha1();
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha)
        .arg(keys.len())
        .arg(keys)
        .arg(TTL.as_millis() as u64);
    for d in docs {
        cmd.arg(serde_json::to_vec(d).expect("json"));
    }
    let _: u64 = cmd.query_async(&mut conn).await.expect("EVALSHA");
}

async fn lib_get_each(svc: &RedisService, keys: &[String]) {
    for k in keys {
        let d: Option<Doc> = svc.get_json(k).await.expect("get_json");
        assert!(d.is_some());
    }
}

/// Median of `rounds` paired ratios a/b, alternating which runs first.
fn paired_ratio<A, B, FA, FB>(
    rt: &tokio::runtime::Runtime,
    rounds: usize,
    mut a: A,
    mut b: B,
) -> (f64, Duration, Duration)
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = ()>,
    FB: Future<Output = ()>,
{
    let mut ratios = Vec::with_capacity(rounds);
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (da, db) = if round % 2 == 0 {
            let s = Instant::now();
            rt.block_on(a());
            let da = s.elapsed();
            let s = Instant::now();
            rt.block_on(b());
            (da, s.elapsed())
        } else {
            let s = Instant::now();
            rt.block_on(b());
            let db = s.elapsed();
            let s = Instant::now();
            rt.block_on(a());
            (s.elapsed(), db)
        };
        ratios.push(da.as_secs_f64() / db.as_secs_f64());
        ta.push(da);
        tb.push(db);
    }
    ratios.sort_by(f64::total_cmp);
    ta.sort();
    tb.sort();
    (ratios[rounds / 2], ta[rounds / 2], tb[rounds / 2])
}

fn main() {
    let server = support::RedisServer::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (svc, conn) = rt.block_on(async {
        let svc = RedisService::connect(RedisConfig::new(server.url()).expect("config"))
            .await
            .expect("connect");
        let conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        (svc, conn)
    });
    let docs: Vec<Doc> = (0..1000).map(doc).collect();
    let bytes = serde_json::to_vec(&docs[0]).expect("json").len();
    eprintln!("payload: {bytes} bytes of JSON per key");
    // The keys read by the mget benches.
    let read_keys = keys("bench:r", 1000);
    rt.block_on(lib_mset(&svc, &read_keys, &docs, None));
    rt.block_on(svc.preload()).expect("SCRIPT LOAD");

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("json");
    for n in SIZES {
        let rk = &read_keys[..n];
        let wk = keys("bench:w", n);
        let ds = &docs[..n];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("mget_json", n), &n, |b, _| {
            b.to_async(&rt).iter(|| lib_mget(&svc, rk))
        });
        group.bench_with_input(BenchmarkId::new("raw_mget", n), &n, |b, _| {
            b.to_async(&rt).iter(|| raw_mget(&conn, rk))
        });
        group.bench_with_input(BenchmarkId::new("mset_json", n), &n, |b, _| {
            b.to_async(&rt).iter(|| lib_mset(&svc, &wk, ds, None))
        });
        group.bench_with_input(BenchmarkId::new("raw_mset", n), &n, |b, _| {
            b.to_async(&rt).iter(|| raw_mset(&conn, &wk, ds))
        });
        group.bench_with_input(BenchmarkId::new("mset_json_ex", n), &n, |b, _| {
            b.to_async(&rt).iter(|| lib_mset(&svc, &wk, ds, Some(TTL)))
        });
        group.bench_with_input(BenchmarkId::new("raw_set_px_pipeline", n), &n, |b, _| {
            b.to_async(&rt).iter(|| raw_set_px_pipeline(&conn, &wk, ds))
        });
        group.bench_with_input(
            BenchmarkId::new("raw_evalsha_mset_expire", n),
            &n,
            |b, _| {
                b.to_async(&rt)
                    .iter(|| raw_evalsha_mset_expire(&conn, &wk, ds))
            },
        );
    }
    group.finish();
    let mut group = c.benchmark_group("json_batching");
    let rk = &read_keys[..100];
    group.bench_function("100x_get_json", |b| {
        b.to_async(&rt).iter(|| lib_get_each(&svc, rk))
    });
    group.bench_function("1x_mget_json_100", |b| {
        b.to_async(&rt).iter(|| lib_mget(&svc, rk))
    });
    group.finish();

    // Paired ratios, library / baseline.
    println!();
    println!("| operation | keys | library (median) | baseline (median) | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for n in SIZES {
        let rounds = if n == 1000 { 100 } else { 400 };
        let rk = &read_keys[..n];
        let wk = keys("bench:w", n);
        let ds = &docs[..n];
        let rows = [
            (
                "mget_json vs MGET+serde",
                paired_ratio(&rt, rounds, || lib_mget(&svc, rk), || raw_mget(&conn, rk)),
            ),
            (
                "mset_json vs serde+MSET",
                paired_ratio(
                    &rt,
                    rounds,
                    || lib_mset(&svc, &wk, ds, None),
                    || raw_mset(&conn, &wk, ds),
                ),
            ),
            (
                "mset_json+ex vs raw EVALSHA mset_expire",
                paired_ratio(
                    &rt,
                    rounds,
                    || lib_mset(&svc, &wk, ds, Some(TTL)),
                    || raw_evalsha_mset_expire(&conn, &wk, ds),
                ),
            ),
            (
                "mset_json+ex (atomic) vs SET PX pipeline",
                paired_ratio(
                    &rt,
                    rounds,
                    || lib_mset(&svc, &wk, ds, Some(TTL)),
                    || raw_set_px_pipeline(&conn, &wk, ds),
                ),
            ),
        ];
        for (name, (ratio, a, b)) in rows {
            println!("| {name} | {n} | {a:.2?} | {b:.2?} | {ratio:.3} |");
        }
    }
    let rk = &read_keys[..100];
    let (ratio, a, b) = paired_ratio(&rt, 100, || lib_get_each(&svc, rk), || lib_mget(&svc, rk));
    println!("| 100 × get_json vs 1 × mget_json | 100 | {a:.2?} | {b:.2?} | {ratio:.1} |");
}
