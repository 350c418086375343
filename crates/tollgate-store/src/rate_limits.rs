//! Where rate-limit state lives: in this process ([`MemoryRateLimits`]) for one replica, or
//! in Redis ([`crate::RedisEphemeral`]) so that every replica counts against one limit.

use crate::Result;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use tollgate_core::ratelimit::{Gcra, Step};

/// One GCRA step per request, atomically per key.
#[async_trait]
pub trait RateLimits: Send + Sync + std::fmt::Debug {
    /// Counts a request for `key` at `now_ms`: `None` if allowed, else the milliseconds to
    /// wait. Refused requests change nothing.
    async fn gcra(&self, key: &str, gcra: Gcra, now_ms: i64) -> Result<Option<i64>>;
}

/// Entries kept before expired ones are swept (each is a key and one number).
const SWEEP_AT: usize = 100_000;

/// Rate-limit state of this process only.
#[derive(Debug, Default)]
pub struct MemoryRateLimits {
    tats: Mutex<HashMap<String, i64>>,
}

#[async_trait]
impl RateLimits for MemoryRateLimits {
    async fn gcra(&self, key: &str, gcra: Gcra, now_ms: i64) -> Result<Option<i64>> {
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() >= SWEEP_AT {
            // A TAT in the past is the same as none.
            tats.retain(|_, tat| *tat > now_ms);
        }
        match gcra.check(tats.get(key).copied(), now_ms) {
            Step::Allowed { tat } => {
                tats.insert(key.to_owned(), tat);
                Ok(None)
            }
            Step::Limited { retry_after_ms } => Ok(Some(retry_after_ms)),
        }
    }
}
