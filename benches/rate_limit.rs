//! Rate limiting: decisions per second through the library against the same
//! `EVALSHA` through raw redis-rs and through `redis-benchmark`, in one run on
//! a server spawned here; and memory per id (`MEMORY USAGE`).
//!
//! ```sh
//! cargo bench --bench rate_limit -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Two workloads, both at a limit of 100 per 60 s (the same scripts):
//! - **hot**: every check is of one id, so after the first 100 all are denied:
//!   the read-only path.
//! - **spread**: every check is of a random id out of 1,000,000, so nearly all
//!   are allowed: the path that writes (HSET / ZADD / PEXPIRE).
//!
//! Criterion measures the library and raw redis-rs (64 requests in flight on
//! one multiplexed connection) in groups `rate_limit/{code}/{hot|spread}`; then
//! a table prints, per algorithm and workload, decisions/s of both and of
//! `redis-benchmark -c 50 -P 16 -n 200000 EVALSHA <sha> …` (spread: `-r 1000000`
//! and `__rand_int__` in the keys) with the ratios, the share of allowed
//! decisions in the library runs and the client CPU; and a second table the
//! memory of one id after 100 and after 1,000 requests at a limit of 1,000.
//! The server is flushed after each algorithm, so memory stays bounded.

#[path = "../tests/support/mod.rs"]
mod support;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use redis::aio::MultiplexedConnection;
use redis_atomics::rate_limit::{Algorithm, Quota, RateLimiter};
use redis_atomics::{RedisConfig, RedisService, scripts};

const IN_FLIGHT: u64 = 64;
/// The id of the hot workload.
const HOT_ID: &str = "id";
/// The spread workload draws ids from `0..SPREAD_IDS`.
const SPREAD_IDS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Hot,
    Spread,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::Hot, Workload::Spread];

    fn name(self) -> &'static str {
        match self {
            Workload::Hot => "hot",
            Workload::Spread => "spread",
        }
    }
}

/// The ids one task checks: `None` means [`HOT_ID`] (hot), else a random id
/// (spread) from a xorshift64 seeded differently for every task of every run,
/// so repeated runs do not revisit the same ids.
struct Ids(Option<u64>);

impl Ids {
    fn new(w: Workload) -> Self {
        static SEEDS: AtomicU64 = AtomicU64::new(1);
        // splitmix64 of a counter: well-spread, non-zero starting states.
        let mut z = SEEDS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ids((w == Workload::Spread).then_some((z ^ (z >> 31)) | 1))
    }

    fn next(&mut self) -> Option<String> {
        let x = self.0.as_mut()?;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        Some(format!("{}", *x % SPREAD_IDS))
    }
}

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

fn share(n: u64, task: u64) -> u64 {
    n / IN_FLIGHT + u64::from(task < n % IN_FLIGHT)
}

/// `n` checks, `IN_FLIGHT` at a time: the time taken and how many were allowed.
async fn run_library(l: &RateLimiter, w: Workload, n: u64) -> (Duration, u64) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..IN_FLIGHT {
        let (l, mut ids) = (l.clone(), Ids::new(w));
        tasks.spawn(async move {
            let mut allowed = 0;
            for _ in 0..share(n, t) {
                let id = ids.next();
                let d = l.check(id.as_deref().unwrap_or(HOT_ID)).await;
                allowed += u64::from(d.expect("check").is_allowed());
            }
            allowed
        });
    }
    let mut allowed = 0;
    while let Some(a) = tasks.join_next().await {
        allowed += a.expect("task");
    }
    (start.elapsed(), allowed)
}

/// `EVALSHA <sha> 2 raw:{id}:<code>:0 raw:{id}:<code>:req <args…>`.
fn raw_cmd(sha: &str, code: &str, id: &str, args: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha)
        .arg(2)
        .arg(format!("raw:{{{id}}}:{code}:0"))
        .arg(format!("raw:{{{id}}}:{code}:req"));
    for a in args {
        cmd.arg(a);
    }
    cmd
}

/// The same `EVALSHA` through raw redis-rs, `IN_FLIGHT` at a time. Hot reuses
/// one command; spread builds one per request, as the library does.
async fn run_raw(conn: &MultiplexedConnection, algo: Algorithm, w: Workload, n: u64) -> Duration {
    let sha = scripts::get(algo.script())
        .expect("embedded")
        .sha1()
        .to_string();
    let args = script_args(algo, 100);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..IN_FLIGHT {
        let (mut conn, sha, args, mut ids) = (conn.clone(), sha.clone(), args.clone(), Ids::new(w));
        tasks.spawn(async move {
            let hot = raw_cmd(&sha, algo.code(), HOT_ID, &args);
            for _ in 0..share(n, t) {
                let fresh;
                let cmd = match ids.next() {
                    Some(id) => {
                        fresh = raw_cmd(&sha, algo.code(), &id, &args);
                        &fresh
                    }
                    None => &hot,
                };
                let _: Vec<i64> = cmd.query_async(&mut conn).await.expect("evalsha");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    start.elapsed()
}

/// `redis-benchmark … EVALSHA`: requests per second, or None when it is missing.
/// Spread: `-r` replaces each `__rand_int__` with its own random 12-digit number.
fn redis_benchmark(port: u16, algo: Algorithm, w: Workload) -> Option<f64> {
    let sha = scripts::get(algo.script())?.sha1().to_string();
    let mut cmd = std::process::Command::new("redis-benchmark");
    let port = port.to_string();
    cmd.args(["-p", &port, "-c", "50", "-P", "16", "-n", "200000", "--csv"]);
    let tag = match w {
        Workload::Hot => HOT_ID,
        Workload::Spread => {
            cmd.args(["-r", &SPREAD_IDS.to_string()]);
            "__rand_int__"
        }
    };
    cmd.args(["EVALSHA", &sha, "2"])
        .args([
            format!("rb:{{{tag}}}:{}:0", algo.code()),
            format!("rb:{{{tag}}}:{}:req", algo.code()),
        ])
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

/// `DBSIZE` of the bench's own server (never a shared one).
fn dbsize(admin: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(admin).expect("DBSIZE")
}

/// `FLUSHALL` (synchronous, so no background freeing overlaps the next run).
fn flush(admin: &mut redis::Connection) {
    let () = redis::cmd("FLUSHALL").query(admin).expect("FLUSHALL");
}

/// CPU time (user + system) of this process so far, all threads: client cost
/// is less sensitive to a busy machine than wall time. Linux only; zero elsewhere.
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the ")" that ends the command name; utime and stime are 14 and 15.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        });
    Duration::from_millis(ticks.unwrap_or(0) * 10) // USER_HZ is 100 on Linux
}

fn main() {
    let server = support::RedisServer::start();
    let mut admin = server.connection();
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
        for w in Workload::ALL {
            let mut g = c.benchmark_group(format!("rate_limit/{}/{}", algo.code(), w.name()));
            g.throughput(Throughput::Elements(IN_FLIGHT));
            g.bench_function("library", |b| {
                b.iter_custom(|iters| rt.block_on(run_library(&l, w, iters * IN_FLIGHT)).0)
            });
            g.bench_function("raw_redis_rs", |b| {
                b.iter_custom(|iters| rt.block_on(run_raw(&raw, algo, w, iters * IN_FLIGHT)))
            });
            g.finish();
        }
        flush(&mut admin);
    }
    c.final_summary();

    // The table: fixed-size runs, same process, same server. The machine may
    // be shared: library and raw runs alternate, three rounds, best of each
    // (redis-benchmark best of two).
    const N: u64 = 50_000;
    println!(
        "\n| algorithm | workload | library dec/s | raw redis-rs dec/s | redis-benchmark req/s | library/raw | library/redis-benchmark | allowed % (library) | client CPU µs/decision library | raw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut memory = Vec::new();
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 100);
        let mut rb_keys = 0;
        for w in Workload::ALL {
            let (mut lib, mut raw_rate, mut allowed) = (0f64, 0f64, 0);
            let (mut lib_cpu, mut raw_cpu) = (f64::MAX, f64::MAX);
            for _ in 0..3 {
                let cpu = process_cpu();
                let (took, ok) = rt.block_on(run_library(&l, w, N));
                lib = lib.max(N as f64 / took.as_secs_f64());
                lib_cpu = lib_cpu.min((process_cpu() - cpu).as_secs_f64() * 1e6 / N as f64);
                allowed += ok;
                let cpu = process_cpu();
                let took = rt.block_on(run_raw(&raw, algo, w, N));
                raw_rate = raw_rate.max(N as f64 / took.as_secs_f64());
                raw_cpu = raw_cpu.min((process_cpu() - cpu).as_secs_f64() * 1e6 / N as f64);
            }
            let before = dbsize(&mut admin);
            let rb = (0..2)
                .filter_map(|_| redis_benchmark(server.port(), algo, w))
                .reduce(f64::max);
            if w == Workload::Spread {
                rb_keys = dbsize(&mut admin) - before;
            }
            let rb_cell = rb.map_or("n/a".into(), |r| format!("{r:.0}"));
            let rb_ratio = rb.map_or("n/a".into(), |r| format!("{:.2}", lib / r));
            let allowed_pct = allowed as f64 * 100.0 / (3 * N) as f64;
            println!(
                "| {algo:?} | {} | {lib:.0} | {raw_rate:.0} | {rb_cell} | {:.2} | {rb_ratio} | {allowed_pct:.2} | {lib_cpu:.1} | {raw_cpu:.1} |",
                w.name(),
                lib / raw_rate
            );
        }
        // Up to ~1M keys per algorithm (fewer for Gcra: a key expires after
        // window / limit per request): drop them, measure memory on a clean server.
        let keys = dbsize(&mut admin);
        flush(&mut admin);
        let m100 = rt.block_on(memory_per_id(&svc, algo, 100));
        let m1000 = rt.block_on(memory_per_id(&svc, algo, 1000));
        memory.push((algo, m100, m1000, keys, rb_keys));
    }
    println!(
        "\n| algorithm | bytes per id (100 req) | bytes per id (1,000 req) | keys before FLUSHALL | of which new from redis-benchmark spread |"
    );
    println!("|---|---|---|---|---|");
    for (algo, m100, m1000, keys, rb_keys) in memory {
        println!("| {algo:?} | {m100} | {m1000} | {keys} | {rb_keys} |");
    }
}
