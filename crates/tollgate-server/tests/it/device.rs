//! The device authorization grant (RFC 8628), through the SDK: the authorization answer,
//! every polling error (`authorization_pending`, `slow_down` with the interval growing and
//! remembered, `expired_token`, `access_denied`, `invalid_grant`), approval by a signed-in
//! user through the approval API, single use under concurrency, and the audit trail.

use crate::orgs::{World, world};
use std::time::Duration;
use tollgate_client::proto::audit::AuditFilter;
use tollgate_client::{Client, Error, UserAction};
use tollgate_core::device::USER_CODE_ALPHABET;
use tollgate_core::secret_token::{self, SecretKind};

const CLI: &str = "tollgate-cli";

/// `(status, error, reason, description)` of a refusal.
fn refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> (u16, String, String, String) {
    match r.expect_err("refused") {
        Error::Refused { status, body } => (
            status.as_u16(),
            body.error.clone(),
            body.reason.clone(),
            body.error_description.clone(),
        ),
        other => panic!("not a refusal: {other}"),
    }
}

/// `(error, reason)` of a refusal.
fn codes<T: std::fmt::Debug>(r: Result<T, Error>) -> (String, String) {
    let (_, error, reason, _) = refusal(r);
    (error, reason)
}

fn pair(error: &str, reason: &str) -> (String, String) {
    (error.to_owned(), reason.to_owned())
}

/// An org `acme` owned by alice, and an SDK client acting as her (signed in to acme).
async fn alice_in_acme(w: &World) -> (String, Client) {
    let alice = w.user("alice").await;
    w.org("acme", &alice).await;
    let session = w.sign_in("alice", Some("acme")).await;
    (alice, w.app.client.clone().with_user_token(session.access))
}

#[tokio::test]
async fn the_authorization_answer_has_the_rfc_shape() {
    let w = world().await;
    let app = &w.app;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    assert!(a.device_code.starts_with("tg_dc_"), "{}", a.device_code);
    assert_eq!(a.user_code.len(), 9, "{}", a.user_code);
    assert_eq!(&a.user_code[4..5], "-");
    assert!(
        a.user_code
            .bytes()
            .filter(|b| *b != b'-')
            .all(|b| USER_CODE_ALPHABET.contains(&b)),
        "{}",
        a.user_code
    );
    assert_eq!(a.verification_uri, format!("{}/device", app.url));
    assert_eq!(
        a.verification_uri_complete,
        format!("{}/device?user_code={}", app.url, a.user_code)
    );
    assert_eq!((a.expires_in, a.interval), (600, 5));
    // Two authorizations never share codes.
    let b = app
        .client
        .device_authorization(CLI, Some("read"), None)
        .await
        .unwrap();
    assert_ne!((&a.device_code, &a.user_code), (&b.device_code, &b.user_code));

    // On the wire: a form body in, no caching of the answer.
    let resp = app
        .http
        .post(app.url("/oauth/device_authorization"))
        .form(&[("client_id", CLI)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");

    // What a device may send.
    assert_eq!(
        codes(app.client.device_authorization("", None, None).await),
        pair("invalid_request", "missing-parameter")
    );
    for bad in ["has space", "ü", &"x".repeat(65)] {
        assert_eq!(
            codes(app.client.device_authorization(bad, None, None).await),
            pair("invalid_request", "invalid-parameter"),
            "{bad}"
        );
    }
    assert_eq!(
        codes(
            app.client
                .device_authorization(CLI, Some("bad\"scope"), None)
                .await
        ),
        pair("invalid_scope", "scope-malformed")
    );
    let resp = app
        .http
        .post(app.url("/oauth/device_authorization"))
        .form(&[("client_id", CLI), ("audience", "a"), ("resource", "b")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn polling_before_approval_is_pending_and_too_fast_polls_grow_the_interval_for_good() {
    let w = world().await;
    let app = &w.app;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    let poll = || app.client.device_token(&a.device_code, CLI);

    let (status, error, reason, _) = refusal(poll().await);
    assert_eq!(
        (status, error.as_str(), reason.as_str()),
        (400, "authorization_pending", "authorization-pending")
    );
    // At once again: slow down, 5 s more.
    let (status, error, reason, why) = refusal(poll().await);
    assert_eq!(
        (status, error.as_str(), reason.as_str()),
        (400, "slow_down", "slow-down")
    );
    assert!(why.contains("10 s"), "{why}");
    // The old interval is not enough any more; each early poll adds 5 s again.
    app.advance(Duration::from_secs(5));
    let (_, error, _, why) = refusal(poll().await);
    assert_eq!(error, "slow_down");
    assert!(why.contains("15 s"), "{why}");
    app.advance(Duration::from_secs(14));
    let (_, error, _, why) = refusal(poll().await);
    assert_eq!(error, "slow_down");
    assert!(why.contains("20 s"), "{why}");
    // Waiting the whole (remembered) interval is fine.
    app.advance(Duration::from_secs(20));
    let (_, error, _, why) = refusal(poll().await);
    assert_eq!(error, "authorization_pending");
    assert!(why.contains("20 s"), "{why}");
    app.advance(Duration::from_secs(19));
    assert_eq!(codes(poll().await), pair("slow_down", "slow-down"));
}

#[tokio::test]
async fn an_approval_gives_the_user_s_tokens_once_with_a_working_refresh_token() {
    let w = world().await;
    let app = &w.app;
    let (alice, as_alice) = alice_in_acme(&w).await;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    assert_eq!(
        codes(app.client.device_token(&a.device_code, CLI).await),
        pair("authorization_pending", "authorization-pending")
    );

    // The user types the code in lower case without the dash.
    let typed = a.user_code.replace('-', "").to_lowercase();
    let seen = as_alice.device_lookup(&typed).await.unwrap();
    assert_eq!(
        (
            seen.user_code.as_str(),
            seen.client_id.as_str(),
            seen.state.as_str(),
            seen.expired
        ),
        (a.user_code.as_str(), CLI, "pending", false)
    );
    assert!(seen.granted.is_none());
    let approved = as_alice.device_approve(&typed, None).await.unwrap();
    assert_eq!(approved.state, "approved");
    let granted = approved.granted.expect("the approver sees the grant");
    assert_eq!(
        (
            granted.scope.as_str(),
            granted.audience.as_str(),
            granted.refresh_token
        ),
        ("read", "tollgate", true)
    );
    // Deciding twice is refused clearly.
    let (status, _, reason, why) = refusal(as_alice.device_approve(&a.user_code, None).await);
    assert_eq!((status, reason.as_str()), (409, "conflict"));
    assert!(why.contains("approved"), "{why}");
    assert_eq!(refusal(as_alice.device_deny(&a.user_code).await).0, 409);

    app.advance(Duration::from_secs(5));
    let tokens = app.client.device_token(&a.device_code, CLI).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.scope.as_deref(), Some("read"));
    let status = app.client.auth_status(&tokens.access_token).await.unwrap();
    assert_eq!(status.sub, alice);
    assert_eq!(status.client_id, format!("device:{CLI}"));
    assert_eq!(status.aud, "tollgate");
    assert_eq!(status.roles, ["owner"]);
    assert!(status.org.is_some());
    assert_eq!(status.upstream.map(|u| u.name).as_deref(), Some("clerk"));
    // The token works for tollgate's own API, like the user's.
    let me = app.client.clone().with_user_token(tokens.access_token.clone());
    assert_eq!(me.me().await.unwrap().user.id, alice);

    // The refresh token rotates like any session's (no client authentication: a public client).
    let refresh = tokens.refresh_token.expect("a session");
    let next = app.client.refresh(&refresh, None, None).await.unwrap();
    assert_ne!(next.refresh_token.as_deref(), Some(refresh.as_str()));
    assert_eq!(
        app.client.auth_status(&next.access_token).await.unwrap().sub,
        alice
    );

    // Single use.
    assert_eq!(
        codes(app.client.device_token(&a.device_code, CLI).await),
        pair("invalid_grant", "device-code-used")
    );
    assert_eq!(
        as_alice.device_lookup(&a.user_code).await.unwrap().state,
        "consumed"
    );

    // Every step is audited, without either code.
    let events = app
        .client
        .audit_page(&AuditFilter {
            action: Some("device.".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .events;
    let mut steps: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.action.clone(), e.outcome.clone()))
        .collect();
    steps.sort();
    steps.dedup();
    for expected in [
        ("device.approve", "success"),
        ("device.approve", "denied"),
        ("device.token", "success"),
        ("device.token", "denied"),
    ] {
        assert!(
            steps.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {steps:?}"
        );
    }
    let trail = serde_json::to_string(&events).unwrap();
    for secret in [&a.device_code, &a.user_code, &typed] {
        assert!(!trail.contains(secret.as_str()), "the audit trail holds a code");
    }
    let token_event = events
        .iter()
        .find(|e| e.action == "device.token" && e.outcome == "success")
        .unwrap();
    assert_eq!(token_event.target.as_deref(), Some(approved.id.as_str()));
}

#[tokio::test]
async fn of_concurrent_polls_after_approval_exactly_one_gets_tokens() {
    let w = world().await;
    let app = &w.app;
    let (_, as_alice) = alice_in_acme(&w).await;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    as_alice.device_approve(&a.user_code, None).await.unwrap();
    let polls = (0..8).map(|_| app.client.device_token(&a.device_code, CLI));
    let results = futures_util::future::join_all(polls).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for r in results.into_iter().filter(Result::is_err) {
        assert_eq!(codes(r), pair("invalid_grant", "device-code-used"));
    }
}

#[tokio::test]
async fn a_denial_answers_access_denied() {
    let w = world().await;
    let app = &w.app;
    let (_, as_alice) = alice_in_acme(&w).await;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    let denied = as_alice.device_deny(&a.user_code).await.unwrap();
    assert_eq!(denied.state, "denied");
    for _ in 0..2 {
        assert_eq!(
            codes(app.client.device_token(&a.device_code, CLI).await),
            pair("access_denied", "device-access-denied")
        );
    }
    assert_eq!(refusal(as_alice.device_approve(&a.user_code, None).await).0, 409);
}

#[tokio::test]
async fn expired_codes_answer_expired_token_and_cannot_be_approved() {
    let w = world().await;
    let app = &w.app;
    let (_, as_alice) = alice_in_acme(&w).await;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    let late = app.client.device_authorization(CLI, None, None).await.unwrap();
    as_alice.device_approve(&late.user_code, None).await.unwrap();
    app.advance(Duration::from_secs(600));
    assert_eq!(
        codes(app.client.device_token(&a.device_code, CLI).await),
        pair("expired_token", "device-code-expired")
    );
    // An approval not collected in time is lost with its code.
    assert_eq!(
        codes(app.client.device_token(&late.device_code, CLI).await),
        pair("expired_token", "device-code-expired")
    );
    // Signed in again (her token from before lived as long as the upstream one).
    let session = w.sign_in("alice", Some("acme")).await;
    let as_alice = app.client.clone().with_user_token(session.access);
    let seen = as_alice.device_lookup(&a.user_code).await.unwrap();
    assert!(seen.expired);
    let (status, error, reason, _) = refusal(as_alice.device_approve(&a.user_code, None).await);
    assert_eq!(
        (status, error.as_str(), reason.as_str()),
        (400, "expired_token", "device-code-expired")
    );
}

#[tokio::test]
async fn wrong_client_ids_and_unknown_codes_are_invalid_grant() {
    let w = world().await;
    let app = &w.app;
    let (_, as_alice) = alice_in_acme(&w).await;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    as_alice.device_approve(&a.user_code, None).await.unwrap();
    assert_eq!(
        codes(app.client.device_token(&a.device_code, "other-cli").await),
        pair("invalid_grant", "device-code-unknown")
    );
    let unknown = secret_token::mint(SecretKind::DeviceCode, tollgate_crypto::random_byte_source());
    let (head, last) = a.device_code.split_at(a.device_code.len() - 1);
    let typo = format!("{head}{}", if last == "x" { "y" } else { "x" });
    for code in [
        unknown.as_str(),
        "nope",
        typo.as_str(),
        "tg_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(
            codes(app.client.device_token(code, CLI).await),
            pair("invalid_grant", "device-code-unknown"),
            "{code}"
        );
    }
    // The wrong client did not spend the approval.
    app.client.device_token(&a.device_code, CLI).await.unwrap();
}

#[tokio::test]
async fn user_codes_unknown_are_404_and_malformed_ones_400() {
    let w = world().await;
    let (_, as_alice) = alice_in_acme(&w).await;
    w.app.client.device_authorization(CLI, None, None).await.unwrap();
    // One letter off any real code is (almost surely) unknown; `BBBB-BBBB` is well formed.
    let (status, error, reason, _) = refusal(as_alice.device_approve("bbbb-bbbb", None).await);
    assert_eq!(
        (status, error.as_str(), reason.as_str()),
        (404, "not_found", "user-code-unknown")
    );
    assert_eq!(refusal(as_alice.device_lookup("BBBBBBBB").await).0, 404);
    assert_eq!(refusal(as_alice.device_deny("BBBB BBBB").await).0, 404);
    for bad in ["hello", "AEIO-UAEI", "BCDF-GHJ", ""] {
        assert_eq!(
            codes(as_alice.device_lookup(bad).await),
            pair("invalid_request", "invalid-parameter"),
            "{bad}"
        );
    }
    // Without a user token the approval API refuses before looking anything up.
    let anonymous = w.app.client.clone().with_user_token("not-a-token");
    assert_eq!(refusal(anonymous.device_approve("bbbb-bbbb", None).await).0, 401);
}

#[tokio::test]
async fn the_approving_user_chooses_an_org_they_belong_to_and_what_they_may_grant() {
    let w = world().await;
    let app = &w.app;
    let (_, as_alice) = alice_in_acme(&w).await;
    let bob = w.user("bob").await;
    w.org("bobs", &bob).await;

    // Not a member: refused and audited; the code stays pending.
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    let (status, _, reason, _) = refusal(as_alice.device_approve(&a.user_code, Some("bobs")).await);
    assert_eq!((status, reason.as_str()), (403, "org-not-member"));
    assert_eq!(
        as_alice.device_lookup(&a.user_code).await.unwrap().state,
        "pending"
    );
    assert_eq!(
        refusal(as_alice.device_approve(&a.user_code, Some("no-such-org")).await).2,
        "org-not-member"
    );
    // An audience the user's sign-in does not allow.
    let evil = app
        .client
        .device_authorization(CLI, None, Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(
        codes(as_alice.device_approve(&evil.user_code, None).await),
        pair("invalid_target", "audience-not-allowed")
    );
    // One it allows, and a scope it does not.
    let api = app
        .client
        .device_authorization(CLI, Some("read write"), Some("https://api.example.com"))
        .await
        .unwrap();
    let approved = as_alice
        .device_approve(&api.user_code, Some("acme"))
        .await
        .unwrap();
    let granted = approved.granted.unwrap();
    assert_eq!(
        (granted.scope.as_str(), granted.audience.as_str()),
        ("read", "https://api.example.com")
    );
    let tokens = app.client.device_token(&api.device_code, CLI).await.unwrap();
    let status = app.client.auth_status(&tokens.access_token).await.unwrap();
    assert_eq!(
        (status.aud.as_str(), status.scope.as_str()),
        ("https://api.example.com", "read")
    );
    let nothing = app
        .client
        .device_authorization(CLI, Some("admin"), None)
        .await
        .unwrap();
    assert_eq!(
        codes(as_alice.device_approve(&nothing.user_code, None).await),
        pair("invalid_scope", "scope-not-allowed")
    );
}

#[tokio::test]
async fn a_logout_everywhere_after_approval_ends_the_approval() {
    let w = world().await;
    let app = &w.app;
    let (alice, as_alice) = alice_in_acme(&w).await;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    as_alice.device_approve(&a.user_code, None).await.unwrap();
    app.client
        .user_action(&alice, UserAction::LogoutEverywhere)
        .await
        .unwrap();
    assert_eq!(
        codes(app.client.device_token(&a.device_code, CLI).await),
        pair("invalid_grant", "user-version-stale")
    );
}

#[tokio::test]
async fn on_redis_polling_approval_and_single_use_hold_alike() {
    let Some(url) = tollgate_store::testing::redis_url().await else {
        return;
    };
    let prefix = format!("tollgate-test:{}:", uuid::Uuid::new_v4().simple());
    let w = crate::orgs::world_with(move |c| {
        c.redis.url = url;
        c.redis.prefix = prefix;
    })
    .await;
    let app = &w.app;
    assert_eq!(app.state.ephemeral.ephemeral_backend(), "redis");
    let (_, as_alice) = alice_in_acme(&w).await;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    assert_eq!(
        codes(app.client.device_token(&a.device_code, CLI).await),
        pair("authorization_pending", "authorization-pending")
    );
    assert_eq!(
        codes(app.client.device_token(&a.device_code, CLI).await),
        pair("slow_down", "slow-down")
    );
    as_alice
        .device_approve(&a.user_code.to_lowercase(), None)
        .await
        .unwrap();
    let polls = (0..8).map(|_| app.client.device_token(&a.device_code, CLI));
    let results = futures_util::future::join_all(polls).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    let denied = app.client.device_authorization(CLI, None, None).await.unwrap();
    as_alice.device_deny(&denied.user_code).await.unwrap();
    assert_eq!(
        codes(app.client.device_token(&denied.device_code, CLI).await),
        pair("access_denied", "device-access-denied")
    );
}

/// A device (a public client) ends its session by revoking its refresh token without
/// credentials (RFC 7009 asks credentials of confidential clients only).
#[tokio::test]
async fn a_device_revokes_its_own_refresh_token_without_credentials() {
    let w = world().await;
    let app = &w.app;
    let (_, as_alice) = alice_in_acme(&w).await;
    let a = app.client.device_authorization(CLI, None, None).await.unwrap();
    as_alice.device_approve(&a.user_code, None).await.unwrap();
    let tokens = app.client.device_token(&a.device_code, CLI).await.unwrap();
    let refresh = tokens.refresh_token.expect("a session");
    app.client.revoke_refresh_token(&refresh).await.unwrap();
    assert_eq!(
        codes(app.client.refresh(&refresh, None, None).await),
        pair("invalid_grant", "session-revoked")
    );
    // Unknown tokens answer 200 as RFC 7009 says.
    app.client.revoke_refresh_token("tg_rt_nothing").await.unwrap();
}
