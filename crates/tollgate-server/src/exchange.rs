//! RFC 8693 token exchange: a token from a trusted upstream issuer in, a tollgate access
//! token out, carrying what the issuer's grant policy allows of what was asked.

use crate::audit::AuditEvent;
use crate::clients;
use crate::error::ApiError;
use crate::extract::client_auth::presented_client;
use crate::extract::form::Form;
use crate::state::AppState;
use crate::tokens::{self, Subject};
use crate::upstream::verifier::VerifiedToken;
use axum::http::HeaderMap;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_core::claims::{Actor, UpstreamSubject};
use tollgate_core::client_grant::{self, ClientRequest, Grant};
use tollgate_core::upstream::claims::check_policy;
use tollgate_core::upstream::{IssuerKind, NoTrace};
use tollgate_proto::oauth::TokenResponse;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Upstream tokens tollgate accepts as subject or actor: all are JWTs it verifies.
const INPUT_TYPES: [&str; 3] = [JWT_TYPE, ID_TOKEN_TYPE, ACCESS_TOKEN_TYPE];

fn token_type<'f>(form: &'f Form, name: &str) -> Result<&'f str, ApiError> {
    let t = form.required(name)?;
    if INPUT_TYPES.contains(&t) {
        Ok(t)
    } else {
        Err(ApiError::new(
            Reason::InvalidParameter,
            format!("{name} `{t}` is not supported; use …:jwt, …:id_token or …:access_token"),
        ))
    }
}

/// Verifies an upstream token (`role`: subject or actor) for the exchange. Refusals are
/// counted; those of tokens whose signature verified are also audited (before that point
/// anyone could have written the token, and auditing it would let anyone fill the trail).
async fn verify(
    state: &AppState,
    token: &str,
    role: &str,
    counted_as: Option<&VerifiedToken>,
) -> Result<VerifiedToken, ApiError> {
    let refusal = match state.upstream.verify(token, &mut NoTrace).await {
        Ok(v) => return Ok(v),
        Err(r) => r,
    };
    tracing::debug!(reason = %refusal.reason, issuer = ?refusal.issuer, role, "token exchange refused");
    count(state, counted_as, Some(refusal.reason));
    let view = state.upstream.registry().current();
    if let Some(issuer) = refusal
        .issuer
        .as_deref()
        .and_then(|iss| view.set.get(iss))
        .filter(|_| refusal.after_signature)
    {
        let detail = json!({"issuer": issuer.name, "role": role, "why": refusal.message});
        let actor = format!("upstream:{}", issuer.name);
        crate::audit::record(
            state,
            &actor,
            "token.exchange",
            None,
            Some(refusal.reason),
            detail,
        )
        .await?;
    }
    Err(ApiError::refused_token(refusal).as_invalid_grant())
}

/// Handles `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
pub async fn exchange(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<TokenResponse, ApiError> {
    // Client authentication is optional (browsers and CLIs exchange without a secret), but
    // credentials that are presented must be right.
    let client = match presented_client(headers, form)? {
        Some(p) => Some(clients::authenticate(state, &p).await?),
        None => None,
    };
    let subject_token = form.required("subject_token")?;
    token_type(form, "subject_token_type")?;
    if let Some(requested) = form.one("requested_token_type")?
        && requested != ACCESS_TOKEN_TYPE
        && requested != JWT_TYPE
    {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            format!(
                "requested_token_type `{requested}` is not supported; tollgate issues {ACCESS_TOKEN_TYPE}"
            ),
        ));
    }
    let actor_token = form.one("actor_token")?;
    match (actor_token, form.one("actor_token_type")?) {
        (Some(_), None) => {
            return Err(ApiError::new(
                Reason::MissingParameter,
                "actor_token needs actor_token_type",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::new(
                Reason::InvalidParameter,
                "actor_token_type without actor_token",
            ));
        }
        (Some(_), Some(_)) => {
            token_type(form, "actor_token_type")?;
        }
        (None, None) => {}
    }
    let request = ClientRequest {
        scope: crate::routes::oauth::requested_scope(form)?,
        audiences: crate::routes::oauth::requested_audiences(form)?,
    };

    let subject = verify(state, subject_token, "subject", None).await?;
    if subject.issuer.kind == IssuerKind::Workloads {
        return ci_exchange(state, &subject, actor_token.is_some(), form, &request).await;
    }
    let actor = match actor_token {
        Some(t) => Some(verify(state, t, "actor", Some(&subject)).await?),
        None => None,
    };
    let issuer = &subject.issuer;
    let actor_name = format!("upstream:{}:{}", issuer.name, subject.identity.subject);
    if let Err(refusal) = check_policy(issuer, &subject.claims, &mut NoTrace) {
        count(state, Some(&subject), Some(refusal.reason));
        let detail =
            json!({"issuer": issuer.name, "subject": subject.identity.subject, "why": refusal.message});
        crate::audit::record(
            state,
            &actor_name,
            "token.exchange",
            None,
            Some(refusal.reason),
            detail,
        )
        .await?;
        return Err(ApiError::new(refusal.reason, refusal.message).as_invalid_grant());
    }
    let limits = state.grant_limits()?;
    let grant: Grant = match client_grant::decide(&issuer.grant, &request, &limits) {
        Ok(g) => g,
        Err(denial) => {
            count(state, Some(&subject), Some(denial.reason));
            let detail = json!({"issuer": issuer.name, "subject": subject.identity.subject});
            crate::audit::record(
                state,
                &actor_name,
                "token.exchange",
                None,
                Some(denial.reason),
                detail,
            )
            .await?;
            return Err(ApiError::new(denial.reason, denial.message));
        }
    };
    // An exchanged token never outlives what it was exchanged for (subject or actor).
    let grant = clamp_to_upstream(grant, state.clock.now(), [Some(&subject), actor.as_ref()])?;
    let id = &subject.identity;
    let user = match crate::users::resolve_or_register(state, id).await {
        Ok(u) => u,
        Err(e) => {
            count(state, Some(&subject), Some(e.reason));
            let detail = json!({"issuer": issuer.name, "subject": id.subject});
            crate::audit::record(state, &actor_name, "token.exchange", None, Some(e.reason), detail).await?;
            return Err(e.as_invalid_grant());
        }
    };
    let active = match crate::orgs::resolve_for_exchange(state, &user, id, form.one("org")?).await {
        Ok(a) => a,
        Err(e) => {
            count(state, Some(&subject), Some(e.reason));
            let detail =
                json!({"issuer": issuer.name, "subject": id.subject, "user": user.id, "why": e.message});
            crate::audit::record(state, &actor_name, "token.exchange", None, Some(e.reason), detail).await?;
            return Err(e.as_invalid_grant());
        }
    };
    let token_subject = Subject {
        sub: user.id.clone(),
        user_ver: Some(user.user_ver),
        client_id: client.as_ref().map_or_else(
            || tokens::upstream_client_id(&issuer.name),
            |c| c.client_id.clone(),
        ),
        upstream: Some(UpstreamSubject::from(id)),
        act: actor.as_ref().map(|a| Actor {
            sub: a.identity.subject.clone(),
            iss: a.identity.issuer.clone(),
            act: None,
        }),
        org: active.as_ref().map(|a| a.org.id.clone()),
        roles: active.as_ref().map(|a| a.roles.clone()).unwrap_or_default(),
        ci: None,
    };
    let upstream = token_subject.upstream.clone();
    let client_id = token_subject.client_id.clone();
    let issued = tokens::issue(state, token_subject, &grant)?;
    let refresh_token = if issuer.refresh_tokens && actor.is_none() {
        let org_id = active.as_ref().map(|a| a.org.id.as_str());
        Some(crate::sessions::start(state, &user, &client_id, &grant, upstream.as_ref(), org_id).await?)
    } else {
        None
    };
    let c = &issued.claims;
    let detail = json!({
        "issuer": issuer.name, "subject": id.subject, "user": c.sub, "client_id": c.client_id, "aud": c.aud, "scope": c.scope,
        "exp": c.exp, "actor": actor.as_ref().map(|a| format!("{}:{}", a.issuer.name, a.identity.subject)),
    });
    let mut event = AuditEvent::new(&actor_name, "token.exchange")
        .target(&c.sub)
        .credential(&c.jti)
        .detail(detail);
    event.org_id.clone_from(&c.org);
    crate::audit::record_event(state, event).await?;
    count(state, Some(&subject), None);
    Ok(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_in: grant.ttl.as_secs(),
        scope: (!grant.scope.is_empty()).then(|| grant.scope.to_string()),
        refresh_token,
        issued_token_type: Some(ACCESS_TOKEN_TYPE.to_owned()),
    })
}

/// A CI job's OIDC token in, a job token out (no refresh token: the job asks again with a
/// fresh OIDC token), as the org's trust policies allow.
async fn ci_exchange(
    state: &AppState,
    subject: &VerifiedToken,
    has_actor: bool,
    form: &Form,
    request: &ClientRequest,
) -> Result<TokenResponse, ApiError> {
    if has_actor {
        return Err(ApiError::new(
            Reason::InvalidParameter,
            "a CI token is exchanged on its own; send no actor_token",
        ));
    }
    let result = crate::workloads::exchange(state, subject, form.one("org")?, request).await;
    count(state, Some(subject), result.as_ref().err().map(|e| e.reason));
    let (issued, grant) = result?;
    Ok(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_in: grant.ttl.as_secs(),
        scope: (!grant.scope.is_empty()).then(|| grant.scope.to_string()),
        refresh_token: None,
        issued_token_type: Some(ACCESS_TOKEN_TYPE.to_owned()),
    })
}

/// Counts an exchange by the subject's configured issuer (never a raw `iss`) and outcome.
fn count(state: &AppState, subject: Option<&VerifiedToken>, refused: Option<Reason>) {
    let issuer = subject.map_or_else(|| "(unverified)".to_owned(), |s| s.issuer.name.clone());
    let outcome = refused.map_or("ok", Reason::code);
    state
        .metrics
        .exchanges
        .get_or_create(&crate::metrics::UpstreamLabels { issuer, outcome })
        .inc();
}

/// Shortens the grant's lifetime to the earliest `exp` of the upstream tokens it rests on.
fn clamp_to_upstream<'a>(
    mut grant: Grant,
    now: tollgate_core::UnixTime,
    tokens: impl IntoIterator<Item = Option<&'a VerifiedToken>>,
) -> Result<Grant, ApiError> {
    for token in tokens.into_iter().flatten() {
        // Verified tokens always have a valid `exp` (the claim checks require one).
        let exp = token.claims.expires_at().ok().flatten().unwrap_or(now);
        let left = std::time::Duration::from_secs(now.seconds_until(exp));
        if left.is_zero() {
            // Accepted within the clock skew but already past `exp`: nothing left to grant.
            return Err(
                ApiError::new(Reason::Expired, "the upstream token expires now; get a fresh one")
                    .as_invalid_grant(),
            );
        }
        grant.ttl = grant.ttl.min(left);
    }
    Ok(grant)
}
