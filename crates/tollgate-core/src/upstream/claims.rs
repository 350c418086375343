//! Claims of upstream tokens: the one field read before verification, the checks run on
//! verified claims, and the identity they map to.

use super::issuer::Issuer;
use super::trace::{Check, Refusal, Trace};
use crate::reason::Reason;
use crate::time::UnixTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `iss` of a token whose signature has not been checked. It selects which issuer's
/// keys to try, and nothing else; it is a separate type so it cannot be mistaken for a
/// verified claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedIss(pub String);

impl UnverifiedIss {
    /// Reads `iss` from a decoded payload.
    pub fn read(payload: &[u8]) -> Result<Self, Refusal> {
        #[derive(serde::Deserialize)]
        struct OnlyIss {
            iss: Option<String>,
        }
        let parsed: OnlyIss = serde_json::from_slice(payload)
            .map_err(|_| Refusal::new(Reason::Malformed, "payload is not a JSON object"))?;
        parsed.iss.map(UnverifiedIss).ok_or_else(|| {
            Refusal::new(
                Reason::ClaimMissing,
                "token has no iss claim; cannot choose an issuer",
            )
        })
    }
}

/// The claims of a token whose signature verified with its issuer's key.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims(Map<String, Value>);

impl Claims {
    /// Wraps a verified payload. Only the verifier calls this, after the signature check.
    pub fn from_verified_payload(payload: &[u8]) -> Result<Self, Refusal> {
        match serde_json::from_slice(payload) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(Refusal::new(Reason::Malformed, "payload is not a JSON object")),
        }
    }

    /// The value at a dotted path (`o.id`).
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = self.0.get(parts.next()?)?;
        parts.try_fold(first, |v, p| v.get(p))
    }

    /// The first of `paths` present, as a string (numbers are written as decimal). Strings
    /// with NUL are skipped: they cannot be stored and no identity legitimately has one.
    #[must_use]
    pub fn first_string(&self, paths: &[String]) -> Option<String> {
        paths.iter().find_map(|p| match self.get(p)? {
            Value::String(s) if !s.is_empty() && !s.contains('\0') => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }

    fn time(&self, name: &str) -> Result<Option<UnixTime>, Refusal> {
        // NumericDate may be fractional (RFC 7519 §2); seconds are enough. Values outside
        // 1970..=9999 are refused so that no time arithmetic can overflow.
        const LATEST: i64 = 253_402_300_799;
        let bad = || {
            Refusal::new(
                Reason::Malformed,
                format!("{name} is not a NumericDate between 1970 and 9999"),
            )
        };
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let secs = n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0 && *f <= LATEST as f64)
                        .map(|f| f as i64)
                });
                match secs {
                    Some(t) if (0..=LATEST).contains(&t) => Ok(Some(UnixTime(t))),
                    _ => Err(bad()),
                }
            }
            Some(_) => Err(bad()),
        }
    }

    /// `exp`, parsed as a NumericDate.
    pub fn expires_at(&self) -> Result<Option<UnixTime>, Refusal> {
        self.time("exp")
    }

    /// The raw claims, for diagnostics.
    #[must_use]
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Runs every claim check of `issuer` on verified `claims` at `now`, recording each step.
pub fn check_claims(
    issuer: &Issuer,
    claims: &Claims,
    now: UnixTime,
    trace: &mut impl Trace,
) -> Result<(), Refusal> {
    let skew = secs(issuer.clock_skew);
    let exp = claims.time("exp")?;
    match exp {
        None => {
            return fail(
                trace,
                Check::Expiry,
                Reason::ClaimMissing,
                "token has no exp".into(),
            );
        }
        Some(exp) if now.0 >= exp.0.saturating_add(skew) => {
            let ago = now.0 - exp.0;
            return fail(
                trace,
                Check::Expiry,
                Reason::Expired,
                format!("expired {ago}s ago (skew allowed: {skew}s)"),
            );
        }
        Some(exp) => trace.step(Check::Expiry, true, || format!("expires in {}s", exp.0 - now.0)),
    }
    if let Some(nbf) = claims.time("nbf")? {
        if nbf.0 > now.0.saturating_add(skew) {
            let d = format!("not valid for another {}s (skew allowed: {skew}s)", nbf.0 - now.0);
            return fail(trace, Check::NotBefore, Reason::NotYetValid, d);
        }
        trace.step(Check::NotBefore, true, || "nbf is in the past".into());
    }
    let Some(iat) = claims.time("iat")? else {
        return fail(
            trace,
            Check::IssuedAt,
            Reason::ClaimMissing,
            "token has no iat".into(),
        );
    };
    if iat.0 > now.0.saturating_add(skew) {
        let d = format!(
            "issued {}s in the future (skew allowed: {skew}s); check the clocks",
            iat.0 - now.0
        );
        return fail(trace, Check::IssuedAt, Reason::NotYetValid, d);
    }
    trace.step(Check::IssuedAt, true, || format!("issued {}s ago", now.0 - iat.0));
    if let Some(max) = issuer.max_token_age {
        let age = now.0 - iat.0;
        if age > secs(max).saturating_add(skew) {
            let d = format!(
                "issued {age}s ago; this issuer accepts tokens up to {}s old",
                max.as_secs()
            );
            return fail(trace, Check::MaxAge, Reason::TokenTooOld, d);
        }
        trace.step(Check::MaxAge, true, || {
            format!("{age}s old, within {}s", max.as_secs())
        });
    }
    check_audience(issuer, claims, trace)?;
    check_azp(issuer, claims, trace)?;
    let missing: Vec<&str> = issuer
        .required_claims
        .iter()
        .filter(|c| claims.get(c).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let d = format!("missing required claims: {}", missing.join(", "));
        return fail(trace, Check::RequiredClaims, Reason::ClaimMissing, d);
    }
    trace.step(Check::RequiredClaims, true, || {
        "all required claims present".into()
    });
    Ok(())
}

fn fail(trace: &mut impl Trace, check: Check, reason: Reason, detail: String) -> Result<(), Refusal> {
    trace.step(check, false, || detail.clone());
    Err(Refusal::new(reason, detail))
}

fn check_audience(issuer: &Issuer, claims: &Claims, trace: &mut impl Trace) -> Result<(), Refusal> {
    let rule = &issuer.audience;
    let auds: Vec<&str> = match claims.get("aud") {
        None => vec![],
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).collect()
        }
        Some(_) => {
            return fail(
                trace,
                Check::Audience,
                Reason::Malformed,
                "aud is neither a string nor an array".into(),
            );
        }
    };
    if auds.is_empty() {
        if rule.required {
            let d = format!(
                "token has no aud; issuer `{}` requires one of: {}",
                issuer.name,
                rule.accepted.join(", ")
            );
            return fail(trace, Check::Audience, Reason::AudMissing, d);
        }
        trace.step(Check::Audience, true, || {
            "no aud, and this issuer does not require one".into()
        });
        return Ok(());
    }
    if let Some(hit) = auds.iter().find(|a| rule.accepted.iter().any(|x| x == *a)) {
        trace.step(Check::Audience, true, || format!("aud `{hit}` is accepted"));
        return Ok(());
    }
    let accepted = if rule.accepted.is_empty() {
        "(none: only tokens without aud)".to_owned()
    } else {
        rule.accepted.join(", ")
    };
    let d = format!("aud {auds:?} matches none of the accepted audiences: {accepted}");
    fail(trace, Check::Audience, Reason::AudMismatch, d)
}

fn check_azp(issuer: &Issuer, claims: &Claims, trace: &mut impl Trace) -> Result<(), Refusal> {
    if issuer.authorized_parties.is_empty() {
        return Ok(());
    }
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if issuer.authorized_parties.iter().any(|p| p == azp) => {
            trace.step(Check::AuthorizedParty, true, || format!("azp `{azp}` is allowed"));
            Ok(())
        }
        Some(azp) => {
            let d = format!(
                "azp `{azp}` is not one of: {}",
                issuer.authorized_parties.join(", ")
            );
            fail(trace, Check::AuthorizedParty, Reason::AzpNotAllowed, d)
        }
        None => fail(
            trace,
            Check::AuthorizedParty,
            Reason::ClaimMissing,
            "token has no azp, which this issuer checks".into(),
        ),
    }
}

/// Who a verified upstream token says its bearer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamIdentity {
    /// The issuer's configured name.
    pub issuer_name: String,
    /// The exact `iss`.
    pub issuer: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Maps verified claims to an identity with the issuer's claim mapping.
pub fn map_identity(
    issuer: &Issuer,
    claims: &Claims,
    trace: &mut impl Trace,
) -> Result<UpstreamIdentity, Refusal> {
    let m = &issuer.claims;
    let subject = claims
        .first_string(&m.subject)
        .filter(|s| !s.chars().any(char::is_control));
    let Some(subject) = subject else {
        let d = format!(
            "none of the subject claims ({}) is a non-empty string without control characters",
            m.subject.join(", ")
        );
        trace.step(Check::Identity, false, || d.clone());
        return Err(Refusal::new(Reason::ClaimMissing, d));
    };
    let roles = m
        .roles
        .iter()
        .find_map(|p| match claims.get(p)? {
            Value::Array(a) => Some(a.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
            Value::String(s) => Some(
                s.split([' ', ','])
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default();
    let identity = UpstreamIdentity {
        issuer_name: issuer.name.clone(),
        issuer: issuer.issuer.clone(),
        subject,
        email: claims.first_string(&m.email),
        org_id: claims.first_string(&m.org_id),
        org_role: claims.first_string(&m.org_role),
        roles,
    };
    trace.step(Check::Identity, true, || {
        format!(
            "subject `{}`{}",
            identity.subject,
            identity
                .org_id
                .as_ref()
                .map(|o| format!(", org `{o}`"))
                .unwrap_or_default()
        )
    });
    Ok(identity)
}

/// Checks the issuer's grant conditions (`grant.require`) on verified claims: every
/// condition must match, and the refusal names the first that does not.
pub fn check_policy(issuer: &Issuer, claims: &Claims, trace: &mut impl Trace) -> Result<(), Refusal> {
    for (claim, pattern) in &issuer.require {
        let values: Vec<String> = match claims.get(claim) {
            None => vec![],
            Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            Some(v) => scalar(v).into_iter().collect(),
        };
        if !values.iter().any(|v| crate::glob::matches(pattern, v)) {
            let shown = if values.is_empty() {
                "missing".to_owned()
            } else {
                format!("{values:?}")
            };
            let d = format!(
                "issuer `{}` requires claim `{claim}` to match `{pattern}`; the token's is {shown}",
                issuer.name
            );
            trace.step(Check::Policy, false, || d.clone());
            return Err(Refusal::new(Reason::PolicyDenied, d));
        }
    }
    if !issuer.require.is_empty() {
        trace.step(Check::Policy, true, || {
            format!("all {} grant conditions hold", issuer.require.len())
        });
    }
    Ok(())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::issuer::{IssuerSpec, Preset};
    use crate::upstream::trace::Report;
    use serde_json::json;

    fn clerk() -> Issuer {
        IssuerSpec {
            name: "clerk".into(),
            issuer: "https://clerk.example.com".into(),
            preset: Preset::Clerk,
            enabled: true,
            ..Default::default()
        }
        .resolve()
        .expect("valid")
    }

    fn with_aud(auds: &[&str], required: bool) -> Issuer {
        IssuerSpec {
            name: "oidc".into(),
            issuer: "https://idp.example.com".into(),
            audiences: auds.iter().map(|a| (*a).to_owned()).collect(),
            audience_required: Some(required),
            enabled: true,
            ..Default::default()
        }
        .resolve()
        .expect("valid")
    }

    fn claims(v: Value) -> Claims {
        Claims::from_verified_payload(v.to_string().as_bytes()).expect("object")
    }

    const NOW: UnixTime = UnixTime(1_000_000);

    fn check(i: &Issuer, c: Value) -> Result<Report, (Reason, Report)> {
        let mut r = Report::default();
        match check_claims(i, &claims(c), NOW, &mut r) {
            Ok(()) => Ok(r),
            Err(e) => Err((e.reason, r)),
        }
    }

    #[test]
    fn clerk_session_token_without_aud_passes() {
        let r = check(
            &clerk(),
            json!({"sub": "user_1", "sid": "sess_1", "iat": NOW.0 - 5, "nbf": NOW.0 - 5, "exp": NOW.0 + 55}),
        )
        .expect("accepted");
        assert!(r.steps.iter().all(|s| s.passed));
    }

    #[test]
    fn token_with_aud_is_refused_by_an_issuer_that_accepts_none() {
        let (reason, r) = check(
            &clerk(),
            json!({"sub": "u", "sid": "s", "aud": "other", "iat": NOW.0, "exp": NOW.0 + 60}),
        )
        .expect_err("aud present but none accepted");
        assert_eq!(reason, Reason::AudMismatch);
        assert!(
            r.steps
                .last()
                .expect("step")
                .detail
                .contains("only tokens without aud")
        );
    }

    #[test]
    fn audience_rules() {
        let strict = with_aud(&["api"], true);
        let base = |aud: Value| json!({"sub": "u", "iat": NOW.0, "exp": NOW.0 + 60, "aud": aud});
        assert!(check(&strict, base(json!("api"))).is_ok());
        assert!(check(&strict, base(json!(["x", "api"]))).is_ok());
        assert_eq!(
            check(&strict, base(json!("x"))).expect_err("mismatch").0,
            Reason::AudMismatch
        );
        let no_aud = json!({"sub": "u", "iat": NOW.0, "exp": NOW.0 + 60});
        assert_eq!(
            check(&strict, no_aud.clone()).expect_err("missing").0,
            Reason::AudMissing
        );
        assert!(check(&with_aud(&["api"], false), no_aud).is_ok());
        assert_eq!(
            check(&strict, base(json!(5))).expect_err("bad type").0,
            Reason::Malformed
        );
    }

    #[test]
    fn time_checks_apply_skew() {
        let i = with_aud(&["api"], false);
        let t = |iat: i64, nbf: i64, exp: i64| json!({"sub": "u", "iat": iat, "nbf": nbf, "exp": exp});
        assert_eq!(
            check(&i, t(NOW.0 - 100, NOW.0 - 100, NOW.0 - 31))
                .expect_err("expired")
                .0,
            Reason::Expired
        );
        assert!(
            check(&i, t(NOW.0 - 100, NOW.0 - 100, NOW.0 - 29)).is_ok(),
            "within 30 s skew"
        );
        assert_eq!(
            check(&i, t(NOW.0, NOW.0 + 31, NOW.0 + 100)).expect_err("nbf").0,
            Reason::NotYetValid
        );
        assert_eq!(
            check(&i, t(NOW.0 + 31, NOW.0, NOW.0 + 100)).expect_err("iat").0,
            Reason::NotYetValid
        );
        assert_eq!(
            check(&i, json!({"sub": "u", "iat": NOW.0}))
                .expect_err("no exp")
                .0,
            Reason::ClaimMissing
        );
        assert_eq!(
            check(&i, json!({"sub": "u", "exp": NOW.0 + 5}))
                .expect_err("no iat")
                .0,
            Reason::ClaimMissing
        );
        assert_eq!(
            check(&i, json!({"sub": "u", "iat": "yesterday", "exp": NOW.0 + 5}))
                .expect_err("bad iat")
                .0,
            Reason::Malformed
        );
    }

    #[test]
    fn absurd_numeric_dates_are_malformed_not_overflowing() {
        let mut i = with_aud(&["api"], false);
        i.max_token_age = Some(std::time::Duration::from_secs(600));
        for iat in [
            json!(i64::MIN),
            json!(-1e300),
            json!(-1),
            json!(1e300),
            json!(f64::MAX),
        ] {
            let c = json!({"sub": "u", "iat": iat, "exp": NOW.0 + 60});
            assert_eq!(check(&i, c).expect_err("absurd iat").0, Reason::Malformed);
        }
        assert_eq!(
            check(&i, json!({"sub": "u", "iat": NOW.0, "exp": i64::MAX}))
                .expect_err("far exp")
                .0,
            Reason::Malformed
        );
    }

    #[test]
    fn non_string_audience_members_are_malformed() {
        let i = with_aud(&["api"], false);
        for aud in [json!([1]), json!(["api", null]), json!({"a": 1})] {
            let c = json!({"sub": "u", "iat": NOW.0, "exp": NOW.0 + 60, "aud": aud});
            assert_eq!(check(&i, c).expect_err("bad aud").0, Reason::Malformed);
        }
    }

    #[test]
    fn max_token_age_refuses_old_tokens_with_long_expiry() {
        let mut i = with_aud(&["api"], false);
        i.max_token_age = Some(std::time::Duration::from_secs(600));
        let old = json!({"sub": "u", "iat": NOW.0 - 700, "exp": NOW.0 + 3600});
        assert_eq!(check(&i, old).expect_err("too old").0, Reason::TokenTooOld);
    }

    #[test]
    fn required_claims_and_azp() {
        let mut i = clerk();
        i.authorized_parties = vec!["https://app.example.com".into()];
        let good = json!({"sub": "u", "sid": "s", "azp": "https://app.example.com", "iat": NOW.0, "exp": NOW.0 + 60});
        assert!(check(&i, good).is_ok());
        let bad_azp =
            json!({"sub": "u", "sid": "s", "azp": "https://evil.example", "iat": NOW.0, "exp": NOW.0 + 60});
        assert_eq!(check(&i, bad_azp).expect_err("azp").0, Reason::AzpNotAllowed);
        let no_sid = json!({"sub": "u", "azp": "https://app.example.com", "iat": NOW.0, "exp": NOW.0 + 60});
        assert_eq!(check(&i, no_sid).expect_err("sid").0, Reason::ClaimMissing);
    }

    #[test]
    fn clerk_v1_and_v2_org_claims_map_alike() {
        let i = clerk();
        let v1 = claims(
            json!({"sub": "user_1", "org_id": "org_9", "org_role": "org:admin", "org_permissions": ["org:sys:read"]}),
        );
        let v2 = claims(
            json!({"sub": "user_1", "o": {"id": "org_9", "rol": "org:admin", "per": ["org:sys:read"]}}),
        );
        let a = map_identity(&i, &v1, &mut Report::default()).expect("v1");
        let b = map_identity(&i, &v2, &mut Report::default()).expect("v2");
        assert_eq!(a, b);
        assert_eq!(a.org_id.as_deref(), Some("org_9"));
        assert_eq!(a.roles, vec!["org:sys:read"]);
    }

    #[test]
    fn grant_conditions_match_globs_on_scalars_and_arrays_and_name_the_failure() {
        let mut i = clerk();
        i.require = vec![
            ("o.rol".into(), "org:admin".into()),
            ("org_permissions".into(), "org:sys:*".into()),
        ];
        let ok = claims(json!({"o": {"rol": "org:admin"}, "org_permissions": ["x", "org:sys:read"]}));
        assert!(check_policy(&i, &ok, &mut Report::default()).is_ok());
        let member = claims(json!({"o": {"rol": "org:member"}, "org_permissions": ["org:sys:read"]}));
        let mut r = Report::default();
        let e = check_policy(&i, &member, &mut r).expect_err("denied");
        assert_eq!(e.reason, Reason::PolicyDenied);
        assert!(
            e.message.contains("`o.rol`") && e.message.contains("org:member"),
            "{}",
            e.message
        );
        let missing = claims(json!({"o": {"rol": "org:admin"}}));
        let e = check_policy(&i, &missing, &mut Report::default()).expect_err("denied");
        assert!(e.message.contains("missing"), "{}", e.message);
    }

    #[test]
    fn identity_needs_a_subject() {
        let err = map_identity(&clerk(), &claims(json!({"sub": ""})), &mut Report::default())
            .expect_err("empty sub");
        assert_eq!(err.reason, Reason::ClaimMissing);
    }

    #[test]
    fn unverified_iss_is_read_without_other_claims() {
        assert_eq!(
            UnverifiedIss::read(br#"{"iss":"https://a","sub":1}"#)
                .expect("iss")
                .0,
            "https://a"
        );
        assert_eq!(
            UnverifiedIss::read(br#"{"sub":"x"}"#).expect_err("no iss").reason,
            Reason::ClaimMissing
        );
        assert_eq!(
            UnverifiedIss::read(b"[]").expect_err("not object").reason,
            Reason::Malformed
        );
    }
}
