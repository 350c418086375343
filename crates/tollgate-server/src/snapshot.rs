//! A cell holding an immutable snapshot that readers clone cheaply and a reloader replaces
//! whole, so a request always sees one consistent version (of keys, of secrets).

use std::sync::{Arc, PoisonError, RwLock};

#[derive(Debug)]
pub struct Snapshot<T>(RwLock<Arc<T>>);

impl<T> Snapshot<T> {
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    /// The current version: one `Arc` clone under a read lock held for nanoseconds.
    pub fn load(&self) -> Arc<T> {
        // A poisoned lock only means a writer panicked while swapping an `Arc`; the value is whole.
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the current version.
    pub fn store(&self, value: T) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}
