//! `invalidate_all`: SCAN every primary with a glob-escaped pattern and
//! UNLINK what matches in batches (grouped by slot on a cluster).
//!
//! Why two passes: SCAN returns every key that exists for the whole scan,
//! so the first pass deletes every lease that existed when the call began
//! (revoking it) unless its holder stored first — and a value stored while
//! the first pass ran exists for the whole second pass, which deletes it.

use redis::Value;

use crate::core::error::{Error, Result};
use crate::core::keys::escape_glob;
use crate::core::retry::Idempotency;
use crate::core::service::RedisService;

/// Keys asked for per SCAN step.
const SCAN_COUNT: u32 = 1000;

/// Deletes `prefix` itself (a function without arguments) and every
/// `prefix:*` key on every primary; returns how many were removed.
pub(super) async fn all(service: &RedisService, prefix: &str) -> Result<u64> {
    let mut removed = 0;
    for _pass in 0..2 {
        removed += crate::core::commands::invalidate_keys(service, &[prefix.to_string()]).await?;
        removed += scan_and_unlink(service, prefix).await?;
    }
    Ok(removed)
}

async fn scan_and_unlink(service: &RedisService, prefix: &str) -> Result<u64> {
    let pattern = format!("{}:*", escape_glob(prefix));
    let conn = service.connection();
    let mut removed = 0;
    for node in service.primaries().await? {
        let mut cursor: u64 = 0;
        loop {
            let cmd = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .clone();
            let reply = service
                .retry_policy()
                .run(
                    "invalidate_all",
                    Some(prefix),
                    Idempotency::Idempotent,
                    || conn.on_node(&node, &cmd),
                )
                .await?;
            let (next, keys) = parse_scan(reply).map_err(|e| e.with_key(prefix))?;
            removed += unlink(service, keys).await?;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(removed)
}

async fn unlink(service: &RedisService, keys: Vec<String>) -> Result<u64> {
    let mut removed = 0;
    for group in service.slot_groups(&keys) {
        let cmd = redis::cmd("UNLINK").arg(&group).clone();
        let first = group.first().map(String::as_str);
        let n: u64 = service
            .query("invalidate_all", first, Idempotency::Idempotent, &cmd)
            .await?;
        removed += n;
    }
    Ok(removed)
}

fn parse_scan(reply: Value) -> Result<(u64, Vec<String>)> {
    let bad = || Error::protocol("unexpected SCAN reply");
    let Value::Array(mut parts) = reply else {
        return Err(bad());
    };
    if parts.len() != 2 {
        return Err(bad());
    }
    let keys = parts.pop().ok_or_else(bad)?;
    let cursor = parts.pop().ok_or_else(bad)?;
    let cursor: u64 = match cursor {
        Value::BulkString(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?,
        Value::Int(n) => u64::try_from(n).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let Value::Array(items) = keys else {
        return Err(bad());
    };
    let keys = items
        .into_iter()
        .map(|v| match v {
            Value::BulkString(b) => String::from_utf8(b).map_err(|_| bad()),
            Value::SimpleString(s) => Ok(s),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((cursor, keys))
}
