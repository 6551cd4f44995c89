//! In-process single-flight: concurrent calls for the same key share one
//! Redis round trip and one computation.
//!
//! The first caller of a key becomes the leader and runs the whole
//! get-or-compute flow; later callers subscribe to its outcome, the encoded
//! value. Errors are not shared: when the leader fails or is cancelled it
//! publishes nothing, its entry disappears, and each follower starts over
//! (one of them becomes the next leader). So a follower never hangs on a
//! dead leader and never receives an error that is not its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The shared outcome: the value as stored in Redis (JSON or raw bytes).
pub(crate) type Shared = Arc<[u8]>;

type Slot = Arc<watch::Sender<Option<Shared>>>;

/// Flights in progress, by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Slot>>,
}

/// What a caller is for a key.
pub(crate) enum Role<'a> {
    /// Run the flow, then [`Leader::publish`].
    Leader(Leader<'a>),
    /// Wait for the leader with [`Follower::wait`].
    Follower(Follower),
}

impl Flights {
    /// Joins the flight of `key`, or starts one.
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(key) {
            return Role::Follower(Follower {
                rx: slot.subscribe(),
            });
        }
        let slot: Slot = Arc::new(watch::channel(None).0);
        map.insert(key.to_string(), Arc::clone(&slot));
        Role::Leader(Leader {
            flights: self,
            key: key.to_string(),
            slot,
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
}

impl Leader<'_> {
    /// Whether anyone waits for this flight (else publishing is skipped).
    pub(crate) fn has_followers(&self) -> bool {
        self.slot.receiver_count() > 0
    }

    /// Hands the value to every follower and ends the flight.
    pub(crate) fn publish(self, value: Shared) {
        self.slot.send_replace(Some(value));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
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

/// A caller waiting for a leader.
pub(crate) struct Follower {
    rx: watch::Receiver<Option<Shared>>,
}

impl Follower {
    /// The leader's value, or `None` when it ended without one (failed or
    /// cancelled): the caller then starts over.
    pub(crate) async fn wait(mut self) -> Option<Shared> {
        match self.rx.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(f1) = flights.join("k") else {
            panic!("second caller follows")
        };
        assert!(matches!(flights.join("other"), Role::Leader(_)));
        leader.publish(Arc::from(&b"v"[..]));
        assert_eq!(f1.wait().await.as_deref(), Some(&b"v"[..]));
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Role::Follower(f) = flights.join("k") else {
            panic!("follower")
        };
        drop(leader);
        assert_eq!(f.wait().await, None);
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }
}
