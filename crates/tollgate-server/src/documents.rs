//! Typed JSON documents in the short-lived store (`AppState::ephemeral`: Redis when
//! configured, else the database), changed only by compare-and-swap on their version. Publish
//! sessions, device authorizations and key enrollments all live here; each change is a step
//! of a state machine applied to the version read, and of concurrent writers from one
//! version exactly one wins — a loser reads again and re-applies, so the state machine
//! refuses it or lets it go second.

use crate::error::ApiError;
use crate::state::AppState;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tollgate_core::Reason;
use tollgate_store::StoreError;

/// Compare-and-swap attempts before giving up (only truly concurrent writers retry).
const ATTEMPTS: usize = 8;

/// The id of a document stored under a keyed hash of a secret: `<version>:<hex>`.
#[must_use]
pub fn keyed_id(version: i32, hash: &[u8]) -> String {
    format!("{version}:{}", hex::encode(hash))
}

/// A document that no longer has the shape this version writes: a store problem (503).
fn corrupt(kind: &str, e: &serde_json::Error) -> ApiError {
    ApiError::unavailable(&StoreError::Corrupt(format!("{kind} document: {e}")))
}

/// Stores a new document, kept until `keep_until`; `StoreError::Conflict` if the id is live.
pub async fn create<T: Serialize>(
    state: &AppState,
    kind: &str,
    id: &str,
    value: &T,
    keep_until: i64,
) -> Result<(), StoreError> {
    let doc = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    state
        .ephemeral
        .create_doc(kind, id, &doc, keep_until, state.clock.now().0)
        .await
}

/// A document and its version, if there is one.
pub async fn load<T: DeserializeOwned>(
    state: &AppState,
    kind: &str,
    id: &str,
) -> Result<Option<(i64, T)>, ApiError> {
    let Some(doc) = state.ephemeral.get_doc(kind, id).await? else {
        return Ok(None);
    };
    let value = serde_json::from_str(&doc.doc).map_err(|e| corrupt(kind, &e))?;
    Ok(Some((doc.ver, value)))
}

/// Applies `step` to the document (starting from `current`, as read by the caller) and
/// writes the result if its version is unchanged; on a lost race, reads again and
/// re-applies. `step` refusing (an `Err`) writes nothing. `gone` is the refusal for a
/// document that disappeared meanwhile.
pub async fn update<T, O>(
    state: &AppState,
    kind: &str,
    id: &str,
    current: (i64, T),
    gone: impl Fn() -> ApiError,
    mut step: impl FnMut(&mut T) -> Result<O, ApiError>,
) -> Result<(T, O), ApiError>
where
    T: Serialize + DeserializeOwned + Clone,
{
    let mut current = current;
    for _ in 0..ATTEMPTS {
        let mut next = current.1.clone();
        let out = step(&mut next)?;
        let doc = serde_json::to_string(&next).map_err(|e| corrupt(kind, &e))?;
        if state.ephemeral.replace_doc(kind, id, current.0, &doc).await? {
            return Ok((next, out));
        }
        current = load(state, kind, id).await?.ok_or_else(&gone)?;
    }
    Err(ApiError::new(
        Reason::Conflict,
        format!("the {kind} document is being changed concurrently; retry"),
    ))
}
