//! Verifying a token from an upstream issuer, step by step.
//!
//! The order is the security argument: the unverified `iss` picks one configured issuer;
//! that issuer's algorithm allowlist and keys (by `kid`) are the only ones tried; claims
//! are read only after the signature verified. Every step is reported to a [`Trace`], so
//! diagnostics show exactly where and why a token failed.
//!
//! Keys come from the caller (`resolve`), so this stays synchronous and testable; the
//! server's resolver reads its JWKS cache and refreshes it on an unknown `kid`.

use crate::jws::{UnverifiedJws, VerifyingKey};
use tollgate_core::upstream::claims::{check_claims, map_identity};
use tollgate_core::upstream::issuer::IssuerSet;
use tollgate_core::upstream::{Check, Claims, Issuer, Refusal, Trace, UpstreamIdentity};
use tollgate_core::{JwsAlg, Reason, UnixTime};

/// What a key resolver found for `(issuer, kid, alg)`.
#[derive(Debug)]
pub enum KeyLookup<'k> {
    Found(&'k VerifyingKey),
    /// The issuer publishes no usable key with that kid (for that algorithm).
    NotFound,
    /// The issuer's keys could not be had; the token cannot be judged.
    Unavailable(String),
}

/// A verified upstream token.
#[derive(Debug, Clone)]
pub struct Verified<'i> {
    pub issuer: &'i Issuer,
    pub claims: Claims,
    pub identity: UpstreamIdentity,
    pub kid: Option<String>,
    pub alg: JwsAlg,
}

/// Verifies `token` against the trusted `issuers` at `now`.
///
/// `resolve(issuer, kid, alg)` returns the issuer's key; `kid` is `None` when the token
/// names none (the resolver may then use the issuer's only key for `alg`).
pub fn verify_upstream<'i, 'k>(
    token: &str,
    max_len: usize,
    issuers: &'i IssuerSet,
    now: UnixTime,
    resolve: &mut dyn FnMut(&Issuer, Option<&str>, JwsAlg) -> KeyLookup<'k>,
    trace: &mut impl Trace,
) -> Result<Verified<'i>, Refusal> {
    if token.len() > max_len {
        let d = format!("token is {} bytes; the limit is {max_len}", token.len());
        trace.step(Check::Size, false, || d.clone());
        return Err(Refusal::new(Reason::TokenTooLarge, d));
    }
    trace.step(Check::Size, true, || format!("{} bytes", token.len()));
    let jws = UnverifiedJws::parse(token, max_len).map_err(|e| {
        trace.step(Check::Structure, false, || e.to_string());
        Refusal::new(e.reason(), e.to_string())
    })?;
    let header = jws.header().clone();
    let kid = header.kid.clone();
    let iss = jws
        .unverified_iss()
        .inspect_err(|r| trace.step(Check::Structure, false, || r.message.clone()))?;
    trace.step(Check::Structure, true, || {
        format!(
            "alg {}, kid {}, iss (unverified) {}",
            header.alg,
            kid.as_deref().unwrap_or("(none)"),
            iss.0
        )
    });
    let with_context = |mut r: Refusal, issuer: Option<&str>| {
        r.issuer = issuer.map(str::to_owned);
        r.kid.clone_from(&kid);
        r
    };

    let Some(issuer) = issuers.get(&iss.0) else {
        let d = unknown_issuer_message(&iss.0, issuers);
        trace.step(Check::Issuer, false, || d.clone());
        return Err(with_context(Refusal::new(Reason::UnknownIssuer, d), Some(&iss.0)));
    };
    trace.step(Check::Issuer, true, || {
        format!("`{}` is trusted as `{}`", issuer.issuer, issuer.name)
    });
    let refuse = |reason: Reason, d: String| with_context(Refusal::new(reason, d), Some(&issuer.issuer));
    if !issuer.enabled {
        let d = format!("issuer `{}` is disabled", issuer.name);
        trace.step(Check::IssuerEnabled, false, || d.clone());
        return Err(refuse(Reason::IssuerDisabled, d));
    }
    trace.step(Check::IssuerEnabled, true, || "enabled".into());

    let allowed: Vec<&str> = issuer.algorithms.iter().map(|a| a.as_str()).collect();
    let Some(alg) = issuer.allowed_alg(&header.alg) else {
        let d = format!(
            "alg `{}` is not allowed for `{}` (allowed: {})",
            header.alg,
            issuer.name,
            allowed.join(", ")
        );
        trace.step(Check::Algorithm, false, || d.clone());
        return Err(refuse(Reason::AlgNotAllowed, d));
    };
    trace.step(Check::Algorithm, true, || format!("{alg} is allowed"));

    let key = match resolve(issuer, kid.as_deref(), alg) {
        KeyLookup::Found(k) => k,
        KeyLookup::NotFound => {
            let d = match &kid {
                Some(k) => format!("`{}` publishes no {alg} key with kid `{k}`", issuer.name),
                None => format!(
                    "token has no kid and `{}` does not publish exactly one {alg} key",
                    issuer.name
                ),
            };
            trace.step(Check::Key, false, || d.clone());
            return Err(refuse(Reason::KidNotFound, d));
        }
        KeyLookup::Unavailable(why) => {
            let d = format!("keys of `{}` are unavailable: {why}", issuer.name);
            trace.step(Check::Key, false, || d.clone());
            return Err(refuse(Reason::JwksUnavailable, d));
        }
    };
    trace.step(Check::Key, true, || format!("found key `{}`", key.kid()));

    let payload = jws.verify(key).map_err(|e| {
        trace.step(Check::Signature, false, || e.to_string());
        refuse(e.reason(), e.to_string())
    })?;
    trace.step(Check::Signature, true, || "signature verifies".into());

    let verified = |r: Refusal| Refusal {
        after_signature: true,
        ..refuse(r.reason, r.message)
    };
    let claims = Claims::from_verified_payload(&payload).map_err(verified)?;
    check_claims(issuer, &claims, now, trace).map_err(verified)?;
    let identity = map_identity(issuer, &claims, trace).map_err(verified)?;
    Ok(Verified {
        issuer,
        claims,
        identity,
        kid,
        alg,
    })
}

fn unknown_issuer_message(iss: &str, issuers: &IssuerSet) -> String {
    let trimmed = iss.trim_end_matches('/');
    let near = issuers.iter().find(|i| i.issuer.trim_end_matches('/') == trimmed);
    match near {
        Some(i) => format!(
            "iss `{iss}` is not trusted; `{}` is (issuers match exactly, check the trailing slash)",
            i.issuer
        ),
        None => format!("iss `{iss}` is not a trusted issuer"),
    }
}
