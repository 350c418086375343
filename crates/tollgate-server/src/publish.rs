//! The combined publish flow's sessions, kept in the short-lived store (Redis or the
//! database) as JSON documents updated by compare-and-swap: every transition is the core
//! state machine applied to the version read, and only one writer of a version wins.

use crate::error::ApiError;
use crate::metrics::StepLabels;
use crate::state::AppState;
use std::time::Duration;
use tollgate_core::Reason;
use tollgate_core::trust::{PublishError, PublishSession};

/// The document kind of publish sessions.
const KIND: &str = "publish";
/// Sessions stay readable this long after they expire, so a late step learns "expired"
/// rather than "unknown".
const KEEP_AFTER_EXPIRY: Duration = Duration::from_secs(3600);
/// Compare-and-swap attempts before giving up (only concurrent progress reports retry).
const ATTEMPTS: usize = 8;

/// A refused transition as an API error.
#[must_use]
pub fn refused(e: &PublishError) -> ApiError {
    let reason = match e {
        PublishError::Expired => Reason::PublishSessionExpired,
        PublishError::WrongState { .. } => Reason::PublishSessionState,
    };
    ApiError::new(reason, e.to_string())
}

fn unknown(id: &str) -> ApiError {
    ApiError::new(
        Reason::PublishSessionUnknown,
        format!("no publish session `{id}`; start one with POST /v1/publish/init"),
    )
}

fn corrupt(e: &serde_json::Error) -> ApiError {
    ApiError::internal(e)
}

/// Counts a step of the flow.
pub fn count(state: &AppState, step: &'static str, outcome: Result<(), Reason>) {
    let outcome = outcome.map_or_else(Reason::code, |()| "ok");
    state
        .metrics
        .publish_steps
        .get_or_create(&StepLabels { step, outcome })
        .inc();
}

/// Stores a new session.
pub async fn create(state: &AppState, session: &PublishSession) -> Result<(), ApiError> {
    let doc = serde_json::to_string(session).map_err(|e| corrupt(&e))?;
    let keep_until = session.expires_at.plus(KEEP_AFTER_EXPIRY);
    state
        .ephemeral
        .create_doc(KIND, &session.id, &doc, keep_until.0, state.clock.now().0)
        .await?;
    Ok(())
}

/// Reads a session with its version.
pub async fn load(state: &AppState, id: &str) -> Result<(i64, PublishSession), ApiError> {
    // Ids are ours (`ps_` + 32 hex); anything else cannot name a session.
    if !(id.starts_with("ps_") && id.len() == 35 && id[3..].bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(unknown(id));
    }
    let doc = state
        .ephemeral
        .get_doc(KIND, id)
        .await?
        .ok_or_else(|| unknown(id))?;
    let session = serde_json::from_str(&doc.doc).map_err(|e| corrupt(&e))?;
    Ok((doc.ver, session))
}

/// Applies `step` to the session and stores the result if nobody changed it meanwhile;
/// on a lost race, reads again and re-applies (so the loser sees the winner's state and
/// is refused by the state machine, or, for progress reports, simply goes second).
pub async fn update<T>(
    state: &AppState,
    id: &str,
    mut step: impl FnMut(&mut PublishSession) -> Result<T, ApiError>,
) -> Result<(PublishSession, T), ApiError> {
    for _ in 0..ATTEMPTS {
        let (ver, mut session) = load(state, id).await?;
        let out = step(&mut session)?;
        let doc = serde_json::to_string(&session).map_err(|e| corrupt(&e))?;
        if state.ephemeral.replace_doc(KIND, id, ver, &doc).await? {
            return Ok((session, out));
        }
    }
    Err(ApiError::new(
        Reason::Conflict,
        "the publish session is being changed concurrently; retry",
    ))
}

/// A new session id: `ps_` and 128 random bits in hex.
#[must_use]
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    tollgate_crypto::random_bytes(&mut b);
    format!("ps_{}", hex::encode(b))
}

/// A random nonce, base64url without padding (256 bits).
#[must_use]
pub fn new_nonce() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    tollgate_crypto::random_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A keyed hash of a secret for storing in a session: `<version>:<hex>`.
#[must_use]
pub fn hash_secret(state: &AppState, secret: &str) -> String {
    let (v, h) = state.hashing.hasher().hash(secret);
    format!("{v}:{}", hex::encode(h))
}

/// Whether `secret` is the one `stored` (from [`hash_secret`]) was made of; constant time.
#[must_use]
pub fn secret_matches(state: &AppState, stored: &str, secret: &str) -> bool {
    let Some((v, h)) = stored.split_once(':') else {
        return false;
    };
    let (Ok(v), Ok(h)) = (v.parse::<i32>(), hex::decode(h)) else {
        return false;
    };
    state.hashing.hasher().verify(v, &h, secret)
}

/// How long is left of the session, for clamping what it hands out.
#[must_use]
pub fn time_left(state: &AppState, session: &PublishSession) -> Duration {
    Duration::from_secs(state.clock.now().seconds_until(session.expires_at))
}
