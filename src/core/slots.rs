//! Per-feature state on a service: a typed, lazily initialised slot per
//! feature, so the core holds state it does not name.
//!
//! A feature declares its state type and implements [`SlotState`]; the
//! first [`RedisService::slot`](crate::RedisService) call builds it from the
//! config, later calls return the same value. Lookups are a lock-free read
//! of a small vector after the first one.

use std::any::{Any, TypeId};
use std::sync::{Arc, PoisonError, RwLock};

use super::config::RedisConfig;

/// State a feature keeps per service (shared by its clones and views).
pub(crate) trait SlotState: Any + Send + Sync {
    /// Builds the state when first asked for.
    fn init(config: &RedisConfig) -> Self;
}

type Entry = (TypeId, Arc<dyn Any + Send + Sync>);

/// The slots of one service.
#[derive(Default)]
pub(crate) struct Slots {
    entries: RwLock<Vec<Entry>>,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.read().map_or(0, |e| e.len());
        write!(f, "Slots({n} features)")
    }
}

impl Slots {
    /// The state of type `T`, built with `T::init(config)` on first use.
    pub(crate) fn get<T: SlotState>(&self, config: &RedisConfig) -> Arc<T> {
        let id = TypeId::of::<T>();
        if let Some(found) = Self::find::<T>(
            &self.entries.read().unwrap_or_else(PoisonError::into_inner),
            id,
        ) {
            return found;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = Self::find::<T>(&entries, id) {
            return found;
        }
        let state = Arc::new(T::init(config));
        entries.push((id, Arc::clone(&state) as Arc<dyn Any + Send + Sync>));
        state
    }

    fn find<T: SlotState>(entries: &[Entry], id: TypeId) -> Option<Arc<T>> {
        entries
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, state)| Arc::clone(state).downcast::<T>().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static BUILT: AtomicUsize = AtomicUsize::new(0);

    struct Counter(usize);

    impl SlotState for Counter {
        fn init(_: &RedisConfig) -> Self {
            Counter(BUILT.fetch_add(1, Ordering::SeqCst) + 7)
        }
    }

    #[test]
    fn a_slot_is_built_once_and_shared() {
        let slots = Slots::default();
        let config = RedisConfig::new("redis://127.0.0.1:1/").unwrap();
        let a = slots.get::<Counter>(&config);
        let b = slots.get::<Counter>(&config);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.0, 7);
        assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    }
}
