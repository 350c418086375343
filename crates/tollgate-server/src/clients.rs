//! Service accounts: creation, secret checks and re-keying.

use crate::error::ApiError;
use crate::extract::client_auth::{BASIC_CHALLENGE, PresentedClient};
use crate::state::AppState;
use secrecy::ExposeSecret as _;
use tollgate_core::client_grant::ClientPolicy;
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::{Audience, Reason, Scope};
use tollgate_proto::admin::{ClientInfo, ClientWithSecret, CreateClientRequest};
use tollgate_store::{ClientRecord, SecretHash, StoreError};

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Validates and creates a service account; returns it with its secret (shown once).
/// `org_id`: the org it belongs to (its tokens carry it as `org`), or `None` for the platform.
pub async fn create(
    state: &AppState,
    req: &CreateClientRequest,
    org_id: Option<&str>,
) -> Result<ClientWithSecret, ApiError> {
    if !valid_name(&req.name) {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "name must be 1–64 characters of A–Z a–z 0–9 . _ -",
        ));
    }
    let scope = Scope::from_tokens(&req.scope)
        .map_err(|e| ApiError::new(Reason::InvalidParameter, format!("scope: {e}")))?;
    let audiences = req
        .audiences
        .iter()
        .map(|a| {
            Audience::parse(a)
                .map_err(|e| ApiError::new(Reason::InvalidParameter, format!("audience `{a}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = secret_token::mint(SecretKind::ClientSecret, tollgate_crypto::random_byte_source());
    let (version, hash) = state.hashing.hasher().hash(&secret);
    let record = ClientRecord {
        client_id: secret_token::mint_id("tgc_", tollgate_crypto::random_byte_source()),
        name: req.name.clone(),
        secret: SecretHash { version, hash },
        scope: scope.to_string(),
        audiences: audiences.iter().map(ToString::to_string).collect(),
        created_at: state.clock.now().0,
        disabled_at: None,
        org_id: org_id.map(str::to_owned),
    };
    match state.store.create_client(&record).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                Reason::Conflict,
                format!("a client named `{}` already exists", req.name),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ClientWithSecret {
        client: info(&record),
        client_secret: secret,
    })
}

/// Replaces a client's secret; the old one stops working at once.
pub async fn rotate_secret(state: &AppState, client_id: &str) -> Result<ClientWithSecret, ApiError> {
    let record = find(state, client_id).await?;
    let secret = secret_token::mint(SecretKind::ClientSecret, tollgate_crypto::random_byte_source());
    let (version, hash) = state.hashing.hasher().hash(&secret);
    let new = SecretHash { version, hash };
    if !state
        .store
        .replace_client_secret(client_id, &record.secret, &new)
        .await?
    {
        return Err(ApiError::new(
            Reason::Conflict,
            "the secret changed concurrently; retry",
        ));
    }
    Ok(ClientWithSecret {
        client: info(&record),
        client_secret: secret,
    })
}

/// A client by id, or 404.
pub async fn find(state: &AppState, client_id: &str) -> Result<ClientRecord, ApiError> {
    state
        .store
        .get_client(client_id)
        .await?
        .ok_or_else(|| ApiError::new(Reason::NotFound, format!("no client with id `{client_id}`")))
}

fn auth_failed() -> ApiError {
    ApiError::new(Reason::ClientAuthFailed, "unknown client or wrong secret").with_challenge(BASIC_CHALLENGE)
}

/// Checks presented credentials; the record of an enabled client on success.
///
/// Unknown clients and wrong secrets get the same answer, and the same HMAC work, so the
/// response does not reveal which client ids exist.
pub async fn authenticate(state: &AppState, presented: &PresentedClient) -> Result<ClientRecord, ApiError> {
    let secret = presented.secret.expose_secret();
    secret_token::check(SecretKind::ClientSecret, secret).map_err(|e| {
        ApiError::new(Reason::SecretMalformed, format!("client secret: {e}")).with_challenge(BASIC_CHALLENGE)
    })?;
    let hasher = state.hashing.hasher();
    let Some(record) = state.store.get_client(&presented.client_id).await? else {
        let _ = hasher.hash(secret);
        return Err(auth_failed());
    };
    if !hasher.verify(record.secret.version, &record.secret.hash, secret) {
        return Err(auth_failed());
    }
    if record.disabled_at.is_some() {
        return Err(ApiError::new(
            Reason::ClientDisabled,
            "this client has been disabled by an administrator",
        )
        .with_challenge(BASIC_CHALLENGE));
    }
    if record.secret.version < hasher.current_version() {
        let (version, hash) = hasher.hash(secret);
        // Best effort: a concurrent re-hash or rotation wins, and that is fine.
        let _ = state
            .store
            .replace_client_secret(&record.client_id, &record.secret, &SecretHash { version, hash })
            .await;
    }
    Ok(record)
}

/// The grant policy stored for a client. Stored values were validated on the way in, so
/// a value that no longer parses is treated as corrupt data.
pub fn policy(record: &ClientRecord) -> Result<ClientPolicy, ApiError> {
    let corrupt = |what: &str| {
        ApiError::unavailable(&StoreError::Corrupt(format!(
            "client {}: {what}",
            record.client_id
        )))
    };
    Ok(ClientPolicy {
        allowed_scope: Scope::parse(&record.scope).map_err(|_| corrupt("scope"))?,
        allowed_audiences: record
            .audiences
            .iter()
            .map(|a| Audience::parse(a).map_err(|_| corrupt("audience")))
            .collect::<Result<_, _>>()?,
    })
}

/// The public view of a client.
#[must_use]
pub fn info(record: &ClientRecord) -> ClientInfo {
    ClientInfo {
        client_id: record.client_id.clone(),
        name: record.name.clone(),
        scope: record
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        audiences: record.audiences.clone(),
        created_at: crate::rfc3339(record.created_at),
        disabled: record.disabled_at.is_some(),
        org: record.org_id.clone(),
    }
}
