//! Issuing and verifying tollgate's own access tokens (RFC 9068).

use crate::error::ApiError;
use crate::keyring::ACCESS;
use crate::state::AppState;
use tollgate_core::claims::{ACCESS_TOKEN_TYP, TimeCheck};
use tollgate_core::claims::{Actor, UpstreamSubject};
use tollgate_core::client_grant::Grant;
use tollgate_core::{AccessTokenClaims, Reason};
use tollgate_crypto::UnverifiedJws;
use tollgate_store::ClientRecord;

/// A freshly signed access token.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub claims: AccessTokenClaims,
}

/// Whom a token is for.
#[derive(Debug, Clone)]
pub struct Subject {
    pub sub: String,
    /// The OAuth client that asked (or `upstream:<issuer>` for an unauthenticated exchange).
    pub client_id: String,
    pub upstream: Option<UpstreamSubject>,
    pub act: Option<Actor>,
    /// The local user's version, for tokens of users.
    pub user_ver: Option<i64>,
    /// The active org and the subject's roles in it.
    pub org: Option<String>,
    pub roles: Vec<String>,
    /// For job tokens: the workload and its trust policy.
    pub ci: Option<tollgate_core::claims::JobClaims>,
}

/// `client_id` of tokens exchanged without client authentication.
#[must_use]
pub fn upstream_client_id(issuer_name: &str) -> String {
    format!("upstream:{issuer_name}")
}

/// `client_id` of tokens a public client obtained with the device grant (RFC 8628).
#[must_use]
pub fn device_client_id(client_id: &str) -> String {
    format!("device:{client_id}")
}

/// Whether `client_id` names no registered client (an unauthenticated exchange, a device
/// grant's public client, or a device key, `key:<id>`): nothing to authenticate, look up or
/// disable as a client.
#[must_use]
pub fn is_public_client(client_id: &str) -> bool {
    client_id.starts_with("upstream:") || client_id.starts_with("device:") || client_id.starts_with("key:")
}

impl Subject {
    /// A service account acting for itself.
    #[must_use]
    pub fn client(client: &ClientRecord) -> Self {
        Self {
            sub: client.client_id.clone(),
            client_id: client.client_id.clone(),
            upstream: None,
            act: None,
            user_ver: None,
            org: client.org_id.clone(),
            roles: Vec::new(),
            ci: None,
        }
    }
}

/// Signs an access token for `subject` carrying `grant`.
pub fn issue(state: &AppState, subject: Subject, grant: &Grant) -> Result<IssuedToken, ApiError> {
    let now = state.clock.now();
    let claims = AccessTokenClaims {
        iss: state.config.server.public_url.clone(),
        sub: subject.sub,
        aud: grant.audience.to_string(),
        client_id: subject.client_id,
        scope: grant.scope.to_string(),
        iat: now,
        nbf: now,
        exp: now.plus(grant.ttl),
        jti: uuid::Uuid::new_v4().simple().to_string(),
        upstream: subject.upstream,
        act: subject.act,
        user_ver: subject.user_ver,
        org: subject.org,
        roles: subject.roles,
        ci: subject.ci,
    };
    let keys = state.keys.snapshot();
    let key = keys.signer(ACCESS).ok_or_else(|| {
        ApiError::unavailable(&crate::keyring::KeyError::InvalidState(
            "no active access-token key".into(),
        ))
    })?;
    let token =
        tollgate_crypto::jws::sign(key, ACCESS_TOKEN_TYP, &claims).map_err(|e| ApiError::internal(&e))?;
    state
        .metrics
        .tokens_issued
        .get_or_create(&crate::metrics::KindLabel { kind: "access" })
        .inc();
    Ok(IssuedToken { token, claims })
}

/// A refusal of a presented token with the reason and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: Reason,
    pub message: String,
}

fn rejected(reason: Reason, message: impl Into<String>) -> Rejected {
    Rejected {
        reason,
        message: message.into(),
    }
}

/// Verifies one of our access tokens offline: size, structure, `typ`, key by `kid`, exact
/// algorithm of that key, signature, `iss`, times. Revocation is checked by the caller.
pub fn verify(state: &AppState, token: &str) -> Result<AccessTokenClaims, Rejected> {
    let jws = UnverifiedJws::parse(token, state.config.tokens.max_token_bytes)
        .map_err(|e| rejected(e.reason(), e.to_string()))?;
    let header = jws.header();
    // RFC 9068 §4: `at+jwt`, or its full media type `application/at+jwt`.
    let typ = header.typ.as_deref().unwrap_or_default();
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    if !typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) {
        return Err(rejected(Reason::WrongTokenType, "typ must be at+jwt (RFC 9068)"));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| rejected(Reason::KidNotFound, "token has no kid"))?;
    let keys = state.keys.snapshot();
    let key = keys
        .verifier(kid)
        .ok_or_else(|| rejected(Reason::KidNotFound, format!("no published key has kid `{kid}`")))?;
    let payload = jws.verify(key).map_err(|e| rejected(e.reason(), e.to_string()))?;
    let claims: AccessTokenClaims = serde_json::from_slice(&payload).map_err(|e| {
        rejected(
            Reason::ClaimMissing,
            format!("claims do not have the access-token shape: {e}"),
        )
    })?;
    if claims.iss != state.config.server.public_url {
        return Err(rejected(
            Reason::IssuerMismatch,
            format!("iss `{}` is not this server", claims.iss),
        ));
    }
    match claims.check_times(state.clock.now(), state.config.tokens.leeway.as_secs()) {
        Ok(()) => Ok(claims),
        Err(TimeCheck::Expired) => Err(rejected(Reason::Expired, "token has expired")),
        Err(TimeCheck::NotYetValid) => Err(rejected(Reason::NotYetValid, "token is not valid yet")),
    }
}

/// [`verify`] plus the checks that need live state: the jti denylist, whether the client
/// still exists and is enabled, and for exchanged tokens whether their upstream issuer is
/// still trusted and enabled (disabling an issuer deactivates what was exchanged from it), and
/// for job tokens whether their trust policy still exists and is enabled.
pub async fn verify_live(
    state: &AppState,
    token: &str,
) -> Result<Result<AccessTokenClaims, Rejected>, ApiError> {
    let claims = match verify(state, token) {
        Ok(c) => c,
        Err(r) => return Ok(Err(r)),
    };
    if state.store.is_revoked(&claims.jti).await? {
        return Ok(Err(rejected(Reason::Revoked, "token has been revoked")));
    }
    if let Some(ver) = claims.user_ver {
        match state.store.get_user(&claims.sub).await? {
            None => {
                return Ok(Err(rejected(
                    Reason::Revoked,
                    "the token's user has been deleted",
                )));
            }
            Some(u) if u.disabled_at.is_some() => {
                return Ok(Err(rejected(
                    Reason::UserDisabled,
                    "the token's user has been disabled",
                )));
            }
            Some(u) if u.user_ver != ver => {
                return Ok(Err(rejected(
                    Reason::UserVersionStale,
                    "the user logged out everywhere or changed since this token was issued",
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(up) = &claims.upstream {
        let view = state.upstream.registry().current();
        match view.set.iter().find(|i| i.name == up.name) {
            // The name must still stand for the same `iss`: repointing a name at another
            // IdP must not keep tokens of the old one alive.
            Some(i) if i.enabled && i.issuer == up.iss => {}
            Some(i) if i.issuer != up.iss => {
                return Ok(Err(rejected(
                    Reason::UnknownIssuer,
                    format!("issuer `{}` now trusts another iss", up.name),
                )));
            }
            Some(_) => {
                return Ok(Err(rejected(
                    Reason::IssuerDisabled,
                    format!("issuer `{}` has been disabled", up.name),
                )));
            }
            None => {
                return Ok(Err(rejected(
                    Reason::UnknownIssuer,
                    format!("issuer `{}` is no longer trusted", up.name),
                )));
            }
        }
    }
    // A device key's tokens end with the key.
    if let Some(key_id) = crate::device_keys::key_of_client(&claims.client_id)
        && !crate::device_keys::key_is_live(state, key_id).await?
    {
        return Ok(Err(rejected(
            Reason::Revoked,
            format!("device key {key_id}, which this token was issued to, has been revoked"),
        )));
    }
    if is_public_client(&claims.client_id) {
        return Ok(Ok(claims));
    }
    if let Some(job) = &claims.ci {
        // A job token lives as long as the trust policy that admitted it.
        let policy = match &claims.org {
            Some(org) => state.store.get_trust_policy(org, &job.policy).await?,
            None => None,
        };
        let enabled = policy
            .and_then(|p| serde_json::from_str::<tollgate_proto::ci::TrustPolicySpec>(&p.spec).ok())
            .is_some_and(|spec| spec.enabled);
        return Ok(if enabled {
            Ok(claims)
        } else {
            Err(rejected(
                Reason::Revoked,
                format!(
                    "trust policy `{}` was deleted or disabled since this job token was issued",
                    job.policy
                ),
            ))
        });
    }
    match state.store.get_client(&claims.client_id).await? {
        Some(c) if c.disabled_at.is_none() => Ok(Ok(claims)),
        Some(_) => Ok(Err(rejected(
            Reason::Revoked,
            "the token's client has been disabled",
        ))),
        None => Ok(Err(rejected(
            Reason::Revoked,
            "the token's client has been deleted",
        ))),
    }
}
