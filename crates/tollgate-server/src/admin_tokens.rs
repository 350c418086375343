//! Admin API tokens: the bootstrap token printed at first start, and verification.

use crate::error::ApiError;
use crate::state::AppState;
use secrecy::{ExposeSecret as _, SecretString};
use tollgate_core::Reason;
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_store::{AdminTokenRecord, SecretHash};

/// Creates the first admin token when none exists and none is configured; returns it so
/// the caller can print it once. Other starts return `None`.
pub async fn bootstrap(state: &AppState) -> Result<Option<SecretString>, ApiError> {
    if state.config.bootstrap_token().is_some() || state.store.count_admin_tokens().await? > 0 {
        return Ok(None);
    }
    let token = generate();
    let (version, hash) = state.hashing.hasher().hash(&token);
    let id = secret_token::mint_id("adm_", tollgate_crypto::random_byte_source());
    state
        .store
        .insert_admin_token(&AdminTokenRecord {
            id: id.clone(),
            label: "bootstrap".into(),
            secret: SecretHash { version, hash },
            created_at: state.clock.now().0,
        })
        .await?;
    crate::audit::record(
        state,
        "system",
        "admin_token.create",
        Some(&id),
        None,
        serde_json::json!({"label": "bootstrap"}),
    )
    .await?;
    Ok(Some(SecretString::from(token)))
}

/// The admin id for `token`, or `None` if it is not an admin token we know.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<String>, ApiError> {
    if let Err(e) = secret_token::check(SecretKind::AdminToken, token) {
        return Err(
            ApiError::new(Reason::SecretMalformed, format!("admin token: {e}"))
                .with_challenge("Bearer realm=\"tollgate-admin\""),
        );
    }
    if let Some(configured) = state.config.bootstrap_token() {
        let same = aws_lc_rs::constant_time::verify_slices_are_equal(
            configured.expose_secret().as_bytes(),
            token.as_bytes(),
        );
        if same.is_ok() {
            return Ok(Some("config".to_owned()));
        }
    }
    let hasher = state.hashing.hasher();
    for (version, hash) in hasher.all_hashes(token) {
        if let Some(rec) = state
            .store
            .find_admin_token(&SecretHash { version, hash })
            .await?
        {
            return Ok(Some(rec.id));
        }
    }
    Ok(None)
}

/// A new admin token string (for `admin.bootstrap_token`); nothing is stored.
#[must_use]
pub fn generate() -> String {
    secret_token::mint(SecretKind::AdminToken, tollgate_crypto::random_byte_source())
}
