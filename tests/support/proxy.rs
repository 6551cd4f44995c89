//! A TCP fault proxy between the crate and a real Redis: it forwards bytes
//! both ways and, on command, delays them, swallows them (a black hole: the
//! connection stays open but nothing arrives), refuses new connections, or
//! resets every open connection (RST, like a crashed peer or a middlebox).
//!
//! Threads, not tokio tasks, so it belongs to no test runtime: each
//! connection gets two pump threads that poll the fault switches every 20 ms.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Switches {
    delay_ms: AtomicU64,
    blackhole: AtomicBool,
    /// Requests reach the server, replies are thrown away.
    drop_replies: AtomicBool,
    refuse: AtomicBool,
    stopped: AtomicBool,
    /// Bumped by `reset_all`; a pump whose generation is older resets.
    generation: AtomicU64,
    open: AtomicUsize,
    accepted: AtomicUsize,
}

/// A fault-injecting TCP proxy on 127.0.0.1 and a free port. Stops (and
/// closes every connection) on Drop.
pub struct FaultProxy {
    port: u16,
    target: SocketAddr,
    switches: Arc<Switches>,
    streams: Arc<Mutex<Vec<(u64, TcpStream)>>>,
}

impl FaultProxy {
    /// Proxies 127.0.0.1:`target_port`.
    pub fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy addr").port();
        let target: SocketAddr = ([127, 0, 0, 1], target_port).into();
        let switches = Arc::new(Switches::default());
        let streams = Arc::new(Mutex::new(Vec::new()));
        {
            let switches = Arc::clone(&switches);
            let streams = Arc::clone(&streams);
            thread::spawn(move || accept_loop(listener, target, switches, streams));
        }
        FaultProxy {
            port,
            target,
            switches,
            streams,
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The proxied server's address.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Holds every chunk this long before forwarding it (both directions).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.switches.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// While on, bytes are read and thrown away: requests vanish, replies
    /// never come, connections stay open.
    pub fn set_blackhole(&self, on: bool) {
        self.switches.blackhole.store(on, Ordering::SeqCst);
    }

    /// While on, requests reach the server (which runs them) but their
    /// replies are thrown away: a lost reply after execution. Combine with
    /// [`reset_all`](Self::reset_all) to make the client see it at once.
    pub fn set_drop_replies(&self, on: bool) {
        self.switches.drop_replies.store(on, Ordering::SeqCst);
    }

    /// While on, new connections are accepted and closed at once.
    pub fn set_refuse(&self, on: bool) {
        self.switches.refuse.store(on, Ordering::SeqCst);
    }

    /// Resets (RST) every open connection; later connections work.
    pub fn reset_all(&self) {
        self.switches.generation.fetch_add(1, Ordering::SeqCst);
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        for (_, stream) in streams.drain(..) {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Back to a transparent proxy (no delay, no black hole, accepting).
    pub fn heal(&self) {
        self.set_delay(Duration::ZERO);
        self.set_blackhole(false);
        self.set_drop_replies(false);
        self.set_refuse(false);
    }

    /// Client connections open right now.
    pub fn open_connections(&self) -> usize {
        self.switches.open.load(Ordering::SeqCst)
    }

    /// Client connections accepted so far (refused ones included).
    pub fn accepted(&self) -> usize {
        self.switches.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.switches.stopped.store(true, Ordering::SeqCst);
        self.reset_all();
    }
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    switches: Arc<Switches>,
    streams: Arc<Mutex<Vec<(u64, TcpStream)>>>,
) {
    while !switches.stopped.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(POLL / 4);
                continue;
            }
            Err(_) => continue,
        };
        switches.accepted.fetch_add(1, Ordering::SeqCst);
        if switches.refuse.load(Ordering::SeqCst) {
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
            drop(client);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
            // The server is down: the client sees its connection closed.
            drop(client);
            continue;
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let generation = switches.generation.load(Ordering::SeqCst);
        {
            let mut s = streams.lock().unwrap_or_else(|p| p.into_inner());
            for stream in [&client, &server] {
                if let Ok(clone) = stream.try_clone() {
                    s.push((generation, clone));
                }
            }
        }
        switches.open.fetch_add(1, Ordering::SeqCst);
        let done = Arc::new(AtomicUsize::new(0));
        for (from, to, replies) in [(&client, &server, false), (&server, &client, true)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let switches = Arc::clone(&switches);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                pump(from, to, &switches, generation, replies);
                if done.fetch_add(1, Ordering::SeqCst) == 1 {
                    switches.open.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
    }
}

/// Copies `from` → `to` until either side closes or a reset is ordered;
/// `replies` is the server → client direction.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    switches: &Switches,
    generation: u64,
    replies: bool,
) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if switches.stopped.load(Ordering::SeqCst)
            || switches.generation.load(Ordering::SeqCst) != generation
        {
            let _ = socket2::SockRef::from(&from).set_linger(Some(Duration::ZERO));
            let _ = socket2::SockRef::from(&to).set_linger(Some(Duration::ZERO));
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        if switches.blackhole.load(Ordering::SeqCst)
            || (replies && switches.drop_replies.load(Ordering::SeqCst))
        {
            continue;
        }
        let delay = switches.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            thread::sleep(Duration::from_millis(delay));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
