//! The history checker (Jepsen-style): clients on several services (stand-ins
//! for processes, each with its own connections) run a seeded random mix of
//! `get_or_compute`, cached calls, `invalidate`, `invalidate_all`, library
//! `set`/`delete` of the cached keys and rate-limit checks (every algorithm,
//! with and without request ids) while a seeded fault schedule runs; every
//! operation's invocation, completion and outcome is recorded, then checked
//! against the invariants I1–I6 (see `history/checker.rs`).
//!
//! - `HISTORY_SEED=<n>` replays a seed (decimal or `0x…`): the same
//!   operations per client and the same faults; the interleaving is the
//!   machine's, so a race may need a few runs or a longer one to reappear.
//! - `HISTORY_SECS=<n>` sets how long each topology runs (default 20 s);
//!   `HISTORY_SECS=600` is a soak.
//!
//! Each topology gets its own servers (the run flushes scripts, kills
//! clients and nodes): a standalone server behind the fault proxy, and a
//! 3-primary cluster with a replica per primary. The two runs take turns.
//!
//! Modules: `ops` (the plan and the generator), `recorder`, `faults`,
//! `topology`, `runner` (the clients), `snapshot` (the final server state),
//! `checker` (the invariants and the report) and `checker_tests` (the
//! checker fails on hand-made bad histories).

mod support;

#[path = "history/checker.rs"]
mod checker;
#[path = "history/checker_tests.rs"]
mod checker_tests;
#[path = "history/faults.rs"]
mod faults;
#[path = "history/ops.rs"]
mod ops;
#[path = "history/recorder.rs"]
mod recorder;
#[path = "history/runner.rs"]
mod runner;
#[path = "history/snapshot.rs"]
mod snapshot;
#[path = "history/topology.rs"]
mod topology;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis_atomics::{Args, CacheOptions};

use ops::{FUNCTIONS, MAX_LOCK_TTL, Plan, Rng};
use recorder::{History, Outcome, Recorder};
use topology::Topology;

/// Concurrent clients, spread over this many services.
const CLIENTS: usize = 8;
const SERVICES: usize = 3;

/// The two topologies take turns: each injects faults and wants the cores.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn seed() -> u64 {
    match std::env::var("HISTORY_SEED") {
        Ok(s) if !s.trim().is_empty() => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("HISTORY_SEED={s:?} is not a u64: {e}"))
        }
        _ => {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                % 1_000_000_000
        }
    }
}

fn run_length() -> Duration {
    let secs = std::env::var("HISTORY_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(20.0);
    Duration::from_secs_f64(secs.max(1.0))
}

/// Counts of operations per kind and outcome, for the log.
fn summary(history: &History) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &history.ops {
        let kind = format!("{:?}", r.op);
        let kind = kind.split([' ', '{']).next().unwrap_or_default().to_owned();
        let outcome = match &r.outcome {
            Outcome::Value(_) => "value",
            Outcome::Done(_) => "done",
            Outcome::Decision { allowed: true, .. } => "allowed",
            Outcome::Decision { allowed: false, .. } => "denied",
            Outcome::Error(_) => "error",
            Outcome::Timeout => "TIMEOUT",
        };
        *counts.entry(format!("{kind}/{outcome}")).or_default() += 1;
    }
    let computations = history.produced.len();
    format!(
        "{} operations, {computations} values produced, {} faults; {counts:?}",
        history.ops.len(),
        history.faults.len()
    )
}

async fn run_history(test: &str, make: fn() -> Topology) {
    let _turn = TURN.lock().await;
    let seed = seed();
    let run = run_length();
    let replay = format!("HISTORY_SEED={seed} cargo test --test history {test}");
    eprintln!("{test}: seed {seed}, {run:?} (replay: {replay})");
    let started = Instant::now();
    let topology = Arc::new(tokio::task::block_in_place(make));
    let cluster = matches!(*topology, Topology::Cluster(_));
    let ns = "hist";
    let direct = topology.service(ns, true).await;
    let plan = Plan::new(ns, |func, arg| {
        direct
            .cache::<String>(FUNCTIONS[func].0, CacheOptions::new())
            .key(&Args::new().arg("id", &arg))
            .expect("a cache key")
    });
    let seeded = tokio::task::block_in_place(|| snapshot::seed_user_keys(&topology, &plan));
    let mut clients = Vec::new();
    for _ in 0..SERVICES {
        let service = topology.service(ns, false).await;
        clients.push(runner::Client::new(service, &plan));
    }
    let (clients, plan) = (Arc::new(clients), Arc::new(plan));
    let setup = started.elapsed();

    let rec = Arc::new(Recorder::new());
    let schedule = faults::schedule(&mut Rng::new(seed ^ 0x5EED_FA17), run, cluster);
    let injector = tokio::spawn(faults::inject(
        Arc::clone(&topology),
        schedule,
        Arc::clone(&rec),
        seed,
    ));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(runner::run_client(
                i,
                Arc::clone(&clients),
                Arc::clone(&plan),
                Arc::clone(&rec),
                seed,
                run,
            ))
        })
        .collect();
    for w in workers {
        w.await.expect("a client panicked");
    }
    injector.await.expect("the fault task panicked");
    let ran = rec.now();

    // The end state: servers healthy, then every lock TTL has passed.
    tokio::task::block_in_place(|| topology.settle());
    tokio::time::sleep(MAX_LOCK_TTL + Duration::from_millis(500)).await;
    let history = rec.history();
    let direct = topology.service(ns, true).await;
    let mut state = tokio::task::block_in_place(|| snapshot::final_keys(&topology, &seeded));
    state.used = snapshot::used_units(&direct, &plan, &history).await;
    let violations = checker::check(&plan, &history, &state);
    eprintln!(
        "{test}: seed {seed}: setup {setup:?}, ran {ran:?}, total {:?}; {}",
        started.elapsed(),
        summary(&history)
    );
    for f in &history.faults {
        eprintln!("  fault at {:?}: {}", f.start, f.what);
    }
    if !violations.is_empty() {
        panic!(
            "{test} ({}):\n{}",
            topology.name(),
            checker::report(&plan, &history, &violations, &replay, 3)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_history_keeps_every_invariant() {
    run_history(
        "standalone_history_keeps_every_invariant",
        Topology::standalone,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_history_keeps_every_invariant() {
    run_history("cluster_history_keeps_every_invariant", Topology::cluster).await;
}
