//! `Authorization: Bearer …` tokens (RFC 6750 §2.1).

use axum::http::{HeaderMap, header};

/// The bearer token of `headers`, if the scheme is Bearer (case-insensitive).
#[must_use]
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}
