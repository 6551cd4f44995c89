//! `cargo run --release --example loadtest -- --help`: a load generator for
//! redis-atomics. See `args.rs` for the flags and the README ("Load testing")
//! for how to read the output.

mod args;
mod ops;
mod report;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::Rng;
use redis_atomics::{RedisConfig, RedisService};

use args::{Args, Op};
use ops::{Driver, Outcome};
use report::{OpStats, Summary};

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(message) = args.check() {
        eprintln!("loadtest: {message}");
        std::process::exit(2);
    }
    match run(args).await {
        Ok(clean) => std::process::exit(if clean { 0 } else { 1 }),
        Err(message) => {
            eprintln!("loadtest: {message}");
            std::process::exit(1);
        }
    }
}

/// Counters the progress line reads while workers run.
#[derive(Default)]
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
}

async fn run(args: Args) -> Result<bool, String> {
    let mut builder = RedisConfig::builder().from_env();
    if let Some(url) = &args.url {
        builder = builder.url(url);
    }
    if !args.cluster.is_empty() {
        builder = builder.cluster_nodes(args.cluster.clone());
    }
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| format!("loadtest:{}", std::process::id()));
    let config = builder
        .namespace(namespace)
        .build()
        .map_err(|e| e.to_string())?;
    let target = format!("{:?}", config.topology());
    let service = RedisService::connect(config)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let driver = Arc::new(Driver::new(service, &args).map_err(|e| e.to_string())?);
    let ops = args.ops();
    let total_weight: u32 = ops.iter().map(|(_, w)| w).sum();

    let rss_start = report::rss_kib();
    let live = Arc::new(Live::default());
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let driver = Arc::clone(&driver);
        let live = Arc::clone(&live);
        let ops = ops.clone();
        workers.push(tokio::spawn(async move {
            let mut stats: BTreeMap<Op, OpStats> = BTreeMap::new();
            while Instant::now() < deadline {
                let op = pick(&ops, total_weight);
                let t0 = Instant::now();
                let outcome = driver.run(op).await;
                let entry = stats.entry(op).or_insert_with(OpStats::new);
                match outcome {
                    Outcome::Ok => entry.record(t0.elapsed()),
                    Outcome::Denied => {
                        entry.record(t0.elapsed());
                        entry.denied += 1;
                    }
                    Outcome::Err(kind) => {
                        *entry.errors.entry(kind).or_default() += 1;
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                live.requests.fetch_add(1, Ordering::Relaxed);
            }
            stats
        }));
    }

    let progress =
        (!args.quiet).then(|| tokio::spawn(progress(Arc::clone(&live), started, args.duration)));
    let samples = Arc::new(std::sync::Mutex::new(vec![rss_start]));
    let sampler = tokio::spawn(sample_rss(Arc::clone(&samples)));
    let mut rss_max = rss_start;
    let mut totals: BTreeMap<Op, OpStats> = BTreeMap::new();
    for worker in workers {
        let stats = worker
            .await
            .map_err(|e| format!("a worker panicked: {e}"))?;
        for (op, s) in stats {
            totals.entry(op).or_insert_with(OpStats::new).merge(&s);
        }
        rss_max = rss_max.max(report::rss_kib());
    }
    let elapsed = started.elapsed();
    if let Some(p) = progress {
        p.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    let rss_end = report::rss_kib();
    sampler.abort();
    let mut rss_samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    rss_samples.push(rss_end);

    let op_summaries: Vec<_> = totals
        .iter()
        .map(|(op, s)| report::summarize(&ops::name(*op), s, elapsed))
        .collect();
    let requests = op_summaries.iter().map(|o| o.requests).sum();
    let errors = op_summaries.iter().map(|o| o.errors).sum();
    let summary = Summary {
        target,
        concurrency: args.concurrency,
        key_space: args.keys,
        duration_secs: elapsed.as_secs_f64(),
        requests,
        errors,
        rate_per_sec: requests as f64 / elapsed.as_secs_f64(),
        ops: op_summaries,
        rss_start_kib: rss_start,
        rss_end_kib: rss_end,
        rss_max_kib: rss_samples
            .iter()
            .copied()
            .fold(rss_max.max(rss_end), u64::max),
        rss_samples_kib: rss_samples,
    };
    report::print_table(&summary);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        if path.as_os_str() == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    Ok(summary.errors == 0)
}

fn pick(ops: &[(Op, u32)], total: u32) -> Op {
    if ops.len() == 1 {
        return ops[0].0;
    }
    let mut n = rand::rng().random_range(0..total);
    for (op, w) in ops {
        if n < *w {
            return *op;
        }
        n -= w;
    }
    ops[ops.len() - 1].0
}

/// Samples this process's RSS once a second, for the memory-stays-flat check.
async fn sample_rss(samples: Arc<std::sync::Mutex<Vec<u64>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Ok(mut s) = samples.lock() {
            s.push(report::rss_kib());
        }
    }
}

/// Once a second: elapsed time, request rate over the last second, errors.
/// On a terminal the line is rewritten in place.
async fn progress(live: Arc<Live>, started: Instant, duration: Duration) {
    let tty = std::io::stderr().is_terminal();
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = live.requests.load(Ordering::Relaxed);
        let line = format!(
            "{:>5.1}/{:.0} s  {:>9} req/s  {:>10} requests  {:>6} errors",
            started.elapsed().as_secs_f64(),
            duration.as_secs_f64(),
            now - last,
            now,
            live.errors.load(Ordering::Relaxed)
        );
        last = now;
        let mut err = std::io::stderr();
        if tty {
            let _ = write!(err, "\r{line}");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}
