//! The checker: invariants I1–I6 over a recorded [`History`] and the servers'
//! [`FinalState`], and a readable report of what broke.
//!
//! - **I1** a shared rate limiter never admits more than its quota within any
//!   span (judged on client instants, which bracket the server's), and every
//!   check of a fresh id is counted exactly once when it returned `Ok` (at
//!   most once when it failed), with or without a request id;
//! - **I2** once an invalidation (`invalidate`, `invalidate_all`, library
//!   `set`/`delete`) has returned, no read invoked after that returns a value
//!   whose computation started before the invalidation was invoked (a `set`
//!   starts when it is invoked); and on fenced keys (lock, no `max_wait`) no
//!   read from Redis returns a computation older than one an earlier read
//!   already got from Redis (a holder that lost its lock does not store);
//! - **I3** every value read was produced by a computation or set of that
//!   very key;
//! - **I4** user keys, including one named like a lock key, are unchanged;
//! - **I5** every call returned within its deadline;
//! - **I6** after the longest lock TTL has passed, no lock key remains and
//!   every other library key except values has a TTL.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use super::ops::{Op, Plan};
use super::recorder::{History, OpRecord, Outcome, Producer};
use super::snapshot::FinalState;

/// One broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: &'static str,
    /// Which way it broke, e.g. "stale value stored after the invalidation".
    pub kind: &'static str,
    /// The operation that shows it, if one does.
    pub op: Option<u64>,
    pub message: String,
    /// Other operations involved (the invalidation, the earlier read, …).
    pub related: Vec<u64>,
}

fn violation(
    invariant: &'static str,
    kind: &'static str,
    op: Option<u64>,
    message: String,
) -> Violation {
    Violation {
        invariant,
        kind,
        op,
        message,
        related: Vec::new(),
    }
}

/// Every violation of I1–I6, in invariant order.
pub fn check(plan: &Plan, history: &History, state: &FinalState) -> Vec<Violation> {
    let mut out = Vec::new();
    out.extend(quota(plan, history));
    out.extend(counted_once(plan, history, state));
    out.extend(invalidations(plan, history));
    out.extend(fencing(plan, history));
    out.extend(values(history));
    out.extend(user_keys(state));
    out.extend(deadlines(history));
    out.extend(leftovers(plan, state));
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// The value a read returned.
fn read_value(r: &OpRecord) -> Option<(usize, &str)> {
    match (&r.op, &r.outcome) {
        (Op::Get { target, .. } | Op::Call { target, .. }, Outcome::Value(v)) => {
            Some((*target, v.as_str()))
        }
        _ => None,
    }
}

/// I1, the quota: no set of admitted checks of one id fits in a span that
/// allows fewer.
fn quota(plan: &Plan, history: &History) -> Vec<Violation> {
    let mut admitted: BTreeMap<(usize, &str), Vec<&OpRecord>> = BTreeMap::new();
    for r in &history.ops {
        if let (Op::Check { limiter, id, .. }, Outcome::Decision { allowed: true, .. }) =
            (&r.op, &r.outcome)
        {
            admitted.entry((*limiter, id.as_str())).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for ((limiter, id), mut ops) in admitted {
        let spec = &plan.limiters[limiter];
        ops.sort_by_key(|r| r.invoked);
        'first: for (i, first) in ops.iter().enumerate() {
            let mut later: Vec<&OpRecord> = ops[i..].to_vec();
            later.sort_by_key(|r| r.completed);
            for (m, last) in later.iter().enumerate() {
                let span = last.completed.saturating_sub(first.invoked);
                if span > spec.window * 2 {
                    break;
                }
                let n = m as u64 + 1;
                if let Some(max) = spec.max_admitted(span) {
                    if n > max {
                        let mut v = violation(
                            "I1",
                            "more admitted than the quota allows",
                            Some(last.seq),
                            format!(
                                "limiter {} ({:?}, {} per {:?}) admitted {n} checks of id {id:?} \
                                 within {} (invoked {} .. completed {}), at most {max} allowed",
                                spec.name,
                                spec.algorithm,
                                spec.limit,
                                spec.window,
                                ms(span),
                                ms(first.invoked),
                                ms(last.completed)
                            ),
                        );
                        v.related = later[..=m].iter().map(|r| r.seq).collect();
                        out.push(v);
                        break 'first;
                    }
                }
            }
        }
    }
    out
}

/// I1, counting: each check of a fresh id used exactly one unit if it said
/// "allowed", none if it said "denied", at most one if it failed.
fn counted_once(plan: &Plan, history: &History, state: &FinalState) -> Vec<Violation> {
    let mut out = Vec::new();
    for r in &history.ops {
        let Op::CheckOnce {
            limiter,
            id,
            request_id,
        } = &r.op
        else {
            continue;
        };
        let spec = &plan.limiters[*limiter];
        let used = match state.used.get(&(*limiter, id.clone())) {
            Some(Ok(n)) => *n,
            Some(Err(e)) => {
                out.push(violation(
                    "I1",
                    "state unreadable",
                    Some(r.seq),
                    format!("could not read the state of {id:?} at the end: {e}"),
                ));
                continue;
            }
            None => continue,
        };
        let expected: &[u64] = match r.outcome {
            Outcome::Decision { allowed: true, .. } => &[1],
            Outcome::Decision { allowed: false, .. } => &[0],
            _ => &[0, 1],
        };
        if !expected.contains(&used) {
            let how = match request_id {
                Some(rid) => format!("with request id {rid:?}"),
                None => "without a request id".to_owned(),
            };
            out.push(violation(
                "I1",
                if used > 1 {
                    "counted more than once"
                } else {
                    "an answered check not counted"
                },
                Some(r.seq),
                format!(
                    "one check of fresh id {id:?} on limiter {} ({:?}) {how} returned {:?} \
                     but the server counted {used} unit(s) (expected {expected:?})",
                    spec.name, spec.algorithm, r.outcome
                ),
            ));
        }
    }
    out
}

/// The targets an invalidation covers, if it returned.
fn invalidated(plan: &Plan, r: &OpRecord) -> Vec<usize> {
    if !matches!(r.outcome, Outcome::Done(_)) {
        return Vec::new();
    }
    match &r.op {
        Op::Invalidate { target } | Op::Set { target } | Op::Delete { target } => vec![*target],
        Op::InvalidateAll { func } => (0..plan.targets.len())
            .filter(|&t| plan.function_of(t) == Some(*func))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether the read could only have got `value` from Redis: the operation
/// that produced it had returned before the read was invoked (so it was no
/// longer a flight to join).
fn from_redis(history: &History, read: &OpRecord, producer_op: u64) -> bool {
    history
        .op(producer_op)
        .is_some_and(|p| p.completed < read.invoked)
}

/// I2: no read after an invalidation returns a value computed before it.
fn invalidations(plan: &Plan, history: &History) -> Vec<Violation> {
    // Per target: (invoked, completed, seq) of each returned invalidation.
    let mut inv: HashMap<usize, Vec<(Duration, Duration, u64)>> = HashMap::new();
    for r in &history.ops {
        for t in invalidated(plan, r) {
            inv.entry(t)
                .or_default()
                .push((r.invoked, r.completed, r.seq));
        }
    }
    let mut out = Vec::new();
    for r in &history.ops {
        let Some((target, value)) = read_value(r) else {
            continue;
        };
        let Some(p) = history.producer_of(value) else {
            continue; // I3's business
        };
        // The latest-invoked invalidation that returned before this read.
        let Some(&(i_inv, i_comp, i_seq)) = inv
            .get(&target)
            .into_iter()
            .flatten()
            .filter(|(_, comp, _)| *comp < r.invoked)
            .max_by_key(|(inv, _, _)| *inv)
        else {
            continue;
        };
        // A computation is stale when it started before the invalidation
        // was invoked (its store is fenced). A set takes effect somewhere
        // between its invocation and its return, so it may follow an
        // invalidation it overlaps: stale only if it returned before.
        let effective = match p.producer {
            Producer::Compute => p.start,
            Producer::Set => match history.ops.iter().find(|o| o.seq == p.op) {
                Some(set) => set.completed,
                None => continue,
            },
        };
        // A degraded computation's value never went through Redis: it is
        // shared with the concurrent callers of its flight whatever Redis
        // saw (the documented exception). The producer's own window shows
        // whether its service degraded then.
        let degraded_producer = history
            .ops
            .iter()
            .find(|o| o.seq == p.op)
            .is_some_and(|o| o.maybe_degraded);
        let exempt = degraded_producer && !from_redis(history, r, p.op);
        if effective < i_inv && !exempt {
            let (kind, path) = if from_redis(history, r, p.op) {
                (
                    "stale value stored after the invalidation",
                    "read from Redis: the stale value was stored after the invalidation",
                )
            } else {
                (
                    "stale in-flight computation joined after the invalidation",
                    "its computation was still running when the read was invoked \
                     (a joined flight, or a store racing the read)",
                )
            };
            let what = match p.producer {
                Producer::Compute => "computation",
                Producer::Set => "set",
            };
            let mut v = violation(
                "I2",
                kind,
                Some(r.seq),
                format!(
                    "read of {} invoked at {} returned {value:?}, whose {what} started at {} \
                     (op #{}), before invalidation op #{i_seq} (invoked {}, returned {}); {path}",
                    plan.targets[target].full,
                    ms(r.invoked),
                    ms(p.start),
                    p.op,
                    ms(i_inv),
                    ms(i_comp)
                ),
            );
            v.related = vec![i_seq, p.op];
            out.push(v);
        }
    }
    out
}

/// I2, fencing: on fenced keys, stores land in the order their computations
/// started, so once a read got computation B from Redis, no later read gets
/// an older computation A from Redis.
fn fencing(plan: &Plan, history: &History) -> Vec<Violation> {
    // Reads from Redis of computed values, per fenced target, by completion.
    let mut reads: HashMap<usize, Vec<(&OpRecord, Duration, u64)>> = HashMap::new();
    for r in &history.ops {
        let Some((target, value)) = read_value(r) else {
            continue;
        };
        if !plan.targets[target].fenced() {
            continue;
        }
        let Some(p) = history.producer_of(value) else {
            continue;
        };
        if p.producer == Producer::Compute && p.target == target && from_redis(history, r, p.op) {
            reads.entry(target).or_default().push((r, p.start, p.op));
        }
    }
    let mut out = Vec::new();
    for (target, mut rs) in reads {
        rs.sort_by_key(|(r, _, _)| r.completed);
        for (i, (later, start, producer)) in rs.iter().enumerate() {
            // The newest computation some read had returned before this one.
            let newest = rs[..i]
                .iter()
                .filter(|(earlier, _, _)| earlier.completed < later.invoked)
                .max_by_key(|(_, s, _)| *s);
            if let Some((earlier, newer_start, newer_producer)) = newest {
                if newer_start > start {
                    let mut v = violation(
                        "I2",
                        "an older holder stored over a newer value",
                        Some(later.seq),
                        format!(
                            "read of {} returned {:?} (computation of op #{producer} started at {}) \
                             after read #{} had already returned a newer computation (op \
                             #{newer_producer}, started at {}): an older holder stored over a newer value",
                            plan.targets[target].full,
                            match &later.outcome {
                                Outcome::Value(v) => v.as_str(),
                                _ => "",
                            },
                            ms(*start),
                            earlier.seq,
                            ms(*newer_start)
                        ),
                    );
                    v.related = vec![earlier.seq, *producer, *newer_producer];
                    out.push(v);
                }
            }
        }
    }
    out
}

/// I3: every value read names a computation or set of its own key.
fn values(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    for r in &history.ops {
        let Some((target, value)) = read_value(r) else {
            continue;
        };
        let problem = match history.producer_of(value) {
            None => Some("no computation or set produced it".to_owned()),
            Some(p) if p.target != target => Some(format!(
                "it was produced for another key (target {}, op #{})",
                p.target, p.op
            )),
            Some(p) if p.value != value => Some(format!("torn: the producer wrote {:?}", p.value)),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            out.push(violation(
                "I3",
                "a value no computation of this key produced",
                Some(r.seq),
                format!("read returned {value:?}: {problem}"),
            ));
        }
    }
    out
}

/// I4: user keys are exactly as seeded.
fn user_keys(state: &FinalState) -> Vec<Violation> {
    state
        .user_keys
        .iter()
        .filter(|(_, before, after)| before != after)
        .map(|(key, before, after)| {
            violation(
                "I4",
                "a user key changed",
                None,
                format!("user key {key:?} changed: before the run {before}, after it {after}"),
            )
        })
        .collect()
}

/// I5: no call outlived its deadline.
fn deadlines(history: &History) -> Vec<Violation> {
    history
        .ops
        .iter()
        .filter(|r| r.outcome == Outcome::Timeout)
        .map(|r| {
            violation(
                "I5",
                "past its deadline",
                Some(r.seq),
                format!(
                    "did not return within its deadline of {} (dropped at {})",
                    ms(r.op.deadline()),
                    ms(r.completed)
                ),
            )
        })
        .collect()
}

/// I6: no lock survives the longest lock TTL; every library key other than
/// a value has a TTL.
fn leftovers(plan: &Plan, state: &FinalState) -> Vec<Violation> {
    let rl_prefix = format!("{}:rl:", plan.namespace);
    let mut out = Vec::new();
    for (key, pttl) in &state.keys {
        let value = plan.targets.iter().any(|t| &t.full == key);
        let user = plan.user_keys.iter().any(|u| &u.full == key);
        if value || user {
            continue;
        }
        let problem = if key.starts_with(&rl_prefix) {
            (*pttl < 0).then_some("rate-limit state without a TTL")
        } else if key.contains("lock") {
            Some("a lock key outlived the longest lock TTL")
        } else {
            (*pttl < 0).then_some("a companion key without a TTL")
        };
        if let Some(problem) = problem {
            out.push(violation(
                "I6",
                problem,
                None,
                format!("{problem}: {key:?} (pttl {pttl} ms) remains at the end"),
            ));
        }
    }
    out
}

fn describe(plan: &Plan, r: &OpRecord) -> String {
    let what = match &r.op {
        Op::Get { target, spec } | Op::Call { target, spec } => format!(
            "{} {} compute={} lock_ttl={} extend={} max_wait={:?}",
            if matches!(r.op, Op::Get { .. }) {
                "get_or_compute"
            } else {
                "cache.call"
            },
            plan.targets[*target].full,
            ms(spec.compute),
            ms(spec.lock_ttl),
            spec.auto_extend,
            spec.max_wait
        ),
        Op::Invalidate { target } => format!("invalidate {}", plan.targets[*target].full),
        Op::InvalidateAll { func } => format!("invalidate_all {}", plan.functions[*func]),
        Op::Set { target } => format!("set {}", plan.targets[*target].full),
        Op::Delete { target } => format!("delete {}", plan.targets[*target].full),
        Op::Check { .. } | Op::CheckOnce { .. } => {
            let (limiter, id, request_id) = r.op.check_parts().expect("a check");
            format!(
                "check {} id={id:?} request_id={request_id:?}",
                plan.limiters[limiter].name
            )
        }
    };
    format!(
        "  #{:<6} client {:>2} service {} [{:>10} .. {:>10}] {what} -> {:?}",
        r.seq,
        r.client,
        r.service,
        ms(r.invoked),
        ms(r.completed),
        r.outcome
    )
}

/// The operations around a violation: the ones it names, then the others on
/// the same key in the same time span, and the faults that overlap it.
fn slice(plan: &Plan, history: &History, v: &Violation) -> String {
    let mut seqs: Vec<u64> = v.op.into_iter().chain(v.related.iter().copied()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let named: Vec<&OpRecord> = seqs.iter().filter_map(|s| history.op(*s)).collect();
    let mut text = String::new();
    if named.is_empty() {
        return text;
    }
    let lo = named.iter().map(|r| r.invoked).min().unwrap_or_default();
    let hi = named.iter().map(|r| r.completed).max().unwrap_or_default();
    let targets: Vec<usize> = named.iter().filter_map(|r| r.op.target()).collect();
    let _ = writeln!(text, " operations named:");
    for r in &named {
        let _ = writeln!(text, "{}", describe(plan, r));
    }
    let around: Vec<&OpRecord> = history
        .ops
        .iter()
        .filter(|r| !seqs.contains(&r.seq))
        .filter(|r| r.op.target().is_some_and(|t| targets.contains(&t)))
        .filter(|r| r.completed >= lo && r.invoked <= hi)
        .collect();
    if !around.is_empty() {
        let _ = writeln!(
            text,
            " other operations on the same key between {} and {} ({}{}):",
            ms(lo),
            ms(hi),
            around.len().min(20),
            if around.len() > 20 { " shown" } else { "" }
        );
        for r in around.iter().take(20) {
            let _ = writeln!(text, "{}", describe(plan, r));
        }
    }
    for f in history
        .faults
        .iter()
        .filter(|f| f.end >= lo && f.start <= hi)
    {
        let _ = writeln!(
            text,
            "  fault [{} .. {}] {}",
            ms(f.start),
            ms(f.end),
            f.what
        );
    }
    text
}

/// A report of every violation: counts per invariant, then up to `examples`
/// of each with its slice of the history, and how to replay.
pub fn report(
    plan: &Plan,
    history: &History,
    violations: &[Violation],
    replay: &str,
    examples: usize,
) -> String {
    let mut by: BTreeMap<(&str, &str), Vec<&Violation>> = BTreeMap::new();
    for v in violations {
        by.entry((v.invariant, v.kind)).or_default().push(v);
    }
    let mut text = format!(
        "history checker: {} violation(s) in {} operations and {} faults; replay with {replay}\n",
        violations.len(),
        history.ops.len(),
        history.faults.len()
    );
    for ((inv, kind), vs) in &by {
        let _ = writeln!(text, "{inv} {kind}: {} violation(s)", vs.len());
    }
    for ((inv, kind), vs) in &by {
        for v in vs.iter().take(examples) {
            let _ = writeln!(
                text,
                "\n[{inv} {kind}] {}{}",
                v.op.map(|s| format!("op #{s}: ")).unwrap_or_default(),
                v.message
            );
            text.push_str(&slice(plan, history, v));
        }
    }
    text
}
