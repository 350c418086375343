//! Discovery: JWKS and authorization server metadata.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate_proto::discovery::ServerMetadata;

/// The public signing keys (RFC 7517), with a strong ETag and `Cache-Control: max-age`.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "discovery",
    responses(
        (status = 200, description = "JWK Set", content_type = "application/jwk-set+json"),
        (status = 304, description = "Unchanged since the ETag in If-None-Match"),
    )
)]
pub async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let snapshot = state.keys.snapshot();
    let (body, etag) = snapshot.jwks();
    let cache = format!("public, max-age={}", state.config.keys.jwks_max_age.as_secs());
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*" || v.split(',').any(|t| t.trim() == etag));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/jwk-set+json")], body.clone()).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "Server metadata", body = ServerMetadata))
)]
pub async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    server_metadata(&state)
}

/// The same metadata for clients that look for OpenID discovery (tollgate issues no ID tokens yet).
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, description = "Server metadata", body = ServerMetadata))
)]
pub async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    server_metadata(&state)
}

fn server_metadata(state: &AppState) -> impl IntoResponse + use<> {
    let base = &state.config.server.public_url;
    let auth_methods = vec!["client_secret_basic".to_owned(), "client_secret_post".to_owned()];
    let body = ServerMetadata {
        issuer: base.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        token_endpoint: format!("{base}/oauth/token"),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        device_authorization_endpoint: format!("{base}/oauth/device_authorization"),
        grant_types_supported: [
            "client_credentials",
            crate::exchange::GRANT_TYPE,
            "refresh_token",
            crate::device::GRANT_TYPE,
            crate::device_keys::GRANT_TYPE,
        ]
        .map(str::to_owned)
        .to_vec(),
        // `none`: token exchange and the device grant need no client authentication;
        // `private_key_jwt`: device keys (RFC 7523 §2.2).
        token_endpoint_auth_methods_supported: [
            auth_methods.as_slice(),
            &["private_key_jwt".to_owned(), "none".to_owned()],
        ]
        .concat(),
        token_endpoint_auth_signing_alg_values_supported: vec!["EdDSA".to_owned(), "ES256".to_owned()],
        introspection_endpoint_auth_methods_supported: auth_methods.clone(),
        revocation_endpoint_auth_methods_supported: auth_methods,
        response_types_supported: vec![],
        service_documentation: format!("{base}/openapi.json"),
    };
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body))
}
