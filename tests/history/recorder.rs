//! The recorder: every operation's invocation, completion and outcome, every
//! computation's (and library `set`'s) value and start, and the faults, all
//! on one clock (time since the run started).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::ops::Op;

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A read returned this value.
    Value(String),
    /// A write or invalidation returned (with the library's count, if any).
    Done(u64),
    /// A rate-limit decision.
    Decision { allowed: bool, remaining: u64 },
    /// The library returned an error.
    Error(String),
    /// The deadline passed first (the call was dropped).
    Timeout,
}

/// One operation, as it happened.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// Unique, in invocation order.
    pub seq: u64,
    pub client: usize,
    pub service: usize,
    pub op: Op,
    pub invoked: Duration,
    pub completed: Duration,
    pub outcome: Outcome,
    /// The service served some call without Redis while this one ran (its
    /// `degraded` counter moved): a value this op computed may be a
    /// degraded one, shared with its flight without going through Redis.
    pub maybe_degraded: bool,
}

/// What produced a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Producer {
    /// A computation run by (a call of) operation `op`.
    Compute,
    /// A library `set`: it "starts" when the set is invoked.
    Set,
}

/// A value produced during the run.
#[derive(Debug, Clone)]
pub struct Produced {
    pub target: usize,
    /// The operation that ran the computation or the set.
    pub op: u64,
    pub producer: Producer,
    pub value: String,
    pub start: Duration,
    /// When the computation returned (a set: when it was invoked).
    pub end: Option<Duration>,
}

/// A fault as it was injected.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub what: String,
    pub start: Duration,
    pub end: Duration,
}

/// Everything recorded in one run.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub ops: Vec<OpRecord>,
    pub produced: HashMap<u64, Produced>,
    pub faults: Vec<FaultRecord>,
}

impl History {
    /// The producer of `value`, parsed from its `t<target>#<id>` form.
    pub fn producer_of(&self, value: &str) -> Option<&Produced> {
        let id: u64 = value.split_once('#')?.1.parse().ok()?;
        self.produced.get(&id)
    }

    /// The operation with sequence number `seq`.
    pub fn op(&self, seq: u64) -> Option<&OpRecord> {
        self.ops
            .binary_search_by_key(&seq, |o| o.seq)
            .ok()
            .map(|i| &self.ops[i])
    }
}

/// The value a producer writes: its target and id. Unique per run, so a read
/// names exactly one computation or set.
pub fn value_of(target: usize, id: u64) -> String {
    format!("t{target}#{id}")
}

/// Records a run; shared by the clients and the fault task.
pub struct Recorder {
    t0: Instant,
    next_seq: AtomicU64,
    next_id: AtomicU64,
    history: Mutex<History>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            t0: Instant::now(),
            next_seq: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            history: Mutex::new(History::default()),
        }
    }

    /// Now, on the run's clock.
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// The next operation's sequence number (taken when it is invoked).
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A computation for `target`, run by operation `op`: it records its
    /// start when first polled, takes `duration`, records its end and
    /// returns its unique value. A computation that is never polled (a hit)
    /// leaves no trace.
    pub async fn computation(&self, target: usize, op: u64, duration: Duration) -> String {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let value = value_of(target, id);
        self.lock().produced.insert(
            id,
            Produced {
                target,
                op,
                producer: Producer::Compute,
                value: value.clone(),
                start: self.now(),
                end: None,
            },
        );
        tokio::time::sleep(duration).await;
        let end = self.now();
        if let Some(p) = self.lock().produced.get_mut(&id) {
            p.end = Some(end);
        }
        value
    }

    /// The value a library `set` by operation `op` writes, starting now.
    pub fn set_value(&self, target: usize, op: u64) -> String {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let value = value_of(target, id);
        let now = self.now();
        self.lock().produced.insert(
            id,
            Produced {
                target,
                op,
                producer: Producer::Set,
                value: value.clone(),
                start: now,
                end: Some(now),
            },
        );
        value
    }

    pub fn record(&self, record: OpRecord) {
        self.lock().ops.push(record);
    }

    pub fn fault(&self, what: String, start: Duration) {
        let end = self.now();
        self.lock().faults.push(FaultRecord { what, start, end });
    }

    /// The history so far, operations in sequence order.
    pub fn history(&self) -> History {
        let mut h = self.lock().clone();
        h.ops.sort_by_key(|o| o.seq);
        h
    }
}
