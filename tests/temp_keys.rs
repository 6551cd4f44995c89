//! Temporary keys: deleted after Ok, Err, panic, cancellation and guard drop;
//! a safety TTL always applies; string, JSON and model values; standalone and
//! cluster.

mod support;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use redis_atomics::{
    DEFAULT_TEMPORARY_TTL, Error, ErrorKind, Invalid, RedisService, TempValue, Validate,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::{Deployment, both, pttl, raw, service_in};

/// Waits (bounded) for a background delete spawned by a dropped guard.
async fn wait_gone(svc: &RedisService, key: &str) {
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        while svc.exists(key).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "{key} still exists 5 s after its scope ended");
}

#[derive(Debug, PartialEq)]
enum AppError {
    Redis(ErrorKind),
    Business(&'static str),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Redis(e.kind())
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Job {
    id: u32,
}

impl Validate for Job {
    fn validate(&self) -> Result<(), Invalid> {
        if self.id == 0 {
            return Err(Invalid::new("must be > 0").at(".id"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn guard_with_default_ttl_and_explicit_delete() {
    for (label, svc) in both("tmp-guard").await {
        let guard = svc.temporary_key("t", "v", None).await.unwrap();
        assert_eq!(guard.key(), "t");
        assert_eq!(svc.get::<String>("t").await.unwrap().as_deref(), Some("v"));
        let ttl = pttl(&svc, &svc.key("t")).await;
        let default = DEFAULT_TEMPORARY_TTL.as_millis() as i64;
        assert!(ttl > default - 60_000 && ttl <= default, "{label}: {ttl}");
        assert!(guard.delete().await.unwrap());
        assert!(!svc.exists("t").await.unwrap(), "{label}");

        let guard = svc
            .temporary_key("t2", "v", Some(Duration::from_secs(5)))
            .await
            .unwrap();
        let ttl = pttl(&svc, &svc.key("t2")).await;
        assert!(ttl > 0 && ttl <= 5000, "{label}: {ttl}");
        drop(guard);
        wait_gone(&svc, "t2").await;
    }
}

#[tokio::test]
async fn keep_disarms_the_guard() {
    let svc = service_in(Deployment::Standalone, &support::unique_prefix("tmp-keep")).await;
    let guard = svc
        .temporary_key("k", "v", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(guard.keep(), "k");
    // Nothing was spawned; a later write/read round trip sees the key.
    tokio::task::yield_now().await;
    assert!(svc.exists("k").await.unwrap());
    assert!(pttl(&svc, &svc.key("k")).await > 0);
}

#[tokio::test]
async fn deleted_after_ok_and_after_err() {
    for (label, svc) in both("tmp-scope").await {
        let inner = svc.clone();
        let seen = svc
            .with_temporary_key("k", json!({"a": 1}), None, |key| async move {
                inner.get_json::<serde_json::Value>(&key).await
            })
            .await
            .unwrap();
        assert_eq!(seen, Some(json!({"a": 1})), "{label}");
        assert!(!svc.exists("k").await.unwrap(), "{label}: deleted after Ok");

        let inner = svc.clone();
        let err = svc
            .with_temporary_key("k", "x", None, |key| async move {
                assert!(inner.exists(&key).await?);
                Err::<(), _>(AppError::Business("nope"))
            })
            .await
            .unwrap_err();
        assert_eq!(err, AppError::Business("nope"));
        assert!(
            !svc.exists("k").await.unwrap(),
            "{label}: deleted after Err"
        );
    }
}

#[tokio::test]
async fn deleted_after_panic_and_the_panic_continues() {
    for (label, svc) in both("tmp-panic").await {
        let inner = svc.clone();
        let outcome = AssertUnwindSafe(svc.with_temporary_key("k", "x", None, |key| async move {
            assert!(inner.exists(&key).await.unwrap());
            panic!("boom in the body");
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        }))
        .catch_unwind()
        .await;
        let payload = outcome.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in the body"));
        assert!(
            !svc.exists("k").await.unwrap(),
            "{label}: deleted after panic"
        );
    }
}

#[tokio::test]
async fn deleted_when_cancelled_by_timeout_or_abort() {
    for (label, svc) in both("tmp-cancel").await {
        let (started_tx, mut started_rx) = tokio::sync::oneshot::channel();
        let inner = svc.clone();
        let mut call = Box::pin(svc.with_temporary_key("k", "x", None, |key| async move {
            assert!(inner.exists(&key).await?);
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
            Ok::<(), Error>(())
        }));
        // Run the call until its body runs (however slow the machine)...
        tokio::select! {
            r = &mut call => panic!("{label}: the body never ends, yet: {r:?}"),
            r = &mut started_rx => r.expect("the body ran"),
        }
        // ...then a timeout cancels (drops) it mid-body.
        let timed_out = tokio::time::timeout(Duration::from_millis(50), call).await;
        assert!(timed_out.is_err());
        wait_gone(&svc, "k").await;

        // An aborted task.
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let task_svc = svc.clone();
        let task = tokio::spawn(async move {
            let inner = task_svc.clone();
            task_svc
                .with_temporary_key("k2", "x", None, |_key| async move {
                    let _ = inner;
                    let _ = started_tx.send(());
                    std::future::pending::<()>().await;
                    Ok::<(), Error>(())
                })
                .await
        });
        started_rx.await.unwrap();
        assert!(svc.exists("k2").await.unwrap(), "{label}");
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        wait_gone(&svc, "k2").await;
    }
}

#[tokio::test]
async fn string_json_and_model_values() {
    let svc = service_in(
        Deployment::Standalone,
        &support::unique_prefix("tmp-values"),
    )
    .await;
    let g1 = svc
        .temporary_key("s", String::from("text"), None)
        .await
        .unwrap();
    let g2 = svc.temporary_key("j", json!([1, "ü"]), None).await.unwrap();
    let g3 = svc
        .temporary_key("m", TempValue::model(&Job { id: 7 }).unwrap(), None)
        .await
        .unwrap();
    let g4 = svc
        .temporary_key("b", &b"\x00\xffbytes"[..], None)
        .await
        .unwrap();
    assert_eq!(
        raw::<String>(&svc, redis::cmd("GET").arg(svc.key("s"))).await,
        "text"
    );
    assert_eq!(
        raw::<String>(&svc, redis::cmd("GET").arg(svc.key("j"))).await,
        r#"[1,"ü"]"#
    );
    assert_eq!(
        svc.get_model::<Job>("m").await.unwrap(),
        Some(Job { id: 7 })
    );
    assert_eq!(
        raw::<Vec<u8>>(&svc, redis::cmd("GET").arg(svc.key("b"))).await,
        b"\x00\xffbytes"
    );
    for g in [g1, g2, g3, g4] {
        assert!(g.delete().await.unwrap());
    }
    let err = TempValue::model(&Job { id: 0 }).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.path(), Some(".id"));
    // A zero TTL is refused before any round trip.
    let err = svc
        .temporary_key("z", "x", Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.attempts(), 0, "{err}");
    assert!(!svc.exists("z").await.unwrap());
}

#[test]
fn guard_dropped_outside_a_runtime_leaves_the_key_to_its_ttl() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = support::unique_prefix("tmp-nort");
    let (svc, guard) = rt.block_on(async {
        let svc = service_in(Deployment::Standalone, &p).await;
        let guard = svc
            .temporary_key("k", "v", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        (svc, guard)
    });
    drop(guard); // no runtime entered here: logged, not panicking
    rt.block_on(async {
        assert!(svc.exists("k").await.unwrap());
        let ttl = pttl(&svc, &svc.key("k")).await;
        assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_scopes_on_several_connections() {
    let p = support::unique_prefix("tmp-conc");
    let mut services = Vec::new();
    for _ in 0..2 {
        services.push(service_in(Deployment::Standalone, &p).await);
        services.push(service_in(Deployment::Cluster, &p).await);
    }
    let mut tasks = Vec::new();
    for t in 0..64 {
        let svc = services[t % services.len()].clone();
        tasks.push(tokio::spawn(async move {
            let inner = svc.clone();
            let key = format!("job:{t}");
            let r = svc
                .with_temporary_key(&key, t.to_string(), None, |key| async move {
                    let v: Option<String> = inner.get(&key).await?;
                    if t % 3 == 0 {
                        return Err(Error::validation("odd job"));
                    }
                    Ok(v)
                })
                .await;
            (t, r)
        }));
    }
    for task in tasks {
        let (t, r) = task.await.unwrap();
        match r {
            Ok(v) => assert_eq!(v, Some(t.to_string())),
            Err(e) => assert!(t % 3 == 0, "{e}"),
        }
    }
    for svc in &services {
        for t in 0..64 {
            assert!(!svc.exists(&format!("job:{t}")).await.unwrap());
        }
    }
}
