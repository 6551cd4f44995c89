//! In-process single-flight: concurrent calls for the same key share one
//! Redis round trip and one computation.
//!
//! The first caller of a key becomes the leader and runs the whole
//! get-or-compute flow; later callers subscribe to its outcome, the encoded
//! value. Errors are not shared: when the leader fails or is cancelled it
//! publishes nothing, its entry disappears, and each follower starts over
//! (one of them becomes the next leader). A follower waits at most until
//! its deadline (`max_wait`).
//!
//! Sharing stays linearizable: the leader marks the moment it issues the
//! operation whose result it publishes (the read that found the value, or
//! the store of its computation), and a follower accepts the value only if
//! it joined before that moment. A follower that joined later (so perhaps
//! after an invalidation that the value predates) starts over instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;

/// The shared outcome: the value as stored in Redis (JSON or raw bytes),
/// and the mark of the operation that produced it.
#[derive(Clone)]
struct Outcome {
    value: Arc<[u8]>,
    mark: u64,
}

type Slot = Arc<watch::Sender<Option<Outcome>>>;

/// Flights in progress, by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Slot>>,
    /// Orders joins and marks.
    clock: AtomicU64,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outcome({} bytes, mark {})", self.value.len(), self.mark)
    }
}

/// What a caller is for a key.
pub(crate) enum Role<'a> {
    /// Run the flow, then [`Leader::publish`].
    Leader(Leader<'a>),
    /// Wait for the leader with [`Follower::wait`].
    Follower(Follower),
}

/// What a follower got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The leader's value, produced by an operation issued after we joined.
    Value(Arc<[u8]>),
    /// The leader ended without a usable value: start over.
    Restart,
    /// The deadline passed first.
    TimedOut,
}

impl Flights {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Joins the flight of `key`, or starts one.
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(key) {
            return Role::Follower(Follower {
                rx: slot.subscribe(),
                joined: self.tick(),
            });
        }
        let slot: Slot = Arc::new(watch::channel(None).0);
        map.insert(key.to_string(), Arc::clone(&slot));
        Role::Leader(Leader {
            flights: self,
            key: key.to_string(),
            slot,
            mark: None,
        })
    }

    /// Flights in progress (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The leader of a flight; dropping it ends the flight (followers with no
/// published value start over).
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    slot: Slot,
    mark: Option<u64>,
}

impl Leader<'_> {
    /// Whether anyone waits for this flight (else publishing is skipped).
    pub(crate) fn has_followers(&self) -> bool {
        self.slot.receiver_count() > 0
    }

    /// Notes that the operation whose result will be published is being
    /// issued now; only followers that joined before this get the value.
    pub(crate) fn mark(&mut self) {
        self.mark = Some(self.flights.tick());
    }

    /// Shares the value with every follower, whenever it joined: for values
    /// computed but not stored (degraded, skipped), which no invalidation
    /// orders against.
    pub(crate) fn mark_all(&mut self) {
        self.mark = Some(u64::MAX);
    }

    /// Hands the value to every follower that joined before the mark and
    /// ends the flight.
    pub(crate) fn publish(mut self, value: Arc<[u8]>) {
        let mark = self.mark.unwrap_or(0);
        self.remove();
        self.slot.send_replace(Some(Outcome { value, mark }));
    }

    fn remove(&mut self) {
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.key)
            .is_some_and(|s| Arc::ptr_eq(s, &self.slot))
        {
            map.remove(&self.key);
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A caller waiting for a leader.
pub(crate) struct Follower {
    rx: watch::Receiver<Option<Outcome>>,
    joined: u64,
}

impl Follower {
    /// The leader's value; [`Waited::Restart`] when it ended without one
    /// (failed, cancelled, its store was refused) or produced it before we
    /// joined; [`Waited::TimedOut`] at `deadline`.
    pub(crate) async fn wait(mut self, deadline: Option<Instant>) -> Waited {
        let joined = self.joined;
        let outcome = async {
            match self.rx.wait_for(Option::is_some).await {
                Ok(outcome) => match outcome.as_ref() {
                    Some(o) if o.mark > joined => Waited::Value(Arc::clone(&o.value)),
                    _ => Waited::Restart,
                },
                Err(_) => Waited::Restart,
            }
        };
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, outcome)
                .await
                .unwrap_or(Waited::TimedOut),
            None => outcome.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &[u8]) -> Arc<[u8]> {
        Arc::from(v)
    }

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let flights = Flights::default();
        let Role::Leader(mut leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(f1) = flights.join("k") else {
            panic!("second caller follows")
        };
        assert!(matches!(flights.join("other"), Role::Leader(_)));
        leader.mark();
        leader.publish(value(b"v"));
        assert_eq!(f1.wait(None).await, Waited::Value(value(b"v")));
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_follower_that_joined_after_the_mark_starts_over() {
        let flights = Flights::default();
        let Role::Leader(mut leader) = flights.join("k") else {
            panic!("leader")
        };
        let Role::Follower(early) = flights.join("k") else {
            panic!("follower")
        };
        leader.mark();
        let Role::Follower(late) = flights.join("k") else {
            panic!("follower")
        };
        leader.publish(value(b"v"));
        assert_eq!(early.wait(None).await, Waited::Value(value(b"v")));
        assert_eq!(late.wait(None).await, Waited::Restart);
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Role::Follower(f) = flights.join("k") else {
            panic!("follower")
        };
        drop(leader);
        assert_eq!(f.wait(None).await, Waited::Restart);
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_of_a_hung_leader_times_out() {
        let flights = Flights::default();
        let _leader = flights.join("k");
        let Role::Follower(f) = flights.join("k") else {
            panic!("follower")
        };
        let deadline = Instant::now() + std::time::Duration::from_millis(50);
        assert_eq!(f.wait(Some(deadline)).await, Waited::TimedOut);
    }
}
