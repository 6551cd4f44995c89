//! Proves that `tests/support` works: servers start, stop, restart on the same
//! port, clusters form, shared instances are shared, the search module loads,
//! and no server outlives the test process.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use support::{
    RedisCluster, RedisServer, SearchServer, shared_cluster, shared_search, shared_server,
    unique_prefix,
};

fn refuses(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// True if `pid` is a live process (a zombie waiting for its reaper is dead).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

async fn ping(client: &redis::Client) -> redis::RedisResult<String> {
    let mut con = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut con).await
}

#[tokio::test]
async fn standalone_starts_and_answers_ping() {
    let server = RedisServer::start();
    assert_eq!(ping(&server.client()).await.unwrap(), "PONG");
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The test config: no RDB snapshots, no AOF.
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(save, ["save", ""]);
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(aof, ["appendonly", "no"]);
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut con)
        .await
        .unwrap();
    eprintln!("{} -> {}", server.bin(), server.version_line());
    assert!(info.contains(&format!("tcp_port:{}", server.port())));
}

#[tokio::test]
async fn extra_args_are_applied() {
    let server =
        RedisServer::start_with(&["--maxmemory", "12mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, ["maxmemory-policy", "allkeys-lru"]);
}

#[test]
fn a_bad_config_fails_with_the_server_output() {
    let payload =
        std::panic::catch_unwind(|| RedisServer::start_with(&["--no-such-directive", "1"]))
            .err()
            .expect("a server with a bad directive started");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    // Redis 7.0 and Valkey print "FATAL CONFIG FILE ERROR"; Redis 8 takes
    // unknown directives for module configs and aborts later. All name it.
    assert!(msg.contains("redis test server exited with"), "{msg}");
    assert!(msg.contains(">>> 'no-such-directive"), "{msg}");
}

#[tokio::test]
async fn requirepass_server_starts() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let err = ping(&server.client()).await.unwrap_err();
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    let authed =
        redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", server.port())).unwrap();
    assert_eq!(ping(&authed).await.unwrap(), "PONG");
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_reuses_the_port() {
    let mut server = RedisServer::start();
    let port = server.port();
    let key = unique_prefix("restart");
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = con.set(&key, "before").await.unwrap();

    server.stop();
    assert!(!server.is_running());
    assert!(
        refuses(port),
        "port {port} still accepts connections after stop()"
    );
    assert!(ping(&server.client()).await.is_err());
    server.stop(); // idempotent

    server.restart();
    assert_eq!(server.port(), port);
    assert!(server.is_running());
    assert_eq!(ping(&server.client()).await.unwrap(), "PONG");
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // No persistence: a restart loses the data, like a crash.
    let v: Option<String> = con.get(&key).await.unwrap();
    assert_eq!(v, None);
}

#[tokio::test]
async fn drop_kills_the_server_and_removes_its_dir() {
    let server = RedisServer::start();
    let (port, dir, pid) = (
        server.port(),
        server.dir().to_owned(),
        server.pid().unwrap(),
    );
    assert!(dir.is_dir());
    drop(server);
    assert!(refuses(port));
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(!alive(pid), "pid {pid} still alive");
}

#[tokio::test]
async fn shared_server_is_one_instance() {
    let a = shared_server().await;
    let b = shared_server().await;
    assert!(std::ptr::eq(a, b));
    let handle = std::thread::spawn(|| support::shared_server_blocking().port());
    assert_eq!(handle.join().unwrap(), a.port());
    assert_eq!(ping(&a.client()).await.unwrap(), "PONG");
}

#[test]
fn unique_prefixes_differ_and_are_clean() {
    let a = unique_prefix("my::test name");
    let b = unique_prefix("my::test name");
    assert_ne!(a, b);
    assert!(a.starts_with("my__test_name-"), "{a}");
    assert!(
        a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "{a}"
    );
}

/// Sets and reads back keys spread over many slots through a cluster client.
async fn exercise_cluster(cluster: &RedisCluster, test: &str, keys: usize) {
    let client = cluster.client();
    let mut con = client.get_async_connection().await.unwrap();
    let prefix = unique_prefix(test);
    for i in 0..keys {
        let _: () = con.set(format!("{prefix}:{i}"), i).await.unwrap();
    }
    for i in 0..keys {
        let v: usize = con.get(format!("{prefix}:{i}")).await.unwrap();
        assert_eq!(v, i);
    }
}

#[tokio::test]
async fn shared_cluster_serves_keys_in_all_slots() {
    let cluster = shared_cluster().await;
    assert_eq!(cluster.len(), 3);
    assert!(std::ptr::eq(cluster, shared_cluster().await));
    exercise_cluster(cluster, "shared_cluster", 2000).await;

    // Every primary got keys, and every node answers SET/GET for every slot
    // (directly or by a MOVED to the right node).
    assert_eq!(cluster.primaries(), vec![0, 1, 2]);
    for url in cluster.nodes() {
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let keys: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert!(keys > 0, "{url} holds no keys");
    }
    let prefix = unique_prefix("moved");
    for (i, url) in cluster.nodes().iter().enumerate() {
        let key = format!("{prefix}:{i}");
        let owner = cluster.primary_of_key(&key);
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let res: redis::RedisResult<()> = redis::cmd("SET").arg(&key).arg(1).query(&mut con);
        if owner == i {
            res.unwrap();
        } else {
            let err = res.unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("127.0.0.1:{}", cluster.node(owner).port())),
                "{url}: {err}"
            );
        }
    }
}

#[tokio::test]
async fn cluster_with_replicas_survives_a_primary_failure() {
    let mut cluster = RedisCluster::start_with_replicas(1);
    assert_eq!(cluster.len(), 6);
    let prefix = unique_prefix("failover");
    exercise_cluster(&cluster, "replicas", 300).await;

    let key = format!("{prefix}:k");
    let victim = cluster.primary_of_key(&key);
    let replicas = cluster.replicas_of(victim);
    assert_eq!(
        replicas.len(),
        1,
        "primary {victim} has replicas {replicas:?}"
    );

    cluster.node_mut(victim).stop();
    cluster.wait_ok(); // the replica takes over
    let promoted = cluster.primary_of_key(&key);
    assert_eq!(promoted, replicas[0]);

    let client = cluster.client();
    let mut con = client.get_async_connection().await.unwrap();
    let _: () = con.set(&key, "after failover").await.unwrap();

    cluster.node_mut(victim).restart();
    cluster.wait_ok(); // the old primary rejoins as a replica
    assert_eq!(cluster.replicas_of(promoted), vec![victim]);
    let v: String = con.get(&key).await.unwrap();
    assert_eq!(v, "after failover");
}

#[tokio::test]
async fn shared_search_loads_the_module() {
    let Some(search) = shared_search().await else {
        return;
    };
    let mut con = search
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let indexes: Vec<String> = redis::cmd("FT._LIST").query_async(&mut con).await.unwrap();
    let prefix = unique_prefix("search");
    assert!(!indexes.contains(&prefix));
    let _: () = redis::cmd("FT.CREATE")
        .arg(&prefix)
        .arg("ON")
        .arg("HASH")
        .arg("PREFIX")
        .arg(1)
        .arg(format!("{prefix}:"))
        .arg("SCHEMA")
        .arg("title")
        .arg("TEXT")
        .query_async(&mut con)
        .await
        .unwrap();
    let indexes: Vec<String> = redis::cmd("FT._LIST").query_async(&mut con).await.unwrap();
    assert!(indexes.contains(&prefix), "{indexes:?}");
    eprintln!("search server: {}", search.version_line());
}

#[tokio::test]
async fn own_search_server_starts() {
    let Some(search) = SearchServer::start("own_search_server_starts") else {
        return;
    };
    let mut con = search
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let modules: redis::Value = redis::cmd("MODULE")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        format!("{modules:?}").contains("search"),
        "search module not listed: {modules:?}"
    );
}

/// In the child process (see below): starts servers that are never
/// dropped, prints where they are, and exits.
fn leave_servers_behind() {
    let shared = support::shared_server_blocking();
    let leaked = Box::leak(Box::new(RedisServer::start()));
    for s in [shared, &*leaked] {
        println!(
            "CHILD_SERVER port={} pid={} dir={}",
            s.port(),
            s.pid().unwrap(),
            s.dir().display()
        );
    }
}

/// Re-runs this very test in a child process (`SUPPORT_SMOKE_CHILD=1`), which
/// starts servers and exits without dropping them; the watchdogs must kill
/// them and remove their dirs.
#[test]
fn servers_do_not_outlive_the_test_process() {
    if std::env::var("SUPPORT_SMOKE_CHILD").is_ok() {
        leave_servers_behind();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "servers_do_not_outlive_the_test_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SUPPORT_SMOKE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let servers: Vec<(u16, u32, String)> = stdout
        .lines()
        .filter_map(|l| Some(&l[l.find("CHILD_SERVER ")? + "CHILD_SERVER ".len()..]))
        .map(|l| {
            let field = |name: &str| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap()
                    .to_owned()
            };
            (
                field("port=").parse().unwrap(),
                field("pid=").parse().unwrap(),
                field("dir="),
            )
        })
        .collect();
    assert_eq!(servers.len(), 2, "child output: {stdout}");
    let deadline = Instant::now() + Duration::from_secs(10);
    for (port, pid, dir) in servers {
        while !(refuses(port) && !alive(pid) && !Path::new(&dir).exists()) {
            assert!(
                Instant::now() < deadline,
                "server pid {pid} on port {port} (dir {dir}) outlived its test process"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
