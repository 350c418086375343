//! Local users: the upstream identities `(iss, sub)` they are known by, registration on
//! first exchange, and `user_ver` (logout-everywhere).

use crate::config::RegistrationMode;
use crate::error::ApiError;
use crate::state::AppState;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_core::secret_token;
use tollgate_core::upstream::UpstreamIdentity;
use tollgate_store::{IdentityRecord, StoreError, UserRecord};

/// A new user id: `usr_` and 20 random characters.
fn new_id() -> String {
    secret_token::mint_id("usr_", tollgate_crypto::random_byte_source())
}

/// The user an upstream identity belongs to, registering it on first sight when
/// `registration_mode = open`. Disabled users are refused.
pub async fn resolve_or_register(
    state: &AppState,
    identity: &UpstreamIdentity,
) -> Result<UserRecord, ApiError> {
    let user = match state
        .store
        .user_by_identity(&identity.issuer, &identity.subject)
        .await?
    {
        Some(u) => u,
        None if state.config.users.registration_mode == RegistrationMode::InviteOnly => {
            return Err(ApiError::new(
                Reason::RegistrationClosed,
                format!(
                    "`{}` from `{}` is not a user here, and registration is invite-only",
                    identity.subject, identity.issuer_name
                ),
            ));
        }
        None => register(state, identity).await?,
    };
    if user.disabled_at.is_some() {
        return Err(ApiError::new(
            Reason::UserDisabled,
            "this user has been disabled by an administrator",
        ));
    }
    Ok(user)
}

async fn register(state: &AppState, identity: &UpstreamIdentity) -> Result<UserRecord, ApiError> {
    let now = state.clock.now().0;
    let user = UserRecord {
        id: new_id(),
        email: identity.email.clone(),
        user_ver: 1,
        created_at: now,
        disabled_at: None,
        email_verified_at: None,
    };
    let link = IdentityRecord {
        iss: identity.issuer.clone(),
        sub: identity.subject.clone(),
        user_id: user.id.clone(),
        created_at: now,
    };
    match state.store.create_user(&user, std::slice::from_ref(&link)).await {
        Ok(()) => {
            let detail = json!({"issuer": identity.issuer_name, "subject": identity.subject});
            crate::audit::record(state, "system", "user.register", Some(&user.id), None, detail).await?;
            Ok(user)
        }
        // A concurrent first exchange registered the same identity: use that user.
        Err(StoreError::Conflict(_)) => state
            .store
            .user_by_identity(&identity.issuer, &identity.subject)
            .await?
            .ok_or_else(|| ApiError::new(Reason::Conflict, "the identity changed concurrently; retry")),
        Err(e) => Err(e.into()),
    }
}

/// Creates a user ahead of their first sign-in (for `invite_only`), linked to `identities`.
pub async fn create(
    state: &AppState,
    email: Option<String>,
    identities: &[(String, String)],
) -> Result<UserRecord, ApiError> {
    let now = state.clock.now().0;
    let user = UserRecord {
        id: new_id(),
        email,
        user_ver: 1,
        created_at: now,
        disabled_at: None,
        email_verified_at: None,
    };
    let links: Vec<IdentityRecord> = identities
        .iter()
        .map(|(iss, sub)| IdentityRecord {
            iss: iss.clone(),
            sub: sub.clone(),
            user_id: user.id.clone(),
            created_at: now,
        })
        .collect();
    // One transaction: a taken identity leaves no half-linked user behind.
    state
        .store
        .create_user(&user, &links)
        .await
        .map_err(identity_taken)?;
    Ok(user)
}

/// Links another upstream identity to an existing user (dual-auth migrations).
pub async fn link(state: &AppState, user_id: &str, iss: &str, sub: &str) -> Result<(), ApiError> {
    find(state, user_id).await?;
    let link = IdentityRecord {
        iss: iss.to_owned(),
        sub: sub.to_owned(),
        user_id: user_id.to_owned(),
        created_at: state.clock.now().0,
    };
    state.store.link_identity(&link).await.map_err(identity_taken)
}

fn identity_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => {
            ApiError::new(Reason::Conflict, "that identity is already linked to a user")
        }
        other => other.into(),
    }
}

/// A user by id, or 404.
pub async fn find(state: &AppState, id: &str) -> Result<UserRecord, ApiError> {
    state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::new(Reason::NotFound, format!("no user with id `{id}`")))
}
