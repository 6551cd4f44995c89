//! A Redis Cluster under failure, with load running: a manual
//! `CLUSTER FAILOVER`, a primary killed (replica promoted), and a slot
//! migrated between primaries (MOVED / ASK / TRYAGAIN). Every call either
//! succeeds or fails with a retryable error, calls succeed again after the
//! event, scripts work on the new primary (which never saw them), and no
//! write is lost.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_atomics::{RedisConfig, RedisService};
use support::RedisCluster;
use support::load::{Tally, bounded, join_all, load, unit};

async fn connect(cluster: &RedisCluster) -> RedisService {
    let config = RedisConfig::builder()
        .cluster_nodes(cluster.nodes())
        .retry_count(8)
        .retry_delay(Duration::from_millis(100))
        .max_retry_delay(Duration::from_millis(1000))
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(1000))
        .build()
        .unwrap();
    RedisService::connect(config).await.unwrap()
}

fn slot_of(cluster: &RedisCluster, key: &str) -> u16 {
    let i = cluster.primaries()[0];
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut cluster.node(i).connection())
        .unwrap()
}

/// Waits until `node` reports the given role.
fn wait_role(cluster: &RedisCluster, node: usize, role: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("ROLE")
            .query::<Vec<redis::Value>>(&mut cluster.node(node).connection())
            .ok()
            .and_then(|v| match v.first() {
                Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        if info == role {
            return;
        }
        assert!(Instant::now() < deadline, "node {node} never became {role}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every worker's script keys hold what the last successful write stored.
async fn assert_writes_readable(service: &RedisService, workers: usize) {
    for w in 0..workers {
        for part in ["a", "b"] {
            let key = format!("fault:{{{w}}}:m:{part}");
            let v: Option<String> = bounded("read back", service.get(&key)).await.unwrap();
            assert!(v.is_some(), "{key} lost");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failover_and_a_killed_primary_under_load() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start_with_replicas(1));
    let service = connect(&cluster).await;
    let (stop, tally, started) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Tally::default()),
        Instant::now(),
    );
    let workers = load(&service, 12, &stop, &tally, started);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. Graceful: a replica takes over with CLUSTER FAILOVER.
    let primary = cluster.primary_of_key("fault:{0}:m:a");
    let replica = cluster.replicas_of(primary)[0];
    tokio::task::block_in_place(|| {
        redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .exec(&mut cluster.node(replica).connection())
            .unwrap();
        wait_role(&cluster, replica, "master");
        cluster.wait_ok();
    });
    let ok_after_failover = tally.ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        tally.ok.load(Ordering::SeqCst) > ok_after_failover,
        "no success after the manual failover"
    );

    // 2. A crash: kill the new primary; its replica (the old primary) is promoted.
    let victim = replica;
    let heir = cluster.replicas_of(victim)[0];
    tokio::task::block_in_place(|| cluster.node_mut(victim).stop());
    let killed = Instant::now();
    // A probe on the dead primary's slot: how long until it answers again.
    let probe = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut i = 0;
            loop {
                i += 1;
                match bounded("probe", unit(&service, 0, i)).await {
                    Ok(()) => return killed.elapsed(),
                    Err(err) => assert!(err.is_retryable(), "{err:?}"),
                }
            }
        })
    };
    tokio::task::block_in_place(|| {
        wait_role(&cluster, heir, "master");
        cluster.wait_ok();
    });
    let recovered = bounded("the probe", probe).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    join_all(workers).await;
    eprintln!(
        "failover: {} ok, {} failed (all retryable); the killed primary's slot answered {recovered:?} after the kill (node timeout {} ms)",
        tally.ok.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
        support::CLUSTER_NODE_TIMEOUT_MS
    );
    assert!(tally.ok.load(Ordering::SeqCst) > 0);

    // Scripts run on the promoted primary, which never loaded them by SHA1.
    bounded("script on the new primary", unit(&service, 0, 1))
        .await
        .unwrap();
    assert_writes_readable(&service, 12).await;

    // The crashed node comes back as a replica and the cluster is whole again.
    tokio::task::block_in_place(|| {
        cluster.node_mut(victim).restart();
        cluster.wait_ok();
    });
    bounded("after the rejoin", unit(&service, 1, 2))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_migration_under_load_is_invisible() {
    let cluster = tokio::task::block_in_place(RedisCluster::start);
    let service = connect(&cluster).await;
    let (stop, tally, started) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Tally::default()),
        Instant::now(),
    );
    let workers = load(&service, 8, &stop, &tally, started);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Move the slot of worker 0's script keys to another primary, key by key,
    // while the workers write to it (ASK while migrating, MOVED after).
    let key = "fault:{0}:m:a";
    let slot = slot_of(&cluster, key);
    let src = cluster.primary_of_key(key);
    let dst = *cluster.primaries().iter().find(|&&i| i != src).unwrap();
    let id = |i: usize| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut cluster.node(i).connection())
            .unwrap()
    };
    let (src_id, dst_id) = (id(src), id(dst));
    tokio::task::block_in_place(|| {
        let mut s = cluster.node(src).connection();
        let mut d = cluster.node(dst).connection();
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&src_id)
            .exec(&mut d)
            .unwrap();
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&dst_id)
            .exec(&mut s)
            .unwrap();
        let port = cluster.node(dst).port();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(1)
                .query(&mut s)
                .unwrap();
            if keys.is_empty() {
                break;
            }
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("REPLACE")
                .arg("KEYS")
                .arg(&keys)
                .exec(&mut s)
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        for i in cluster.primaries() {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&dst_id)
                .exec(&mut cluster.node(i).connection())
                .unwrap();
        }
        cluster.wait_ok();
    });
    assert_eq!(cluster.primary_of_key(key), dst, "the slot moved");
    let ok_after = tally.ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    join_all(workers).await;
    eprintln!(
        "slot migration: {} ok, {} failed (all retryable)",
        tally.ok.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst)
    );
    assert!(
        tally.ok.load(Ordering::SeqCst) > ok_after,
        "no success after the move"
    );
    assert_eq!(
        tally.failed.load(Ordering::SeqCst),
        0,
        "MOVED / ASK / TRYAGAIN reached a caller despite the retry policy"
    );
    assert_writes_readable(&service, 8).await;
}
