//! Client credentials as presented: HTTP Basic (`client_secret_basic`) or form fields
//! (`client_secret_post`), never both.

use crate::error::ApiError;
use crate::extract::form::Form;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use secrecy::SecretString;
use tollgate_core::Reason;

/// The challenge sent with every `invalid_client` answer.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"tollgate\", charset=\"UTF-8\"";

/// A client id and secret as presented; the secret is not yet checked.
#[derive(Debug)]
pub struct PresentedClient {
    pub client_id: String,
    pub secret: SecretString,
}

fn failed(message: &str) -> ApiError {
    ApiError::new(Reason::ClientAuthFailed, message).with_challenge(BASIC_CHALLENGE)
}

/// The credentials of `headers` + `form`, or `None` when the request carries none.
pub fn presented_client(headers: &HeaderMap, form: &Form) -> Result<Option<PresentedClient>, ApiError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim());
    let post_secret = form.one("client_secret")?;
    match (basic, post_secret) {
        (Some(_), Some(_)) => Err(ApiError::new(
            Reason::ClientAuthAmbiguous,
            "use either HTTP Basic or client_secret in the body, not both",
        )),
        (Some(b64), None) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| failed("HTTP Basic credentials are not valid base64"))?;
            let raw = String::from_utf8(raw).map_err(|_| failed("HTTP Basic credentials are not UTF-8"))?;
            let (id, secret) = raw
                .split_once(':')
                .ok_or_else(|| failed("HTTP Basic credentials lack a `:`"))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            let id = url_decode(id)?;
            let secret = url_decode(secret)?;
            if let Some(form_id) = form.one("client_id")?
                && form_id != id
            {
                return Err(failed("client_id in the body differs from the HTTP Basic user"));
            }
            Ok(Some(PresentedClient {
                client_id: id,
                secret: SecretString::from(secret),
            }))
        }
        (None, Some(secret)) => {
            let id = form
                .one("client_id")?
                .ok_or_else(|| failed("client_secret sent without client_id"))?;
            Ok(Some(PresentedClient {
                client_id: id.to_owned(),
                secret: SecretString::from(secret.to_owned()),
            }))
        }
        (None, None) => Ok(None),
    }
}

/// Like [`presented_client`] but credentials are required.
pub fn require_client(headers: &HeaderMap, form: &Form) -> Result<PresentedClient, ApiError> {
    presented_client(headers, form)?.ok_or_else(|| {
        ApiError::new(
            Reason::ClientAuthMissing,
            "authenticate the client with HTTP Basic or client_secret_post",
        )
        .with_challenge(BASIC_CHALLENGE)
    })
}

fn url_decode(s: &str) -> Result<String, ApiError> {
    let plus: String = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| failed("HTTP Basic credentials are not valid UTF-8 after decoding"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn basic(user: &str, pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {v}").parse().expect("header"),
        );
        h
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let c = presented_client(&basic("my%20client", "a%3Ab"), &Form::default())
            .expect("ok")
            .expect("some");
        assert_eq!(c.client_id, "my client");
        assert_eq!(c.secret.expose_secret(), "a:b");
    }

    #[test]
    fn both_methods_at_once_are_refused() {
        let form = Form::parse(b"client_id=x&client_secret=y").expect("form");
        let err = presented_client(&basic("x", "y"), &form).expect_err("ambiguous");
        assert_eq!(err.reason, Reason::ClientAuthAmbiguous);
    }

    #[test]
    fn post_credentials_need_an_id() {
        let form = Form::parse(b"client_secret=y").expect("form");
        assert_eq!(
            presented_client(&HeaderMap::new(), &form)
                .expect_err("no id")
                .reason,
            Reason::ClientAuthFailed
        );
    }

    #[test]
    fn missing_credentials_challenge_for_basic() {
        let err = require_client(&HeaderMap::new(), &Form::default()).expect_err("missing");
        assert_eq!(err.reason, Reason::ClientAuthMissing);
        assert_eq!(err.challenge(), Some(BASIC_CHALLENGE));
    }
}
