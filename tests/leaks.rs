//! Leaks: after a mixed load — rate limits of every algorithm (one and
//! several quotas), get_or_compute with computations that succeed, fail and
//! are cancelled, the cache wrapper, JSON batches with a TTL, temporary keys
//! ended by success, error, panic and drop — every key left in Redis has a
//! TTL, and no lock is left behind.

mod support;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use redis_atomics::cache::{Args, CacheOptions};
use redis_atomics::{Algorithm, ComputeError, ComputeOptions, Quota, RedisService, SetOptions};
use serde_json::json;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

async fn rate_limits(svc: &RedisService) {
    for algorithm in [
        Algorithm::SlidingLog,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ] {
        let single = svc
            .rate_limiter(
                "single",
                algorithm,
                Quota::new(nz(5), Duration::from_secs(30)),
            )
            .unwrap();
        let multi = svc
            .rate_limiter_builder("multi", algorithm)
            .quota(Quota::per_second(nz(3)))
            .quota(Quota::per_hour(nz(100)))
            .build()
            .unwrap();
        for i in 0..40 {
            let id = format!("user:{}", i % 7);
            single.check(&id).await.unwrap();
            multi.check_n(&id, 1 + i % 2).await.unwrap();
            multi.peek(&id).await.unwrap();
        }
        single.reset("user:0").await.unwrap();
    }
    for i in 0..20 {
        svc.check_rate_limit(&format!("ip:{}", i % 3), 5, 10, i % 2 == 0)
            .await
            .unwrap();
    }
}

async fn computations(svc: &RedisService) {
    let opts = || ComputeOptions::new().ttl(Duration::from_secs(120));
    for i in 0..10 {
        let v: u32 = svc
            .get_or_compute(&format!("ok:{i}"), async move { i }, opts())
            .await
            .unwrap();
        assert_eq!(v, i);
        let failed: Result<u32, ComputeError<&str>> = svc
            .try_get_or_compute(&format!("fail:{i}"), async { Err("boom") }, opts())
            .await;
        assert!(failed.is_err());
        // Cancelled while holding the lock.
        let cancel_key = format!("cancel:{i}");
        let slow = svc.get_or_compute(
            &cancel_key,
            async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                0u32
            },
            opts(),
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slow)
                .await
                .is_err()
        );
    }
    let cached = svc.cache(
        "report",
        CacheOptions::<Vec<u32>>::new().ttl(Duration::from_secs(60)),
    );
    for i in 0..10u32 {
        let args = Args::new().arg("year", &(2000 + i % 3));
        let v = cached.call(&args, async move { vec![i] }).await;
        assert!(!v.is_empty());
    }
    cached
        .invalidate(&Args::new().arg("year", &2000))
        .await
        .unwrap();
}

async fn data(svc: &RedisService) {
    let ttl = Some(Duration::from_secs(90));
    let batch: Vec<(String, serde_json::Value)> = (0..200)
        .map(|i| (format!("doc:{i}"), json!({ "i": i })))
        .collect();
    svc.mset_json(batch, ttl).await.unwrap();
    svc.set_json(
        "one",
        &json!([1, 2]),
        SetOptions::new().ex(Duration::from_secs(90)),
    )
    .await
    .unwrap();

    // Temporary keys, every way a scope can end.
    let guard = svc.temporary_key("tmp:dropped", "v", None).await.unwrap();
    drop(guard);
    let ok: Result<(), redis_atomics::Error> = svc
        .with_temporary_key("tmp:ok", "v", None, |_| async { Ok(()) })
        .await;
    ok.unwrap();
    let err: Result<(), redis_atomics::Error> = svc
        .with_temporary_key("tmp:err", "v", None, |_| async {
            Err(redis_atomics::Error::validation("the body failed"))
        })
        .await;
    assert!(err.is_err());
    let svc2 = svc.clone();
    let panicked = tokio::spawn(async move {
        let _: Result<(), redis_atomics::Error> = svc2
            .with_temporary_key("tmp:panic", "v", None, |_| async {
                panic!("inside the scope")
            })
            .await;
    })
    .await;
    assert!(panicked.is_err());
    // A key that outlives its scope (crash-like: forgotten) still expires.
    std::mem::forget(svc.temporary_key("tmp:forgotten", "v", None).await.unwrap());
}

/// Every key that still exists, with its PTTL (-1 = no TTL).
async fn all_keys(server: &support::RedisServer) -> Vec<(String, i64)> {
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in keys {
            let pttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            // -2: it expired between SCAN and PTTL (1 s rate-limit windows).
            if pttl != -2 {
                out.push((key, pttl));
            }
        }
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_mixed_load_every_key_expires_and_no_lock_is_left() {
    // A private server: the test counts every key in it.
    let server = support::RedisServer::start();
    let svc = support::service_at(&server.url(), "leak").await;
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                rate_limits(&svc).await;
                computations(&svc).await;
                data(&svc).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }

    // Locks of cancelled computations are released by a spawned task: give
    // it a moment, then nothing may be left.
    let deadline = Instant::now() + Duration::from_secs(2);
    let keys = loop {
        let keys = all_keys(&server).await;
        let locks = keys.iter().filter(|(k, _)| k.ends_with(":lock")).count();
        if locks == 0 || Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(keys.len() > 200, "the load wrote keys: {}", keys.len());
    let immortal: Vec<_> = keys.iter().filter(|(_, pttl)| *pttl == -1).collect();
    assert!(immortal.is_empty(), "keys without a TTL: {immortal:?}");
    let locks: Vec<_> = keys.iter().filter(|(k, _)| k.ends_with(":lock")).collect();
    assert!(locks.is_empty(), "locks left behind: {locks:?}");
    for prefix in [
        "leak:tmp:dropped",
        "leak:tmp:ok",
        "leak:tmp:err",
        "leak:tmp:panic",
    ] {
        assert!(
            !keys.iter().any(|(k, _)| k == prefix),
            "{prefix} survived its scope"
        );
    }
    assert!(
        keys.iter().any(|(k, _)| k == "leak:tmp:forgotten"),
        "forgotten key expires instead"
    );
    // Bounded TTLs: nothing lives longer than its window allows. The
    // longest window is 1 h (a rate-limit quota, and the temporary-key
    // safety TTL); the sliding-window counter keeps the previous window
    // too, so its keys may live two windows.
    for (k, pttl) in &keys {
        let bound = if k.contains(":sw:") {
            7_200_000
        } else {
            3_600_000
        };
        assert!(
            *pttl <= bound + 1_000,
            "{k} lives {pttl} ms (bound {bound})"
        );
    }
    let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
    for (k, _) in &keys {
        let kind = k.split(':').take(2).collect::<Vec<_>>().join(":");
        *by_kind.entry(kind).or_default() += 1;
    }
    eprintln!("{} keys left, all with a TTL: {by_kind:?}", keys.len());
}
