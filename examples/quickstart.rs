//! The tour: `cargo run --example quickstart`.
//!
//! Connects to `REDIS_URL` (or `REDIS_CLUSTER_NODES`), else 127.0.0.1:6379,
//! and walks through every capability under the namespace
//! `redis-atomics-demo`. Everything it writes expires within minutes, and it
//! deletes what it can at the end.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis_atomics::cache::{Args, CacheOptions};
use redis_atomics::search::{DistanceMetric, Document, Filter, IndexSchema, VectorField};
use redis_atomics::{
    Algorithm, ComputeOptions, Decision, ErrorKind, Invalid, Quota, RedisConfig, RedisService,
    SetOptions, Validate, cached, scripts,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
struct User {
    name: String,
    age: i32,
}

impl Validate for User {
    fn validate(&self) -> Result<(), Invalid> {
        if self.age < 0 {
            return Err(Invalid::new("must be >= 0").at(".age"));
        }
        Ok(())
    }
}

/// A function cached in Redis: the key is built from its name and arguments.
#[cached(ttl = 60, key_prefix = "v1")]
async fn exchange_rate(service: &RedisService, from: String, to: String) -> f64 {
    let _ = (service, &from, &to);
    tokio::time::sleep(Duration::from_millis(50)).await; // a slow upstream call
    1.08
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = RedisConfig::builder()
        .from_env()
        .namespace("redis-atomics-demo")
        .connect_timeout(Duration::from_secs(1))
        .build()?;
    let service = match RedisService::connect(config).await {
        Ok(service) => service,
        Err(err) => {
            eprintln!("error: {err}");
            eprintln!(
                "Start a Redis with `redis-server --daemonize yes --save \"\"` or set REDIS_URL=redis://host:port"
            );
            std::process::exit(1);
        }
    };
    let topology = if service.is_cluster() {
        "cluster"
    } else {
        "standalone"
    };
    println!(
        "connected ({topology}); every key below lives under {:?}\n",
        service.key("")
    );

    section("1. Keys, namespaces, scripts");
    service
        .set("greeting", "hello", SetOptions::new().ex(MINUTE))
        .await?;
    let greeting: Option<String> = service.get("greeting").await?;
    println!(
        "get greeting -> {greeting:?}, stored as {:?}",
        service.key("greeting")
    );
    let again = service
        .set("greeting", "again", SetOptions::new().nx())
        .await?;
    println!("set greeting NX -> {again} (it exists)");
    let report = service.preload().await?;
    println!(
        "{} Lua scripts loaded on {} node(s): {}",
        scripts::all().len(),
        report.loaded.len(),
        scripts::all()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );

    section("2. JSON, batches, typed models");
    service
        .set_json(
            "config",
            &json!({"theme": "dark", "beta": true}),
            SetOptions::new().ex(MINUTE),
        )
        .await?;
    let config: Option<Value> = service.get_json("config").await?;
    println!("get_json config -> {}", config.unwrap_or_default());
    let batch = (1..=3).map(|i| (format!("item:{i}"), json!({"id": i, "price": i * 10})));
    let written = service.mset_json(batch, Some(MINUTE)).await?; // atomic: values and TTLs together
    let items = service
        .mget_json::<Value, _>(&["item:1", "item:2", "item:9"])
        .await?;
    println!(
        "mset_json wrote {written} keys with a TTL; mget_json found {} of 3 (item:9 is missing)",
        items.len()
    );
    service
        .set_model(
            "user:1",
            &User {
                name: "Ada".into(),
                age: 36,
            },
            SetOptions::new().ex(MINUTE),
        )
        .await?;
    let user: Option<User> = service.get_model("user:1").await?;
    println!("get_model user:1 -> {user:?}");
    let invalid = service
        .set_model(
            "user:2",
            &User {
                name: "Bob".into(),
                age: -1,
            },
            SetOptions::new(),
        )
        .await;
    println!("set_model with age -1 -> {}", invalid.unwrap_err());
    service
        .set("not-json", "oops", SetOptions::new().ex(MINUTE))
        .await?;
    let err = service.get_json::<Value>("not-json").await.unwrap_err();
    println!("get_json of a corrupt value -> {:?}: {err}", err.kind());

    section("3. Temporary keys");
    let svc = service.clone();
    let seen = service
        .with_temporary_key("job:7:claim", "worker-3", Some(MINUTE), |key| async move {
            svc.get::<String>(&key).await
        })
        .await?;
    let gone = !service.exists("job:7:claim").await?;
    println!("inside the scope the key held {seen:?}; after it, deleted: {gone}");

    section("4. get_or_compute: one computation for many callers");
    let computations = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let (service, computations) = (service.clone(), computations.clone());
            tokio::spawn(async move {
                service
                    .get_or_compute(
                        "report:2026",
                        async move {
                            computations.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await; // slow query
                            vec![3, 1, 4]
                        },
                        ComputeOptions::new().ttl(MINUTE),
                    )
                    .await
            })
        })
        .collect();
    for caller in callers {
        let report: Vec<u32> = caller.await??;
        assert_eq!(report, [3, 1, 4]);
    }
    println!(
        "50 concurrent callers of a cold key -> {} computation(s)",
        computations.load(Ordering::SeqCst)
    );

    section("5. The caching wrapper and #[cached]");
    let t = std::time::Instant::now();
    let rate = exchange_rate(&service, "EUR".into(), "USD".into()).await;
    let first = t.elapsed();
    let t = std::time::Instant::now();
    let _ = exchange_rate(&service, "EUR".into(), "USD".into()).await;
    println!(
        "exchange_rate(EUR, USD) = {rate}: {first:.0?} computed, then {:.1?} cached",
        t.elapsed()
    );
    let deleted = exchange_rate_invalidate(&service, "EUR".into(), "USD".into()).await?;
    println!("exchange_rate_invalidate -> {deleted} key deleted");
    let squares = service.cache::<u64>("square", CacheOptions::new().ttl(MINUTE));
    for n in [2u64, 3, 2] {
        let v = squares
            .call(&Args::new().arg("n", &n), async move { n * n })
            .await;
        println!(
            "square(n={n}) = {v}  (key {})",
            squares.key(&Args::new().arg("n", &n))?
        );
    }
    println!(
        "invalidate_all(square) -> {} keys deleted",
        squares.invalidate_all().await?
    );
    println!("cache stats: {:?}", service.cache_stats());

    section("6. Rate limiting");
    for i in 1..=4 {
        let (allowed, remaining) = service.check_rate_limit("ip:10.0.0.1", 3, 60, true).await?;
        println!(
            "check_rate_limit #{i} (3 per minute) -> allowed {allowed}, remaining {remaining}"
        );
    }
    let nz = |n| NonZeroU32::new(n).expect("non-zero");
    // check_rate_limit is the unnamed sliding-log limiter; reset it so that
    // the next run of the tour starts fresh.
    service
        .rate_limiter("", Algorithm::SlidingLog, Quota::per_minute(nz(3)))?
        .reset("ip:10.0.0.1")
        .await?;
    let limiter = service
        .rate_limiter_builder("api", Algorithm::Gcra)
        .quota(Quota::per_second(nz(2)))
        .quota(Quota::per_hour(nz(100)))
        .build()?;
    for i in 1..=3 {
        // A refusal is data: allowed (what is left), denied (when to retry),
        // or never (the cost is above a limit).
        let outcome = match limiter.check("user:42").await? {
            Decision::Allowed { remaining, .. } => format!("allowed, {remaining} left"),
            Decision::Denied {
                retry_after,
                denied_by,
                ..
            } => format!("denied by quota {denied_by}, retry after {retry_after:?}"),
            Decision::Never { max_cost, .. } => format!("never (at most {max_cost} can pass)"),
        };
        println!("GCRA 2/s + 100/h, request {i} -> {outcome}");
    }
    let huge = limiter.check_n("user:42", 500).await?;
    println!(
        "a cost of 500 -> allowed {}, never {} (it can never fit; headers {:?})",
        huge.is_allowed(),
        huge.is_never(),
        huge.http_headers()
    );
    limiter.reset("user:42").await?;

    section("7. Vector search");
    if let Err(err) = search(&service).await {
        match err.kind() {
            ErrorKind::Config => println!("skipped: {err}"),
            _ if err.message().contains("unknown command") => {
                println!(
                    "skipped: this server has no search module (Redis 8 or Redis Stack has it)"
                )
            }
            _ => return Err(err.into()),
        }
    }

    section("Cleaning up");
    let n = service
        .delete(&[
            "greeting",
            "config",
            "item:1",
            "item:2",
            "item:3",
            "user:1",
            "not-json",
            "report:2026",
        ])
        .await?;
    println!("deleted {n} keys; the rest expire within a minute");
    Ok(())
}

async fn search(service: &RedisService) -> redis_atomics::Result<()> {
    let movies = service.search_index("movies");
    let _ = movies.drop(true).await;
    movies
        .create(
            &IndexSchema::new()
                .prefix("movie:")
                .tag("genre")
                .text("title")
                .numeric("year")
                .vector(
                    "embedding",
                    VectorField::flat(3).metric(DistanceMetric::Cosine),
                ),
        )
        .await?;
    let docs = [
        ("alien", "sci-fi", "Alien", 1979, [0.1, 0.9, 0.0]),
        ("arrival", "sci-fi", "Arrival", 2016, [0.2, 0.8, 0.1]),
        ("heat", "crime", "Heat", 1995, [0.9, 0.1, 0.0]),
    ];
    for (id, genre, title, year, embedding) in docs {
        let doc = Document::new()
            .field("genre", genre)
            .field("title", title)
            .field("year", year)
            .vector("embedding", &embedding);
        movies.upsert(id, &doc).await?;
    }
    movies.wait_until_indexed(Duration::from_secs(5)).await?;
    let query = service
        .vector_query("movies")
        .knn("embedding", &[0.1, 0.8, 0.1], 2)
        .filter("genre", "sci-fi")
        .where_(Filter::num("year").lt(2000.0))
        .return_fields(["title", "year"]);
    println!("query: {}", query.render().await?);
    let hits = query.execute().await?;
    for doc in &hits.docs {
        println!(
            "  {} distance {:?} title {:?}",
            doc.id,
            doc.distance,
            doc.get("title")
        );
    }
    let sneaky = service
        .vector_query("movies")
        .filter("genre", "x} | @genre:{crime")
        .execute()
        .await?;
    println!(
        "a filter value that tries to inject `| @genre:{{crime` matches {} documents",
        sneaky.total
    );
    movies.drop(true).await?;
    Ok(())
}

fn section(title: &str) {
    println!("\n== {title}");
}
