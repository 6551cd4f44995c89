//! Auto-retry against a real server that is stopped, restarted and made busy.

mod support;

use std::time::Duration;

use redis_atomics::{Backoff, ErrorKind, RedisConfig, RedisService, SetOptions};

fn config(url: String, retries: u32) -> RedisConfig {
    RedisConfig::builder()
        .url(url)
        .retry_count(retries)
        .retry_backoff(Backoff::Fixed)
        .retry_delay(Duration::from_millis(20))
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn stopped_server_fails_after_exactly_retry_count_retries_then_recovers() {
    let mut server = support::RedisServer::start();
    let svc = RedisService::connect(config(server.url(), 2))
        .await
        .unwrap();
    svc.set("k", "v", SetOptions::new()).await.unwrap();

    server.stop();
    for _ in 0..2 {
        let err = svc.get::<String>("k").await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
        assert_eq!(
            err.attempts(),
            3,
            "1 attempt + retry_count retries: {err:?}"
        );
        assert_eq!(err.key(), Some("k"));
    }

    server.restart();
    // The first operation after the restart succeeds (the retry policy covers
    // the reconnect); the data is gone because the server keeps nothing.
    let v = svc.get::<String>("k").await.unwrap();
    assert_eq!(v, None);
    assert!(svc.set("k", "again", SetOptions::new()).await.unwrap());
}

#[tokio::test]
async fn wrongtype_is_not_retried() {
    let server = support::shared_server().await;
    let p = support::unique_prefix("wrongtype");
    let svc = RedisService::connect(config(server.url(), 3))
        .await
        .unwrap();
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{p}:list");
    let _: () = redis::cmd("RPUSH")
        .arg(&key)
        .arg("a")
        .query_async(&mut raw)
        .await
        .unwrap();

    let err = svc.get::<String>(&key).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongType);
    assert_eq!(err.attempts(), 1);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains(&key), "{err}");
    let len: u64 = redis::cmd("LLEN")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(len, 1, "the list is untouched");
}

#[tokio::test]
async fn timeouts_retry_idempotent_operations_only() {
    let server = support::RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let svc = RedisService::connect(config(server.url(), 2))
        .await
        .unwrap();
    svc.set("k", "v", SetOptions::new()).await.unwrap();

    let client = server.client();
    let sleeper = tokio::spawn(async move {
        let no_timeout = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let mut c = client
            .get_multiplexed_async_connection_with_config(&no_timeout)
            .await
            .unwrap();
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(2)
            .query_async(&mut c)
            .await
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // SET NX is not idempotent: one attempt, then the timeout is returned.
    let err = svc.set("n", "1", SetOptions::new().nx()).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.attempts(), 1);

    // GET is: it is repeated, and each attempt times out.
    let err = svc.get::<String>("k").await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.attempts(), 3);

    sleeper.await.unwrap();
    // The connection is usable again afterwards.
    assert_eq!(svc.get::<String>("k").await.unwrap().as_deref(), Some("v"));
}
