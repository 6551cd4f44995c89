//! Latency and error accounting, the final table and the JSON summary.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one worker recorded for one operation.
pub struct OpStats {
    /// Latencies of successful requests, in microseconds.
    pub latency: Histogram<u64>,
    /// Errors by kind (`ErrorKind` as text).
    pub errors: BTreeMap<String, u64>,
    /// Requests answered "no" by design (rate-limit denials): not errors.
    pub denied: u64,
}

impl OpStats {
    pub fn new() -> Self {
        OpStats {
            // 1 µs to 60 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            errors: BTreeMap::new(),
            denied: 0,
        }
    }

    pub fn record(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.latency
            .add(&other.latency)
            .expect("same histogram bounds");
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.denied += other.denied;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The JSON summary of one operation.
#[derive(Serialize)]
pub struct OpSummary {
    pub op: String,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub denied: u64,
    pub rate_per_sec: f64,
    pub latency_us: Latency,
}

/// Latency percentiles in microseconds.
#[derive(Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// The JSON summary of a run.
#[derive(Serialize)]
pub struct Summary {
    pub target: String,
    pub concurrency: usize,
    pub key_space: u64,
    pub duration_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub rate_per_sec: f64,
    pub ops: Vec<OpSummary>,
    /// Resident memory of this process (KiB) after connecting, and at the end.
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_max_kib: u64,
    /// RSS once a second, from after connecting to the end.
    pub rss_samples_kib: Vec<u64>,
}

pub fn summarize(name: &str, stats: &OpStats, elapsed: Duration) -> OpSummary {
    let h = &stats.latency;
    let ok = h.len();
    let errors = stats.error_count();
    OpSummary {
        op: name.to_owned(),
        requests: ok + errors,
        ok,
        errors,
        errors_by_kind: stats.errors.clone(),
        denied: stats.denied,
        rate_per_sec: (ok + errors) as f64 / elapsed.as_secs_f64(),
        latency_us: Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        },
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// The human-readable table.
pub fn print_table(summary: &Summary) {
    println!();
    println!(
        "{} requests in {:.1} s against {} ({} concurrent, {} keys): {:.0} req/s, {} errors",
        summary.requests,
        summary.duration_secs,
        summary.target,
        summary.concurrency,
        summary.key_space,
        summary.rate_per_sec,
        summary.errors
    );
    println!();
    println!(
        "{:<18} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation",
        "req/s",
        "errors",
        "denied",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    for op in &summary.ops {
        let l = &op.latency_us;
        println!(
            "{:<18} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            op.op,
            op.rate_per_sec,
            op.errors,
            op.denied,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        );
        for (kind, n) in &op.errors_by_kind {
            println!("    {n} × {kind}");
        }
    }
    println!(
        "\nclient memory (RSS): {} KiB after connecting, {} KiB at the end, {} KiB at most",
        summary.rss_start_kib, summary.rss_end_kib, summary.rss_max_kib
    );
}

/// Resident set size of this process in KiB (Linux; 0 elsewhere).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}
