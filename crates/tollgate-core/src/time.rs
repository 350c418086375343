//! Seconds since the Unix epoch, the unit every JWT time claim uses.

use std::time::Duration;

/// A point in time, in whole seconds since the Unix epoch (JWT `NumericDate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// `self + d`, saturating instead of overflowing.
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(secs(d)))
    }

    /// `self - d`, saturating instead of overflowing.
    #[must_use]
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(secs(d)))
    }

    /// Seconds from `self` until `later`, zero if `later` is not later.
    #[must_use]
    pub fn seconds_until(self, later: Self) -> u64 {
        u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Where the current time comes from; the server passes the system clock, tests a fixed one.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> UnixTime;
}
