//! Free ports (a per-process reservation inside a range), temp dirs, log
//! files, and the watchdog that kills a server when the test process ends.

use super::*;

/// Ports handed out by this process and not yet released.
pub(super) fn used_ports() -> &'static Mutex<HashSet<u16>> {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    USED.get_or_init(Default::default)
}

/// Candidate ports: below the kernel's ephemeral range (so outgoing client
/// connections never sit on them), with room for the cluster bus at port+10000.
pub(super) fn port_range() -> (u16, u16) {
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

pub(super) fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Picks a port that is free now (and, for cluster nodes, whose bus port
/// port+10000 is free too) and that this process has not handed out yet.
pub(super) fn reserve_port(cluster: bool) -> u16 {
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

pub(super) fn release_port(port: u16) {
    lock(used_ports()).remove(&port);
}

pub(super) fn make_temp_dir(kind: &str) -> PathBuf {
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
pub(super) fn file_tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Everything appended to `path` after byte `offset`.
pub(super) fn read_from(path: &Path, offset: u64) -> String {
    let mut s = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_end(&mut s);
    }
    String::from_utf8_lossy(&s).into_owned()
}

pub(super) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Watchdog
// ---------------------------------------------------------------------------

/// Blocks on stdin (a pipe whose only writer is the test process, never written
/// to); once the test process is gone the pipe closes, `read` fails, and the
/// server is killed and its dir removed.
pub(super) const WATCHDOG_SCRIPT: &str =
    r#"while read -r _; do :; done; kill -9 "$1" 2>/dev/null; rm -rf -- "$2""#;

pub(super) fn spawn_watchdog(pid: u32, dir: &Path) -> Option<Child> {
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
