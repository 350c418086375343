//! tollgate's few HTML pages (invite links, device verification, sign-in): one layout, no
//! scripts, a strict Content-Security-Policy, and refusals shown with their reason code.

use crate::error::ApiError;
pub use crate::mail::escape_html as escape;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use tollgate_core::Reason;

/// `s` form-urlencoded, for links between the pages (`return_to`, tokens, codes).
#[must_use]
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A complete page: `body_html` must be escaped by the caller.
#[must_use]
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em;line-height:1.5}}\
         dt{{font-weight:bold}}button{{font-size:1em;padding:.4em 1.2em;margin-right:1em}}</style>\
         </head><body><h1>{title}</h1>\n{body_html}\n</body></html>\n",
        title = escape(title),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Forms post only to this server; no page may frame these (clickjacking).
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
            // Links carry invite tokens and user codes: never to another site. Same-origin
            // (not no-referrer) so that the browser's `Origin` on our forms is our origin,
            // not `null`, for the anti-forgery check.
            (header::REFERRER_POLICY, "same-origin"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        html,
    )
        .into_response()
}

/// A refusal as a page: a title for the reason, the message, and the reason code. Internal
/// failures keep their JSON form (and their logging) through `ApiError`.
#[must_use]
pub fn refusal(e: &ApiError) -> Response {
    let (status, _) = crate::error::classify(e.reason);
    let title = match e.reason {
        Reason::InviteExpired => "Invite expired",
        Reason::InviteRedeemed => "Invite already used",
        Reason::InviteRevoked => "Invite revoked",
        Reason::InviteUnknown => "Unknown invite",
        Reason::UserCodeUnknown => "Unknown code",
        Reason::NotSignedIn | Reason::LoginStateInvalid | Reason::LoginFailed => "Sign-in failed",
        Reason::WebLoginDisabled => "Browser sign-in is not available",
        Reason::CsrfInvalid => "Form expired",
        _ => "Request refused",
    };
    let mut response = page(
        status,
        title,
        &format!(
            "<p>{}</p><p>{}</p><p><small>reason: <code>{}</code></small></p>",
            escape(&e.message),
            escape(e.reason.description()),
            e.reason.code()
        ),
    );
    if let Ok(v) = http::HeaderValue::from_str(e.reason.code()) {
        response.headers_mut().insert("x-tollgate-reason", v);
    }
    response
}

/// A page for `result`'s refusal, or the error itself when it is the server's failure
/// (5xx: logged and answered by `ApiError`).
pub fn or_refusal(result: Result<Response, ApiError>) -> Result<Response, ApiError> {
    match result {
        Ok(r) => Ok(r),
        // The upstream being down is worth a page; our own failures keep ApiError's logging.
        Err(e)
            if e.reason != Reason::IdpUnavailable && crate::error::classify(e.reason).0.is_server_error() =>
        {
            Err(e)
        }
        Err(e) => Ok(refusal(&e)),
    }
}
