//! Certificates: the CA chain, and client certificates for users and CI jobs.

use crate::authz::{ServiceCaller, TokenCaller};
use crate::error::ApiError;
use crate::extract::admin::Admin;
use crate::extract::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_proto::certs::{
    CertificateRules, IssuedCertificate, SignCertificateRequest, SignServerCertificateRequest,
};
use tollgate_store::CertRulesRecord;

/// The CA chain that issued certificates verify against: the issuing CA, then the root (PEM).
#[utoipa::path(get, path = "/v1/ca/chain", tag = "certificates",
    responses((status = 200, content_type = "application/pem-certificate-chain", body = String), (status = 404, body = ErrorBody)))]
pub async fn chain(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pem = crate::certs::chain(&state).await?;
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
    let ttl = parse_ttl(req.ttl.as_deref())?;
    let issued = crate::certs::sign_client(&state, &caller.claims, &req.csr, ttl).await?;
    Ok(answer(&state, issued))
}

fn parse_ttl(ttl: Option<&str>) -> Result<Option<std::time::Duration>, ApiError> {
    ttl.map(|t| {
        humantime::parse_duration(t)
            .map_err(|e| ApiError::new(Reason::InvalidParameter, format!("ttl `{t}`: {e}")))
    })
    .transpose()
}

fn answer(state: &AppState, issued: crate::certs::Issued) -> (StatusCode, Json<IssuedCertificate>) {
    let now = state.clock.now().0;
    (
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
    )
}

/// A server certificate (TLS server authentication) for a service account whose token
/// carries the scope `certificate:sign:server`. Every DNS SAN must match one of the
/// account's patterns (`PUT /v1/admin/clients/{client_id}/certificate-rules`), compared as
/// IDNA A-labels at label boundaries with explicit wildcard depth (`san-not-allowed`,
/// `wildcard-depth`); IP SANs only when listed. Lifetime at most `certs.server_ttl` (6 days).
#[utoipa::path(post, path = "/v1/certificates/server", tag = "certificates", security(("bearer" = [])),
    request_body = SignServerCertificateRequest,
    responses((status = 201, body = IssuedCertificate), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn sign_server(
    State(state): State<AppState>,
    caller: ServiceCaller,
    JsonBody(req): JsonBody<SignServerCertificateRequest>,
) -> Result<(StatusCode, Json<IssuedCertificate>), ApiError> {
    let ttl = parse_ttl(req.ttl.as_deref())?;
    let issued = crate::certs::sign_server(&state, &caller.claims, &req.csr, ttl).await?;
    Ok(answer(&state, issued))
}

/// Set what a service account's server certificates may name (replacing earlier rules).
#[utoipa::path(put, path = "/v1/admin/clients/{client_id}/certificate-rules", tag = "admin", security(("admin" = [])),
    params(("client_id" = String, Path)), request_body = CertificateRules,
    responses((status = 200, body = CertificateRules), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_rules(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
    JsonBody(req): JsonBody<CertificateRules>,
) -> Result<Json<CertificateRules>, ApiError> {
    crate::clients::find(&state, &client_id).await?;
    let (dns, ips) = crate::certs::normalize_rules(&req.dns, &req.ips)?;
    let record = CertRulesRecord {
        client_id: client_id.clone(),
        dns_patterns: dns.clone(),
        ip_addresses: ips.clone(),
        updated_at: state.clock.now().0,
    };
    state.store.put_cert_rules(&record).await?;
    let detail = serde_json::json!({"dns": dns, "ips": ips});
    crate::audit::record(
        &state,
        &admin.actor(),
        "client.certificate_rules",
        Some(&client_id),
        None,
        detail,
    )
    .await?;
    Ok(Json(CertificateRules { dns, ips }))
}

/// A service account's certificate rules (empty when none are set).
#[utoipa::path(get, path = "/v1/admin/clients/{client_id}/certificate-rules", tag = "admin", security(("admin" = [])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = CertificateRules), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_rules(
    State(state): State<AppState>,
    _admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Json<CertificateRules>, ApiError> {
    crate::clients::find(&state, &client_id).await?;
    let rules = state.store.cert_rules(&client_id).await?;
    Ok(Json(rules.map_or_else(CertificateRules::default, |r| {
        CertificateRules {
            dns: r.dns_patterns,
            ips: r.ip_addresses,
        }
    })))
}

/// Envoy HTTP ext_authz (`gateway.enabled`): Envoy sends the original request's method and
/// path under this prefix, with `x-forwarded-client-cert`; the answer is 200 with
/// `x-tollgate-subject`, `x-tollgate-kind`, `x-tollgate-org` and `x-tollgate-serial` for
/// Envoy to pass upstream, or 403 with `x-tollgate-reason` (`client-cert-missing`,
/// `client-cert-invalid`, `route-not-allowed`).
#[utoipa::path(post, path = "/v1/gateway/authorize/{path}", tag = "certificates",
    params(("path" = String, Path, description = "The original request's path"), ("x-forwarded-client-cert" = Option<String>, Header)),
    responses((status = 200, description = "Allowed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn gateway_authorize(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    path: Option<Path<String>>,
) -> Result<Response, ApiError> {
    let path = path.map_or_else(|| "/".to_owned(), |Path(p)| format!("/{p}"));
    let xfcc = headers
        .get("x-forwarded-client-cert")
        .and_then(|v| v.to_str().ok());
    let leaf = crate::certs::gateway_decision(&state, peer.ip(), xfcc, &path).await?;
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    for (name, value) in [
        ("x-tollgate-subject", Some(leaf.common_name.as_str())),
        ("x-tollgate-kind", leaf.organizational_unit.as_deref()),
        ("x-tollgate-org", leaf.organization.as_deref()),
        ("x-tollgate-serial", Some(leaf.serial.as_str())),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(name, v);
        }
    }
    Ok(response)
}
