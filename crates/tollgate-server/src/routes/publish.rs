//! The combined publish flow (`/v1/publish/…`): a signed-in user and a CI runner together
//! obtain one token that names both. The protocol, step by step, is in `docs/ci.md`.
//!
//! `init` is the user's (a user access token with `packages:publish` in its org). The
//! runner's steps authenticate inside: `attest` with the runner's OIDC token and the
//! session's nonce, the others with the runner secret `attest` returned. `finalize` and the
//! session view also accept the session's user.

use crate::audit::AuditEvent;
use crate::authz::Me;
use crate::error::ApiError;
use crate::extract::bearer::bearer_token;
use crate::extract::json::JsonBody;
use crate::publish::{self, count, refused};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use tollgate_core::Reason;
use tollgate_core::authz::{self, Requirement};
use tollgate_core::claims::{Actor, PUBLISH_TOKEN_TYP, PublishClaim, PublishTokenClaims};
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::trust::{AttestedWorkload, Outcome, PublishSession, PublishState};
use tollgate_core::upstream::NoTrace;
use tollgate_proto::ErrorBody;
use tollgate_proto::ci::{
    CombinedTokenResponse, PublishAttestRequest, PublishAttestResponse, PublishFinalizeRequest,
    PublishInitRequest, PublishInitResponse, PublishSessionInfo, PublishStatusRequest, PublishStatusUpdate,
};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::InvalidParameter, message)
}

/// Text a person typed: 1..=`max` characters, no control characters.
fn text(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{name} must be 1–{max} characters without control characters"
        )));
    }
    Ok(())
}

fn info(s: &PublishSession, now: tollgate_core::UnixTime) -> PublishSessionInfo {
    let workload = s.workload.as_ref().map(|w| {
        let mut m = std::collections::BTreeMap::new();
        m.insert("issuer".to_owned(), w.issuer.clone());
        m.insert("subject".to_owned(), w.subject.clone());
        m.insert("policy".to_owned(), w.policy.clone());
        for (k, v) in [
            ("repository", &w.repository),
            ("ref", &w.git_ref),
            ("workflow_ref", &w.workflow_ref),
            ("run_id", &w.run_id),
        ] {
            if let Some(v) = v {
                m.insert(k.to_owned(), v.clone());
            }
        }
        m
    });
    PublishSessionInfo {
        session_id: s.id.clone(),
        package: s.package.clone(),
        version: s.version.clone(),
        user: s.user_id.clone(),
        org: s.org_id.clone(),
        state: s.state.as_str().to_owned(),
        expired: s.state != PublishState::Finalized && now >= s.expires_at,
        expires_at: crate::rfc3339(s.expires_at.0),
        workload,
        status: s
            .status
            .iter()
            .map(|u| PublishStatusUpdate {
                at: crate::rfc3339(u.at.0),
                status: u.status.clone(),
                message: u.message.clone(),
            })
            .collect(),
        outcome: s.finalization.as_ref().map(|f| {
            match f.outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed => "failed",
                Outcome::Cancelled => "cancelled",
            }
            .to_owned()
        }),
        finalized_by: s.finalization.as_ref().map(|f| f.by.clone()),
    }
}

fn event(s: &PublishSession, actor: &str, action: &str) -> AuditEvent {
    let mut e = AuditEvent::new(actor, action).target(&s.id);
    e.org_id.clone_from(&s.org_id);
    e
}

/// Start a publish session. Needs a user access token whose org grants `packages:publish`.
/// Hand the session id and the nonce to the CI job (e.g. as workflow inputs).
#[utoipa::path(post, path = "/v1/publish/init", tag = "publish", security(("bearer" = [])),
    request_body = PublishInitRequest,
    responses((status = 201, body = PublishInitResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn init(
    State(state): State<AppState>,
    me: Me,
    JsonBody(req): JsonBody<PublishInitRequest>,
) -> Result<(StatusCode, Json<PublishInitResponse>), ApiError> {
    let result = init_session(&state, &me, &req).await;
    count(&state, "init", result.as_ref().map(|_| ()).map_err(|e| e.reason));
    Ok((StatusCode::CREATED, Json(result?)))
}

async fn init_session(
    state: &AppState,
    me: &Me,
    req: &PublishInitRequest,
) -> Result<PublishInitResponse, ApiError> {
    text("package", &req.package, 200)?;
    text("version", &req.version, 100)?;
    let Some(org_id) = me.claims.org.as_deref() else {
        return Err(ApiError::new(
            Reason::PermissionDenied,
            "publishing happens in an org: exchange for a token with org=<name> first",
        ));
    };
    let org = state
        .store
        .find_org(org_id)
        .await?
        .ok_or_else(|| ApiError::new(Reason::OrgNotMember, "the token's org no longer exists"))?;
    let active = crate::orgs::membership(state, &org, &me.user.id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Reason::OrgNotMember,
                "you are no longer a member of the token's org",
            )
        })?;
    if let Err(d) = authz::decide(Requirement::All(&["packages:publish"]), &active.permissions) {
        let e = ApiError::new(Reason::PermissionDenied, d.to_string());
        let event = AuditEvent::new(format!("user:{}", me.user.id), "publish.init")
            .org(&org.id)
            .denied(e.reason)
            .detail(json!({"package": req.package, "version": req.version}));
        crate::audit::record_event(state, event).await?;
        return Err(e);
    }
    let now = state.clock.now();
    let nonce = publish::new_nonce();
    let session = PublishSession {
        id: publish::new_id(),
        user_id: me.user.id.clone(),
        org_id: Some(org.id.clone()),
        package: req.package.clone(),
        version: req.version.clone(),
        nonce_hash: publish::hash_secret(state, &nonce),
        created_at: now,
        expires_at: now.plus(state.config.publish.session_ttl),
        state: PublishState::Pending,
        workload: None,
        runner_secret_hash: None,
        combined_jti: None,
        status: Vec::new(),
        finalization: None,
    };
    publish::create(state, &session).await?;
    let detail =
        json!({"package": session.package, "version": session.version, "expires_at": session.expires_at});
    crate::audit::record_event(
        state,
        event(&session, &format!("user:{}", me.user.id), "publish.init").detail(detail),
    )
    .await?;
    Ok(PublishInitResponse {
        session_id: session.id,
        nonce,
        expires_at: crate::rfc3339(session.expires_at.0),
    })
}

/// The runner attests: its OIDC token must match a trust policy of the session's org that
/// allows publishing the session's package. Each OIDC token is accepted once; of two
/// attestations of one session exactly one wins.
#[utoipa::path(post, path = "/v1/publish/attest", tag = "publish",
    request_body = PublishAttestRequest,
    responses((status = 200, body = PublishAttestResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn attest(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PublishAttestRequest>,
) -> Result<Json<PublishAttestResponse>, ApiError> {
    let result = attest_session(&state, &req).await;
    count(
        &state,
        "attest",
        result.as_ref().map(|_| ()).map_err(|e| e.reason),
    );
    result.map(Json)
}

async fn attest_session(
    state: &AppState,
    req: &PublishAttestRequest,
) -> Result<PublishAttestResponse, ApiError> {
    let (ver, session) = publish::load(state, &req.session_id).await?;
    if !publish::secret_matches(state, &session.nonce_hash, &req.nonce) {
        return Err(ApiError::new(
            Reason::PublishNonceMismatch,
            "the nonce is not this session's; pass session_id and nonce from init unchanged",
        ));
    }
    // Cheap refusals first: a session that cannot be attested does not burn the CI token.
    let mut probe = session.clone();
    let now = state.clock.now();
    probe
        .attest(now, placeholder_workload(now), String::new())
        .map_err(|e| refused(&e))?;
    let token = state
        .upstream
        .verify(req.token.trim(), &mut NoTrace)
        .await
        .map_err(ApiError::refused_token)?;
    let (judgement, policy) = crate::workloads::admit(
        state,
        &token,
        session.org_id.as_deref(),
        Some(&session.package),
        "publish.attest",
    )
    .await?;
    let w = &judgement.workload;
    let attested = AttestedWorkload {
        issuer: w.issuer.clone(),
        iss: w.iss.clone(),
        subject: w.subject.clone(),
        policy: policy.name.clone(),
        repository: w.attribute("repository").map(str::to_owned),
        git_ref: w.attribute("ref").map(str::to_owned),
        workflow_ref: w
            .attribute("job_workflow_ref")
            .or_else(|| w.attribute("workflow_ref"))
            .map(str::to_owned),
        run_id: w.attribute("run_id").map(str::to_owned),
        attested_at: now,
    };
    let runner_secret = secret_token::mint(SecretKind::PublishRunner, tollgate_crypto::random_byte_source());
    let runner_hash = publish::hash_secret(state, &runner_secret);
    let (session, ()) = publish::update(state, (ver, session.clone()), |s| {
        s.attest(state.clock.now(), attested.clone(), runner_hash.clone())
            .map_err(|e| refused(&e))
    })
    .await?;
    let detail = json!({"policy": policy.name, "workload": w.attributes, "package": session.package, "version": session.version});
    crate::audit::record_event(
        state,
        event(&session, &crate::workloads::actor(w), "publish.attest").detail(detail),
    )
    .await?;
    Ok(PublishAttestResponse {
        session_id: session.id,
        runner_secret,
        policy: policy.name.clone(),
    })
}

fn placeholder_workload(now: tollgate_core::UnixTime) -> AttestedWorkload {
    AttestedWorkload {
        issuer: String::new(),
        iss: String::new(),
        subject: String::new(),
        policy: String::new(),
        repository: None,
        git_ref: None,
        workflow_ref: None,
        run_id: None,
        attested_at: now,
    }
}

/// Who called a runner-or-user step.
enum Party {
    Runner,
    User(String),
}

impl Party {
    fn name(&self) -> &'static str {
        match self {
            Party::Runner => "runner",
            Party::User(_) => "user",
        }
    }
}

/// Refuses a call without any bearer before the session is looked up, so anonymous callers
/// learn nothing about which session ids exist.
fn require_bearer(headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer_token(headers) {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            Reason::PublishAuthFailed,
            "send the runner secret from attest (or the session's user's access token) as a bearer token",
        )
        .with_challenge("Bearer realm=\"tollgate\"")),
    }
}

/// Authenticates the bearer for `session`: its runner secret, or (when `user_ok`) an access
/// token of its user.
async fn party(
    state: &AppState,
    headers: &HeaderMap,
    session: &PublishSession,
    user_ok: bool,
) -> Result<Party, ApiError> {
    let failed = || {
        ApiError::new(
            Reason::PublishAuthFailed,
            if user_ok {
                "send the runner secret from attest, or an access token of the session's user, as a bearer token"
            } else {
                "send the runner secret from attest as a bearer token"
            },
        )
        .with_challenge("Bearer realm=\"tollgate\"")
    };
    let token = bearer_token(headers).ok_or_else(failed)?;
    if token.starts_with(SecretKind::PublishRunner.prefix()) {
        let ok = secret_token::check(SecretKind::PublishRunner, token).is_ok()
            && session
                .runner_secret_hash
                .as_deref()
                .is_some_and(|h| publish::secret_matches(state, h, token));
        return if ok { Ok(Party::Runner) } else { Err(failed()) };
    }
    if !user_ok {
        return Err(failed());
    }
    match crate::tokens::verify_live(state, token).await? {
        Ok(c)
            if c.user_ver.is_some()
                && c.sub == session.user_id
                && c.aud == state.config.users.api_audience =>
        {
            Ok(Party::User(c.sub))
        }
        _ => Err(failed()),
    }
}

/// `?session_id=`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct SessionQuery {
    pub session_id: String,
}

/// The combined token, once per session, for the runner (runner secret as bearer). It names
/// the user (`sub`) and the workload (`act`); its lifetime is `publish.token_ttl` at most
/// and never past the session's end.
#[utoipa::path(get, path = "/v1/publish/combined", tag = "publish", params(SessionQuery), security(("runner" = [])),
    responses((status = 200, body = CombinedTokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn combined(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<CombinedTokenResponse>, ApiError> {
    let result = combined_token(&state, &headers, query).await;
    count(
        &state,
        "combined",
        result.as_ref().map(|_| ()).map_err(|e| e.reason),
    );
    result.map(Json)
}

async fn combined_token(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<CombinedTokenResponse, ApiError> {
    require_bearer(headers)?;
    let Query(q) = query.map_err(|e| ApiError::new(Reason::MissingParameter, e.body_text()))?;
    let (ver, session) = publish::load(state, &q.session_id).await?;
    party(state, headers, &session, false).await?;
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let (session, ()) = publish::update(state, (ver, session.clone()), |s| {
        s.issue_combined(state.clock.now(), jti.clone())
            .map_err(|e| refused(&e))
    })
    .await?;
    let Some(w) = session.workload.clone() else {
        return Err(ApiError::internal(&std::io::Error::other(
            "attested session without workload",
        )));
    };
    let now = state.clock.now();
    let ttl = state
        .config
        .publish
        .token_ttl
        .min(publish::time_left(state, &session));
    let claims = PublishTokenClaims {
        iss: state.config.server.public_url.clone(),
        sub: session.user_id.clone(),
        aud: state.config.publish.audience.clone(),
        iat: now,
        nbf: now,
        exp: now.plus(ttl),
        jti: jti.clone(),
        org: session.org_id.clone(),
        act: Actor {
            sub: w.subject.clone(),
            iss: w.iss.clone(),
            act: None,
        },
        publish: PublishClaim {
            session: session.id.clone(),
            package: session.package.clone(),
            version: session.version.clone(),
            policy: w.policy.clone(),
            repository: w.repository.clone(),
            git_ref: w.git_ref.clone(),
            workflow_ref: w.workflow_ref.clone(),
            run_id: w.run_id.clone(),
        },
    };
    let keys = state.keys.snapshot();
    let key = keys.signer(crate::keyring::ACCESS).ok_or_else(|| {
        ApiError::unavailable(&crate::keyring::KeyError::InvalidState(
            "no active access-token key".into(),
        ))
    })?;
    let token =
        tollgate_crypto::jws::sign(key, PUBLISH_TOKEN_TYP, &claims).map_err(|e| ApiError::internal(&e))?;
    state
        .metrics
        .tokens_issued
        .get_or_create(&crate::metrics::KindLabel { kind: "publish" })
        .inc();
    let detail = json!({"aud": claims.aud, "exp": claims.exp, "package": session.package, "version": session.version, "workload": w.subject});
    crate::audit::record_event(
        state,
        event(
            &session,
            &format!("ci:{}:{}", w.issuer, w.subject),
            "publish.combined",
        )
        .credential(&jti)
        .detail(detail),
    )
    .await?;
    Ok(CombinedTokenResponse {
        token,
        expires_in: ttl.as_secs(),
        audience: claims.aud,
    })
}

/// Progress from the runner (runner secret as bearer).
#[utoipa::path(post, path = "/v1/publish/status", tag = "publish", request_body = PublishStatusRequest, security(("runner" = [])),
    responses((status = 200, body = PublishSessionInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PublishStatusRequest>,
) -> Result<Json<PublishSessionInfo>, ApiError> {
    require_bearer(&headers)?;
    text("status", &req.status, 64)?;
    if req.message.chars().count() > 1000 || req.message.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid("message must be at most 1000 characters"));
    }
    let (ver, session) = publish::load(&state, &req.session_id).await?;
    party(&state, &headers, &session, false).await?;
    let result = publish::update(&state, (ver, session.clone()), |s| {
        s.report(state.clock.now(), req.status.clone(), req.message.clone())
            .map_err(|e| refused(&e))
    })
    .await;
    count(
        &state,
        "status",
        result.as_ref().map(|_| ()).map_err(|e| e.reason),
    );
    Ok(Json(info(&result?.0, state.clock.now())))
}

/// End the session, once: by the runner (runner secret) or the session's user (access
/// token). `succeeded` needs an attested session; `failed` and `cancelled` end any open one.
#[utoipa::path(post, path = "/v1/publish/finalize", tag = "publish", security(("runner" = []), ("bearer" = [])),
    request_body = PublishFinalizeRequest,
    responses((status = 200, body = PublishSessionInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn finalize(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PublishFinalizeRequest>,
) -> Result<Json<PublishSessionInfo>, ApiError> {
    require_bearer(&headers)?;
    let outcome = match req.outcome.as_str() {
        "succeeded" => Outcome::Succeeded,
        "failed" => Outcome::Failed,
        "cancelled" => Outcome::Cancelled,
        other => {
            return Err(invalid(format!(
                "outcome `{other}`: use succeeded, failed or cancelled"
            )));
        }
    };
    if req.message.chars().count() > 1000 {
        return Err(invalid("message must be at most 1000 characters"));
    }
    let (ver, session) = publish::load(&state, &req.session_id).await?;
    let by = party(&state, &headers, &session, true).await?;
    let result = publish::update(&state, (ver, session.clone()), |s| {
        s.finalize(state.clock.now(), outcome, by.name(), req.message.clone())
            .map_err(|e| refused(&e))
    })
    .await;
    count(
        &state,
        "finalize",
        result.as_ref().map(|_| ()).map_err(|e| e.reason),
    );
    let (session, ()) = result?;
    let actor = match &by {
        Party::User(id) => format!("user:{id}"),
        Party::Runner => session.workload.as_ref().map_or_else(
            || "runner".to_owned(),
            |w| format!("ci:{}:{}", w.issuer, w.subject),
        ),
    };
    let detail = json!({"outcome": req.outcome, "package": session.package, "version": session.version});
    crate::audit::record_event(&state, event(&session, &actor, "publish.finalize").detail(detail)).await?;
    Ok(Json(info(&session, state.clock.now())))
}

/// A publish session, for its user (access token) or its runner (runner secret).
#[utoipa::path(get, path = "/v1/publish/sessions/{id}", tag = "publish", security(("runner" = []), ("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = PublishSessionInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<PublishSessionInfo>, ApiError> {
    require_bearer(&headers)?;
    let (_, session) = publish::load(&state, &id).await?;
    party(&state, &headers, &session, true).await?;
    Ok(Json(info(&session, state.clock.now())))
}
