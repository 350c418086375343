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
    let keep_until = session.expires_at.plus(KEEP_AFTER_EXPIRY);
    crate::documents::create(state, KIND, &session.id, session, keep_until.0).await?;
    Ok(())
}

/// Reads a session with its version.
pub async fn load(state: &AppState, id: &str) -> Result<(i64, PublishSession), ApiError> {
    // Ids are ours (`ps_` + 32 hex); anything else cannot name a session.
    if !(id.starts_with("ps_") && id.len() == 35 && id[3..].bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(unknown(id));
    }
    crate::documents::load(state, KIND, id)
        .await?
        .ok_or_else(|| unknown(id))
}

/// Applies `step` to the session read as `current` and stores the result (see
/// [`crate::documents::update`]: the loser of a race sees the winner's state and is refused
/// by the state machine or, for progress reports, simply goes second).
pub async fn update<T>(
    state: &AppState,
    current: (i64, PublishSession),
    step: impl FnMut(&mut PublishSession) -> Result<T, ApiError>,
) -> Result<(PublishSession, T), ApiError> {
    let id = current.1.id.clone();
    crate::documents::update(state, KIND, &id, current, || unknown(&id), step).await
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
