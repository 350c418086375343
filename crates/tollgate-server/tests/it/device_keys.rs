//! Device keys through the SDK: enrollment with proof of possession (bootstrap → register),
//! the RFC 7523 JWT bearer grant, refresh and rotation of the sessions it starts, and
//! revocation; every refusal of a proof or an assertion with its reason; the key limit,
//! single use of enrollment tokens under concurrency, and the audit trail.

use crate::orgs::{World, world, world_with};
use serde_json::json;
use std::time::Duration;
use tollgate_client::proto::audit::AuditFilter;
use tollgate_client::proto::keys::{KeyBootstrapResponse, UserKeyInfo};
use tollgate_client::{Client, Error, UserAction};
use tollgate_core::SigningAlg;
use tollgate_core::secret_token::{self, SecretKind};
use tollgate_core::time::Clock as _;
use tollgate_crypto::SigningKey;
use tollgate_crypto::device_key::{self, AssertionClaims};

/// `(status, error, reason)` of a refusal.
fn refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> (u16, String, String) {
    match r.expect_err("refused") {
        Error::Refused { status, body } => (status.as_u16(), body.error.clone(), body.reason.clone()),
        other => panic!("not a refusal: {other}"),
    }
}

fn reason<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    refusal(r).2
}

fn key(alg: SigningAlg) -> SigningKey {
    SigningKey::generate(alg).unwrap().0
}

/// A signed-in user (member of `acme` when `org`) and an SDK client acting as them.
async fn signed_in(w: &World, sub: &str, org: Option<&str>) -> (String, Client) {
    let id = w.user(sub).await;
    if let Some(o) = org {
        w.org(o, &id).await;
    }
    let s = w.sign_in(sub, org).await;
    (id, w.app.client.clone().with_user_token(s.access))
}

fn now(w: &World) -> i64 {
    w.app.clock.now().0
}

async fn token_endpoint(w: &World) -> String {
    w.app.client.metadata().await.unwrap().token_endpoint
}

/// Registers `key` with `boot` (proof made now).
async fn register(w: &World, boot: &KeyBootstrapResponse, key: &SigningKey) -> Result<UserKeyInfo, Error> {
    let proof = device_key::proof(key, &boot.ket, &boot.nonce, now(w)).unwrap();
    w.app
        .client
        .key_register(&boot.ket, &device_key::public_jwk(key), &proof)
        .await
}

/// Bootstraps as `user` and registers a fresh key of `alg`.
async fn enroll(w: &World, user: &Client, name: &str, alg: SigningAlg) -> (SigningKey, UserKeyInfo) {
    let k = key(alg);
    let boot = user.key_bootstrap(name).await.unwrap();
    let info = register(w, &boot, &k).await.unwrap();
    (k, info)
}

/// A fresh assertion by `k` as `key_id`, valid for a minute.
async fn assertion(w: &World, k: &SigningKey, key_id: &str) -> String {
    device_key::assertion(k, key_id, &token_endpoint(w).await, now(w), 60).unwrap()
}

/// An assertion with the given claims, signed by `k` with `kid`.
fn signed(k: &SigningKey, kid: Option<&str>, claims: &serde_json::Value) -> String {
    tollgate_crypto::jws::sign_with_header(k, "JWT", kid, None, claims).unwrap()
}

#[tokio::test]
async fn a_device_key_gets_tokens_refreshes_rotates_and_ends_with_its_revocation() {
    let w = world().await;
    let (alice, user) = signed_in(&w, "alice", Some("acme")).await;
    let acme = w.app.client.org("acme").await.unwrap().id;

    // Enrollment: a key-enrollment token and a nonce, then the key with its proof.
    let boot = user.key_bootstrap("alice's laptop").await.unwrap();
    assert!(boot.ket.starts_with("tg_ket_"), "{}", boot.ket);
    assert!(boot.id.starts_with("ke_"), "{}", boot.id);
    assert_eq!(boot.expires_in, 600);
    assert!(boot.nonce.len() >= 43, "{}", boot.nonce);
    let k = key(SigningAlg::EdDSA);
    let info = register(&w, &boot, &k).await.unwrap();
    assert!(info.id.starts_with("uk_"), "{}", info.id);
    assert_eq!(
        (
            info.user_id.as_str(),
            info.device_name.as_str(),
            info.alg.as_str()
        ),
        (alice.as_str(), "alice's laptop", "EdDSA")
    );
    // The thumbprint is RFC 7638's, as the key computes it; no private member is kept.
    assert_eq!(info.thumbprint, k.kid());
    assert_eq!(info.public_jwk["kid"], json!(info.id));
    assert!(info.public_jwk.get("d").is_none());
    assert_eq!(info.last_used_at, None);

    // The device gets tokens with an assertion: the user's, in her only org, with a session.
    let first = w
        .app
        .client
        .jwt_bearer(&assertion(&w, &k, &info.id).await, None, None, None)
        .await
        .unwrap();
    let status = w.app.client.auth_status(&first.access_token).await.unwrap();
    assert_eq!(
        (
            status.sub.as_str(),
            status.client_id.as_str(),
            status.aud.as_str()
        ),
        (alice.as_str(), format!("key:{}", info.id).as_str(), "tollgate")
    );
    assert_eq!(
        (status.org.as_deref(), status.roles.clone()),
        (Some(acme.as_str()), vec!["owner".to_owned()])
    );
    assert_eq!(status.scope, "read");
    // The token works for tollgate's API like a browser sign-in's.
    let as_device = w.app.client.clone().with_user_token(first.access_token.clone());
    assert_eq!(as_device.me().await.unwrap().user.id, alice);
    let listed = user.my_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());

    // Refresh rotates; the old refresh token again is reuse, and ends that session.
    let refresh1 = first.refresh_token.clone().expect("a session");
    let second = w.app.client.refresh(&refresh1, None, None).await.unwrap();
    let refresh2 = second.refresh_token.clone().expect("rotated");
    assert_ne!(refresh1, refresh2);
    assert_eq!(
        w.app
            .client
            .auth_status(&second.access_token)
            .await
            .unwrap()
            .client_id,
        format!("key:{}", info.id)
    );
    assert_eq!(
        reason(w.app.client.refresh(&refresh1, None, None).await),
        "refresh-token-reused"
    );
    assert_eq!(
        reason(w.app.client.refresh(&refresh2, None, None).await),
        "session-revoked"
    );

    // A new assertion starts a new session; revoking the key ends it and its tokens.
    let third = w
        .app
        .client
        .jwt_bearer(&assertion(&w, &k, &info.id).await, None, None, None)
        .await
        .unwrap();
    user.revoke_my_key(&info.id).await.unwrap();
    assert_eq!(
        reason(
            w.app
                .client
                .refresh(third.refresh_token.as_deref().unwrap(), None, None)
                .await
        ),
        "session-revoked"
    );
    assert_eq!(
        reason(w.app.client.auth_status(&third.access_token).await),
        "revoked"
    );
    let (status, error, why) = refusal(
        w.app
            .client
            .jwt_bearer(&assertion(&w, &k, &info.id).await, None, None, None)
            .await,
    );
    assert_eq!(
        (status, error.as_str(), why.as_str()),
        (400, "invalid_grant", "key-revoked")
    );
    let sessions = user.my_sessions().await.unwrap();
    let key_sessions: Vec<_> = sessions
        .iter()
        .filter(|s| s.client_id == format!("key:{}", info.id))
        .collect();
    assert_eq!(key_sessions.len(), 2);
    assert!(key_sessions.iter().all(|s| s.revoked_at.is_some()));
    assert!(
        key_sessions
            .iter()
            .any(|s| s.revoked_reason.as_deref() == Some("key-revoked"))
    );
    assert!(user.my_keys().await.unwrap()[0].revoked_at.is_some());
    // Revoking again changes nothing; others' keys are not found.
    user.revoke_my_key(&info.id).await.unwrap();
    assert_eq!(reason(user.revoke_my_key("uk_nope").await), "not-found");
    // The browser session is untouched.
    assert_eq!(user.me().await.unwrap().user.id, alice);

    // Audited, without the enrollment token, nonce, proof or assertion.
    let export = w.app.client.audit_export(&AuditFilter::default()).await.unwrap();
    for action in [
        "key.enroll.bootstrap",
        "key.register",
        "token.jwt_bearer",
        "key.revoke",
    ] {
        assert!(export.contains(&format!("\"{action}\"")), "{action} missing");
    }
    assert!(!export.contains(&boot.ket));
    assert!(!export.contains(&boot.nonce));
    assert!(!export.contains(&device_key::ket_hash(&boot.ket)));
    assert!(!export.contains("tg_ket_"));
}

#[tokio::test]
async fn a_p256_key_gets_tokens_for_another_audience_and_operators_see_and_revoke_it() {
    let w = world().await;
    let (bob, user) = signed_in(&w, "bob", None).await;
    let (k, info) = enroll(&w, &user, "build box", SigningAlg::ES256).await;
    assert_eq!(info.alg, "ES256");
    assert_eq!(info.public_jwk["crv"], json!("P-256"));
    let t = w
        .app
        .client
        .jwt_bearer(
            &assertion(&w, &k, &info.id).await,
            Some("read"),
            Some("https://api.example.com"),
            None,
        )
        .await
        .unwrap();
    let status = w.app.client.auth_status(&t.access_token).await.unwrap();
    assert_eq!(
        (status.aud.as_str(), status.scope.as_str(), status.org),
        ("https://api.example.com", "read", None)
    );
    // What the user's sign-in does not allow, the key does not get either.
    assert_eq!(
        reason(
            w.app
                .client
                .jwt_bearer(
                    &assertion(&w, &k, &info.id).await,
                    None,
                    Some("https://elsewhere.example.com"),
                    None
                )
                .await
        ),
        "audience-not-allowed"
    );
    assert_eq!(
        reason(
            w.app
                .client
                .jwt_bearer(&assertion(&w, &k, &info.id).await, None, None, Some("acme"))
                .await
        ),
        "org-not-member"
    );
    let listed = w.app.client.user_keys(&bob).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
        [info.id.as_str()]
    );
    assert_eq!(reason(w.app.client.user_keys("usr_nope").await), "not-found");
    w.app.client.revoke_user_key(&info.id).await.unwrap();
    assert_eq!(reason(w.app.client.revoke_user_key("uk_nope").await), "not-found");
    assert_eq!(reason(w.app.client.auth_status(&t.access_token).await), "revoked");
    assert_eq!(
        reason(
            w.app
                .client
                .jwt_bearer(&assertion(&w, &k, &info.id).await, None, None, None)
                .await
        ),
        "key-revoked"
    );
}

#[tokio::test]
async fn bad_keys_and_proofs_are_refused_with_their_reasons_and_spend_nothing() {
    let w = world().await;
    let (_, alice) = signed_in(&w, "alice", None).await;
    let (_, bob) = signed_in(&w, "bob", None).await;
    let boot = alice.key_bootstrap("phone").await.unwrap();
    let bob_boot = bob.key_bootstrap("bob's phone").await.unwrap();
    let k = key(SigningAlg::EdDSA);
    let jwk = device_key::public_jwk(&k);
    let t = now(&w);
    let try_register = |jwk: serde_json::Value, proof: String, ket: String| {
        let client = w.app.client.clone();
        async move { client.key_register(&ket, &jwk, &proof).await }
    };
    let expect = |status: u16, r: &str| (status, r.to_owned());
    let short = |res: Result<UserKeyInfo, Error>| {
        let (status, _, reason) = refusal(res);
        (status, reason)
    };

    // Signed by another key than the one registered.
    let other = key(SigningAlg::EdDSA);
    let proof = device_key::proof(&other, &boot.ket, &boot.nonce, t).unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), proof, boot.ket.clone()).await),
        expect(400, "proof-of-possession-invalid")
    );
    // Over another nonce.
    let proof = device_key::proof(&k, &boot.ket, &bob_boot.nonce, t).unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), proof, boot.ket.clone()).await),
        expect(400, "proof-of-possession-invalid")
    );
    // Another user's enrollment token with a proof for this one (and the other way round).
    let proof = device_key::proof(&k, &boot.ket, &boot.nonce, t).unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), proof, bob_boot.ket.clone()).await),
        expect(400, "proof-of-possession-invalid")
    );
    let proof = device_key::proof(&k, &bob_boot.ket, &boot.nonce, t).unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), proof, boot.ket.clone()).await),
        expect(400, "proof-of-possession-invalid")
    );
    // Not typed as a proof; made long before the enrollment; not a JWS at all.
    let claims = device_key::ProofClaims {
        nonce: boot.nonce.clone(),
        ket_hash: device_key::ket_hash(&boot.ket),
        iat: t,
    };
    let untyped = tollgate_crypto::jws::sign_with_header(&k, "JWT", None, None, &claims).unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), untyped, boot.ket.clone()).await),
        expect(400, "proof-of-possession-invalid")
    );
    let stale = device_key::proof(&k, &boot.ket, &boot.nonce, t - 3600).unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), stale, boot.ket.clone()).await),
        expect(400, "proof-of-possession-invalid")
    );
    assert_eq!(
        short(try_register(jwk.clone(), "not.a.jws".into(), boot.ket.clone()).await),
        expect(400, "proof-of-possession-invalid")
    );
    // A JWK with its private part, an RSA key, other curves, broken coordinates.
    let good_proof = device_key::proof(&k, &boot.ket, &boot.nonce, t).unwrap();
    let mut with_d = jwk.clone();
    with_d["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    assert_eq!(
        short(try_register(with_d, good_proof.clone(), boot.ket.clone()).await),
        expect(400, "public-key-invalid")
    );
    let rsa = key(SigningAlg::RS256);
    let rsa_proof = device_key::proof(&rsa, &boot.ket, &boot.nonce, t).unwrap();
    assert_eq!(
        short(try_register(device_key::public_jwk(&rsa), rsa_proof, boot.ket.clone()).await),
        expect(400, "public-key-unsupported")
    );
    let p384 = json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"});
    assert_eq!(
        short(try_register(p384, good_proof.clone(), boot.ket.clone()).await),
        expect(400, "public-key-unsupported")
    );
    let mut short_x = jwk.clone();
    short_x["x"] = json!("AAAA");
    assert_eq!(
        short(try_register(short_x, good_proof.clone(), boot.ket.clone()).await),
        expect(400, "public-key-invalid")
    );
    let p256 = device_key::public_jwk(&key(SigningAlg::ES256));
    let mut off_curve = p256.clone();
    off_curve["y"] = off_curve["x"].clone();
    assert_eq!(
        short(try_register(off_curve, good_proof.clone(), boot.ket.clone()).await),
        expect(400, "public-key-invalid")
    );
    assert_eq!(
        short(try_register(json!("a string"), good_proof.clone(), boot.ket.clone()).await),
        expect(400, "public-key-invalid")
    );
    // A key of the wrong algorithm for its proof.
    let ec_proof = device_key::proof(&key(SigningAlg::ES256), &boot.ket, &boot.nonce, t).unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), ec_proof, boot.ket.clone()).await),
        expect(400, "proof-of-possession-invalid")
    );
    // No enrollment token, an unknown one, a user's access token.
    let no_bearer = w
        .app
        .http
        .post(w.app.url("/v1/keys/register"))
        .json(&json!({"public_jwk": jwk, "proof": good_proof}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_bearer.status(), 401);
    assert_eq!(no_bearer.headers()["x-tollgate-reason"], "token-missing");
    let unknown = secret_token::mint(SecretKind::KeyEnrollment, tollgate_crypto::random_byte_source());
    assert_eq!(
        short(try_register(jwk.clone(), good_proof.clone(), unknown).await),
        expect(401, "key-enrollment-token-unknown")
    );
    let access = w.sign_in("alice", None).await.access;
    assert_eq!(
        short(try_register(jwk.clone(), good_proof.clone(), access).await),
        expect(401, "key-enrollment-token-unknown")
    );

    // None of this spent the enrollment token: the right proof registers the key, once.
    let info = try_register(jwk.clone(), good_proof.clone(), boot.ket.clone())
        .await
        .unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), good_proof.clone(), boot.ket.clone()).await),
        expect(409, "key-enrollment-token-used")
    );
    // A key is registered once, for anyone.
    let again = alice.key_bootstrap("phone again").await.unwrap();
    assert_eq!(
        short(register(&w, &again, &k).await),
        expect(409, "key-already-registered")
    );
    let bob_proof = device_key::proof(&k, &bob_boot.ket, &bob_boot.nonce, t).unwrap();
    assert_eq!(
        short(try_register(jwk.clone(), bob_proof, bob_boot.ket.clone()).await),
        expect(409, "key-already-registered")
    );
    assert_eq!(alice.my_keys().await.unwrap()[0].id, info.id);
    assert!(bob.my_keys().await.unwrap().is_empty());

    // Refusals of a token holder are audited.
    let filter = AuditFilter {
        action: Some("key.register".into()),
        ..AuditFilter::default()
    };
    let events = w.app.client.audit_page(&filter).await.unwrap().events;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("proof-of-possession-invalid")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.reason.is_none() && e.target.as_deref() == Some(info.id.as_str()))
    );
}

#[tokio::test]
async fn enrollment_tokens_expire_and_die_with_a_logout_everywhere() {
    let w = world().await;
    let (_, alice) = signed_in(&w, "alice", None).await;
    let boot = alice.key_bootstrap("laptop").await.unwrap();
    w.app.advance(Duration::from_secs(601));
    let (status, _, why) = refusal(register(&w, &boot, &key(SigningAlg::EdDSA)).await);
    assert_eq!((status, why.as_str()), (401, "key-enrollment-token-expired"));

    let s = w.sign_in("alice", None).await;
    let alice = w.app.client.clone().with_user_token(s.access);
    let boot = alice.key_bootstrap("laptop").await.unwrap();
    alice.logout_everywhere().await.unwrap();
    assert_eq!(
        reason(register(&w, &boot, &key(SigningAlg::EdDSA)).await),
        "user-version-stale"
    );
    // Bad device names are refused before anything is created.
    let s = w.sign_in("alice", None).await;
    let alice = w.app.client.clone().with_user_token(s.access);
    for bad in ["", "   ", "tab\there", &"x".repeat(65)] {
        assert_eq!(
            reason(alice.key_bootstrap(bad).await),
            "invalid-parameter",
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn of_concurrent_registrations_with_one_enrollment_token_exactly_one_wins() {
    let w = world().await;
    let (_, alice) = signed_in(&w, "alice", None).await;
    let boot = alice.key_bootstrap("laptop").await.unwrap();
    let t = now(&w);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = w.app.client.clone();
            let k = key(SigningAlg::EdDSA);
            let proof = device_key::proof(&k, &boot.ket, &boot.nonce, t).unwrap();
            let (ket, jwk) = (boot.ket.clone(), device_key::public_jwk(&k));
            tokio::spawn(async move { client.key_register(&ket, &jwk, &proof).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(e.reason(), Some("key-enrollment-token-used")),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(alice.my_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn assertions_are_refused_with_their_reasons() {
    let w = world().await;
    let (_, alice) = signed_in(&w, "alice", None).await;
    let (k, info) = enroll(&w, &alice, "laptop", SigningAlg::EdDSA).await;
    let endpoint = token_endpoint(&w).await;
    let t = now(&w);
    let claims = |iat: i64, exp: i64, jti: &str| {
        json!(AssertionClaims {
            iss: info.id.clone(),
            sub: info.id.clone(),
            aud: endpoint.clone(),
            iat,
            exp,
            jti: jti.into(),
        })
    };
    let refused = |r: Result<tollgate_client::proto::oauth::TokenResponse, Error>| {
        let (status, error, reason) = refusal(r);
        assert_eq!((status, error.as_str()), (400, "invalid_grant"), "{reason}");
        reason
    };
    let c = &w.app.client;
    let bearer = |a: String| async move { c.jwt_bearer(&a, None, None, None).await };

    let mut wrong_aud = claims(t, t + 60, "j1");
    wrong_aud["aud"] = json!("https://elsewhere.example.com/oauth/token");
    assert_eq!(
        refused(bearer(signed(&k, Some(&info.id), &wrong_aud)).await),
        "aud-mismatch"
    );
    assert_eq!(
        refused(bearer(signed(&k, Some(&info.id), &claims(t - 120, t - 60, "j2"))).await),
        "expired"
    );
    assert_eq!(
        refused(bearer(signed(&k, Some(&info.id), &claims(t, t + 3600, "j3"))).await),
        "assertion-too-long-lived"
    );
    assert_eq!(
        refused(bearer(signed(&k, Some(&info.id), &claims(t - 3600, t + 60, "j4"))).await),
        "token-too-old"
    );
    assert_eq!(
        refused(bearer(signed(&k, Some(&info.id), &claims(t + 600, t + 60, "j5"))).await),
        "not-yet-valid"
    );
    let mut other_iss = claims(t, t + 60, "j6");
    other_iss["iss"] = json!("uk_someoneelse");
    assert_eq!(
        refused(bearer(signed(&k, Some(&info.id), &other_iss)).await),
        "assertion-invalid"
    );
    let mut no_jti = claims(t, t + 60, "j7");
    no_jti.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        refused(bearer(signed(&k, Some(&info.id), &no_jti)).await),
        "claim-missing"
    );
    assert_eq!(
        refused(bearer(signed(&k, None, &claims(t, t + 60, "j8"))).await),
        "assertion-invalid"
    );
    assert_eq!(
        refused(bearer(signed(&k, Some("uk_unknown"), &claims(t, t + 60, "j9"))).await),
        "key-unknown"
    );
    // Signed by another key (of the same algorithm) than the one kid names.
    let intruder = key(SigningAlg::EdDSA);
    assert_eq!(
        refused(bearer(signed(&intruder, Some(&info.id), &claims(t, t + 60, "j10"))).await),
        "invalid-signature"
    );
    let ec = key(SigningAlg::ES256);
    assert_eq!(
        refused(bearer(signed(&ec, Some(&info.id), &claims(t, t + 60, "j11"))).await),
        "alg-not-allowed"
    );
    assert_eq!(refused(bearer("garbage".into()).await), "malformed");
    assert_eq!(
        reason(c.jwt_bearer("", None, None, None).await),
        "missing-parameter"
    );

    // The issuer URL is an accepted aud too; a jti is accepted once.
    let mut issuer_aud = claims(t, t + 60, "once");
    issuer_aud["aud"] = json!([w.app.url.clone()]);
    let once = signed(&k, Some(&info.id), &issuer_aud);
    bearer(once.clone()).await.unwrap();
    assert_eq!(refused(bearer(once).await), "assertion-replayed");
    // The same jti of another key is another jti.
    let (k2, info2) = enroll(&w, &alice, "desktop", SigningAlg::EdDSA).await;
    let mut theirs = claims(t, t + 60, "once");
    theirs["iss"] = json!(info2.id);
    theirs["sub"] = json!(info2.id);
    bearer(signed(&k2, Some(&info2.id), &theirs)).await.unwrap();

    // The user disabled: no tokens; enabled again: tokens again (keys outlive user_ver).
    let alice_id = info.user_id.clone();
    c.user_action(&alice_id, UserAction::Disable).await.unwrap();
    assert_eq!(
        refused(bearer(assertion(&w, &k, &info.id).await).await),
        "user-disabled"
    );
    c.user_action(&alice_id, UserAction::Enable).await.unwrap();
    bearer(assertion(&w, &k, &info.id).await).await.unwrap();

    // Refusals after the signature verified are audited.
    let filter = AuditFilter {
        action: Some("token.jwt_bearer".into()),
        ..AuditFilter::default()
    };
    let events = c.audit_page(&filter).await.unwrap().events;
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    for r in ["aud-mismatch", "expired", "assertion-replayed", "user-disabled"] {
        assert!(reasons.contains(&r), "{r} not audited: {reasons:?}");
    }
    assert!(
        !reasons.contains(&"invalid-signature"),
        "unverified refusals are not audited"
    );
}

#[tokio::test]
async fn the_key_limit_holds_and_a_device_keys_token_enrolls_no_more_keys() {
    let w = world_with(|c| c.device_keys.max_keys_per_user = 2).await;
    let (_, alice) = signed_in(&w, "alice", None).await;
    let spare = alice.key_bootstrap("spare").await.unwrap();
    let (_, first) = enroll(&w, &alice, "one", SigningAlg::EdDSA).await;
    let (two, _) = enroll(&w, &alice, "two", SigningAlg::ES256).await;
    let (status, _, why) = refusal(alice.key_bootstrap("three").await);
    assert_eq!((status, why.as_str()), (409, "key-limit"));
    assert_eq!(
        reason(register(&w, &spare, &key(SigningAlg::EdDSA)).await),
        "key-limit"
    );
    // Revoking one frees its place.
    alice.revoke_my_key(&first.id).await.unwrap();
    enroll(&w, &alice, "three", SigningAlg::EdDSA).await;
    assert_eq!(alice.my_keys().await.unwrap().len(), 3);

    // A device key's token cannot plant further keys (one that outlives the stolen key).
    let keys = alice.my_keys().await.unwrap();
    let second = keys.iter().find(|k| k.device_name == "two").unwrap();
    let t = w
        .app
        .client
        .jwt_bearer(&assertion(&w, &two, &second.id).await, None, None, None)
        .await
        .unwrap();
    let as_device = w.app.client.clone().with_user_token(t.access_token);
    let (status, _, why) = refusal(as_device.key_bootstrap("sneaky").await);
    assert_eq!((status, why.as_str()), (403, "permission-denied"));
    // Nor sign in another device (which could then enroll keys).
    let code = w
        .app
        .client
        .device_authorization("tollgate-cli", None, None)
        .await
        .unwrap()
        .user_code;
    let (status, _, why) = refusal(as_device.device_approve(&code, None).await);
    assert_eq!((status, why.as_str()), (403, "permission-denied"));
    // The user's own sign-in can do both.
    alice.device_approve(&code, None).await.unwrap();
}

#[tokio::test]
async fn logout_everywhere_ends_a_keys_sessions_but_not_the_key() {
    let w = world().await;
    let (_, alice) = signed_in(&w, "alice", None).await;
    let (k, info) = enroll(&w, &alice, "laptop", SigningAlg::EdDSA).await;
    let t = w
        .app
        .client
        .jwt_bearer(&assertion(&w, &k, &info.id).await, None, None, None)
        .await
        .unwrap();
    alice.logout_everywhere().await.unwrap();
    assert_eq!(
        reason(w.app.client.auth_status(&t.access_token).await),
        "user-version-stale"
    );
    assert_eq!(
        reason(
            w.app
                .client
                .refresh(t.refresh_token.as_deref().unwrap(), None, None)
                .await
        ),
        "user-version-stale"
    );
    let again = w
        .app
        .client
        .jwt_bearer(&assertion(&w, &k, &info.id).await, None, None, None)
        .await
        .unwrap();
    w.app.client.auth_status(&again.access_token).await.unwrap();
}

#[tokio::test]
async fn on_redis_enrollment_single_use_and_assertion_replay_hold_alike() {
    let Some(url) = tollgate_store::testing::redis_url().await else {
        return;
    };
    let prefix = format!("tollgate-test:{}:", uuid::Uuid::new_v4().simple());
    let w = world_with(move |c| {
        c.redis.url = url;
        c.redis.prefix = prefix;
    })
    .await;
    assert_eq!(w.app.state.ephemeral.ephemeral_backend(), "redis");
    let (_, alice) = signed_in(&w, "alice", None).await;
    let boot = alice.key_bootstrap("laptop").await.unwrap();
    let k = key(SigningAlg::EdDSA);
    let info = register(&w, &boot, &k).await.unwrap();
    assert_eq!(
        reason(register(&w, &boot, &key(SigningAlg::EdDSA)).await),
        "key-enrollment-token-used"
    );
    let once = assertion(&w, &k, &info.id).await;
    w.app.client.jwt_bearer(&once, None, None, None).await.unwrap();
    assert_eq!(
        reason(w.app.client.jwt_bearer(&once, None, None, None).await),
        "assertion-replayed"
    );
}

/// The same key authenticates as the OAuth client `key:<id>` with `private_key_jwt` (RFC
/// 7523 §2.2) at `grant_type=client_credentials`; its refusals are `401 invalid_client`.
#[tokio::test]
async fn a_device_key_authenticates_as_a_client_with_private_key_jwt() {
    let w = world().await;
    let (alice, user) = signed_in(&w, "alice", Some("acme")).await;
    let (k, info) = enroll(&w, &user, "laptop", SigningAlg::ES256).await;
    let c = &w.app.client;
    let client_id = format!("key:{}", info.id);

    let once = assertion(&w, &k, &info.id).await;
    let tokens = c.private_key_jwt(&once, Some(&client_id), None).await.unwrap();
    let status = c.auth_status(&tokens.access_token).await.unwrap();
    assert_eq!(
        (status.sub.as_str(), status.client_id.as_str()),
        (alice.as_str(), client_id.as_str())
    );
    assert!(tokens.refresh_token.is_some());

    // Replays, another key's client id, and mixed methods are refused as client auth.
    let refused = |r: Result<_, Error>| match r {
        Err(Error::Refused { status, body }) => (status.as_u16(), body.error, Some(body.reason)),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(c.private_key_jwt(&once, None, None).await),
        (
            401,
            "invalid_client".to_owned(),
            Some("assertion-replayed".to_owned())
        )
    );
    let fresh = assertion(&w, &k, &info.id).await;
    assert_eq!(
        refused(c.private_key_jwt(&fresh, Some("key:uk_someoneelse"), None).await)
            .2
            .as_deref(),
        Some("client-auth-failed")
    );
    let form = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        ),
        ("client_assertion", fresh.as_str()),
    ];
    let r = w
        .app
        .http
        .post(w.app.url("/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", tollgate_client::CLIENT_ASSERTION_TYPE),
        ("client_assertion", fresh.as_str()),
        ("client_id", client_id.as_str()),
        ("client_secret", "x"),
    ];
    let r = w
        .app
        .http
        .post(w.app.url("/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "client-auth-ambiguous");
    // Revoked: refused too.
    user.revoke_my_key(&info.id).await.unwrap();
    let after = assertion(&w, &k, &info.id).await;
    assert_eq!(
        refused(c.private_key_jwt(&after, None, None).await).2.as_deref(),
        Some("key-revoked")
    );
}
