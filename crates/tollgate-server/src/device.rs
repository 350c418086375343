//! The device authorization grant (RFC 8628) at run time: device authorizations as JSON
//! documents in the short-lived store (Redis or the database), updated by compare-and-swap
//! with the core state machine (`tollgate_core::device`), and the token grant
//! `urn:ietf:params:oauth:grant-type:device_code`.
//!
//! Neither code is stored. The device document's id is a keyed hash of the device code; a
//! second small document, keyed by a keyed hash of the normalized user code, points to it.
//! Polling that collects the tokens moves the document to `consumed` by compare-and-swap,
//! so of concurrent polls after approval exactly one gets tokens.

use crate::audit::AuditEvent;
use crate::error::ApiError;
use crate::extract::form::Form;
use crate::state::AppState;
use crate::tokens;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use tollgate_core::client_grant::Grant;
use tollgate_core::device::{DecisionError, DeviceApproval, DeviceAuthorization, PollError};
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::{Audience, Reason, Scope};
use tollgate_proto::oauth::TokenResponse;
use tollgate_store::StoreError;

/// `grant_type` of device polling (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Document kind of device authorizations (id: keyed hash of the device code).
const KIND: &str = "device";
/// Document kind of user codes (id: keyed hash of the normalized user code).
const USER_KIND: &str = "device-user";
/// Documents stay readable this long after they expire, so a late poll or a late user
/// learns "expired" rather than "unknown".
const KEEP_AFTER_EXPIRY: Duration = Duration::from_secs(3600);
/// New user codes tried when one collides with a live one.
const USER_CODE_ATTEMPTS: usize = 5;

/// What a user-code document holds: the device document it stands for.
#[derive(Debug, Serialize, Deserialize)]
struct UserCodeDoc {
    device: String,
}

/// A device authorization as loaded: its document id, version and content.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub doc_id: String,
    pub ver: i64,
    pub auth: DeviceAuthorization,
}

fn corrupt(e: &serde_json::Error) -> ApiError {
    ApiError::unavailable(&StoreError::Corrupt(format!("device document: {e}")))
}

/// Whether `client_id` is an acceptable public client name: 1–64 of `[A-Za-z0-9._:-]`.
#[must_use]
pub fn valid_client_id(client_id: &str) -> bool {
    (1..=64).contains(&client_id.len())
        && client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// Stores a new device authorization under `device_code`, and a fresh user code pointing
/// to it; returns the user code (`XXXX-XXXX`).
pub async fn create(
    state: &AppState,
    device_code: &str,
    auth: &DeviceAuthorization,
) -> Result<String, ApiError> {
    let now = state.clock.now();
    let keep_until = auth.expires_at.plus(KEEP_AFTER_EXPIRY).0;
    let hasher = state.hashing.hasher();
    let (v, h) = hasher.hash(device_code);
    let id = crate::documents::keyed_id(v, &h);
    let doc = serde_json::to_string(auth).map_err(|e| corrupt(&e))?;
    state
        .ephemeral
        .create_doc(KIND, &id, &doc, keep_until, now.0)
        .await?;
    let pointer = serde_json::to_string(&UserCodeDoc { device: id }).map_err(|e| corrupt(&e))?;
    for _ in 0..USER_CODE_ATTEMPTS {
        let user_code = tollgate_core::device::user_code(tollgate_crypto::random_byte_source());
        let (v, h) = hasher.hash(&user_code);
        match state
            .ephemeral
            .create_doc(
                USER_KIND,
                &crate::documents::keyed_id(v, &h),
                &pointer,
                keep_until,
                now.0,
            )
            .await
        {
            Ok(()) => return Ok(user_code),
            // A live authorization has this user code (1 in 25.6 billion per live code).
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        Reason::Conflict,
        "could not find a free user code; retry",
    ))
}

async fn get(state: &AppState, doc_id: &str) -> Result<Option<Loaded>, ApiError> {
    Ok(crate::documents::load(state, KIND, doc_id)
        .await?
        .map(|(ver, auth)| Loaded {
            doc_id: doc_id.to_owned(),
            ver,
            auth,
        }))
}

/// The authorization of a device code (under any server-secret version), if any.
pub async fn by_device_code(state: &AppState, device_code: &str) -> Result<Option<Loaded>, ApiError> {
    if secret_token::check(SecretKind::DeviceCode, device_code).is_err() {
        return Ok(None);
    }
    let hasher = state.hashing.hasher();
    for (v, h) in hasher.all_hashes(device_code) {
        if let Some(found) = get(state, &crate::documents::keyed_id(v, &h)).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The authorization of a user code in canonical form (`XXXX-XXXX`), if any.
pub async fn by_user_code(state: &AppState, user_code: &str) -> Result<Option<Loaded>, ApiError> {
    let hasher = state.hashing.hasher();
    for (v, h) in hasher.all_hashes(user_code) {
        let id = crate::documents::keyed_id(v, &h);
        if let Some((_, pointer)) = crate::documents::load::<UserCodeDoc>(state, USER_KIND, &id).await? {
            return get(state, &pointer.device).await;
        }
    }
    Ok(None)
}

/// Applies a user's decision to the authorization and stores it if nobody changed it
/// meanwhile; on a lost race, reads again and re-applies (so the loser is refused by the
/// state machine).
pub async fn decide(
    state: &AppState,
    loaded: Loaded,
    mut step: impl FnMut(&mut DeviceAuthorization) -> Result<(), DecisionError>,
) -> Result<DeviceAuthorization, ApiError> {
    let gone = || ApiError::new(Reason::UserCodeUnknown, "the authorization ended meanwhile");
    let current = (loaded.ver, loaded.auth);
    let (auth, ()) = crate::documents::update(state, KIND, &loaded.doc_id, current, gone, |d| {
        step(d).map_err(|e| decision_refused(&e))
    })
    .await?;
    Ok(auth)
}

/// A refused decision as an API error.
#[must_use]
pub fn decision_refused(e: &DecisionError) -> ApiError {
    match e {
        DecisionError::Expired => ApiError::new(Reason::DeviceCodeExpired, e.to_string()),
        DecisionError::Decided(_) => ApiError::new(Reason::Conflict, e.to_string()),
    }
}

fn poll_refused(e: &PollError) -> ApiError {
    let reason = match e {
        PollError::Pending { .. } => Reason::AuthorizationPending,
        PollError::SlowDown { .. } => Reason::SlowDown,
        PollError::Expired => Reason::DeviceCodeExpired,
        PollError::Denied => Reason::DeviceAccessDenied,
        PollError::Used => Reason::DeviceCodeUsed,
    };
    ApiError::new(reason, e.to_string())
}

fn unknown(message: &str) -> ApiError {
    ApiError::new(Reason::DeviceCodeUnknown, message)
}

/// Polls: the CAS loop around [`DeviceAuthorization::poll`]. Pending polls are stored (the
/// poll time, a grown interval) before their error is returned; an approval is returned
/// only to the poll whose write moved the document to `consumed`.
async fn poll(state: &AppState, loaded: Loaded) -> Result<(DeviceAuthorization, DeviceApproval), ApiError> {
    let gone = || unknown("the device authorization ended meanwhile");
    let current = (loaded.ver, loaded.auth);
    let (next, outcome) = crate::documents::update(state, KIND, &loaded.doc_id, current, gone, |next| {
        let outcome = next.poll(state.clock.now());
        match &outcome {
            // Refusals that change nothing are not written.
            Err(e) if !e.changes_document() => Err(poll_refused(e)),
            _ => Ok(outcome),
        }
    })
    .await?;
    outcome
        .map(|approval| (next, approval))
        .map_err(|e| poll_refused(&e))
}

/// The audit event of a device authorization.
#[must_use]
pub fn event(auth: &DeviceAuthorization, actor: &str, action: &str) -> AuditEvent {
    AuditEvent::new(actor, action).target(&auth.id)
}

/// Handles `grant_type=urn:ietf:params:oauth:grant-type:device_code`: the device polls
/// with its device code and the client_id it asked with.
pub async fn token(state: &AppState, form: &Form) -> Result<TokenResponse, ApiError> {
    let device_code = form.required("device_code")?;
    let client_id = form.required("client_id")?;
    if secret_token::check(SecretKind::DeviceCode, device_code).is_err() {
        return Err(unknown(
            "not a tollgate device code (tg_dc_…); it may be mistyped or truncated",
        ));
    }
    let Some(loaded) = by_device_code(state, device_code).await? else {
        return Err(unknown("unknown device code"));
    };
    let actor = tokens::device_client_id(&loaded.auth.client_id);
    if loaded.auth.client_id != client_id {
        // The presenter holds a real device code: worth an audit event.
        let e = unknown("the device code was issued to another client_id");
        let detail = json!({"client_id": loaded.auth.client_id, "presented_client_id": client_id});
        crate::audit::record_event(
            state,
            event(&loaded.auth, &actor, "device.token")
                .denied(e.reason)
                .detail(detail),
        )
        .await?;
        return Err(e);
    }
    let (auth, approval) = match poll(state, loaded.clone()).await {
        Ok(done) => done,
        Err(e) => {
            if e.reason == Reason::DeviceCodeUsed {
                // A second collection: a stolen or replayed device code.
                let detail = json!({"client_id": loaded.auth.client_id});
                crate::audit::record_event(
                    state,
                    event(&loaded.auth, &actor, "device.token")
                        .denied(e.reason)
                        .detail(detail),
                )
                .await?;
            }
            return Err(e);
        }
    };
    match issue(state, &auth, &approval).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            let mut ev = event(&auth, &actor, "device.token")
                .denied(e.reason)
                .detail(json!({"client_id": auth.client_id, "user": approval.user_id, "why": e.message}));
            ev.org_id.clone_from(&approval.org_id);
            crate::audit::record_event(state, ev).await?;
            Err(e.as_invalid_grant())
        }
    }
}

/// Issues the approving user's tokens for the device: an access token like a refresh
/// would (the user, `user_ver`, the org chosen at approval with the user's roles there now)
/// and, when the approval allows it, a session with a rotating refresh token.
async fn issue(
    state: &AppState,
    auth: &DeviceAuthorization,
    approval: &DeviceApproval,
) -> Result<TokenResponse, ApiError> {
    let user = match state.store.get_user(&approval.user_id).await? {
        Some(u) if u.disabled_at.is_some() => {
            return Err(ApiError::new(Reason::UserDisabled, "the user has been disabled"));
        }
        Some(u) if u.user_ver != approval.user_ver => {
            return Err(ApiError::new(
                Reason::UserVersionStale,
                "the user logged out everywhere (or their roles changed) since approving; approve again",
            ));
        }
        Some(u) => u,
        None => {
            return Err(ApiError::new(
                Reason::Revoked,
                "the approving user has been deleted",
            ));
        }
    };
    let issuer = approval.upstream.as_ref().map(|u| u.name.as_str());
    let active =
        crate::orgs::resolve_for_session(state, approval.org_id.as_deref(), &user.id, issuer).await?;
    let corrupt =
        |what: &str| ApiError::unavailable(&StoreError::Corrupt(format!("device {}: {what}", auth.id)));
    let grant = Grant {
        scope: Scope::parse(&approval.scope).map_err(|_| corrupt("scope"))?,
        audience: Audience::parse(&approval.audience).map_err(|_| corrupt("audience"))?,
        ttl: state.config.tokens.access_ttl,
    };
    let client_id = tokens::device_client_id(&auth.client_id);
    let (issued, refresh_token) = crate::sessions::sign_in_user(
        state,
        &user,
        &client_id,
        approval.upstream.clone(),
        active,
        &grant,
        approval.refresh,
    )
    .await?;
    let c = &issued.claims;
    let detail = json!({
        "client_id": auth.client_id, "user": c.sub, "aud": c.aud, "scope": c.scope, "roles": c.roles,
        "exp": c.exp, "refresh_token": refresh_token.is_some(),
    });
    let mut ev = event(auth, &format!("device:{}", auth.client_id), "device.token")
        .credential(&c.jti)
        .detail(detail);
    ev.org_id.clone_from(&c.org);
    crate::audit::record_event(state, ev).await?;
    Ok(crate::sessions::token_response(issued, &grant, refresh_token))
}
