//! Defect 12 of issue 12: every capability works for an ACL user confined to
//! its namespace, the usual multi-tenant set-up:
//!
//! ```text
//! ACL SETUSER <user> reset on >secret resetkeys ~<ns>:* resetchannels +@all
//! ```
//!
//! Each test creates its own user and namespace (on every node of the
//! cluster), connects a fresh `RedisService` as that user with that
//! namespace, and asserts that each call succeeds and really uses Redis:
//! values read back, a compute closure that runs once for two calls, cache
//! stats without degraded calls (a cache that silently degrades on `NOPERM`
//! would still return values, so the stats are the proof). Every test runs on
//! the shared standalone server and on the shared 3-primary cluster; the
//! search test runs on the search server (standalone only: search is).

mod support;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis_atomics::cache::{Args, CacheOptions};
use redis_atomics::search::{Document, Filter, IndexSchema, VectorField};
use redis_atomics::{
    Algorithm, CheckOptions, ComputeOptions, ErrorKind, Invalid, Quota, RedisConfig, RedisService,
    SetOptions, Validate,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);
const PASSWORD: &str = "secret";

/// Where a test runs.
#[derive(Debug, Clone, Copy)]
enum On {
    Standalone,
    Cluster,
}

/// A user confined to `~{namespace}:*` and a service connected as it.
struct Tenant {
    user: String,
    namespace: String,
    service: RedisService,
}

/// `ACL SETUSER` of a user allowed `~{namespace}:*` only, on `urls` (every
/// node of a cluster: ACLs are per node).
fn create_user(urls: &[String], user: &str, namespace: &str) {
    for url in urls {
        let mut conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg("reset")
            .arg("on")
            .arg(format!(">{PASSWORD}"))
            .arg("resetkeys")
            .arg(format!("~{namespace}:*"))
            .arg("resetchannels")
            .arg("+@all")
            .query::<()>(&mut conn)
            .unwrap_or_else(|e| panic!("ACL SETUSER on {url}: {e}"));
    }
}

/// `redis://user:secret@host:port` for a `redis://host:port` URL.
fn as_user(url: &str, user: &str) -> String {
    url.replacen("redis://", &format!("redis://{user}:{PASSWORD}@"), 1)
}

/// A new user and namespace for the current test on `on`, and a service
/// connected as that user (its own service, so `cache_stats` are the test's).
async fn tenant(on: On) -> Tenant {
    let unique = support::unique_prefix(&support::current_test_name());
    let user = format!("u-{unique}");
    let namespace = format!("app-{unique}");
    let builder = RedisConfig::builder().namespace(&namespace);
    let builder = match on {
        On::Standalone => {
            let url = support::shared_server().await.url();
            create_user(std::slice::from_ref(&url), &user, &namespace);
            builder.url(as_user(&url, &user))
        }
        On::Cluster => {
            let cluster = support::shared_cluster().await;
            let urls: Vec<String> = cluster
                .ports()
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect();
            create_user(&urls, &user, &namespace);
            builder.cluster_nodes(urls.iter().map(|u| as_user(u, &user)))
        }
    };
    let service = RedisService::connect(builder.build().unwrap())
        .await
        .unwrap();
    Tenant {
        user,
        namespace,
        service,
    }
}

/// Asserts that no call of `svc` degraded or failed inside the cache layer.
fn assert_not_degraded(svc: &RedisService, what: &str) {
    let stats = svc.cache_stats();
    assert_eq!(stats.degraded, 0, "{what}: degraded calls in {stats:?}");
}

/// One `#[tokio::test]` per topology for each capability.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod standalone {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::On::Standalone).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::On::Cluster).await;
                }
            )*
        }
    };
}

on_both!(
    the_user_is_really_confined,
    keys,
    json_and_hashes,
    batches_and_models,
    temporary_keys,
    rate_limiters_of_every_algorithm,
    preload,
    get_or_compute,
    get_or_compute_with_early_refresh,
    cache_wrapper,
);

/// The set-up is what it claims: outside its namespace the user gets NOPERM.
async fn the_user_is_really_confined(on: On) {
    let t = tenant(on).await;
    let outside = t.service.with_namespace(format!("other-{}", t.namespace));
    let err = outside
        .set("k", "v", SetOptions::new())
        .await
        .expect_err("a key outside the namespace must be refused");
    assert!(
        err.to_string().to_ascii_lowercase().contains("noperm")
            || err.to_string().to_ascii_lowercase().contains("permission"),
        "{on:?} user {}: {err}",
        t.user
    );
}

async fn keys(on: On) {
    let svc = tenant(on).await.service;
    svc.set("greeting", "hello", SetOptions::new().ex(MINUTE))
        .await
        .unwrap();
    assert_eq!(
        svc.get::<String>("greeting").await.unwrap().as_deref(),
        Some("hello")
    );
    assert!(
        !svc.set("greeting", "again", SetOptions::new().nx())
            .await
            .unwrap(),
        "NX on an existing key"
    );
    assert!(
        svc.set("greeting", "xx", SetOptions::new().xx())
            .await
            .unwrap()
    );
    assert!(svc.exists("greeting").await.unwrap());
    assert!(svc.expire("greeting", MINUTE).await.unwrap());
    svc.set("other", "x", SetOptions::new()).await.unwrap();
    assert_eq!(
        svc.delete(&["greeting", "other", "absent"]).await.unwrap(),
        2
    );
    assert!(!svc.exists("greeting").await.unwrap());
    assert_eq!(svc.get::<String>("greeting").await.unwrap(), None);
}

async fn json_and_hashes(on: On) {
    let svc = tenant(on).await.service;
    let config = json!({"theme": "dark", "beta": true, "n": 9_007_199_254_740_993u64});
    svc.set_json("config", &config, SetOptions::new().ex(MINUTE))
        .await
        .unwrap();
    assert_eq!(
        svc.get_json::<Value>("config").await.unwrap(),
        Some(config.clone())
    );
    assert_eq!(svc.get_json::<Value>("absent").await.unwrap(), None);
    svc.hset_json("h", "a", &json!([1, 2])).await.unwrap();
    svc.hset_json("h", "b", &json!({"x": "ü"})).await.unwrap();
    assert_eq!(
        svc.hget_json::<Value>("h", "a").await.unwrap(),
        Some(json!([1, 2]))
    );
    let all: HashMap<String, Value> = svc.hgetall_json("h").await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all["b"], json!({"x": "ü"}));
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance_cents: i64,
}

/// A model with a rule, so the model calls run their validation.
impl Validate for Account {
    fn validate(&self) -> Result<(), Invalid> {
        match self.balance_cents {
            b if b < 0 => Err(Invalid::new("no overdraft").at(".balance_cents")),
            _ => Ok(()),
        }
    }
}

async fn batches_and_models(on: On) {
    let svc = tenant(on).await.service;
    // Keys on different slots of a cluster, on purpose.
    let batch = (1..=6).map(|i| (format!("item:{i}"), json!({ "id": i })));
    assert_eq!(svc.mset_json(batch, Some(MINUTE)).await.unwrap(), 6);
    let keys: Vec<String> = (1..=7).map(|i| format!("item:{i}")).collect();
    let found: HashMap<String, Value> = svc.mget_json(&keys).await.unwrap();
    assert_eq!(found.len(), 6, "item:7 is missing");
    assert_eq!(found["item:3"], json!({"id": 3}));
    let strict: HashMap<String, redis_atomics::Result<Value>> =
        svc.mget_json_strict(&keys[..6]).await.unwrap();
    assert_eq!(strict.len(), 6);
    assert!(strict.values().all(Result::is_ok), "{strict:?}");

    let ada = Account {
        owner: "Ada".into(),
        balance_cents: 36_00,
    };
    svc.set_model("account:1", &ada, SetOptions::new().ex(MINUTE))
        .await
        .unwrap();
    assert_eq!(
        svc.get_model::<Account>("account:1").await.unwrap(),
        Some(ada.clone())
    );
    let users = (2..=4).map(|i| (format!("account:{i}"), ada.clone()));
    svc.mset_models(users, Some(MINUTE)).await.unwrap();
    let ids = [
        "account:1",
        "account:2",
        "account:3",
        "account:4",
        "account:5",
    ];
    let models: HashMap<String, Account> = svc.mget_models(&ids).await.unwrap();
    assert_eq!(models.len(), 4);
    let strict: HashMap<String, redis_atomics::Result<Account>> =
        svc.mget_models_strict(&ids[..4]).await.unwrap();
    assert_eq!(strict.len(), 4);
    assert!(strict.values().all(Result::is_ok), "{strict:?}");
    svc.hset_model("users", "ada", &ada).await.unwrap();
    assert_eq!(
        svc.hget_model::<Account>("users", "ada").await.unwrap(),
        Some(ada)
    );
}

async fn temporary_keys(on: On) {
    let svc = tenant(on).await.service;
    let temp = svc
        .temporary_key("job:7:claim", "worker-3", Some(MINUTE))
        .await
        .unwrap();
    assert_eq!(
        svc.get::<String>("job:7:claim").await.unwrap().as_deref(),
        Some("worker-3")
    );
    assert!(temp.delete().await.unwrap());
    assert!(!svc.exists("job:7:claim").await.unwrap());

    let inner = svc.clone();
    let seen = svc
        .with_temporary_key("job:8:claim", "worker-4", Some(MINUTE), |key| async move {
            inner.get::<String>(&key).await
        })
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Some("worker-4"));
    assert!(!svc.exists("job:8:claim").await.unwrap());
}

async fn rate_limiters_of_every_algorithm(on: On) {
    let svc = tenant(on).await.service;
    let three = NonZeroU32::new(3).unwrap();
    for algorithm in [
        Algorithm::SlidingLog,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ] {
        let limiter = svc
            .rate_limiter_builder(&format!("api-{algorithm:?}"), algorithm)
            .quota(Quota::per_minute(three))
            .quota(Quota::per_hour(NonZeroU32::new(100).unwrap()))
            .build()
            .unwrap();
        for i in 0..3 {
            let d = limiter.check("user:42").await.unwrap();
            assert!(d.is_allowed(), "{algorithm:?} check {i}: {d:?}");
        }
        let d = limiter.check("user:42").await.unwrap();
        assert!(
            !d.is_allowed(),
            "{algorithm:?}: the 4th check is over the quota"
        );
        let peek = limiter.peek("user:42").await.unwrap();
        assert!(!peek.is_allowed(), "{algorithm:?} peek: {peek:?}");
        limiter.reset("user:42").await.unwrap();
        // A request id makes a check idempotent: the same id counts once.
        let opts = || CheckOptions::new().request_id("req-1");
        let a = limiter.check_with("user:43", opts()).await.unwrap();
        let b = limiter.check_with("user:43", opts()).await.unwrap();
        assert!(
            a.is_allowed() && b.is_allowed(),
            "{algorithm:?}: {a:?} {b:?}"
        );
        let c = limiter.check_n("user:43", 2).await.unwrap();
        assert!(
            c.is_allowed(),
            "{algorithm:?}: cost 2 after one counted check: {c:?}"
        );
        let d = limiter.check("user:43").await.unwrap();
        assert!(
            !d.is_allowed(),
            "{algorithm:?}: the request id counted twice? {d:?}"
        );
    }
    for sliding in [true, false] {
        let key = format!("ip:{sliding}");
        for i in 0..3u64 {
            let (allowed, remaining) = svc.check_rate_limit(&key, 3, 60, sliding).await.unwrap();
            assert!(allowed, "check_rate_limit sliding={sliding} #{i}");
            assert_eq!(remaining, 2 - i);
        }
        let (allowed, _) = svc.check_rate_limit(&key, 3, 60, sliding).await.unwrap();
        assert!(
            !allowed,
            "check_rate_limit sliding={sliding}: over the limit"
        );
    }
}

async fn preload(on: On) {
    let svc = tenant(on).await.service;
    let report = svc.preload().await.unwrap();
    assert!(
        report.failed.is_empty(),
        "SCRIPT LOAD failed: {:?}",
        report.failed
    );
    assert_eq!(report.loaded.len(), if svc.is_cluster() { 3 } else { 1 });
}

/// A compute closure counting its runs.
fn counted(runs: &Arc<AtomicUsize>, value: u64) -> impl Future<Output = u64> + use<> {
    let runs = runs.clone();
    async move {
        runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        value
    }
}

async fn get_or_compute(on: On) {
    let t = tenant(on).await;
    let svc = &t.service;
    let runs = Arc::new(AtomicUsize::new(0));
    // A key with a hash tag and one without (their lock keys differ).
    for key in ["report:2026", "report:{2027}"] {
        runs.store(0, Ordering::SeqCst);
        for _ in 0..2 {
            let v: u64 = svc
                .get_or_compute(key, counted(&runs, 7), ComputeOptions::new().ttl(MINUTE))
                .await
                .unwrap_or_else(|e| panic!("{on:?} get_or_compute({key}): {e}"));
            assert_eq!(v, 7);
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "{on:?} {key}: computed twice"
        );
        assert!(svc.exists(key).await.unwrap(), "{on:?} {key}: not stored");
    }
    let stats = svc.cache_stats();
    assert_eq!((stats.hits, stats.computations), (2, 2), "{stats:?}");
    assert_not_degraded(svc, "get_or_compute");

    // Many concurrent callers of a cold key: one computation (the lock).
    runs.store(0, Ordering::SeqCst);
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (svc, runs) = (svc.clone(), runs.clone());
            tokio::spawn(async move {
                svc.get_or_compute("herd", counted(&runs, 9), ComputeOptions::new().ttl(MINUTE))
                    .await
            })
        })
        .collect();
    for c in callers {
        assert_eq!(c.await.unwrap().unwrap(), 9u64);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "{on:?}: the herd computed more than once"
    );
    assert_not_degraded(svc, "get_or_compute herd");
}

async fn get_or_compute_with_early_refresh(on: On) {
    let t = tenant(on).await;
    let svc = &t.service;
    let runs = Arc::new(AtomicUsize::new(0));
    // beta 1 and a minute of TTL for a 20 ms computation: no refresh is due,
    // the second call is a hit (reading the value and its compute time).
    let opts = || ComputeOptions::new().ttl(MINUTE).early_refresh(1.0);
    for _ in 0..2 {
        let v: u64 = svc
            .get_or_compute("hot", counted(&runs, 1), opts())
            .await
            .unwrap_or_else(|e| panic!("{on:?} get_or_compute early_refresh: {e}"));
        assert_eq!(v, 1);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "{on:?}: computed twice");
    assert_not_degraded(svc, "early_refresh hit");

    // A huge beta makes every read refresh: the refresh takes its lock and
    // stores (one more computation, counted as an early refresh).
    let eager = || ComputeOptions::new().ttl(MINUTE).early_refresh(1e12);
    let before = svc.cache_stats().early_refreshes;
    runs.store(0, Ordering::SeqCst);
    let _: u64 = svc
        .get_or_compute("eager", counted(&runs, 2), eager())
        .await
        .unwrap();
    let v: u64 = svc
        .get_or_compute("eager", counted(&runs, 3), eager())
        .await
        .unwrap();
    assert!(v == 2 || v == 3, "{v}");
    // The refresh may finish after the call returned: poll for its value.
    let deadline = Instant::now() + Duration::from_secs(5);
    while svc.get_json::<u64>("eager").await.unwrap() != Some(3) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "{on:?}: no early refresh ran"
    );
    assert_eq!(
        svc.get_json::<u64>("eager").await.unwrap(),
        Some(3),
        "{on:?}: the refreshed value was not stored"
    );
    let stats = svc.cache_stats();
    assert!(stats.early_refreshes > before, "{on:?}: {stats:?}");
    assert_not_degraded(svc, "early_refresh refresh");
}

async fn cache_wrapper(on: On) {
    let t = tenant(on).await;
    let svc = &t.service;
    let runs = Arc::new(AtomicUsize::new(0));
    let square = svc.cache::<u64>("square", CacheOptions::new().ttl(MINUTE));
    let refreshing = svc.cache::<u64>("cube", CacheOptions::new().ttl(MINUTE).early_refresh(1.0));
    for n in [2u64, 3, 2, 3] {
        let args = Args::new().arg("n", &n);
        assert_eq!(square.call(&args, counted(&runs, n * n)).await, n * n);
        assert_eq!(
            refreshing.call(&args, counted(&runs, n * n * n)).await,
            n * n * n
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "{on:?}: each (function, n) computes once"
    );
    let key = square.key(&Args::new().arg("n", &2u64)).unwrap();
    assert!(
        key.starts_with(&format!("{}:", t.namespace)),
        "cache key {key} outside the namespace"
    );
    assert_not_degraded(svc, "cache calls");

    // invalidate: the next call computes again.
    let two = Args::new().arg("n", &2u64);
    let deleted = square
        .invalidate(&two)
        .await
        .unwrap_or_else(|e| panic!("{on:?} invalidate: {e}"));
    assert!(deleted >= 1, "{on:?}: invalidate deleted {deleted}");
    runs.store(0, Ordering::SeqCst);
    assert_eq!(square.call(&two, counted(&runs, 4)).await, 4);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "{on:?}: invalidate did not invalidate"
    );

    // invalidate_all: every entry of the function goes.
    let deleted = square
        .invalidate_all()
        .await
        .unwrap_or_else(|e| panic!("{on:?} invalidate_all: {e}"));
    assert!(deleted >= 2, "{on:?}: invalidate_all deleted {deleted}");
    runs.store(0, Ordering::SeqCst);
    for n in [2u64, 3] {
        assert_eq!(
            square
                .call(&Args::new().arg("n", &n), counted(&runs, n * n))
                .await,
            n * n
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "{on:?}: invalidate_all left entries"
    );
    assert!(refreshing.invalidate_all().await.unwrap() >= 2);
    assert_not_degraded(svc, "cache invalidate");
}

/// Search (standalone only) as a confined user: the index name and the
/// document prefix are namespaced, so create, upsert, query, info and drop
/// all stay inside `~{ns}:*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_standalone() {
    let Some(server) = support::shared_search().await else {
        return;
    };
    let unique = support::unique_prefix("acl_search");
    let (user, namespace) = (format!("u-{unique}"), format!("app-{unique}"));
    create_user(&[server.url()], &user, &namespace);
    let config = RedisConfig::builder()
        .url(as_user(&server.url(), &user))
        .namespace(&namespace)
        .build()
        .unwrap();
    let svc = RedisService::connect(config).await.unwrap();
    let index = svc.search_index("movies");
    let schema = IndexSchema::new()
        .tag("genre")
        .numeric("year")
        .vector("v", VectorField::flat(2));
    index
        .create(&schema)
        .await
        .unwrap_or_else(|e| panic!("FT.CREATE as {user}: {e}"));
    assert!(index.exists().await.unwrap());
    for (id, genre, year, v) in [
        ("1", "sci-fi", 1979, [1.0, 0.0]),
        ("2", "drama", 1968, [0.0, 1.0]),
    ] {
        let doc = Document::new()
            .field("genre", genre)
            .field("year", year)
            .vector("v", &v);
        index.upsert(id, &doc).await.unwrap();
    }
    assert_eq!(index.info().await.unwrap().num_docs, 2);
    let hits = svc
        .vector_query("movies")
        .knn("v", &[1.0, 0.1], 2)
        .filter("genre", "sci-fi")
        .where_(Filter::num("year").lt(2000))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("FT.SEARCH as {user}: {e}"));
    assert_eq!(hits.ids(), ["1"]);
    assert!(index.delete("2").await.unwrap());
    assert!(index.drop(true).await.unwrap());
    assert!(!index.exists().await.unwrap());
}

/// On a cluster, search is refused before any round trip (a config error,
/// not an ACL one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_cluster_is_refused_as_on_any_cluster() {
    let svc = tenant(On::Cluster).await.service;
    let err = svc
        .search_index("movies")
        .exists()
        .await
        .expect_err("search on a cluster");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}
