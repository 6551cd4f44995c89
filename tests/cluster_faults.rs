//! A Redis Cluster under failure, with load running: a manual
//! `CLUSTER FAILOVER`, a primary killed (replica promoted), and a slot
//! migrated between primaries (MOVED / ASK / TRYAGAIN). Every call either
//! succeeds or fails with a retryable error, calls succeed again after the
//! event, scripts work on the new primary (which never saw them), and no
//! write is lost.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::num::NonZeroU32;

use redis_atomics::{Algorithm, ErrorKind, Quota, RedisConfig, RedisService, SetOptions};
use support::load::{Tally, bounded, join_all, load, unit};
use support::{ProxiedCluster, RedisCluster};
use support::{command_calls, error_count, poll_until};

async fn connect(cluster: &RedisCluster) -> RedisService {
    let config = RedisConfig::builder()
        .cluster_nodes(cluster.nodes())
        // The deadline, not the count, ends retries: a call waits out a
        // failover that takes less than the deadline.
        .retry_count(1000)
        .retry_delay(Duration::from_millis(100))
        .max_retry_delay(Duration::from_millis(1000))
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(1000))
        .call_deadline(CALL_DEADLINE)
        .build()
        .unwrap();
    RedisService::connect(config).await.unwrap()
}

/// The per-call deadline of the services under failure (below the hang
/// watchdog of `support::load`).
const CALL_DEADLINE: Duration = Duration::from_secs(8);

/// Writers of increasing values during the killed-primary failover.
const WRITERS: usize = 4;

/// The key of write `i` of writer `w`: all in the slot of tag `{0}`.
fn write_key(w: usize, i: u64) -> String {
    format!("lw:{{0}}:w{w}:{i}")
}

/// A task that writes `write_key(w, 1)`, `write_key(w, 2)`, … one at a time
/// (each retried with the same value until acknowledged: `SET` of a fixed
/// value is idempotent), until `stop`.
struct Writer {
    /// The highest `i` acknowledged so far (writes are acknowledged in order).
    acked: Arc<AtomicU64>,
    /// The first `i` acknowledged after the kill (0: none yet).
    first_after_kill: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// What a writer acknowledged: every `i` up to `last`, those from
/// `first_after_kill` on by the promoted primary.
struct Written {
    last: u64,
    first_after_kill: u64,
}

impl Writer {
    fn spawn(
        service: &RedisService,
        w: usize,
        stop: &Arc<AtomicBool>,
        killed: &Arc<AtomicBool>,
    ) -> Self {
        let (acked, first_after_kill) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let task = {
            let (service, stop, killed) = (service.clone(), stop.clone(), killed.clone());
            let (acked, first_after_kill) = (acked.clone(), first_after_kill.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let key = write_key(w, i);
                    let set = service.set(&key, i, SetOptions::new());
                    if let Err(err) = bounded("a write", set).await {
                        panic!("write {i} of writer {w} failed: {err:?}");
                    }
                    // Read the flag after the acknowledgement: set, it means
                    // the victim was dead before the reply came.
                    if killed.load(Ordering::SeqCst) && first_after_kill.load(Ordering::SeqCst) == 0
                    {
                        first_after_kill.store(i, Ordering::SeqCst);
                    }
                    acked.store(i, Ordering::SeqCst);
                }
            })
        };
        Writer {
            acked,
            first_after_kill,
            task,
        }
    }

    async fn join(self) -> Written {
        bounded("a writer", self.task)
            .await
            .expect("a writer panicked");
        Written {
            last: self.acked.load(Ordering::SeqCst),
            first_after_kill: self.first_after_kill.load(Ordering::SeqCst),
        }
    }
}

/// Replication checkpoints on the primary of the writers' slot: read every
/// writer's acknowledged count, then (on the primary, after those writes)
/// `SET` a checkpoint key and `WAIT 1`. When the replica acknowledged it, it
/// has every write acknowledged before the read (one replication stream, in
/// order): those writes are *confirmed* and must survive a failover.
struct Checkpoints {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl Checkpoints {
    fn start(mut conn: redis::Connection, writers: &[Writer]) -> Self {
        let acked: Vec<_> = writers.iter().map(|w| w.acked.clone()).collect();
        let (stop, rounds) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let thread = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::spawn(move || {
                let mut confirmed = vec![0; acked.len()];
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let snapshot: Vec<u64> =
                        acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
                    redis::cmd("SET")
                        .arg("lw:{0}:checkpoint")
                        .arg(n)
                        .exec(&mut conn)
                        .unwrap();
                    let replicas: u64 = redis::cmd("WAIT")
                        .arg(1)
                        .arg(1000)
                        .query(&mut conn)
                        .unwrap();
                    if replicas >= 1 {
                        confirmed = snapshot;
                        rounds.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                confirmed
            })
        };
        Checkpoints {
            stop,
            rounds,
            thread,
        }
    }

    /// Stops checkpointing; the last confirmed count of each writer.
    fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the checkpoint thread panicked")
    }
}

/// No acknowledged write the cluster promised to keep is lost: every write
/// confirmed by a checkpoint before the kill, and every write acknowledged
/// by the promoted primary, is there, with its value. Writes acknowledged by
/// the victim after the last checkpoint may be lost (replication is
/// asynchronous); they are counted, not asserted.
async fn assert_no_lost_write(service: &RedisService, confirmed: &[u64], written: &[Written]) {
    let mut maybe_lost = 0;
    for (w, (&confirmed, written)) in confirmed.iter().zip(written).enumerate() {
        assert!(confirmed > 0, "writer {w}: no write was ever confirmed");
        assert!(
            written.first_after_kill > confirmed,
            "writer {w}: no write after the kill"
        );
        let keys: Vec<String> = (1..=written.last).map(|i| write_key(w, i)).collect();
        let found: std::collections::HashMap<String, u64> =
            bounded("read back", service.mget_json(&keys))
                .await
                .unwrap();
        for i in 1..=written.last {
            let value = found.get(&write_key(w, i)).copied();
            if value.is_none() && i > confirmed && i < written.first_after_kill {
                maybe_lost += 1;
                continue;
            }
            assert_eq!(
                value,
                Some(i),
                "writer {w}: write {i} lost (confirmed up to {confirmed}, acknowledged by the new primary from {}, last {})",
                written.first_after_kill,
                written.last
            );
        }
    }
    eprintln!(
        "no lost write: confirmed before the kill {confirmed:?}; {maybe_lost} unconfirmed writes acknowledged by the victim were lost"
    );
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
    poll_until("work done before the failover", || {
        tally.ok.load(Ordering::SeqCst) >= 12
    })
    .await;

    // 1. Graceful: a replica takes over with CLUSTER FAILOVER.
    let primary = cluster.primary_of_key("fault:{0}:m:a");
    let replica = cluster.replicas_of(primary)[0];
    let failed_before = tally.failed.load(Ordering::SeqCst);
    tokio::task::block_in_place(|| {
        redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .exec(&mut cluster.node(replica).connection())
            .unwrap();
        wait_role(&cluster, replica, "master");
        cluster.wait_ok();
    });
    let ok_after_failover = tally.ok.load(Ordering::SeqCst);
    poll_until("a success after the manual failover", || {
        tally.ok.load(Ordering::SeqCst) > ok_after_failover + 12
    })
    .await;
    assert_eq!(
        tally.failed.load(Ordering::SeqCst),
        failed_before,
        "a graceful failover failed a call"
    );

    // 2. A crash: kill the new primary; its replica (the old primary) is promoted.
    let victim = replica;
    let heir = cluster.replicas_of(victim)[0];
    // The heir forgets every script, so the first call after its promotion
    // must take the EVAL fallback there.
    let evals = tokio::task::block_in_place(|| {
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut cluster.node(heir).connection())
            .unwrap();
        command_calls(cluster.node(heir), "eval")
    });
    // Writers of increasing values into the victim's slot, and checkpoints
    // that confirm (WAIT) what the replica has received.
    let killed_flag = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| Writer::spawn(&service, w, &stop, &killed_flag))
        .collect();
    poll_until("every writer acknowledged a write", || {
        writers.iter().all(|w| w.acked.load(Ordering::SeqCst) > 0)
    })
    .await;
    let checkpoints = Checkpoints::start(cluster.node(victim).connection(), &writers);
    poll_until("a WAIT checkpoint confirmed writes of every writer", || {
        checkpoints.rounds.load(Ordering::SeqCst) >= 3
    })
    .await;
    let confirmed = tokio::task::block_in_place(|| checkpoints.stop());
    let failed_before_kill = tally.failed.load(Ordering::SeqCst);

    tokio::task::block_in_place(|| cluster.node_mut(victim).stop());
    let killed = Instant::now();
    killed_flag.store(true, Ordering::SeqCst);
    // A probe on the dead primary's slot: when does it answer again.
    let probe = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut i = 0;
            loop {
                i += 1;
                match bounded("probe", unit(&service, 0, i)).await {
                    Ok(()) => return Instant::now(),
                    Err(err) => assert!(err.is_retryable(), "{err:?}"),
                }
            }
        })
    };
    let promoted = tokio::task::block_in_place(|| {
        wait_role(&cluster, heir, "master");
        Instant::now()
    });
    let recovered = bounded("the probe", probe).await.unwrap();
    tokio::task::block_in_place(|| cluster.wait_ok());
    // Bounded recovery. The library's part: once the heir is primary, a call
    // answers within one call deadline (a call that began before the
    // promotion is retried until then). The cluster's part, from its config:
    // the failure is detected after the node timeout and agreed on within
    // another (failure reports), and an election round lasts at most two
    // node timeouts (`failover_auth_timeout`).
    let node_timeout = Duration::from_millis(support::CLUSTER_NODE_TIMEOUT_MS);
    assert!(
        recovered <= promoted + CALL_DEADLINE,
        "the slot answered {:?} after the heir was promoted (call deadline {CALL_DEADLINE:?})",
        recovered - promoted
    );
    let bound = node_timeout * 4 + CALL_DEADLINE;
    assert!(
        recovered - killed <= bound,
        "the slot answered {:?} after the kill; bound {bound:?}",
        recovered - killed
    );
    // Writes acknowledged by the heir, after the kill, for every writer.
    poll_until("every writer wrote to the promoted primary", || {
        writers
            .iter()
            .all(|w| w.first_after_kill.load(Ordering::SeqCst) > 0)
    })
    .await;
    // Calls after the failover, then stop.
    let ok_after_kill = tally.ok.load(Ordering::SeqCst);
    poll_until("successes after the failover", || {
        tally.ok.load(Ordering::SeqCst) > ok_after_kill + 12
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    join_all(workers).await;
    let mut written = Vec::new();
    for w in writers {
        written.push(w.join().await);
    }
    eprintln!(
        "failover: {} ok, {} failed; the killed primary's slot answered {:?} after the kill, {:?} after the promotion (node timeout {node_timeout:?}, deadline {CALL_DEADLINE:?})",
        tally.ok.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
        recovered - killed,
        recovered.saturating_duration_since(promoted),
    );
    assert_eq!(
        tally.failed.load(Ordering::SeqCst),
        failed_before_kill,
        "a call failed while the primary was down (retries should wait it out)"
    );
    assert_no_lost_write(&service, &confirmed, &written).await;
    // Scripts run on the promoted primary, which never loaded them by SHA1.
    bounded("script on the new primary", unit(&service, 0, 1))
        .await
        .unwrap();
    let ran_eval = tokio::task::block_in_place(|| command_calls(cluster.node(heir), "eval"));
    assert!(
        ran_eval > evals,
        "the promoted node never ran the EVAL fallback"
    );
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
    poll_until("work done before the migration", || {
        tally.ok.load(Ordering::SeqCst) >= 8
    })
    .await;

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
    let redirects_before = tokio::task::block_in_place(|| {
        error_count(cluster.node(src), "ASK") + error_count(cluster.node(src), "TRYAGAIN")
    });
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
    let redirects = tokio::task::block_in_place(|| {
        error_count(cluster.node(src), "ASK") + error_count(cluster.node(src), "TRYAGAIN")
    });
    assert!(
        redirects > redirects_before,
        "no ASK or TRYAGAIN happened during the migration"
    );
    let ok_after = tally.ok.load(Ordering::SeqCst);
    poll_until("successes after the move", || {
        tally.ok.load(Ordering::SeqCst) > ok_after + 8
    })
    .await;
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

/// A service on a proxied cluster, with retries left (so only the retry
/// policy's judgement stops a re-send) and scripts loaded on every primary.
async fn proxied_service(pc: &ProxiedCluster) -> RedisService {
    let config = RedisConfig::builder()
        .cluster_nodes(pc.nodes())
        .retry_count(3)
        .retry_delay(Duration::from_millis(20))
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let service = RedisService::connect(config).await.unwrap();
    let report = service.preload().await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    service
}

/// Defect 1 of issue 12: the cluster driver re-sent a non-idempotent script
/// whose reply was lost (`.retries(2)`), so one check counted twice and
/// returned `Ok`. The server runs the check, the node's proxy swallows the
/// reply, then the connection is reset: the call must fail, and the log must
/// hold exactly the one entry the server wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_check_reply_is_not_resent_behind_the_librarys_back_on_a_cluster() {
    let pc = tokio::task::block_in_place(ProxiedCluster::start);
    let service = proxied_service(&pc).await;
    let limit = NonZeroU32::new(10).unwrap();
    let limiter = service
        .rate_limiter("dc", Algorithm::SlidingLog, Quota::per_hour(limit))
        .unwrap();
    let id = support::unique_prefix("lost-reply");
    let log = limiter.keys(&id).unwrap().remove(0);
    let i = pc.node_of_key(&log);
    // The connection to that node exists before the fault.
    limiter.peek(&id).await.unwrap();
    let zcard = |key: &str| -> u64 {
        redis::cmd("ZCARD")
            .arg(key)
            .query(&mut pc.node(i).connection())
            .unwrap()
    };
    assert_eq!(zcard(&log), 0);

    pc.proxy(i).set_drop_replies(true);
    let call = {
        let (limiter, id) = (limiter.clone(), id.clone());
        tokio::spawn(async move { limiter.check(&id).await })
    };
    poll_until("the server ran the check", || zcard(&log) >= 1).await;
    pc.proxy(i).heal();
    pc.proxy(i).reset_all();
    let result = bounded("the check", call).await.unwrap();
    let err = result.expect_err("a check whose reply was lost must not answer Ok");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert_eq!(err.attempts(), 1, "{err:?}");
    assert_eq!(zcard(&log), 1, "the check was counted more than once");
    // The service is usable again, and the next check sees the one entry.
    let d = bounded("a later check", limiter.check(&id)).await.unwrap();
    assert_eq!(d.remaining(), 8, "{d:?}");
}

/// Defect 1, `SET NX`: a re-sent `SET NX` answers "not set" for the caller's
/// own write. The reply is lost after the server ran it: the call fails and
/// the node saw exactly one SET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_set_nx_reply_is_not_resent_on_a_cluster() {
    let pc = tokio::task::block_in_place(ProxiedCluster::start);
    let service = proxied_service(&pc).await;
    let key = format!("{{{}}}:nx", support::unique_prefix("lost-nx"));
    let j = pc.node_of_key(&key);
    service.exists(&key).await.unwrap();
    let node = pc.node(j);
    let sets_before = tokio::task::block_in_place(|| command_calls(node, "set"));
    pc.proxy(j).set_drop_replies(true);
    let call = {
        let (service, key) = (service.clone(), key.clone());
        tokio::spawn(async move { service.set(&key, "mine", SetOptions::new().nx()).await })
    };
    poll_until("the server ran SET NX", || {
        redis::cmd("EXISTS")
            .arg(&key)
            .query::<bool>(&mut node.connection())
            .unwrap()
    })
    .await;
    pc.proxy(j).heal();
    pc.proxy(j).reset_all();
    let result = bounded("SET NX", call).await.unwrap();
    let err = result.expect_err("a SET NX whose reply was lost must not answer");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    let sets = tokio::task::block_in_place(|| command_calls(node, "set")) - sets_before;
    assert_eq!(sets, 1, "SET NX was sent {sets} times");
}

/// Defect 11 of issue 12: a script call routed to a killed primary failed
/// with `ErrorKind::Script` ("Moved: …", not retryable) after 1.4–16.5 s.
/// While the replica takes over, every call must either succeed or fail with
/// a retryable cluster/connection error, within the configured deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_gives_retryable_errors_within_the_deadline() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start_with_replicas(1));
    // The default retry settings (they made the defect visible), with a
    // deadline shorter than the failover.
    let deadline = Duration::from_secs(3);
    let config = RedisConfig::builder()
        .cluster_nodes(cluster.nodes())
        .call_deadline(deadline)
        .build()
        .unwrap();
    let service = RedisService::connect(config).await.unwrap();
    let key = "dead:{0}:a";
    let keys = [key, "dead:{0}:b"];
    let script = |service: RedisService| async move {
        service
            .eval_script::<i64, _>(
                "mset_expire",
                &keys,
                &["60000", "1", "2"],
                redis_atomics::Idempotency::Idempotent,
            )
            .await
    };
    script(service.clone()).await.unwrap();
    let victim = cluster.primary_of_key(key);
    let heir = cluster.replicas_of(victim)[0];
    tokio::task::block_in_place(|| cluster.node_mut(victim).stop());
    let promoted = {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let waiter = std::thread::spawn(move || {
            wait_role(&cluster, heir, "master");
            cluster.wait_ok();
            flag.store(true, Ordering::SeqCst);
            cluster
        });
        (done, waiter)
    };
    let mut errors = Vec::new();
    let mut successes_after_promotion = 0;
    while successes_after_promotion < 3 {
        let promoted_before = promoted.0.load(Ordering::SeqCst);
        let t0 = Instant::now();
        let result = bounded("a script call", script(service.clone())).await;
        let took = t0.elapsed();
        // The deadline is a tokio timer: the slack is scheduling only.
        assert!(
            took <= deadline + Duration::from_secs(1),
            "a call took {took:?}, deadline {deadline:?}: {result:?}"
        );
        match result {
            Ok(_) if promoted_before => successes_after_promotion += 1,
            Ok(_) => {}
            Err(err) => {
                errors.push((err.kind(), took, err.attempts()));
                assert!(
                    err.is_retryable() && err.kind() != ErrorKind::Script,
                    "a dead primary surfaced as {err:?} after {took:?}; before: {errors:?}"
                );
            }
        }
    }
    eprintln!("errors while the primary was dead: {errors:?}");
    let cluster = promoted.1.join().unwrap();
    drop(cluster);
}
