//! Certificates: the CA chain, and client certificates for users and CI jobs.

use crate::authz::TokenCaller;
use crate::error::ApiError;
use crate::extract::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_proto::certs::{IssuedCertificate, SignCertificateRequest};

/// The CA chain that issued certificates verify against: the issuing CA, then the root (PEM).
#[utoipa::path(get, path = "/v1/ca/chain", tag = "certificates",
    responses((status = 200, content_type = "application/pem-certificate-chain", body = String), (status = 404, body = ErrorBody)))]
pub async fn chain(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pem = crate::certs::chain(&state)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pem-certificate-chain"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pem,
    )
        .into_response())
}

/// A client certificate (TLS client authentication) for the caller's own key: a user token
/// whose org role grants `certificate:sign:client`, or a CI job token whose trust policy grants
/// the `client` certificate profile. The
/// subject is the caller (`CN=<user id or job subject>, OU=user|ci, O=<org>`), never the
/// CSR's; the CSR's signature must verify, its key be P-256, P-384, Ed25519 or RSA ≥ 2048,
/// and it may carry no SANs. Lifetime: at most 90 min for people, 2 h for CI jobs and never
/// past the job token.
#[utoipa::path(post, path = "/v1/certificates/sign", tag = "certificates", security(("bearer" = [])),
    request_body = SignCertificateRequest,
    responses((status = 201, body = IssuedCertificate), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn sign(
    State(state): State<AppState>,
    caller: TokenCaller,
    JsonBody(req): JsonBody<SignCertificateRequest>,
) -> Result<(StatusCode, Json<IssuedCertificate>), ApiError> {
    let ttl = req
        .ttl
        .as_deref()
        .map(|t| {
            humantime::parse_duration(t)
                .map_err(|e| ApiError::new(Reason::InvalidParameter, format!("ttl `{t}`: {e}")))
        })
        .transpose()?;
    let issued = crate::certs::sign_client(&state, &caller.claims, &req.csr, ttl).await?;
    let now = state.clock.now().0;
    Ok((
        StatusCode::CREATED,
        Json(IssuedCertificate {
            certificate: issued.certificate_pem,
            chain: issued.chain_pem,
            serial: issued.serial,
            not_before: crate::rfc3339(issued.not_before),
            not_after: crate::rfc3339(issued.not_after),
            expires_in: u64::try_from(issued.not_after - now).unwrap_or(0),
            ca: issued.ca,
        }),
    ))
}
