//! Command-line flags of the load test.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Drive one operation of redis-atomics (or a mix of them) against a Redis
/// server or cluster at a chosen concurrency, for a chosen time, over a chosen
/// key space; print live progress, then a latency table (p50, p90, p99,
/// p99.9, max) and optionally a JSON summary.
///
/// Examples:
///   cargo run --release --example loadtest -- --op rate-limit --algorithm gcra
///   cargo run --release --example loadtest -- --op get-or-compute --concurrency 200 --keys 100
///   cargo run --release --example loadtest -- --mix rate-limit=4,get-or-compute=4,mget-json=2 --duration 300
#[derive(Debug, Parser)]
#[command(name = "loadtest", verbatim_doc_comment)]
pub struct Args {
    /// Redis URL of a standalone server. Defaults to REDIS_URL, else redis://127.0.0.1:6379.
    #[arg(long)]
    pub url: Option<String>,

    /// Comma-separated node URLs of a Redis Cluster (instead of --url).
    /// Defaults to REDIS_CLUSTER_NODES when set.
    #[arg(long, value_delimiter = ',')]
    pub cluster: Vec<String>,

    /// The operation to drive. Ignored when --mix is given.
    #[arg(long, value_enum, default_value_t = Op::RateLimit)]
    pub op: Op,

    /// A weighted mix of operations run side by side, e.g.
    /// `rate-limit=4,get-or-compute=4,mget-json=2`. Each request picks one
    /// operation at random with these weights.
    #[arg(long, value_parser = parse_mix)]
    pub mix: Option<Mix>,

    /// Rate-limit algorithm for --op rate-limit.
    #[arg(long, value_enum, default_value_t = Algo::SlidingLog)]
    pub algorithm: Algo,

    /// Rate limit: requests allowed per window, per id.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,

    /// Rate limit: window length in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub window_ms: u64,

    /// Concurrent in-flight requests (tokio tasks sharing the connection).
    #[arg(long, short = 'c', default_value_t = 50)]
    pub concurrency: usize,

    /// How long to run, in seconds (fractions allowed).
    #[arg(long, short = 'd', default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,

    /// Key-space size: requests pick a key (or rate-limit id) uniformly among this many.
    #[arg(long, short = 'k', default_value_t = 1000)]
    pub keys: u64,

    /// Keys per call for mget-json / mset-json.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,

    /// Size in bytes of the values written (JSON string payload).
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,

    /// TTL in seconds of cached / written values.
    #[arg(long, default_value_t = 60)]
    pub ttl: u64,

    /// Simulated computation time of get-or-compute on a miss, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub compute_ms: u64,

    /// Key prefix (namespace) of everything the run writes. Defaults to
    /// `loadtest:<pid>`; the run deletes nothing, every key has a TTL.
    #[arg(long)]
    pub namespace: Option<String>,

    /// Write a JSON summary to this file (`-` for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// No live progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// An operation the load test can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Op {
    /// GET through the façade.
    Get,
    /// SET with a TTL through the façade.
    Set,
    /// A rate-limit check through `RateLimiter` (see --algorithm, --limit, --window-ms).
    RateLimit,
    /// `check_rate_limit`, the Python `RedisService` call (sliding log, --limit per --window-ms rounded up to seconds).
    CheckRateLimit,
    /// get_or_compute with the lock; a miss computes for --compute-ms.
    GetOrCompute,
    /// get_json of one key.
    GetJson,
    /// set_json of one key with a TTL.
    SetJson,
    /// mget_json of --batch keys.
    MgetJson,
    /// mset_json of --batch keys with a TTL (the atomic Lua path).
    MsetJson,
}

/// Operations with weights, from `--mix`.
#[derive(Debug, Clone)]
pub struct Mix(pub Vec<(Op, u32)>);

/// Rate-limit algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algo {
    /// Exact sliding-window log (sorted set).
    SlidingLog,
    /// Fixed-window counter.
    FixedWindow,
    /// Sliding-window counter (two weighted windows).
    SlidingWindow,
    /// Generic cell rate algorithm.
    Gcra,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err("the duration must be positive".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut mix = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let op = Op::from_str(name.trim(), true).map_err(|e| format!("{name}: {e}"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("{part}: the weight must be a whole number"))?;
        if weight > 0 {
            mix.push((op, weight));
        }
    }
    if mix.is_empty() {
        return Err("the mix names no operation with a weight above 0".into());
    }
    Ok(Mix(mix))
}

impl Args {
    /// The operations and weights this run drives.
    pub fn ops(&self) -> Vec<(Op, u32)> {
        self.mix
            .as_ref()
            .map_or_else(|| vec![(self.op, 1)], |m| m.0.clone())
    }

    /// Rejects settings that cannot make a run.
    pub fn check(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if self.batch == 0 {
            return Err("--batch must be at least 1".into());
        }
        if self.limit == 0 || self.window_ms == 0 {
            return Err("--limit and --window-ms must be at least 1".into());
        }
        Ok(())
    }
}
