//! The clients: each runs its seeded sequence of operations on one of the
//! services (stand-ins for processes, each with its own connection) until
//! the run ends, every call under its deadline, and records what happened.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use redis_atomics::rate_limit::{CheckOptions, Quota, RateLimiter};
use redis_atomics::{Args, CacheOptions, ComputeOptions, RedisService, SetOptions};

use super::ops::{ComputeSpec, FUNCTIONS, KeyClass, Op, Plan, Rng, next_op};
use super::recorder::{OpRecord, Outcome, Recorder};

/// One client "process": a service and its limiters.
pub struct Client {
    pub service: RedisService,
    pub limiters: Vec<RateLimiter>,
}

impl Client {
    pub fn new(service: RedisService, plan: &Plan) -> Self {
        let limiters = plan
            .limiters
            .iter()
            .map(|l| {
                let quota = Quota::new(NonZeroU32::new(l.limit).expect("limit > 0"), l.window);
                service
                    .rate_limiter(&l.name, l.algorithm, quota)
                    .expect("valid limiter")
            })
            .collect();
        Client { service, limiters }
    }
}

fn options(spec: &ComputeSpec) -> ComputeOptions {
    let opts = ComputeOptions::new()
        .lock_ttl(spec.lock_ttl)
        .auto_extend(spec.auto_extend);
    match spec.max_wait {
        Some(w) => opts.max_wait(w),
        None => opts,
    }
}

fn err<E: std::fmt::Display>(e: E) -> Outcome {
    Outcome::Error(e.to_string())
}

/// Runs one operation (no deadline here).
async fn execute(client: &Client, plan: &Plan, rec: &Recorder, seq: u64, op: &Op) -> Outcome {
    let service = &client.service;
    let raw = service.without_namespace();
    match op {
        Op::Get { target, spec } => {
            let t = &plan.targets[*target];
            let compute = rec.computation(*target, seq, spec.compute);
            match service
                .get_or_compute::<String, _>(&t.name, compute, options(spec))
                .await
            {
                Ok(v) => Outcome::Value(v),
                Err(e) => err(e),
            }
        }
        Op::Call { target, spec } => {
            let KeyClass::Cached { func, arg } = plan.targets[*target].class else {
                unreachable!("Call on a cached target")
            };
            let cached = service.cache::<String>(
                FUNCTIONS[func].0,
                CacheOptions::new().compute_options(options(spec)),
            );
            let compute = rec.computation(*target, seq, spec.compute);
            Outcome::Value(cached.call(&Args::new().arg("id", &arg), compute).await)
        }
        Op::Invalidate { target } => {
            let KeyClass::Cached { func, arg } = plan.targets[*target].class else {
                unreachable!("Invalidate on a cached target")
            };
            let cached = service.cache::<String>(FUNCTIONS[func].0, CacheOptions::new());
            match cached.invalidate(&Args::new().arg("id", &arg)).await {
                Ok(n) => Outcome::Done(n),
                Err(e) => err(e),
            }
        }
        Op::InvalidateAll { func } => {
            let cached = service.cache::<String>(FUNCTIONS[*func].0, CacheOptions::new());
            match cached.invalidate_all().await {
                Ok(n) => Outcome::Done(n),
                Err(e) => err(e),
            }
        }
        Op::Set { target } => {
            let value = rec.set_value(*target, seq);
            match raw
                .set_json(&plan.targets[*target].full, &value, SetOptions::new())
                .await
            {
                Ok(_) => Outcome::Done(1),
                Err(e) => err(e),
            }
        }
        Op::Delete { target } => match raw.delete(&[&plan.targets[*target].full]).await {
            Ok(n) => Outcome::Done(n),
            Err(e) => err(e),
        },
        Op::Check { .. } | Op::CheckOnce { .. } => {
            let (limiter, id, request_id) = op.check_parts().expect("a check");
            let mut opts = CheckOptions::new();
            if let Some(rid) = request_id {
                opts = opts.request_id(rid);
            }
            match client.limiters[limiter].check_with(id, opts).await {
                Ok(d) => Outcome::Decision {
                    allowed: d.is_allowed(),
                    remaining: d.remaining(),
                },
                Err(e) => err(e),
            }
        }
    }
}

/// Client `index` on `clients[index % len]`: operations drawn from
/// `seed`, until `run` has passed on the recorder's clock.
pub async fn run_client(
    index: usize,
    clients: Arc<Vec<Client>>,
    plan: Arc<Plan>,
    rec: Arc<Recorder>,
    seed: u64,
    run: Duration,
) {
    let mut rng = Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let service = index % clients.len();
    let client = &clients[service];
    let mut n = 0u64;
    while rec.now() < run {
        let op = next_op(&mut rng, &plan, index, n);
        n += 1;
        let seq = rec.next_seq();
        let invoked = rec.now();
        let degraded_before = client.service.cache_stats().degraded;
        let outcome = tokio::time::timeout(op.deadline(), execute(client, &plan, &rec, seq, &op))
            .await
            .unwrap_or(Outcome::Timeout);
        let maybe_degraded = client.service.cache_stats().degraded != degraded_before;
        rec.record(OpRecord {
            seq,
            client: index,
            service,
            op,
            invoked,
            completed: rec.now(),
            outcome,
            maybe_degraded,
        });
        // A short, seeded think time keeps the mix from being a busy loop.
        tokio::time::sleep(Duration::from_millis(rng.below(8))).await;
    }
}
