//! A mixed load for fault tests: worker tasks run SET, GET, an atomic
//! script write, an idempotent rate-limit check and a get_or_compute in a
//! loop until told to stop, count successes and failures,
//! and fail the test on a non-retryable error or a call that hangs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::num::NonZeroU32;

use redis_atomics::{
    Algorithm, CheckOptions, ComputeOptions, Error, Idempotency, Quota, RedisService, SetOptions,
};

/// A call that takes longer than this counts as hung.
pub const HUNG: Duration = Duration::from_secs(10);

/// Runs `f` under the hang watchdog.
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(HUNG, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for more than {HUNG:?}"))
}

/// One unit of mixed work: SET, GET, an atomic script write, a rate-limit
/// check with a request id (so the retry policy may repeat it), and a
/// get_or_compute whose value must be the one computed for its key.
pub async fn unit(service: &RedisService, worker: usize, i: u64) -> Result<(), Error> {
    let key = format!("fault:{worker}:{}", i % 50);
    service
        .set(
            &key,
            i.to_string(),
            SetOptions::new().ex(Duration::from_secs(60)),
        )
        .await?;
    let _: Option<String> = service.get(&key).await?;
    let tagged = format!("fault:{{{worker}}}:m");
    let _: i64 = service
        .eval_script(
            "mset_expire",
            &[&format!("{tagged}:a"), &format!("{tagged}:b")],
            &["60000", "1", "2"],
            Idempotency::Idempotent,
        )
        .await?;
    let limit = NonZeroU32::new(1_000_000).expect("non-zero");
    let limiter = service.rate_limiter("fault", Algorithm::Gcra, Quota::per_second(limit))?;
    let decision = limiter
        .check_with(
            &format!("w{worker}"),
            CheckOptions::new().request_id(format!("{worker}-{i}")),
        )
        .await?;
    assert!(
        decision.is_allowed(),
        "a generous limit denied: {decision:?}"
    );
    let slot = i % 20;
    let v: u64 = service
        .get_or_compute(
            &format!("fault:c:{worker}:{slot}"),
            async move { slot * 7 },
            ComputeOptions::new().ttl(Duration::from_secs(60)),
        )
        .await?;
    assert_eq!(v, slot * 7, "get_or_compute returned another key's value");
    Ok(())
}

#[derive(Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Time of the last failure, in ms since the load started.
    pub last_failure_ms: AtomicU64,
}

/// `workers` tasks run `unit` until `stop`; every failure must be retryable.
pub fn load(
    service: &RedisService,
    workers: usize,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
    started: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|w| {
            let (service, stop, tally) = (service.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    match bounded("a call under load", unit(&service, w, i)).await {
                        Ok(()) => {
                            tally.ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(err) => {
                            assert!(
                                err.is_retryable(),
                                "non-retryable failure under a fault: {err:?}"
                            );
                            tally.failed.fetch_add(1, Ordering::SeqCst);
                            let ms = started.elapsed().as_millis() as u64;
                            tally.last_failure_ms.fetch_max(ms, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

pub async fn join_all(workers: Vec<tokio::task::JoinHandle<()>>) {
    for w in workers {
        bounded("a worker", w).await.expect("a worker panicked");
    }
}
