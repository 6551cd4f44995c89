//! What a test server saw, and waiting for a condition: `INFO` counters and
//! bounded polling, shared by the fault, retry and cluster tests.

use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

use super::RedisServer;
use super::load::HUNG;

/// `calls` of `cmdstat_<command>` in `INFO commandstats` (0 when absent).
pub fn command_calls(node: &RedisServer, command: &str) -> u64 {
    info_count(node, "commandstats", &format!("cmdstat_{command}:calls="))
}

/// `count` of `errorstat_<code>` in `INFO errorstats` (0 when absent).
pub fn error_count(node: &RedisServer, code: &str) -> u64 {
    info_count(node, "errorstats", &format!("errorstat_{code}:count="))
}

/// The first number after `prefix` on a line of `INFO section`.
pub fn info_count(node: &RedisServer, section: &str, prefix: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut node.connection())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Polls `cond` (a blocking check) every 10 ms until it holds; panics with
/// `what` after the hang bound. On a multi-threaded runtime the check runs
/// in `block_in_place`, so other tasks keep going meanwhile.
pub async fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HUNG;
    let multi = Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread;
    loop {
        let held = if multi {
            tokio::task::block_in_place(&mut cond)
        } else {
            cond()
        };
        if held {
            return;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
