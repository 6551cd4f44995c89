//! The operations the load test drives, each one call of the façade.

use std::time::Duration;

use clap::ValueEnum;
use rand::Rng;
use redis_atomics::{ErrorKind, Idempotency, RedisService, SetOptions};

use crate::args::{Algo, Args, Op};

/// How one request ended.
pub enum Outcome {
    /// Answered.
    Ok,
    /// Answered "no" by design (a rate-limit denial).
    Denied,
    /// Failed; the error kind.
    Err(String),
}

impl<E: Into<redis_atomics::Error>> From<Result<(), E>> for Outcome {
    fn from(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Err(kind_name(e.into().kind())),
        }
    }
}

fn kind_name(kind: ErrorKind) -> String {
    kind.as_str().to_owned()
}

/// The operation's name as given on the command line.
pub fn name(op: Op) -> String {
    op.to_possible_value()
        .map_or_else(|| format!("{op:?}"), |v| v.get_name().to_owned())
}

/// Runs operations against one service with the run's settings.
pub struct Driver {
    service: RedisService,
    keys: u64,
    value: String,
    ttl: Duration,
    algorithm: Algo,
    limit: u32,
    window_ms: u64,
}

impl Driver {
    pub fn new(service: RedisService, args: &Args) -> redis_atomics::Result<Self> {
        Ok(Driver {
            service,
            keys: args.keys,
            value: "x".repeat(args.value_size),
            ttl: Duration::from_secs(args.ttl),
            algorithm: args.algorithm,
            limit: args.limit,
            window_ms: args.window_ms,
        })
    }

    fn key(&self) -> u64 {
        rand::rng().random_range(0..self.keys)
    }

    pub async fn run(&self, op: Op) -> Outcome {
        match op {
            Op::Get => {
                let r: redis_atomics::Result<Option<String>> =
                    self.service.get(&format!("kv:{}", self.key())).await;
                r.map(drop).into()
            }
            Op::Set => self
                .service
                .set(
                    &format!("kv:{}", self.key()),
                    self.value.as_str(),
                    SetOptions::new().ex(self.ttl),
                )
                .await
                .map(drop)
                .into(),
            Op::RateLimit => self.rate_limit().await,
        }
    }

    async fn rate_limit(&self) -> Outcome {
        let id = self.key();
        let (script, tag) = match self.algorithm {
            Algo::SlidingLog => ("rl_sliding_log", "sl"),
            Algo::FixedWindow => ("rl_fixed_window", "fw"),
            Algo::SlidingWindow => ("rl_sliding_window", "sw"),
            Algo::Gcra => ("rl_gcra", "gc"),
        };
        let k0 = format!("rl:{{{id}}}:{tag}:0");
        let dedupe = format!("rl:{{{id}}}:req");
        let mut args: Vec<String> = vec![
            String::new(),
            "1".into(),
            String::new(),
            "check".into(),
            self.limit.to_string(),
            self.window_ms.to_string(),
        ];
        if self.algorithm == Algo::Gcra {
            args.push(self.limit.to_string());
        }
        let reply: redis_atomics::Result<Vec<i64>> = self
            .service
            .eval_script(script, &[&k0, &dedupe], &args, Idempotency::NonIdempotent)
            .await;
        match reply {
            Ok(v) if v.first() == Some(&1) => Outcome::Ok,
            Ok(_) => Outcome::Denied,
            Err(e) => Outcome::Err(kind_name(e.kind())),
        }
    }
}
