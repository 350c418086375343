//! The container registry token server (CNCF distribution token authentication).
//!
//! Who asks ([`Principal`], from HTTP Basic credentials), what they may do to each requested
//! resource (org roles for users, scopes for service accounts, one repository for pull
//! credentials), and the token distribution verifies: ES256 or RS256 with a key of its own
//! purpose, `kid` in libtrust form so the registry finds it among its `rootcertbundle`.
//!
//! A repository belongs to the org named by its first path component (`acme/app` → org
//! `acme`). Denied actions are left out of `access` (the spec's rule), never an error.

use crate::config::KeyReference;
use crate::error::ApiError;
use crate::keyring::REGISTRY;
use crate::state::AppState;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use tollgate_core::authz::{Grant, PermissionSet};
use tollgate_core::registry::{RegistryAccess, RegistryClaims, ResourceScope, granted_actions};
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::{Reason, UnixTime};
use tollgate_store::{ClientRecord, OrgRecord, PullCredentialRecord, UserRecord};

/// Who is asking for a registry token.
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    /// A pull credential from the internal endpoint: pull on one repository.
    PullCredential(PullCredentialRecord),
    /// A service account: its `registry:*` scopes, in its org's repositories (all, for
    /// platform accounts).
    ServiceAccount(ClientRecord),
    /// A user, by access token or refresh token as password: their roles in the
    /// repository's org; `org` restricts them to one org (the token's).
    User {
        user: UserRecord,
        org: Option<String>,
        /// The presented credential's end; the registry token does not outlive it.
        until: Option<UnixTime>,
    },
    /// A CI job, by its job token as password: the repositories its trust policy grants,
    /// in the policy's org only (the policy is read live).
    Job {
        subject: String,
        policy: Box<tollgate_core::trust::TrustPolicy>,
        until: UnixTime,
    },
}

impl Principal {
    /// The registry token's `sub`, and the audit actor.
    #[must_use]
    pub fn subject(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_owned(),
            Principal::PullCredential(c) => c.id.clone(),
            Principal::ServiceAccount(c) => c.client_id.clone(),
            Principal::User { user, .. } => user.id.clone(),
            Principal::Job { subject, .. } => subject.clone(),
        }
    }

    fn expires(&self) -> Option<UnixTime> {
        match self {
            Principal::PullCredential(c) => Some(UnixTime(c.expires_at)),
            Principal::User { until, .. } => *until,
            Principal::Job { until, .. } => Some(*until),
            _ => None,
        }
    }
}

pub const CHALLENGE: &str = "Basic realm=\"tollgate registry\"";

fn bad_credentials(message: &str) -> ApiError {
    ApiError::new(Reason::ClientAuthFailed, message).with_challenge(CHALLENGE)
}

/// The principal of HTTP Basic credentials (none: anonymous). The password decides the
/// kind: `tg_pc_…` (pull credential, username its id), `tg_sa_…` (service account, username
/// its client id), `tg_rt_…` (a user's refresh token, not spent), else a tollgate access
/// token of a user or a CI job. Wrong credentials are 401 with a challenge.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Principal::Anonymous);
    };
    let (username, password) = basic(value.to_str().unwrap_or_default())
        .ok_or_else(|| bad_credentials("send HTTP Basic credentials (docker login)"))?;
    if password.starts_with(SecretKind::PullCredential.prefix()) {
        return pull_credential(state, &username, &password).await;
    }
    if password.starts_with(SecretKind::ClientSecret.prefix()) {
        let presented = crate::extract::client_auth::PresentedClient {
            client_id: username,
            secret: password.into(),
        };
        return Ok(Principal::ServiceAccount(
            crate::clients::authenticate(state, &presented).await?,
        ));
    }
    if password.starts_with(SecretKind::RefreshToken.prefix()) {
        let session = crate::sessions::peek(state, &password)
            .await?
            .ok_or_else(|| bad_credentials("the refresh token is not live; sign in again"))?;
        let user = crate::users::find(state, &session.user_id).await?;
        return Ok(Principal::User {
            user,
            org: session.org_id,
            until: Some(UnixTime(session.expires_at)),
        });
    }
    match crate::tokens::verify_live(state, &password).await? {
        Ok(claims) if claims.user_ver.is_some() => Ok(Principal::User {
            user: crate::users::find(state, &claims.sub).await?,
            org: claims.org,
            until: Some(claims.exp),
        }),
        Ok(claims) if claims.ci.is_some() => match crate::workloads::policy_of(state, &claims).await? {
            Some(policy) => Ok(Principal::Job {
                subject: claims.sub,
                policy: Box::new(policy),
                until: claims.exp,
            }),
            None => Err(bad_credentials("the job token's trust policy is gone")),
        },
        Ok(_) => Err(bad_credentials(
            "service accounts authenticate with their client id and secret",
        )),
        Err(r) => Err(ApiError::new(r.reason, r.message).with_challenge(CHALLENGE)),
    }
}

/// The refresh token presented as the Basic password, if that is what it is (`offline_token`
/// and `access_type=offline` hand it back as the token to use next: it is not spent here).
#[must_use]
pub fn presented_refresh_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    basic(value)
        .map(|(_, password)| password)
        .filter(|p| p.starts_with(SecretKind::RefreshToken.prefix()))
}

fn basic(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

async fn pull_credential(state: &AppState, id: &str, secret: &str) -> Result<Principal, ApiError> {
    secret_token::check(SecretKind::PullCredential, secret).map_err(|e| {
        ApiError::new(Reason::SecretMalformed, format!("pull credential: {e}")).with_challenge(CHALLENGE)
    })?;
    let hasher = state.hashing.hasher();
    let Some(cred) = state.store.get_pull_credential(id).await? else {
        let _ = hasher.hash(secret);
        return Err(bad_credentials("unknown pull credential or wrong password"));
    };
    if !hasher.verify(cred.secret.version, &cred.secret.hash, secret) {
        return Err(bad_credentials("unknown pull credential or wrong password"));
    }
    if cred.revoked_at.is_some() {
        return Err(
            ApiError::new(Reason::Revoked, "this pull credential has been revoked").with_challenge(CHALLENGE),
        );
    }
    if state.clock.now().0 >= cred.expires_at {
        return Err(
            ApiError::new(Reason::Expired, "this pull credential has expired").with_challenge(CHALLENGE)
        );
    }
    Ok(Principal::PullCredential(cred))
}

/// The org a repository belongs to, by `registry.repository_patterns`.
pub async fn repository_org(state: &AppState, repository: &str) -> Result<Option<OrgRecord>, ApiError> {
    match tollgate_core::registry::repository_org(&state.config.registry.repository_patterns, repository) {
        Some(name) => Ok(state.store.find_org(name).await?),
        None => Ok(None),
    }
}

fn set(grants: &[&str]) -> PermissionSet {
    PermissionSet::parse(grants.iter().copied()).unwrap_or_default()
}

/// What `principal` may do to the resource `scope` names.
pub async fn permissions(
    state: &AppState,
    principal: &Principal,
    scope: &ResourceScope,
) -> Result<PermissionSet, ApiError> {
    if scope.resource_type != "repository" {
        // The catalog lists every org's repositories: platform service accounts only.
        return Ok(match principal {
            Principal::ServiceAccount(c) if c.org_id.is_none() => registry_scopes(c),
            _ => PermissionSet::default(),
        });
    }
    let repo = scope.name.as_str();
    Ok(match principal {
        Principal::Anonymous => {
            let public = state
                .config
                .registry
                .anonymous_pull
                .iter()
                .any(|p| tollgate_core::glob::matches(p, repo));
            if public {
                set(&["registry:pull"])
            } else {
                PermissionSet::default()
            }
        }
        Principal::PullCredential(c) if c.repository == repo => set(&["registry:pull"]),
        Principal::PullCredential(_) => PermissionSet::default(),
        Principal::ServiceAccount(c) => match &c.org_id {
            None => registry_scopes(c),
            Some(org_id) => match repository_org(state, repo).await? {
                Some(org) if org.id == *org_id => registry_scopes(c),
                _ => PermissionSet::default(),
            },
        },
        Principal::User { user, org, .. } => match repository_org(state, repo).await? {
            Some(repo_org) if org.as_ref().is_none_or(|o| *o == repo_org.id) => {
                crate::orgs::membership(state, &repo_org, &user.id)
                    .await?
                    .map(|m| m.permissions)
                    .unwrap_or_default()
            }
            _ => PermissionSet::default(),
        },
        Principal::Job { policy, .. } => match repository_org(state, repo).await? {
            Some(repo_org) if repo_org.id == policy.org_id => {
                let granted: Vec<String> = policy
                    .grant
                    .repositories
                    .iter()
                    .filter(|g| tollgate_core::glob::matches(&g.pattern, repo))
                    .flat_map(|g| g.actions.iter().map(|a| format!("registry:{a}")))
                    .collect();
                PermissionSet::parse(granted.iter().map(String::as_str)).unwrap_or_default()
            }
            _ => PermissionSet::default(),
        },
    })
}

/// A service account's `registry:…` scopes as permissions.
fn registry_scopes(c: &ClientRecord) -> PermissionSet {
    let mut set = PermissionSet::default();
    for s in c.scope.split(' ').filter(|s| s.starts_with("registry:")) {
        if let Ok(g) = Grant::parse(s) {
            set.insert(g);
        }
    }
    set
}

/// Decides every requested scope: the `access` list of the token (denied actions omitted;
/// resources with nothing granted left out).
pub async fn decide(
    state: &AppState,
    principal: &Principal,
    scopes: &[ResourceScope],
) -> Result<Vec<RegistryAccess>, ApiError> {
    let mut access = Vec::new();
    for scope in scopes {
        let perms = permissions(state, principal, scope).await?;
        let actions = granted_actions(scope, &perms, state.config.registry.push_implies_pull);
        if !actions.is_empty() {
            access.push(RegistryAccess {
                resource_type: scope.resource_type.clone(),
                name: scope.name.clone(),
                actions,
            });
        }
    }
    Ok(access)
}

/// A signed registry token for `principal` with `access`, and its claims.
pub fn issue(
    state: &AppState,
    principal: &Principal,
    service: &str,
    access: Vec<RegistryAccess>,
) -> Result<(String, RegistryClaims), ApiError> {
    let now = state.clock.now();
    let mut exp = now.plus(state.config.registry.token_ttl);
    if let Some(until) = principal.expires() {
        exp = exp.min(until);
    }
    let claims = RegistryClaims {
        iss: state.config.server.public_url.clone(),
        sub: principal.subject(),
        aud: service.to_owned(),
        exp,
        nbf: now,
        iat: now,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        access,
    };
    let keys = state.keys.snapshot();
    let key = keys.signer(REGISTRY).ok_or_else(|| {
        ApiError::unavailable(&crate::keyring::KeyError::InvalidState(
            "no active registry key".into(),
        ))
    })?;
    let token = match state.config.registry.key_reference {
        // A libtrust id is a hash of the key: cheap next to the signature, so not cached.
        KeyReference::Kid => tollgate_crypto::jws::sign_with_kid(key, "JWT", &key.libtrust_key_id(), &claims),
        KeyReference::X5c => {
            let chain = state.registry_certs.chain(key, now)?;
            tollgate_crypto::jws::sign_with_header(key, "JWT", None, Some(&chain), &claims)
        }
    }
    .map_err(|e| ApiError::internal(&e))?;
    state
        .metrics
        .tokens_issued
        .get_or_create(&crate::metrics::KindLabel { kind: "registry" })
        .inc();
    Ok((token, claims))
}

/// The `x5c` chain of the active registry key: a certificate of the key issued by the root
/// certificate `tollgate registry config` writes for it (see
/// [`tollgate_crypto::certificate_issued_by_own_root`] for why not the root itself), made
/// once per key rather than per token (it costs a signature).
#[derive(Debug, Default)]
pub struct CertCache(std::sync::Mutex<Option<(String, Vec<String>)>>);

impl CertCache {
    fn chain(&self, key: &tollgate_crypto::SigningKey, now: UnixTime) -> Result<Vec<String>, ApiError> {
        let mut cached = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((kid, chain)) = cached.as_ref()
            && kid == key.kid()
        {
            return Ok(chain.clone());
        }
        let pem = tollgate_crypto::certificate_issued_by_own_root(
            key,
            CERT_NAME,
            LEAF_NAME,
            now.0 - 86_400,
            now.0 + CERT_LIFE,
        )
        .map_err(|e| ApiError::internal(&e))?;
        // The PEM body is the standard base64 of the DER that x5c wants.
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let chain = vec![der_b64];
        *cached = Some((key.kid().to_owned(), chain.clone()));
        Ok(chain)
    }
}

/// The subject of registry key root certificates (the bundle's).
pub const CERT_NAME: &str = "tollgate registry token signer";
/// The subject of the certificates in `x5c` headers.
const LEAF_NAME: &str = "tollgate registry token";
/// How long registry key certificates are valid (ten years; the key rotates long before).
pub const CERT_LIFE: i64 = 10 * 365 * 86_400;
