//! Rate limiting: exactness under concurrency, a timeline against a reference
//! model, costs, retry_after, several quotas, denials not recorded, request
//! ids, TTLs, peek/reset, ids on a cluster, bad input; standalone and cluster.

#[path = "rate_limit/model.rs"]
mod model;
mod support;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use redis_atomics::rate_limit::{Algorithm, CheckOptions, Quota, RateLimiter};
use redis_atomics::{ErrorKind, RedisConfig, RedisService, keys};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

const BASE_US: u64 = 1_800_000_000_000_000; // a logical clock for `CheckOptions::at`

async fn connect(cluster: bool, namespace: &str) -> RedisService {
    let builder = if cluster {
        RedisConfig::builder().cluster_nodes(support::shared_cluster().await.nodes())
    } else {
        RedisConfig::builder().url(support::shared_server().await.url())
    };
    RedisService::connect(builder.namespace(namespace).build().unwrap())
        .await
        .unwrap()
}

async fn service(cluster: bool) -> RedisService {
    connect(
        cluster,
        &support::unique_prefix(&support::current_test_name()),
    )
    .await
}

fn limiter(svc: &RedisService, algo: Algorithm, limit: u32, window: Duration) -> RateLimiter {
    svc.rate_limiter("t", algo, Quota::new(nz(limit), window))
        .unwrap()
}

async fn raw<T: redis::FromRedisValue>(svc: &RedisService, cmd: &mut redis::Cmd) -> T {
    cmd.query_async(&mut svc.connection()).await.unwrap()
}

async fn existing(svc: &RedisService, keys: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for k in keys {
        let n: u64 = raw(svc, redis::cmd("EXISTS").arg(k)).await;
        if n > 0 {
            out.push(k.clone());
        }
    }
    out
}

/// Runs `$name(svc)` on a standalone server and on the shared cluster.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn standalone() {
                super::$name(false).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name(true).await
            }
        }
    };
}

both!(exactly_the_limit_under_concurrency);
async fn exactly_the_limit_under_concurrency(cluster: bool) {
    let ns = support::unique_prefix("conc");
    // Four services = four connections.
    let mut services = Vec::new();
    for _ in 0..4 {
        services.push(connect(cluster, &ns).await);
    }
    for algo in Algorithm::ALL {
        if algo == Algorithm::SlidingWindow {
            wait_clear_of_hour_boundary(&services[0]).await;
        }
        let limiters: Vec<RateLimiter> = services
            .iter()
            .map(|s| limiter(s, algo, 100, Duration::from_secs(3600)))
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let l = limiters[i % 4].clone();
            tasks.spawn(async move { l.check("user-1").await.unwrap() });
        }
        let mut allowed = 0;
        let mut remaining = std::collections::BTreeSet::new();
        while let Some(d) = tasks.join_next().await {
            let d = d.unwrap();
            if d.allowed {
                allowed += 1;
                assert!(
                    remaining.insert(d.remaining),
                    "{algo:?}: remaining repeated"
                );
            } else {
                assert_eq!((d.remaining, d.never), (0, false), "{algo:?}");
                assert!(d.retry_after.unwrap() > Duration::ZERO, "{algo:?}");
            }
        }
        assert_eq!(allowed, 100, "{algo:?}");
        assert_eq!(
            remaining,
            (0..100).collect(),
            "{algo:?}: 99, 98, …, 0 each once"
        );
        assert!(!limiters[0].peek("user-1").await.unwrap().allowed);
    }
}

/// The sliding-window counter aligns windows to the clock; a run straddling a
/// boundary would weigh the previous window. Wait until we are clear of one.
async fn wait_clear_of_hour_boundary(svc: &RedisService) {
    let (secs, _): (u64, u64) = raw(svc, &mut redis::cmd("TIME")).await;
    let into = secs % 3600;
    if into > 3590 {
        tokio::time::sleep(Duration::from_secs(3600 - into + 1)).await;
    }
}

both!(timeline_matches_the_reference_model);
async fn timeline_matches_the_reference_model(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let gcra = algo == Algorithm::Gcra;
        let lims = vec![
            model::Lim {
                limit: 5,
                window_ms: 1000,
                burst: if gcra { 3 } else { 5 },
            },
            model::Lim {
                limit: 12,
                window_ms: 3000,
                burst: 12,
            },
        ];
        let mut builder = svc.rate_limiter_builder("tl", algo);
        for l in &lims {
            let mut q = Quota::new(nz(l.limit as u32), Duration::from_millis(l.window_ms));
            if gcra {
                q = q.with_burst(nz(l.burst as u32));
            }
            builder = builder.quota(q);
        }
        let limiter = builder.build().unwrap();
        let mut model = model::Model::new(algo, lims);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let started = Instant::now();
        let mut now = BASE_US;
        let (mut allowed, mut denied) = (0, 0);
        for step in 0..300 {
            let dt: u64 = match rng.random_range(0..10) {
                0..=1 => 0,
                2..=5 => rng.random_range(1..60_000),
                6..=8 => rng.random_range(60_000..400_000),
                _ => rng.random_range(400_000..2_500_000),
            };
            // Never behind the wall clock, so no key expires before it is stale.
            now = (now + dt).max(BASE_US + started.elapsed().as_micros() as u64);
            let cost = if rng.random_bool(0.7) {
                1
            } else {
                rng.random_range(2..=3)
            };
            let check = rng.random_bool(0.8);
            let opts = CheckOptions::new().cost(cost).at(now);
            let d = if check {
                limiter.check_with("u", opts).await.unwrap()
            } else {
                limiter.peek_with("u", opts).await.unwrap()
            };
            let want = model.step(i128::from(now), u64::from(cost), check);
            let got = model::Expect {
                allowed: d.allowed,
                denied_by: d.denied_by,
                limits: d
                    .limits
                    .iter()
                    .map(|l| {
                        let r = l.retry_after.map_or(0, |r| r.as_millis() as i128);
                        (l.remaining, r, l.reset_after.as_millis() as i128)
                    })
                    .collect(),
            };
            assert_eq!(
                got,
                want,
                "{algo:?} step {step} at +{} us cost {cost} check {check}",
                now - BASE_US
            );
            assert_eq!(d.remaining, want.limits.iter().map(|l| l.0).min().unwrap());
            if d.allowed {
                allowed += 1;
            } else {
                denied += 1;
                let r = want.limits.iter().map(|l| l.1).max().unwrap();
                assert_eq!(d.retry_after, Some(Duration::from_millis(r as u64)));
            }
        }
        assert!(
            allowed > 50 && denied > 20,
            "{algo:?}: a timeline that exercises both ({allowed}/{denied})"
        );
    }
}

both!(cost_above_one);
async fn cost_above_one(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 10, Duration::from_secs(3600));
        let at = CheckOptions::new().at(BASE_US);
        let d = l.check_with("c", at.clone().cost(3)).await.unwrap();
        assert_eq!((d.allowed, d.remaining, d.limit), (true, 7, 10), "{algo:?}");
        let d = l.check_with("c", at.clone().cost(6)).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 1), "{algo:?}");
        let d = l.check_with("c", at.clone().cost(2)).await.unwrap();
        assert_eq!(
            (d.allowed, d.remaining, d.never),
            (false, 1, false),
            "{algo:?}: not yet"
        );
        assert!(d.retry_after.is_some(), "{algo:?}");
        let d = l.check_with("c", at.clone().cost(1)).await.unwrap();
        assert_eq!(
            (d.allowed, d.remaining),
            (true, 0),
            "{algo:?}: the smaller cost still fits"
        );
        // More than the limit can never pass: data, not an error, and distinct from "not yet".
        let d = l.check_n("c2", 11).await.unwrap();
        assert_eq!(
            (d.allowed, d.never, d.retry_after, d.denied_by),
            (false, true, None, Some(0))
        );
        assert!(d.limits[0].never, "{algo:?}");
    }
}

both!(retry_after_is_honoured);
async fn retry_after_is_honoured(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 4, Duration::from_millis(1000));
        for _ in 0..4 {
            assert!(
                l.check_with("r", CheckOptions::new().at(BASE_US))
                    .await
                    .unwrap()
                    .allowed
            );
        }
        let now = BASE_US + 100_000;
        let d = l
            .check_with("r", CheckOptions::new().at(now))
            .await
            .unwrap();
        assert!(!d.allowed && !d.never, "{algo:?}");
        let wait = d.retry_after.unwrap().as_micros() as u64;
        assert!(wait > 0 && wait <= 2_000_000, "{algo:?}: {wait}");
        assert_eq!(d.reset_after >= d.retry_after.unwrap(), true, "{algo:?}");
        // Well before it (and just before it): still denied, and that denial changes nothing.
        for early in [now + wait / 2, now + wait - 1000] {
            let e = l
                .check_with("r", CheckOptions::new().at(early))
                .await
                .unwrap();
            assert!(!e.allowed, "{algo:?} at {early}");
        }
        let ok = l
            .check_with("r", CheckOptions::new().at(now + wait))
            .await
            .unwrap();
        assert!(ok.allowed, "{algo:?}: allowed once retry_after has passed");
    }
}

both!(several_quotas_all_or_nothing);
async fn several_quotas_all_or_nothing(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let l = svc
            .rate_limiter_builder("multi", algo)
            .quota(Quota::per_hour(nz(10)))
            .quota(Quota::per_hour(nz(3)))
            .build()
            .unwrap();
        let at = CheckOptions::new().at(BASE_US);
        for _ in 0..3 {
            assert!(l.check_with("m", at.clone()).await.unwrap().allowed);
        }
        for _ in 0..5 {
            let d = l.check_with("m", at.clone()).await.unwrap();
            assert_eq!(
                (d.allowed, d.denied_by, d.limit),
                (false, Some(1), 3),
                "{algo:?}"
            );
            assert_eq!(
                d.limits[0].retry_after, None,
                "{algo:?}: quota 0 alone fits"
            );
        }
        // The denials consumed nothing from quota 0: 7 of 10 are left there.
        let now = l.peek_with("m", at.clone().cost(0)).await.unwrap();
        assert_eq!(
            (now.limits[0].remaining, now.limits[1].remaining),
            (7, 0),
            "{algo:?}"
        );
        // A cost that only quota 0 could take is refused as "never" by quota 1.
        let d = l.check_with("m", at.clone().cost(5)).await.unwrap();
        assert_eq!((d.never, d.denied_by), (true, Some(1)), "{algo:?}");
    }
}

both!(denied_requests_are_not_recorded);
async fn denied_requests_are_not_recorded(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 5, Duration::from_millis(1000));
        // 10x the limit for two windows; a twin id gets only the allowed requests.
        let (mut now, mut allowed) = (BASE_US, 0);
        for _ in 0..100 {
            let d = l
                .check_with("flood", CheckOptions::new().at(now))
                .await
                .unwrap();
            if d.allowed {
                allowed += 1;
                assert!(
                    l.check_with("twin", CheckOptions::new().at(now))
                        .await
                        .unwrap()
                        .allowed
                );
            }
            now += 20_000;
        }
        assert!((8..=16).contains(&allowed), "{algo:?}: {allowed}");
        for later in [now, now + 300_000, now + 1_000_000, now + 2_000_000] {
            let f = l
                .peek_with("flood", CheckOptions::new().at(later).cost(0))
                .await
                .unwrap();
            let t = l
                .peek_with("twin", CheckOptions::new().at(later).cost(0))
                .await
                .unwrap();
            assert_eq!(f, t, "{algo:?}: the denials left no trace");
        }
        // One request a window after the flood: allowed (two for the sliding
        // counter, which weighs the previous aligned window).
        let after = if algo == Algorithm::SlidingWindow {
            2_000_000
        } else {
            1_000_000
        };
        let d = l
            .check_with("flood", CheckOptions::new().at(now + after))
            .await
            .unwrap();
        assert!(d.allowed, "{algo:?}");
    }
}

both!(same_microsecond_requests_all_count);
async fn same_microsecond_requests_all_count(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 10, Duration::from_secs(60));
        let at = CheckOptions::new().at(BASE_US + 7);
        for i in 1..=4 {
            let d = l.check_with("same", at.clone()).await.unwrap();
            assert_eq!((d.allowed, d.remaining), (true, 10 - i), "{algo:?}");
        }
        let d = l.check_with("same", at.clone().cost(3)).await.unwrap();
        assert_eq!(d.remaining, 3, "{algo:?}");
        if algo == Algorithm::SlidingLog {
            let key = &l.keys("same").unwrap()[0];
            let n: u64 = raw(&svc, redis::cmd("ZCARD").arg(key)).await;
            assert_eq!(n, 7, "one unique member per unit");
        }
    }
}

both!(a_request_id_is_counted_once);
async fn a_request_id_is_counted_once(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 3, Duration::from_secs(60));
        let at = |t: u64, id: &str| CheckOptions::new().at(BASE_US + t).request_id(id);
        let first = l.check_with("i", at(0, "req-1").cost(2)).await.unwrap();
        assert_eq!((first.allowed, first.remaining), (true, 1), "{algo:?}");
        for t in [0, 10, 1000] {
            let again = l.check_with("i", at(t, "req-1").cost(2)).await.unwrap();
            assert_eq!(
                (again.allowed, again.remaining),
                (true, 1),
                "{algo:?}: a replay consumes nothing"
            );
        }
        assert!(l.check_with("i", at(2000, "req-2")).await.unwrap().allowed);
        let denied = l.check_with("i", at(3000, "req-3")).await.unwrap();
        assert!(!denied.allowed, "{algo:?}: a new id counts");
        // Denials are not remembered: once there is room, the same id is counted.
        let d = l.check_with("i", at(120_000_000, "req-3")).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 2), "{algo:?}");
        let d = l.check_with("i", at(120_000_001, "req-3")).await.unwrap();
        assert_eq!(
            (d.allowed, d.remaining),
            (true, 2),
            "{algo:?}: and then counted once"
        );
    }
}

both!(every_key_has_a_ttl_close_to_its_window);
async fn every_key_has_a_ttl_close_to_its_window(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let l = svc
            .rate_limiter_builder("ttl", algo)
            .quota(Quota::new(nz(5), Duration::from_millis(2000)))
            .quota(Quota::new(nz(50), Duration::from_millis(8000)))
            .build()
            .unwrap();
        for i in 0..8 {
            l.check_with("k", CheckOptions::new().request_id(format!("r{i}")))
                .await
                .unwrap();
        }
        let keys = l.keys("k").unwrap();
        assert_eq!(
            existing(&svc, &keys).await,
            keys,
            "{algo:?}: every key was written"
        );
        let factor = if algo == Algorithm::SlidingWindow {
            2
        } else {
            1
        };
        for (key, window) in keys.iter().zip([2000, 8000, 8000]) {
            let pttl: i64 = raw(&svc, redis::cmd("PTTL").arg(key)).await;
            assert!(
                pttl > 0 && pttl <= factor * window + 10,
                "{algo:?} {key}: PTTL {pttl}"
            );
        }
    }
}

both!(peek_does_not_consume_and_reset_clears);
async fn peek_does_not_consume_and_reset_clears(cluster: bool) {
    let svc = service(cluster).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 3, Duration::from_secs(60));
        for _ in 0..10 {
            let p = l.peek("p").await.unwrap();
            assert_eq!((p.allowed, p.remaining), (true, 2), "{algo:?}");
        }
        assert!(
            existing(&svc, &l.keys("p").unwrap()).await.is_empty(),
            "peek writes nothing"
        );
        for left in [2, 1, 0] {
            assert_eq!(l.check("p").await.unwrap().remaining, left, "{algo:?}");
        }
        let p = l.peek("p").await.unwrap();
        assert!(!p.allowed && p.retry_after.is_some(), "{algo:?}");
        assert!(l.reset("p").await.unwrap());
        assert!(existing(&svc, &l.keys("p").unwrap()).await.is_empty());
        assert!(!l.reset("p").await.unwrap(), "nothing left to clear");
        let d = l.check("p").await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 2), "{algo:?}");
    }
}

#[tokio::test]
async fn the_seed_call() {
    let svc = service(false).await;
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
    let svc = service(false).await;
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
    let svc = service(true).await;
    let l = limiter(&svc, Algorithm::SlidingLog, 5, Duration::from_secs(600));
    let ids: Vec<String> = (0..40)
        .map(|i| format!("user:{i}"))
        .chain(["{x}:y}".into(), "}{".into()])
        .collect();
    let mut primaries = std::collections::BTreeSet::new();
    for id in &ids {
        let keys = l.keys(id).unwrap();
        let slots: std::collections::BTreeSet<u16> =
            keys.iter().map(|k| keys::slot(k.as_bytes())).collect();
        assert_eq!(slots.len(), 1, "{id}: one slot for all of one id's keys");
        let server_slot: u16 = raw(&svc, redis::cmd("CLUSTER").arg("KEYSLOT").arg(&keys[0])).await;
        assert_eq!(Some(&server_slot), slots.first());
        primaries.insert(cluster.primary_of_key(&keys[0]));
    }
    assert_eq!(primaries.len(), 3, "ids land on every primary");
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..8 {
        for id in &ids {
            let (l, id) = (l.clone(), id.clone());
            tasks.spawn(async move { (id.clone(), round, l.check(&id).await.unwrap().allowed) });
        }
    }
    let mut per_id = std::collections::HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (id, _, ok) = r.unwrap();
        *per_id.entry(id).or_insert(0) += u32::from(ok);
    }
    assert!(per_id.values().all(|&n| n == 5), "{per_id:?}");
}

#[tokio::test]
async fn bad_input_is_rejected_before_any_round_trip() {
    let svc = service(false).await;
    let ns = svc.namespace().unwrap().to_string();
    let check = |r: redis_atomics::Result<(bool, u64)>, what: &str| {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation, "{what}: {e}");
        assert!(
            e.key().unwrap().contains("ip:1"),
            "{what}: names the key: {e}"
        );
    };
    check(svc.check_rate_limit("ip:1", 0, 60, true).await, "limit 0");
    check(svc.check_rate_limit("ip:1", 5, 0, false).await, "window 0");
    check(
        svc.check_rate_limit("ip:1", 5, 10_000_000, true).await,
        "window too large",
    );
    let e = svc.check_rate_limit("", 5, 60, true).await.unwrap_err();
    assert!(e.to_string().contains("id is empty"), "{e}");

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
            Algorithm::Gcra,
            Quota::per_hour(nz(5)).with_burst(nz(2_000_000)),
            "too large",
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
        let e = l.check_n("zero", 0).await.unwrap_err();
        assert!(
            e.to_string().contains("\"zero\"") && e.to_string().contains("peek"),
            "{e}"
        );
        let e = l
            .check_with("rid", CheckOptions::new().request_id(""))
            .await
            .unwrap_err();
        assert!(e.key().unwrap().contains("{rid}"), "{e}");
        let d = l.check_n("big", 6).await.unwrap();
        assert!(d.never && !d.allowed);
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
