//! The upstream verification engine, end to end with real keys: every refusal reason in
//! its place, the trace, and fuzzing with arbitrary and mutated tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use tollgate_core::upstream::issuer::IssuerSet;
use tollgate_core::upstream::{Check, IssuerSpec, NoTrace, Preset, Report};
use tollgate_core::{JwsAlg, Reason, SigningAlg, UnixTime};
use tollgate_crypto::upstream::{KeyLookup, verify_upstream};
use tollgate_crypto::{SigningKey, VerifyingKey, jws};

const NOW: UnixTime = UnixTime(1_800_000_000);
const CLERK: &str = "https://clerk.example.com";
const OIDC: &str = "https://idp.example.com";

struct World {
    issuers: IssuerSet,
    key: SigningKey,
    /// A key of the right shape that no issuer publishes.
    stranger: SigningKey,
}

fn world() -> World {
    let clerk = IssuerSpec {
        name: "clerk".into(),
        issuer: CLERK.into(),
        preset: Preset::Clerk,
        enabled: true,
        ..Default::default()
    };
    let oidc = IssuerSpec {
        name: "oidc".into(),
        issuer: OIDC.into(),
        audiences: vec!["api".into()],
        algorithms: vec![JwsAlg::RS256, JwsAlg::EdDSA],
        enabled: true,
        ..Default::default()
    };
    let off = IssuerSpec {
        name: "off".into(),
        issuer: "https://off.example.com".into(),
        preset: Preset::Clerk,
        enabled: false,
        ..Default::default()
    };
    let issuers = IssuerSet::new([clerk, oidc, off].iter().map(|s| s.resolve().unwrap()).collect()).unwrap();
    World {
        issuers,
        key: SigningKey::generate(SigningAlg::RS256).unwrap().0,
        stranger: SigningKey::generate(SigningAlg::RS256).unwrap().0,
    }
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "user_1", "sid": "sess_1", "iat": NOW.0 - 5, "nbf": NOW.0 - 5, "exp": NOW.0 + 55})
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    jws::sign(key, "JWT", claims).unwrap()
}

impl World {
    /// Verifies with a resolver that knows `self.key` under its kid for every issuer.
    fn verify(&self, token: &str, trace: &mut Report) -> Result<String, (Reason, Option<String>)> {
        let key = &self.key;
        let verifier = VerifyingKey::from_jwk(JwsAlg::RS256, key.public_jwk()).unwrap();
        let mut resolve = |_: &_, kid: Option<&str>, alg: JwsAlg| match kid {
            Some(k) if k == key.kid() && alg == JwsAlg::RS256 => KeyLookup::Found(&verifier),
            Some("down") => KeyLookup::Unavailable("connection refused".into()),
            _ => KeyLookup::NotFound,
        };
        verify_upstream(token, 8192, &self.issuers, NOW, &mut resolve, trace)
            .map(|v| v.identity.subject)
            .map_err(|r| (r.reason, r.issuer))
    }
}

fn reason(w: &World, token: &str) -> Reason {
    w.verify(token, &mut Report::default()).expect_err("refused").0
}

#[test]
fn a_good_clerk_token_verifies_and_every_step_is_reported() {
    let w = world();
    let mut report = Report::default();
    assert_eq!(
        w.verify(&sign(&w.key, &claims(CLERK)), &mut report)
            .expect("valid"),
        "user_1"
    );
    let checks: Vec<Check> = report.steps.iter().map(|s| s.check).collect();
    for c in [
        Check::Issuer,
        Check::Algorithm,
        Check::Key,
        Check::Signature,
        Check::Expiry,
        Check::Audience,
        Check::Identity,
    ] {
        assert!(checks.contains(&c), "{c:?} missing from {checks:?}");
    }
    assert!(report.steps.iter().all(|s| s.passed));
}

#[test]
fn the_004_scenario_is_an_audience_problem_not_a_signature_problem() {
    // A Clerk session token has no aud; an issuer configured as if it were generic OIDC
    // requires one. The refusal must say so.
    let w = world();
    let mut c = claims(OIDC);
    c.as_object_mut().unwrap().remove("aud");
    let mut report = Report::default();
    let (r, issuer) = w.verify(&sign(&w.key, &c), &mut report).expect_err("refused");
    assert_eq!(r, Reason::AudMissing);
    assert_eq!(issuer.as_deref(), Some(OIDC));
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.check == Check::Signature && s.passed),
        "signature was fine"
    );
}

#[test]
fn each_refusal_has_its_reason() {
    let w = world();
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = claims(CLERK);
        f(c.as_object_mut().unwrap());
        sign(&w.key, &c)
    };
    assert_eq!(
        reason(&w, &sign(&w.key, &claims("https://evil.example.com"))),
        Reason::UnknownIssuer
    );
    assert_eq!(
        reason(&w, &sign(&w.key, &claims("https://off.example.com"))),
        Reason::IssuerDisabled
    );
    assert_eq!(
        reason(&w, &sign(&w.stranger, &claims(CLERK))),
        Reason::KidNotFound
    );
    assert_eq!(
        reason(
            &w,
            &with(&|c| {
                c.insert("exp".into(), json!(NOW.0 - 60));
            })
        ),
        Reason::Expired
    );
    assert_eq!(
        reason(
            &w,
            &with(&|c| {
                c.insert("nbf".into(), json!(NOW.0 + 60));
            })
        ),
        Reason::NotYetValid
    );
    assert_eq!(
        reason(
            &w,
            &with(&|c| {
                c.insert("aud".into(), json!("someone-else"));
            })
        ),
        Reason::AudMismatch
    );
    assert_eq!(
        reason(
            &w,
            &with(&|c| {
                c.remove("sid");
            })
        ),
        Reason::ClaimMissing
    );
    assert_eq!(
        reason(
            &w,
            &with(&|c| {
                c.remove("iss");
            })
        ),
        Reason::ClaimMissing
    );
    assert_eq!(reason(&w, &"x".repeat(9000)), Reason::TokenTooLarge);
    assert_eq!(reason(&w, "not.a.jwt"), Reason::Malformed);

    // Signature: same header and claims, another key's signature.
    let good = sign(&w.key, &claims(CLERK));
    let other = sign(&w.stranger, &claims(CLERK));
    let forged = format!(
        "{}.{}",
        &good[..good.rfind('.').unwrap()],
        &other[other.rfind('.').unwrap() + 1..]
    );
    assert_eq!(reason(&w, &forged), Reason::InvalidSignature);
}

#[test]
fn algorithms_outside_the_issuers_allowlist_are_refused_before_any_key_lookup() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let w = world();
    let body = b64(&claims(CLERK).to_string());
    for alg in ["none", "HS256", "EdDSA", "RS512"] {
        let token = format!(
            "{}.{body}.c2ln",
            b64(&format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, w.key.kid()))
        );
        let mut report = Report::default();
        let (r, _) = w.verify(&token, &mut report).expect_err("refused");
        assert_eq!(r, Reason::AlgNotAllowed, "{alg}");
        assert!(
            !report.steps.iter().any(|s| s.check == Check::Key),
            "{alg}: no key lookup"
        );
    }
}

#[test]
fn jwks_outage_is_reported_as_such() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let w = world();
    let token = format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"RS256","kid":"down"}"#),
        b64(&claims(CLERK).to_string())
    );
    assert_eq!(reason(&w, &token), Reason::JwksUnavailable);
}

#[test]
fn trailing_slash_mismatch_is_pointed_out() {
    let w = world();
    let mut report = Report::default();
    let err = w
        .verify(&sign(&w.key, &claims(&format!("{CLERK}/"))), &mut report)
        .expect_err("refused");
    assert_eq!(err.0, Reason::UnknownIssuer);
    assert!(report.steps.last().unwrap().detail.contains("trailing slash"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics_and_never_verifies(s in "\\PC{0,600}") {
        let w = world_cached();
        prop_assert!(w.verify(&s, &mut Report::default()).is_err());
    }

    #[test]
    fn mutated_tokens_never_panic_and_never_verify(pos in 0usize..2000, byte in any::<u8>()) {
        let w = world_cached();
        let good = sign(&w.key, &claims(CLERK));
        let mut bytes = good.clone().into_bytes();
        let at = pos % bytes.len();
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        if let Ok(token) = String::from_utf8(bytes) {
            let verifier = VerifyingKey::from_jwk(JwsAlg::RS256, w.key.public_jwk()).unwrap();
            let verified = verify_upstream(&token, 8192, &w.issuers, NOW, &mut |_, _, _| KeyLookup::Found(&verifier), &mut NoTrace);
            // A change inside the base64 padding bits can decode to the same bytes; only
            // then may the token still verify.
            if let Ok(v) = verified {
                prop_assert_eq!(v.identity.subject, "user_1");
            }
        }
    }
}

/// Key generation is slow (RSA); property cases share one world.
fn world_cached() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(world)
}
