//! [`TlsServer`]: a TLS-only `redis-server` (`--port 0 --tls-port P`) with a
//! throw-away CA made by [`TestPki`] (rcgen, nothing external), killed with
//! its temp dir on Drop. Needs a server built with TLS (Debian's 7.0 is; the
//! Redis 8.2 and Valkey wheels of the test matrix are not): without it,
//! [`TlsServer::start`] prints why and returns `None`, and the test skips.

use super::*;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA and what it signed, all PEM: a server certificate for `127.0.0.1`
/// only (so `localhost` tests the name check), and a client certificate.
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl TestPki {
    /// A fresh CA with its server and client certificates.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "redis-atomics test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().expect("leaf key");
            let mut params = CertificateParams::new(names).expect("leaf params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            let cert = params.signed_by(&key, &ca, &ca_key).expect("leaf cert");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert_pem, server_key_pem) = leaf(vec!["127.0.0.1".into()], "redis server");
        let (client_cert_pem, client_key_pem) = leaf(vec!["client".into()], "redis client");
        TestPki {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
        }
    }
}

/// A TLS-only server on 127.0.0.1 (no plain-text port).
pub struct TlsServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    _watchdog: Option<Child>,
}

impl TlsServer {
    /// Starts [`server_bin`] with TLS only, certificates from `pki`;
    /// `client_certs` sets `--tls-auth-clients` (mutual TLS required or not).
    /// `None`, with the reason printed, when the binary has no TLS support.
    pub fn start(pki: &TestPki, client_certs: bool) -> Option<Self> {
        Self::launch(pki, client_certs, false)
    }

    fn launch(pki: &TestPki, client_certs: bool, cluster: bool) -> Option<Self> {
        let bin = server_bin();
        let dir = make_temp_dir("tls");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            fs::write(&path, pem).expect("write a PEM file");
            path.display().to_string()
        };
        let cert = write("server.crt", &pki.server_cert_pem);
        let key = write("server.key", &pki.server_key_pem);
        let ca = write("ca.crt", &pki.ca_pem);
        let log = dir.join("server.log");
        let mut tries = Vec::new();
        for _ in 0..10 {
            let port = reserve_port(cluster);
            let cluster_args: Vec<String> = if cluster {
                let conf = dir.join("nodes.conf").display().to_string();
                ["--cluster-enabled", "yes", "--tls-cluster", "yes"]
                    .into_iter()
                    .map(String::from)
                    .chain(["--cluster-config-file".into(), conf])
                    .collect()
            } else {
                Vec::new()
            };
            let mut child = Command::new(&bin)
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
                .args(["--tls-ca-cert-file", &ca])
                .args([
                    "--tls-auth-clients",
                    if client_certs { "yes" } else { "no" },
                ])
                .args(["--dir", &dir.display().to_string()])
                .args(["--logfile", &log.display().to_string()])
                .args(&cluster_args)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
            let watchdog = spawn_watchdog(child.id(), &dir);
            let deadline = Instant::now() + STARTUP_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let out = file_tail(&log, 20);
                    if out.contains("Address already in use") {
                        tries.push(format!("port {port}: {status}"));
                        break;
                    }
                    if out.contains("Failed finding TLS support") {
                        eprintln!(
                            "skipping {}: {bin} is built without TLS",
                            current_test_name()
                        );
                        let _ = fs::remove_dir_all(&dir);
                        return None;
                    }
                    panic!("TLS redis-server exited with {status} (is it built with TLS?):\n{out}");
                }
                // Listening on the TLS port: the log says it is ready.
                if file_tail(&log, 20).contains("Ready to accept connections") {
                    return Some(TlsServer {
                        port,
                        dir,
                        child: Some(child),
                        _watchdog: watchdog,
                    });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!(
                        "TLS redis-server not ready within {STARTUP_TIMEOUT:?}:\n{}",
                        file_tail(&log, 20)
                    );
                }
                sleep(POLL);
            }
        }
        panic!(
            "TLS redis-server could not bind a port:\n{}",
            tries.join("\n")
        );
    }

    /// `rediss://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }

    /// The port of the TLS listener.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis-cli --tls --cacert CA` (the CA this server's dir holds).
    fn cli(&self) -> Command {
        let mut cmd = Command::new(cli_bin());
        cmd.arg("--tls")
            .arg("--cacert")
            .arg(self.dir.join("ca.crt"));
        cmd
    }
}

/// Three TLS-only primaries (`--tls-cluster yes`: the cluster bus is TLS
/// too) made a cluster with `redis-cli --tls --cluster create`.
pub struct TlsCluster {
    nodes: Vec<TlsServer>,
}

impl TlsCluster {
    /// `None`, with the reason printed, when the binary has no TLS support.
    pub fn start(pki: &TestPki) -> Option<Self> {
        let mut nodes = Vec::new();
        for _ in 0..CLUSTER_PRIMARIES {
            nodes.push(TlsServer::launch(pki, false, true)?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = nodes[0]
            .cli()
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --tls --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let ok = nodes.iter().all(|n| {
                n.cli()
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            });
            if ok {
                return Some(TlsCluster { nodes });
            }
            assert!(Instant::now() < deadline, "the TLS cluster never became ok");
            sleep(POLL);
        }
    }

    /// `rediss://127.0.0.1:PORT/` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(TlsServer::url).collect()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        release_port(self.port);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
