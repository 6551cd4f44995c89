//! The operations the load test drives, each one call of the façade.

use std::num::NonZeroU32;
use std::time::Duration;

use clap::ValueEnum;
use rand::Rng;
use redis_atomics::{
    Algorithm, ComputeOptions, Quota, RateLimiter, RedisService, Result, SetOptions,
};
use serde_json::{Value, json};

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

impl<T> From<Result<T>> for Outcome {
    fn from(r: Result<T>) -> Self {
        match r {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Err(e.kind().as_str().to_owned()),
        }
    }
}

/// The operation's name as given on the command line.
pub fn name(op: Op) -> String {
    op.to_possible_value()
        .map_or_else(|| format!("{op:?}"), |v| v.get_name().to_owned())
}

/// Runs operations against one service with the run's settings.
pub struct Driver {
    service: RedisService,
    limiter: RateLimiter,
    keys: u64,
    batch: usize,
    value: Value,
    text: String,
    ttl: Duration,
    compute: Duration,
    limit: u32,
    window_secs: u64,
}

impl Driver {
    pub fn new(service: RedisService, args: &Args) -> Result<Self> {
        let algorithm = match args.algorithm {
            Algo::SlidingLog => Algorithm::SlidingLog,
            Algo::FixedWindow => Algorithm::FixedWindow,
            Algo::SlidingWindow => Algorithm::SlidingWindow,
            Algo::Gcra => Algorithm::Gcra,
        };
        let limit = NonZeroU32::new(args.limit).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::new(limit, Duration::from_millis(args.window_ms));
        let limiter = service.rate_limiter("loadtest", algorithm, quota)?;
        let text = "x".repeat(args.value_size);
        Ok(Driver {
            limiter,
            keys: args.keys,
            batch: args.batch,
            value: json!({ "payload": text.clone(), "n": 42 }),
            text,
            ttl: Duration::from_secs(args.ttl),
            compute: Duration::from_millis(args.compute_ms),
            limit: args.limit,
            window_secs: args.window_ms.div_ceil(1000),
            service,
        })
    }

    fn pick(&self) -> u64 {
        rand::rng().random_range(0..self.keys)
    }

    fn batch_keys(&self) -> Vec<String> {
        (0..self.batch)
            .map(|_| format!("json:{}", self.pick()))
            .collect()
    }

    pub async fn run(&self, op: Op) -> Outcome {
        let svc = &self.service;
        match op {
            Op::Get => svc
                .get::<String>(&format!("kv:{}", self.pick()))
                .await
                .into(),
            Op::Set => {
                let key = format!("kv:{}", self.pick());
                svc.set(&key, self.text.as_str(), SetOptions::new().ex(self.ttl))
                    .await
                    .into()
            }
            Op::RateLimit => match self.limiter.check(&format!("user:{}", self.pick())).await {
                Ok(d) if d.is_allowed() => Outcome::Ok,
                Ok(_) => Outcome::Denied,
                Err(e) => Outcome::Err(e.kind().as_str().to_owned()),
            },
            Op::CheckRateLimit => {
                let key = format!("ip:{}", self.pick());
                match svc
                    .check_rate_limit(&key, self.limit, self.window_secs, true)
                    .await
                {
                    Ok((true, _)) => Outcome::Ok,
                    Ok((false, _)) => Outcome::Denied,
                    Err(e) => Outcome::Err(e.kind().as_str().to_owned()),
                }
            }
            Op::GetOrCompute => {
                let key = format!("computed:{}", self.pick());
                let compute = async {
                    tokio::time::sleep(self.compute).await;
                    self.value.clone()
                };
                svc.get_or_compute::<Value, _>(&key, compute, ComputeOptions::new().ttl(self.ttl))
                    .await
                    .into()
            }
            Op::GetJson => svc
                .get_json::<Value>(&format!("json:{}", self.pick()))
                .await
                .into(),
            Op::SetJson => {
                let key = format!("json:{}", self.pick());
                svc.set_json(&key, &self.value, SetOptions::new().ex(self.ttl))
                    .await
                    .into()
            }
            Op::MgetJson => svc.mget_json::<Value, _>(&self.batch_keys()).await.into(),
            Op::MsetJson => {
                let mapping: Vec<(String, &Value)> = self
                    .batch_keys()
                    .into_iter()
                    .map(|k| (k, &self.value))
                    .collect();
                svc.mset_json(mapping, Some(self.ttl)).await.into()
            }
        }
    }
}
