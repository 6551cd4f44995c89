//! The servers' state around a run: user keys seeded before it, and after it
//! every key with its TTL, the user keys again, and how many units each
//! fresh rate-limit id used. The checker reads only this and the history.

use std::collections::HashMap;
use std::num::NonZeroU32;

use redis_atomics::RedisService;
use redis_atomics::rate_limit::{CheckOptions, Quota};

use super::ops::{Op, Plan};
use super::recorder::History;
use super::topology::Topology;

/// The state the checker needs after a run.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// Every key of every primary and its PTTL in ms (-1: none).
    pub keys: Vec<(String, i64)>,
    /// Each user key: (key, described before the run, described after it).
    pub user_keys: Vec<(String, String, String)>,
    /// Units used by each fresh id `(limiter, id)` (`peek` with cost 0).
    pub used: HashMap<(usize, String), Result<u64, String>>,
}

/// A key's type, content and TTL, as one comparable line.
fn describe(con: &mut dyn redis::ConnectionLike, key: &str) -> String {
    let kind: String = redis::cmd("TYPE")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| format!("error {e}"));
    let pttl: i64 = redis::cmd("PTTL").arg(key).query(con).unwrap_or(-3);
    let ttl = if pttl < 0 {
        "no ttl".to_owned()
    } else {
        "a ttl".to_owned()
    };
    match kind.as_str() {
        "none" => "missing".to_owned(),
        "string" => {
            let v: String = redis::cmd("GET").arg(key).query(con).unwrap_or_default();
            format!("string {v:?}, {ttl}")
        }
        "hash" => {
            let mut v: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(key)
                .query(con)
                .unwrap_or_default();
            v.sort();
            format!("hash {v:?}, {ttl}")
        }
        other => format!("{other}, {ttl}"),
    }
}

/// Writes the user keys (no TTL) and describes them (blocking).
pub fn seed_user_keys(topology: &Topology, plan: &Plan) -> Vec<(String, String)> {
    topology.with_any_key(|con| {
        plan.user_keys
            .iter()
            .map(|u| {
                if u.hash {
                    let _: () = redis::cmd("HSET")
                        .arg(&u.full)
                        .arg("name")
                        .arg("ada")
                        .arg("plan")
                        .arg("pro")
                        .query(con)
                        .expect("HSET a user key");
                } else {
                    let _: () = redis::cmd("SET")
                        .arg(&u.full)
                        .arg(format!("user data of {}", u.full))
                        .query(con)
                        .expect("SET a user key");
                }
                (u.full.clone(), describe(con, &u.full))
            })
            .collect()
    })
}

/// Every key on every primary with its PTTL, and the user keys (blocking);
/// `used` is left for [`used_units`].
pub fn final_keys(topology: &Topology, seeded: &[(String, String)]) -> FinalState {
    let mut keys = Vec::new();
    for part in topology.each_primary(|con| {
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query(con)
                .expect("SCAN");
            for key in batch {
                let pttl: i64 = redis::cmd("PTTL").arg(&key).query(con).expect("PTTL");
                if pttl != -2 {
                    out.push((key, pttl));
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        out
    }) {
        keys.extend(part);
    }
    keys.sort();
    let users: Vec<(String, String, String)> = topology.with_any_key(|con| {
        seeded
            .iter()
            .map(|(key, before)| (key.clone(), before.clone(), describe(con, key)))
            .collect()
    });
    FinalState {
        keys,
        user_keys: users,
        used: HashMap::new(),
    }
}

/// How many units each fresh id of the history used (`peek` with cost 0
/// reports what is left now).
pub async fn used_units(
    service: &RedisService,
    plan: &Plan,
    history: &History,
) -> HashMap<(usize, String), Result<u64, String>> {
    let mut out = HashMap::new();
    for r in &history.ops {
        let Op::CheckOnce { limiter, id, .. } = &r.op else {
            continue;
        };
        let spec = &plan.limiters[*limiter];
        let quota = Quota::new(NonZeroU32::new(spec.limit).expect("limit > 0"), spec.window);
        let used = match service.rate_limiter(&spec.name, spec.algorithm, quota) {
            Ok(l) => l
                .peek_with(id, CheckOptions::new().cost(0))
                .await
                .map(|d| u64::from(spec.limit).saturating_sub(d.remaining()))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        out.insert((*limiter, id.clone()), used);
    }
    out
}
