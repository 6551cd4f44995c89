//! The loadtest example runs for a few seconds against a spawned server and
//! its JSON summary holds sane numbers: requests made, no errors against a
//! healthy server, ordered percentiles; bad flags are refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// target/<profile>/examples/loadtest, next to this test's own binary: a full
/// `cargo test` builds examples before it runs tests. (A nested `cargo build`
/// would wait forever on the lock the running `cargo test` holds.)
fn loadtest_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = dir.join("examples").join("loadtest");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: run `cargo build --example loadtest` (a full `cargo test` builds it)", bin.display()));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/loadtest");
    for entry in std::fs::read_dir(&src).expect("examples/loadtest") {
        let changed = entry.unwrap().metadata().unwrap().modified().unwrap();
        assert!(
            changed <= built,
            "{} is older than its sources: run `cargo build --example loadtest` (a full `cargo test` rebuilds it)",
            bin.display()
        );
    }
    bin
}

fn loadtest(args: &[&str]) -> Output {
    Command::new(loadtest_bin())
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_NODES")
        .output()
        .expect("run loadtest")
}

fn run_json(url_args: &[&str], extra: &[&str]) -> serde_json::Value {
    let file = std::env::temp_dir().join(format!(
        "redis-atomics-loadtest-{}-{}.json",
        std::process::id(),
        support::unique_prefix("lt").replace([':', '/'], "_")
    ));
    let file_arg = file.to_string_lossy().into_owned();
    let mut args = url_args.to_vec();
    args.extend([
        "--duration",
        "2",
        "--concurrency",
        "8",
        "--quiet",
        "--json",
        &file_arg,
    ]);
    args.extend(extra);
    let out = loadtest(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadtest {args:?} failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("p99.9 ms"),
        "prints the latency table: {stdout}"
    );
    let text = std::fs::read_to_string(&file).expect("JSON summary written");
    let _ = std::fs::remove_file(&file);
    serde_json::from_str(&text).expect("valid JSON")
}

fn assert_sane(summary: &serde_json::Value, ops: &[&str]) {
    assert!(summary["requests"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["errors"].as_u64(), Some(0), "{summary}");
    assert!(summary["rate_per_sec"].as_f64().unwrap() > 0.0);
    let listed: Vec<&str> = summary["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    for op in ops {
        assert!(listed.contains(op), "{op} missing from {listed:?}");
    }
    for op in summary["ops"].as_array().unwrap() {
        let l = &op["latency_us"];
        let (p50, p90, p99, p999, max) = (
            l["p50"].as_u64().unwrap(),
            l["p90"].as_u64().unwrap(),
            l["p99"].as_u64().unwrap(),
            l["p999"].as_u64().unwrap(),
            l["max"].as_u64().unwrap(),
        );
        assert!(op["requests"].as_u64().unwrap() > 0, "{op}");
        assert!(
            p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
            "{op}"
        );
    }
    assert!(summary["rss_end_kib"].as_u64().unwrap() > 0);
}

#[test]
fn every_operation_runs_cleanly_against_a_server() {
    let server = support::shared_server_blocking();
    let url = server.url();
    let mut names = Vec::new();
    for op in [
        "get",
        "set",
        "rate-limit",
        "check-rate-limit",
        "get-or-compute",
        "get-json",
        "set-json",
        "mget-json",
        "mset-json",
    ] {
        names.push(op);
        let summary = run_json(&["--url", &url], &["--op", op, "--keys", "50"]);
        assert_sane(&summary, &[op]);
    }
}

#[test]
fn rate_limit_denies_beyond_the_limit_without_errors() {
    let server = support::shared_server_blocking();
    for algorithm in ["sliding-log", "fixed-window", "sliding-window", "gcra"] {
        let summary = run_json(
            &["--url", &server.url()],
            &[
                "--op",
                "rate-limit",
                "--algorithm",
                algorithm,
                "--keys",
                "2",
                "--limit",
                "5",
                "--window-ms",
                "60000",
            ],
        );
        assert_sane(&summary, &["rate-limit"]);
        let op = &summary["ops"][0];
        // 2 ids × 5 per minute: everything beyond 10 requests is denied.
        let allowed = op["requests"].as_u64().unwrap() - op["denied"].as_u64().unwrap();
        assert!(allowed <= 10, "{algorithm}: {allowed} allowed: {op}");
        assert!(op["denied"].as_u64().unwrap() > 0, "{algorithm}: {op}");
    }
}

#[test]
fn a_mix_runs_on_a_cluster() {
    let cluster = support::shared_cluster_blocking();
    let nodes = cluster.nodes().join(",");
    let summary = run_json(
        &["--cluster", &nodes],
        &["--mix", "get=1,set=1,rate-limit=2"],
    );
    assert_sane(&summary, &["get", "set", "rate-limit"]);
}

#[test]
fn help_explains_every_flag_and_bad_flags_are_refused() {
    let out = loadtest(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--url",
        "--cluster",
        "--op",
        "--mix",
        "--algorithm",
        "--limit",
        "--window-ms",
        "--concurrency",
        "--duration",
        "--keys",
        "--batch",
        "--value-size",
        "--ttl",
        "--compute-ms",
        "--namespace",
        "--json",
        "--quiet",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for bad in [
        &["--concurrency", "0"][..],
        &["--duration", "-1"],
        &["--mix", "get=0"],
        &["--op", "nope"],
    ] {
        let out = loadtest(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?} should be refused");
        assert!(!out.stderr.is_empty());
    }
}

/// The CI version of the sustained-load run (the README's 5-minute command):
/// 20 s of mixed traffic, no errors, and client memory flat — the second
/// half of the run never holds much more than the first half did.
#[test]
fn sustained_mixed_load_keeps_client_memory_flat() {
    let server = support::shared_server_blocking();
    let file = std::env::temp_dir().join(format!(
        "redis-atomics-sustained-{}.json",
        std::process::id()
    ));
    let out = loadtest(&[
        "--url",
        &server.url(),
        "--mix",
        "rate-limit=4,get-or-compute=3,mget-json=2,set-json=1",
        "--duration",
        "20",
        "--concurrency",
        "32",
        "--keys",
        "10000",
        "--quiet",
        "--json",
        &file.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_sane(
        &summary,
        &["rate-limit", "get-or-compute", "mget-json", "set-json"],
    );
    let samples: Vec<u64> = summary["rss_samples_kib"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(samples.len() >= 15, "{samples:?}");
    let (first, second) = samples.split_at(samples.len() / 2);
    let first_max = *first.iter().max().unwrap();
    let second_max = *second.iter().max().unwrap();
    eprintln!(
        "sustained: {} requests, {:.0} req/s, RSS first half max {first_max} KiB, second half max {second_max} KiB",
        summary["requests"],
        summary["rate_per_sec"].as_f64().unwrap()
    );
    assert!(
        second_max <= first_max + first_max / 4 + 4096,
        "client memory grew: {samples:?}"
    );
}
