//! The seed call, key layout and hash tags, ids on a cluster, bad input.

use super::*;

#[tokio::test]
async fn the_seed_call() {
    let svc = test_service(Deployment::Standalone).await;
    for sliding in [true, false] {
        let key = format!("ip:10.0.0.1:{sliding}");
        let got: Vec<(bool, u64)> = {
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(svc.check_rate_limit(&key, 3, 60, sliding).await.unwrap());
            }
            v
        };
        assert_eq!(
            got,
            [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
        );
        let code = if sliding { "sl" } else { "fw" };
        let full = svc.key(&format!("rl:{{{key}}}:{code}:0"));
        assert!(
            full.starts_with(svc.namespace().unwrap()),
            "namespace applied"
        );
        let pttl: i64 = raw(&svc, redis::cmd("PTTL").arg(&full)).await;
        assert!(pttl > 0 && pttl <= 60_000, "{full}: {pttl}");
    }
}

#[tokio::test]
async fn keys_carry_the_namespace_and_the_id_as_hash_tag() {
    let svc = test_service(Deployment::Standalone).await;
    let ns = svc.namespace().unwrap().to_string();
    let l = limiter(&svc, Algorithm::Gcra, 3, Duration::from_secs(1));
    assert_eq!(
        l.keys("user:1").unwrap(),
        [
            format!("{ns}:rl:t:{{user:1}}:gc:0"),
            format!("{ns}:rl:t:{{user:1}}:gc:req")
        ]
    );
    // Braces and percent signs in ids: one well-formed tag each, distinct keys.
    let ids = ["a}b", "{a}b", "a%7Db", "}", "{}", "%", "ü {x} ü"];
    let mut all = std::collections::HashSet::new();
    for id in ids {
        let keys = l.keys(id).unwrap();
        let tags: std::collections::HashSet<_> =
            keys.iter().map(|k| keys::hash_tag(k.as_bytes())).collect();
        assert_eq!(tags.len(), 1, "{id:?}: {keys:?}");
        assert!(tags.iter().all(Option::is_some));
        assert!(
            all.insert(keys[0].clone()),
            "{id:?} shares keys with another id"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ids_spread_over_primaries_and_are_limited_exactly() {
    let cluster = support::shared_cluster().await;
    let svc = test_service(Deployment::Cluster).await;
    let ids: Vec<String> = (0..40)
        .map(|i| format!("user:{i}"))
        .chain(["{x}:y}".into(), "}{".into()])
        .collect();
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 5, Duration::from_secs(600));
        let mut primaries = std::collections::BTreeSet::new();
        for id in &ids {
            let keys = l.keys(id).unwrap();
            let slots: std::collections::BTreeSet<u16> =
                keys.iter().map(|k| keys::slot(k.as_bytes())).collect();
            assert_eq!(slots.len(), 1, "{id}: one slot for all of one id's keys");
            let server_slot: u16 =
                raw(&svc, redis::cmd("CLUSTER").arg("KEYSLOT").arg(&keys[0])).await;
            assert_eq!(Some(&server_slot), slots.first());
            primaries.insert(cluster.primary_of_key(&keys[0]));
        }
        assert_eq!(primaries.len(), 3, "{algo:?}: ids land on every primary");
        let mut tasks = tokio::task::JoinSet::new();
        for round in 0..8 {
            for id in &ids {
                let (l, id) = (l.clone(), id.clone());
                tasks.spawn(async move {
                    (id.clone(), round, l.check(&id).await.unwrap().is_allowed())
                });
            }
        }
        let mut per_id = std::collections::HashMap::new();
        while let Some(r) = tasks.join_next().await {
            let (id, _, ok) = r.unwrap();
            *per_id.entry(id).or_insert(0) += u32::from(ok);
        }
        assert_eq!(per_id.len(), ids.len());
        assert!(per_id.values().all(|&n| n == 5), "{algo:?}: {per_id:?}");
    }
}

#[tokio::test]
async fn large_quotas_are_exact() {
    let svc = test_service(Deployment::Standalone).await;
    let at = |t: u64| CheckOptions::new().at(BASE_US + t);
    // GCRA, 50,000 per day (one per 1.728 s) with a burst of 3.
    let day = Quota::new(nz(50_000), Duration::from_secs(86_400)).with_burst(nz(3));
    let l = svc.rate_limiter("day", Algorithm::Gcra, day).unwrap();
    for left in [2, 1, 0] {
        let d = l.check_with("u", at(0)).await.unwrap();
        assert_eq!((d.is_allowed(), d.remaining()), (true, left));
    }
    let d = l.check_with("u", at(0)).await.unwrap();
    assert_eq!(
        (d.is_allowed(), d.retry_after()),
        (false, Some(Duration::from_millis(1728)))
    );
    assert!(!l.check_with("u", at(1_727_999)).await.unwrap().is_allowed());
    let d = l.check_with("u", at(1_728_000)).await.unwrap();
    assert_eq!((d.is_allowed(), d.remaining()), (true, 0));
    assert_eq!(d.reset_after(), Duration::from_millis(3 * 1728));

    // GCRA, 1.2 M per hour (one per 3 ms), the whole burst in one call.
    let hour = Quota::per_hour(nz(1_200_000));
    let l = svc.rate_limiter("hour", Algorithm::Gcra, hour).unwrap();
    let d = l.check_with("u", at(0).cost(1_200_000)).await.unwrap();
    assert_eq!((d.is_allowed(), d.remaining()), (true, 0));
    assert_eq!(d.reset_after(), Duration::from_secs(3600));
    assert!(!l.check_with("u", at(2_999)).await.unwrap().is_allowed());
    let d = l.check_with("u", at(3_000)).await.unwrap();
    assert_eq!((d.is_allowed(), d.remaining()), (true, 0));

    // The largest sliding log, filled by one call.
    let l = svc
        .rate_limiter("log", Algorithm::SlidingLog, Quota::per_hour(nz(100_000)))
        .unwrap();
    let started = Instant::now();
    let d = l.check_n("u", 100_000).await.unwrap();
    eprintln!(
        "one sliding-log check of cost 100,000: {:?}",
        started.elapsed()
    );
    assert_eq!((d.is_allowed(), d.remaining()), (true, 0));
    let n: u64 = raw(&svc, redis::cmd("ZCARD").arg(&l.keys("u").unwrap()[0])).await;
    assert_eq!(n, 100_000);
    assert!(!l.check("u").await.unwrap().is_allowed());
    assert!(l.reset("u").await.unwrap());
}

/// 14 per 2 s with a burst of 7: the emission interval is 1e6 / 7 µs (a
/// fraction the script keeps exactly). Under a steady overload the k-th unit
/// after the burst passes at exactly ceil(k × 1e6 / 7) µs and not 1 µs
/// earlier: a lost fraction would drift by a microsecond every 7 units.
#[tokio::test]
async fn gcra_spacing_is_exact_to_the_microsecond() {
    let svc = test_service(Deployment::Standalone).await;
    let q = Quota::new(nz(14), Duration::from_secs(2)).with_burst(nz(7));
    let l = svc.rate_limiter("frac", Algorithm::Gcra, q).unwrap();
    let at = |t: u64| CheckOptions::new().at(BASE_US + t);
    assert!(l.check_with("u", at(0).cost(7)).await.unwrap().is_allowed());
    for k in 1..=300u64 {
        let due = (k * 1_000_000).div_ceil(7);
        let early = l.peek_with("u", at(due - 1)).await.unwrap();
        assert!(
            !early.is_allowed(),
            "unit {k} passed at {} µs, before {due}",
            due - 1
        );
        let d = l.check_with("u", at(due)).await.unwrap();
        assert!(d.is_allowed(), "unit {k} refused at {due} µs");
    }
}

#[tokio::test]
async fn bad_input_is_rejected_before_any_round_trip() {
    let svc = test_service(Deployment::Standalone).await;
    let ns = svc.namespace().unwrap().to_string();
    let check = |r: redis_atomics::Result<(bool, u64)>, what: &str| {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation, "{what}: {e}");
        assert_eq!(e.attempts(), 0, "{what}: rejected before any round trip");
        let key = e.key().unwrap();
        assert!(
            key.starts_with(&format!("{ns}:rl:{{ip:1}}:")) && key.ends_with(":0"),
            "{what}: names the key the check uses: {e}"
        );
    };
    check(svc.check_rate_limit("ip:1", 0, 60, true).await, "limit 0");
    check(svc.check_rate_limit("ip:1", 5, 0, false).await, "window 0");
    check(
        svc.check_rate_limit("ip:1", 5, 10_000_000, true).await,
        "window too large",
    );
    check(
        svc.check_rate_limit("ip:1", 200_000, 60, true).await,
        "sliding log limit too large",
    );
    let braced = svc.with_namespace(format!("{{{ns}}}"));
    let e = braced
        .rate_limiter("b", Algorithm::Gcra, Quota::per_second(nz(1)))
        .unwrap_err();
    assert!(e.to_string().contains("one cluster slot"), "{e}");
    let e = braced
        .check_rate_limit("ip:1", 5, 60, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    assert_eq!(e.attempts(), 0, "{e}");
    let e = svc.check_rate_limit("", 5, 60, true).await.unwrap_err();
    assert!(e.to_string().contains("id is empty"), "{e}");
    assert_eq!(e.attempts(), 0, "{e}");

    let build = |algo, q: Quota| svc.rate_limiter("b", algo, q).map(|_| ()).unwrap_err();
    for (algo, q, what) in [
        (
            Algorithm::SlidingLog,
            Quota::new(nz(5), Duration::ZERO),
            "zero",
        ),
        (
            Algorithm::FixedWindow,
            Quota::new(nz(5), Duration::from_micros(1500)),
            "whole milliseconds",
        ),
        (
            Algorithm::SlidingWindow,
            Quota::new(nz(5), Duration::from_secs(200 * 86400)),
            "at most",
        ),
        (
            Algorithm::Gcra,
            Quota::new(nz(2_000_000_000), Duration::from_secs(1)),
            "limit must be at most",
        ),
        (
            Algorithm::FixedWindow,
            Quota::per_second(nz(5)).with_burst(nz(2)),
            "burst only applies",
        ),
        (
            // 999,983 is prime: no common factor with a day in µs.
            Algorithm::Gcra,
            Quota::new(nz(999_983), Duration::from_secs(86_400)),
            "computed exactly",
        ),
        (
            Algorithm::SlidingLog,
            Quota::per_hour(nz(100_001)),
            "at most 100000",
        ),
    ] {
        let e = build(algo, q);
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.to_string().contains(what), "{what}: {e}");
        assert!(e.key().unwrap().starts_with(&format!("{ns}:rl:b:")), "{e}");
    }
    assert!(
        svc.rate_limiter_builder("none", Algorithm::Gcra)
            .build()
            .is_err()
    );
    assert!(
        svc.rate_limiter("a{b}", Algorithm::Gcra, Quota::per_second(nz(1)))
            .is_err()
    );

    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 5, Duration::from_secs(60));
        let e = l.check("").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert_eq!(e.attempts(), 0, "{algo:?}: {e}");
        let e = l.check_n("zero", 0).await.unwrap_err();
        assert_eq!(e.attempts(), 0, "{algo:?}: {e}");
        assert!(
            e.to_string().contains("\"zero\"") && e.to_string().contains("peek"),
            "{e}"
        );
        let e = l
            .check_with("rid", CheckOptions::new().request_id(""))
            .await
            .unwrap_err();
        assert!(e.key().unwrap().contains("{rid}"), "{e}");
        assert_eq!(e.attempts(), 0, "{algo:?}: {e}");
        for at in [0, (1 << 52) + 1] {
            let e = l
                .check_with("rid", CheckOptions::new().at(at))
                .await
                .unwrap_err();
            assert!(e.to_string().contains("clock override"), "{e}");
            assert_eq!(e.attempts(), 0, "{algo:?}: {e}");
        }
        let d = l.check_n("big", 6).await.unwrap();
        assert!(d.is_never() && !d.is_allowed());
        for id in ["zero", "rid", "big"] {
            assert!(
                existing(&svc, &l.keys(id).unwrap()).await.is_empty(),
                "{algo:?} {id}: no key"
            );
        }
    }
    let mut keys = svc.connection();
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}:*"))
        .query_async(&mut keys)
        .await
        .unwrap();
    assert!(found.is_empty(), "bad input created {found:?}");
}

#[tokio::test]
async fn script_examples_run_under_redis_cli() {
    // Its own server: the Example lines use fixed, unprefixed keys.
    let server = support::RedisServer::start();
    for algo in Algorithm::ALL {
        let script = redis_atomics::scripts::get(algo.script()).unwrap();
        let example = script.example().unwrap();
        let cmd = example.replacen(
            "redis-cli",
            &format!("{} -p {}", support::cli_bin(), server.port()),
            1,
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let nums: Vec<i64> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
        // Two limits: {allowed, never, denied_by, 3 numbers per limit}; allowed.
        assert_eq!(
            (nums.len(), nums[0], nums[1], nums[2]),
            (9, 1, 0, 0),
            "{cmd}: {text}"
        );
    }
}
