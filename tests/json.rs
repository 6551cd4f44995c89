//! JSON and batch JSON: get/set/mget/mset/h*_json on a standalone server and
//! on the 3-primary cluster; interop with redis-cli; edge cases.

#[path = "json/batch.rs"]
mod batch;
mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use redis_atomics::{ErrorKind, SetOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::{Deployment, both, pttl, raw, service_in};

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
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("nxxx")).await;
    assert!(!svc.set_json("k", &1, SetOptions::new().xx()).await.unwrap());
    assert!(svc.set_json("k", &1, SetOptions::new().nx()).await.unwrap());
    assert!(!svc.set_json("k", &2, SetOptions::new().nx()).await.unwrap());
    assert!(svc.set_json("k", &3, SetOptions::new().xx()).await.unwrap());
    assert_eq!(svc.get_json::<i32>("k").await.unwrap(), Some(3));

    let err = svc
        .set_json("k", &4, SetOptions::new().ex(Duration::ZERO))
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
async fn empty_map_and_list_values() {
    for (label, svc) in both("emptyvals").await {
        svc.set_json("m", &json!({}), SetOptions::new())
            .await
            .unwrap();
        svc.set_json("l", &Vec::<u8>::new(), SetOptions::new())
            .await
            .unwrap();
        svc.set_json("s", &"", SetOptions::new()).await.unwrap();
        assert_eq!(
            raw::<String>(&svc, redis::cmd("GET").arg(svc.key("m"))).await,
            "{}"
        );
        assert_eq!(
            raw::<String>(&svc, redis::cmd("GET").arg(svc.key("l"))).await,
            "[]"
        );
        assert_eq!(
            raw::<String>(&svc, redis::cmd("GET").arg(svc.key("s"))).await,
            "\"\""
        );
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
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("huge")).await;
    let big = "é".repeat(5 * 1024 * 1024); // 10 MB of UTF-8
    let value = json!({"blob": big, "n": 1});
    svc.set_json("big", &value, SetOptions::new())
        .await
        .unwrap();
    let len: u64 = raw(&svc, redis::cmd("STRLEN").arg(svc.key("big"))).await;
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
        let _: i64 = raw(&svc, redis::cmd("RPUSH").arg(&list).arg("a").arg("b")).await;
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
        let items: Vec<String> = raw(&svc, redis::cmd("LRANGE").arg(&list).arg(0).arg(-1)).await;
        assert_eq!(items, ["a", "b"], "{label}: the list is untouched");
    }
}

#[tokio::test]
async fn nested_decode_error_names_key_and_path() {
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("path")).await;
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
        let _: i64 = raw(
            &svc,
            redis::cmd("HSET").arg(svc.key("h")).arg("bad").arg("{"),
        )
        .await;
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
        let text: String = raw(&svc, redis::cmd("HGET").arg(svc.key("h")).arg("b")).await;
        assert_eq!(text, serde_json::to_string(&user("b")).unwrap());
    }
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
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("cli")).await;
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
