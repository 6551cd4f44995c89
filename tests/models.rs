//! Typed models: serde + Validate, checked on write and on read, with key and
//! field path in every error; batch reads lenient and strict; standalone and
//! cluster.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use redis_atomics::{ErrorKind, Invalid, SetOptions, Validate};
use serde::{Deserialize, Serialize};
use support::{Deployment, both, pttl, raw, service_in};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: i32,
    address: Address,
    #[serde(default)]
    nickname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    zip: String,
}

impl Validate for Address {
    fn validate(&self) -> Result<(), Invalid> {
        if self.zip.is_empty() {
            return Err(Invalid::new("must not be empty").at(".zip"));
        }
        Ok(())
    }
}

impl Validate for User {
    fn validate(&self) -> Result<(), Invalid> {
        if self.age < 0 {
            return Err(Invalid::new("must be >= 0").at(".age"));
        }
        self.address.validate().map_err(|e| e.within(".address"))
    }
}

/// A plain serde type made a model with an empty impl: everything is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note(String);
impl Validate for Note {}

fn user(name: &str, age: i32) -> User {
    User {
        name: name.into(),
        age,
        address: Address {
            zip: "75001".into(),
        },
        nickname: None,
    }
}

#[tokio::test]
async fn model_roundtrip_and_missing() {
    for (label, svc) in both("model-rt").await {
        assert!(
            svc.set_model("u", &user("Ada", 36), SetOptions::new())
                .await
                .unwrap()
        );
        assert_eq!(
            svc.get_model::<User>("u").await.unwrap(),
            Some(user("Ada", 36)),
            "{label}"
        );
        assert_eq!(svc.get_model::<User>("none").await.unwrap(), None);
        // Stored as plain JSON text.
        let text: String = raw(&svc, redis::cmd("GET").arg(svc.key("u"))).await;
        assert_eq!(text, serde_json::to_string(&user("Ada", 36)).unwrap());
        // nx / xx / ex behave as set_json.
        assert!(
            !svc.set_model("u", &user("B", 1), SetOptions::new().nx())
                .await
                .unwrap()
        );
        assert!(
            !svc.set_model("v", &user("B", 1), SetOptions::new().xx())
                .await
                .unwrap()
        );
        svc.set_model(
            "t",
            &Note("n".into()),
            SetOptions::new().ex(Duration::from_secs(9)),
        )
        .await
        .unwrap();
        let ttl = pttl(&svc, &svc.key("t")).await;
        assert!(ttl > 0 && ttl <= 9000);
        let err = svc
            .set_model("u", &user("B", 1), SetOptions::new().ex(Duration::ZERO))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
    }
}

#[tokio::test]
async fn invalid_model_is_rejected_before_the_write() {
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("model-w")).await;
    let err = svc
        .set_model("u", &user("Ada", -1), SetOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.attempts(), 0);
    assert_eq!(err.path(), Some(".age"));
    assert_eq!(
        err.to_string(),
        format!("{}: .age: invalid input: must be >= 0", svc.key("u"))
    );
    assert!(!svc.exists("u").await.unwrap());

    let mut bad_zip = user("Ada", 3);
    bad_zip.address.zip.clear();
    let err = svc
        .set_model("u", &bad_zip, SetOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.path(), Some(".address.zip"));
    let err = svc.hset_model("h", "owner", &bad_zip).await.unwrap_err();
    assert_eq!(err.path(), Some(".owner.address.zip"));
    assert!(!svc.exists("h").await.unwrap());
}

#[tokio::test]
async fn invalid_stored_model_is_rejected_on_read() {
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("model-r")).await;
    // Another writer (set_json skips validation) stored a negative age.
    svc.set_json("u", &user("Ada", -5), SetOptions::new())
        .await
        .unwrap();
    let err = svc.get_model::<User>("u").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(
        err.to_string(),
        format!("{}: .age: invalid input: must be >= 0", svc.key("u"))
    );
    // A decode failure names the nested path.
    let _: () = raw(
        &svc,
        redis::cmd("SET")
            .arg(svc.key("z"))
            .arg(r#"{"name":"a","age":1,"address":{"zip":1}}"#),
    )
    .await;
    let err = svc.get_model::<User>("z").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deserialization);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: .address.zip: invalid type: integer `1`, expected a string",
            svc.key("z")
        )
    );
}

#[tokio::test]
async fn batch_reads_skip_invalid_and_strict_reports_each() {
    for (label, svc) in both("model-batch").await {
        svc.mset_models([("a", user("a", 1)), ("d", user("d", 4))], None)
            .await
            .unwrap();
        svc.set_json("b", &user("b", -2), SetOptions::new())
            .await
            .unwrap();
        let _: () = raw(
            &svc,
            redis::cmd("SET").arg(svc.key("c")).arg(r#"{"name":"c"}"#),
        )
        .await;
        let keys = ["a", "b", "c", "d", "missing"];

        let got: HashMap<String, User> = svc.mget_models(&keys).await.unwrap();
        let names: BTreeSet<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(names, BTreeSet::from(["a", "d"]), "{label}");

        let strict: HashMap<String, redis_atomics::Result<User>> =
            svc.mget_models_strict(&keys).await.unwrap();
        assert_eq!(strict.len(), 4, "{label}: missing keys are omitted");
        assert_eq!(strict["a"].as_ref().unwrap(), &user("a", 1));
        let b = strict["b"].as_ref().unwrap_err();
        assert_eq!(b.kind(), ErrorKind::Validation);
        assert_eq!(b.key(), Some(svc.key("b").as_str()));
        assert_eq!(b.path(), Some(".age"));
        let c = strict["c"].as_ref().unwrap_err();
        assert_eq!(c.kind(), ErrorKind::Deserialization);
        assert!(c.to_string().contains("missing field `age`"), "{c}");
    }
}

#[tokio::test]
async fn mset_models_validates_everything_first() {
    for (label, svc) in both("model-mset").await {
        let err = svc
            .mset_models(
                [
                    ("a", user("a", 1)),
                    ("b", user("b", -1)),
                    ("c", user("c", 3)),
                ],
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation, "{label}");
        assert_eq!(err.key(), Some(svc.key("b").as_str()));
        for k in ["a", "b", "c"] {
            assert!(!svc.exists(k).await.unwrap(), "{label}: {k} not written");
        }
        let many: Vec<(String, User)> = (0..1500)
            .map(|i| (format!("u{i}"), user(&format!("n{i}"), i)))
            .collect();
        let n = svc
            .mset_models(
                many.iter().map(|(k, u)| (k, u)),
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        assert_eq!(n, 1500);
        let keys: Vec<&str> = many.iter().map(|(k, _)| k.as_str()).collect();
        let got: HashMap<String, User> = svc.mget_models(&keys).await.unwrap();
        assert_eq!(got.len(), 1500, "{label}");
        assert_eq!(got["u1499"].age, 1499);
        let ttl = pttl(&svc, &svc.key("u777")).await;
        assert!(ttl > 0, "{label}: {ttl}");
    }
}

#[tokio::test]
async fn hash_models() {
    for (label, svc) in both("model-hash").await {
        assert_eq!(
            svc.hset_model("team", "lead", &user("a", 1)).await.unwrap(),
            1
        );
        assert_eq!(
            svc.hset_model("team", "lead", &user("b", 2)).await.unwrap(),
            0
        );
        assert_eq!(
            svc.hget_model::<User>("team", "lead").await.unwrap(),
            Some(user("b", 2)),
            "{label}"
        );
        assert_eq!(svc.hget_model::<User>("team", "none").await.unwrap(), None);
        svc.hset_json("team", "bad", &user("c", -3)).await.unwrap();
        let err = svc.hget_model::<User>("team", "bad").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert_eq!(err.path(), Some(".bad.age"));
        assert_eq!(err.key(), Some(svc.key("team").as_str()));
    }
}

#[tokio::test]
async fn containers_of_models_validate_each_element() {
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("model-vec")).await;
    let list = vec![user("a", 1), user("b", -1)];
    let err = svc
        .set_model("list", &list, SetOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.path(), Some("[1].age"));
    let ok = vec![Some(user("a", 1)), None];
    svc.set_model("list", &ok, SetOptions::new()).await.unwrap();
    assert_eq!(
        svc.get_model::<Vec<Option<User>>>("list").await.unwrap(),
        Some(ok)
    );
    // serde_json::Value is a model that accepts any JSON.
    svc.set_model("any", &serde_json::json!({"x": [1]}), SetOptions::new())
        .await
        .unwrap();
    assert_eq!(
        svc.get_model::<serde_json::Value>("any").await.unwrap(),
        Some(serde_json::json!({"x": [1]}))
    );
}

#[tokio::test]
async fn unicode_models() {
    for (label, svc) in both("model-uni").await {
        let mut u = user("Zoë 🚀 ключ", 30);
        u.nickname = Some("\"quoted\" \\ back".into());
        u.address.zip = "東京 100-0001".into();
        svc.set_model("ü {k} :x", &u, SetOptions::new())
            .await
            .unwrap();
        assert_eq!(
            svc.get_model::<User>("ü {k} :x").await.unwrap(),
            Some(u),
            "{label}"
        );
    }
}
