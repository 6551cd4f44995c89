//! The lease protocol under adversarial interleavings (issue 12, defects 2,
//! 3, 4, 8 and 13): invalidation during a computation, lock expiry
//! mid-computation, a hung holder in the same process, a user key shaped
//! like our lock, and a refresh cancelled while taking its lease. Each test
//! failed on the code before the lease protocol.

use futures_util::FutureExt;

use super::*;

/// Waits (polling, bounded) until `cond` holds.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts a computation of `key` on `svc` that returns `value` once
/// `release` is notified; returns the task and waits until it computes.
async fn start_held(
    svc: &RedisService,
    key: &str,
    value: &'static str,
    opts: ComputeOptions,
) -> (tokio::task::JoinHandle<String>, Arc<Notify>) {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let task = {
        let (svc, key) = (svc.clone(), key.to_string());
        let (started, release) = (started.clone(), release.clone());
        tokio::spawn(async move {
            svc.get_or_compute(
                &key,
                async move {
                    started.notify_one();
                    release.notified().await;
                    value.to_string()
                },
                opts,
            )
            .await
            .unwrap()
        })
    };
    started.notified().await;
    (task, release)
}

/// How an invalidation is done: by the library's delete, or by set.
#[derive(Clone, Copy, Debug)]
enum Invalidation {
    Delete,
    Set,
}

async fn invalidation_wins_over_an_inflight_computation(cluster: bool, how: Invalidation) {
    let svcs = services(cluster, 2).await;
    let key = format!("{}:k", support::unique_prefix("inv-inflight"));
    let (task, release) = start_held(&svcs[0], &key, "old", ComputeOptions::new()).await;
    match how {
        Invalidation::Delete => {
            svcs[1].delete(&[&key]).await.unwrap();
        }
        Invalidation::Set => {
            let json = serde_json::to_string("set").unwrap();
            svcs[1]
                .set(&key, json, redis_atomics::SetOptions::new())
                .await
                .unwrap();
        }
    }
    // The invalidation has returned; now the old computation finishes.
    release.notify_one();
    assert_eq!(
        task.await.unwrap(),
        "old",
        "its caller still gets its value"
    );
    let stored = raw_get(&svcs[1], &key).await;
    match how {
        Invalidation::Delete => assert_eq!(stored, None, "{how:?}: stale value stored"),
        Invalidation::Set => assert_eq!(stored.as_deref(), Some(&b"\"set\""[..]), "{how:?}"),
    }
    assert_eq!(svcs[0].cache_stats().revoked, 1);
    // The next call computes afresh.
    let v: String = svcs[1]
        .get_or_compute(&key, async { "new".to_string() }, ComputeOptions::new())
        .await
        .unwrap();
    match how {
        Invalidation::Delete => assert_eq!(v, "new"),
        Invalidation::Set => assert_eq!(v, "set"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_revokes_an_inflight_computation_standalone_and_cluster() {
    invalidation_wins_over_an_inflight_computation(false, Invalidation::Delete).await;
    invalidation_wins_over_an_inflight_computation(true, Invalidation::Delete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_revokes_an_inflight_computation_standalone_and_cluster() {
    invalidation_wins_over_an_inflight_computation(false, Invalidation::Set).await;
    invalidation_wins_over_an_inflight_computation(true, Invalidation::Set).await;
}

async fn an_expired_holder_never_overwrites(cluster: bool) {
    let svcs = services(cluster, 2).await;
    let key = format!("{}:k", support::unique_prefix("expired-holder"));
    let lock = redis_atomics::keys::lock_key(&key);
    let opts = ComputeOptions::new()
        .lock_ttl(Duration::from_millis(200))
        .auto_extend(false);
    let (task, release) = start_held(&svcs[0], &key, "old", opts.clone()).await;
    // A's lease expires while it computes; B takes over and stores.
    eventually("A's lease expired", || {
        raw_exists(&svcs[1], &lock).map(|e| !e)
    })
    .await;
    let b: String = svcs[1]
        .get_or_compute(&key, async { "new".to_string() }, opts)
        .await
        .unwrap();
    assert_eq!(b, "new");
    release.notify_one();
    assert_eq!(task.await.unwrap(), "old");
    assert_eq!(
        raw_get(&svcs[1], &key).await.as_deref(),
        Some(&b"\"new\""[..])
    );
    assert_eq!(svcs[0].cache_stats().revoked, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_holder_never_overwrites_standalone_and_cluster() {
    an_expired_holder_never_overwrites(false).await;
    an_expired_holder_never_overwrites(true).await;
}

/// A caller in the same process as a hung holder waits at most `max_wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_wait_bounds_the_wait_on_a_leader_of_the_same_process() {
    let svcs = services(Deployment::Standalone, 1).await;
    let key = format!("{}:k", support::unique_prefix("same-process"));
    let (hung, _release) = start_held(&svcs[0], &key, "never", ComputeOptions::new()).await;
    let opts = ComputeOptions::new().max_wait(Duration::from_millis(200));
    let v: String = tokio::time::timeout(
        Duration::from_secs(10),
        svcs[0].get_or_compute(&key, async { "mine".to_string() }, opts),
    )
    .await
    .expect("max_wait must bound the wait on this process's own flight")
    .unwrap();
    assert_eq!(v, "mine");
    assert_eq!(svcs[0].cache_stats().wait_timeouts, 1);
    hung.abort();
}

async fn a_user_key_named_like_our_lock_is_never_touched(cluster: bool, key: String) {
    let svcs = services(cluster, 1).await;
    let svc = &svcs[0];
    let lock = redis_atomics::keys::lock_key(&key);
    let mut conn = svc.connection();
    let _: () = conn.set(&lock, "mine").await.unwrap();
    let opts = ComputeOptions::new().max_wait(Duration::from_millis(300));
    let v: u32 = tokio::time::timeout(
        Duration::from_secs(10),
        svc.get_or_compute(&key, async { 7 }, opts),
    )
    .await
    .expect("bounded by max_wait")
    .unwrap();
    assert_eq!(v, 7);
    let held: Option<String> = conn.get(&lock).await.unwrap();
    assert_eq!(held.as_deref(), Some("mine"), "{lock} was changed");
    let pttl: i64 = conn.pttl(&lock).await.unwrap();
    assert_eq!(pttl, -1, "{lock} got a TTL");
    assert_eq!(svc.cache_stats().foreign_locks, 1);
    // Invalidation leaves it alone too.
    svc.delete(&[&key]).await.unwrap();
    let held: Option<String> = conn.get(&lock).await.unwrap();
    assert_eq!(held.as_deref(), Some("mine"));
    let _: () = conn.del(&lock).await.unwrap();
}

#[tokio::test]
async fn a_user_key_named_like_our_lock_is_never_touched_standalone_and_cluster() {
    for cluster in [false, true] {
        let p = support::unique_prefix("foreign");
        a_user_key_named_like_our_lock_is_never_touched(cluster, format!("user:{{{p}}}")).await;
        a_user_key_named_like_our_lock_is_never_touched(cluster, format!("{p}:plain")).await;
    }
}

/// A foreign lock without max_wait is waited on for one lock_ttl, not forever.
#[tokio::test]
async fn a_foreign_lock_without_max_wait_costs_one_lock_ttl() {
    let svcs = services(Deployment::Standalone, 1).await;
    let key = format!("{}:k", support::unique_prefix("foreign-ttl"));
    let lock = redis_atomics::keys::lock_key(&key);
    let mut conn = svcs[0].connection();
    let _: () = conn.set(&lock, "mine").await.unwrap();
    let opts = ComputeOptions::new().lock_ttl(Duration::from_millis(300));
    let v: u32 = tokio::time::timeout(
        Duration::from_secs(10),
        svcs[0].get_or_compute(&key, async { 9 }, opts),
    )
    .await
    .expect("bounded by lock_ttl")
    .unwrap();
    assert_eq!(v, 9);
    assert_eq!(svcs[0].cache_stats().wait_timeouts, 1);
    let pttl: i64 = conn.pttl(&lock).await.unwrap();
    assert_eq!(pttl, -1, "the user's key got a TTL");
}

/// An early refresh cancelled while its lease request is in flight leaves
/// no lease behind (it used to stay for the whole lock_ttl).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_refresh_releases_its_lease() {
    let server = support::shared_server().await;
    let proxy = support::proxy::FaultProxy::start(server.port());
    let svc = support::connect(RedisConfig::new(proxy.url()).unwrap()).await;
    let key = format!("{}:k", support::unique_prefix("refresh-cancel"));
    let lock = redis_atomics::keys::lock_key(&key);
    // β huge: every hit refreshes.
    let opts = ComputeOptions::new()
        .ttl(Duration::from_secs(600))
        .lock_ttl(Duration::from_secs(600))
        .early_refresh(1e12);
    let v: u32 = svc
        .get_or_compute(&key, async { 1 }, opts.clone())
        .await
        .unwrap();
    assert_eq!(v, 1);
    // Now every message takes 100 ms each way: the hit arrives at ~200 ms,
    // the lease request reaches the server at ~300 ms, and the call is
    // cancelled at 250 ms, in between. (Whatever the timing on a loaded
    // machine, a lease must never outlive a cancelled call.)
    proxy.set_delay(Duration::from_millis(100));
    let cancelled = tokio::time::timeout(
        Duration::from_millis(250),
        svc.get_or_compute(&key, std::future::pending::<u32>(), opts),
    )
    .await;
    assert!(cancelled.is_err(), "the call should still be running");
    proxy.heal();
    eventually("the cancelled refresh's lease is released", || {
        raw_exists(&svc, &lock).map(|e| !e)
    })
    .await;
}
