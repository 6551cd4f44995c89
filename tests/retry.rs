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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    tokio::task::block_in_place(|| server.wait_until_busy());

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

// ---------------------------------------------------------------------------
// The retry table against real servers: each row makes the server (or the
// network) produce the failure, and counts what the server saw.
// ---------------------------------------------------------------------------

use redis_atomics::Idempotency;
use support::RedisServer;
use support::{command_calls, error_count, poll_until};

/// READONLY (a write on a replica) is retried for idempotent and
/// non-idempotent writes alike: the replica refused it each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_is_retried_for_every_idempotency() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let svc = RedisService::connect(config(replica.url(), 3))
        .await
        .unwrap();
    for (opts, what) in [
        (SetOptions::new(), "SET"),
        (SetOptions::new().nx(), "SET NX"),
    ] {
        let before = tokio::task::block_in_place(|| error_count(&replica, "READONLY"));
        let err = svc.set("k", "v", opts).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{what}: {err:?}");
        assert_eq!(err.attempts(), 4, "{what}: {err:?}");
        let refused = tokio::task::block_in_place(|| error_count(&replica, "READONLY")) - before;
        assert_eq!(refused, 4, "{what}: the replica refused every attempt");
    }
}

/// MASTERDOWN (a replica that may not serve stale data, its primary gone)
/// is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masterdown_is_retried() {
    let mut primary = RedisServer::start();
    let port = primary.port().to_string();
    primary.stop();
    // Configured after the start: such a replica does not even answer PING.
    let replica = RedisServer::start();
    for args in [
        &["CONFIG", "SET", "replica-serve-stale-data", "no"][..],
        &["REPLICAOF", "127.0.0.1", &port][..],
    ] {
        redis::cmd(args[0])
            .arg(&args[1..])
            .exec(&mut replica.connection())
            .unwrap();
    }
    let svc = RedisService::connect(config(replica.url(), 3))
        .await
        .unwrap();
    let err = svc.get::<String>("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert_eq!(err.attempts(), 4, "{err:?}");
    let seen = tokio::task::block_in_place(|| error_count(&replica, "MASTERDOWN"));
    assert_eq!(seen, 4, "the replica refused every attempt");
}

/// A refused connection means the command never left: a non-idempotent
/// `SET NX` is retried, and succeeds once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_retried_for_non_idempotent_calls() {
    let mut server = RedisServer::start();
    let svc = RedisService::connect(config(server.url(), 3))
        .await
        .unwrap();
    svc.get::<String>("warm").await.unwrap();
    tokio::task::block_in_place(|| server.stop());
    // The first call finds the old connection closed (ambiguous for a write).
    let _ = svc.get::<String>("k").await;
    let err = svc.set("n", "1", SetOptions::new().nx()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert_eq!(err.attempts(), 4, "refused, so retried: {err:?}");

    let patient = RedisService::connect(config(server.url(), 3)).await;
    assert!(patient.is_err(), "the server is down");
    let svc = RedisService::from_connection(
        svc.connection(),
        RedisConfig::builder()
            .url(server.url())
            .retry_count(500)
            .retry_backoff(Backoff::Fixed)
            .retry_delay(Duration::from_millis(20))
            .call_deadline(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let call = {
        let svc = svc.clone();
        tokio::spawn(async move { svc.set("n", "1", SetOptions::new().nx()).await })
    };
    tokio::task::block_in_place(|| server.restart());
    let set = call
        .await
        .unwrap()
        .expect("retried until the server was back");
    assert!(set, "SET NX ran once, on the restarted (empty) server");
}

/// A connection reset after the server ran a non-idempotent command (its
/// reply lost) is not retried; an idempotent read in the same situation is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_request_is_retried_only_when_idempotent() {
    let server = RedisServer::start();
    let proxy = support::proxy::FaultProxy::start(server.port());
    let cfg = RedisConfig::builder()
        .url(proxy.url())
        .retry_count(3)
        .retry_backoff(Backoff::Fixed)
        .retry_delay(Duration::from_millis(20))
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let svc = RedisService::connect(cfg).await.unwrap();
    // `set` runs a script: loaded first, so the dropped reply is the
    // script's own and not a NOSCRIPT before its EVAL fallback.
    svc.preload().await.unwrap();
    for (op, idempotency) in [
        ("set", Idempotency::NonIdempotent),
        ("get", Idempotency::Idempotent),
    ] {
        // Connected (and the handshake done) before replies are dropped.
        svc.exists("warm").await.unwrap();
        let before = tokio::task::block_in_place(|| command_calls(&server, op));
        proxy.set_drop_replies(true);
        let call = {
            let svc = svc.clone();
            tokio::spawn(async move {
                match idempotency {
                    Idempotency::NonIdempotent => {
                        svc.set("n", "1", SetOptions::new().nx()).await.map(|_| ())
                    }
                    Idempotency::Idempotent => svc.get::<String>("n").await.map(|_| ()),
                }
            })
        };
        poll_until(&format!("the server ran {op}"), || {
            command_calls(&server, op) > before
        })
        .await;
        proxy.heal();
        proxy.reset_all();
        let result = call.await.unwrap();
        let ran = tokio::task::block_in_place(|| command_calls(&server, op)) - before;
        match idempotency {
            Idempotency::NonIdempotent => {
                let err = result.expect_err("a reset mid-request must not be retried");
                assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
                assert_eq!(err.attempts(), 1, "{err:?}");
                assert_eq!(ran, 1, "SET NX ran {ran} times");
            }
            Idempotency::Idempotent => {
                result.expect("an idempotent read is retried after the reset");
                assert_eq!(ran, 2, "GET ran {ran} times: once lost, once answered");
            }
        }
    }
}

/// The cluster rows, on one cluster of this test's own (it moves a slot
/// and unassigns one): ASK is followed (also for a non-idempotent script,
/// since the node did not run it), TRYAGAIN and CLUSTERDOWN are retried
/// until the slot is whole again. INFO errorstats shows each really happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_tryagain_and_clusterdown_on_a_cluster() {
    let cluster = tokio::task::block_in_place(support::RedisCluster::start);
    let cfg = RedisConfig::builder()
        .cluster_nodes(cluster.nodes())
        .retry_count(1000)
        .retry_backoff(Backoff::Fixed)
        .retry_delay(Duration::from_millis(20))
        .call_deadline(Duration::from_secs(30))
        .build()
        .unwrap();
    let svc = RedisService::connect(cfg).await.unwrap();
    let script = |svc: RedisService, tag: &'static str| async move {
        let (a, b) = (format!("{{{tag}}}:a"), format!("{{{tag}}}:b"));
        svc.eval_script::<i64, _>(
            "mset_expire",
            &[a.as_str(), b.as_str()],
            &["60000", "1", "2"],
            Idempotency::NonIdempotent,
        )
        .await
    };
    // A one-key write: an importing node answers TRYAGAIN to a multi-key
    // request whose keys are not all there yet.
    let one = |svc: RedisService, tag: &'static str| async move {
        let a = format!("{{{tag}}}:a");
        svc.eval_script::<i64, _>(
            "mset_expire",
            &[a.as_str()],
            &["60000", "1"],
            Idempotency::NonIdempotent,
        )
        .await
    };
    let cmd = |node: &RedisServer, args: &[&str]| {
        redis::cmd(args[0])
            .arg(&args[1..])
            .exec(&mut node.connection())
            .unwrap()
    };
    let id = |i: usize| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut cluster.node(i).connection())
            .unwrap()
    };
    let slot = |key: &str| -> String {
        let s: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut cluster.node(0).connection())
            .unwrap();
        s.to_string()
    };

    // ASK: the slot is migrating and its keys are not on the source.
    let tag = "ask";
    let s = slot("{ask}");
    let src = cluster.primary_of_key("{ask}");
    let dst = (src + 1) % support::CLUSTER_PRIMARIES;
    let (src_id, dst_id) = (id(src), id(dst));
    tokio::task::block_in_place(|| {
        cmd(
            cluster.node(dst),
            &["CLUSTER", "SETSLOT", &s, "IMPORTING", &src_id],
        );
        cmd(
            cluster.node(src),
            &["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst_id],
        );
    });
    let asks = tokio::task::block_in_place(|| error_count(cluster.node(src), "ASK"));
    one(svc.clone(), tag).await.expect("ASK is followed");
    tokio::task::block_in_place(|| {
        assert!(
            error_count(cluster.node(src), "ASK") > asks,
            "no ASK happened"
        );
        assert!(
            command_calls(cluster.node(dst), "asking") >= 1,
            "no ASKING sent"
        );
        let on_dst: u64 = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(&s)
            .query(&mut cluster.node(dst).connection())
            .unwrap();
        assert_eq!(on_dst, 1, "the script ran on the importing node");
        for i in cluster.primaries() {
            cmd(
                cluster.node(i),
                &["CLUSTER", "SETSLOT", &s, "NODE", &dst_id],
            );
        }
    });

    // TRYAGAIN: a multi-key script while one key is migrated, one is not.
    let tag = "try";
    let s = slot("{try}");
    script(svc.clone(), tag).await.unwrap();
    let src = cluster.primary_of_key("{try}");
    let dst = (src + 1) % support::CLUSTER_PRIMARIES;
    let (src_id, dst_id) = (id(src), id(dst));
    let dst_port = cluster.node(dst).port().to_string();
    let tries = tokio::task::block_in_place(|| {
        cmd(
            cluster.node(dst),
            &["CLUSTER", "SETSLOT", &s, "IMPORTING", &src_id],
        );
        cmd(
            cluster.node(src),
            &["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst_id],
        );
        let migrate = [
            "MIGRATE",
            "127.0.0.1",
            &dst_port,
            "",
            "0",
            "5000",
            "KEYS",
            "{try}:b",
        ];
        cmd(cluster.node(src), &migrate);
        error_count(cluster.node(src), "TRYAGAIN")
    });
    let call = tokio::spawn(script(svc.clone(), tag));
    poll_until("TRYAGAIN", || {
        error_count(cluster.node(src), "TRYAGAIN") > tries
    })
    .await;
    tokio::task::block_in_place(|| {
        let migrate = [
            "MIGRATE",
            "127.0.0.1",
            &dst_port,
            "",
            "0",
            "5000",
            "KEYS",
            "{try}:a",
        ];
        cmd(cluster.node(src), &migrate);
        for i in cluster.primaries() {
            cmd(
                cluster.node(i),
                &["CLUSTER", "SETSLOT", &s, "NODE", &dst_id],
            );
        }
    });
    call.await
        .unwrap()
        .expect("TRYAGAIN is retried until the slot has moved");

    // CLUSTERDOWN: the owner stops serving the slot, then serves it again.
    let s = slot("{down}");
    let owner = cluster.primary_of_key("{down}");
    let downs = tokio::task::block_in_place(|| {
        cmd(cluster.node(owner), &["CLUSTER", "DELSLOTS", &s]);
        error_count(cluster.node(owner), "CLUSTERDOWN")
    });
    let call = tokio::spawn(script(svc.clone(), "down"));
    poll_until("CLUSTERDOWN", || {
        error_count(cluster.node(owner), "CLUSTERDOWN") > downs
    })
    .await;
    tokio::task::block_in_place(|| cmd(cluster.node(owner), &["CLUSTER", "ADDSLOTS", &s]));
    call.await
        .unwrap()
        .expect("CLUSTERDOWN is retried until the slot is served");
}

/// LOADING (a server loading its dataset) is retried, for idempotent and
/// non-idempotent calls alike: the server refused the command, it did not
/// run it. `DEBUG RELOAD` saves and reloads the dataset; a per-key load
/// delay makes the load last, and processing events every 1 KiB of it makes
/// the server answer `-LOADING` meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_is_retried_until_the_dataset_is_loaded() {
    let server = RedisServer::start_with(&["--loading-process-events-interval-bytes", "1024"]);
    let svc = RedisService::connect(
        RedisConfig::builder()
            .url(server.url())
            .retry_count(10_000)
            .retry_backoff(Backoff::Fixed)
            .retry_delay(Duration::from_millis(20))
            .call_deadline(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    svc.set("k", "v", SetOptions::new()).await.unwrap();
    tokio::task::block_in_place(|| {
        let mut c = server.connection();
        // 2,000 keys of 1 KiB, 1 ms each: a load of about 2 s.
        for args in [
            &["DEBUG", "POPULATE", "2000", "pad", "1024"][..],
            &["CONFIG", "SET", "key-load-delay", "1000"][..],
        ] {
            redis::cmd(args[0]).arg(&args[1..]).exec(&mut c).unwrap();
        }
    });
    let reload = {
        let mut c = server.connection();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        std::thread::spawn(move || redis::cmd("DEBUG").arg("RELOAD").exec(&mut c))
    };
    // A raw client sees the server loading, so the calls below start then.
    let mut raw = server.connection();
    poll_until("the server is loading", || {
        matches!(redis::cmd("GET").arg("k").query::<Option<String>>(&mut raw),
            Err(e) if e.code() == Some("LOADING"))
    })
    .await;
    let loadings = tokio::task::block_in_place(|| error_count(&server, "LOADING"));
    let (get, set_nx) = tokio::join!(
        svc.get::<String>("k"),
        svc.set("n", "1", SetOptions::new().nx())
    );
    let still_loading = !reload.is_finished();
    reload.join().unwrap().expect("DEBUG RELOAD");
    assert_eq!(
        get.expect("GET retried through LOADING").as_deref(),
        Some("v")
    );
    assert!(set_nx.expect("SET NX retried through LOADING"), "set once");
    let refused = tokio::task::block_in_place(|| error_count(&server, "LOADING")) - loadings;
    assert!(
        refused >= 2,
        "each of the service's calls met LOADING ({refused} refusals, still loading after them: {still_loading})"
    );
    assert_eq!(svc.get::<String>("n").await.unwrap().as_deref(), Some("1"));
}
