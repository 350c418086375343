//! `application/x-www-form-urlencoded` bodies, parsed strictly for OAuth endpoints.
//!
//! Unlike a lenient form parser this refuses what RFC 6749 forbids or what would hide a
//! bug: a parameter sent twice (§3.2), invalid UTF-8 after percent-decoding, a wrong
//! Content-Type, a body over the limit. Each refusal is a 4xx with its own reason.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use tollgate_core::Reason;

/// Parameters of a form body, in order, each name at most once unless read with [`Form::all`].
#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses a body already known to be a form.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for part in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Self { pairs })
    }

    /// The single value of `name`; an empty value counts as absent (RFC 6749 §3.1).
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut found = self.pairs.iter().filter(|(k, _)| k == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(ApiError::new(
                Reason::DuplicateParameter,
                format!("parameter `{name}` must not be sent more than once"),
            ));
        }
        Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
    }

    /// The single value of a required parameter.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.one(name)?.ok_or_else(|| {
            ApiError::new(
                Reason::MissingParameter,
                format!("parameter `{name}` is required"),
            )
        })
    }

    /// Every non-empty value of a repeatable parameter (`resource`, `audience`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn decode(raw: &[u8]) -> Result<String, ApiError> {
    let plus_as_space: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| {
            ApiError::new(
                Reason::InvalidUtf8,
                "a form parameter is not valid UTF-8 after percent-decoding",
            )
        })
}

/// Checks that the request's Content-Type is `expected` (parameters such as charset allowed).
pub fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            Reason::UnsupportedContentType,
            format!(
                "Content-Type must be {expected}, got `{}`",
                if ct.is_empty() { "(none)" } else { ct }
            ),
        ))
    }
}

/// Reads the body up to the configured limit, mapping overflow to `body-too-large`.
pub async fn read_body(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| {
        ApiError::new(
            Reason::BodyTooLarge,
            format!("request body is larger than {limit} bytes"),
        )
    })
}

/// A form body together with the request headers (for client authentication).
#[derive(Debug)]
pub struct FormRequest {
    pub headers: HeaderMap,
    pub form: Form,
}

impl FromRequest<AppState> for FormRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        require_content_type(req.headers(), "application/x-www-form-urlencoded")?;
        let headers = req.headers().clone();
        let body = read_body(req, state.config.server.max_body_bytes).await?;
        Ok(Self {
            headers,
            form: Form::parse(&body)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        let f = Form::parse(b"scope=read+write&resource=https%3A%2F%2Fapi").expect("valid");
        assert_eq!(f.one("scope").expect("single"), Some("read write"));
        assert_eq!(f.one("resource").expect("single"), Some("https://api"));
    }

    #[test]
    fn duplicates_are_refused_for_single_parameters_only() {
        let f = Form::parse(b"grant_type=a&grant_type=b&resource=x&resource=y").expect("valid");
        assert_eq!(
            f.one("grant_type").expect_err("dup").reason,
            Reason::DuplicateParameter
        );
        assert_eq!(f.all("resource"), vec!["x", "y"]);
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert_eq!(
            Form::parse(b"a=%ff").expect_err("bad").reason,
            Reason::InvalidUtf8
        );
        assert_eq!(
            Form::parse(b"a=\xff").expect_err("bad").reason,
            Reason::InvalidUtf8
        );
    }

    #[test]
    fn empty_value_counts_as_absent() {
        let f = Form::parse(b"scope=&x").expect("valid");
        assert_eq!(f.one("scope").expect("single"), None);
        assert_eq!(
            f.required("scope").expect_err("missing").reason,
            Reason::MissingParameter
        );
    }
}
