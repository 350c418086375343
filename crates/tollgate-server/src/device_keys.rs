//! Device keys at run time: key enrollment with proof of possession, and the RFC 7523 JWT
//! bearer grant (`urn:ietf:params:oauth:grant-type:jwt-bearer`) by which a registered key
//! gets tokens without a browser.
//!
//! **Enrollment.** A signed-in user asks for a key-enrollment token (`tg_ket_…`, KET) and a
//! nonce (`POST /v1/keys/bootstrap`). The KET is stored nowhere: a short-lived document in
//! the ephemeral store (Redis or the database) is keyed by its keyed hash, and holds the
//! user, their `user_ver`, the device name, a keyed hash of the nonce, and whether it was
//! used. The device registers its public key (`POST /v1/keys/register`, the KET as bearer)
//! with a proof of possession: a JWS by the key over the nonce and the KET's SHA-256
//! ([`tollgate_crypto::device_key`]). The KET is spent by compare-and-swap before the key is
//! stored, so a KET registers at most one key; the user's `user_ver` must not have moved
//! since bootstrap (a logout-everywhere in between voids the KET).
//!
//! **Assertions.** A JWS by the key with `kid` = key id, `iss` = `sub` = key id, `aud` = the
//! token endpoint (or the issuer URL), a short `exp` (at most `device_keys.assertion_max_age`
//! away) and a `jti` accepted once (the replay cache, like CI tokens). The answer is what a
//! session refresh gives the key's user (their `user_ver`, org and roles read now), and a
//! new session whose client id is `key:<id>`.
//!
//! **Revocation** revokes the key and, in the same transaction, the live sessions it
//! started; access tokens of `key:<id>` are refused from then on (`tokens::verify_live`), and
//! a refresh of such a session re-checks the key.

use crate::audit::AuditEvent;
use crate::authz::Me;
use crate::error::ApiError;
use crate::extract::bearer::bearer_token;
use crate::extract::form::Form;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use tollgate_core::authz::{self, Requirement};
use tollgate_core::claims::UpstreamSubject;
use tollgate_core::client_grant::{self, ClientPolicy, ClientRequest, GrantLimits};
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::{Audience, JwsAlg, Reason, Scope, UnixTime};
use tollgate_crypto::device_key::{PROOF_TYP, ProofClaims, ket_hash};
use tollgate_crypto::{Jwk, JwsError, UnverifiedJws, VerifyingKey};
use tollgate_proto::keys::{KeyBootstrapResponse, KeyRegisterRequest, UserKeyInfo};
use tollgate_proto::oauth::TokenResponse;
use tollgate_store::{SessionRecord, StoreError, UserKeyCreate, UserKeyRecord, UserRecord};

pub use tollgate_crypto::device_key::JWT_BEARER_GRANT as GRANT_TYPE;

/// Document kind of key enrollments (id: keyed hash of the KET).
const KIND: &str = "key-enrollment";
/// Replay-cache namespace of assertion `jti`s.
const JTI_NAMESPACE: &str = "key-jti";
/// Enrollments stay readable this long after they expire, so a late device learns
/// "expired" rather than "unknown".
const KEEP_AFTER_EXPIRY: Duration = Duration::from_secs(3600);
/// Longest proof accepted (a proof is under 400 bytes).
const MAX_PROOF_BYTES: usize = 4096;
/// Longest `jti` accepted.
const MAX_JTI: usize = 256;

/// The client id of tokens and sessions a device key obtained.
#[must_use]
pub fn client_id(key_id: &str) -> String {
    format!("key:{key_id}")
}

/// The key id of a `key:<id>` client id.
#[must_use]
pub fn key_of_client(client_id: &str) -> Option<&str> {
    client_id.strip_prefix("key:")
}

/// A key enrollment, as stored (never the KET or the nonce themselves).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrollment {
    /// Public id (`ke_…`) for audit events.
    pub id: String,
    pub user_id: String,
    /// The user's version at bootstrap; registration needs it still current.
    pub user_ver: i64,
    pub device_name: String,
    /// Keyed hash of the nonce (`crate::publish::hash_secret`).
    pub nonce_hash: String,
    /// The enrolling sign-in's scope and upstream subject: what the key's tokens may carry.
    pub scope: String,
    pub upstream: Option<UpstreamSubject>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub key_id: Option<String>,
}

/// An enrollment found by its KET: document id, version, content, and the SHA-256 of the
/// KET that was presented (what the proof must sign).
#[derive(Debug, Clone)]
pub struct LoadedEnrollment {
    doc_id: String,
    ver: i64,
    pub enrollment: Enrollment,
    ket_hash: String,
}

fn corrupt(what: &str, e: &dyn std::fmt::Display) -> ApiError {
    ApiError::unavailable(&StoreError::Corrupt(format!("{what}: {e}")))
}

/// Whether `name` is an acceptable device name: 1–64 characters, no control characters,
/// not blank.
#[must_use]
pub fn valid_device_name(name: &str) -> bool {
    (1..=64).contains(&name.chars().count()) && !name.trim().is_empty() && !name.chars().any(char::is_control)
}

fn active_keys(keys: &[UserKeyRecord]) -> usize {
    keys.iter().filter(|k| k.revoked_at.is_none()).count()
}

fn limit_reached(max: u32) -> ApiError {
    ApiError::new(
        Reason::KeyLimit,
        format!("you have {max} active device keys (device_keys.max_keys_per_user); revoke one first"),
    )
}

/// `POST /v1/keys/bootstrap`: a new enrollment for the signed-in user's device.
pub async fn bootstrap(
    state: &AppState,
    me: &Me,
    device_name: &str,
) -> Result<KeyBootstrapResponse, ApiError> {
    if !valid_device_name(device_name) {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "device_name must be 1–64 characters without control characters",
        ));
    }
    let actor = format!("user:{}", me.user.id);
    if key_of_client(&me.claims.client_id).is_some() {
        // A stolen device key must not be able to plant further keys that outlive it.
        let e = ApiError::new(
            Reason::PermissionDenied,
            "a device key's token cannot enroll keys; enroll from a sign-in of the user",
        );
        let event = AuditEvent::new(&actor, "key.enroll.bootstrap")
            .credential(&me.claims.jti)
            .denied(e.reason)
            .detail(json!({"client_id": me.claims.client_id}));
        crate::audit::record_event(state, event).await?;
        return Err(e);
    }
    let max = state.config.device_keys.max_keys_per_user;
    if active_keys(&state.store.user_keys_of(&me.user.id).await?) >= max as usize {
        return Err(limit_reached(max));
    }
    let now = state.clock.now();
    let ttl = state.config.device_keys.enrollment_ttl;
    let ket = secret_token::mint(SecretKind::KeyEnrollment, tollgate_crypto::random_byte_source());
    let nonce = crate::publish::new_nonce();
    let enrollment = Enrollment {
        id: secret_token::mint_id("ke_", tollgate_crypto::random_byte_source()),
        user_id: me.user.id.clone(),
        user_ver: me.user.user_ver,
        device_name: device_name.to_owned(),
        nonce_hash: crate::publish::hash_secret(state, &nonce),
        scope: me.claims.scope.clone(),
        upstream: me.claims.upstream.clone(),
        created_at: now.0,
        expires_at: now.plus(ttl).0,
        used_at: None,
        key_id: None,
    };
    let doc = serde_json::to_string(&enrollment).map_err(|e| corrupt("key enrollment", &e))?;
    let (v, h) = state.hashing.hasher().hash(&ket);
    let keep_until = UnixTime(enrollment.expires_at).plus(KEEP_AFTER_EXPIRY).0;
    state
        .ephemeral
        .create_doc(KIND, &crate::documents::keyed_id(v, &h), &doc, keep_until, now.0)
        .await?;
    let mut event = AuditEvent::new(&actor, "key.enroll.bootstrap")
        .target(&enrollment.id)
        .credential(&me.claims.jti)
        .detail(json!({"device_name": device_name, "expires_at": enrollment.expires_at}));
    event.org_id.clone_from(&me.claims.org);
    crate::audit::record_event(state, event).await?;
    Ok(KeyBootstrapResponse {
        id: enrollment.id,
        ket,
        nonce,
        expires_in: ttl.as_secs(),
    })
}

async fn get(state: &AppState, doc_id: &str) -> Result<Option<(i64, Enrollment)>, ApiError> {
    crate::documents::load(state, KIND, doc_id).await
}

const KET_CHALLENGE: &str = "Bearer realm=\"tollgate\", error=\"invalid_token\"";

/// The enrollment of a presented KET (under any server-secret version).
pub async fn by_ket(state: &AppState, ket: &str) -> Result<LoadedEnrollment, ApiError> {
    let unknown = |m: &str| ApiError::new(Reason::KeyEnrollmentTokenUnknown, m).with_challenge(KET_CHALLENGE);
    if secret_token::check(SecretKind::KeyEnrollment, ket).is_err() {
        return Err(unknown(
            "send the key-enrollment token (tg_ket_…) from POST /v1/keys/bootstrap as the bearer token; this is not one (or it is mistyped)",
        ));
    }
    for (v, h) in state.hashing.hasher().all_hashes(ket) {
        let id = crate::documents::keyed_id(v, &h);
        if let Some((ver, enrollment)) = get(state, &id).await? {
            return Ok(LoadedEnrollment {
                doc_id: id,
                ver,
                enrollment,
                ket_hash: ket_hash(ket),
            });
        }
    }
    Err(unknown("unknown key-enrollment token"))
}

/// The caller of `POST /v1/keys/register`: whoever holds a KET. Authenticated before the
/// body is read; the route is public (no user session needed), so no decision is recorded.
#[derive(Debug)]
pub struct KetCaller(pub LoadedEnrollment);

impl FromRequestParts<AppState> for KetCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ket = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::new(
                Reason::TokenMissing,
                "send the key-enrollment token (tg_ket_…) as `Authorization: Bearer …`",
            )
            .with_challenge("Bearer realm=\"tollgate\"")
        })?;
        by_ket(state, ket).await.map(KetCaller)
    }
}

/// A checked public JWK: the key's algorithm, a verifier, the public members only, and the
/// RFC 7638 thumbprint.
struct PublicKey {
    alg: JwsAlg,
    verifier: VerifyingKey,
    jwk: Jwk,
    thumbprint: String,
}

fn invalid_key(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::PublicKeyInvalid, message)
}

/// Members that only private (or symmetric) JWKs have (RFC 7518 §6).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn public_key(value: &serde_json::Value) -> Result<PublicKey, ApiError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid_key("public_jwk must be a JWK (a JSON object)"))?;
    if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(invalid_key(format!(
            "public_jwk has the private member `{m}`: send only the public key, and replace this key pair, whose private part has left the device"
        )));
    }
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match obj.get(name) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid_key(format!("public_jwk.{name} must be a string"))),
        }
    };
    let kty = text("kty")?.ok_or_else(|| invalid_key("public_jwk has no kty"))?;
    let crv = text("crv")?;
    let alg = match (kty.as_str(), crv.as_deref()) {
        ("OKP", Some("Ed25519")) => JwsAlg::EdDSA,
        ("EC", Some("P-256")) => JwsAlg::ES256,
        (kty, crv) => {
            return Err(ApiError::new(
                Reason::PublicKeyUnsupported,
                format!(
                    "only Ed25519 (kty OKP) and P-256 (kty EC) keys can be registered; this is kty {kty}{}",
                    crv.map(|c| format!(", crv {c}")).unwrap_or_default()
                ),
            ));
        }
    };
    if let Some(a) = text("alg")?
        && a != alg.as_str()
    {
        return Err(invalid_key(format!(
            "public_jwk.alg is {a}, but a {} key signs {alg}",
            crv.as_deref().unwrap_or_default()
        )));
    }
    if let Some(u) = text("use")?
        && u != "sig"
    {
        return Err(invalid_key("public_jwk.use must be sig (or absent)"));
    }
    let jwk = Jwk {
        kty,
        crv,
        x: text("x")?,
        y: if alg == JwsAlg::ES256 { text("y")? } else { None },
        n: None,
        e: None,
        kid: None,
        alg: None,
        use_: None,
    };
    let verifier = VerifyingKey::from_jwk(alg, &jwk)
        .map_err(|e| invalid_key(format!("public_jwk is not a valid public key: {e}")))?;
    let thumbprint = jwk
        .thumbprint()
        .map_err(|e| invalid_key(format!("public_jwk: {e}")))?;
    Ok(PublicKey {
        alg,
        verifier,
        jwk,
        thumbprint,
    })
}

fn bad_proof(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::ProofOfPossessionInvalid, message)
}

/// Checks the proof of possession: signed by `key`, over this enrollment's nonce and KET.
fn check_proof(
    state: &AppState,
    loaded: &LoadedEnrollment,
    key: &PublicKey,
    proof: &str,
    now: UnixTime,
) -> Result<(), ApiError> {
    let jws = UnverifiedJws::parse(proof, MAX_PROOF_BYTES)
        .map_err(|e| bad_proof(format!("the proof is not a compact JWS: {e}")))?;
    if jws.header().typ.as_deref() != Some(PROOF_TYP) {
        return Err(bad_proof(format!("the proof's typ must be `{PROOF_TYP}`")));
    }
    let payload = jws.verify(&key.verifier).map_err(|e| match e {
        JwsError::AlgNotAllowed(a) => bad_proof(format!(
            "the proof's alg is {a}; this key signs {}",
            key.alg.as_str()
        )),
        JwsError::InvalidSignature => bad_proof(
            "the proof's signature does not verify with public_jwk: it was not made by this key's private key",
        ),
        other => bad_proof(format!("the proof is not a compact JWS: {other}")),
    })?;
    let claims: ProofClaims = serde_json::from_slice(&payload)
        .map_err(|_| bad_proof("the proof's payload must be {\"nonce\": …, \"ket_hash\": …, \"iat\": …}"))?;
    let e = &loaded.enrollment;
    if !crate::publish::secret_matches(state, &e.nonce_hash, &claims.nonce) {
        return Err(bad_proof(
            "the proof signs another nonce than the one this enrollment was given",
        ));
    }
    if claims.ket_hash != loaded.ket_hash {
        return Err(bad_proof(
            "the proof's ket_hash is not the SHA-256 of the key-enrollment token presented",
        ));
    }
    let leeway = state.config.tokens.leeway;
    if claims.iat > now.plus(leeway).0 {
        return Err(bad_proof("the proof's iat is in the future"));
    }
    if claims.iat < UnixTime(e.created_at).minus(leeway).0 {
        return Err(bad_proof("the proof's iat is older than the enrollment"));
    }
    Ok(())
}

/// Spends the KET by compare-and-swap: of concurrent registrations exactly one gets on.
async fn consume(
    state: &AppState,
    loaded: &LoadedEnrollment,
    key_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    let gone = || {
        ApiError::new(
            Reason::KeyEnrollmentTokenUnknown,
            "the enrollment ended meanwhile",
        )
    };
    let current = (loaded.ver, loaded.enrollment.clone());
    crate::documents::update(
        state,
        KIND,
        &loaded.doc_id,
        current,
        gone,
        |e: &mut Enrollment| {
            if e.used_at.is_some() {
                return Err(used());
            }
            e.used_at = Some(now);
            e.key_id = Some(key_id.to_owned());
            Ok(())
        },
    )
    .await?;
    Ok(())
}

fn used() -> ApiError {
    ApiError::new(
        Reason::KeyEnrollmentTokenUsed,
        "this key-enrollment token registered a key already; ask for a new one",
    )
}

/// `POST /v1/keys/register`: checks the key and its proof, spends the KET, stores the key.
/// Every refusal of a KET holder is audited (`key.register`).
pub async fn register(
    state: &AppState,
    loaded: &LoadedEnrollment,
    req: &KeyRegisterRequest,
) -> Result<UserKeyRecord, ApiError> {
    let e = &loaded.enrollment;
    let actor = format!("user:{}", e.user_id);
    match try_register(state, loaded, req).await {
        Ok(key) => {
            let detail = json!({
                "enrollment": e.id, "device_name": key.device_name, "alg": key.alg,
                "thumbprint": key.thumbprint,
            });
            let event = AuditEvent::new(&actor, "key.register")
                .target(&key.id)
                .detail(detail);
            crate::audit::record_event(state, event).await?;
            Ok(key)
        }
        Err(err) => {
            let detail = json!({"enrollment": e.id, "device_name": e.device_name, "why": err.message});
            let event = AuditEvent::new(&actor, "key.register")
                .target(&e.id)
                .denied(err.reason)
                .detail(detail);
            crate::audit::record_event(state, event).await?;
            Err(err)
        }
    }
}

async fn try_register(
    state: &AppState,
    loaded: &LoadedEnrollment,
    req: &KeyRegisterRequest,
) -> Result<UserKeyRecord, ApiError> {
    let e = &loaded.enrollment;
    let now = state.clock.now();
    if e.used_at.is_some() {
        return Err(used());
    }
    if now.0 >= e.expires_at {
        return Err(ApiError::new(
            Reason::KeyEnrollmentTokenExpired,
            "the key-enrollment token expired; ask for a new one",
        )
        .with_challenge(KET_CHALLENGE));
    }
    let key = public_key(&req.public_jwk)?;
    check_proof(state, loaded, &key, &req.proof, now)?;
    match state.store.get_user(&e.user_id).await? {
        Some(u) if u.disabled_at.is_some() => {
            return Err(ApiError::new(Reason::UserDisabled, "the user has been disabled"));
        }
        Some(u) if u.user_ver != e.user_ver => {
            return Err(ApiError::new(
                Reason::UserVersionStale,
                "the user logged out everywhere (or was disabled) since this enrollment began; start again",
            ));
        }
        Some(_) => {}
        None => {
            return Err(ApiError::new(
                Reason::KeyEnrollmentTokenUnknown,
                "the enrolling user has been deleted",
            ));
        }
    }
    if state
        .store
        .user_key_by_thumbprint(&key.thumbprint)
        .await?
        .is_some()
    {
        return Err(already_registered());
    }
    let max = state.config.device_keys.max_keys_per_user;
    if active_keys(&state.store.user_keys_of(&e.user_id).await?) >= max as usize {
        return Err(limit_reached(max));
    }
    let public_jwk = serde_json::to_string(&key.jwk).map_err(|err| ApiError::internal(&err))?;
    let record = UserKeyRecord {
        id: secret_token::mint_id("uk_", tollgate_crypto::random_byte_source()),
        user_id: e.user_id.clone(),
        device_name: e.device_name.clone(),
        alg: key.alg.as_str().to_owned(),
        public_jwk,
        thumbprint: key.thumbprint,
        scope: e.scope.clone(),
        upstream: serde_json::to_string(&e.upstream).map_err(|err| ApiError::internal(&err))?,
        created_at: now.0,
        last_used_at: None,
        revoked_at: None,
    };
    // Spent first: a KET registers at most one key, even if storing it then fails (only
    // a concurrent registration of the same key or past the limit can make it fail).
    consume(state, loaded, &record.id, now.0).await?;
    match state.store.create_user_key(&record, max).await {
        Ok(UserKeyCreate::Created) => Ok(record),
        Ok(UserKeyCreate::LimitReached { .. }) => Err(limit_reached(max)),
        Err(StoreError::Conflict(_)) => Err(already_registered()),
        Err(other) => Err(other.into()),
    }
}

fn already_registered() -> ApiError {
    ApiError::new(
        Reason::KeyAlreadyRegistered,
        "this public key is registered already; generate a new key pair for this device",
    )
}

/// A key as the API shows it.
#[must_use]
pub fn info(k: UserKeyRecord) -> UserKeyInfo {
    let mut public_jwk: serde_json::Value = serde_json::from_str(&k.public_jwk).unwrap_or_default();
    if let Some(obj) = public_jwk.as_object_mut() {
        obj.insert("kid".into(), k.id.clone().into());
        obj.insert("alg".into(), k.alg.clone().into());
    }
    UserKeyInfo {
        id: k.id,
        user_id: k.user_id,
        device_name: k.device_name,
        alg: k.alg,
        thumbprint: k.thumbprint,
        public_jwk,
        created_at: crate::rfc3339(k.created_at),
        last_used_at: k.last_used_at.map(crate::rfc3339),
        revoked_at: k.revoked_at.map(crate::rfc3339),
    }
}

/// Revokes a key and the sessions it started, audited as `actor`; false if it was revoked
/// already.
pub async fn revoke(state: &AppState, key: &UserKeyRecord, actor: &str) -> Result<bool, ApiError> {
    let Some(sessions) = state
        .store
        .revoke_user_key(
            &key.id,
            &client_id(&key.id),
            Reason::KeyRevoked.code(),
            state.clock.now().0,
        )
        .await?
    else {
        return Ok(false);
    };
    let detail = json!({"user": key.user_id, "device_name": key.device_name, "sessions": sessions});
    let event = AuditEvent::new(actor, "key.revoke")
        .target(&key.id)
        .detail(detail);
    crate::audit::record_event(state, event).await?;
    Ok(true)
}

/// Whether the key behind a `key:<id>` client id is still registered and unrevoked (for
/// access tokens and sessions it obtained).
pub async fn key_is_live(state: &AppState, key_id: &str) -> Result<bool, ApiError> {
    Ok(state
        .store
        .get_user_key(key_id)
        .await?
        .is_some_and(|k| k.revoked_at.is_none()))
}

/// For a session a device key started: the reason it must end if the key was revoked.
pub async fn session_refusal(state: &AppState, session: &SessionRecord) -> Result<Option<Reason>, ApiError> {
    match key_of_client(&session.client_id) {
        Some(key_id) if !key_is_live(state, key_id).await? => Ok(Some(Reason::KeyRevoked)),
        _ => Ok(None),
    }
}

/// A refusal of an assertion on the token endpoint (`invalid_grant`).
fn refused(reason: Reason, message: impl Into<String>) -> ApiError {
    ApiError::new(reason, message).as_invalid_grant()
}

/// RFC 7523 §2.2: `client_assertion_type` of a JWT client assertion.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Handles `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1).
pub async fn token(state: &AppState, form: &Form) -> Result<TokenResponse, ApiError> {
    let assertion = form.required("assertion")?;
    by_assertion(state, form, assertion, "token.jwt_bearer")
        .await
        .map(|(resp, _)| resp)
        .map_err(ApiError::as_invalid_grant)
}

/// Handles `grant_type=client_credentials` from a device key authenticating as the client
/// `key:<id>` with `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): the same
/// assertion rules and the same answer as the JWT bearer grant; refusals are
/// `401 invalid_client`.
pub async fn client_credentials(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<TokenResponse, ApiError> {
    let refuse = |reason: Reason, m: &str| ApiError::new(reason, m.to_owned()).as_invalid_client();
    if form.required("client_assertion_type")? != CLIENT_ASSERTION_TYPE {
        return Err(refuse(
            Reason::InvalidParameter,
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    if headers.contains_key(header::AUTHORIZATION) || form.one("client_secret")?.is_some() {
        return Err(refuse(
            Reason::ClientAuthAmbiguous,
            "a client assertion authenticates the client alone; send no HTTP Basic or client_secret with it",
        ));
    }
    let assertion = form.required("client_assertion")?;
    // RFC 7523 §3: a client_id sent along must be the assertion's (the device key's).
    let named = form.one("client_id")?;
    let response = by_assertion(state, form, assertion, "token.private_key_jwt").await;
    match (response, named) {
        (Err(e), _) => Err(e.as_invalid_client()),
        (Ok((_, key_id)), Some(id)) if id != client_id(&key_id) && id != key_id => Err(refuse(
            Reason::ClientAuthFailed,
            "client_id differs from the client assertion's key",
        )),
        (Ok((resp, _)), _) => Ok(resp),
    }
}

/// Verifies `assertion` by the device key its `kid` names and answers as the key's user;
/// audited as `action` either way. The answer and the key id.
async fn by_assertion(
    state: &AppState,
    form: &Form,
    assertion: &str,
    action: &str,
) -> Result<(TokenResponse, String), ApiError> {
    let jws = UnverifiedJws::parse(assertion, state.config.tokens.max_token_bytes)
        .map_err(|e| refused(e.reason(), format!("assertion: {e}")))?;
    let Some(kid) = jws.header().kid.clone() else {
        return Err(refused(
            Reason::AssertionInvalid,
            "the assertion's header has no kid; it must name the device key (uk_…)",
        ));
    };
    let key = match state.store.get_user_key(&kid).await {
        Ok(Some(k)) => k,
        Ok(None) => {
            return Err(refused(
                Reason::KeyUnknown,
                "the assertion's kid names no registered device key",
            ));
        }
        // PostgreSQL refuses NUL in text: no key has such an id.
        Err(StoreError::InvalidInput(_)) => {
            return Err(refused(
                Reason::KeyUnknown,
                "the assertion's kid names no registered device key",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let jwk: Jwk = serde_json::from_str(&key.public_jwk).map_err(|e| corrupt("device key", &e))?;
    let alg = match key.alg.as_str() {
        "EdDSA" => JwsAlg::EdDSA,
        "ES256" => JwsAlg::ES256,
        other => return Err(corrupt("device key alg", &other)),
    };
    let verifier = VerifyingKey::from_jwk(alg, &jwk).map_err(|e| corrupt("device key", &e))?;
    let payload = jws.verify(&verifier).map_err(|e| {
        refused(
            e.reason(),
            format!("assertion: {e} (with device key {kid}, alg {})", key.alg),
        )
    })?;
    // From here on the presenter holds the key: refusals are audited.
    let result = grant(state, form, &key, &payload, action).await;
    let actor = client_id(&key.id);
    match result {
        Ok((resp, event)) => {
            crate::audit::record_event(state, event).await?;
            Ok((resp, key.id))
        }
        Err(e) => {
            // A rate-limited request is only counted.
            if e.reason != Reason::RateLimited {
                let detail = json!({"user": key.user_id, "device_name": key.device_name, "why": e.message});
                let event = AuditEvent::new(&actor, action)
                    .target(&key.id)
                    .denied(e.reason)
                    .detail(detail);
                crate::audit::record_event(state, event).await?;
            }
            Err(e)
        }
    }
}

/// The checked claims of an assertion.
struct Assertion {
    exp: i64,
    jti: String,
}

fn check_claims(state: &AppState, kid: &str, payload: &[u8], now: UnixTime) -> Result<Assertion, ApiError> {
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload)
        .map_err(|_| refused(Reason::Malformed, "the assertion's payload is not a JSON object"))?;
    let missing = |name: &str, what: &str| {
        refused(
            Reason::ClaimMissing,
            format!("the assertion has no {name} ({what})"),
        )
    };
    let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    let iss = text("iss").ok_or_else(|| missing("iss", "the key id"))?;
    let sub = text("sub").ok_or_else(|| missing("sub", "the key id"))?;
    if iss != kid || sub != kid {
        return Err(refused(
            Reason::AssertionInvalid,
            format!("iss and sub must both be the key id `{kid}` named by kid"),
        ));
    }
    let token_endpoint = format!("{}/oauth/token", state.config.server.public_url);
    let issuer = &state.config.server.public_url;
    let auds: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.as_str()],
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(serde_json::Value::as_str).collect(),
        _ => return Err(missing("aud", "the token endpoint URL")),
    };
    if !auds.iter().any(|a| *a == token_endpoint || a == issuer) {
        return Err(refused(
            Reason::AudMismatch,
            format!("the assertion's aud must be {token_endpoint} (or {issuer}); it is {auds:?}"),
        ));
    }
    let exp =
        number("exp").ok_or_else(|| missing("exp", "a time at most device_keys.assertion_max_age away"))?;
    let leeway = state.config.tokens.leeway;
    let max_age = state.config.device_keys.assertion_max_age;
    if UnixTime(exp).plus(leeway) <= now {
        return Err(refused(Reason::Expired, "the assertion has expired"));
    }
    if exp > now.plus(max_age).plus(leeway).0 {
        return Err(refused(
            Reason::AssertionTooLongLived,
            format!(
                "the assertion expires in {}s; at most {}s (device_keys.assertion_max_age) are accepted",
                now.seconds_until(UnixTime(exp)),
                max_age.as_secs()
            ),
        ));
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = number(name)
            && t > now.plus(leeway).0
        {
            return Err(refused(
                Reason::NotYetValid,
                format!("the assertion's {name} is in the future"),
            ));
        }
    }
    if let Some(iat) = number("iat")
        && UnixTime(iat).plus(max_age).plus(leeway) < now
    {
        return Err(refused(
            Reason::TokenTooOld,
            format!(
                "the assertion was made more than {}s ago (device_keys.assertion_max_age)",
                max_age.as_secs()
            ),
        ));
    }
    let jti = text("jti").ok_or_else(|| missing("jti", "a unique id; each assertion is accepted once"))?;
    if jti.is_empty() || jti.len() > MAX_JTI {
        return Err(refused(
            Reason::AssertionInvalid,
            format!("the assertion's jti must be 1–{MAX_JTI} characters"),
        ));
    }
    Ok(Assertion {
        exp,
        jti: jti.to_owned(),
    })
}

/// What the key's user gets: judged after the signature verified.
async fn grant(
    state: &AppState,
    form: &Form,
    key: &UserKeyRecord,
    payload: &[u8],
    action: &str,
) -> Result<(TokenResponse, AuditEvent), ApiError> {
    let now = state.clock.now();
    if key.revoked_at.is_some() {
        return Err(refused(
            Reason::KeyRevoked,
            format!("device key {} has been revoked; enroll a new one", key.id),
        ));
    }
    let assertion = check_claims(state, &key.id, payload, now)?;
    let user = match state.store.get_user(&key.user_id).await? {
        Some(u) if u.disabled_at.is_some() => {
            return Err(refused(Reason::UserDisabled, "the key's user has been disabled"));
        }
        Some(u) => u,
        None => return Err(refused(Reason::KeyUnknown, "the key's user has been deleted")),
    };
    let upstream: Option<UpstreamSubject> =
        serde_json::from_str(&key.upstream).map_err(|e| corrupt("device key upstream", &e))?;
    let (policy, refresh) = policy(state, key, upstream.as_ref())?;
    let api = Audience::parse(&state.config.users.api_audience).map_err(|e| ApiError::internal(&e))?;
    let request = ClientRequest {
        scope: crate::routes::oauth::requested_scope(form)?,
        audiences: crate::routes::oauth::requested_audiences(form)?,
    };
    let limits = GrantLimits {
        default_audience: api,
        access_ttl: state.config.tokens.access_ttl,
    };
    let grant = client_grant::decide(&policy, &request, &limits)
        .map_err(|d| ApiError::new(d.reason, format!("{} (what the key's sign-in allows)", d.message)))?;
    let issuer_name = upstream.as_ref().map(|u| u.name.as_str());
    let active = active_org(state, &user, form.one("org")?, issuer_name)
        .await
        .map_err(ApiError::as_invalid_grant)?;
    // Counted once the key proved itself, before the jti is spent: a limited request
    // changes nothing.
    let client_id = client_id(&key.id);
    crate::rate_limit::check_identity(state, &client_id).await?;
    let jti_key = tollgate_crypto::sha256_hex(format!("{}\0{}", key.id, assertion.jti).as_bytes());
    let until = UnixTime(assertion.exp).plus(state.config.tokens.leeway);
    if !state
        .ephemeral
        .first_use(JTI_NAMESPACE, &jti_key, until.0, now.0)
        .await?
    {
        return Err(refused(
            Reason::AssertionReplayed,
            "an assertion with this jti was accepted before; make a new one",
        ));
    }
    let (issued, refresh_token) =
        crate::sessions::sign_in_user(state, &user, &client_id, upstream, active, &grant, refresh).await?;
    let c = &issued.claims;
    state.store.touch_user_key(&key.id, now.0).await?;
    let detail = json!({
        "user": c.sub, "device_name": key.device_name, "aud": c.aud, "scope": c.scope,
        "roles": c.roles, "exp": c.exp, "refresh_token": refresh_token.is_some(),
    });
    let mut event = AuditEvent::new(&client_id, action)
        .target(&key.id)
        .credential(&c.jti)
        .detail(detail);
    event.org_id.clone_from(&c.org);
    let resp = crate::sessions::token_response(issued, &grant, refresh_token);
    Ok((resp, event))
}

/// What the key's tokens may carry: what the enrolling sign-in's issuer grants today (it
/// must still be trusted and enabled), or without an upstream sign-in that sign-in's scope;
/// tollgate's API audience always. The second value: whether sessions are allowed.
fn policy(
    state: &AppState,
    key: &UserKeyRecord,
    upstream: Option<&UpstreamSubject>,
) -> Result<(ClientPolicy, bool), ApiError> {
    let api = Audience::parse(&state.config.users.api_audience).map_err(|e| ApiError::internal(&e))?;
    let (mut policy, refresh) = match upstream {
        Some(up) => {
            let view = state.upstream.registry().current();
            let issuer = view
                .set
                .iter()
                .find(|i| i.name == up.name && i.issuer == up.iss && i.enabled)
                .ok_or_else(|| {
                    refused(
                        Reason::IssuerDisabled,
                        format!(
                            "issuer `{}`, which signed in the user who enrolled this key, is disabled or no longer trusted",
                            up.name
                        ),
                    )
                })?;
            (issuer.grant.clone(), issuer.refresh_tokens)
        }
        None => (
            ClientPolicy {
                allowed_scope: Scope::parse(&key.scope).unwrap_or_default(),
                allowed_audiences: Vec::new(),
            },
            true,
        ),
    };
    policy.allowed_audiences.retain(|a| *a != api);
    policy.allowed_audiences.insert(0, api);
    Ok((policy, refresh))
}

/// The org the key's token acts in: the `org` parameter, else the user's only membership,
/// else none; the user must be a member with `tokens:exchange`, in an org that accepts the
/// enrolling sign-in's issuer.
async fn active_org(
    state: &AppState,
    user: &UserRecord,
    requested: Option<&str>,
    issuer: Option<&str>,
) -> Result<Option<crate::orgs::ActiveOrg>, ApiError> {
    let org = match requested {
        Some(r) => r.to_owned(),
        None => {
            let mut all = state.store.memberships_of(&user.id).await?;
            if all.len() != 1 {
                return Ok(None);
            }
            all.remove(0).org_id
        }
    };
    let active = crate::orgs::resolve_for_session(state, Some(&org), &user.id, issuer).await?;
    if issuer.is_none()
        && let Some(a) = &active
    {
        // resolve_for_session checks this only with an issuer.
        authz::decide(Requirement::All(&["tokens:exchange"]), &a.permissions)
            .map_err(|d| ApiError::new(Reason::PermissionDenied, format!("in org `{}`: {d}", a.org.name)))?;
    }
    Ok(active)
}
