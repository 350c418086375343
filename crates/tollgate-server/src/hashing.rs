//! Versioned HMAC secrets for hashing what users hold (client secrets, admin tokens).
//!
//! Rotation (`POST /v1/admin/secrets/rotate`, `tollgate admin secrets rotate`) adds a
//! version; new hashes use it, old hashes still verify under their own version, and a
//! client secret is re-hashed under the newest version the next time it is used.

use crate::clock::SharedClock;
use crate::snapshot::Snapshot;
use std::sync::Arc;
use tollgate_crypto::{KeyedHasher, MasterKey};
use tollgate_store::{ServerSecretRecord, Store, StoreError};

const PURPOSE: &str = "hmac";

/// A failure loading or rotating HMAC secrets.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "HMAC secret v{version} does not open with this master key; every replica must use the same TOLLGATE_MASTER_KEY"
    )]
    Seal { version: i32 },
}

/// The current set of HMAC secrets of this replica.
#[derive(Debug)]
pub struct SecretHashing {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    clock: SharedClock,
    hasher: Snapshot<KeyedHasher>,
}

impl SecretHashing {
    /// Loads the secrets, creating version 1 on first start.
    pub async fn start(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        clock: SharedClock,
    ) -> Result<Self, HashingError> {
        let mut records = store.list_server_secrets(PURPOSE).await?;
        if records.is_empty() {
            match store
                .insert_server_secret(&Self::new_record(&master, 1, clock.now().0))
                .await
            {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            records = store.list_server_secrets(PURPOSE).await?;
        }
        let hasher = Snapshot::new(Self::build(&master, &records)?);
        Ok(Self {
            store,
            master,
            clock,
            hasher,
        })
    }

    fn new_record(master: &MasterKey, version: i32, now: i64) -> ServerSecretRecord {
        let mut secret = [0u8; 32];
        tollgate_crypto::random_bytes(&mut secret);
        ServerSecretRecord {
            purpose: PURPOSE.into(),
            version,
            sealed: master.seal(&context(version), &secret),
            created_at: now,
        }
    }

    fn build(master: &MasterKey, records: &[ServerSecretRecord]) -> Result<KeyedHasher, HashingError> {
        let opened = records
            .iter()
            .map(|r| {
                master
                    .open(&context(r.version), &r.sealed)
                    .map(|s| (r.version, s))
                    .map_err(|_| HashingError::Seal { version: r.version })
            })
            .collect::<Result<Vec<_>, _>>()?;
        KeyedHasher::new(opened.iter().map(|(v, s)| (*v, s.as_slice())))
            .ok_or_else(|| HashingError::Store(StoreError::Corrupt("no HMAC secrets stored".into())))
    }

    /// The hasher to use now.
    #[must_use]
    pub fn hasher(&self) -> Arc<KeyedHasher> {
        self.hasher.load()
    }

    /// Re-reads secrets (other replicas may have rotated).
    pub async fn reload(&self) -> Result<(), HashingError> {
        let records = self.store.list_server_secrets(PURPOSE).await?;
        self.hasher.store(Self::build(&self.master, &records)?);
        Ok(())
    }

    /// Adds a new version and makes it current; returns it.
    pub async fn rotate(&self) -> Result<i32, HashingError> {
        let next = self.hasher().current_version() + 1;
        self.store
            .insert_server_secret(&Self::new_record(&self.master, next, self.clock.now().0))
            .await?;
        self.reload().await?;
        Ok(next)
    }
}

fn context(version: i32) -> String {
    format!("{PURPOSE}:v{version}")
}
