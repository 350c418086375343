//! The keyed hash chain over the audit trail, and its verification.
//!
//! Every event appended to the store carries `hash = HMAC-SHA256(K, encode(seq, prev_hash,
//! event))`, where `prev_hash` is the hash of the event before it in the chain (32 zero
//! bytes for the first) and `K` is the server secret of purpose `audit-chain`, sealed under
//! the master key. Editing, deleting, inserting or reordering events therefore breaks the
//! chain at that place, and someone with write access to the database alone cannot compute
//! a new valid chain: that needs the master key.
//!
//! [`encode`] is unambiguous: a domain-separation label, then every field in a fixed order,
//! integers as 8 bytes big-endian, byte strings and text as an 8-byte big-endian length
//! followed by the bytes, optional text as one byte 0 (absent) or 1 followed by the text.

use crate::clock::SharedClock;
use aws_lc_rs::{constant_time, hmac};
use tollgate_crypto::MasterKey;
use tollgate_store::{ChainInput, ServerSecretRecord, Store, StoreError, StoredAudit};

/// The server secret purpose of the chain key.
pub const PURPOSE: &str = "audit-chain";
const VERSION: i32 = 1;
const LABEL: &[u8] = b"tollgate audit chain v1";
/// Links read per round trip while verifying.
const PAGE: u32 = 500;

/// A failure loading the chain key.
#[derive(Debug, thiserror::Error)]
pub enum AuditChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the audit chain key does not open with this master key; every replica must use the same TOLLGATE_MASTER_KEY"
    )]
    Seal,
    #[error(
        "no audit chain key is stored (no tollgate server with a hash-chained audit trail has run on this database)"
    )]
    Missing,
}

/// The key that links audit events.
pub struct AuditChain {
    key: hmac::Key,
}

impl std::fmt::Debug for AuditChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditChain").finish_non_exhaustive()
    }
}

fn context() -> String {
    format!("{PURPOSE}:v{VERSION}")
}

impl AuditChain {
    /// Loads the chain key, creating it on first start (a replica that loses the race to
    /// create it uses the winner's).
    pub async fn start(
        store: &dyn Store,
        master: &MasterKey,
        clock: &SharedClock,
    ) -> Result<Self, AuditChainError> {
        if store.list_server_secrets(PURPOSE).await?.is_empty() {
            let mut secret = [0u8; 32];
            tollgate_crypto::random_bytes(&mut secret);
            let record = ServerSecretRecord {
                purpose: PURPOSE.into(),
                version: VERSION,
                sealed: master.seal(&context(), &secret),
                created_at: clock.now().0,
            };
            match store.insert_server_secret(&record).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Self::open(store, master).await
    }

    /// Loads the stored chain key without creating one (for offline verification).
    pub async fn open(store: &dyn Store, master: &MasterKey) -> Result<Self, AuditChainError> {
        let records = store.list_server_secrets(PURPOSE).await?;
        let record = records
            .iter()
            .find(|r| r.version == VERSION)
            .ok_or(AuditChainError::Missing)?;
        let secret = master
            .open(&context(), &record.sealed)
            .map_err(|_| AuditChainError::Seal)?;
        Ok(Self::from_secret(&secret))
    }

    /// A chain keyed by `secret` directly (tests).
    #[must_use]
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The hash of one link.
    #[must_use]
    pub fn link(&self, input: &ChainInput<'_>) -> [u8; 32] {
        let tag = hmac::sign(&self.key, &encode(input));
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Walks the chain from its first link to the head as it was when the walk began, and
    /// reports the first place where it is broken.
    pub async fn verify(&self, store: &dyn Store) -> Result<Verification, StoreError> {
        let head = store.audit_head().await?;
        let mut prev = [0u8; 32];
        let mut checked: u64 = 0;
        let mut expected: i64 = 1;
        'pages: while expected <= head.seq {
            let page = store.audit_chain(expected - 1, PAGE).await?;
            if page.is_empty() {
                break;
            }
            for row in &page {
                let seq = row.chain_seq.unwrap_or_default();
                if seq > head.seq {
                    break 'pages;
                }
                match self.check(row, expected, &prev) {
                    Ok(hash) => prev = hash,
                    Err((at, problem)) => return Ok(Verification::broken(checked, at, problem)),
                }
                checked += 1;
                expected += 1;
            }
        }
        if expected <= head.seq {
            return Ok(Verification::broken(
                checked,
                expected,
                if expected == head.seq {
                    format!("seq {expected}, the last event of the chain, is missing: it was deleted")
                } else {
                    format!(
                        "seq {expected} to {} are missing (the chain's head is at seq {}): events were deleted",
                        head.seq, head.seq
                    )
                },
            ));
        }
        if constant_time::verify_slices_are_equal(&head.hash, &prev).is_err() {
            return Ok(Verification::broken(
                checked,
                head.seq,
                "the chain head's hash does not match the last event".to_owned(),
            ));
        }
        Ok(Verification {
            ok: true,
            checked,
            first_broken_seq: None,
            problem: None,
        })
    }

    /// The hash of `row` if it is the valid link number `expected` after `prev`; else the
    /// broken seq and why.
    fn check(&self, row: &StoredAudit, expected: i64, prev: &[u8; 32]) -> Result<[u8; 32], (i64, String)> {
        let seq = row.chain_seq.unwrap_or_default();
        if seq != expected {
            return Err((
                expected,
                format!("seq {expected} is missing (the next event is seq {seq}): an event was deleted"),
            ));
        }
        if row.prev_hash.as_deref() != Some(&prev[..]) {
            return Err((
                seq,
                format!(
                    "seq {seq} does not follow the event before it: events were removed, inserted or reordered"
                ),
            ));
        }
        let hash = self.link(&ChainInput {
            seq,
            prev_hash: prev,
            event: &row.event,
        });
        let matches = row
            .hash
            .as_deref()
            .is_some_and(|stored| constant_time::verify_slices_are_equal(stored, &hash).is_ok());
        if !matches {
            return Err((
                seq,
                format!(
                    "seq {seq} (event {}) was altered after it was written",
                    row.event.id
                ),
            ));
        }
        Ok(hash)
    }
}

/// Opens the database at `url` and verifies its chain with the key sealed under `master`
/// (`tollgate audit verify`, offline). A database where no chained event was ever written
/// verifies as an empty chain.
pub async fn verify_database(url: &str, master: &MasterKey) -> Result<Verification, AuditChainError> {
    let store = tollgate_store::open(url).await?;
    let result = async {
        let chain = match AuditChain::open(&*store, master).await {
            Err(AuditChainError::Missing) if store.audit_head().await?.seq == 0 => {
                return Ok(Verification {
                    ok: true,
                    checked: 0,
                    first_broken_seq: None,
                    problem: None,
                });
            }
            other => other?,
        };
        Ok(chain.verify(&*store).await?)
    }
    .await;
    store.close().await;
    result
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub ok: bool,
    /// Links verified before the first broken one (all of them when `ok`).
    pub checked: u64,
    /// The chain sequence number where the chain first breaks.
    pub first_broken_seq: Option<i64>,
    pub problem: Option<String>,
}

impl Verification {
    fn broken(checked: u64, seq: i64, problem: String) -> Self {
        Self {
            ok: false,
            checked,
            first_broken_seq: Some(seq),
            problem: Some(problem),
        }
    }
}

impl From<Verification> for tollgate_proto::audit::AuditVerification {
    fn from(v: Verification) -> Self {
        Self {
            ok: v.ok,
            checked: v.checked,
            first_broken_seq: v.first_broken_seq,
            problem: v.problem,
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes());
        }
    }
}

/// The bytes a link's MAC covers (see the module documentation).
#[must_use]
pub fn encode(input: &ChainInput<'_>) -> Vec<u8> {
    let e = input.event;
    let mut out = Vec::with_capacity(256 + e.detail.len());
    put_bytes(&mut out, LABEL);
    out.extend_from_slice(&input.seq.to_be_bytes());
    put_bytes(&mut out, input.prev_hash);
    put_bytes(&mut out, e.id.as_bytes());
    out.extend_from_slice(&e.at.to_be_bytes());
    put_bytes(&mut out, e.actor.as_bytes());
    put_bytes(&mut out, e.action.as_bytes());
    put_opt(&mut out, e.target.as_deref());
    put_bytes(&mut out, e.outcome.as_bytes());
    put_opt(&mut out, e.reason.as_deref());
    put_bytes(&mut out, e.detail.as_bytes());
    put_opt(&mut out, e.org_id.as_deref());
    put_opt(&mut out, e.credential_id.as_deref());
    put_opt(&mut out, e.request_id.as_deref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_store::AuditRecord;

    fn event() -> AuditRecord {
        AuditRecord {
            id: "e1".into(),
            at: 5,
            actor: "admin:a".into(),
            action: "client.create".into(),
            target: Some("t".into()),
            outcome: "success".into(),
            reason: None,
            detail: "{}".into(),
            org_id: None,
            credential_id: None,
            request_id: Some("r".into()),
        }
    }

    #[test]
    fn every_field_and_its_boundaries_change_the_link() {
        let chain = AuditChain::from_secret(b"k");
        let prev = [7u8; 32];
        let base = event();
        let link = |e: &AuditRecord, seq: i64, prev: &[u8; 32]| {
            chain.link(&ChainInput {
                seq,
                prev_hash: prev,
                event: e,
            })
        };
        let h = link(&base, 1, &prev);
        assert_ne!(h, link(&base, 2, &prev));
        assert_ne!(h, link(&base, 1, &[8u8; 32]));
        type Change = Box<dyn Fn(&mut AuditRecord)>;
        let variants: Vec<Change> = vec![
            Box::new(|e| e.at = 6),
            Box::new(|e| e.detail = r#"{"a":1}"#.into()),
            Box::new(|e| e.target = None),
            Box::new(|e| e.target = Some(String::new())),
            Box::new(|e| e.org_id = Some(String::new())),
            Box::new(|e| e.credential_id = Some("j".into())),
            Box::new(|e| e.request_id = None),
            Box::new(|e| e.outcome = "denied".into()),
            Box::new(|e| e.reason = Some("x".into())),
            // Moving bytes between neighbouring fields is a different event.
            Box::new(|e| {
                e.actor = "admin:aclient".into();
                e.action = ".create".into();
            }),
        ];
        for change in variants {
            let mut e = base.clone();
            change(&mut e);
            assert_ne!(h, link(&e, 1, &prev), "{e:?}");
        }
        assert_ne!(
            h,
            AuditChain::from_secret(b"other").link(&ChainInput {
                seq: 1,
                prev_hash: &prev,
                event: &base,
            })
        );
    }
}
