//! Fault injection against real servers: a server killed and restarted under
//! load, `SCRIPT FLUSH` under load, `CLIENT KILL`, `DEBUG SLEEP`, `maxmemory`
//! with noeviction, and a TCP proxy that delays, swallows, refuses and resets.
//!
//! The promise checked everywhere: each call either answers or fails with a
//! clear error (retryable when trying again can help), within a bounded time —
//! never a panic, never a hung task — and the service is usable afterwards.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_atomics::{ErrorKind, Idempotency, RedisConfig, RedisService, SetOptions};
use support::RedisServer;
use support::load::{HUNG, Tally, bounded, join_all, load, unit};
use support::proxy::FaultProxy;
use support::{command_calls, poll_until};

async fn connect(url: &str, retries: u32, timeout: Duration) -> RedisService {
    let config = RedisConfig::builder()
        .url(url)
        .retry_count(retries)
        .retry_delay(Duration::from_millis(50))
        .max_retry_delay(Duration::from_millis(200))
        .connect_timeout(timeout)
        .response_timeout(timeout)
        .build()
        .unwrap();
    RedisService::connect(config).await.unwrap()
}

/// A crash under load: while the server is down every failure is retryable
/// and none hangs; once it is back (it answers PING), the very next call
/// succeeds, and no call started after that fails. No clock threshold: the
/// phases are told apart by what happened, not by how long it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_under_load_recovers_at_once() {
    let mut server = RedisServer::start();
    let service = connect(&server.url(), 3, Duration::from_millis(500)).await;
    let started = Instant::now();
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers = load(&service, 8, &stop, &tally, started);
    poll_until("work done before the fault", || {
        tally.ok.load(Ordering::SeqCst) >= 8
    })
    .await;
    tokio::task::block_in_place(|| server.stop());
    poll_until("the outage noticed", || {
        tally.failed.load(Ordering::SeqCst) >= 8
    })
    .await;
    tokio::task::block_in_place(|| server.restart());
    // The first call after the restart succeeds: the retry policy covers
    // the reconnect.
    let first = Instant::now();
    bounded("the first call after the restart", unit(&service, 99, 1))
        .await
        .expect("the first call after the restart failed");
    let first_success = first.elapsed();
    stop.store(true, Ordering::SeqCst);
    join_all(workers).await;
    assert!(
        tally.ok.load(Ordering::SeqCst) > 0,
        "no work done (all retryable failures)"
    );

    // Every call started from now on succeeds.
    let (stop, after) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers = load(&service, 8, &stop, &after, Instant::now());
    poll_until("work after the restart", || {
        after.ok.load(Ordering::SeqCst) >= 8 * 20 || after.failed.load(Ordering::SeqCst) > 0
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    join_all(workers).await;
    eprintln!(
        "kill/restart: {} ok, {} failed (all retryable) around the crash; first call after the restart took {first_success:?}; then {} ok",
        tally.ok.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
        after.ok.load(Ordering::SeqCst)
    );
    assert_eq!(
        after.failed.load(Ordering::SeqCst),
        0,
        "a call started after recovery failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_under_load_never_reaches_a_caller() {
    let server = RedisServer::start();
    let service = connect(&server.url(), 0, Duration::from_secs(2)).await;
    let (stop, tally, started) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Tally::default()),
        Instant::now(),
    );
    let workers = load(&service, 8, &stop, &tally, started);
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    join_all(workers).await;
    // Without retries (retry_count 0) any NOSCRIPT would have surfaced.
    assert_eq!(tally.failed.load(Ordering::SeqCst), 0);
    assert!(tally.ok.load(Ordering::SeqCst) > 30);
}

#[tokio::test]
async fn client_kill_is_absorbed_by_reconnect_and_retry() {
    let server = RedisServer::start();
    let service = connect(&server.url(), 3, Duration::from_secs(1)).await;
    service.set("k", "v", SetOptions::new()).await.unwrap();
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for round in 0..5 {
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(
            killed >= 1,
            "round {round}: the crate's connection was not killed"
        );
        let v: Option<String> = bounded("get after CLIENT KILL", service.get("k"))
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some("v"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_times_out_as_configured_and_the_connection_stays_usable() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let once = connect(&server.url(), 0, timeout).await;
    let patient = connect(&server.url(), 6, timeout).await;
    once.set("k", "v", SetOptions::new()).await.unwrap();

    let url = server.url();
    let sleeper = std::thread::spawn(move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1.5")
            .exec(&mut conn)
            .unwrap();
    });
    tokio::task::block_in_place(|| server.wait_until_busy());

    let t0 = Instant::now();
    let err = once.get::<String>("k").await.unwrap_err();
    let took = t0.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.attempts(), 1);
    // Not before the timeout, and while the server still sleeps (no clock
    // threshold: the sleeper thread has not finished yet).
    assert!(took >= timeout - Duration::from_millis(50), "took {took:?}");
    assert!(
        !sleeper.is_finished(),
        "the call waited for the server instead of timing out ({took:?})"
    );

    // Not idempotent (NX): a timeout is not retried, even with retries left.
    let err = patient
        .set("nx", "v", SetOptions::new().nx())
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        err.attempts(),
        1,
        "a non-idempotent call was retried after a timeout"
    );

    // Idempotent: retried until the server answers again.
    let v: Option<String> = bounded("patient get", patient.get("k")).await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    sleeper.join().unwrap();
    let v: Option<String> = once.get("k").await.unwrap();
    assert_eq!(
        v.as_deref(),
        Some("v"),
        "the timed-out connection is usable again"
    );
}

#[tokio::test]
async fn maxmemory_noeviction_gives_clear_oom_errors_that_are_not_retried() {
    let server =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let service = connect(&server.url(), 5, Duration::from_secs(2)).await;
    let big = "x".repeat(100 * 1024);
    let mut written = 0;
    let err = loop {
        match service
            .set(&format!("fill:{written}"), big.as_str(), SetOptions::new())
            .await
        {
            Ok(_) => written += 1,
            Err(err) => break err,
        }
        assert!(written < 1000, "maxmemory never hit");
    };
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err:?}");
    assert_eq!(err.attempts(), 1, "OOM was retried");
    assert!(!err.is_retryable());
    assert_eq!(
        err.key(),
        Some(format!("fill:{written}").as_str()),
        "names the key"
    );

    // Scripts that write are refused the same way.
    let err = service
        .eval_script::<i64, _>(
            "mset_expire",
            &["{o}:a", "{o}:b"],
            &["60000", big.as_str(), "2"],
            Idempotency::Idempotent,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err:?}");
    assert_eq!(err.attempts(), 1);
    // Reads still work and nothing was half-written.
    let first: Option<String> = service.get("fill:0").await.unwrap();
    assert_eq!(first.map(|v| v.len()), Some(big.len()));
    assert!(!service.exists("{o}:a").await.unwrap());
    assert!(!service.exists("{o}:b").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_delay_blackhole_refuse_and_reset() {
    let server = support::shared_server().await;
    let proxy = FaultProxy::start(server.port());
    let p = support::unique_prefix("proxy");
    let key = format!("{p}:k");
    let timeout = Duration::from_millis(400);
    let service = connect(&proxy.url(), 2, timeout).await;
    service.set(&key, "v", SetOptions::new()).await.unwrap();

    // Delay: slower, still correct.
    proxy.set_delay(Duration::from_millis(100));
    let t0 = Instant::now();
    let v: Option<String> = bounded("delayed get", service.get(&key)).await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "both directions delayed"
    );
    proxy.set_delay(Duration::ZERO);

    // Black hole: a timeout after the retries (each attempt ended by its
    // response timeout), never a hang.
    proxy.set_blackhole(true);
    let err = bounded("black-holed get", service.get::<String>(&key))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        err.attempts(),
        3,
        "an idempotent read is retried, retry_count times: {err:?}"
    );
    proxy.set_blackhole(false);
    proxy.reset_all();
    let v: Option<String> = bounded("get after the black hole", service.get(&key))
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("v"));

    // Reset of every connection: absorbed by reconnect and retry.
    for _ in 0..3 {
        proxy.reset_all();
        let v: Option<String> = bounded("get after a reset", service.get(&key))
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some("v"));
    }

    // Refused: a retryable connection error, then recovery.
    proxy.set_refuse(true);
    proxy.reset_all();
    let err = bounded("refused get", service.get::<String>(&key))
        .await
        .unwrap_err();
    assert!(err.is_retryable() && err.is_unreachable(), "{err:?}");
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err:?}"
    );
    proxy.heal();
    let deadline = Instant::now() + HUNG;
    loop {
        match service.get::<String>(&key).await {
            Ok(v) => {
                assert_eq!(v.as_deref(), Some("v"));
                break;
            }
            Err(err) if Instant::now() < deadline => assert!(err.is_retryable(), "{err:?}"),
            Err(err) => panic!("no recovery after the proxy healed: {err:?}"),
        }
    }
    assert!(
        proxy.accepted() >= 2,
        "the crate reconnected through the proxy"
    );
}

/// Exactly `limit` requests are admitted while every connection is reset
/// over and over: each request carries a request id, the retry policy
/// repeats a check whose reply was lost, and the caller asks again (same id)
/// until it gets an answer — nothing is counted twice, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_stays_exact_while_connections_are_reset() {
    use redis_atomics::{Algorithm, CheckOptions, Quota};
    use std::num::NonZeroU32;

    let server = support::shared_server().await;
    let proxy = Arc::new(FaultProxy::start(server.port()));
    let service = connect(&proxy.url(), 3, Duration::from_millis(300)).await;
    let id = support::unique_prefix("exact");
    let limit = 50;
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (proxy, stop) = (proxy.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut resets = 0;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(15));
                proxy.reset_all();
                resets += 1;
            }
            resets
        })
    };
    for algorithm in [
        Algorithm::SlidingLog,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ] {
        let quota = Quota::per_hour(NonZeroU32::new(limit).unwrap());
        let limiter = service.rate_limiter("exact", algorithm, quota).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let (limiter, id) = (limiter.clone(), id.clone());
                tokio::spawn(async move {
                    let (mut allowed, mut errors) = (0u32, 0u32);
                    for r in 0..25 {
                        let opts = || CheckOptions::new().request_id(format!("{t}-{r}"));
                        loop {
                            match bounded("check", limiter.check_with(&id, opts())).await {
                                Ok(d) => {
                                    allowed += u32::from(d.is_allowed());
                                    break;
                                }
                                Err(err) => {
                                    assert!(err.is_retryable(), "{err:?}");
                                    errors += 1;
                                }
                            }
                        }
                    }
                    (allowed, errors)
                })
            })
            .collect();
        let (mut allowed, mut errors) = (0, 0);
        for t in tasks {
            let (a, e) = t.await.unwrap();
            allowed += a;
            errors += e;
        }
        eprintln!(
            "{algorithm:?}: {allowed} of 200 admitted (limit {limit}), {errors} calls failed and were asked again"
        );
        assert_eq!(
            allowed, limit,
            "{algorithm:?}: admitted {allowed}, limit {limit}"
        );
        // The final check is never skipped: asked until it answers.
        let peek = loop {
            match bounded("peek", limiter.peek(&id)).await {
                Ok(d) => break d,
                Err(err) => assert!(err.is_retryable(), "{err:?}"),
            }
        };
        assert_eq!(peek.remaining(), 0, "{algorithm:?}: {peek:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let resets = chaos.join().unwrap();
    assert!(resets > 5, "the connections were reset {resets} times");
}

/// The cache wrapper answers every call with the right value through a
/// server crash and restart: computed while Redis is down (the breaker keeps
/// that fast), cached again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_wrapper_answers_through_a_crash_and_restart() {
    use redis_atomics::cache::{Args, CacheOptions};

    let mut server = RedisServer::start();
    let service = connect(&server.url(), 1, Duration::from_millis(300)).await;
    let cached = Arc::new(service.cache(
        "square",
        CacheOptions::<u64>::new().ttl(Duration::from_secs(60)),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slowest = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (cached, stop, calls, slowest) =
                (cached.clone(), stop.clone(), calls.clone(), slowest.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let n = (w as u64 * 1000 + i) % 64;
                    let t0 = Instant::now();
                    let v = bounded(
                        "cached call",
                        cached.call(&Args::new().arg("n", &n), async move {
                            // A real function awaits something; while the
                            // breaker is open nothing else in the call does.
                            tokio::task::yield_now().await;
                            n * n
                        }),
                    )
                    .await;
                    assert_eq!(v, n * n);
                    slowest.fetch_max(t0.elapsed().as_millis() as u64, Ordering::SeqCst);
                    calls.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Cached before the crash.
    let key = cached.key(&Args::new().arg("n", &3u64)).unwrap();
    let raw = service.without_namespace();
    let deadline = Instant::now() + HUNG;
    while !raw.exists(&key).await.unwrap() {
        assert!(Instant::now() < deadline, "nothing cached before the crash");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::block_in_place(|| server.stop());
    let down_from = calls.load(Ordering::SeqCst);
    let t0 = Instant::now();
    // Answers while Redis is down: every one checked by its worker.
    poll_until("100 answers while Redis is down", || {
        calls.load(Ordering::SeqCst) - down_from > 100
    })
    .await;
    let took = t0.elapsed();
    tokio::task::block_in_place(|| server.restart());
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("a worker panicked");
    }
    eprintln!(
        "cache wrapper: 100 answers {took:?} into the outage; slowest call {} ms",
        slowest.load(Ordering::SeqCst)
    );
    // Cached again after the restart (the restarted server is empty).
    let deadline = Instant::now() + HUNG;
    loop {
        let _ = cached.call(&Args::new().arg("n", &3u64), async { 9 }).await;
        if service
            .without_namespace()
            .exists(&key)
            .await
            .unwrap_or(false)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "values are not cached again after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Exactly once across a lost reply: the server runs the check, the proxy
/// drops the reply, the connection is reset. With a request id the retry
/// policy repeats the check, the server runs it a second time (EVALSHA
/// counted twice) and dedupes it (one log entry), and the call answers.
/// The control run without a request id: the call fails (not retried), the
/// log holds one entry, and a caller who asks again counts twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_deduped_by_request_id_and_only_by_it() {
    use redis_atomics::{Algorithm, CheckOptions, Quota};
    use std::num::NonZeroU32;

    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let config = RedisConfig::builder()
        .url(proxy.url())
        .retry_count(3)
        .retry_delay(Duration::from_millis(20))
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let service = RedisService::connect(config).await.unwrap();
    service.preload().await.unwrap();
    let limit = NonZeroU32::new(10).unwrap();
    let limiter = service
        .rate_limiter("once", Algorithm::SlidingLog, Quota::per_hour(limit))
        .unwrap();
    let zcard = |key: &str| -> u64 {
        redis::cmd("ZCARD")
            .arg(key)
            .query(&mut server.connection())
            .unwrap()
    };
    for with_id in [true, false] {
        let id = format!("user-{with_id}");
        let log = limiter.keys(&id).unwrap().remove(0);
        limiter.peek(&id).await.unwrap(); // connected before the fault
        let evals = tokio::task::block_in_place(|| command_calls(&server, "evalsha"));
        proxy.set_drop_replies(true);
        let call = {
            let (limiter, id) = (limiter.clone(), id.clone());
            tokio::spawn(async move {
                let opts = CheckOptions::new();
                let opts = if with_id {
                    opts.request_id("r-1")
                } else {
                    opts
                };
                limiter.check_with(&id, opts).await
            })
        };
        let deadline = Instant::now() + HUNG;
        while tokio::task::block_in_place(|| zcard(&log)) == 0 {
            assert!(Instant::now() < deadline, "the check never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.heal();
        proxy.reset_all();
        let result = bounded("the check", call).await.unwrap();
        let ran = tokio::task::block_in_place(|| command_calls(&server, "evalsha")) - evals;
        let entries = tokio::task::block_in_place(|| zcard(&log));
        if with_id {
            let d = result.expect("retried with the same request id");
            assert_eq!(ran, 2, "the lost check was run again");
            assert_eq!(entries, 1, "and deduped by its request id");
            assert_eq!(d.remaining(), 9, "{d:?}");
        } else {
            let err = result.expect_err("without a request id it is not retried");
            assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
            assert_eq!(err.attempts(), 1, "{err:?}");
            assert_eq!((ran, entries), (1, 1));
            // The caller asking again has no way to say "the same request".
            let d = limiter.check(&id).await.unwrap();
            assert_eq!(zcard(&log), 2, "counted twice: {d:?}");
        }
    }
}
