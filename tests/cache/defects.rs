//! Regression tests of issue 12 for the cache wrapper: TTL bounds checked
//! before any round trip (defect 5), `invalidate_all` removing companion
//! keys (6), only unavailability degrades (7), and keys injective across
//! JSON types (9). Each failed on the code before the fix.

use redis_atomics::{ComputeError, ComputeOptions, ErrorKind, commands::MAX_TTL_MS};

use super::*;

/// Every key of this Redis (or cluster) that starts with `prefix`.
async fn keys_under(svc: &RedisService, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for node in svc.primaries().await.unwrap() {
        let cmd = redis::cmd("KEYS").arg(format!("{prefix}*")).clone();
        let reply = svc.connection().on_node(&node, &cmd).await.unwrap();
        let keys: Vec<String> = redis::from_redis_value(reply).unwrap();
        found.extend(keys);
    }
    found.sort();
    found
}

#[tokio::test]
async fn a_ttl_past_the_bound_is_rejected_before_any_round_trip() {
    let svc = service(Standalone).await;
    let too_long = Duration::from_millis(MAX_TTL_MS + 1);
    let err = ComputeOptions::new().ttl(too_long).validate().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!(err.to_string().contains("MAX_TTL_MS"), "{err}");
    assert!(
        ComputeOptions::new()
            .ttl(Duration::from_millis(MAX_TTL_MS))
            .validate()
            .is_ok()
    );
    let f = svc.cache::<u32>(
        &support::unique_prefix("ttl-bound"),
        CacheOptions::new().ttl(too_long),
    );
    match f.try_call(&Args::new(), async { Ok::<_, String>(1) }).await {
        Err(ComputeError::Redis(e)) => {
            assert_eq!(e.kind(), ErrorKind::Validation);
            assert!(e.to_string().contains("MAX_TTL_MS"), "{e}");
            assert_eq!(e.attempts(), 0, "checked before any round trip");
        }
        other => panic!("expected the bound as an error, got {other:?}"),
    }
    // `call` still answers, and counts the error (not as degraded).
    assert_eq!(f.call(&Args::new(), async { 2 }).await, 2);
    let stats = svc.cache_stats();
    assert_eq!((stats.errors, stats.degraded), (1, 0));
}

async fn invalidate_all_leaves_nothing_behind(svc: RedisService) {
    let ns = support::unique_prefix("inv-all-companions");
    let svc = svc.with_namespace(&ns);
    let f = svc.cache::<u32>(
        "f",
        CacheOptions::new()
            .ttl(Duration::from_secs(600))
            .early_refresh(1.0),
    );
    for i in 0..20u32 {
        assert_eq!(f.call(&Args::new().arg("i", &i), async move { i }).await, i);
    }
    assert!(
        keys_under(&svc, &ns).await.len() >= 40,
        "values and compute times"
    );
    f.invalidate_all().await.unwrap();
    assert_eq!(keys_under(&svc, &ns).await, Vec::<String>::new());
}

#[tokio::test]
async fn invalidate_all_removes_companion_keys_standalone_and_cluster() {
    invalidate_all_leaves_nothing_behind(service(Standalone).await).await;
    invalidate_all_leaves_nothing_behind(service(Cluster).await).await;
}

async fn a_wrong_type_key_is_an_error_not_an_outage(svc: RedisService) {
    let ns = support::unique_prefix("wrongtype");
    let svc = svc.with_namespace(&ns);
    let f = svc.cache::<u32>("f", CacheOptions::new());
    let key = f.key(&Args::new()).unwrap();
    let mut conn = svc.connection();
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("field")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = svc.cache_stats();
    assert_eq!(f.call(&Args::new(), async { 5 }).await, 5);
    let after = svc.cache_stats();
    assert_eq!(after.errors - before.errors, 1);
    assert_eq!(
        after.degraded, before.degraded,
        "WRONGTYPE is not an outage"
    );
    assert_eq!(svc.circuit_state(), redis_atomics::CircuitState::Closed);
    match f.try_call(&Args::new(), async { Ok::<_, String>(6) }).await {
        Err(ComputeError::Redis(e)) => assert_eq!(e.kind(), ErrorKind::WrongType, "{e}"),
        other => panic!("expected WRONGTYPE, got {other:?}"),
    }
    // The user's hash is untouched.
    let v: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("field")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("v"));
}

#[tokio::test]
async fn only_unavailability_degrades_standalone_and_cluster() {
    a_wrong_type_key_is_an_error_not_an_outage(service(Standalone).await).await;
    a_wrong_type_key_is_an_error_not_an_outage(service(Cluster).await).await;
}

#[tokio::test]
async fn keys_are_injective_across_json_types() {
    let svc = service(Standalone).await;
    let f = svc.cache::<String>(&support::unique_prefix("types"), CacheOptions::new());
    let pairs: Vec<(serde_json::Value, serde_json::Value)> = vec![
        (
            serde_json::json!(["a", "b"]),
            serde_json::json!("[\"a\",\"b\"]"),
        ),
        (serde_json::json!(1), serde_json::json!("1")),
        (serde_json::json!(true), serde_json::json!("true")),
        (serde_json::json!({"k": 1}), serde_json::json!("{\"k\":1}")),
        (serde_json::json!(null), serde_json::json!("~")),
    ];
    for (a, b) in pairs {
        let (ka, kb) = (Args::new().arg("v", &a), Args::new().arg("v", &b));
        assert_ne!(f.key(&ka).unwrap(), f.key(&kb).unwrap(), "{a} vs {b}");
        let (ta, tb) = (format!("from {a}"), format!("from {b}"));
        assert_eq!(f.call(&ka, async { ta.clone() }).await, ta);
        assert_eq!(
            f.call(&kb, async { tb.clone() }).await,
            tb,
            "{b} got {a}'s value"
        );
    }
    // Plain strings and integers keep the readable form.
    let k = f
        .key(&Args::new().arg("user_id", &42).arg("name", "ada"))
        .unwrap();
    assert!(k.ends_with(":user_id=42:name=ada"), "{k}");
}
