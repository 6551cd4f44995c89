//! Batch JSON: mget_json / mset_json on standalone and cluster — chunking,
//! slot grouping, atomic TTLs, duplicates, empty input, concurrency.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use redis_atomics::batch::MAX_KEYS_PER_CALL;
use redis_atomics::{ErrorKind, RedisConfig, RedisService, SetOptions};
use serde_json::{Value, json};

use super::{User, user};
use crate::support::{self, Deployment, both, pttl, raw, service_in};

#[tokio::test]
async fn empty_inputs_make_no_round_trip() {
    let mut server = support::RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .retry_count(0)
        .build()
        .unwrap();
    let svc = RedisService::connect(config).await.unwrap();
    server.stop();
    // With the server gone, only calls that never reach it can succeed.
    let none: &[&str] = &[];
    assert!(svc.mget_json::<Value, _>(none).await.unwrap().is_empty());
    assert!(
        svc.mget_json_strict::<Value, _>(none)
            .await
            .unwrap()
            .is_empty()
    );
    let empty: Vec<(&str, Value)> = Vec::new();
    assert_eq!(svc.mset_json(empty.clone(), None).await.unwrap(), 0);
    assert_eq!(
        svc.mset_json(empty, Some(Duration::from_secs(1)))
            .await
            .unwrap(),
        0
    );
    let err = svc
        .set_json("k", &1, SetOptions::new().ex(Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    let err = svc
        .mset_json([("k", 1)], Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    // And a real call does fail, so the above proves something.
    assert!(
        svc.mget_json::<Value, _>(&["k"])
            .await
            .unwrap_err()
            .is_unreachable()
    );
}

#[tokio::test]
async fn invalid_json_in_the_middle_of_an_mget() {
    for (label, svc) in both("badjson").await {
        svc.set_json("a", &user("a"), SetOptions::new())
            .await
            .unwrap();
        let _: () = raw(&svc, redis::cmd("SET").arg(svc.key("b")).arg("{not json")).await;
        let _: () = raw(
            &svc,
            redis::cmd("SET")
                .arg(svc.key("c"))
                .arg(r#"{"name":"c","address":{"zip":7}}"#),
        )
        .await;
        svc.set_json("d", &user("d"), SetOptions::new())
            .await
            .unwrap();
        let keys = ["a", "b", "c", "d", "e"];
        let got: HashMap<String, User> = svc.mget_json(&keys).await.unwrap();
        let names: BTreeSet<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(names, BTreeSet::from(["a", "d"]), "{label}");
        assert_eq!(got["d"], user("d"));

        let strict: HashMap<String, redis_atomics::Result<User>> =
            svc.mget_json_strict(&keys).await.unwrap();
        assert_eq!(strict.len(), 4, "missing keys are omitted");
        assert!(strict["a"].is_ok());
        let b = strict["b"].as_ref().unwrap_err();
        assert_eq!(b.kind(), ErrorKind::Deserialization);
        assert_eq!(b.key(), Some(svc.key("b").as_str()));
        let c = strict["c"].as_ref().unwrap_err();
        assert_eq!(c.path(), Some(".address.zip"));
    }
}

#[tokio::test]
async fn mset_without_ttl_is_persistent_and_last_duplicate_wins() {
    for (label, svc) in both("mset").await {
        svc.set_json("x", &0, SetOptions::new().ex(Duration::from_secs(100)))
            .await
            .unwrap();
        let n = svc
            .mset_json(vec![("x", 1), ("y", 2), ("x", 3)], None)
            .await
            .unwrap();
        assert_eq!(n, 2, "{label}");
        assert_eq!(svc.get_json::<i32>("x").await.unwrap(), Some(3));
        assert_eq!(pttl(&svc, &svc.key("x")).await, -1, "MSET clears the TTL");
        assert_eq!(pttl(&svc, &svc.key("y")).await, -1);
        // A &HashMap is a mapping too.
        let map: HashMap<String, User> = HashMap::from([("u".into(), user("u"))]);
        svc.mset_json(&map, None).await.unwrap();
        assert_eq!(svc.get_json::<User>("u").await.unwrap(), Some(user("u")));
    }
}

#[tokio::test]
async fn mset_with_ttl_gives_every_key_its_ttl() {
    for (label, svc) in both("msetex").await {
        // More keys than one call carries, so several calls (and, on the
        // cluster, thousands of slots) are involved.
        let n = MAX_KEYS_PER_CALL * 2 + 500;
        let mapping: Vec<(String, Value)> =
            (0..n).map(|i| (format!("k{i}"), json!({"i": i}))).collect();
        let written = svc
            .mset_json(
                mapping.iter().map(|(k, v)| (k, v)),
                Some(Duration::from_secs(120)),
            )
            .await
            .unwrap();
        assert_eq!(written, n, "{label}");
        let full: Vec<String> = mapping.iter().map(|(k, _)| svc.key(k)).collect();
        for key in &full {
            let ttl = pttl(&svc, key).await;
            assert!(ttl > 0 && ttl <= 120_000, "{label}: {key} has TTL {ttl}");
        }
        let keys: Vec<&str> = mapping.iter().map(|(k, _)| k.as_str()).collect();
        let got: HashMap<String, Value> = svc.mget_json(&keys).await.unwrap();
        assert_eq!(got.len(), n);
        assert_eq!(got["k2499"], json!({"i": 2499}));
    }
}

#[tokio::test]
async fn mset_with_invalid_ttl_writes_nothing() {
    for (label, svc) in both("msetbad").await {
        let err = svc
            .mset_json([("a", 1), ("b", 2)], Some(Duration::ZERO))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation, "{label}");
        assert_eq!(err.attempts(), 0);
        assert_eq!(pttl(&svc, &svc.key("a")).await, -2);
        assert_eq!(pttl(&svc, &svc.key("b")).await, -2);
    }
}

#[tokio::test]
async fn mset_expire_script_is_all_or_nothing() {
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("atomic")).await;
    // One value short: the script refuses before its first write.
    let err = svc
        .eval_script::<u64, _>(
            "mset_expire",
            &["{t}a", "{t}b", "{t}c"],
            &["60000", "1", "2"],
            redis_atomics::Idempotency::Idempotent,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Script);
    for k in ["{t}a", "{t}b", "{t}c"] {
        assert_eq!(pttl(&svc, &svc.key(k)).await, -2, "{k} was not written");
    }
    // Under OOM (noeviction) nothing of the batch is written either. A
    // maxmemory of half the memory in use makes every write fail for sure.
    let server = support::RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let oom = RedisService::connect(RedisConfig::new(server.url()).unwrap())
        .await
        .unwrap();
    let info: String = raw(&oom, redis::cmd("INFO").arg("memory")).await;
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _: () = raw(
        &oom,
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(used / 2),
    )
    .await;
    let err = oom.set("probe", "1", SetOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    let err = oom
        .mset_json([("{o}a", 1), ("{o}b", 2)], Some(Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(!oom.exists("{o}a").await.unwrap());
    assert!(!oom.exists("{o}b").await.unwrap());
}

#[tokio::test]
async fn mset_with_ttl_survives_a_script_flush() {
    let server = support::RedisServer::start();
    let svc = RedisService::connect(RedisConfig::new(server.url()).unwrap())
        .await
        .unwrap();
    let ttl = Some(Duration::from_secs(60));
    svc.mset_json([("a", 1), ("b", 2)], ttl).await.unwrap();
    let _: () = raw(&svc, redis::cmd("SCRIPT").arg("FLUSH")).await;
    // EVALSHA meets NOSCRIPT, falls back to EVAL, which caches it again.
    svc.mset_json([("a", 3), ("b", 4)], ttl).await.unwrap();
    let sha = redis_atomics::scripts::get("mset_expire").unwrap().sha1();
    let cached: Vec<bool> = raw(&svc, redis::cmd("SCRIPT").arg("EXISTS").arg(sha)).await;
    assert_eq!(cached, [true]);
    let got: HashMap<String, i32> = svc.mget_json(&["a", "b"]).await.unwrap();
    assert_eq!(got, HashMap::from([("a".into(), 3), ("b".into(), 4)]));
    assert!(pttl(&svc, "b").await > 0);
}

#[tokio::test]
async fn cluster_batches_span_every_primary() {
    let cluster_ref = support::shared_cluster().await;
    let svc = service_in(Deployment::Cluster, &support::unique_prefix("spread")).await;
    let keys: Vec<String> = (0..300).map(|i| format!("user:{i}")).collect();
    let primaries: BTreeSet<usize> = keys
        .iter()
        .take(30)
        .map(|k| cluster_ref.primary_of_key(&svc.key(k)))
        .collect();
    assert_eq!(primaries.len(), 3, "the keys live on all three primaries");
    svc.mset_json(keys.iter().map(|k| (k, json!({"id": k}))), None)
        .await
        .unwrap();
    // Hash-tagged keys share a slot: one call for them.
    svc.mset_json(
        (0..50).map(|i| (format!("{{team}}:{i}"), i)),
        Some(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let mut wanted: Vec<String> = keys.clone();
    wanted.extend((0..50).map(|i| format!("{{team}}:{i}")));
    wanted.push("missing".into());
    let got: HashMap<String, Value> = svc.mget_json(&wanted).await.unwrap();
    assert_eq!(got.len(), 350);
    assert_eq!(got["user:299"], json!({"id": "user:299"}));
    assert_eq!(got["{team}:49"], json!(49));
    assert!(!got.contains_key("missing"));
    // The raw cluster sees namespaced keys with the exact JSON text.
    let text: String = raw(&svc, redis::cmd("GET").arg(svc.key("user:7"))).await;
    assert_eq!(text, r#"{"id":"user:7"}"#);
}

#[tokio::test]
async fn five_thousand_key_batches_with_gaps() {
    for (label, svc) in both("big-batch").await {
        let keys: Vec<String> = (0..5000).map(|i| format!("k:{i}")).collect();
        svc.mset_json(keys.iter().step_by(2).map(|k| (k, k.len())), None)
            .await
            .unwrap();
        let got: HashMap<String, usize> = svc.mget_json(&keys).await.unwrap();
        assert_eq!(got.len(), 2500, "{label}");
        assert!(got.keys().all(|k| k[2..].parse::<u32>().unwrap() % 2 == 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_on_several_connections() {
    let p = support::unique_prefix("conc");
    let mut services = Vec::new();
    for _ in 0..3 {
        services.push(service_in(Deployment::Standalone, &p).await);
        services.push(service_in(Deployment::Cluster, &p).await);
    }
    let mut tasks = Vec::new();
    for t in 0..48 {
        let svc = services[t % services.len()].clone();
        tasks.push(tokio::spawn(async move {
            let keys: Vec<String> = (0..200).map(|i| format!("t{t}:{i}")).collect();
            for round in 0..3 {
                svc.mset_json(
                    keys.iter().map(|k| (k, (t, round))),
                    Some(Duration::from_secs(60)),
                )
                .await
                .unwrap();
                let got: HashMap<String, (usize, i32)> = svc.mget_json(&keys).await.unwrap();
                assert_eq!(got.len(), 200);
                assert!(
                    got.values().all(|v| *v == (t, round)),
                    "task {t} round {round}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn namespaced_results_use_the_callers_keys() {
    let p = support::unique_prefix("nsres");
    let svc = service_in(Deployment::Standalone, &p).await;
    svc.mset_json([("a", 1), ("b", 2)], None).await.unwrap();
    let got: HashMap<String, i32> = svc.mget_json(&["a", "b"]).await.unwrap();
    assert_eq!(got, HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    let stored: String = raw(&svc, redis::cmd("GET").arg(format!("{p}:a"))).await;
    assert_eq!(stored, "1");
    // Another namespace sees nothing.
    let other = svc.with_namespace(format!("{p}-other"));
    assert!(
        other
            .mget_json::<i32, _>(&["a", "b"])
            .await
            .unwrap()
            .is_empty()
    );
}

/// `calls=` of one command in `INFO commandstats`.
async fn calls(svc: &RedisService, command: &str) -> u64 {
    let info: String = raw(svc, redis::cmd("INFO").arg("commandstats")).await;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn large_batches_are_chunked_into_bounded_calls() {
    // A private server, so the command counters are ours alone.
    let server = support::RedisServer::start();
    let svc = RedisService::connect(RedisConfig::new(server.url()).unwrap())
        .await
        .unwrap();
    let keys: Vec<String> = (0..2 * MAX_KEYS_PER_CALL + 1)
        .map(|i| format!("c{i}"))
        .collect();
    svc.mset_json(keys.iter().map(|k| (k, 1)), None)
        .await
        .unwrap();
    assert_eq!(calls(&svc, "mset").await, 3);
    let got: HashMap<String, u8> = svc.mget_json(&keys).await.unwrap();
    assert_eq!(got.len(), keys.len());
    assert_eq!(calls(&svc, "mget").await, 3);
    svc.preload().await.unwrap();
    svc.mset_json(keys.iter().map(|k| (k, 2)), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(calls(&svc, "evalsha").await, 3);
    assert_eq!(
        calls(&svc, "set").await,
        keys.len() as u64,
        "one SET PX per key, inside the script"
    );
}
