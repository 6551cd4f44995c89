//! The per-service state of the compute paths (flights, breaker,
//! counters), kept in a slot of the service, and a caller's [`Policy`].

use crate::core::breaker::{Breaker, CircuitBreakerOptions};
use crate::core::service::RedisService;
use crate::stats::{Counters, Stat};

use super::singleflight::Flights;

/// Per-service state of the compute paths: flights, breaker, counters.
#[derive(Debug)]
pub(crate) struct ComputeState {
    pub(super) flights: Flights,
    pub(super) breaker: Breaker,
    pub(super) stats: Counters,
}

impl crate::core::slots::SlotState for ComputeState {
    fn init(config: &crate::core::config::RedisConfig) -> Self {
        ComputeState::new(config.circuit_breaker())
    }
}

impl RedisService {
    /// The flights, breaker and counters of this service's compute paths.
    pub(crate) fn compute_state(&self) -> std::sync::Arc<ComputeState> {
        self.slot::<ComputeState>()
    }
}

impl ComputeState {
    pub(crate) fn new(breaker: CircuitBreakerOptions) -> Self {
        ComputeState {
            flights: Flights::default(),
            breaker: Breaker::new(breaker),
            stats: Counters::default(),
        }
    }

    pub(crate) fn bump(&self, stat: Stat) {
        self.stats.bump(stat);
    }
}

/// What a caller wants beyond the options: values it does not store, and
/// whether a value that cannot be encoded is kept (the cache wrapper, which
/// logs and counts it) or an error (`get_or_compute`).
pub(crate) struct Policy<'a, T> {
    pub(crate) skip_store: Option<&'a (dyn Fn(&T) -> bool + Send + Sync)>,
    pub(crate) lenient: bool,
}

impl<T> Policy<'_, T> {
    pub(super) fn plain() -> Self {
        Policy {
            skip_store: None,
            lenient: false,
        }
    }
}
