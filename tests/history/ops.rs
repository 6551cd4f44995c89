//! The operations of a history run and the seeded generator that picks them.
//!
//! A run works on a fixed [`Plan`]: a few value keys read by `get_or_compute`,
//! a few cache-wrapper entries, rate limiters of every algorithm, and user keys
//! the library must never touch. Each client draws its operations from its own
//! [`Rng`] (seeded from the run's seed and the client's index), so a seed fixes
//! every client's sequence of operations and the fault schedule; only the
//! interleaving is left to the machine.

use std::time::Duration;

use redis_atomics::rate_limit::Algorithm;

/// SplitMix64: tiny, seedable, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// How a value key is used, which decides its options and what is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// `get_or_compute` with the lock and no `max_wait`; computations may
    /// outlive a short lock TTL (auto-extend off). Fenced: checked for "no
    /// older value after a newer one".
    Locked,
    /// `get_or_compute` with `max_wait`; now and then a computation hangs far
    /// longer than `max_wait`, so same-process followers must give up in time.
    Slow,
    /// `get_or_compute` with `max_wait` on a key whose lock name holds a
    /// user's key (seeded before the run).
    Foreign,
    /// A cache-wrapper entry of function `func`, argument `arg`.
    Cached { func: usize, arg: u32 },
}

/// One value key of the run.
#[derive(Debug, Clone)]
pub struct Target {
    /// What the caller passes: the logical key, or `id=ARG` for the cache.
    pub name: String,
    /// The Redis key (namespace applied).
    pub full: String,
    pub class: KeyClass,
}

impl Target {
    /// Whether reads of this key must never go back to an older computation
    /// (locked, no `max_wait`: stores are ordered by the lock).
    pub fn fenced(&self) -> bool {
        matches!(self.class, KeyClass::Locked | KeyClass::Cached { .. })
    }
}

/// A rate limiter of the run.
#[derive(Debug, Clone)]
pub struct LimiterSpec {
    pub name: String,
    pub algorithm: Algorithm,
    pub limit: u32,
    pub window: Duration,
    /// Checked against shared ids (the quota bound) or fresh ids (counting).
    pub shared: bool,
}

impl LimiterSpec {
    /// The most requests that may be admitted within a span shorter than the
    /// window, or within `span` for GCRA. Sound for every algorithm: the
    /// sliding log is exact; a fixed or aligned sliding window admits at
    /// most `limit` per window and a span shorter than the window meets two;
    /// GCRA admits `burst` (= limit) at once, then one per `window / limit`.
    pub fn max_admitted(&self, span: Duration) -> Option<u64> {
        let limit = u64::from(self.limit);
        match self.algorithm {
            Algorithm::SlidingLog if span < self.window => Some(limit),
            Algorithm::FixedWindow | Algorithm::SlidingWindow if span < self.window => {
                Some(2 * limit)
            }
            Algorithm::Gcra => {
                let t = self.window.as_nanos() / u128::from(limit);
                Some(limit + (span.as_nanos() / t) as u64)
            }
            _ => None,
        }
    }
}

/// A user key seeded before the run; it must be exactly the same after it.
#[derive(Debug, Clone)]
pub struct UserKey {
    pub full: String,
    /// A string value, or hash fields when `hash`.
    pub hash: bool,
}

/// Everything a run works on.
#[derive(Debug, Clone)]
pub struct Plan {
    pub namespace: String,
    pub targets: Vec<Target>,
    /// `{namespace}:{function}` of each cached function, for `invalidate_all`.
    pub functions: Vec<String>,
    pub limiters: Vec<LimiterSpec>,
    /// Ids checked by the shared limiters.
    pub shared_ids: Vec<String>,
    pub user_keys: Vec<UserKey>,
}

/// Names of the cached functions; each has this many arguments.
pub const FUNCTIONS: [(&str, u32); 2] = [("fa", 3), ("fb", 2)];
/// The longest lock TTL any operation uses.
pub const MAX_LOCK_TTL: Duration = Duration::from_secs(2);
/// How long a hung computation takes (far beyond `max_wait`).
pub const HANG: Duration = Duration::from_secs(10);
/// `max_wait` of the `Slow` and `Foreign` keys.
pub const MAX_WAIT: Duration = Duration::from_millis(1000);
/// The longest ordinary computation.
pub const MAX_COMPUTE: Duration = Duration::from_millis(600);
/// Added to every deadline: retries with backoff under faults (response
/// timeouts, a sleeping server, a failover) and polls after a store.
pub const SLACK: Duration = Duration::from_secs(6);

impl Plan {
    /// The plan for namespace `ns`; `cache_key(func, arg)` gives a cache
    /// entry's full key (the library builds it, see `Cached::key`).
    pub fn new(ns: &str, cache_key: impl Fn(usize, u32) -> String) -> Self {
        let full = |k: &str| format!("{ns}:{k}");
        let mut targets = vec![
            Target {
                name: "v:0".into(),
                full: full("v:0"),
                class: KeyClass::Locked,
            },
            Target {
                name: "v:{t1}".into(),
                full: full("v:{t1}"),
                class: KeyClass::Locked,
            },
            Target {
                name: "slow:{t2}".into(),
                full: full("slow:{t2}"),
                class: KeyClass::Slow,
            },
            Target {
                name: "fk:{t3}".into(),
                full: full("fk:{t3}"),
                class: KeyClass::Foreign,
            },
        ];
        for (func, (_, args)) in FUNCTIONS.iter().enumerate() {
            for arg in 0..*args {
                targets.push(Target {
                    name: format!("id={arg}"),
                    full: cache_key(func, arg),
                    class: KeyClass::Cached { func, arg },
                });
            }
        }
        let mut limiters = Vec::new();
        for algorithm in Algorithm::ALL {
            limiters.push(LimiterSpec {
                name: format!("q{}", algorithm.code()),
                algorithm,
                limit: 5,
                window: Duration::from_millis(1000),
                shared: true,
            });
            // Fresh ids, counted once each: a window far longer than any run.
            limiters.push(LimiterSpec {
                name: format!("n{}", algorithm.code()),
                algorithm,
                limit: 10,
                window: Duration::from_secs(10 * 86_400),
                shared: false,
            });
        }
        Plan {
            namespace: ns.to_owned(),
            functions: FUNCTIONS.iter().map(|(f, _)| full(f)).collect(),
            targets,
            limiters,
            shared_ids: vec!["a".into(), "b{x}".into()],
            user_keys: vec![
                UserKey {
                    full: full("user:plain"),
                    hash: false,
                },
                UserKey {
                    full: full("user:{h}:profile"),
                    hash: true,
                },
                // Named like the lock of `fk:{t3}` (a hash-tagged key).
                UserKey {
                    full: full("fk:{t3}:lock"),
                    hash: false,
                },
            ],
        }
    }

    /// The function whose `invalidate_all` removes `target`, if any.
    pub fn function_of(&self, target: usize) -> Option<usize> {
        match self.targets[target].class {
            KeyClass::Cached { func, .. } => Some(func),
            _ => None,
        }
    }
}

/// How one `get_or_compute` / cached call computes and locks.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeSpec {
    /// How long the computation takes.
    pub compute: Duration,
    pub lock_ttl: Duration,
    pub auto_extend: bool,
    pub max_wait: Option<Duration>,
}

/// One operation of a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `get_or_compute(target)`.
    Get { target: usize, spec: ComputeSpec },
    /// `service.cache(func).call(args)` of a cached target.
    Call { target: usize, spec: ComputeSpec },
    /// `Cached::invalidate(args)` of a cached target.
    Invalidate { target: usize },
    /// `Cached::invalidate_all()` of a function.
    InvalidateAll { func: usize },
    /// The library's `set_json` of a value key (a new value).
    Set { target: usize },
    /// The library's `delete` of a value key.
    Delete { target: usize },
    /// A check of a shared id (the quota bound).
    Check {
        limiter: usize,
        id: String,
        request_id: Option<String>,
    },
    /// A check of a fresh id, counted exactly once (or not at all on error).
    CheckOnce {
        limiter: usize,
        id: String,
        request_id: Option<String>,
    },
}

impl Op {
    /// The value key this operation reads or writes.
    pub fn target(&self) -> Option<usize> {
        match self {
            Op::Get { target, .. }
            | Op::Call { target, .. }
            | Op::Invalidate { target }
            | Op::Set { target }
            | Op::Delete { target } => Some(*target),
            _ => None,
        }
    }

    /// `(limiter, id, request id)` of a rate-limit check.
    pub fn check_parts(&self) -> Option<(usize, &str, Option<&str>)> {
        match self {
            Op::Check {
                limiter,
                id,
                request_id,
            }
            | Op::CheckOnce {
                limiter,
                id,
                request_id,
            } => Some((*limiter, id, request_id.as_deref())),
            _ => None,
        }
    }

    /// The longest this operation may take (I5).
    pub fn deadline(&self) -> Duration {
        match self {
            Op::Get { spec, .. } | Op::Call { spec, .. } => {
                // Without max_wait a waiter waits while a holder computes (at
                // most MAX_COMPUTE) or until its lock expires.
                let wait = spec.max_wait.unwrap_or(MAX_COMPUTE + MAX_LOCK_TTL);
                wait + spec.compute + SLACK
            }
            _ => SLACK,
        }
    }
}

/// Draws client `client`'s next operation; `seq` makes fresh ids unique.
pub fn next_op(rng: &mut Rng, plan: &Plan, client: usize, seq: u64) -> Op {
    let cached: Vec<usize> = (0..plan.targets.len())
        .filter(|&t| plan.function_of(t).is_some())
        .collect();
    let plain: Vec<usize> = (0..plan.targets.len())
        .filter(|&t| plan.function_of(t).is_none())
        .collect();
    let any = plan.targets.len() as u64;
    let rid = |rng: &mut Rng| rng.chance(0.5).then(|| format!("r{client}-{seq}"));
    let shared: Vec<usize> = (0..plan.limiters.len())
        .filter(|&l| plan.limiters[l].shared)
        .collect();
    let fresh: Vec<usize> = (0..plan.limiters.len())
        .filter(|&l| !plan.limiters[l].shared)
        .collect();
    match rng.below(100) {
        0..=29 => {
            let target = plain[rng.below(plain.len() as u64) as usize];
            let spec = compute_spec(rng, plan.targets[target].class);
            Op::Get { target, spec }
        }
        30..=49 => {
            let target = cached[rng.below(cached.len() as u64) as usize];
            let spec = compute_spec(rng, plan.targets[target].class);
            Op::Call { target, spec }
        }
        50..=54 => Op::Invalidate {
            target: cached[rng.below(cached.len() as u64) as usize],
        },
        55..=56 => Op::InvalidateAll {
            func: rng.below(FUNCTIONS.len() as u64) as usize,
        },
        57..=61 => Op::Set {
            target: rng.below(any) as usize,
        },
        62..=66 => Op::Delete {
            target: rng.below(any) as usize,
        },
        67..=86 => Op::Check {
            limiter: shared[rng.below(shared.len() as u64) as usize],
            id: plan.shared_ids[rng.below(plan.shared_ids.len() as u64) as usize].clone(),
            request_id: rid(rng),
        },
        _ => Op::CheckOnce {
            limiter: fresh[rng.below(fresh.len() as u64) as usize],
            id: format!("once{{{client}-{seq}}}"),
            request_id: rid(rng),
        },
    }
}

fn compute_spec(rng: &mut Rng, class: KeyClass) -> ComputeSpec {
    let ordinary = |rng: &mut Rng| {
        if rng.chance(0.7) {
            rng.millis(1, 30)
        } else {
            rng.millis(150, MAX_COMPUTE.as_millis() as u64)
        }
    };
    match class {
        KeyClass::Locked | KeyClass::Cached { .. } => {
            let short = rng.chance(0.4);
            ComputeSpec {
                compute: ordinary(rng),
                lock_ttl: if short {
                    Duration::from_millis(100)
                } else {
                    MAX_LOCK_TTL
                },
                auto_extend: !short || rng.chance(0.5),
                max_wait: None,
            }
        }
        KeyClass::Slow => ComputeSpec {
            compute: if rng.chance(0.04) {
                HANG
            } else {
                rng.millis(1, 30)
            },
            lock_ttl: MAX_LOCK_TTL,
            auto_extend: true,
            max_wait: Some(MAX_WAIT),
        },
        KeyClass::Foreign => ComputeSpec {
            compute: rng.millis(1, 30),
            lock_ttl: MAX_LOCK_TTL,
            auto_extend: true,
            max_wait: Some(MAX_WAIT / 2),
        },
    }
}
