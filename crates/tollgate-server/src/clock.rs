//! The clocks the server runs on: the system clock, and a settable one for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tollgate_core::UnixTime;
use tollgate_core::time::Clock;

pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// A clock tests move by hand, so expiry is tested without sleeping.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    #[must_use]
    pub fn new(start: UnixTime) -> Self {
        Self(AtomicI64::new(start.0))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: std::time::Duration) {
        self.0
            .fetch_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}
