//! What is stored and served: raw bytes, errors never cached, TTL and
//! validation, undecodable values, early refresh (XFetch), statistics.

use super::*;

#[tokio::test]
async fn raw_bytes_and_strings_are_stored_as_is() {
    let svc = &services(Deployment::Standalone, 1).await[0];
    let p = support::unique_prefix("raw");
    let opts = ComputeOptions::new().serialize_json(false);
    let bytes = vec![0u8, 0xff, b'\n', 0x80];
    let got: Vec<u8> = svc
        .get_or_compute(&format!("{p}:b"), async { bytes.clone() }, opts.clone())
        .await
        .unwrap();
    assert_eq!(got, bytes);
    assert_eq!(raw_get(svc, &format!("{p}:b")).await.unwrap(), bytes);
    let again: Vec<u8> = svc
        .get_or_compute(&format!("{p}:b"), async { vec![1] }, opts.clone())
        .await
        .unwrap();
    assert_eq!(again, bytes);

    let s: String = svc
        .get_or_compute(
            &format!("{p}:s"),
            async { "héllo".to_string() },
            opts.clone(),
        )
        .await
        .unwrap();
    assert_eq!(s, "héllo");
    assert_eq!(
        raw_get(svc, &format!("{p}:s")).await.unwrap(),
        "héllo".as_bytes()
    );

    // Raw mode refuses what is not a string or bytes, before storing anything.
    let err = svc
        .get_or_compute(&format!("{p}:n"), async { 5u32 }, opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert!(!raw_exists(svc, &format!("{p}:n")).await);
}

/// An error is not stored, and the lock is released before the call
/// returns: with a 60 s lock TTL, it is gone the moment the error is back.
#[tokio::test]
async fn errors_are_not_cached_and_release_the_lock() {
    let svc = &services(Deployment::Standalone, 1).await[0];
    let key = format!("{}:k", support::unique_prefix("err"));
    let r: Result<u32, ComputeError<String>> = svc
        .try_get_or_compute(
            &key,
            async { Err("nope".to_string()) },
            ComputeOptions::new().lock_ttl(Duration::from_secs(60)),
        )
        .await;
    assert!(matches!(r, Err(ComputeError::Compute(ref e)) if e == "nope"));
    assert!(!raw_exists(svc, &key).await);
    assert!(!raw_exists(svc, &redis_atomics::keys::lock_key(&key)).await);
    let ok: Result<u32, ComputeError<String>> = svc
        .try_get_or_compute(&key, async { Ok(3) }, ComputeOptions::new())
        .await;
    assert_eq!(ok.unwrap(), 3);
}

#[tokio::test]
async fn ttl_namespace_and_validation() {
    let server = support::shared_server().await;
    let p = support::unique_prefix("ttl");
    let svc = support::service_in(Deployment::Standalone, &format!("{p}-ns")).await;
    let v: u32 = svc
        .get_or_compute(
            "k",
            async { 1 },
            ComputeOptions::new().ttl(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(v, 1);
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pttl: i64 = raw.pttl(format!("{p}-ns:k")).await.unwrap();
    assert!(pttl > 25_000 && pttl <= 30_000, "{pttl}");
    let err = svc
        .get_or_compute(
            "k",
            async { 1u32 },
            ComputeOptions::new().ttl(Duration::ZERO),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.attempts(), 0, "rejected before any round trip");
    assert_eq!(err.key(), Some(format!("{p}-ns:k").as_str()));
}

#[tokio::test]
async fn an_undecodable_value_is_recomputed() {
    let svc = &services(Deployment::Standalone, 1).await[0];
    let key = format!("{}:k", support::unique_prefix("decode"));
    let mut conn = svc.connection();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("{\"old\":\"shape\"}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let v: Vec<u32> = svc
        .get_or_compute(&key, async { vec![1, 2] }, ComputeOptions::new())
        .await
        .unwrap();
    assert_eq!(v, vec![1, 2]);
    assert_eq!(raw_get(svc, &key).await.unwrap(), b"[1,2]");
}

#[tokio::test]
async fn early_refresh_recomputes_hot_entries_before_expiry() {
    let svc = &services(Deployment::Standalone, 1).await[0];
    let key = format!("{}:k", support::unique_prefix("xfetch"));
    let computations = Arc::new(AtomicUsize::new(0));
    let compute = |n: Arc<AtomicUsize>| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n.fetch_add(1, Ordering::SeqCst) as u32
    };
    let eager = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .early_refresh(1e9); // refresh probability ~1
    let never = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .early_refresh(1e-9); // refresh probability ~0
    let first: u32 = svc
        .get_or_compute(&key, compute(computations.clone()), never.clone())
        .await
        .unwrap();
    assert_eq!(first, 0);
    let before = svc.cache_stats();
    let cached: u32 = svc
        .get_or_compute(&key, compute(computations.clone()), never)
        .await
        .unwrap();
    assert_eq!(cached, 0, "far from expiry nothing is refreshed");
    let refreshed: u32 = svc
        .get_or_compute(&key, compute(computations.clone()), eager)
        .await
        .unwrap();
    assert_eq!(refreshed, 1);
    assert_eq!(computations.load(Ordering::SeqCst), 2);
    let after = svc.cache_stats();
    assert!(after.early_refreshes > before.early_refreshes);
    assert_eq!(raw_get(svc, &key).await.unwrap(), b"1");
}

#[tokio::test]
async fn stats_count_hits_misses_waits_and_coalesced_calls() {
    let svcs = services(Deployment::Standalone, 2).await;
    let key = format!("{}:k", support::unique_prefix("stats"));
    let before = svcs[0].cache_stats();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (svc, key) = (svcs[0].clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    1u8
                },
                ComputeOptions::new(),
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }
    let _: u8 = svcs[0]
        .get_or_compute(&key, async { 2 }, ComputeOptions::new())
        .await
        .unwrap();
    let after = svcs[0].cache_stats();
    // Other tests share nothing with this service: exact deltas.
    assert_eq!(after.computations - before.computations, 1);
    assert_eq!(after.misses - before.misses, 1);
    // The other 9 joined the flight, or (on a slow machine) started after it
    // ended and read the stored value.
    let coalesced = after.coalesced - before.coalesced;
    assert!(coalesced >= 1, "{coalesced}");
    assert_eq!(coalesced + (after.hits - before.hits), 10);
    assert_eq!(after.degraded, before.degraded);
}

/// Many callers decide to refresh a hot key at once: one takes the lock and
/// recomputes, the others keep getting the current value at once. The
/// refresher does not finish before the 99 others have their answer (so
/// none of them can have seen its new value), however slow the machine.
#[tokio::test]
async fn concurrent_early_refresh_recomputes_once() {
    let svcs = services(Deployment::Standalone, 4).await;
    let key = format!("{}:hot", support::unique_prefix("xfetch-herd"));
    let opts = ComputeOptions::new()
        .ttl(Duration::from_secs(60))
        .single_flight(false);
    let first: u32 = svcs[0]
        .get_or_compute(
            &key,
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                1
            },
            // Measures and stores δ, almost never refreshes.
            opts.clone().early_refresh(1e-9),
        )
        .await
        .unwrap();
    assert_eq!(first, 1);
    let computations = Arc::new(AtomicUsize::new(0));
    // One permit per caller answered with the current value.
    let answered = Arc::new(tokio::sync::Semaphore::new(0));
    let eager = opts.early_refresh(1e9);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (svc, key, computations, answered, eager) = (
            svcs[i % 4].clone(),
            key.clone(),
            computations.clone(),
            answered.clone(),
            eager.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let v = svc
                .get_or_compute(
                    &key,
                    async {
                        computations.fetch_add(1, Ordering::SeqCst);
                        let _ = answered.acquire_many(99).await.unwrap();
                        2u32
                    },
                    eager,
                )
                .await
                .unwrap();
            if v == 1 {
                answered.add_permits(1);
            }
            v
        }));
    }
    let all = async {
        let mut values = Vec::new();
        for t in tasks {
            values.push(t.await.unwrap());
        }
        values
    };
    let values = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("one refresher, 99 answered with the current value");
    assert_eq!(computations.load(Ordering::SeqCst), 1, "one refresher");
    assert_eq!(values.iter().filter(|&&v| v == 2).count(), 1);
    assert_eq!(values.iter().filter(|&&v| v == 1).count(), 99);
    assert_eq!(raw_get(&svcs[0], &key).await.unwrap(), b"2");
}
