//! RedisService: connecting, namespacing (global, view, override), basic key
//! operations, and config validation; standalone and cluster.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use redis_atomics::{ErrorKind, RedisConfig, RedisService, SetOptions, Ttl};
use support::Deployment::{Cluster, Standalone};
use support::{service, service_in};

async fn raw() -> redis::aio::MultiplexedConnection {
    let server = support::shared_server().await;
    server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn without_namespace_keys_are_untouched() {
    let p = support::unique_prefix("plain");
    let svc = service(Standalone).await;
    let key = format!("{p}:k");
    assert_eq!(svc.key(&key), key);
    assert!(svc.set(&key, "v", SetOptions::new()).await.unwrap());
    let stored: Option<String> = raw().await.get(&key).await.unwrap();
    assert_eq!(stored.as_deref(), Some("v"));
}

#[tokio::test]
async fn global_namespace_view_and_override() {
    let p = support::unique_prefix("ns");
    let global = service_in(Standalone, &format!("{p}-app")).await;
    global.set("k", "global", SetOptions::new()).await.unwrap();

    let view = global.with_namespace(format!("{p}-v2"));
    view.set("k", "view", SetOptions::new()).await.unwrap();

    // Per-operation override: a throwaway view for one call.
    global
        .with_namespace(format!("{p}-once"))
        .set("k", "once", SetOptions::new())
        .await
        .unwrap();

    let mut raw = raw().await;
    let g: String = raw.get(format!("{p}-app:k")).await.unwrap();
    let v: String = raw.get(format!("{p}-v2:k")).await.unwrap();
    let o: String = raw.get(format!("{p}-once:k")).await.unwrap();
    assert_eq!(
        (g.as_str(), v.as_str(), o.as_str()),
        ("global", "view", "once")
    );

    // Each view reads its own key, and the global one is unchanged by the others.
    assert_eq!(
        global.get::<String>("k").await.unwrap().as_deref(),
        Some("global")
    );
    assert_eq!(
        view.get::<String>("k").await.unwrap().as_deref(),
        Some("view")
    );
    assert_eq!(global.namespace(), Some(format!("{p}-app").as_str()));
    assert_eq!(global.without_namespace().key("k"), "k");
    // The bare key was never written.
    let bare: Option<String> = raw.get("k").await.unwrap();
    assert!(bare.is_none() || bare.as_deref() != Some("global"));
}

#[tokio::test]
async fn set_get_nx_xx_ex() {
    let p = support::unique_prefix("setget");
    let svc = service_in(Standalone, &p).await;
    assert_eq!(svc.get::<String>("missing").await.unwrap(), None);

    assert!(
        !svc.set("k", "1", SetOptions::new().xx()).await.unwrap(),
        "xx on a missing key"
    );
    assert!(svc.set("k", "1", SetOptions::new().nx()).await.unwrap());
    assert!(
        !svc.set("k", "2", SetOptions::new().nx()).await.unwrap(),
        "nx on an existing key"
    );
    assert!(svc.set("k", "3", SetOptions::new().xx()).await.unwrap());
    assert_eq!(svc.get::<String>("k").await.unwrap().as_deref(), Some("3"));
    assert_eq!(svc.ttl("k").await.unwrap(), Ttl::Persistent);

    let ttl = Duration::from_secs(30);
    svc.set("k", "4", SetOptions::new().ex(ttl)).await.unwrap();
    match svc.ttl("k").await.unwrap() {
        Ttl::Expires(d) => assert!(d <= ttl && d > Duration::from_secs(25), "{d:?}"),
        other => panic!("expected a TTL, got {other:?}"),
    }
    assert_eq!(svc.ttl("nope").await.unwrap(), Ttl::Missing);

    // Unicode and binary values round-trip.
    svc.set("ключ 🔑", "värde", SetOptions::new())
        .await
        .unwrap();
    assert_eq!(
        svc.get::<String>("ключ 🔑").await.unwrap().as_deref(),
        Some("värde")
    );
    let bytes: Vec<u8> = (0..=255).collect();
    svc.set("bin", bytes.as_slice(), SetOptions::new())
        .await
        .unwrap();
    assert_eq!(svc.get::<Vec<u8>>("bin").await.unwrap(), Some(bytes));
}

#[tokio::test]
async fn delete_exists_expire() {
    let p = support::unique_prefix("del");
    let svc = service_in(Standalone, &p).await;
    for k in ["a", "b", "c"] {
        svc.set(k, k, SetOptions::new()).await.unwrap();
    }
    assert!(svc.exists("a").await.unwrap());
    assert_eq!(svc.delete(&["a", "b", "zzz"]).await.unwrap(), 2);
    assert!(!svc.exists("a").await.unwrap());
    assert_eq!(svc.delete::<&str>(&[]).await.unwrap(), 0);

    assert!(svc.expire("c", Duration::from_millis(1500)).await.unwrap());
    assert!(
        matches!(svc.ttl("c").await.unwrap(), Ttl::Expires(d) if d <= Duration::from_millis(1500))
    );
    assert!(!svc.expire("missing", Duration::from_secs(1)).await.unwrap());
}

#[tokio::test]
async fn invalid_options_fail_before_any_round_trip() {
    let p = support::unique_prefix("invalid");
    let svc = service_in(Standalone, &p).await;
    let err = svc
        .set("k", "v", SetOptions::new().ex(Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.attempts(), 0);
    assert!(err.to_string().contains("greater than zero"), "{err}");
    assert!(
        err.to_string().contains(&format!("{p}:k")),
        "names the key: {err}"
    );
    assert!(!svc.exists("k").await.unwrap());

    let err = svc
        .set("k", "v", SetOptions::new().ex(Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.attempts(), 0);
    let err = svc.expire("k", Duration::ZERO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.attempts(), 0);
}

#[tokio::test]
async fn bad_config_values_are_clear_errors() {
    let zero = RedisConfig::builder()
        .response_timeout(Duration::ZERO)
        .build();
    assert!(
        zero.unwrap_err()
            .to_string()
            .contains("response_timeout must be greater than zero")
    );
    let empty = RedisConfig::builder()
        .cluster_nodes(Vec::<String>::new())
        .build();
    assert!(
        empty
            .unwrap_err()
            .to_string()
            .contains("cluster node list is empty")
    );
    let url = RedisConfig::builder().url("http://x").build();
    assert_eq!(url.unwrap_err().kind(), ErrorKind::Config);
}

#[tokio::test]
async fn connect_to_nothing_is_a_clear_retryable_error() {
    let port = support::reserve_free_port();
    let config = RedisConfig::builder()
        .url(format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = RedisService::connect(config).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn from_an_existing_connection() {
    let server = support::shared_server().await;
    let manager = server.client().get_connection_manager().await.unwrap();
    let p = support::unique_prefix("fromconn");
    let config = RedisConfig::builder().namespace(&p).build().unwrap();
    let svc = RedisService::from_connection(manager, config);
    svc.set("k", "v", SetOptions::new()).await.unwrap();
    let v: String = raw().await.get(format!("{p}:k")).await.unwrap();
    assert_eq!(v, "v");
    // Clones share the connection and are Send + Sync.
    fn assert_send_sync<T: Send + Sync + Clone>(_: &T) {}
    assert_send_sync(&svc);
}

#[tokio::test]
async fn cluster_basic_operations_on_every_primary() {
    let p = support::unique_prefix("cl");
    let svc = service_in(Cluster, &p).await;
    assert!(svc.is_cluster());
    assert_eq!(svc.primaries().await.unwrap().len(), 3);

    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    let slots: std::collections::BTreeSet<u16> = keys
        .iter()
        .map(|k| redis_atomics::keys::slot(svc.key(k).as_bytes()) / 5462)
        .collect();
    assert_eq!(slots.len(), 3, "the keys cover all three primaries");
    for k in &keys {
        svc.set(k, k, SetOptions::new().ex(Duration::from_secs(60)))
            .await
            .unwrap();
    }
    for k in &keys {
        assert_eq!(
            svc.get::<String>(k).await.unwrap().as_deref(),
            Some(k.as_str())
        );
    }
    assert_eq!(svc.delete(&keys).await.unwrap(), 60);
    assert!(!svc.exists("k0").await.unwrap());
}
