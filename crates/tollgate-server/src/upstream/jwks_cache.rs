//! A cache of upstream issuers' signing keys (JWK Sets, RFC 7517), one entry per issuer.
//!
//! Verifying a federated token needs its issuer's public keys. They live at the issuer's
//! `jwks_uri`, configured or found by OpenID Connect Discovery, and change rarely; fetching
//! them per token would put the IdP on every request's path. So each entry moves through:
//!
//! - **cold**: the first lookup fetches (single flight: concurrent callers share one fetch);
//! - **fresh** (`now < expires_at`): lookups answer from memory — a std `RwLock` read and an
//!   `Arc` clone, never I/O and never an async lock. The lifetime is the IdP's
//!   `Cache-Control: max-age`, clamped to `[min_ttl, max_ttl]`;
//! - **due** (less than `refresh_ahead` left): [`JwksCache::refresh_due`], run by upkeep,
//!   revalidates with `If-None-Match`; a `304` extends the lifetime without a download;
//! - **expired**: the next lookup fetches again. If that fails, the old keys are still served
//!   (*stale-if-error*) until `stale_if_error` past expiry; after that the issuer is
//!   unavailable ([`JwksError::Unavailable`]) until a fetch succeeds.
//!
//! A token naming an unknown `kid` may mean the IdP rotated keys:
//! [`JwksCache::refresh_for_unknown_kid`] refetches, at most once per `unknown_kid_cooldown`
//! per issuer, so a flood of made-up kids costs the IdP one request per cooldown.
//!
//! Expiry, cooldowns and staleness are judged on the injected clock (whole seconds), so
//! tests move a `ManualClock` instead of sleeping; HTTP timeouts are real durations.
//! A fetch failure never masquerades as a bad token: it surfaces as `JwksError`, which the
//! verifier reports as `jwks-unavailable`, and only when no usable keys are cached.

use crate::clock::SharedClock;
use crate::metrics::{IssuerLabel, JwksFetchLabels, JwksLookupLabels, Metrics};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CACHE_CONTROL, ETAG, HeaderMap, IF_NONE_MATCH};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::task::JoinSet;
use tollgate_core::{JwsAlg, UnixTime};
use tollgate_crypto::{Jwk, VerifyingKey};

/// How long keys are kept and how often the IdP may be asked.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Shortest lifetime of a cached set, whatever the IdP says; also the lifetime under
    /// `no-cache`/`no-store`, since refetching per token is not an option.
    pub min_ttl: Duration,
    /// Longest lifetime, so a typo like `max-age=31536000` cannot pin keys for a year.
    pub max_ttl: Duration,
    /// Lifetime when the response has no `max-age`.
    pub default_ttl: Duration,
    /// `refresh_due` revalidates a set once less than this remains of its lifetime (but never
    /// earlier than half-way, so a short-lived set is not refreshed on every upkeep round).
    /// Upkeep must run more often than this for keys to be refreshed before they expire.
    pub refresh_ahead: Duration,
    /// An unknown `kid` triggers a refetch only if the issuer's last fetch (of any kind) was
    /// attempted at least this long ago: a set fetched seconds ago will not have the key.
    pub unknown_kid_cooldown: Duration,
    /// After a failed fetch, lookups do not ask the IdP again for this long: they get the
    /// stale keys or the same error at once instead of queueing behind a dead IdP.
    pub retry_after_error: Duration,
    /// How long past expiry cached keys are still used while the IdP cannot be fetched.
    pub stale_if_error: Duration,
    /// Limit on one whole request (connect, headers, body).
    pub http_timeout: Duration,
    /// Limit on establishing the connection.
    pub connect_timeout: Duration,
    /// Largest JWKS or discovery document read; larger ones are refused unread.
    pub max_jwks_bytes: usize,
    /// Redirects followed per request (same host only, never from https to http).
    pub max_redirects: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(300),
            refresh_ahead: Duration::from_secs(60),
            unknown_kid_cooldown: Duration::from_secs(30),
            retry_after_error: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(6 * 3600),
            http_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            max_jwks_bytes: 256 * 1024,
            max_redirects: 3,
        }
    }
}

/// Where an issuer's keys are published.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JwksSource {
    /// A JWKS URL given in configuration.
    Uri(String),
    /// OpenID Connect Discovery: `jwks_uri` from `{issuer}/.well-known/openid-configuration`,
    /// whose `issuer` member must equal this one exactly. The URI found is remembered and
    /// rediscovered only after a fetch from it failed.
    Discovery { issuer: String },
}

impl JwksSource {
    /// The URL to name in errors while no `jwks_uri` is known.
    fn first_url(&self) -> String {
        match self {
            JwksSource::Uri(uri) => uri.clone(),
            JwksSource::Discovery { issuer } => discovery_url(issuer),
        }
    }
}

/// OpenID Connect Discovery 1.0 §4: the issuer without a trailing `/`, then the well-known path.
fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Why an issuer's keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Fetching failed and nothing usable is cached (never fetched, or expired for longer
    /// than `stale_if_error`). The token cannot be judged: report `jwks-unavailable`.
    #[error("the signing keys at {url} are unavailable: {cause}")]
    Unavailable { url: String, cause: String },
}

/// One version of an issuer's signing keys, as fetched; immutable and shared by `Arc`.
#[derive(Debug)]
pub struct KeySet {
    /// Shared between the versions a `304 Not Modified` produces, so revalidation copies nothing.
    material: Arc<KeyMaterial>,
    jwks_uri: String,
    etag: Option<String>,
    /// The lifetime granted at the last fetch, reused when a `304` carries no `Cache-Control`.
    ttl: Duration,
    fetched_at: UnixTime,
    expires_at: UnixTime,
    refresh_at: UnixTime,
}

#[derive(Debug)]
struct KeyMaterial {
    keys: Vec<Jwk>,
    /// Verifiers by `kid`, one per algorithm the key can serve, parsed once per fetch
    /// rather than once per token.
    by_kid: HashMap<String, Vec<VerifyingKey>>,
    /// Verifiers of keys without a `kid`.
    without_kid: Vec<VerifyingKey>,
}

impl KeyMaterial {
    fn new(keys: Vec<Jwk>) -> Self {
        let mut by_kid: HashMap<String, Vec<VerifyingKey>> = HashMap::new();
        let mut without_kid = Vec::new();
        for jwk in &keys {
            // A key without `alg` may serve every algorithm of its type (an RSA key both RS*
            // and PS*); `from_jwk` refuses the combinations that do not fit.
            let parsed = JwsAlg::ALL
                .into_iter()
                .filter(|alg| alg.key_type() == jwk.kty)
                .filter_map(|alg| VerifyingKey::from_jwk(alg, jwk).ok());
            match &jwk.kid {
                Some(kid) => by_kid.entry(kid.clone()).or_default().extend(parsed),
                None => without_kid.extend(parsed),
            }
        }
        Self {
            keys,
            by_kid,
            without_kid,
        }
    }
}

impl KeySet {
    /// The signing keys (`use` absent or `sig`), in the IdP's order.
    #[must_use]
    pub fn keys(&self) -> &[Jwk] {
        &self.material.keys
    }

    /// The first key whose `kid` is `kid`.
    #[must_use]
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.material.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// The parsed key for a token with this `kid` and `alg`, if the set has one that fits.
    #[must_use]
    pub fn verifier(&self, kid: &str, alg: JwsAlg) -> Option<&VerifyingKey> {
        self.material.by_kid.get(kid)?.iter().find(|v| v.alg() == alg)
    }

    /// For a token without `kid`: the set's only key that fits `alg`, or `None` when there is
    /// none or more than one (guessing between keys is not verification).
    #[must_use]
    pub fn sole_verifier(&self, alg: JwsAlg) -> Option<&VerifyingKey> {
        let m = &self.material;
        let mut fitting = m
            .by_kid
            .values()
            .flatten()
            .chain(&m.without_kid)
            .filter(|v| v.alg() == alg);
        match (fitting.next(), fitting.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.material.keys.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.material.keys.is_empty()
    }

    /// Where this set was fetched from.
    #[must_use]
    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }

    #[must_use]
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    #[must_use]
    pub fn fetched_at(&self) -> UnixTime {
        self.fetched_at
    }

    #[must_use]
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    /// Past its lifetime: served only while refreshing fails, within `stale_if_error`.
    #[must_use]
    pub fn is_stale(&self, now: UnixTime) -> bool {
        now >= self.expires_at
    }

    fn new(
        material: Arc<KeyMaterial>,
        jwks_uri: String,
        etag: Option<String>,
        fetched_at: UnixTime,
        ttl: Duration,
        refresh_ahead: Duration,
    ) -> Self {
        let expires_at = fetched_at.plus(ttl);
        Self {
            material,
            jwks_uri,
            etag,
            ttl,
            fetched_at,
            expires_at,
            refresh_at: expires_at.minus(refresh_ahead.min(ttl / 2)),
        }
    }

    /// The same keys, confirmed unchanged by a `304` at `now`.
    fn revalidated(
        &self,
        now: UnixTime,
        ttl: Option<Duration>,
        etag: Option<String>,
        ahead: Duration,
    ) -> Self {
        Self::new(
            self.material.clone(),
            self.jwks_uri.clone(),
            etag.or_else(|| self.etag.clone()),
            now,
            ttl.unwrap_or(self.ttl),
            ahead,
        )
    }
}

/// A failed fetch, as kept for diagnostics and for the error lookups return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FetchFailure {
    pub at: UnixTime,
    pub url: String,
    pub cause: String,
}

/// One issuer's cache entry, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryStatus {
    pub cache_key: String,
    /// The JWKS URL in use, once known (configured, or found by discovery).
    pub jwks_uri: Option<String>,
    pub keys: usize,
    pub fetched_at: Option<UnixTime>,
    pub expires_at: Option<UnixTime>,
    /// The last fetch's failure; `None` once a fetch succeeds.
    pub last_error: Option<FetchFailure>,
}

/// The upstream key cache of one app; entries are keyed by a caller-chosen name (the
/// issuer's configured name or URL), which also labels the metrics.
#[derive(Debug)]
pub struct JwksCache {
    fetcher: Arc<Fetcher>,
    metrics: Arc<Metrics>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl JwksCache {
    /// A cache with its own HTTP client: timeouts from `settings`, redirects limited to
    /// `max_redirects` on the same host. Fails only if the TLS backend cannot initialise.
    pub fn new(
        settings: CacheSettings,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(same_host_redirects(settings.max_redirects))
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION"), " (jwks-cache)"))
            .build()?;
        Ok(Self::with_client(http, settings, clock, metrics))
    }

    /// A cache using `http` (e.g. one trusting a private CA). Every request still carries
    /// `settings.http_timeout`; redirect policy and connect timeout are the client's.
    #[must_use]
    pub fn with_client(
        http: reqwest::Client,
        settings: CacheSettings,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            fetcher: Arc::new(Fetcher {
                http,
                settings,
                clock,
            }),
            metrics,
            entries: RwLock::new(HashMap::new()),
        }
    }

    #[must_use]
    pub fn settings(&self) -> &CacheSettings {
        &self.fetcher.settings
    }

    /// The keys of `source`: from memory while fresh; fetched (single flight) when the entry
    /// is cold or expired; the expired keys if that fetch fails, within `stale_if_error`.
    /// Never fetches for a warm issuer.
    pub async fn keys(&self, cache_key: &str, source: &JwksSource) -> Result<Arc<KeySet>, JwksError> {
        let entry = self.entry(cache_key, source);
        if let Some(set) = entry.fresh(self.fetcher.now()) {
            entry.metrics.hit.inc();
            return Ok(set);
        }
        self.fetch_expired(&entry).await
    }

    /// For a token whose `kid` is not in the cached set: refetches, at most once per
    /// `unknown_kid_cooldown` per issuer (concurrent callers share one fetch), then returns
    /// the usable set, which may still lack `kid`. A failed refetch with usable keys cached
    /// returns those keys: the token's key is then simply not known (`status_of` tells why).
    pub async fn refresh_for_unknown_kid(
        &self,
        cache_key: &str,
        source: &JwksSource,
        kid: &str,
    ) -> Result<Arc<KeySet>, JwksError> {
        let entry = self.entry(cache_key, source);
        let may_fetch = |entry: &Entry, now| {
            !entry.knows(kid)
                && !entry.cooling_down(now, self.settings().unknown_kid_cooldown)
                && !entry.backing_off(now, self.settings().retry_after_error)
        };
        if !may_fetch(&entry, self.fetcher.now()) {
            return self.answer(&entry, Lookup::Cached);
        }
        let seen = entry.attempts();
        let flight = entry.flight.lock().await;
        // Whoever held the lock before us fetched already; their result is ours too.
        if entry.attempts() == seen && may_fetch(&entry, self.fetcher.now()) {
            self.fetcher.refresh(&entry, &flight).await;
        }
        drop(flight);
        self.answer(&entry, Lookup::Fetched)
    }

    /// Background upkeep: revalidates every entry that is due (less than `refresh_ahead`
    /// left, or no keys after a failure) with a conditional request, all issuers
    /// concurrently. Failures are logged and recorded; cached keys stay (stale-if-error).
    pub async fn refresh_due(&self) {
        let now = self.fetcher.now();
        let due: Vec<Arc<Entry>> = read(&self.entries)
            .values()
            .filter(|e| self.fetcher.is_due(e, now))
            .cloned()
            .collect();
        let mut tasks = JoinSet::new();
        for entry in due {
            let fetcher = self.fetcher.clone();
            tasks.spawn(async move {
                // A lookup already fetching this entry is doing the work.
                if let Ok(flight) = entry.flight.try_lock()
                    && fetcher.is_due(&entry, fetcher.now())
                {
                    fetcher.refresh(&entry, &flight).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Forgets an issuer (its configuration was removed) and its metric series.
    pub fn forget(&self, cache_key: &str) {
        if write(&self.entries).remove(cache_key).is_some() {
            EntryMetrics::remove(&self.metrics, cache_key);
        }
    }

    /// Every entry's state, sorted by cache key.
    #[must_use]
    pub fn status(&self) -> Vec<EntryStatus> {
        let mut all: Vec<EntryStatus> = read(&self.entries).values().map(|e| e.status()).collect();
        all.sort_by(|a, b| a.cache_key.cmp(&b.cache_key));
        all
    }

    /// One entry's state, e.g. to explain a `kid` that stayed unknown.
    #[must_use]
    pub fn status_of(&self, cache_key: &str) -> Option<EntryStatus> {
        read(&self.entries).get(cache_key).map(|e| e.status())
    }

    /// The entry for `cache_key`, created cold if missing, or replaced if its source
    /// changed (the issuer was reconfigured: keys of the old source must not be used).
    fn entry(&self, cache_key: &str, source: &JwksSource) -> Arc<Entry> {
        if let Some(entry) = read(&self.entries).get(cache_key)
            && entry.source == *source
        {
            return entry.clone();
        }
        let mut entries = write(&self.entries);
        match entries.get(cache_key) {
            Some(entry) if entry.source == *source => entry.clone(),
            _ => {
                let entry = Arc::new(Entry::new(cache_key, source.clone(), &self.metrics));
                entries.insert(cache_key.to_owned(), entry.clone());
                entry
            }
        }
    }

    /// The slow path of [`JwksCache::keys`]: the entry is cold or expired.
    async fn fetch_expired(&self, entry: &Entry) -> Result<Arc<KeySet>, JwksError> {
        let seen = entry.attempts();
        let flight = match entry.flight.try_lock() {
            Ok(flight) => flight,
            Err(_busy) => {
                // Someone is fetching. Stale keys answer now, rather than queueing every
                // request behind an IdP that may hang until the timeout.
                if let Some(set) = entry.stale_but_usable(self.fetcher.now(), self.settings()) {
                    entry.metrics.stale.inc();
                    return Ok(set);
                }
                entry.flight.lock().await
            }
        };
        let now = self.fetcher.now();
        let someone_fetched = entry.attempts() != seen;
        if entry.fresh(now).is_none()
            && !someone_fetched
            && !entry.backing_off(now, self.settings().retry_after_error)
        {
            self.fetcher.refresh(entry, &flight).await;
        }
        drop(flight);
        self.answer(entry, Lookup::Fetched)
    }

    /// What a lookup returns once any fetch is done, and how it is counted.
    fn answer(&self, entry: &Entry, lookup: Lookup) -> Result<Arc<KeySet>, JwksError> {
        let now = self.fetcher.now();
        let m = &entry.metrics;
        if let Some(set) = entry.fresh(now) {
            match lookup {
                Lookup::Cached => m.hit.inc(),
                Lookup::Fetched => m.miss.inc(),
            };
            return Ok(set);
        }
        if let Some(set) = entry.stale_but_usable(now, self.settings()) {
            m.stale.inc();
            return Ok(set);
        }
        m.miss.inc();
        Err(entry.unavailable(self.settings()))
    }
}

/// How a lookup was answered, for the `hit`/`miss` metric.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    /// From memory, without waiting for a fetch.
    Cached,
    /// After a fetch (ours, or one we waited for).
    Fetched,
}

/// One issuer's keys and fetch bookkeeping.
#[derive(Debug)]
struct Entry {
    cache_key: String,
    source: JwksSource,
    /// Read on every lookup: a std lock held only to clone the `Arc`.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Never held across an `.await`.
    progress: Mutex<Progress>,
    /// Held while fetching, so concurrent callers share one fetch (single flight).
    flight: tokio::sync::Mutex<()>,
    metrics: EntryMetrics,
}

#[derive(Debug, Default)]
struct Progress {
    discovered_jwks_uri: Option<String>,
    last_attempt: Option<UnixTime>,
    last_error: Option<FetchFailure>,
    /// Fetches finished, successful or not: a caller that waited for the flight lock sees
    /// whether someone fetched meanwhile.
    attempts: u64,
}

impl Entry {
    fn new(cache_key: &str, source: JwksSource, metrics: &Metrics) -> Self {
        Self {
            cache_key: cache_key.to_owned(),
            source,
            keys: RwLock::new(None),
            progress: Mutex::new(Progress::default()),
            flight: tokio::sync::Mutex::new(()),
            metrics: EntryMetrics::new(metrics, cache_key),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        read(&self.keys).clone()
    }

    fn fresh(&self, now: UnixTime) -> Option<Arc<KeySet>> {
        self.current().filter(|set| !set.is_stale(now))
    }

    fn stale_but_usable(&self, now: UnixTime, settings: &CacheSettings) -> Option<Arc<KeySet>> {
        self.current()
            .filter(|set| now < set.expires_at.plus(settings.stale_if_error))
    }

    fn knows(&self, kid: &str) -> bool {
        read(&self.keys)
            .as_ref()
            .is_some_and(|set| set.find(kid).is_some())
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn attempts(&self) -> u64 {
        self.progress().attempts
    }

    /// A fetch was attempted less than `cooldown` ago.
    fn cooling_down(&self, now: UnixTime, cooldown: Duration) -> bool {
        self.progress()
            .last_attempt
            .is_some_and(|at| now < at.plus(cooldown))
    }

    /// The last fetch failed less than `retry_after` ago.
    fn backing_off(&self, now: UnixTime, retry_after: Duration) -> bool {
        let progress = self.progress();
        progress.last_error.is_some() && progress.last_attempt.is_some_and(|at| now < at.plus(retry_after))
    }

    fn jwks_uri(&self) -> Option<String> {
        match &self.source {
            JwksSource::Uri(uri) => Some(uri.clone()),
            JwksSource::Discovery { .. } => self.progress().discovered_jwks_uri.clone(),
        }
    }

    fn unavailable(&self, settings: &CacheSettings) -> JwksError {
        let last_error = self.progress().last_error.clone();
        let (url, mut cause) = match last_error {
            Some(failure) => (failure.url, failure.cause),
            None => (
                self.source.first_url(),
                "no keys have been fetched yet".to_owned(),
            ),
        };
        if let Some(set) = self.current() {
            cause.push_str(&format!(
                "; the cached keys expired at {} and may be used for {} after that only",
                crate::rfc3339(set.expires_at.0),
                humantime::format_duration(settings.stale_if_error)
            ));
        }
        JwksError::Unavailable { url, cause }
    }

    fn status(&self) -> EntryStatus {
        let set = self.current();
        EntryStatus {
            cache_key: self.cache_key.clone(),
            jwks_uri: set
                .as_ref()
                .map(|s| s.jwks_uri.clone())
                .or_else(|| self.jwks_uri()),
            keys: set.as_ref().map_or(0, |s| s.len()),
            fetched_at: set.as_ref().map(|s| s.fetched_at),
            expires_at: set.as_ref().map(|s| s.expires_at),
            last_error: self.progress().last_error.clone(),
        }
    }
}

/// An entry's metric handles, resolved once so lookups only increment atomics.
#[derive(Debug)]
struct EntryMetrics {
    hit: Counter,
    miss: Counter,
    stale: Counter,
    fetched: Counter,
    not_modified: Counter,
    failed: Counter,
    keys: Gauge,
    expiry: Gauge,
}

/// The `result` label values, in the order of `EntryMetrics`' fields.
const LOOKUP_RESULTS: [&str; 3] = ["hit", "miss", "stale"];
/// The `outcome` label values, in the order of `EntryMetrics`' fields.
const FETCH_OUTCOMES: [&str; 3] = ["ok", "not_modified", "error"];

impl EntryMetrics {
    fn new(metrics: &Metrics, issuer: &str) -> Self {
        let lookup = |result| {
            let labels = JwksLookupLabels {
                issuer: issuer.to_owned(),
                result,
            };
            metrics.jwks_lookups.get_or_create(&labels).clone()
        };
        let fetch = |outcome| {
            let labels = JwksFetchLabels {
                issuer: issuer.to_owned(),
                outcome,
            };
            metrics.jwks_fetches.get_or_create(&labels).clone()
        };
        let issuer = IssuerLabel {
            issuer: issuer.to_owned(),
        };
        let [hit, miss, stale] = LOOKUP_RESULTS.map(lookup);
        let [fetched, not_modified, failed] = FETCH_OUTCOMES.map(fetch);
        Self {
            hit,
            miss,
            stale,
            fetched,
            not_modified,
            failed,
            keys: metrics.jwks_keys.get_or_create(&issuer).clone(),
            expiry: metrics.jwks_expiry.get_or_create(&issuer).clone(),
        }
    }

    fn remove(metrics: &Metrics, issuer: &str) {
        for result in LOOKUP_RESULTS {
            metrics.jwks_lookups.remove(&JwksLookupLabels {
                issuer: issuer.to_owned(),
                result,
            });
        }
        for outcome in FETCH_OUTCOMES {
            metrics.jwks_fetches.remove(&JwksFetchLabels {
                issuer: issuer.to_owned(),
                outcome,
            });
        }
        let issuer = IssuerLabel {
            issuer: issuer.to_owned(),
        };
        metrics.jwks_keys.remove(&issuer);
        metrics.jwks_expiry.remove(&issuer);
    }

    fn record(&self, set: &KeySet) {
        self.keys.set(i64::try_from(set.len()).unwrap_or(i64::MAX));
        self.expiry.set(set.expires_at.0);
    }
}

/// The part of the cache that talks HTTP; shared with the tasks `refresh_due` spawns.
#[derive(Debug)]
struct Fetcher {
    http: reqwest::Client,
    settings: CacheSettings,
    clock: SharedClock,
}

/// A fetch that failed, before it is recorded.
#[derive(Debug)]
struct FetchError {
    url: String,
    cause: String,
}

impl FetchError {
    fn new(url: &str, cause: impl Into<String>) -> Self {
        Self {
            url: url.to_owned(),
            cause: cause.into(),
        }
    }
}

/// A successful exchange with the IdP.
#[derive(Debug)]
enum Fetched {
    /// A new document (`200`).
    Modified(KeySet),
    /// The cached document is still current (`304`).
    NotModified(KeySet),
}

/// An HTTP answer the fetcher accepts.
#[derive(Debug)]
enum Reply {
    Body {
        body: Vec<u8>,
        cache_control: Option<String>,
        etag: Option<String>,
    },
    NotModified {
        cache_control: Option<String>,
        etag: Option<String>,
    },
}

impl Fetcher {
    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Due for a background refresh: close to expiry, or without keys after a failure.
    fn is_due(&self, entry: &Entry, now: UnixTime) -> bool {
        if entry.backing_off(now, self.settings.retry_after_error) {
            return false;
        }
        entry.current().is_none_or(|set| now >= set.refresh_at)
    }

    /// Fetches `entry`'s keys and records the outcome. The flight guard proves the caller
    /// holds the entry's single-flight lock.
    async fn refresh(&self, entry: &Entry, _flight: &tokio::sync::MutexGuard<'_, ()>) {
        let started = self.now();
        let current = entry.current();
        let result = self.fetch(entry, current.as_deref(), started).await;
        let mut progress = entry.progress();
        progress.last_attempt = Some(started);
        progress.attempts += 1;
        match result {
            Ok(fetched) => {
                let set = match fetched {
                    Fetched::Modified(set) => {
                        entry.metrics.fetched.inc();
                        log_key_change(&entry.cache_key, current.as_deref(), &set);
                        set
                    }
                    Fetched::NotModified(set) => {
                        entry.metrics.not_modified.inc();
                        set
                    }
                };
                entry.metrics.record(&set);
                progress.last_error = None;
                *write(&entry.keys) = Some(Arc::new(set));
            }
            Err(e) => {
                entry.metrics.failed.inc();
                tracing::warn!(issuer = %entry.cache_key, url = %e.url, cause = %e.cause, "upstream JWKS fetch failed");
                // The IdP may have moved its keys: ask discovery again next time.
                progress.discovered_jwks_uri = None;
                progress.last_error = Some(FetchFailure {
                    at: started,
                    url: e.url,
                    cause: e.cause,
                });
            }
        }
    }

    async fn fetch(
        &self,
        entry: &Entry,
        current: Option<&KeySet>,
        now: UnixTime,
    ) -> Result<Fetched, FetchError> {
        let uri = self.jwks_uri(entry).await?;
        // An ETag only means something to the server that issued it.
        let cached = current.filter(|set| set.jwks_uri == uri);
        let ahead = self.settings.refresh_ahead;
        match self.get(&uri, cached.and_then(|set| set.etag.as_deref())).await? {
            Reply::Body {
                body,
                cache_control,
                etag,
            } => {
                let material = parse_jwks(&body).map_err(|cause| FetchError::new(&uri, cause))?;
                let ttl = self.ttl(cache_control.as_deref());
                let set = KeySet::new(Arc::new(material), uri, etag, now, ttl, ahead);
                Ok(Fetched::Modified(set))
            }
            Reply::NotModified { cache_control, etag } => {
                let Some(cached) = cached else {
                    return Err(FetchError::new(
                        &uri,
                        "answered 304 Not Modified to an unconditional request",
                    ));
                };
                let ttl = cache_control.map(|cc| self.ttl(Some(&cc)));
                Ok(Fetched::NotModified(cached.revalidated(now, ttl, etag, ahead)))
            }
        }
    }

    /// The configured JWKS URI, or the one discovery found (discovering it if needed).
    async fn jwks_uri(&self, entry: &Entry) -> Result<String, FetchError> {
        let issuer = match &entry.source {
            JwksSource::Uri(uri) => return Ok(uri.clone()),
            JwksSource::Discovery { issuer } => issuer,
        };
        if let Some(uri) = entry.jwks_uri() {
            return Ok(uri);
        }
        let uri = self.discover(issuer).await?;
        entry.progress().discovered_jwks_uri = Some(uri.clone());
        Ok(uri)
    }

    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let url = discovery_url(issuer);
        let Reply::Body { body, .. } = self.get(&url, None).await? else {
            return Err(FetchError::new(
                &url,
                "answered 304 Not Modified to an unconditional request",
            ));
        };
        let doc: Metadata = serde_json::from_slice(&body).map_err(|e| {
            FetchError::new(
                &url,
                format!(
                    "not an OpenID discovery document with `issuer` and `jwks_uri` ({e}); it starts with {}",
                    snippet(&body)
                ),
            )
        })?;
        if doc.issuer != issuer {
            // OpenID Connect Discovery §4.3: a mismatch means the document speaks for someone else.
            return Err(FetchError::new(
                &url,
                format!(
                    "the discovery document names issuer {}, not the configured {issuer:?}; fix the issuer URL (exact match, including any trailing slash)",
                    snippet(doc.issuer.as_bytes())
                ),
            ));
        }
        // The same rule as for configured URLs: https, or http to loopback only.
        if tollgate_core::upstream::issuer::acceptable_url(&doc.jwks_uri) {
            Ok(doc.jwks_uri)
        } else {
            Err(FetchError::new(
                &url,
                format!(
                    "jwks_uri {} is not an https URL (plain http is accepted for loopback hosts only)",
                    snippet(doc.jwks_uri.as_bytes())
                ),
            ))
        }
    }

    /// One GET with the size limit applied; only `200`, and `304` to a conditional request,
    /// are answers.
    async fn get(&self, url: &str, etag: Option<&str>) -> Result<Reply, FetchError> {
        let mut request = self
            .http
            .get(url)
            .timeout(self.settings.http_timeout)
            .header(ACCEPT, "application/jwk-set+json, application/json");
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| FetchError::new(url, describe(&e, self.settings.http_timeout)))?;
        let cache_control = joined(response.headers(), CACHE_CONTROL);
        let etag_back = joined(response.headers(), ETAG);
        match response.status() {
            StatusCode::OK => Ok(Reply::Body {
                body: self.read_body(url, response).await?,
                cache_control,
                etag: etag_back,
            }),
            StatusCode::NOT_MODIFIED if etag.is_some() => Ok(Reply::NotModified {
                cache_control,
                etag: etag_back,
            }),
            status => Err(FetchError::new(url, format!("answered HTTP {status}"))),
        }
    }

    /// The body, refused as soon as it is known to exceed `max_jwks_bytes`.
    async fn read_body(&self, url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let limit = self.settings.max_jwks_bytes;
        let too_large = || FetchError::new(url, format!("the document is larger than {limit} bytes"));
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::new(url, describe(&e, self.settings.http_timeout)))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The lifetime `Cache-Control` asks for, within the configured bounds.
    fn ttl(&self, cache_control: Option<&str>) -> Duration {
        let s = &self.settings;
        let wanted = match cache_control.map(parse_cache_control) {
            Some(Freshness::MaxAge(secs)) => Duration::from_secs(secs),
            Some(Freshness::DoNotReuse) => s.min_ttl,
            Some(Freshness::Unspecified) | None => s.default_ttl,
        };
        // Not `clamp`: it panics if misconfigured bounds cross.
        wanted.max(s.min_ttl).min(s.max_ttl)
    }
}

/// Key changes are worth an info line (rotations explain `kid-not-found` bursts); a
/// re-download of the same keys is not.
fn log_key_change(issuer: &str, old: Option<&KeySet>, new: &KeySet) {
    let kids = |set: &KeySet| -> Vec<String> { set.keys().iter().filter_map(|k| k.kid.clone()).collect() };
    let new_kids = kids(new);
    if old.map(kids).as_ref() == Some(&new_kids) {
        tracing::debug!(issuer, url = %new.jwks_uri, "fetched upstream JWKS, keys unchanged");
    } else {
        tracing::info!(issuer, url = %new.jwks_uri, kids = ?new_kids, "upstream signing keys changed");
    }
}

/// What a `Cache-Control` header says about how long a response stays fresh.
#[derive(Debug, PartialEq, Eq)]
enum Freshness {
    MaxAge(u64),
    /// `no-store` or `no-cache`.
    DoNotReuse,
    Unspecified,
}

fn parse_cache_control(value: &str) -> Freshness {
    let mut max_age = None;
    for directive in value.split(',') {
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Freshness::DoNotReuse,
            // RFC 9111 §5.2.2.1: a delta-seconds, though some servers quote it.
            "max-age" => max_age = arg.trim().trim_matches('"').parse().ok(),
            _ => {}
        }
    }
    max_age.map_or(Freshness::Unspecified, Freshness::MaxAge)
}

/// The signing keys of a JWKS document. Members that are not valid JWKs, and keys for
/// encryption (`use` other than `sig`), are skipped: one odd key must not hide the others.
fn parse_jwks(body: &[u8]) -> Result<KeyMaterial, String> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("the document is not JSON ({e}); it starts with {}", snippet(body)))?;
    let Some(members) = doc.get("keys").and_then(serde_json::Value::as_array) else {
        return Err("the document is not a JWK Set: expected an object with a `keys` array".to_owned());
    };
    let keys: Vec<Jwk> = members
        .iter()
        .filter_map(|member| Jwk::deserialize(member).ok())
        .filter(|jwk| jwk.use_.as_deref().is_none_or(|u| u == "sig"))
        .collect();
    if keys.len() < members.len() {
        tracing::debug!(
            skipped = members.len() - keys.len(),
            "skipped JWKS members that are not signing keys"
        );
    }
    Ok(KeyMaterial::new(keys))
}

/// The start of untrusted text, quoted and escaped, for error messages.
fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let ellipsis = if bytes.len() > MAX { "…" } else { "" };
    format!("{text:?}{ellipsis}")
}

/// A header's values joined with `,` (how repeated list headers combine), if present.
fn joined(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// A transport error as one line without the URL (the caller names it).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!(
            "no complete answer within {}",
            humantime::format_duration(timeout)
        );
    }
    let mut cause = if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_redirect() {
        "redirect refused".to_owned()
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let text = inner.to_string();
        // hyper and its IO errors often repeat the same message one level down.
        if !cause.ends_with(&text) {
            cause.push_str(": ");
            cause.push_str(&text);
        }
        source = inner.source();
    }
    cause
}

/// Follows at most `max` redirects, only to the same host and never from https to http: the
/// configured URL decides whom we trust, not whatever it redirects to.
fn same_host_redirects(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let refusal = match attempt.previous().first() {
            _ if attempt.previous().len() > max => Some(format!("more than {max} redirects")),
            Some(first)
                if first.host_str() != attempt.url().host_str()
                    || first.port_or_known_default() != attempt.url().port_or_known_default() =>
            {
                Some(format!(
                    "redirect from {} to another host or port ({})",
                    first.host_str().unwrap_or_default(),
                    attempt.url().host_str().unwrap_or_default()
                ))
            }
            Some(first) if first.scheme() == "https" && attempt.url().scheme() != "https" => {
                Some("redirect from https to http".to_owned())
            }
            _ => None,
        };
        match refusal {
            Some(why) => attempt.error(why),
            None => attempt.follow(),
        }
    })
}

// A poisoned lock only means a writer panicked while swapping an `Arc` or updating plain
// fields; the data is whole, and refusing every later lookup would be worse.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age_no_cache_and_noise() {
        assert_eq!(parse_cache_control("public, max-age=600"), Freshness::MaxAge(600));
        assert_eq!(parse_cache_control("Max-Age=\"60\""), Freshness::MaxAge(60));
        assert_eq!(
            parse_cache_control("max-age=600, no-cache"),
            Freshness::DoNotReuse
        );
        assert_eq!(parse_cache_control("no-store"), Freshness::DoNotReuse);
        assert_eq!(parse_cache_control("max-age=-1"), Freshness::Unspecified);
        assert_eq!(
            parse_cache_control("public, must-revalidate"),
            Freshness::Unspecified
        );
        assert_eq!(parse_cache_control(""), Freshness::Unspecified);
    }

    #[test]
    fn refresh_ahead_is_capped_at_half_the_lifetime() {
        let material = Arc::new(KeyMaterial::new(Vec::new()));
        let at = UnixTime(1000);
        let long = KeySet::new(
            material.clone(),
            "u".into(),
            None,
            at,
            Duration::from_secs(600),
            Duration::from_secs(60),
        );
        assert_eq!(
            (long.refresh_at, long.expires_at),
            (UnixTime(1540), UnixTime(1600))
        );
        let short = KeySet::new(
            material,
            "u".into(),
            None,
            at,
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        assert_eq!(short.refresh_at, UnixTime(1030));
    }

    #[test]
    fn snippets_are_short_and_escaped() {
        assert_eq!(snippet(b"<html>\n"), "\"<html>\\n\"");
        let long = snippet(&[b'a'; 500]);
        assert!(long.len() < 100 && long.ends_with('…'), "{long}");
    }
}
