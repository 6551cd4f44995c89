//! [`RedisCluster`]: three primaries (plus replicas) created with
//! `redis-cli --cluster create`, and waits for a healthy, agreed slot map.

use super::*;

/// A Redis Cluster of [`CLUSTER_PRIMARIES`] primaries and N replicas per
/// primary, all on 127.0.0.1, killed on Drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    replicas_per_primary: usize,
}

/// One line of `CLUSTER NODES`, normalized so views of different nodes compare.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct NodeEntry {
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

pub(super) fn parse_cluster_nodes(text: &str) -> Vec<NodeEntry> {
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

pub(super) fn slot_count(ranges: &[String]) -> usize {
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

pub(super) fn slot_in(ranges: &[String], slot: usize) -> bool {
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

/// A 3-primary cluster whose every client connection goes through a
/// [`FaultProxy`](super::proxy::FaultProxy) per node: each node announces its
/// proxy's port (`cluster-announce-port`), so the slot map a client discovers
/// (`CLUSTER SLOTS`, MOVED, ASK) names the proxies, while the cluster bus
/// stays direct (`cluster-announce-bus-port`). Faults set on a node's proxy
/// hit only the client traffic of that node.
pub struct ProxiedCluster {
    cluster: RedisCluster,
    proxies: Vec<super::proxy::FaultProxy>,
}

impl ProxiedCluster {
    /// Starts the cluster, puts a proxy in front of each node and waits until
    /// every node's `CLUSTER SLOTS` names only proxy ports.
    pub fn start() -> Self {
        let cluster = RedisCluster::start();
        let proxies: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| super::proxy::FaultProxy::start(n.port()))
            .collect();
        for (node, proxy) in cluster.nodes.iter().zip(&proxies) {
            let mut con = node.connection();
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("cluster-announce-bus-port")
                .arg(node.port() + 10_000)
                .exec(&mut con)
                .expect("CONFIG SET cluster-announce-bus-port");
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("cluster-announce-port")
                .arg(proxy.port())
                .exec(&mut con)
                .expect("CONFIG SET cluster-announce-port");
        }
        let this = ProxiedCluster { cluster, proxies };
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            match this.check_announced() {
                Ok(()) => return this,
                Err(e) if Instant::now() > deadline => {
                    panic!("the proxied cluster never announced its proxies: {e}")
                }
                Err(_) => sleep(POLL),
            }
        }
    }

    fn check_announced(&self) -> Result<(), String> {
        let want: HashSet<u16> = self.proxies.iter().map(|p| p.port()).collect();
        for node in &self.cluster.nodes {
            let mut con = node.try_connection().map_err(|e| e.to_string())?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut con)
                .map_err(|e| e.to_string())?;
            if info_field(&info, "cluster_state") != Some("ok") {
                return Err(format!("{}: cluster_state not ok", node.addr()));
            }
            let ports = slot_ports(&mut con)?;
            let seen: HashSet<u16> = ports.iter().map(|(_, _, p)| *p).collect();
            if seen != want {
                return Err(format!("{} announces {seen:?}, want {want:?}", node.addr()));
            }
        }
        Ok(())
    }

    /// The proxies' URLs, in node order: seed a client with these.
    pub fn nodes(&self) -> Vec<String> {
        self.proxies.iter().map(|p| p.url()).collect()
    }

    /// The cluster behind the proxies (direct connections, for checks).
    pub fn cluster(&self) -> &RedisCluster {
        &self.cluster
    }

    /// The index of the node serving `key`'s slot.
    pub fn node_of_key(&self, key: &str) -> usize {
        let mut con = self.cluster.nodes[0].connection();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut con)
            .expect("CLUSTER KEYSLOT");
        let ports = slot_ports(&mut con).expect("CLUSTER SLOTS");
        let port = ports
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
            .map(|(_, _, p)| *p)
            .unwrap_or_else(|| panic!("no node serves slot {slot}"));
        self.proxies
            .iter()
            .position(|p| p.port() == port)
            .unwrap_or_else(|| panic!("slot {slot} is served by unknown port {port}"))
    }

    /// The proxy in front of node `i`.
    pub fn proxy(&self, i: usize) -> &super::proxy::FaultProxy {
        &self.proxies[i]
    }

    /// Node `i`, direct (not through its proxy).
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.cluster.nodes[i]
    }
}

/// `(first slot, last slot, primary port)` of every range of `CLUSTER SLOTS`.
fn slot_ports(con: &mut redis::Connection) -> Result<Vec<(u16, u16, u16)>, String> {
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(con)
        .map_err(|e| e.to_string())?;
    ranges
        .iter()
        .map(|r| {
            let bad = || format!("unexpected CLUSTER SLOTS entry {r:?}");
            let redis::Value::Array(parts) = r else {
                return Err(bad());
            };
            let int = |v: Option<&redis::Value>| match v {
                Some(redis::Value::Int(i)) => u16::try_from(*i).ok(),
                _ => None,
            };
            let Some(redis::Value::Array(primary)) = parts.get(2) else {
                return Err(bad());
            };
            match (int(parts.first()), int(parts.get(1)), int(primary.get(1))) {
                (Some(lo), Some(hi), Some(port)) => Ok((lo, hi, port)),
                _ => Err(bad()),
            }
        })
        .collect()
}
