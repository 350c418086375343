//! Signing keys at run time: the in-memory key ring, its JWKS, and the key lifecycle.
//!
//! Lifecycle per purpose: exactly one `active` key signs; one `next` key is published in
//! JWKS before it signs anything (at least `jwks_max_age`, so verifiers that cache JWKS know
//! it in time); rotation promotes `next`, retires `active`, and publishes a new `next`.
//! Retired keys stay in JWKS until every token they signed has expired, then are deleted.
//! The database is the truth; each replica reloads it every `reload_interval`.

use crate::clock::SharedClock;
use crate::snapshot::Snapshot;
use aws_lc_rs::digest;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tollgate_core::{SigningAlg, UnixTime};
use tollgate_crypto::{CryptoError, Jwk, JwkSet, MasterKey, SealError, SigningKey, VerifyingKey};
use tollgate_store::{KeyRecord, KeyRotation, KeyState, Store, StoreError};

/// The purpose (token kind) of access-token keys.
pub const ACCESS: &str = "access";
/// The purpose of registry-token keys (ES256 or RS256, for CNCF distribution). They are
/// not in the JWKS and never verify access tokens.
pub const REGISTRY: &str = "registry";

/// Key lifecycle settings.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// Algorithm per purpose.
    pub algs: HashMap<String, SigningAlg>,
    /// Longest lifetime of a token signed for each purpose, plus leeway.
    pub max_token_life: HashMap<String, Duration>,
    pub jwks_max_age: Duration,
    /// Rotate automatically after this long active; zero disables.
    pub rotate_after: Duration,
}

/// A key lifecycle failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "signing key {kid} does not open with this master key ({source}); every replica must use the same TOLLGATE_MASTER_KEY"
    )]
    Seal { kid: String, source: SealError },
    #[error("key material of {kid} is unusable: {source}")]
    Crypto { kid: String, source: CryptoError },
    #[error("{0}")]
    InvalidState(String),
    #[error("no signing key with kid `{0}`")]
    NotFound(String),
}

/// One consistent view of the keys, swapped atomically on reload.
#[derive(Debug)]
pub struct KeySnapshot {
    active: HashMap<String, Arc<SigningKey>>,
    verifiers: HashMap<String, VerifyingKey>,
    records: Vec<KeyRecord>,
    jwks_body: Bytes,
    etag: String,
}

impl KeySnapshot {
    /// The key that signs tokens of `purpose`.
    #[must_use]
    pub fn signer(&self, purpose: &str) -> Option<&Arc<SigningKey>> {
        self.active.get(purpose)
    }

    /// A published access-token key by kid.
    #[must_use]
    pub fn verifier(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifiers.get(kid)
    }

    /// The JWKS document and its strong ETag.
    #[must_use]
    pub fn jwks(&self) -> (&Bytes, &str) {
        (&self.jwks_body, &self.etag)
    }

    /// Stored key rows (without private material use).
    #[must_use]
    pub fn records(&self) -> &[KeyRecord] {
        &self.records
    }
}

/// What `rotate` did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub retired: Option<String>,
    pub activated: String,
    pub next: String,
}

/// The key ring of one replica.
#[derive(Debug)]
pub struct KeyRing {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    clock: SharedClock,
    policy: KeyPolicy,
    snapshot: Snapshot<KeySnapshot>,
}

impl KeyRing {
    /// Makes sure every purpose has an active and a next key, then loads them.
    pub async fn start(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        clock: SharedClock,
        policy: KeyPolicy,
    ) -> Result<Self, KeyError> {
        let empty = Snapshot::new(KeySnapshot {
            active: HashMap::new(),
            verifiers: HashMap::new(),
            records: Vec::new(),
            jwks_body: Bytes::new(),
            etag: String::new(),
        });
        let ring = Self {
            store,
            master,
            clock,
            policy,
            snapshot: empty,
        };
        ring.ensure_keys().await?;
        ring.reload().await?;
        Ok(ring)
    }

    /// The current snapshot (cheap: one `Arc` clone).
    #[must_use]
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        self.snapshot.load()
    }

    fn now(&self) -> i64 {
        self.clock.now().0
    }

    fn new_record(&self, purpose: &str, alg: SigningAlg, state: KeyState) -> Result<KeyRecord, KeyError> {
        let (key, pkcs8) = SigningKey::generate(alg).map_err(|source| KeyError::Crypto {
            kid: "(new)".into(),
            source,
        })?;
        let now = self.now();
        Ok(KeyRecord {
            kid: key.kid().to_owned(),
            purpose: purpose.to_owned(),
            alg: alg.as_str().to_owned(),
            state,
            sealed_private_key: self.master.seal(key.kid(), &pkcs8),
            public_jwk: serde_json::to_string(key.public_jwk()).unwrap_or_default(),
            created_at: now,
            activated_at: (state == KeyState::Active).then_some(now),
            retired_at: None,
            publish_until: None,
        })
    }

    /// Inserts a key, treating a uniqueness conflict as "another replica did it first".
    async fn insert_tolerating_race(&self, rec: &KeyRecord) -> Result<(), KeyError> {
        match self.store.insert_key(rec).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// First start creates an active key at once (nobody can have cached an older JWKS);
    /// afterwards a missing next key, or one of an algorithm no longer configured, is replaced.
    async fn ensure_keys(&self) -> Result<(), KeyError> {
        let keys = self.store.list_keys().await?;
        for (purpose, alg) in &self.policy.algs {
            let of = |state| keys.iter().find(|k| &k.purpose == purpose && k.state == state);
            if of(KeyState::Active).is_none() && of(KeyState::Next).is_none() {
                tracing::info!(purpose, %alg, "creating first signing key");
                self.insert_tolerating_race(&self.new_record(purpose, *alg, KeyState::Active)?)
                    .await?;
            }
            match of(KeyState::Next) {
                Some(next) if next.alg == alg.as_str() => {}
                Some(next) => {
                    tracing::info!(purpose, old = %next.alg, new = %alg, "signing_alg changed: replacing the next key");
                    self.store.retire_key(&next.kid, self.now(), self.now()).await?;
                    self.insert_tolerating_race(&self.new_record(purpose, *alg, KeyState::Next)?)
                        .await?;
                }
                None => {
                    self.insert_tolerating_race(&self.new_record(purpose, *alg, KeyState::Next)?)
                        .await?
                }
            }
        }
        Ok(())
    }

    /// Re-reads keys from the store and swaps in a new snapshot.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let now = self.now();
        let records = self.store.list_keys().await?;
        let previous = self.snapshot();
        let mut active = HashMap::new();
        let mut verifiers = HashMap::new();
        let mut jwks = JwkSet::default();
        for rec in &records {
            if rec.state == KeyState::Retired && rec.publish_until.is_some_and(|t| t <= now) {
                continue;
            }
            let alg: SigningAlg = rec.alg.parse().map_err(|e: tollgate_core::alg::UnknownAlg| {
                KeyError::InvalidState(format!("key {}: {e}", rec.kid))
            })?;
            let jwk: Jwk = serde_json::from_str(&rec.public_jwk).map_err(|e| {
                KeyError::InvalidState(format!("key {}: stored JWK is not valid JSON: {e}", rec.kid))
            })?;
            let verifier = VerifyingKey::from_jwk(alg.into(), &jwk).map_err(|source| KeyError::Crypto {
                kid: rec.kid.clone(),
                source,
            })?;
            if rec.state == KeyState::Active {
                let signer = match previous.active.get(&rec.purpose).filter(|k| k.kid() == rec.kid) {
                    Some(k) => k.clone(),
                    None => Arc::new(self.open(rec, alg)?),
                };
                active.insert(rec.purpose.clone(), signer);
            }
            // The JWKS and the verifiers are for access tokens: a key of another purpose
            // (registry) must not make a token of its kind pass for an access token.
            if rec.purpose == ACCESS {
                verifiers.insert(rec.kid.clone(), verifier);
                jwks.keys.push(jwk);
            }
        }
        let jwks_body = Bytes::from(serde_json::to_vec(&jwks).unwrap_or_default());
        let digest = digest::digest(&digest::SHA256, &jwks_body);
        let etag = format!("\"{}\"", hex::encode(&digest.as_ref()[..16]));
        self.snapshot.store(KeySnapshot {
            active,
            verifiers,
            records,
            jwks_body,
            etag,
        });
        Ok(())
    }

    /// Every key of `purpose` that is or will be trusted (active, next, and retired but
    /// still published), opened: e.g. for the certificates a registry must trust, which
    /// must include the next key before it signs.
    pub fn published_signing_keys(&self, purpose: &str) -> Result<Vec<SigningKey>, KeyError> {
        let now = self.now();
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        for rec in snapshot.records().iter().filter(|r| r.purpose == purpose) {
            if rec.state == KeyState::Retired && rec.publish_until.is_some_and(|t| t <= now) {
                continue;
            }
            let alg: SigningAlg = rec.alg.parse().map_err(|e: tollgate_core::alg::UnknownAlg| {
                KeyError::InvalidState(format!("key {}: {e}", rec.kid))
            })?;
            out.push(self.open(rec, alg)?);
        }
        Ok(out)
    }

    fn open(&self, rec: &KeyRecord, alg: SigningAlg) -> Result<SigningKey, KeyError> {
        let der = self
            .master
            .open(&rec.kid, &rec.sealed_private_key)
            .map_err(|source| KeyError::Seal {
                kid: rec.kid.clone(),
                source,
            })?;
        let key = SigningKey::from_pkcs8(alg, &der).map_err(|source| KeyError::Crypto {
            kid: rec.kid.clone(),
            source,
        })?;
        if key.kid() != rec.kid {
            return Err(KeyError::InvalidState(format!(
                "key {} opens to a different key ({})",
                rec.kid,
                key.kid()
            )));
        }
        Ok(key)
    }

    fn publish_margin(&self, purpose: &str) -> Duration {
        self.policy
            .max_token_life
            .get(purpose)
            .copied()
            .unwrap_or(Duration::from_secs(24 * 3600))
    }

    /// Promotes the next key of `purpose`, retires the active one and publishes a new next.
    ///
    /// Refused while the next key has been published for less than `jwks_max_age`, unless
    /// `force` (verifiers with a cached JWKS might not know it yet).
    pub async fn rotate(&self, purpose: &str, force: bool) -> Result<Rotation, KeyError> {
        let alg = *self
            .policy
            .algs
            .get(purpose)
            .ok_or_else(|| KeyError::InvalidState(format!("no signing keys for purpose `{purpose}`")))?;
        let keys = self.store.list_keys().await?;
        let active = keys
            .iter()
            .find(|k| k.purpose == purpose && k.state == KeyState::Active);
        let next = keys
            .iter()
            .find(|k| k.purpose == purpose && k.state == KeyState::Next)
            .ok_or_else(|| {
                KeyError::InvalidState(format!(
                    "purpose `{purpose}` has no next key; restart or wait for the next reload"
                ))
            })?;
        let now = self.now();
        let published_for = now.saturating_sub(next.created_at);
        let needed = i64::try_from(self.policy.jwks_max_age.as_secs()).unwrap_or(i64::MAX);
        if !force && published_for < needed {
            return Err(KeyError::InvalidState(format!(
                "next key {} has been published for {published_for}s; verifiers may cache JWKS for {needed}s. \
                 Retry in {}s, or force the rotation if the active key is compromised",
                next.kid,
                needed - published_for
            )));
        }
        let new_next = self.new_record(purpose, alg, KeyState::Next)?;
        let rotation = KeyRotation {
            purpose: purpose.to_owned(),
            now,
            expected_active: active.map(|k| k.kid.clone()),
            promote: next.kid.clone(),
            retired_publish_until: UnixTime(now).plus(self.publish_margin(purpose)).0,
            new_next: new_next.clone(),
        };
        self.store.rotate_keys(&rotation).await?;
        self.reload().await?;
        tracing::info!(purpose, activated = %next.kid, retired = ?rotation.expected_active, "rotated signing key");
        Ok(Rotation {
            retired: rotation.expected_active,
            activated: next.kid.clone(),
            next: new_next.kid,
        })
    }

    /// Retires a key that does not sign. A next key is replaced by a fresh one; a retired
    /// key's publication ends now when `immediately` (tokens it signed stop verifying).
    pub async fn retire(&self, kid: &str, immediately: bool) -> Result<(), KeyError> {
        let keys = self.store.list_keys().await?;
        let rec = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| KeyError::NotFound(kid.to_owned()))?;
        let now = self.now();
        match rec.state {
            KeyState::Active => {
                return Err(KeyError::InvalidState(format!(
                    "key {kid} is active; rotate first (`tollgate keys rotate`), then retire it"
                )));
            }
            KeyState::Next => {
                self.store.retire_key(kid, now, now).await?;
                let alg = rec.alg.parse().unwrap_or(SigningAlg::EdDSA);
                let alg = self.policy.algs.get(&rec.purpose).copied().unwrap_or(alg);
                self.insert_tolerating_race(&self.new_record(&rec.purpose, alg, KeyState::Next)?)
                    .await?;
            }
            KeyState::Retired if immediately => {
                self.store.retire_key(kid, now, now).await?;
            }
            KeyState::Retired => {
                return Err(KeyError::InvalidState(format!(
                    "key {kid} is already retired and published until its tokens expire; \
                     pass `immediately` to stop publishing it now (its tokens will stop verifying)"
                )));
            }
        }
        self.reload().await
    }

    /// Periodic upkeep: deletes keys past publication, rotates keys due for rotation or
    /// whose algorithm changed, makes sure a next key exists, and reloads.
    pub async fn maintain(&self) -> Result<(), KeyError> {
        let now = self.now();
        self.store.delete_expired_keys(now).await?;
        self.ensure_keys().await?;
        let keys = self.store.list_keys().await?;
        let rotate_after = i64::try_from(self.policy.rotate_after.as_secs()).unwrap_or(i64::MAX);
        for (purpose, alg) in &self.policy.algs {
            let Some(active) = keys
                .iter()
                .find(|k| &k.purpose == purpose && k.state == KeyState::Active)
            else {
                continue;
            };
            let age = now.saturating_sub(active.activated_at.unwrap_or(active.created_at));
            let due = (rotate_after > 0 && age >= rotate_after) || active.alg != alg.as_str();
            if due {
                match self.rotate(purpose, false).await {
                    Ok(r) => tracing::info!(purpose, activated = %r.activated, "automatic key rotation"),
                    // Not yet publishable, or another replica rotated first: try again next tick.
                    Err(KeyError::InvalidState(why)) => {
                        tracing::debug!(purpose, %why, "automatic rotation deferred")
                    }
                    Err(KeyError::Store(StoreError::Conflict(_))) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.reload().await
    }
}
