//! Federation end to end: upstream issuers served by the mock IdP, tokens verified and
//! exchanged by the real server, every refusal with its reason.

use crate::mock_idp::{MintOptions, MockIdp, MockIssuer};
use crate::test_app::TestApp;
use serde_json::{Value, json};
use std::time::Duration;
use tollgate_client::TokenExchange;
use tollgate_core::JwsAlg;
use tollgate_core::time::Clock as _;
use tollgate_core::upstream::{GrantSpec, IssuerSpec, Preset};

/// Three Clerk-like issuers side by side, as in seed 004, plus one generic OIDC issuer.
struct Fed {
    app: TestApp,
    /// Kept alive for the issuers it serves.
    idp: MockIdp,
    clerk_a: MockIssuer,
    clerk_b: MockIssuer,
    /// Configured like generic OIDC: requires `aud = api`.
    strict: MockIssuer,
}

fn clerk(name: &str, idp: &MockIssuer) -> IssuerSpec {
    IssuerSpec {
        name: name.into(),
        issuer: idp.url().into(),
        preset: Preset::Clerk,
        grant: Some(GrantSpec {
            scopes: vec!["read".into(), "write".into()],
            audiences: vec!["https://api.example.com".into()],
            ..GrantSpec::default()
        }),
        enabled: true,
        ..IssuerSpec::default()
    }
}

async fn fed() -> Fed {
    let idp = MockIdp::start().await;
    let clerk_a = idp.issuer("clerk-a", JwsAlg::RS256);
    let clerk_b = idp.issuer("clerk-b", JwsAlg::RS256);
    let strict = idp.issuer("strict", JwsAlg::ES256);
    let specs = vec![
        clerk("clerk-a", &clerk_a),
        clerk("clerk-b", &clerk_b),
        IssuerSpec {
            name: "strict".into(),
            issuer: strict.url().into(),
            audiences: vec!["api".into()],
            algorithms: vec![JwsAlg::ES256],
            enabled: true,
            ..IssuerSpec::default()
        },
    ];
    let app = TestApp::with_config(move |c| c.issuers = specs).await;
    Fed {
        app,
        idp,
        clerk_a,
        clerk_b,
        strict,
    }
}

impl Fed {
    fn now(&self) -> tollgate_core::UnixTime {
        self.app.clock.now()
    }

    /// A Clerk session token: no `aud`, a session id, 60 s of life.
    fn clerk_token(&self, issuer: &MockIssuer, sub: &str) -> String {
        let mut claims = issuer.claims(self.now(), sub);
        claims["sid"] = json!("sess_1");
        claims["o"] = json!({"id": "org_9", "rol": "admin"});
        issuer.mint(claims)
    }

    async fn exchange(
        &self,
        token: &str,
    ) -> Result<tollgate_proto::oauth::TokenResponse, tollgate_client::Error> {
        self.app.client.token_exchange(&TokenExchange::jwt(token)).await
    }

    async fn reason(&self, token: &str) -> String {
        let err = self.exchange(token).await.expect_err("refused");
        err.reason().unwrap_or("(none)").to_owned()
    }
}

#[tokio::test]
async fn clerk_tokens_without_aud_are_exchanged_where_configured_and_explained_where_not() {
    let f = fed().await;
    for issuer in [&f.clerk_a, &f.clerk_b] {
        let resp = f
            .exchange(&f.clerk_token(issuer, "user_1"))
            .await
            .expect("exchanged");
        assert_eq!(
            resp.issued_token_type.as_deref(),
            Some("urn:ietf:params:oauth:token-type:access_token")
        );
        assert_eq!(resp.scope.as_deref(), Some("read write"));
    }
    // The same kind of token from an issuer that requires `aud`: the refusal says why.
    let mut claims = f.strict.claims(f.now(), "user_1");
    let no_aud = f.strict.mint(claims.clone());
    assert_eq!(f.reason(&no_aud).await, "aud-missing");
    claims["aud"] = json!("other");
    assert_eq!(f.reason(&f.strict.mint(claims.clone())).await, "aud-mismatch");
    claims["aud"] = json!(["other", "api"]);
    f.exchange(&f.strict.mint(claims))
        .await
        .expect("aud api accepted");
}

#[tokio::test]
async fn exchanged_token_names_the_upstream_identity_and_introspects_active() {
    let f = fed().await;
    let resp = f
        .exchange(&f.clerk_token(&f.clerk_a, "user_1"))
        .await
        .expect("exchanged");
    let status = f.app.client.auth_status(&resp.access_token).await.expect("valid");
    assert!(status.sub.starts_with("usr_"), "a local user: {}", status.sub);
    assert_eq!(status.aud, "https://api.example.com");
    assert_eq!(status.client_id, "upstream:clerk-a");
    let up = status.upstream.expect("upstream identity");
    assert_eq!(
        (up.name.as_str(), up.iss.as_str(), up.sub.as_str()),
        ("clerk-a", f.clerk_a.url(), "user_1")
    );
    assert_eq!(up.org_id.as_deref(), Some("org_9"), "Clerk v2 `o.id` mapped");
    let rs = f.app.service_account("resource-server", &[], &[]).await;
    assert!(
        f.app
            .client
            .introspect(&rs, &resp.access_token)
            .await
            .unwrap()
            .active
    );
    let audit = f.app.client.audit(5).await.unwrap();
    let exchange = audit
        .iter()
        .find(|e| e.action == "token.exchange")
        .expect("audited");
    assert_eq!(exchange.detail["issuer"], "clerk-a");
    assert_eq!(exchange.actor, "upstream:clerk-a:user_1");
}

#[tokio::test]
async fn scope_and_audience_requests_are_intersected_with_the_issuers_grant() {
    let f = fed().await;
    let token = f.clerk_token(&f.clerk_a, "user_1");
    let ask = |scope, audience| TokenExchange {
        scope,
        audience,
        ..TokenExchange::jwt(&token)
    };
    let resp = f
        .app
        .client
        .token_exchange(&ask(Some("read admin"), None))
        .await
        .expect("intersected");
    assert_eq!(resp.scope.as_deref(), Some("read"));
    let err = f
        .app
        .client
        .token_exchange(&ask(Some("admin"), None))
        .await
        .expect_err("nothing allowed");
    assert_eq!(err.reason(), Some("scope-not-allowed"));
    let err = f
        .app
        .client
        .token_exchange(&ask(None, Some("https://evil.example")))
        .await
        .expect_err("audience");
    assert_eq!(err.reason(), Some("audience-not-allowed"));
}

#[tokio::test]
async fn actor_token_becomes_the_act_claim() {
    let f = fed().await;
    let subject = f.clerk_token(&f.clerk_a, "user_1");
    let mut claims = f.strict.claims(f.now(), "runner-7");
    claims["aud"] = json!("api");
    let actor = f.strict.mint(claims);
    let req = TokenExchange {
        actor_token: Some(&actor),
        ..TokenExchange::jwt(&subject)
    };
    let resp = f.app.client.token_exchange(&req).await.expect("exchanged");
    let status = f.app.client.auth_status(&resp.access_token).await.unwrap();
    assert_eq!(
        status.act,
        Some(json!({"sub": "runner-7", "iss": f.strict.url()}))
    );
}

#[tokio::test]
async fn every_refusal_reason_is_reachable_end_to_end() {
    let f = fed().await;
    let now = f.now();
    let mut base = f.clerk_a.claims(now, "user_1");
    base["sid"] = json!("s");
    let with = |patch: Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        f.clerk_a.mint(c)
    };
    assert_eq!(
        f.reason(&with(json!({"iss": "https://nobody.example.com"})))
            .await,
        "unknown-issuer"
    );
    assert_eq!(f.reason(&with(json!({"exp": now.0 - 100}))).await, "expired");
    assert_eq!(
        f.reason(&with(json!({"nbf": now.0 + 100}))).await,
        "not-yet-valid"
    );
    assert_eq!(f.reason(&with(json!({"sid": null}))).await, "claim-missing");
    assert_eq!(f.reason(&with(json!({"aud": "someone"}))).await, "aud-mismatch");
    assert_eq!(f.reason("garbage").await, "malformed");
    assert_eq!(f.reason(&"a".repeat(20_000)).await, "token-too-large");
    let unknown = MintOptions {
        kid: Some("no-such-kid".into()),
        alg: Some(JwsAlg::RS256),
        ..MintOptions::default()
    };
    assert_eq!(
        f.reason(&f.clerk_a.mint_with(&unknown, base.clone())).await,
        "kid-not-found"
    );
    // A token of clerk-a signed with clerk-b's key, under clerk-b's kid: clerk-a does not
    // publish that kid, and clerk-b's keys are never tried for clerk-a's tokens.
    let foreign = MintOptions::default();
    assert_eq!(
        f.reason(&f.clerk_b.mint_with(&foreign, base.clone())).await,
        "kid-not-found"
    );
    // clerk-a's kid over clerk-b's signature: the signature fails.
    let good = with(json!({}));
    let other = f.clerk_b.mint(base.clone());
    let forged = format!(
        "{}.{}",
        &good[..good.rfind('.').unwrap()],
        &other[other.rfind('.').unwrap() + 1..]
    );
    assert_eq!(f.reason(&forged).await, "invalid-signature");
    let body = f.exchange(&forged).await.unwrap_err();
    match body {
        tollgate_client::Error::Refused { status, body } => {
            assert_eq!(status, 400);
            assert_eq!(body.error, "invalid_grant");
            assert_eq!(body.issuer.as_deref(), Some(f.clerk_a.url()));
            assert_eq!(body.kid, Some(f.clerk_a.kid()));
        }
        other => panic!("{other}"),
    }
    // A key of an algorithm the issuer does not allow (clerk-a accepts RS256 only).
    let es = f.clerk_a.add_key(JwsAlg::ES256, None);
    let opts = MintOptions {
        key: Some(es),
        ..MintOptions::default()
    };
    assert_eq!(
        f.reason(&f.clerk_a.mint_with(&opts, base.clone())).await,
        "alg-not-allowed"
    );
}

#[tokio::test]
async fn rotated_idp_key_is_fetched_once_then_accepted() {
    let f = fed().await;
    f.exchange(&f.clerk_token(&f.clerk_a, "u")).await.expect("warm");
    let before = f.clerk_a.jwks_fetches().requests;
    f.clerk_a.rotate(false);
    f.app.advance(Duration::from_secs(31)); // past the unknown-kid cooldown
    let token = f.clerk_token(&f.clerk_a, "u");
    f.exchange(&token).await.expect("accepted after one refresh");
    f.exchange(&token).await.expect("and again without a fetch");
    assert_eq!(f.clerk_a.jwks_fetches().requests, before + 1);
}

#[tokio::test]
async fn a_flood_of_random_kids_costs_at_most_one_fetch() {
    let f = fed().await;
    f.exchange(&f.clerk_token(&f.clerk_a, "u")).await.expect("warm");
    f.app.advance(Duration::from_secs(31));
    let before = f.clerk_a.jwks_fetches().requests;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let opts = MintOptions {
            kid: Some(format!("random-{i}")),
            ..MintOptions::default()
        };
        let token = f.clerk_a.mint_with(&opts, f.clerk_a.claims(f.now(), "u"));
        let client = f.app.client.clone();
        tasks.spawn(async move {
            client
                .token_exchange(&TokenExchange::jwt(&token))
                .await
                .unwrap_err()
                .reason()
                .map(str::to_owned)
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().as_deref(), Some("kid-not-found"));
    }
    assert!(
        f.clerk_a.jwks_fetches().requests <= before + 1,
        "fetches: {:?}",
        f.clerk_a.jwks_fetches()
    );
}

#[tokio::test]
async fn idp_outage_with_cached_keys_still_verifies_and_without_keys_is_503() {
    let f = fed().await;
    f.exchange(&f.clerk_token(&f.clerk_a, "u")).await.expect("warm");
    f.clerk_a.set_down(true);
    f.clerk_b.set_down(true);
    f.app.advance(Duration::from_secs(600)); // cached set expired, within stale-if-error
    f.exchange(&f.clerk_token(&f.clerk_a, "u"))
        .await
        .expect("stale keys still verify");
    let err = f
        .exchange(&f.clerk_token(&f.clerk_b, "u"))
        .await
        .expect_err("never fetched");
    match err {
        tollgate_client::Error::Refused { status, body } => {
            assert_eq!(status, 503);
            assert_eq!(body.reason, "jwks-unavailable");
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn disabling_an_issuer_takes_effect_at_once_and_deactivates_its_tokens() {
    let idp = MockIdp::start().await;
    let up = idp.issuer("dyn", JwsAlg::EdDSA);
    let app = TestApp::new().await;
    let spec = json!({"name": "dyn", "issuer": up.url(), "preset": "clerk", "algorithms": ["EdDSA"]});
    app.client.create_issuer(&spec).await.expect("created");
    let mut claims = up.claims(app.clock.now(), "user_1");
    claims["sid"] = json!("s");
    let token = up.mint(claims);
    let exchanged = app
        .client
        .token_exchange(&TokenExchange::jwt(&token))
        .await
        .expect("exchanged");
    let mut off = spec.clone();
    off["enabled"] = json!(false);
    let info = app.client.update_issuer("dyn", &off).await.expect("updated");
    assert!(!info.enabled);
    let err = app
        .client
        .token_exchange(&TokenExchange::jwt(&token))
        .await
        .expect_err("disabled");
    assert_eq!(err.reason(), Some("issuer-disabled"));
    assert_eq!(
        app.client
            .auth_status(&exchanged.access_token)
            .await
            .unwrap_err()
            .reason(),
        Some("issuer-disabled")
    );
    let listed = app.client.list_issuers().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].source, "api");
}

#[tokio::test]
async fn file_issuers_reload_live_and_cannot_be_changed_through_the_api() {
    let f = fed().await;
    let spec = json!({"name": "clerk-a", "issuer": f.clerk_a.url(), "preset": "clerk", "enabled": false});
    assert_eq!(
        f.app
            .client
            .update_issuer("clerk-a", &spec)
            .await
            .unwrap_err()
            .reason(),
        Some("conflict")
    );
    // What SIGHUP does after the file changed: clerk-a disabled.
    let mut specs = f.app.state.config.issuers.clone();
    specs[0].enabled = false;
    f.app
        .state
        .upstream
        .registry()
        .set_file_issuers(specs)
        .await
        .unwrap();
    assert_eq!(f.reason(&f.clerk_token(&f.clerk_a, "u")).await, "issuer-disabled");
    f.exchange(&f.clerk_token(&f.clerk_b, "u"))
        .await
        .expect("others unaffected");
}

#[tokio::test]
async fn verify_explains_the_004_scenario() {
    // The 004 team configured a Clerk dev instance like any OIDC issuer; its session tokens
    // have no aud. tollgate says: signature fine, audience missing.
    let idp = MockIdp::start().await;
    let dev = idp.issuer("sincere-cheetah-30", JwsAlg::RS256);
    let spec = IssuerSpec {
        name: "clerk-dev".into(),
        issuer: dev.url().into(),
        audiences: vec!["https://connect.example.com".into()],
        enabled: true,
        ..IssuerSpec::default()
    };
    let app = TestApp::with_config(move |c| c.issuers = vec![spec]).await;
    let mut claims = dev.claims(app.clock.now(), "user_2abc");
    claims["sid"] = json!("sess_1");
    let report = app.client.verify_token(&dev.mint(claims)).await.expect("report");
    assert!(!report.valid);
    assert_eq!(report.reason.as_deref(), Some("aud-missing"));
    assert_eq!(report.issuer_name.as_deref(), Some("clerk-dev"));
    let sig = report
        .steps
        .iter()
        .find(|s| s.check == "signature")
        .expect("signature step");
    assert!(sig.passed, "{report:?}");
    let last = report.steps.last().unwrap();
    assert_eq!(last.check, "audience");
    assert!(last.detail.contains("no aud"), "{}", last.detail);
    assert_eq!(report.header.as_ref().unwrap()["alg"], "RS256");
}

#[tokio::test]
async fn bad_exchange_requests_get_precise_reasons() {
    let f = fed().await;
    let token = f.clerk_token(&f.clerk_a, "u");
    let gt = ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
    assert_eq!(post(&f.app, &[gt]).await["reason"], "missing-parameter");
    let body = post(
        &f.app,
        &[gt, ("subject_token", &token), ("subject_token_type", "urn:x")],
    )
    .await;
    assert_eq!(body["reason"], "invalid-parameter");
    let jwt = ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt");
    let body = post(
        &f.app,
        &[
            gt,
            ("subject_token", &token),
            jwt,
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            ),
        ],
    )
    .await;
    assert_eq!(body["reason"], "invalid-parameter");
    let body = post(
        &f.app,
        &[gt, ("subject_token", &token), jwt, ("actor_token", &token)],
    )
    .await;
    assert_eq!(body["reason"], "missing-parameter");
    let body = post(
        &f.app,
        &[
            gt,
            ("subject_token", &token),
            jwt,
            ("client_id", "tgc_x"),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(
        body["reason"], "secret-malformed",
        "presented credentials must be valid"
    );
}

async fn post(app: &TestApp, form: &[(&str, &str)]) -> Value {
    app.http
        .post(app.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Mutated upstream tokens (every byte position, random values) against the real endpoint:
/// always a 4xx with a reason, never a 5xx, never a token.
#[tokio::test]
async fn mutated_upstream_tokens_never_cause_a_5xx() {
    let f = fed().await;
    let good = f.clerk_token(&f.clerk_a, "user_1");
    let mut seed: u32 = 0x9e37_79b9;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for _ in 0..150 {
        let mut bytes = good.clone().into_bytes();
        let at = next() as usize % bytes.len();
        bytes[at] = (next() % 256) as u8;
        let token = String::from_utf8_lossy(&bytes).into_owned();
        if token == good {
            continue;
        }
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", token.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ];
        let resp = f
            .app
            .http
            .post(f.app.url("/oauth/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        // A flip inside base64 padding bits can leave the token intact; then it is accepted.
        if status.is_success() {
            continue;
        }
        assert!(status.is_client_error(), "{status} for byte {at}: {body}");
        assert!(body["reason"].is_string(), "{body}");
    }
}

/// `jku`, `x5u` and `jwk` headers name keys the attacker controls; tollgate never fetches
/// or uses them: the token is judged with its issuer's published keys only.
#[tokio::test]
async fn key_location_headers_are_ignored_and_never_fetched() {
    let f = fed().await;
    let evil = f.idp.issuer("evil", JwsAlg::RS256);
    let mut header = serde_json::Map::new();
    header.insert("jku".into(), json!(evil.jwks_uri()));
    header.insert("x5u".into(), json!(format!("{}/cert.pem", evil.url())));
    header.insert("jwk".into(), json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
    header.insert("kid".into(), json!(f.clerk_a.kid()));
    let mut claims = f.clerk_a.claims(f.now(), "admin");
    claims["sid"] = json!("s");
    let forged = evil.mint_with(
        &MintOptions {
            header,
            ..MintOptions::default()
        },
        claims,
    );
    assert_eq!(f.reason(&forged).await, "invalid-signature");
    assert_eq!(evil.jwks_fetches().requests, 0, "the jku URL was never fetched");
}

#[tokio::test]
async fn refusals_naming_a_trusted_issuer_are_audited_and_others_are_not() {
    let f = fed().await;
    let mut claims = f.clerk_a.claims(f.now(), "u");
    claims["sid"] = json!("s");
    claims["exp"] = json!(f.now().0 - 100);
    assert_eq!(f.reason(&f.clerk_a.mint(claims)).await, "expired");
    assert_eq!(f.reason("garbage").await, "malformed");
    let audit = f.app.client.audit(3).await.unwrap();
    let refusals: Vec<_> = audit.iter().filter(|e| e.action == "token.exchange").collect();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].reason.as_deref(), Some("expired"));
    assert_eq!(refusals[0].detail["issuer"], "clerk-a");
}

/// Seed 001: only org admins may exchange. The condition that failed is named.
#[tokio::test]
async fn grant_conditions_on_claims_refuse_with_policy_denied() {
    let idp = MockIdp::start().await;
    let up = idp.issuer("clerk-org", JwsAlg::RS256);
    let spec = json!({
        "name": "clerk-org", "issuer": up.url(), "preset": "clerk",
        "grant": {"scopes": ["read"], "require": {"o.rol": "org:admin", "o.id": "org_*"}}
    });
    let app = TestApp::new().await;
    app.client.create_issuer(&spec).await.expect("created");
    let token = |role: &str| {
        let mut c = up.claims(app.clock.now(), "user_1");
        c["sid"] = json!("s");
        c["o"] = json!({"id": "org_9", "rol": role});
        up.mint(c)
    };
    app.client
        .token_exchange(&TokenExchange::jwt(&token("org:admin")))
        .await
        .expect("admin may exchange");
    let err = app
        .client
        .token_exchange(&TokenExchange::jwt(&token("org:member")))
        .await
        .expect_err("member");
    match &err {
        tollgate_client::Error::Refused { status, body } => {
            assert_eq!(
                (status.as_u16(), body.error.as_str(), body.reason.as_str()),
                (400, "invalid_grant", "policy-denied")
            );
            assert!(
                body.error_description.contains("`o.rol`") && body.error_description.contains("org:member")
            );
        }
        other => panic!("{other}"),
    }
    let report = app.client.verify_token(&token("org:member")).await.unwrap();
    assert!(report.valid, "the token itself is valid");
    assert_eq!(report.exchange.as_ref().unwrap()["refused"], "policy-denied");
    let policy = report
        .steps
        .iter()
        .find(|s| s.check == "policy")
        .expect("policy step");
    assert!(!policy.passed);
}

/// An exchanged token never outlives the upstream tokens it rests on.
#[tokio::test]
async fn exchanged_tokens_expire_no_later_than_their_upstream_tokens() {
    let f = fed().await;
    let subject = f.clerk_token(&f.clerk_a, "user_1"); // 60 s of life
    let resp = f.exchange(&subject).await.unwrap();
    assert!(resp.expires_in <= 60, "expires_in {}", resp.expires_in);
    let status = f.app.client.auth_status(&resp.access_token).await.unwrap();
    assert!(status.exp <= f.now().0 + 60);

    let mut claims = f.strict.claims(f.now(), "runner");
    claims["aud"] = json!("api");
    claims["exp"] = json!(f.now().0 + 20);
    let actor = f.strict.mint(claims);
    let req = TokenExchange {
        actor_token: Some(&actor),
        ..TokenExchange::jwt(&subject)
    };
    let resp = f.app.client.token_exchange(&req).await.unwrap();
    assert!(resp.expires_in <= 20, "clamped by the actor: {}", resp.expires_in);

    // Accepted within the clock skew but already expired: nothing is left to grant.
    f.app.advance(Duration::from_secs(61));
    assert_eq!(f.reason(&subject).await, "expired");
}

#[tokio::test]
async fn refusals_before_the_signature_are_not_audited() {
    let f = fed().await;
    let unknown = MintOptions {
        kid: Some("junk".repeat(50)),
        ..MintOptions::default()
    };
    let mut claims = f.clerk_a.claims(f.now(), "u");
    claims["sid"] = json!("s");
    assert_eq!(
        f.reason(&f.clerk_a.mint_with(&unknown, claims)).await,
        "kid-not-found"
    );
    let audit = f.app.client.audit(5).await.unwrap();
    assert!(!audit.iter().any(|e| e.action == "token.exchange"), "{audit:?}");
}

#[tokio::test]
async fn repointing_an_issuer_name_at_another_iss_deactivates_its_old_tokens() {
    let idp = MockIdp::start().await;
    let first = idp.issuer("first", JwsAlg::EdDSA);
    let second = idp.issuer("second", JwsAlg::EdDSA);
    let app = TestApp::new().await;
    let spec = |iss: &str| json!({"name": "idp", "issuer": iss, "preset": "clerk", "algorithms": ["EdDSA"]});
    app.client.create_issuer(&spec(first.url())).await.unwrap();
    let mut claims = first.claims(app.clock.now(), "user_1");
    claims["sid"] = json!("s");
    let exchanged = app
        .client
        .token_exchange(&TokenExchange::jwt(&first.mint(claims)))
        .await
        .unwrap();
    app.client
        .update_issuer("idp", &spec(second.url()))
        .await
        .unwrap();
    let err = app.client.auth_status(&exchanged.access_token).await.unwrap_err();
    assert_eq!(err.reason(), Some("unknown-issuer"));
    let audit = app.client.audit(1).await.unwrap();
    assert_eq!(audit[0].action, "issuer.update");
    assert_eq!(audit[0].detail["spec"]["issuer"], second.url());
}
