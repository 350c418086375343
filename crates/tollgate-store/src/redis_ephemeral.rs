//! [`Ephemeral`] on Redis: what several replicas must share and nobody needs to keep (replay
//! caches, publish sessions). Keys expire by Redis TTL; compare-and-swap runs as Lua
//! scripts, which Redis executes atomically.

use crate::{Ephemeral, Result, StoreError, VersionedDoc};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// Redis as the [`Ephemeral`] store. Every key starts with `prefix` (`tollgate:` by default),
/// so one Redis can serve several deployments (and tests).
#[derive(Clone)]
pub struct RedisEphemeral {
    conn: ConnectionManager,
    prefix: String,
    create: std::sync::Arc<redis::Script>,
    replace: std::sync::Arc<redis::Script>,
    gcra: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for RedisEphemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEphemeral")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Redis(e)
    }
}

const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'ver', 1, 'doc', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

const REPLACE: &str = r"
local v = redis.call('HGET', KEYS[1], 'ver')
if not v or tonumber(v) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ver', tonumber(ARGV[1]) + 1, 'doc', ARGV[2])
return 1";

/// `tollgate_core::ratelimit::Gcra::check` in Lua: KEYS[1] the key, ARGV now, T, τ (ms).
/// Returns -1 when allowed (and stores the new TAT until it has passed), else the
/// milliseconds to wait.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local tau = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tau
if now < allow_at then return allow_at - now end
local new_tat = tat + t
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return -1";

/// Milliseconds from `now` to `until`, at least 1 (Redis refuses non-positive expiries).
fn millis_until(until: i64, now: i64) -> i64 {
    until.saturating_sub(now).max(0).saturating_mul(1000).max(1)
}

impl RedisEphemeral {
    /// Connects to `url` (`redis://host:port/db`). Fails if Redis does not answer `PING`,
    /// so a misconfigured URL stops the server at start rather than at the first request.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Open(format!("invalid redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2);
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| StoreError::Open(format!("cannot connect to redis: {e}")))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| StoreError::Open(format!("redis does not answer PING: {e}")))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            create: std::sync::Arc::new(redis::Script::new(CREATE)),
            replace: std::sync::Arc::new(redis::Script::new(REPLACE)),
            gcra: std::sync::Arc::new(redis::Script::new(GCRA)),
        })
    }

    fn doc_key(&self, kind: &str, id: &str) -> String {
        format!("{}doc:{kind}:{id}", self.prefix)
    }

    /// A round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }
}

#[async_trait]
impl crate::RateLimits for RedisEphemeral {
    async fn gcra(
        &self,
        key: &str,
        gcra: tollgate_core::ratelimit::Gcra,
        now_ms: i64,
    ) -> Result<Option<i64>> {
        let mut conn = self.conn.clone();
        let wait: i64 = self
            .gcra
            .key(format!("{}rl:{key}", self.prefix))
            .arg(now_ms)
            .arg(gcra.emission_ms)
            .arg(gcra.tolerance_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok((wait >= 0).then_some(wait))
    }
}

#[async_trait]
impl Ephemeral for RedisEphemeral {
    async fn first_use(&self, namespace: &str, key: &str, expires_at: i64, now: i64) -> Result<bool> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}replay:{namespace}:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis_until(expires_at, now))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    async fn create_doc(&self, kind: &str, id: &str, doc: &str, keep_until: i64, now: i64) -> Result<()> {
        let mut conn = self.conn.clone();
        let created: i64 = self
            .create
            .key(self.doc_key(kind, id))
            .arg(doc)
            .arg(millis_until(keep_until, now))
            .invoke_async(&mut conn)
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("{kind} `{id}` exists")))
        }
    }

    async fn get_doc(&self, kind: &str, id: &str) -> Result<Option<VersionedDoc>> {
        let mut conn = self.conn.clone();
        let (ver, doc): (Option<i64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.doc_key(kind, id))
            .arg("ver")
            .arg("doc")
            .query_async(&mut conn)
            .await?;
        Ok(ver.zip(doc).map(|(ver, doc)| VersionedDoc { ver, doc }))
    }

    async fn replace_doc(&self, kind: &str, id: &str, expected_ver: i64, doc: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let replaced: i64 = self
            .replace
            .key(self.doc_key(kind, id))
            .arg(expected_ver)
            .arg(doc)
            .invoke_async(&mut conn)
            .await?;
        Ok(replaced == 1)
    }

    async fn purge_ephemeral(&self, _now: i64) -> Result<u64> {
        Ok(0)
    }

    fn ephemeral_backend(&self) -> &'static str {
        "redis"
    }
}
