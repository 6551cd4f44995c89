//! Per-id state: same-microsecond requests, request ids, TTLs, peek and reset.

use super::*;

on_both!(same_microsecond_requests_all_count);
async fn same_microsecond_requests_all_count(on: Deployment) {
    let svc = test_service(on).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 10, Duration::from_secs(60));
        let at = CheckOptions::new().at(BASE_US + 7);
        for i in 1..=4 {
            let d = l.check_with("same", at.clone()).await.unwrap();
            assert_eq!((d.is_allowed(), d.remaining()), (true, 10 - i), "{algo:?}");
        }
        let d = l.check_with("same", at.clone().cost(3)).await.unwrap();
        assert_eq!(d.remaining(), 3, "{algo:?}");
        if algo == Algorithm::SlidingLog {
            let key = &l.keys("same").unwrap()[0];
            let n: u64 = raw(&svc, redis::cmd("ZCARD").arg(key)).await;
            assert_eq!(n, 7, "one unique member per unit");
        }
    }
}

on_both!(a_request_id_is_counted_once);
async fn a_request_id_is_counted_once(on: Deployment) {
    let svc = test_service(on).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 3, Duration::from_secs(60));
        let at = |t: u64, id: &str| CheckOptions::new().at(BASE_US + t).request_id(id);
        let first = l.check_with("i", at(0, "req-1").cost(2)).await.unwrap();
        assert_eq!(
            (first.is_allowed(), first.remaining()),
            (true, 1),
            "{algo:?}"
        );
        for t in [0, 10, 1000] {
            let again = l.check_with("i", at(t, "req-1").cost(2)).await.unwrap();
            assert_eq!(
                (again.is_allowed(), again.remaining()),
                (true, 1),
                "{algo:?}: a replay consumes nothing"
            );
        }
        assert!(
            l.check_with("i", at(2000, "req-2"))
                .await
                .unwrap()
                .is_allowed()
        );
        let denied = l.check_with("i", at(3000, "req-3")).await.unwrap();
        assert!(!denied.is_allowed(), "{algo:?}: a new id counts");
        // Denials are not remembered: once there is room, the same id is counted.
        let d = l.check_with("i", at(120_000_000, "req-3")).await.unwrap();
        assert_eq!((d.is_allowed(), d.remaining()), (true, 2), "{algo:?}");
        let d = l.check_with("i", at(120_000_001, "req-3")).await.unwrap();
        assert_eq!(
            (d.is_allowed(), d.remaining()),
            (true, 2),
            "{algo:?}: and then counted once"
        );
    }
}

on_both!(every_key_has_a_ttl_close_to_its_window);
async fn every_key_has_a_ttl_close_to_its_window(on: Deployment) {
    let svc = test_service(on).await;
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

on_both!(peek_does_not_consume_and_reset_clears);
async fn peek_does_not_consume_and_reset_clears(on: Deployment) {
    let svc = test_service(on).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 3, Duration::from_secs(60));
        for _ in 0..10 {
            let p = l.peek("p").await.unwrap();
            assert_eq!((p.is_allowed(), p.remaining()), (true, 2), "{algo:?}");
        }
        assert!(
            existing(&svc, &l.keys("p").unwrap()).await.is_empty(),
            "peek writes nothing"
        );
        for left in [2, 1, 0] {
            assert_eq!(l.check("p").await.unwrap().remaining(), left, "{algo:?}");
        }
        let p = l.peek("p").await.unwrap();
        assert!(!p.is_allowed() && p.retry_after().is_some(), "{algo:?}");
        assert!(l.reset("p").await.unwrap());
        assert!(existing(&svc, &l.keys("p").unwrap()).await.is_empty());
        assert!(!l.reset("p").await.unwrap(), "nothing left to clear");
        let d = l.check("p").await.unwrap();
        assert_eq!((d.is_allowed(), d.remaining()), (true, 2), "{algo:?}");
    }
}

/// Holds every client's commands for `ms` (`CLIENT PAUSE`); they queue meanwhile.
async fn pause_server(server: &support::RedisServer, ms: u64) {
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// How many scripts (`EVALSHA` and `EVAL`) the server has run (waiting
/// out a `CLIENT PAUSE`: a blocking connection, no response timeout).
async fn scripts_run(server: &support::RedisServer) -> u64 {
    let client = server.client();
    let info: String = tokio::task::spawn_blocking(move || {
        let mut conn = client.get_connection().unwrap();
        redis::cmd("INFO").arg("commandstats").query(&mut conn)
    })
    .await
    .unwrap()
    .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_check_with_a_request_id_is_retried_after_a_timeout() {
    let server = support::RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .response_timeout(Duration::from_millis(150))
        .retry_count(4)
        .retry_backoff(redis_atomics::Backoff::Fixed)
        .retry_delay(Duration::from_millis(200))
        .retry_jitter(0.0)
        .build()
        .unwrap();
    let svc = RedisService::connect(config).await.unwrap();
    svc.preload().await.unwrap();
    let l = limiter(&svc, Algorithm::SlidingLog, 5, Duration::from_secs(60));

    // With a request id: timed out, retried, and counted exactly once.
    let before = scripts_run(&server).await;
    pause_server(&server, 700).await;
    let d = l
        .check_with("x", CheckOptions::new().request_id("r-1"))
        .await
        .unwrap();
    // The server ran the check once per attempt (a timed-out request still
    // runs when the pause ends): more than once means it was retried.
    let runs = scripts_run(&server).await - before;
    assert!(runs >= 2, "retried: the server ran it {runs} times");
    assert_eq!(
        (d.is_allowed(), d.remaining()),
        (true, 4),
        "the retry was a replay"
    );
    let now = l.peek_with("x", CheckOptions::new().cost(0)).await.unwrap();
    assert_eq!(now.remaining(), 4, "one unit consumed, not one per attempt");

    // Without: the timeout is returned after one attempt (it may have run).
    let before = scripts_run(&server).await;
    pause_server(&server, 700).await;
    let e = l.check("y").await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert_eq!(e.attempts(), 1, "not retried: {e}");
    let runs = async || scripts_run(&server).await - before;
    // The timed-out request runs once the pause ends; nothing else is sent.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while runs().await < 1 {
        assert!(std::time::Instant::now() < deadline, "the check never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs().await, 1, "sent once");
    let now = l.peek_with("y", CheckOptions::new().cost(0)).await.unwrap();
    assert_eq!(now.remaining(), 4, "the server ran it once");
}

on_both!(logical_time_keys_still_expire_on_the_real_clock);
/// `CheckOptions::at` drives the evaluation only: the TTLs a check sets run
/// on the server's real clock, as its docs say. With 3 per 1 ms, the state
/// written at `t` is gone 20 ms of real time later, at the same `t`.
async fn logical_time_keys_still_expire_on_the_real_clock(on: Deployment) {
    let svc = test_service(on).await;
    for algo in Algorithm::ALL {
        let l = limiter(&svc, algo, 3, Duration::from_millis(1));
        let at = CheckOptions::new().at(BASE_US);
        let d = l.check_with("x", at.clone().cost(3)).await.unwrap();
        assert!(d.is_allowed(), "{algo:?}: {d:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            existing(&svc, &l.keys("x").unwrap()).await.is_empty(),
            "{algo:?}: expired in real time"
        );
        let d = l.check_with("x", at.clone().cost(3)).await.unwrap();
        assert!(
            d.is_allowed(),
            "{algo:?}: at the same logical time, a fresh quota: {d:?}"
        );
    }
}

/// The sliding-window counter's documented bound: at most `limit` per
/// aligned window, but up to `2 × limit − 1` within one sliding window.
/// The sliding log, for contrast, never passes more than `limit`.
#[tokio::test]
async fn sliding_window_counter_passes_up_to_twice_the_limit_in_a_sliding_window() {
    let svc = test_service(Deployment::Standalone).await;
    let at = |t: u64| CheckOptions::new().at(BASE_US + t);
    assert_eq!(BASE_US % 1_000_000, 0, "BASE_US starts an aligned second");
    for (algo, second) in [(Algorithm::SlidingWindow, 9), (Algorithm::SlidingLog, 0)] {
        let l = limiter(&svc, algo, 10, Duration::from_secs(1));
        // 10 in the last microsecond of one second…
        let d = l.check_with("u", at(999_999).cost(10)).await.unwrap();
        assert!(d.is_allowed(), "{algo:?}: {d:?}");
        // …and, 999,999 µs later (still within one window of them), the
        // previous second weighs 2 ppm: 9 more pass, 19 in under a second.
        let d = l.peek_with("u", at(1_999_998).cost(0)).await.unwrap();
        assert_eq!(d.remaining(), second, "{algo:?}: {d:?}");
        if second > 0 {
            let d = l.check_with("u", at(1_999_998).cost(second as u32)).await;
            assert!(d.unwrap().is_allowed(), "{algo:?}");
            let d = l.check_with("u", at(1_999_998)).await.unwrap();
            assert!(!d.is_allowed(), "{algo:?}: 2 × limit − 1 at most: {d:?}");
        }
    }
}
