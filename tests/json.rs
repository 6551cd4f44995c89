//! JSON and batch JSON: get/set/mget/mset/h*_json on a standalone server and
//! on the 3-primary cluster; interop with redis-cli; edge cases.

mod helpers;
mod support;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::time::Duration;

use helpers::{both, cluster, pttl, raw, standalone};
use redis_atomics::batch::MAX_KEYS_PER_CALL;
use redis_atomics::{ErrorKind, RedisConfig, RedisService, SetOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    address: Address,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    zip: String,
}

fn user(name: &str) -> User {
    User {
        name: name.into(),
        address: Address {
            zip: "75001".into(),
        },
    }
}

#[tokio::test]
async fn set_and_get_roundtrip_typed_and_value() {
    for (label, svc) in both("roundtrip").await {
        assert!(
            svc.set_json("u", &user("Ada"), SetOptions::new())
                .await
                .unwrap()
        );
        let back: Option<User> = svc.get_json("u").await.unwrap();
        assert_eq!(back, Some(user("Ada")), "{label}");
        let any = svc.get_json::<Value>("u").await.unwrap();
        assert_eq!(
            any,
            Some(json!({"name": "Ada", "address": {"zip": "75001"}}))
        );
        assert_eq!(
            svc.get_json::<Value>("absent").await.unwrap(),
            None,
            "{label}"
        );
    }
}

#[tokio::test]
async fn null_stored_is_not_missing() {
    for (label, svc) in both("null").await {
        svc.set_json("n", &Value::Null, SetOptions::new())
            .await
            .unwrap();
        assert_eq!(
            svc.get_json::<Value>("n").await.unwrap(),
            Some(Value::Null),
            "{label}"
        );
        assert_eq!(svc.get_json::<Option<u32>>("n").await.unwrap(), Some(None));
        assert_eq!(svc.get_json::<Option<u32>>("missing").await.unwrap(), None);
        let found: HashMap<String, Value> = svc.mget_json(&["n", "missing"]).await.unwrap();
        assert_eq!(
            found,
            HashMap::from([("n".to_string(), Value::Null)]),
            "{label}"
        );
    }
}

#[tokio::test]
async fn nx_xx_and_expiry() {
    let svc = standalone(&support::unique_prefix("nxxx")).await;
    assert!(!svc.set_json("k", &1, SetOptions::new().xx()).await.unwrap());
    assert!(svc.set_json("k", &1, SetOptions::new().nx()).await.unwrap());
    assert!(!svc.set_json("k", &2, SetOptions::new().nx()).await.unwrap());
    assert!(svc.set_json("k", &3, SetOptions::new().xx()).await.unwrap());
    assert_eq!(svc.get_json::<i32>("k").await.unwrap(), Some(3));

    let err = svc
        .set_json("k", &4, SetOptions::new().nx().xx())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.attempts(), 0, "rejected before any round trip");
    assert_eq!(err.key(), Some(svc.key("k").as_str()));
    assert_eq!(svc.get_json::<i32>("k").await.unwrap(), Some(3));

    svc.set_json("t", &"x", SetOptions::new().ex(Duration::from_secs(30)))
        .await
        .unwrap();
    let ttl = pttl(&svc, &svc.key("t")).await;
    assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
}

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
        .set_json("k", &1, SetOptions::new().nx().xx())
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
async fn empty_map_and_list_values() {
    for (label, svc) in both("emptyvals").await {
        svc.set_json("m", &json!({}), SetOptions::new())
            .await
            .unwrap();
        svc.set_json("l", &Vec::<u8>::new(), SetOptions::new())
            .await
            .unwrap();
        svc.set_json("s", &"", SetOptions::new()).await.unwrap();
        assert_eq!(raw::<String>(&svc, &[&"GET", &svc.key("m")]).await, "{}");
        assert_eq!(raw::<String>(&svc, &[&"GET", &svc.key("l")]).await, "[]");
        assert_eq!(raw::<String>(&svc, &[&"GET", &svc.key("s")]).await, "\"\"");
        let got: HashMap<String, Value> = svc.mget_json(&["m", "l", "s"]).await.unwrap();
        assert_eq!(got["m"], json!({}), "{label}");
        assert_eq!(got["l"], json!([]));
        assert_eq!(got["s"], json!(""));
        let empty: HashMap<String, Vec<u8>> = svc.hgetall_json("no-hash").await.unwrap();
        assert!(empty.is_empty());
    }
}

#[tokio::test]
async fn unicode_and_awkward_keys() {
    let keys = [
        "naïve:ключ:键",
        "with space",
        "a:b:c",
        "{brace}",
        "x{tag}y",
        "}{",
        "{}",
        "emoji 🚀",
    ];
    for (label, svc) in both("unicode").await {
        let mapping: Vec<(&str, Value)> = keys
            .iter()
            .map(|k| (*k, json!({"k": k, "v": "héllo wörld ✓ 🚀 \u{0}"})))
            .collect();
        assert_eq!(
            svc.mset_json(mapping.clone(), None).await.unwrap(),
            keys.len()
        );
        let got: HashMap<String, Value> = svc.mget_json(&keys).await.unwrap();
        assert_eq!(got.len(), keys.len(), "{label}");
        for (k, v) in &mapping {
            assert_eq!(&got[*k], v, "{label} {k}");
            assert_eq!(svc.get_json::<Value>(k).await.unwrap().as_ref(), Some(v));
        }
        svc.hset_json("h ü {x}", "fïeld 🚀", &"välue")
            .await
            .unwrap();
        assert_eq!(
            svc.hget_json::<String>("h ü {x}", "fïeld 🚀")
                .await
                .unwrap()
                .as_deref(),
            Some("välue")
        );
    }
}

#[tokio::test]
async fn ten_megabyte_value() {
    let svc = standalone(&support::unique_prefix("huge")).await;
    let big = "é".repeat(5 * 1024 * 1024); // 10 MB of UTF-8
    let value = json!({"blob": big, "n": 1});
    svc.set_json("big", &value, SetOptions::new())
        .await
        .unwrap();
    let len: u64 = raw(&svc, &[&"STRLEN", &svc.key("big")]).await;
    assert!(len > 10 * 1024 * 1024, "{len}");
    assert_eq!(
        svc.get_json::<Value>("big").await.unwrap(),
        Some(value.clone())
    );
    let got: HashMap<String, Value> = svc.mget_json(&["big", "nope"]).await.unwrap();
    assert_eq!(got.get("big"), Some(&value));
    svc.mset_json([("big2", &value)], Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(svc.get_json::<Value>("big2").await.unwrap(), Some(value));
}

#[tokio::test]
async fn wrong_type_is_a_clear_error_and_the_list_is_untouched() {
    for (label, svc) in both("wrongtype").await {
        let list = svc.key("list");
        let _: i64 = raw(&svc, &[&"RPUSH", &list, &"a", &"b"]).await;
        let err = svc.get_json::<Value>("list").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongType, "{label} {err}");
        assert_eq!(err.key(), Some(list.as_str()));
        assert!(err.to_string().contains(&list), "{err}");
        for err in [
            svc.hget_json::<Value>("list", "f").await.unwrap_err(),
            svc.hset_json("list", "f", &1).await.unwrap_err(),
            svc.hgetall_json::<Value>("list").await.unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::WrongType, "{label} {err}");
            assert_eq!(err.attempts(), 1, "never retried");
        }
        // MGET reports a non-string key as missing.
        svc.set_json("ok", &1, SetOptions::new()).await.unwrap();
        let got: HashMap<String, i32> = svc.mget_json(&["list", "ok"]).await.unwrap();
        assert_eq!(got, HashMap::from([("ok".to_string(), 1)]));
        let items: Vec<String> = raw(&svc, &[&"LRANGE", &list, &0, &-1]).await;
        assert_eq!(items, ["a", "b"], "{label}: the list is untouched");
    }
}

#[tokio::test]
async fn invalid_json_in_the_middle_of_an_mget() {
    for (label, svc) in both("badjson").await {
        svc.set_json("a", &user("a"), SetOptions::new())
            .await
            .unwrap();
        let _: () = raw(&svc, &[&"SET", &svc.key("b"), &"{not json"]).await;
        let _: () = raw(
            &svc,
            &[
                &"SET",
                &svc.key("c"),
                &r#"{"name":"c","address":{"zip":7}}"#,
            ],
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
async fn nested_decode_error_names_key_and_path() {
    let svc = standalone(&support::unique_prefix("path")).await;
    svc.set_json(
        "u",
        &json!({"name": "x", "address": {"zip": 1}}),
        SetOptions::new(),
    )
    .await
    .unwrap();
    let err = svc.get_json::<User>("u").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deserialization);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: .address.zip: invalid type: integer `1`, expected a string",
            svc.key("u")
        )
    );
    svc.hset_json("h", "owner", &json!({"name": "x", "address": {"zip": 1}}))
        .await
        .unwrap();
    let err = svc.hget_json::<User>("h", "owner").await.unwrap_err();
    assert_eq!(err.path(), Some(".owner.address.zip"));
    assert_eq!(err.key(), Some(svc.key("h").as_str()));
}

#[tokio::test]
async fn hash_helpers() {
    for (label, svc) in both("hash").await {
        assert_eq!(
            svc.hset_json("h", "a", &user("a")).await.unwrap(),
            1,
            "{label}"
        );
        assert_eq!(svc.hset_json("h", "a", &user("A")).await.unwrap(), 0);
        assert_eq!(svc.hset_json("h", "b", &user("b")).await.unwrap(), 1);
        let _: i64 = raw(&svc, &[&"HSET", &svc.key("h"), &"bad", &"{"]).await;
        assert_eq!(
            svc.hget_json::<User>("h", "a").await.unwrap(),
            Some(user("A"))
        );
        assert_eq!(svc.hget_json::<User>("h", "zz").await.unwrap(), None);
        assert_eq!(svc.hget_json::<User>("nohash", "a").await.unwrap(), None);
        let all: HashMap<String, User> = svc.hgetall_json("h").await.unwrap();
        assert_eq!(
            all,
            HashMap::from([("a".into(), user("A")), ("b".into(), user("b"))]),
            "{label}: the invalid field is skipped"
        );
        let text: String = raw(&svc, &[&"HGET", &svc.key("h"), &"b"]).await;
        assert_eq!(text, serde_json::to_string(&user("b")).unwrap());
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
    let svc = standalone(&support::unique_prefix("atomic")).await;
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
    // Under OOM (noeviction) nothing of the batch is written either.
    let server = support::RedisServer::start_with(&[
        "--maxmemory",
        "1mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let oom = RedisService::connect(RedisConfig::new(server.url()).unwrap())
        .await
        .unwrap();
    let filler = "x".repeat(64 * 1024);
    let mut i = 0;
    while oom
        .set(&format!("fill{i}"), filler.as_str(), SetOptions::new())
        .await
        .is_ok()
    {
        i += 1;
    }
    let err = oom
        .mset_json([("{o}a", 1), ("{o}b", 2)], Some(Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(!oom.exists("{o}a").await.unwrap());
    assert!(!oom.exists("{o}b").await.unwrap());
}

#[tokio::test]
async fn cluster_batches_span_every_primary() {
    let cluster_ref = support::shared_cluster().await;
    let svc = cluster(&support::unique_prefix("spread")).await;
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
    let text: String = raw(&svc, &[&"GET", &svc.key("user:7")]).await;
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
        services.push(standalone(&p).await);
        services.push(cluster(&p).await);
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
    let svc = standalone(&p).await;
    svc.mset_json([("a", 1), ("b", 2)], None).await.unwrap();
    let got: HashMap<String, i32> = svc.mget_json(&["a", "b"]).await.unwrap();
    assert_eq!(got, HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    let stored: String = raw(&svc, &[&"GET", &format!("{p}:a")]).await;
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

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(support::cli_bin())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.pop(), Some('\n'));
    text
}

#[tokio::test]
async fn interop_with_redis_cli() {
    let server = support::shared_server().await;
    let svc = standalone(&support::unique_prefix("cli")).await;
    let value = json!({"name": "Zoë", "tags": ["a", "b"], "n": 1.5, "ok": true, "none": null});
    svc.set_json("doc", &value, SetOptions::new())
        .await
        .unwrap();
    let text = redis_cli(server.port(), &["GET", &svc.key("doc")]);
    assert_eq!(text, serde_json::to_string(&value).unwrap());
    assert_eq!(
        text,
        r#"{"n":1.5,"name":"Zoë","none":null,"ok":true,"tags":["a","b"]}"#
    );

    let written = r#"{ "name": "Ada", "address": { "zip": "SW1" } }"#;
    assert_eq!(
        redis_cli(server.port(), &["SET", &svc.key("fromcli"), written]),
        "OK"
    );
    assert_eq!(
        svc.get_json::<User>("fromcli").await.unwrap(),
        Some(User {
            name: "Ada".into(),
            address: Address { zip: "SW1".into() }
        })
    );
    assert_eq!(
        redis_cli(server.port(), &["HSET", &svc.key("h"), "f", "[1,2]"]),
        "1"
    );
    assert_eq!(
        svc.hget_json::<Vec<u8>>("h", "f").await.unwrap(),
        Some(vec![1, 2])
    );
}
