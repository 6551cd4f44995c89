//! The checker fails: hand-made histories, each breaking one invariant,
//! are reported under that invariant; a clean history is not.

use std::collections::HashMap;
use std::time::Duration;

use crate::checker::{Violation, check, report};
use crate::ops::{ComputeSpec, FUNCTIONS, Op, Plan};
use crate::recorder::{History, OpRecord, Outcome, Produced, Producer, value_of};
use crate::snapshot::FinalState;

const V0: usize = 0; // "v:0", locked and fenced
const FA0: usize = 4; // fa(id=0), cached

fn plan() -> Plan {
    Plan::new("ns", |f, a| format!("ns:{}:id={a}", FUNCTIONS[f].0))
}

fn t(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn spec() -> ComputeSpec {
    ComputeSpec {
        compute: t(10),
        lock_ttl: t(2000),
        auto_extend: true,
        max_wait: None,
    }
}

/// A history being written by hand.
#[derive(Default)]
struct Builder {
    h: History,
    next_id: u64,
}

impl Builder {
    fn op(&mut self, seq: u64, op: Op, inv: u64, comp: u64, outcome: Outcome) -> &mut Self {
        self.h.ops.push(OpRecord {
            seq,
            client: seq as usize % 3,
            service: 0,
            op,
            invoked: t(inv),
            completed: t(comp),
            outcome,
            maybe_degraded: false,
        });
        self.h.ops.sort_by_key(|o| o.seq);
        self
    }

    /// A computation of `target` by op `op` over [start, end]; its value.
    fn computed(&mut self, target: usize, op: u64, start: u64, end: u64) -> String {
        self.produce(target, op, start, end, Producer::Compute)
    }

    fn produce(&mut self, target: usize, op: u64, start: u64, end: u64, p: Producer) -> String {
        self.next_id += 1;
        let id = self.next_id;
        let value = value_of(target, id);
        self.h.produced.insert(
            id,
            Produced {
                target,
                op,
                producer: p,
                value: value.clone(),
                start: t(start),
                end: Some(t(end)),
            },
        );
        value
    }

    /// A cached call of `target` that returned `value`.
    fn call(&mut self, seq: u64, target: usize, inv: u64, comp: u64, value: &str) -> &mut Self {
        let op = Op::Call {
            target,
            spec: spec(),
        };
        self.op(seq, op, inv, comp, Outcome::Value(value.to_owned()))
    }

    /// A get_or_compute of `target` that returned `value`.
    fn get(&mut self, seq: u64, target: usize, inv: u64, comp: u64, value: &str) -> &mut Self {
        let op = Op::Get {
            target,
            spec: spec(),
        };
        self.op(seq, op, inv, comp, Outcome::Value(value.to_owned()))
    }
}

fn clean_state(plan: &Plan) -> FinalState {
    FinalState {
        keys: Vec::new(),
        user_keys: plan
            .user_keys
            .iter()
            .map(|u| {
                (
                    u.full.clone(),
                    "string \"x\", no ttl".into(),
                    "string \"x\", no ttl".into(),
                )
            })
            .collect(),
        used: HashMap::new(),
    }
}

fn invariants(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.invariant).collect()
}

#[test]
fn a_clean_history_has_no_violation() {
    let plan = plan();
    let mut b = Builder::default();
    let a = b.computed(V0, 0, 1, 11);
    b.get(0, V0, 0, 12, &a);
    b.get(1, V0, 20, 22, &a);
    b.op(2, Op::Delete { target: V0 }, 30, 31, Outcome::Done(1));
    let c = b.computed(V0, 3, 41, 51);
    b.get(3, V0, 40, 52, &c);
    b.get(4, V0, 60, 61, &c);
    let state = clean_state(&plan);
    let v = check(&plan, &b.h, &state);
    assert!(v.is_empty(), "{}", report(&plan, &b.h, &v, "-", 5));
}

#[test]
fn a_stale_store_after_an_invalidation_is_i2() {
    let plan = plan();
    let mut b = Builder::default();
    // Computation A starts at 1 ms and runs until 100 ms; the entry is
    // invalidated at 10..12 ms; a read at 200 ms still gets A (stored late).
    let a = b.computed(FA0, 0, 1, 100);
    b.call(0, FA0, 0, 101, &a);
    b.op(1, Op::Invalidate { target: FA0 }, 10, 12, Outcome::Done(0));
    b.call(2, FA0, 200, 201, &a);
    let v = check(&plan, &b.h, &clean_state(&plan));
    assert_eq!(invariants(&v), ["I2"], "{v:#?}");
    assert_eq!(v[0].op, Some(2));
    let text = report(&plan, &b.h, &v, "HISTORY_SEED=7", 3);
    assert!(
        text.contains("HISTORY_SEED=7") && text.contains("#1"),
        "{text}"
    );
}

#[test]
fn a_read_after_invalidate_all_or_set_is_checked_too() {
    let plan = plan();
    let mut b = Builder::default();
    let a = b.computed(FA0, 0, 1, 100);
    b.call(0, FA0, 0, 101, &a);
    b.op(1, Op::InvalidateAll { func: 0 }, 10, 12, Outcome::Done(1));
    b.call(2, FA0, 200, 201, &a);
    let s = b.produce(V0, 3, 20, 20, Producer::Set);
    let old = b.computed(V0, 4, 5, 50);
    b.op(3, Op::Set { target: V0 }, 20, 22, Outcome::Done(1));
    b.get(4, V0, 4, 51, &old);
    b.get(5, V0, 60, 61, &old);
    b.get(6, V0, 70, 71, &s);
    let v = check(&plan, &b.h, &clean_state(&plan));
    let ops: Vec<_> = v
        .iter()
        .filter(|v| v.invariant == "I2")
        .map(|v| v.op)
        .collect();
    assert_eq!(ops, [Some(2), Some(5)], "{v:#?}");
}

#[test]
fn an_invalidation_that_failed_does_not_count() {
    let plan = plan();
    let mut b = Builder::default();
    let a = b.computed(V0, 0, 1, 100);
    b.get(0, V0, 0, 101, &a);
    b.op(
        1,
        Op::Delete { target: V0 },
        10,
        12,
        Outcome::Error("timed out".into()),
    );
    b.get(2, V0, 200, 201, &a);
    assert!(check(&plan, &b.h, &clean_state(&plan)).is_empty());
}

#[test]
fn an_older_holder_storing_over_a_newer_value_is_i2() {
    let plan = plan();
    let mut b = Builder::default();
    // A (lock expired mid-compute) started first, B took over and stored; a
    // read got B, then A's late store won and a later read got A.
    let a = b.computed(V0, 0, 0, 500);
    let new = b.computed(V0, 1, 200, 210);
    b.get(0, V0, 0, 501, &a);
    b.get(1, V0, 150, 211, &new);
    b.get(2, V0, 300, 301, &new);
    b.get(3, V0, 600, 601, &a);
    let v = check(&plan, &b.h, &clean_state(&plan));
    assert_eq!(invariants(&v), ["I2"], "{v:#?}");
    assert_eq!(v[0].op, Some(3));
}

#[test]
fn foreign_and_cross_key_values_are_i3() {
    let plan = plan();
    let mut b = Builder::default();
    let other = b.computed(FA0, 0, 0, 10);
    b.call(0, FA0, 0, 11, &other);
    b.get(1, V0, 20, 21, &other);
    b.get(2, V0, 30, 31, "t0#999");
    b.get(3, V0, 40, 41, "garbage");
    let v = check(&plan, &b.h, &clean_state(&plan));
    assert_eq!(invariants(&v), ["I3", "I3", "I3"], "{v:#?}");
}

#[test]
fn over_quota_and_double_counting_are_i1() {
    let plan = plan();
    let shared = plan.limiters.iter().position(|l| l.shared).unwrap();
    let fresh = plan.limiters.iter().position(|l| !l.shared).unwrap();
    let limit = u64::from(plan.limiters[shared].limit);
    let mut b = Builder::default();
    for i in 0..=limit {
        let op = Op::Check {
            limiter: shared,
            id: "a".into(),
            request_id: None,
        };
        let ok = Outcome::Decision {
            allowed: true,
            remaining: 0,
        };
        b.op(i, op, i * 10, i * 10 + 5, ok);
    }
    let ok = Outcome::Decision {
        allowed: true,
        remaining: 9,
    };
    let once = |id: &str, rid: Option<&str>| Op::CheckOnce {
        limiter: fresh,
        id: id.into(),
        request_id: rid.map(str::to_owned),
    };
    b.op(100, once("x", None), 0, 5, ok.clone());
    b.op(101, once("y", Some("r1")), 0, 5, ok);
    b.op(102, once("z", None), 0, 5, Outcome::Error("reset".into()));
    let mut state = clean_state(&plan);
    state.used.insert((fresh, "x".into()), Ok(2));
    state.used.insert((fresh, "y".into()), Ok(0));
    state.used.insert((fresh, "z".into()), Ok(1));
    let v = check(&plan, &b.h, &state);
    assert_eq!(invariants(&v), ["I1", "I1", "I1"], "{v:#?}");
    assert_eq!(v[0].related.len() as u64, limit + 1);
    assert_eq!((v[1].op, v[2].op), (Some(100), Some(101)));
}

#[test]
fn a_changed_user_key_is_i4_a_timeout_is_i5_leftovers_are_i6() {
    let plan = plan();
    let mut b = Builder::default();
    let op = Op::Get {
        target: V0,
        spec: spec(),
    };
    b.op(0, op, 0, 9000, Outcome::Timeout);
    let mut state = clean_state(&plan);
    state.user_keys[2].2 = "missing".into();
    state.keys = vec![
        ("ns:v:0".into(), -1),                // a value: fine
        ("ns:user:plain".into(), -1),         // a user key: I4's business
        ("{ns:v:0}:lock".into(), 1500),       // a lock past the longest TTL
        ("{ns:v:0}:xf".into(), -1),           // a companion without TTL
        ("ns:rl:qsl:{a}:sl:0".into(), -1),    // immortal rate-limit state
        ("ns:rl:qsl:{a}:sl:req".into(), 900), // fine
    ];
    let v = check(&plan, &b.h, &state);
    assert_eq!(invariants(&v), ["I4", "I5", "I6", "I6", "I6"], "{v:#?}");
}
