//! Rate limiting: exactness under concurrency, a timeline against a reference
//! model, costs, retry_after, several quotas, denials not recorded, request
//! ids, TTLs, peek/reset, ids on a cluster, bad input; standalone and cluster.

#[path = "rate_limit/model.rs"]
mod model;
mod support;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use redis_atomics::rate_limit::{Algorithm, CheckOptions, Decision, Quota, RateLimiter};
use redis_atomics::{ErrorKind, RedisConfig, RedisService, keys};
use support::{Deployment, existing, on_both, raw, service_in, test_service};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

const BASE_US: u64 = 1_800_000_000_000_000; // a logical clock for `CheckOptions::at`

fn limiter(svc: &RedisService, algo: Algorithm, limit: u32, window: Duration) -> RateLimiter {
    svc.rate_limiter("t", algo, Quota::new(nz(limit), window))
        .unwrap()
}

#[path = "rate_limit/inputs.rs"]
mod inputs;
#[path = "rate_limit/state.rs"]
mod state;

on_both!(exactly_the_limit_under_concurrency);
async fn exactly_the_limit_under_concurrency(on: Deployment) {
    let ns = support::unique_prefix("conc");
    // Four services = four connections.
    let mut services = Vec::new();
    for _ in 0..4 {
        services.push(service_in(on, &ns).await);
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
            if d.is_allowed() {
                allowed += 1;
                assert!(
                    remaining.insert(d.remaining()),
                    "{algo:?}: remaining repeated"
                );
            } else {
                assert_eq!((d.remaining(), d.is_never()), (0, false), "{algo:?}");
                assert!(d.retry_after().unwrap() > Duration::ZERO, "{algo:?}");
            }
        }
        assert_eq!(allowed, 100, "{algo:?}");
        assert_eq!(
            remaining,
            (0..100).collect(),
            "{algo:?}: 99, 98, …, 0 each once"
        );
        assert!(!limiters[0].peek("user-1").await.unwrap().is_allowed());
    }
}

/// The sliding-window counter aligns windows to the clock; a run straddling a
/// boundary would weigh the previous window. Wait until we are clear of one.
async fn wait_clear_of_hour_boundary(svc: &RedisService) {
    let (secs, _): (u64, u64) = raw(svc, &redis::cmd("TIME")).await;
    let into = secs % 3600;
    if into > 3590 {
        tokio::time::sleep(Duration::from_secs(3600 - into + 1)).await;
    }
}

on_both!(timeline_matches_the_reference_model);
async fn timeline_matches_the_reference_model(on: Deployment) {
    let svc = test_service(on).await;
    let lim = |limit, window_ms, burst| model::Lim {
        limit,
        window_ms,
        burst,
    };
    // Quotas as (limit, window ms, GCRA burst).
    type Quotas = Vec<(u64, u64, u64)>;
    // (limiter name, quotas, seed).
    let sets: [(&str, Quotas, u64); 3] = [
        // 14 per 3 s: GCRA's emission interval is 214,285 + 5/7 µs, so its
        // stored fraction is exercised (gcd(14, 3e6) = 2).
        ("tl", vec![(5, 1000, 3), (14, 3000, 12)], 5),
        // The same quota twice: every denial is an exact tie, and the
        // lowest index must win.
        ("tie", vec![(3, 1000, 3), (3, 1000, 3)], 6),
        // Waits that may round to the same millisecond but differ in
        // microseconds (windows 21 ms apart, steps ≥ 20 ms apart; GCRA
        // intervals of 500 ms, 340.33 ms and 100.14 ms): the longer wins.
        // How often depends on the real-time floor of the steps, so only
        // `a_denial_names_the_longest_exact_wait` asserts near ties.
        ("near", vec![(2, 1000, 2), (3, 1021, 2), (7, 701, 2)], 7),
    ];
    for algo in Algorithm::ALL {
        let gcra = algo == Algorithm::Gcra;
        let (mut exact_ties, mut near_ties) = (0, 0);
        for (name, quotas, seed) in &sets {
            let lims: Vec<model::Lim> = quotas
                .iter()
                .map(|&(l, w, b)| lim(l, w, if gcra { b } else { l }))
                .collect();
            let mut builder = svc.rate_limiter_builder(name, algo);
            for l in &lims {
                let mut q = Quota::new(nz(l.limit as u32), Duration::from_millis(l.window_ms));
                if gcra {
                    q = q.with_burst(nz(l.burst as u32));
                }
                builder = builder.quota(q);
            }
            let limiter = builder.build().unwrap();
            let mut model = model::Model::new(algo, lims);
            timeline(&limiter, &mut model, *seed).await;
            for (i, (peak, bound)) in model.window_peaks().into_iter().enumerate() {
                assert!(
                    peak <= bound,
                    "{algo:?} {name} quota {i}: {peak} within one window, over the documented {bound}"
                );
            }
            exact_ties += model.exact_ties;
            near_ties += model.near_ties;
        }
        eprintln!("{algo:?}: {exact_ties} exact ties, {near_ties} ties to the millisecond");
        assert!(exact_ties > 0, "{algo:?}: no exact tie exercised");
    }
}

/// 300 random checks and peeks of `limiter` on a logical clock, each
/// compared with `model`: allowed, never, denied_by and every quota's
/// remaining, retry_after, reset_after and never flag, exactly.
async fn timeline(limiter: &RateLimiter, model: &mut model::Model, seed: u64) {
    let algo = limiter.algorithm();
    let max_cost = model.lims.iter().map(|l| l.max_cost(algo)).max().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let (mut now, mut ahead) = (BASE_US, 0);
    let (mut allowed, mut denied, mut never) = (0, 0, 0);
    for step in 0..300 {
        let dt: u64 = match rng.random_range(0..10) {
            0..=1 => 0,
            2..=5 => rng.random_range(1..60_000),
            6..=8 => rng.random_range(60_000..400_000),
            _ => rng.random_range(400_000..2_500_000),
        };
        // Keys expire on the wall clock (PEXPIRE, see `CheckOptions::at`):
        // the logical clock must advance at least as fast as it between any
        // two steps (+20 ms of slack per step for the request's own
        // latency), or a key could expire before it is logically stale.
        // (Same-microsecond requests have their own test.)
        let floor = BASE_US + started.elapsed().as_micros() as u64 + ahead + 20_000;
        now = (now + dt).max(floor);
        ahead = now - BASE_US - started.elapsed().as_micros() as u64;
        let cost = match rng.random_range(0..100) {
            0..=69 => 1,
            70..=96 => rng.random_range(2..=3),
            // Above some quota's limit: "never", decided locally.
            _ => rng.random_range(3..=max_cost as u32 + 1),
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
            allowed: d.is_allowed(),
            never: d.is_never(),
            denied_by: d.denied_by(),
            limits: d
                .limits()
                .iter()
                .map(|l| {
                    let r = l.retry_after.map_or(0, |r| r.as_millis() as i128);
                    (l.remaining, r, l.reset_after.as_millis() as i128, l.never)
                })
                .collect(),
        };
        assert_eq!(
            got,
            want,
            "{algo:?} {} step {step} at +{} us cost {cost} check {check}",
            limiter.name(),
            now - BASE_US
        );
        assert_eq!(
            d.remaining(),
            want.limits.iter().map(|l| l.0).min().unwrap()
        );
        match d {
            Decision::Allowed { .. } => allowed += 1,
            Decision::Denied { retry_after, .. } => {
                denied += 1;
                let r = want.limits.iter().map(|l| l.1).max().unwrap();
                assert_eq!(retry_after, Duration::from_millis(r as u64));
            }
            Decision::Never { .. } => never += 1,
        }
    }
    assert!(
        allowed > 50 && denied > 20 && never > 0,
        "{algo:?}: a timeline that exercises all three ({allowed}/{denied}/{never})"
    );
}

on_both!(cost_above_one);
async fn cost_above_one(on: Deployment) {
    let svc = test_service(on).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 10, Duration::from_secs(3600));
        let at = CheckOptions::new().at(BASE_US);
        let d = l.check_with("c", at.clone().cost(3)).await.unwrap();
        assert_eq!(
            (d.is_allowed(), d.remaining(), d.limit()),
            (true, 7, 10),
            "{algo:?}"
        );
        let d = l.check_with("c", at.clone().cost(6)).await.unwrap();
        assert_eq!((d.is_allowed(), d.remaining()), (true, 1), "{algo:?}");
        let d = l.check_with("c", at.clone().cost(2)).await.unwrap();
        assert_eq!(
            (d.is_allowed(), d.remaining(), d.is_never()),
            (false, 1, false),
            "{algo:?}: not yet"
        );
        assert!(d.retry_after().is_some(), "{algo:?}");
        let d = l.check_with("c", at.clone().cost(1)).await.unwrap();
        assert_eq!(
            (d.is_allowed(), d.remaining()),
            (true, 0),
            "{algo:?}: the smaller cost still fits"
        );
        // More than the limit can never pass: data, not an error, and distinct from "not yet".
        let d = l.check_n("c2", 11).await.unwrap();
        assert_eq!(
            (d.is_allowed(), d.is_never(), d.retry_after(), d.denied_by()),
            (false, true, None, Some(0))
        );
        assert!(d.limits()[0].never, "{algo:?}");
    }
    // GCRA: a cost above the burst (not the limit) can never pass.
    let q = Quota::per_hour(nz(10)).with_burst(nz(2));
    let l = svc.rate_limiter("burst", Algorithm::Gcra, q).unwrap();
    assert!(l.check_n("b", 3).await.unwrap().is_never());
    let d = l.check_n("b", 2).await.unwrap();
    assert_eq!((d.is_allowed(), d.remaining()), (true, 0));
    let d = l.check("b").await.unwrap();
    assert!(!d.is_allowed() && !d.is_never());
    let wait = d.retry_after().unwrap();
    let six_min = Duration::from_secs(360);
    assert!(
        wait > six_min - Duration::from_secs(10) && wait <= six_min,
        "one unit per 6 min: {wait:?}"
    );
}

on_both!(retry_after_is_honoured);
async fn retry_after_is_honoured(on: Deployment) {
    let svc = test_service(on).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 4, Duration::from_millis(1000));
        for _ in 0..4 {
            assert!(
                l.check_with("r", CheckOptions::new().at(BASE_US))
                    .await
                    .unwrap()
                    .is_allowed()
            );
        }
        let now = BASE_US + 100_000;
        let d = l
            .check_with("r", CheckOptions::new().at(now))
            .await
            .unwrap();
        assert!(!d.is_allowed() && !d.is_never(), "{algo:?}");
        let wait = d.retry_after().unwrap().as_micros() as u64;
        assert!(wait > 0 && wait <= 2_000_000, "{algo:?}: {wait}");
        assert!(d.reset_after() >= d.retry_after().unwrap(), "{algo:?}");
        // Well before it (and just before it): still denied, and that denial changes nothing.
        for early in [now + wait / 2, now + wait - 1000] {
            let e = l
                .check_with("r", CheckOptions::new().at(early))
                .await
                .unwrap();
            assert!(!e.is_allowed(), "{algo:?} at {early}");
        }
        let ok = l
            .check_with("r", CheckOptions::new().at(now + wait))
            .await
            .unwrap();
        assert!(
            ok.is_allowed(),
            "{algo:?}: allowed once retry_after has passed"
        );
    }
}

on_both!(several_quotas_all_or_nothing);
async fn several_quotas_all_or_nothing(on: Deployment) {
    let svc = test_service(on).await;
    for algo in Algorithm::ALL {
        let l = svc
            .rate_limiter_builder("multi", algo)
            .quota(Quota::per_hour(nz(10)))
            .quota(Quota::per_hour(nz(3)))
            .build()
            .unwrap();
        let at = CheckOptions::new().at(BASE_US);
        for _ in 0..3 {
            assert!(l.check_with("m", at.clone()).await.unwrap().is_allowed());
        }
        for _ in 0..5 {
            let d = l.check_with("m", at.clone()).await.unwrap();
            assert_eq!(
                (d.is_allowed(), d.denied_by(), d.limit()),
                (false, Some(1), 3),
                "{algo:?}"
            );
            assert_eq!(
                d.limits()[0].retry_after,
                None,
                "{algo:?}: quota 0 alone fits"
            );
        }
        // The denials consumed nothing from quota 0: 7 of 10 are left there.
        let now = l.peek_with("m", at.clone().cost(0)).await.unwrap();
        assert_eq!(
            (now.limits()[0].remaining, now.limits()[1].remaining),
            (7, 0),
            "{algo:?}"
        );
        // A cost that only quota 0 could take is refused as "never" by quota 1.
        let d = l.check_with("m", at.clone().cost(5)).await.unwrap();
        assert_eq!((d.is_never(), d.denied_by()), (true, Some(1)), "{algo:?}");
        let flags = |d: &Decision| d.limits().iter().map(|l| l.never).collect::<Vec<_>>();
        assert_eq!(flags(&d), [false, true], "{algo:?}");
        // A cost above both: every quota it exceeds is marked, the first names it.
        let d = l.check_with("m", at.clone().cost(11)).await.unwrap();
        assert!(
            matches!(
                d,
                Decision::Never {
                    denied_by: 0,
                    max_cost: 3,
                    limit: 10,
                    ..
                }
            ),
            "{algo:?}: {d:?}"
        );
        assert_eq!(flags(&d), [true, true], "{algo:?}");
        // The same as the script's own answer (asked directly, past the local check).
        for cost in [5, 11] {
            let local = l.check_with("m", at.clone().cost(cost)).await.unwrap();
            let script = script_reply(&svc, &l, "m", cost, BASE_US).await;
            let never: Vec<bool> = script[3..].chunks(3).map(|q| q[1] == -1).collect();
            assert_eq!(
                (script[1] == 1, script[2] - 1, never),
                (true, local.denied_by().unwrap() as i64, flags(&local)),
                "{algo:?} cost {cost}: {script:?}"
            );
        }
    }
}

/// The raw reply of `limiter`'s script for a peek of `cost` at `at`, sent
/// with `EVAL` (so a cost the client would refuse reaches the script).
async fn script_reply(
    svc: &RedisService,
    limiter: &RateLimiter,
    id: &str,
    cost: u32,
    at: u64,
) -> Vec<i64> {
    let algo = limiter.algorithm();
    let script = redis_atomics::scripts::get(algo.script()).unwrap();
    let keys = limiter.keys(id).unwrap();
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script.source()).arg(keys.len()).arg(&keys);
    cmd.arg(at).arg(cost).arg("").arg("peek");
    for q in limiter.quotas() {
        cmd.arg(q.limit().get()).arg(q.window().as_millis() as u64);
        if algo == Algorithm::Gcra {
            cmd.arg(q.burst().get());
        }
    }
    raw(svc, &cmd).await
}

on_both!(a_denial_names_the_longest_exact_wait);
async fn a_denial_names_the_longest_exact_wait(on: Deployment) {
    let svc = test_service(on).await;
    let at = |t: u64| CheckOptions::new().at(BASE_US + t);
    // GCRA, burst 1: one unit per 100,000 µs (quota 0) and per
    // 100,142.857… µs (quota 1, 7 per 701 ms). Waits are compared on the
    // exact microsecond, not on the rounded millisecond.
    let l = svc
        .rate_limiter_builder("near", Algorithm::Gcra)
        .quota(Quota::new(nz(10), Duration::from_millis(1000)).with_burst(nz(1)))
        .quota(Quota::new(nz(7), Duration::from_millis(701)).with_burst(nz(1)))
        .build()
        .unwrap();
    assert!(l.check_with("u", at(0)).await.unwrap().is_allowed());
    // At 1 µs: 99,999 µs (100 ms) and 100,142 µs (101 ms).
    let d = l.check_with("u", at(1)).await.unwrap();
    let waits: Vec<_> = d.limits().iter().map(|q| q.retry_after).collect();
    let ms = |n| Some(Duration::from_millis(n));
    assert_eq!(waits, [ms(100), ms(101)], "{d:?}");
    // At 500 µs: 99,500 µs and 99,643 µs, both 100 ms once rounded.
    let d = l.check_with("u", at(500)).await.unwrap();
    let waits: Vec<_> = d.limits().iter().map(|q| q.retry_after).collect();
    assert_eq!(waits, [ms(100), ms(100)], "rounded alike: {d:?}");
    assert!(
        matches!(d, Decision::Denied { denied_by: 1, .. }),
        "quota 1 waits 143 µs longer: {d:?}"
    );
    // Sliding log and fixed window, 1 per 1000 ms and 2 per 2001 ms: units
    // at 0 and 1,000,400 µs; at 1,500,000 µs quota 0 waits 500,400 µs (until
    // 2,000,400) and quota 1 501,000 µs (until 2,001,000): 501 ms each.
    for algo in [Algorithm::SlidingLog, Algorithm::FixedWindow] {
        let l = svc
            .rate_limiter_builder("near", algo)
            .quota(Quota::new(nz(1), Duration::from_millis(1000)))
            .quota(Quota::new(nz(2), Duration::from_millis(2001)))
            .build()
            .unwrap();
        for t in [0, 1_000_400] {
            assert!(l.check_with("u", at(t)).await.unwrap().is_allowed());
        }
        let d = l.check_with("u", at(1_500_000)).await.unwrap();
        let waits: Vec<_> = d.limits().iter().map(|q| q.retry_after).collect();
        assert_eq!(waits, [ms(501), ms(501)], "{algo:?}: {d:?}");
        assert_eq!(d.denied_by(), Some(1), "{algo:?}: 600 µs longer: {d:?}");
    }
    // Sliding-window counter, 2001 and 2000 per second: 2000 in the last
    // microsecond of one second; at the start of the next, a cost of 2
    // fits once the previous second weighs 999,500 ppm (after 500 µs) for
    // quota 0, 999,000 ppm (after 1000 µs) for quota 1: 1 ms each.
    let l = svc
        .rate_limiter_builder("near", Algorithm::SlidingWindow)
        .quota(Quota::new(nz(2001), Duration::from_secs(1)))
        .quota(Quota::new(nz(2000), Duration::from_secs(1)))
        .build()
        .unwrap();
    let d = l.check_with("u", at(999_999).cost(2000)).await.unwrap();
    assert!(d.is_allowed(), "{d:?}");
    let d = l.check_with("u", at(1_000_000).cost(2)).await.unwrap();
    let waits: Vec<_> = d.limits().iter().map(|q| q.retry_after).collect();
    assert_eq!(waits, [ms(1), ms(1)], "{d:?}");
    assert_eq!(d.denied_by(), Some(1), "500 µs longer: {d:?}");
    // An exact tie: the same quota twice; the lowest index names it.
    let q = Quota::new(nz(1), Duration::from_millis(1000));
    for algo in Algorithm::ALL {
        let l = svc
            .rate_limiter_builder("tie", algo)
            .quota(q)
            .quota(q)
            .build()
            .unwrap();
        assert!(l.check_with("u", at(0)).await.unwrap().is_allowed());
        let d = l.check_with("u", at(1)).await.unwrap();
        assert_eq!(d.denied_by(), Some(0), "{algo:?}: {d:?}");
    }
}

on_both!(denied_requests_are_not_recorded);
async fn denied_requests_are_not_recorded(on: Deployment) {
    let svc = test_service(on).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 5, Duration::from_millis(1000));
        // 10x the limit for two windows; a twin id gets only the allowed requests.
        let (mut now, mut allowed) = (BASE_US, 0);
        for _ in 0..100 {
            let d = l
                .check_with("flood", CheckOptions::new().at(now))
                .await
                .unwrap();
            if d.is_allowed() {
                allowed += 1;
                assert!(
                    l.check_with("twin", CheckOptions::new().at(now))
                        .await
                        .unwrap()
                        .is_allowed()
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
        // The flood passes again exactly when the twin does: not a millisecond
        // later (a recorded denial would push it back), not earlier. At the
        // flood's last request the twin is limited too.
        let last = now - 20_000;
        let twin = l
            .peek_with("twin", CheckOptions::new().at(last))
            .await
            .unwrap();
        let wait = twin.retry_after().map_or(0, |w| w.as_micros() as u64);
        assert!(
            wait > 0,
            "{algo:?}: the twin is limited at the last flood request"
        );
        let early = l
            .peek_with("flood", CheckOptions::new().at(last + wait - 1000))
            .await
            .unwrap();
        assert!(
            !early.is_allowed(),
            "{algo:?}: 1 ms before the twin's retry_after"
        );
        let d = l
            .check_with("flood", CheckOptions::new().at(last + wait))
            .await
            .unwrap();
        assert!(
            d.is_allowed(),
            "{algo:?}: allowed at the twin's retry_after ({wait} µs)"
        );
    }
}
