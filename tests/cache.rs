//! The caching wrapper and #[cached]: key format and injectivity, hits,
//! Err never cached, None cached unless skip_cache_if, invalidate and
//! invalidate_all (glob characters in namespace/prefix, cluster), herd
//! protection on and off, degradation; standalone and cluster.

mod support;

#[path = "cache/defects.rs"]
mod defects;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use redis_atomics::{Args, CacheOptions, CircuitBreakerOptions, RedisConfig, RedisService, cached};
use support::Deployment::{Cluster, Standalone};
use support::{raw_exists, service, service_in, services};
use tokio::sync::Barrier;

fn two_args(a: &str, b: &str) -> Args {
    Args::new().arg("a", a).arg("b", b)
}

#[test]
fn key_format_and_injectivity_examples() {
    let svc_key = |ns: Option<&str>, prefix: Option<&str>, f: &str, args: &Args| {
        let mut key = redis_atomics::keys::cache_function_prefix(ns, prefix, f);
        let enc = args.encoded().unwrap();
        if !enc.is_empty() {
            key.push(':');
            key.push_str(&enc);
        }
        key
    };
    assert_eq!(
        svc_key(
            Some("app"),
            Some("v1"),
            "get_user",
            &Args::new().arg("id", &7)
        ),
        "app:v1:get_user:id=7"
    );
    assert_ne!(
        two_args("a:b", "c").encoded().unwrap(),
        two_args("a", "b:c").encoded().unwrap()
    );
    assert_ne!(
        two_args("a=b", "c").encoded().unwrap(),
        two_args("a", "b=c").encoded().unwrap()
    );
    let none = Args::new().arg("x", &None::<String>).encoded().unwrap();
    let null_text = Args::new().arg("x", &Some("null")).encoded().unwrap();
    let tilde = Args::new().arg("x", &Some("~")).encoded().unwrap();
    assert!(none != null_text && none != tilde && null_text != tilde);
    // Lists and maps as JSON (maps sorted, so equal maps give equal keys).
    let m1: std::collections::HashMap<&str, u8> = [("b", 2), ("a", 1)].into();
    let m2: std::collections::HashMap<&str, u8> = [("a", 1), ("b", 2)].into();
    assert_eq!(
        Args::new().arg("m", &m1).encoded().unwrap(),
        Args::new().arg("m", &m2).encoded().unwrap()
    );
    assert_eq!(
        Args::new().arg("l", &[1, 2]).encoded().unwrap(),
        "l=%5B1,2%5D"
    );
}

#[test]
fn long_arguments_are_hashed() {
    let long_a = "x".repeat(10_000);
    let long_b = format!("{}y", "x".repeat(9_999));
    let ka = Args::new()
        .arg("q", &long_a)
        .arg("n", &1)
        .encoded()
        .unwrap();
    let kb = Args::new()
        .arg("q", &long_b)
        .arg("n", &1)
        .encoded()
        .unwrap();
    assert_ne!(ka, kb);
    assert!(ka.len() < 60, "{ka}");
    assert!(ka.starts_with("q=#") && ka.ends_with(":n=1"), "{ka}");
    assert_eq!(
        ka,
        Args::new()
            .arg("q", &long_a)
            .arg("n", &1)
            .encoded()
            .unwrap()
    );
}

fn tricky_string() -> impl Strategy<Value = String> {
    let alphabet = prop::sample::select(vec![
        "a", ":", "=", "%", "{", "}", "*", "?", "[", "]", "\\", "#", "~", " ", "\n", "\t", "é",
        "🦀", "\"", ",", "3A", "%3A", "null", "\0",
    ]);
    prop::collection::vec(alphabet, 0..8).prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn distinct_arguments_never_share_a_key(
        a1 in tricky_string(), b1 in tricky_string(),
        a2 in tricky_string(), b2 in tricky_string(),
        o1 in prop::option::of(tricky_string()), o2 in prop::option::of(tricky_string()),
    ) {
        let k1 = Args::new().arg("a", &a1).arg("b", &b1).arg("o", &o1).encoded().unwrap();
        let k2 = Args::new().arg("a", &a2).arg("b", &b2).arg("o", &o2).encoded().unwrap();
        prop_assert_eq!(k1 == k2, (a1, b1, o1) == (a2, b2, o2));
        // The encoded part is glob-free, brace-free and whitespace-free.
        let forbidden = ['*', '?', '[', ']', '\\', '{', '}', ' ', '\n'];
        prop_assert!(!k1.contains(forbidden), "{}", k1);
    }

    #[test]
    fn distinct_lists_never_share_a_key(
        l1 in prop::collection::vec(tricky_string(), 0..4),
        l2 in prop::collection::vec(tricky_string(), 0..4),
    ) {
        let k1 = Args::new().arg("l", &l1).encoded().unwrap();
        let k2 = Args::new().arg("l", &l2).encoded().unwrap();
        prop_assert_eq!(k1 == k2, l1 == l2);
    }
}

#[tokio::test]
async fn results_are_cached_err_never_none_unless_skipped() {
    let svc = service(Standalone).await;
    let p = support::unique_prefix("calls");
    let calls = AtomicUsize::new(0);
    let users = svc.cache::<Option<String>>(
        "user",
        CacheOptions::new()
            .ttl(Duration::from_secs(60))
            .key_prefix(&p),
    );
    let count = || async {
        calls.fetch_add(1, Ordering::SeqCst);
    };
    for _ in 0..3 {
        let v = users
            .call(&Args::new().arg("id", &1), async {
                count().await;
                Some("ada".to_string())
            })
            .await;
        assert_eq!(v.as_deref(), Some("ada"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // None is cached by default...
    for _ in 0..2 {
        let v = users
            .call(&Args::new().arg("id", &2), async {
                count().await;
                None
            })
            .await;
        assert_eq!(v, None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(raw_exists(&svc, &users.key(&Args::new().arg("id", &2)).unwrap()).await);

    // ...unless skip_cache_if says so.
    let skipping = svc.cache::<Option<String>>(
        "user_skip",
        CacheOptions::new()
            .key_prefix(&p)
            .skip_cache_if(|v: &Option<String>| v.is_none()),
    );
    for _ in 0..2 {
        let v = skipping
            .call(&Args::new().arg("id", &2), async {
                count().await;
                None
            })
            .await;
        assert_eq!(v, None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(!raw_exists(&svc, &skipping.key(&Args::new().arg("id", &2)).unwrap()).await);

    // Err is never cached.
    let fallible = svc.cache::<u32>("fallible", CacheOptions::new().key_prefix(&p));
    let args = Args::new().arg("x", "y");
    let r: Result<u32, &str> = fallible.call_result(&args, async { Err("down") }).await;
    assert_eq!(r, Err("down"));
    assert!(!raw_exists(&svc, &fallible.key(&args).unwrap()).await);
    let r: Result<u32, &str> = fallible.call_result(&args, async { Ok(5) }).await;
    assert_eq!(r, Ok(5));
    let r: Result<u32, &str> = fallible
        .call_result(&args, async { Err("not called") })
        .await;
    assert_eq!(r, Ok(5));
}

#[tokio::test]
async fn keys_follow_the_documented_format() {
    let p = support::unique_prefix("fmt");
    let svc = service_in(Standalone, &format!("{p}-app")).await;
    let f = svc.cache::<u32>("search", CacheOptions::new().key_prefix("v2"));
    let args = Args::new().arg("q", "a:b c").arg("page", &2);
    assert_eq!(
        f.key(&args).unwrap(),
        format!("{p}-app:v2:search:q=a%3Ab%20c:page=2")
    );
    let _ = f.call(&args, async { 1 }).await;
    assert!(raw_exists(&svc, &format!("{p}-app:v2:search:q=a%3Ab%20c:page=2")).await);
    // The namespace option overrides the service's.
    let g = svc.cache::<u32>(
        "search",
        CacheOptions::new().namespace(format!("{p}-other")),
    );
    assert_eq!(g.key(&Args::new()).unwrap(), format!("{p}-other:search"));
}

async fn invalidation(svc: RedisService) {
    let p = support::unique_prefix("inval");
    // Namespaces and prefixes with glob characters, and near-miss siblings.
    let ns_glob = format!("{p}-n*s?[x]");
    let ns_plain = format!("{p}-nXs1x"); // would match ns_glob unescaped
    let f = svc.cache::<u32>(
        "f",
        CacheOptions::new().namespace(&ns_glob).key_prefix("p[1]"),
    );
    let f_other_prefix = svc.cache::<u32>(
        "f",
        CacheOptions::new().namespace(&ns_glob).key_prefix("p1"),
    );
    let g = svc.cache::<u32>(
        "g",
        CacheOptions::new().namespace(&ns_glob).key_prefix("p[1]"),
    );
    let f_star = svc.cache::<u32>(
        "f*",
        CacheOptions::new().namespace(&ns_glob).key_prefix("p[1]"),
    );
    let f_plain_ns = svc.cache::<u32>(
        "f",
        CacheOptions::new().namespace(&ns_plain).key_prefix("p[1]"),
    );
    let no_args = svc.cache::<u32>(
        "f",
        CacheOptions::new().namespace(&ns_glob).key_prefix("p[1]"),
    );

    let n = 300; // spread over every primary of the cluster
    for i in 0..n {
        let args = Args::new().arg("i", &i).arg("tricky", "*?[]{x}");
        for c in [&f, &f_other_prefix, &g, &f_star, &f_plain_ns] {
            assert_eq!(c.call(&args, async { i }).await, i);
        }
    }
    assert_eq!(no_args.call(&Args::new(), async { 1 }).await, 1);
    let one = Args::new().arg("i", &7).arg("tricky", "*?[]{x}");
    assert!(raw_exists(&svc, &f.key(&one).unwrap()).await);
    assert_eq!(f.invalidate(&one).await.unwrap(), 1);
    assert_eq!(f.invalidate(&one).await.unwrap(), 0);
    assert!(!raw_exists(&svc, &f.key(&one).unwrap()).await);

    assert_eq!(f.invalidate_all().await.unwrap(), n as u64 - 1 + 1);
    assert_eq!(f.invalidate_all().await.unwrap(), 0);
    for i in 0..n {
        let args = Args::new().arg("i", &i).arg("tricky", "*?[]{x}");
        assert!(!raw_exists(&svc, &f.key(&args).unwrap()).await);
        for c in [&f_other_prefix, &g, &f_star, &f_plain_ns] {
            assert!(
                raw_exists(&svc, &c.key(&args).unwrap()).await,
                "{}",
                c.key(&args).unwrap()
            );
        }
    }
    // Recomputed after invalidation.
    assert_eq!(f.call(&one, async { 99 }).await, 99);
    for c in [&f, &f_other_prefix, &g, &f_star, &f_plain_ns] {
        c.invalidate_all().await.unwrap();
    }
}

#[tokio::test]
async fn invalidate_and_invalidate_all_standalone() {
    invalidation(service(Standalone).await).await;
}

#[tokio::test]
async fn invalidate_and_invalidate_all_cluster() {
    invalidation(service(Cluster).await).await;
}

/// 200 callers over `services`, released together by a barrier, call one
/// cold cached function; returns how many computed. `compute` is the
/// function's body (after it counted itself).
async fn herd<F, Fut>(services: Vec<RedisService>, protect: bool, compute: F) -> usize
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let p = support::unique_prefix("cache-herd");
    let computations = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(HERD));
    let mut tasks = Vec::new();
    for i in 0..HERD {
        let svc = services[i % services.len()].clone();
        let (p, computations, barrier, compute) = (
            p.clone(),
            computations.clone(),
            barrier.clone(),
            compute.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let report = svc.cache::<String>(
                "report",
                CacheOptions::new()
                    .key_prefix(p)
                    .ttl(Duration::from_secs(60))
                    .prevent_thundering_herd(protect),
            );
            barrier.wait().await;
            report
                .call(&Args::new().arg("year", &2024), async {
                    computations.fetch_add(1, Ordering::SeqCst);
                    compute().await;
                    "done".to_string()
                })
                .await
        }));
    }
    let all = async {
        for t in tasks {
            assert_eq!(t.await.unwrap(), "done");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("the herd finished (no caller waits for another's computation forever)");
    computations.load(Ordering::SeqCst)
}

/// The README's herd: 200 callers.
const HERD: usize = 200;

/// A computation that takes 100 ms.
async fn slow() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn herd_protection_computes_once_standalone_and_cluster() {
    assert_eq!(herd(services(Standalone, 4).await, true, slow).await, 1);
    assert_eq!(herd(services(Cluster, 4).await, true, slow).await, 1);
}

/// The same on 4 worker threads: each service's single-flight map is
/// joined from several threads at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn herd_protection_on_4_threads_computes_once_standalone_and_cluster() {
    assert_eq!(herd(services(Standalone, 4).await, true, slow).await, 1);
    assert_eq!(herd(services(Cluster, 4).await, true, slow).await, 1);
}

/// Without protection every one of the 200 concurrent misses computes (the
/// README's "200 computations per round"). Exact by construction: each
/// computation waits until all 200 have started, so no value is stored
/// before every caller has missed; a caller that waited for another's
/// computation instead would stall the herd (and fail the bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_protection_every_miss_computes() {
    let started = Arc::new(Barrier::new(HERD));
    let all_started = move || {
        let started = started.clone();
        async move {
            started.wait().await;
        }
    };
    let svcs = vec![service(Standalone).await, service(Standalone).await];
    assert_eq!(herd(svcs, false, all_started).await, HERD);
}

#[tokio::test]
async fn a_dead_redis_still_answers_calls() {
    let mut server = support::RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .retry_count(0)
        .circuit_breaker(CircuitBreakerOptions::new().with_failure_threshold(1))
        .build()
        .unwrap();
    let svc = support::connect(config).await;
    let f = svc.cache::<u32>("f", CacheOptions::new());
    assert_eq!(f.call(&Args::new().arg("x", &1), async { 1 }).await, 1);
    server.stop();
    for i in 0..20u32 {
        assert_eq!(
            f.call(&Args::new().arg("x", &i), async move { i * 2 })
                .await,
            i * 2
        );
        let r: Result<u32, String> = f.call_result(&Args::new(), async { Err("e".into()) }).await;
        assert_eq!(r.unwrap_err(), "e");
    }
    assert_eq!(svc.cache_stats().degraded, 40);
    assert!(
        f.invalidate_all().await.is_err(),
        "invalidation reports the failure"
    );
}

// ---- #[cached] ----

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
    name: String,
}

static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// Looks a user up (slowly).
#[cached(ttl = 60, key_prefix = "macro-test", name = "user_by_id")]
async fn user_by_id(service: &RedisService, id: u64, tenant: String) -> Option<User> {
    let _ = service;
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    (id != 0).then(|| User {
        id,
        name: format!("{tenant}-{id}"),
    })
}

static FALLIBLE: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 1.5, skip_cache_if = |v: &Vec<u32>| v.is_empty(), lock_ttl = 5)]
async fn numbers(service: &RedisService, mut n: u32) -> Result<Vec<u32>, String> {
    let _ = service;
    FALLIBLE.fetch_add(1, Ordering::SeqCst);
    if n == 99 {
        return Err("bad n".into());
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(n);
        n -= 1;
    }
    Ok(out)
}

#[tokio::test]
async fn the_cached_attribute() {
    let p = support::unique_prefix("macro");
    let svc = service(Standalone).await.with_namespace(&p);
    user_by_id_invalidate_all(&svc).await.unwrap();
    let before = LOOKUPS.load(Ordering::SeqCst);
    for _ in 0..3 {
        let u = user_by_id(&svc, 7, "acme".into()).await;
        assert_eq!(u.map(|u| u.name).as_deref(), Some("acme-7"));
    }
    assert_eq!(user_by_id(&svc, 0, "acme".into()).await, None);
    assert_eq!(user_by_id(&svc, 0, "acme".into()).await, None);
    assert_eq!(LOOKUPS.load(Ordering::SeqCst) - before, 2);
    assert!(raw_exists(&svc, &format!("{p}:macro-test:user_by_id:id=7:tenant=acme")).await);

    assert_eq!(
        user_by_id_invalidate(&svc, 7, "acme".into()).await.unwrap(),
        1
    );
    let _ = user_by_id(&svc, 7, "acme".into()).await;
    assert_eq!(LOOKUPS.load(Ordering::SeqCst) - before, 3);
    assert_eq!(user_by_id_invalidate_all(&svc).await.unwrap(), 2);

    let before = FALLIBLE.load(Ordering::SeqCst);
    let stored_after = std::time::Instant::now();
    assert_eq!(numbers(&svc, 3).await, Ok(vec![3, 2, 1]));
    assert_eq!(numbers(&svc, 3).await, Ok(vec![3, 2, 1]));
    assert_eq!(numbers(&svc, 99).await, Err("bad n".to_string()));
    assert_eq!(numbers(&svc, 99).await, Err("bad n".to_string()));
    assert_eq!(numbers(&svc, 0).await, Ok(vec![]));
    assert_eq!(numbers(&svc, 0).await, Ok(vec![]));
    // 3 cached once; 99 (Err) and 0 (skipped) every time.
    assert_eq!(FALLIBLE.load(Ordering::SeqCst) - before, 5);
    let mut conn = svc.connection();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{p}:numbers:n=3"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // ttl = 1.5 (not 1 s, not 2 s): at most 1,500 ms, and no less than
    // 1,500 ms minus the time since before the value was stored (a bound
    // that widens, instead of failing, on a slow machine).
    let since = stored_after.elapsed().as_millis() as i64;
    assert!(
        pttl <= 1_500 && pttl >= 1_500 - since - 1,
        "{pttl} ({since} ms)"
    );
    assert_eq!(numbers_invalidate_all(&svc).await.unwrap(), 1);
}
