//! [`RedisServer`]: one `redis-server` / `valkey-server` process on a free
//! port, killed with its temp dir on Drop.

use super::*;

pub(super) enum StartError {
    /// The port (or the cluster bus port) was taken: try another one.
    PortInUse(String),
    Failed(String),
}

pub(super) struct Running {
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
    pub(super) password: Option<String>,
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

    pub(super) fn launch(bin: &str, args: &[&str], cluster: bool) -> Self {
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

    /// Blocks until the server stops answering (a `DEBUG SLEEP` has begun):
    /// a `PING` on a fresh connection gets no reply within 50 ms. Polls;
    /// panics after 10 s. Replaces "sleep a little and hope it started".
    pub fn wait_until_busy(&self) {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port))
                .expect("connect to the test server");
            conn.set_read_timeout(Some(std::time::Duration::from_millis(50)))
                .expect("read timeout");
            conn.write_all(b"PING\r\n").expect("send PING");
            let mut buf = [0u8; 16];
            match conn.read(&mut buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return;
                }
                _ => {}
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never became busy"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
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

    pub(super) fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
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

pub(super) fn percent_encode(s: &str) -> String {
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
pub(super) fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')
            .map(|v| v.trim_end_matches('\r'))
    })
}
