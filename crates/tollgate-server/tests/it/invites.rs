//! Invites: created by org admins (with the escalation rule), mailed to the outbox or over
//! SMTP, shown by `GET /verify`, redeemed once with an upstream identity of the invited
//! email even when registration is invite-only, listed and revoked.

use crate::orgs::{World, world_with};
use serde_json::json;
use std::time::Duration;
use tollgate_client::proto::admin::{CreateUserRequest, IdentityInfo};
use tollgate_client::proto::invites::{CreateInviteRequest, CreatedInvite, EmailStatus};
use tollgate_core::time::Clock as _;
use tollgate_server::config::RegistrationMode;

async fn invite_only() -> World {
    world_with(|c| c.users.registration_mode = RegistrationMode::InviteOnly).await
}

fn clerk_iss(w: &World) -> String {
    w.clerk_claims(w.app.clock.now(), "x")["iss"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A user made by an operator (registration is invite-only), linked to Clerk's `sub`.
async fn made_user(w: &World, sub: &str) -> String {
    let req = CreateUserRequest {
        email: Some(format!("{sub}@example.com")),
        identities: vec![IdentityInfo {
            iss: clerk_iss(w),
            sub: sub.into(),
        }],
    };
    w.app.client.create_user(&req).await.unwrap().id
}

/// An upstream Clerk token for `sub` with `email`.
fn upstream(w: &World, sub: &str, email: &str) -> String {
    let mut c = w.clerk_claims(w.app.clock.now(), sub);
    c["sid"] = json!("s");
    c["email"] = json!(email);
    w.clerk_mint(c)
}

fn as_user(w: &World, access: &str) -> tollgate_client::Client {
    w.app.client.clone().with_user_token(access.to_owned())
}

fn invite_req(email: &str, roles: &[&str]) -> CreateInviteRequest {
    CreateInviteRequest {
        email: email.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        ..CreateInviteRequest::default()
    }
}

fn token_of(created: &CreatedInvite) -> String {
    created.link.split("token=").nth(1).unwrap().to_owned()
}

fn reason<T: std::fmt::Debug>(r: Result<T, tollgate_client::Error>) -> String {
    r.expect_err("refused")
        .reason()
        .unwrap_or("(no reason)")
        .to_owned()
}

/// An org `acme` owned by `alice`, and alice's client.
async fn acme(w: &World) -> (String, tollgate_client::Client) {
    let alice = made_user(w, "alice").await;
    w.org("acme", &alice).await;
    let s = w.sign_in("alice", None).await;
    (alice, as_user(w, &s.access))
}

fn decode_qp(s: &str) -> String {
    let b = s.replace("=\r\n", "").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'=', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The header `name` of an RFC 5322 message (unfolded).
fn header(msg: &str, name: &str) -> Option<String> {
    let head = msg.split("\r\n\r\n").next().unwrap();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The decoded body of the part with `content_type` in a multipart message.
fn part(msg: &str, content_type: &str) -> String {
    let ct = header(msg, "Content-Type").unwrap();
    let boundary = ct.split("boundary=").nth(1).unwrap().trim_matches('"').to_owned();
    for p in msg.split(&format!("--{boundary}")).skip(1) {
        let p = p.trim_start_matches("\r\n");
        if header(p, "Content-Type").is_some_and(|c| c.starts_with(content_type)) {
            let body = p.split_once("\r\n\r\n").unwrap().1;
            let qp = header(p, "Content-Transfer-Encoding")
                .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
            return if qp { decode_qp(body) } else { body.to_owned() };
        }
    }
    panic!("no {content_type} part in {msg}");
}

fn outbox(w: &World) -> Vec<String> {
    let dir = w.app.state.config.server.data_dir.join("outbox");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[tokio::test]
async fn an_invite_goes_to_the_outbox_and_is_redeemed_once_under_invite_only() {
    let w = invite_only().await;
    let (_, alice) = acme(&w).await;
    // Bob cannot sign in: registration is invite-only.
    let bob_token = upstream(&w, "bob", "Bob@Example.com");
    let err = w
        .app
        .client
        .token_exchange(&tollgate_client::TokenExchange::jwt(&bob_token))
        .await;
    assert_eq!(reason(err), "registration-closed");

    let created = alice
        .create_invite("acme", &invite_req("bob@example.com", &["member", "viewer"]))
        .await
        .unwrap();
    assert_eq!(created.email_status, EmailStatus::Outbox);
    assert!(created.id.starts_with("inv_"));
    assert!(created.link.starts_with(&format!(
        "{}/verify?token=tg_inv_",
        w.app.state.config.server.public_url
    )));
    let token = token_of(&created);

    // The message in the outbox: headers, both parts, the link.
    let mails = outbox(&w);
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(header(m, "To").as_deref(), Some("bob@example.com"));
    assert!(header(m, "From").unwrap().contains("tollgate@localhost"));
    assert!(header(m, "Subject").unwrap().contains("acme"));
    assert!(header(m, "Date").is_some() && header(m, "Message-ID").is_some());
    assert!(
        header(m, "Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    let text = part(m, "text/plain");
    let html = part(m, "text/html");
    assert!(text.contains(&created.link), "{text}");
    assert!(html.contains(&format!("href=\"{}\"", created.link)), "{html}");

    // The list never shows the token.
    let listed = alice.list_invites("acme").await.unwrap();
    assert_eq!((listed.len(), listed[0].status.as_str()), (1, "pending"));
    assert!(!serde_json::to_string(&listed).unwrap().contains(&token));

    // Bob redeems with his upstream identity (the email compared case-insensitively).
    let redeemed = w.app.client.redeem_invite(&token, &bob_token).await.unwrap();
    assert!(redeemed.user_created);
    assert_eq!(redeemed.roles, ["member", "viewer"]);
    let members = alice.org_members("acme").await.unwrap();
    let bob = members.iter().find(|m| m.user_id == redeemed.user_id).unwrap();
    assert_eq!(bob.roles, ["member", "viewer"]);
    assert_eq!(
        w.app
            .state
            .store
            .email_verified_at(&redeemed.user_id)
            .await
            .unwrap(),
        Some(w.app.clock.now().0)
    );
    // The user API shows it.
    let shown = w.app.client.get_user(&redeemed.user_id).await.unwrap();
    assert_eq!(
        shown.email_verified_at,
        Some(tollgate_server::rfc3339(w.app.clock.now().0))
    );
    // Bob can now sign in, in acme.
    let s = w.sign_in("bob", Some("acme")).await;
    let status = w.app.client.auth_status(&s.access).await.unwrap();
    assert_eq!(status.sub, redeemed.user_id);

    // Once only.
    assert_eq!(
        reason(w.app.client.redeem_invite(&token, &bob_token).await),
        "invite-redeemed"
    );
    let listed = alice.list_invites("acme").await.unwrap();
    assert_eq!(listed[0].status, "redeemed");
    assert_eq!(listed[0].redeemed_by.as_deref(), Some(redeemed.user_id.as_str()));
    assert_eq!(
        reason(alice.revoke_invite("acme", &created.id).await),
        "invite-redeemed"
    );

    // Audited, without the token.
    let events = w.app.client.audit(200).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"invite.create") && actions.contains(&"invite.redeem"),
        "{actions:?}"
    );
    assert!(!serde_json::to_string(&events).unwrap().contains(&token));
}

#[tokio::test]
async fn expired_revoked_unknown_and_mismatched_invites_are_refused() {
    let w = invite_only().await;
    let (_, alice) = acme(&w).await;
    let bob = || upstream(&w, "bob", "bob@example.com");

    let mut short = invite_req("bob@example.com", &["viewer"]);
    short.ttl = Some("1h".into());
    let expiring = alice.create_invite("acme", &short).await.unwrap();
    let revoked = alice
        .create_invite("acme", &invite_req("bob@example.com", &["viewer"]))
        .await
        .unwrap();
    let other = alice
        .create_invite("acme", &invite_req("carol@example.com", &["viewer"]))
        .await
        .unwrap();

    let info = alice.revoke_invite("acme", &revoked.id).await.unwrap();
    assert_eq!(info.status, "revoked");
    assert_eq!(
        reason(alice.revoke_invite("acme", &revoked.id).await),
        "invite-revoked"
    );
    assert_eq!(reason(alice.revoke_invite("acme", "inv_nope").await), "not-found");
    assert_eq!(
        reason(w.app.client.redeem_invite(&token_of(&revoked), &bob()).await),
        "invite-revoked"
    );

    assert_eq!(
        reason(w.app.client.redeem_invite(&token_of(&other), &bob()).await),
        "invite-email-mismatch"
    );
    assert!(
        w.app
            .client
            .list_users()
            .await
            .unwrap()
            .iter()
            .all(|u| u.email.as_deref() != Some("bob@example.com"))
    );
    assert_eq!(
        reason(w.app.client.redeem_invite("tg_inv_nope", &bob()).await),
        "invite-unknown"
    );
    assert_eq!(
        reason(w.app.client.redeem_invite("garbage", &bob()).await),
        "invite-unknown"
    );
    // A forged upstream token is refused before anything is written.
    assert_eq!(
        reason(
            w.app
                .client
                .redeem_invite(&token_of(&expiring), "not.a.jwt")
                .await
        ),
        "malformed"
    );

    let mut long = invite_req("bob@example.com", &["viewer"]);
    long.ttl = Some("8d".into());
    assert_eq!(
        reason(alice.create_invite("acme", &long).await),
        "invalid-parameter"
    );

    w.app.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        reason(w.app.client.redeem_invite(&token_of(&expiring), &bob()).await),
        "invite-expired"
    );
    // Alice's access token expired with the clock too: the operator lists.
    let statuses: Vec<String> = w
        .app
        .client
        .list_invites("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.status)
        .collect();
    assert!(
        statuses.contains(&"expired".to_owned()) && statuses.contains(&"revoked".to_owned()),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn of_concurrent_redemptions_by_two_identities_exactly_one_wins() {
    let w = invite_only().await;
    let (_, alice) = acme(&w).await;
    let created = alice
        .create_invite("acme", &invite_req("bob@example.com", &["viewer"]))
        .await
        .unwrap();
    let token = token_of(&created);
    let a = upstream(&w, "bob-1", "bob@example.com");
    let b = upstream(&w, "bob-2", "bob@example.com");
    let (ra, rb) = tokio::join!(
        w.app.client.redeem_invite(&token, &a),
        w.app.client.redeem_invite(&token, &b)
    );
    let wins = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
    assert_eq!(wins, 1, "{ra:?} {rb:?}");
    let loser = if ra.is_ok() { rb } else { ra };
    assert_eq!(reason(loser), "invite-redeemed");
    assert_eq!(alice.org_members("acme").await.unwrap().len(), 2);
}

#[tokio::test]
async fn inviting_needs_members_write_and_no_more_than_the_caller_holds() {
    let w = invite_only().await;
    let (_, alice) = acme(&w).await;
    let viewer = made_user(&w, "vic").await;
    let admin = made_user(&w, "ada").await;
    alice.set_member("acme", &viewer, &["viewer"]).await.unwrap();
    alice.set_member("acme", &admin, &["admin"]).await.unwrap();
    let vic = as_user(&w, &w.sign_in("vic", Some("acme")).await.access);
    let ada = as_user(&w, &w.sign_in("ada", Some("acme")).await.access);

    assert_eq!(
        reason(
            vic.create_invite("acme", &invite_req("x@example.com", &["viewer"]))
                .await
        ),
        "permission-denied"
    );
    assert_eq!(
        reason(vic.revoke_invite("acme", "inv_x").await),
        "permission-denied"
    );
    // The viewer may list (members:read).
    assert!(vic.list_invites("acme").await.unwrap().is_empty());
    // An admin may invite admins but not owners.
    assert_eq!(
        reason(
            ada.create_invite("acme", &invite_req("x@example.com", &["owner"]))
                .await
        ),
        "grant-exceeds-caller"
    );
    ada.create_invite("acme", &invite_req("x@example.com", &["admin"]))
        .await
        .unwrap();
    assert_eq!(
        reason(
            ada.create_invite("acme", &invite_req("x@example.com", &["nope"]))
                .await
        ),
        "invalid-parameter"
    );
    assert_eq!(
        reason(
            ada.create_invite("acme", &invite_req("not an email", &["viewer"]))
                .await
        ),
        "invalid-parameter"
    );
    // Another org's member cannot touch acme's invites.
    let globex_owner = made_user(&w, "gus").await;
    w.org("globex", &globex_owner).await;
    let gus = as_user(&w, &w.sign_in("gus", Some("globex")).await.access);
    assert!(gus.list_invites("acme").await.is_err());
}

#[tokio::test]
async fn the_verify_page_describes_the_invite_and_escapes_html() {
    let w = invite_only().await;
    let alice = made_user(&w, "alice").await;
    let req = tollgate_client::proto::orgs::CreateOrgRequest {
        name: "acme".into(),
        display_name: Some("<script>alert(1)</script>".into()),
        owner: Some(alice),
        ..Default::default()
    };
    w.app.client.create_org(&req).await.unwrap();
    let alice = as_user(&w, &w.sign_in("alice", None).await.access);
    let created = alice
        .create_invite("acme", &invite_req("bob@example.com", &["viewer"]))
        .await
        .unwrap();
    let page = |token: Option<String>| {
        let http = w.app.http.clone();
        let url = match token {
            Some(t) => format!("{}/verify?token={t}", w.app.url),
            None => format!("{}/verify", w.app.url),
        };
        async move {
            let resp = http.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            (status, headers, resp.text().await.unwrap())
        }
    };
    let (status, headers, body) = page(Some(token_of(&created))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    );
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !body.contains("<script>"),
        "{body}"
    );
    assert!(
        body.contains("bob@example.com") && body.contains("sign in with your identity provider"),
        "{body}"
    );

    // The org display name is escaped in the email too.
    let m = &outbox(&w)[0];
    let html = part(m, "text/html");
    assert!(
        html.contains("&lt;script&gt;") && !html.contains("<script>"),
        "{html}"
    );

    assert_eq!(page(None).await.0, 400);
    assert_eq!(page(Some("tg_inv_unknown".into())).await.0, 404);
    let revoked = alice
        .create_invite("acme", &invite_req("c@example.com", &["viewer"]))
        .await
        .unwrap();
    alice.revoke_invite("acme", &revoked.id).await.unwrap();
    assert_eq!(page(Some(token_of(&revoked))).await.0, 410);
    let used = alice
        .create_invite("acme", &invite_req("d@example.com", &["viewer"]))
        .await
        .unwrap();
    w.app
        .client
        .redeem_invite(&token_of(&used), &upstream(&w, "dan", "d@example.com"))
        .await
        .unwrap();
    let (status, _, body) = page(Some(token_of(&used))).await;
    assert_eq!(status, 409, "{body}");
    w.app.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let (status, _, body) = page(Some(token_of(&created))).await;
    assert_eq!(status, 410);
    assert!(body.contains("expired"), "{body}");
}

/// A tiny SMTP sink: enough of RFC 5321 for one client without TLS; yields each message.
async fn smtp_sink() -> (u16, tokio::sync::mpsc::UnboundedReceiver<(Vec<String>, String)>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut rcpts = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.to_ascii_uppercase();
                    if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await.unwrap();
                    } else if cmd.starts_with("RCPT TO:") {
                        rcpts.push(line[8..].trim().to_owned());
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    } else if cmd.starts_with("DATA") {
                        w.write_all(b"354 go on\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.unwrap();
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(
                                line.strip_prefix('.')
                                    .filter(|_| line.starts_with(".."))
                                    .unwrap_or(&line),
                            );
                        }
                        tx.send((std::mem::take(&mut rcpts), data)).unwrap();
                        w.write_all(b"250 queued\r\n").await.unwrap();
                    } else if cmd.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else {
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    }
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn invites_go_out_over_smtp_and_failures_still_create_the_invite() {
    let (port, mut rx) = smtp_sink().await;
    let w = world_with(move |c| {
        c.users.registration_mode = RegistrationMode::InviteOnly;
        c.mail.smtp_url = format!("smtp://127.0.0.1:{port}");
        c.mail.sender = "Acme Access <access@example.com>".into();
    })
    .await;
    let (_, alice) = acme(&w).await;
    let created = alice
        .create_invite("acme", &invite_req("bob@example.com", &["viewer"]))
        .await
        .unwrap();
    assert_eq!(created.email_status, EmailStatus::Sent);
    let (rcpts, msg) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rcpts, ["<bob@example.com>"]);
    assert!(header(&msg, "From").unwrap().contains("access@example.com"));
    assert!(part(&msg, "text/plain").contains(&created.link));
    assert!(outbox(&w).is_empty());

    // Nothing listens: the invite exists anyway, and the answer says the email failed.
    let w = world_with(|c| {
        c.users.registration_mode = RegistrationMode::InviteOnly;
        c.mail.smtp_url = "smtp://127.0.0.1:1".into();
    })
    .await;
    let (_, alice) = acme(&w).await;
    let created = alice
        .create_invite("acme", &invite_req("bob@example.com", &["viewer"]))
        .await
        .unwrap();
    assert_eq!(created.email_status, EmailStatus::Failed);
    assert_eq!(alice.list_invites("acme").await.unwrap().len(), 1);
}

/// Issue 8's whole path, through the SDK: invite → the email in the outbox → redeem (the
/// link's token, under invite-only registration) → sign-in → key enrollment with proof of
/// possession → tokens by an RFC 7523 assertion of that key → refresh → rotation (the spent
/// token reused revokes the session) → the key revoked: no more tokens.
#[tokio::test]
async fn onboarding_from_invite_to_device_key_to_revocation() {
    use tollgate_core::SigningAlg;
    use tollgate_crypto::{SigningKey, device_key};
    let w = invite_only().await;
    let (_, alice) = acme(&w).await;
    alice
        .create_invite("acme", &invite_req("dana@example.com", &["member"]))
        .await
        .unwrap();
    // The token comes from the email, as Dana would click it.
    let mails = outbox(&w);
    let text = part(&mails[0], "text/plain");
    let token: String = text
        .split("token=")
        .nth(1)
        .expect("a link with a token")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let dana_upstream = upstream(&w, "dana", "dana@example.com");
    let redeemed = w.app.client.redeem_invite(&token, &dana_upstream).await.unwrap();
    let dana = as_user(&w, &w.sign_in("dana", Some("acme")).await.access);

    // Enroll a device key with proof of possession.
    let (key, _) = SigningKey::generate(SigningAlg::EdDSA).unwrap();
    let boot = dana.key_bootstrap("dana-laptop").await.unwrap();
    let now = w.app.clock.now().0;
    let proof = device_key::proof(&key, &boot.ket, &boot.nonce, now).unwrap();
    let enrolled = w
        .app
        .client
        .key_register(&boot.ket, &device_key::public_jwk(&key), &proof)
        .await
        .unwrap();

    // Tokens with the key authenticating as the client `key:<id>` (private_key_jwt), no browser.
    let aud = w.app.client.metadata().await.unwrap().token_endpoint;
    let assertion = |at: i64| device_key::assertion(&key, &enrolled.id, &aud, at, 60).unwrap();
    let client_id = format!("key:{}", enrolled.id);
    let first = w
        .app
        .client
        .private_key_jwt(&assertion(now), Some(&client_id), None)
        .await
        .unwrap();
    let dana_user = w.app.client.get_user(&redeemed.user_id).await.unwrap();
    assert!(dana_user.email_verified_at.is_some(), "{dana_user:?}");
    let status = w.app.client.auth_status(&first.access_token).await.unwrap();
    assert_eq!(status.sub, redeemed.user_id);
    // Refresh, rotation, and reuse of the spent refresh token ends the session.
    let spent = first.refresh_token.expect("a session");
    let rotated = w.app.client.refresh(&spent, None, None).await.unwrap();
    assert_eq!(
        reason(w.app.client.refresh(&spent, None, None).await),
        "refresh-token-reused"
    );
    assert_eq!(
        reason(
            w.app
                .client
                .refresh(rotated.refresh_token.as_deref().unwrap(), None, None)
                .await
        ),
        "session-revoked"
    );
    // A fresh sign-in with the key, then the key revoked: its session ends, no new tokens.
    let again = w
        .app
        .client
        .jwt_bearer(&assertion(now), None, None, None)
        .await
        .unwrap();
    dana.revoke_my_key(&enrolled.id).await.unwrap();
    assert!(
        w.app
            .client
            .refresh(again.refresh_token.as_deref().unwrap(), None, None)
            .await
            .is_err()
    );
    assert_eq!(
        reason(w.app.client.jwt_bearer(&assertion(now), None, None, None).await),
        "key-revoked"
    );
    assert_eq!(
        reason(w.app.client.private_key_jwt(&assertion(now), None, None).await),
        "key-revoked"
    );
}

/// `POST /v1/invites` names the org in the body, under the same guard as the org route.
#[tokio::test]
async fn an_invite_can_name_its_org_in_the_body() {
    let w = invite_only().await;
    acme(&w).await;
    let access = w.sign_in("alice", Some("acme")).await.access;
    let post = |body: serde_json::Value| {
        let req = w
            .app
            .http
            .post(w.app.url("/v1/invites"))
            .bearer_auth(&access)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = post(json!({"org": "acme", "email": "dan@example.com", "roles": ["member"]})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["org_id"], json!(w.app.client.org("acme").await.unwrap().id));
    assert!(
        body["link"].as_str().unwrap().contains("/verify?token=tg_inv_"),
        "{body}"
    );
    let listed = w.app.client.list_invites("acme").await.unwrap();
    assert!(listed.iter().any(|i| i.email == "dan@example.com"));

    let (status, body) = post(json!({"org": "globex", "email": "x@example.com", "roles": []})).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (404, Some("not-found")),
        "{body}"
    );
    let (status, body) =
        post(json!({"org": "acme", "email": "x@example.com", "roles": [], "admin": true})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        post(json!({"org": "acme", "email": "x@example.com", "roles": ["owner"], "ttl": "1000d"})).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("invalid-parameter")),
        "{body}"
    );
}
