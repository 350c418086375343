//! tollgate's pages for people: browser sign-in through the upstream issuer (authorization
//! code + PKCE against the mock IdP), the device verification page (approve, deny, CSRF,
//! Origin), invite acceptance from the invite link, and sign-out; first over plain HTTP
//! with a hand-kept cookie jar (every step visible), then in headless Chromium
//! (`browser` module) as a user would click through them.

use crate::mock_idp::{MockIdp, MockIssuer};
use crate::test_app::TestApp;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use std::collections::BTreeMap;
use tollgate_client::proto::admin::{CreateUserRequest, IdentityInfo};
use tollgate_client::proto::invites::CreateInviteRequest;
use tollgate_client::proto::orgs::CreateOrgRequest;
use tollgate_core::JwsAlg;
use tollgate_server::config::RegistrationMode;

pub(crate) struct Web {
    pub(crate) app: TestApp,
    _idp: MockIdp,
    pub(crate) sso: MockIssuer,
}

/// A server with browser sign-in through issuer `sso` (client `tollgate-web`), org `acme`
/// owned by `alice` (alice@example.com at the IdP), registration invite-only.
pub(crate) async fn web() -> Web {
    web_with(|_| {}).await
}

async fn web_with(tweak: impl FnOnce(&mut tollgate_server::Config)) -> Web {
    let idp = MockIdp::start().await;
    let sso = idp.issuer("sso", JwsAlg::RS256);
    let app = TestApp::with_config(|c| {
        c.web_login.issuer = "sso".into();
        c.web_login.client_id = "tollgate-web".into();
        c.users.registration_mode = RegistrationMode::InviteOnly;
        tweak(c);
    })
    .await;
    let spec = json!({
        "name": "sso", "issuer": sso.url(), "preset": "oidc", "audiences": ["tollgate-web"],
        "grant": {"scopes": ["read", "write"], "audiences": ["https://api.example.com"], "refresh_tokens": true}
    });
    app.client.create_issuer(&spec).await.unwrap();
    let alice = app
        .client
        .create_user(&CreateUserRequest {
            email: Some("alice@example.com".into()),
            identities: vec![IdentityInfo {
                iss: sso.url().into(),
                sub: "alice".into(),
            }],
        })
        .await
        .unwrap()
        .id;
    let org = CreateOrgRequest {
        name: "acme".into(),
        owner: Some(alice),
        ..CreateOrgRequest::default()
    };
    app.client.create_org(&org).await.unwrap();
    sso.sign_in_as(Some(("alice", "alice@example.com")));
    Web { app, _idp: idp, sso }
}

/// A browser over HTTP: keeps cookies by name, follows nothing by itself.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for c in r.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
            let (pair, _) = c.split_once(';').unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let r = self
            .http
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)], origin: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(url)
            .header(COOKIE, self.cookie_header())
            .form(form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        self.keep(&r);
        r
    }

    /// Follows redirects (to any host: the IdP too) until a page; its status and text.
    async fn open(&mut self, url: &str) -> (StatusCode, String) {
        let mut url = url.to_owned();
        for _ in 0..10 {
            let r = self.get(&url).await;
            if r.status().is_redirection() {
                let to = r.headers()[LOCATION].to_str().unwrap();
                url = url::Url::parse(&url).unwrap().join(to).unwrap().to_string();
                continue;
            }
            return (r.status(), r.text().await.unwrap());
        }
        panic!("too many redirects");
    }
}

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A browser that signed in through the IdP and came back to `path`; the page there.
async fn signed_in(w: &Web, path: &str) -> (Browser, String) {
    let mut b = Browser::new();
    let (_, page) = b
        .open(&w.app.url(&format!("/login?return_to={}", urlencode(path))))
        .await;
    (b, page)
}

/// Asserts that the device's next poll is refused with `reason`.
async fn assert_poll(w: &Web, d: &tollgate_client::proto::device::DeviceAuthorizationResponse, reason: &str) {
    let refused = w
        .app
        .client
        .device_token(&d.device_code, "tollgate-cli")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains(reason), "{refused}");
}

async fn device(w: &Web) -> tollgate_client::proto::device::DeviceAuthorizationResponse {
    w.app
        .client
        .device_authorization("tollgate-cli", Some("read"), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_in_then_approve_a_device_on_the_verification_page() {
    let w = web().await;
    let d = device(&w).await;
    let mut b = Browser::new();

    // Not signed in: the page offers sign-in and comes back to this code.
    let (status, page) = b.open(&d.verification_uri_complete).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Sign in to continue") && page.contains("/login?return_to="),
        "{page}"
    );

    // /login → the IdP (PKCE S256, nonce, state) → /login/callback → back to the page.
    let back = format!("/device?user_code={}", d.user_code);
    let login = w.app.url(&format!("/login?return_to={}", urlencode(&back)));
    let r = b.get(&login).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to_idp = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        to_idp.starts_with(&format!("{}/authorize?", w.sso.url())),
        "{to_idp}"
    );
    for p in [
        "code_challenge_method=S256",
        "client_id=tollgate-web",
        "nonce=",
        "state=",
        "scope=openid",
    ] {
        assert!(to_idp.contains(p), "{p} missing in {to_idp}");
    }
    assert!(b.cookies.contains_key("tg_login"));
    let (status, page) = b.open(&to_idp).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(b.cookies.contains_key("tg_session") && !b.cookies.contains_key("tg_login"));
    assert!(page.contains("Approve this device?"), "{page}");
    assert!(page.contains("tollgate-cli") && page.contains(">read<"), "{page}");
    assert!(page.contains("alice@example.com"), "{page}");

    // Polling before the decision: pending.
    assert_poll(&w, &d, "authorization-pending").await;

    let csrf = hidden(&page, "csrf");
    let form = [
        ("user_code", d.user_code.as_str()),
        ("decision", "approve"),
        ("org", "acme"),
        ("csrf", csrf.as_str()),
    ];
    let r = b.post(&w.app.url("/device"), &form, Some(&w.app.url(""))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("Device approved"), "{page}");

    let tokens = w
        .app
        .client
        .device_token(&d.device_code, "tollgate-cli")
        .await
        .unwrap();
    let status = w.app.client.auth_status(&tokens.access_token).await.unwrap();
    assert_eq!(
        status.upstream.unwrap().email.as_deref(),
        Some("alice@example.com")
    );
    assert!(status.org.is_some());
    assert!(tokens.refresh_token.is_some());

    // The page now says so; a second decision is refused with its reason.
    let (_, page) = b.open(&d.verification_uri_complete).await;
    assert!(page.contains("approved already"), "{page}");
    let r = b.post(&w.app.url("/device"), &form, None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.headers()["x-tollgate-reason"], "conflict");
}

#[tokio::test]
async fn denying_on_the_page_makes_the_device_poll_access_denied() {
    let w = web().await;
    let d = device(&w).await;
    let (mut b, page) = signed_in(&w, &format!("/device?user_code={}", d.user_code)).await;
    let csrf = hidden(&page, "csrf");
    let form = [
        ("user_code", d.user_code.as_str()),
        ("decision", "deny"),
        ("csrf", csrf.as_str()),
    ];
    let page = b
        .post(&w.app.url("/device"), &form, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Device denied"), "{page}");
    assert_poll(&w, &d, "device-access-denied").await;
}

#[tokio::test]
async fn forms_need_this_sessions_csrf_token_and_a_same_origin_post() {
    let w = web().await;
    let d = device(&w).await;
    let (mut b, page) = signed_in(&w, &format!("/device?user_code={}", d.user_code)).await;
    let csrf = hidden(&page, "csrf");
    let code = d.user_code.as_str();

    for (form, origin) in [
        (vec![("user_code", code), ("decision", "approve")], None),
        (
            vec![("user_code", code), ("decision", "approve"), ("csrf", "forged")],
            None,
        ),
        (
            vec![
                ("user_code", code),
                ("decision", "approve"),
                ("csrf", csrf.as_str()),
            ],
            Some("https://evil.example"),
        ),
    ] {
        let r = b.post(&w.app.url("/device"), &form, origin).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()["x-tollgate-reason"], "csrf-invalid");
    }
    // Another browser (no session) cannot post at all.
    let r = Browser::new()
        .post(
            &w.app.url("/device"),
            &[("user_code", code), ("decision", "approve"), ("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["x-tollgate-reason"], "not-signed-in");
    // Nothing was decided.
    assert_poll(&w, &d, "authorization-pending").await;

    // Signing out ends the session server-side: the old cookie no longer works.
    let old = b.cookie_header();
    let r = b.post(&w.app.url("/logout"), &[("csrf", &csrf)], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!b.cookies.contains_key("tg_session"));
    let r = reqwest::Client::new()
        .post(w.app.url("/device"))
        .header(COOKIE, old)
        .form(&[("user_code", code), ("decision", "approve"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-tollgate-reason"], "not-signed-in");
}

#[tokio::test]
async fn the_callback_is_bound_to_the_browser_and_used_once() {
    let w = web().await;
    let mut victim = Browser::new();
    let r = victim.get(&w.app.url("/login")).await;
    let to_idp = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let r = victim.get(&to_idp).await;
    let callback = r.headers()[LOCATION].to_str().unwrap().to_owned();

    // An attacker's browser (no state cookie) cannot complete the victim's sign-in.
    let (status, page) = Browser::new().open(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("login-state-invalid"), "{page}");

    let (status, _) = victim.open(&callback).await;
    assert_eq!(status, StatusCode::OK);
    // Replayed: the state was spent (and its cookie deleted).
    victim.cookies.insert(
        "tg_login".into(),
        url::Url::parse(&callback)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned(),
    );
    let (status, page) = victim.open(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("login-state-invalid"), "{page}");

    // An error from the issuer is shown, not swallowed.
    let (status, page) = victim
        .open(
            &w.app
                .url("/login/callback?error=access_denied&error_description=no"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("login-failed") && page.contains("access_denied"),
        "{page}"
    );

    // Only same-site paths are returned to.
    let mut b = Browser::new();
    let r = b.get(&w.app.url("/login?return_to=//evil.example/x")).await;
    let to_idp = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let r = b.get(&to_idp).await;
    let callback = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let r = b.get(&callback).await;
    assert_eq!(r.headers()[LOCATION], "/device");
}

#[tokio::test]
async fn an_invite_is_accepted_from_its_page_after_signing_in() {
    let w = web().await;
    let req = CreateInviteRequest {
        email: "bob@example.com".into(),
        roles: vec!["member".into()],
        ..CreateInviteRequest::default()
    };
    let created = w.app.client.create_invite("acme", &req).await.unwrap();
    let mut b = Browser::new();
    let (status, page) = b.open(&created.link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("bob@example.com") && page.contains("id=\"sign-in\""),
        "{page}"
    );

    // Signed in as someone else: the page offers acceptance, which names the mismatch.
    let back = format!("/verify?token={}", created.link.split("token=").nth(1).unwrap());
    let (_, page) = b
        .open(&w.app.url(&format!("/login?return_to={}", urlencode(&back))))
        .await;
    assert!(
        page.contains("Accept the invite") && page.contains("alice@example.com"),
        "{page}"
    );
    let token = hidden(&page, "token");
    let csrf = hidden(&page, "csrf");
    let r = b
        .post(&w.app.url("/verify"), &[("token", &token), ("csrf", &csrf)], None)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["x-tollgate-reason"], "invite-email-mismatch");

    // Bob (unknown here, registration invite-only) signs in and accepts.
    w.sso.sign_in_as(Some(("bob", "bob@example.com")));
    let mut bob = Browser::new();
    let (_, page) = bob
        .open(&w.app.url(&format!("/login?return_to={}", urlencode(&back))))
        .await;
    let csrf = hidden(&page, "csrf");
    let r = bob
        .post(&w.app.url("/verify"), &[("token", &token), ("csrf", &csrf)], None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Invite accepted") && page.contains("member"),
        "{page}"
    );
    // The link is spent.
    let (status, page) = bob.open(&created.link).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("Invite already used"), "{page}");
    let invites = w.app.client.list_invites("acme").await.unwrap();
    assert_eq!(invites[0].status, "redeemed");
}

#[tokio::test]
async fn without_web_login_the_pages_point_to_the_api() {
    let app = TestApp::new().await;
    let (status, page) = Browser::new().open(&app.url("/device?user_code=BCDF-GHJK")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains("web-login-disabled") && page.contains("/v1/device/approve"),
        "{page}"
    );
    let (status, page) = Browser::new().open(&app.url("/login")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("web-login-disabled"), "{page}");
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_503_page() {
    let w = web_with(|_| {}).await;
    w.sso.set_down(true);
    let (status, page) = Browser::new().open(&w.app.url("/login")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.contains("idp-unavailable"), "{page}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The same pages in headless Chromium, driven over WebDriver (Debian's `chromium` and
/// `chromium-driver`, installed by `interop/setup.sh`): what a person sees and clicks.
mod browser {
    use super::{Web, assert_poll, web};
    use crate::test_app::skip_unless_ci;
    use fantoccini::{Client, ClientBuilder, Locator};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;
    use tollgate_client::proto::invites::CreateInviteRequest;

    const CHROMIUM: &str = "/usr/bin/chromium";
    const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

    /// A chromedriver process on a free loopback port, killed on drop.
    struct Driver(Child);

    impl Drop for Driver {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A fresh headless browser, or `None` (skipped outside CI) without Chromium.
    async fn chromium() -> Option<(Driver, Client)> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
            skip_unless_ci("Debian's chromium and chromium-driver are not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Driver(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{url}/status")).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                // Root in a container: no sandbox; no GPU, small /dev/shm.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Some((driver, client))
    }

    async fn click(c: &Client, css: &str) {
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn text(c: &Client, css: &str) -> String {
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// The page's heading once it is `expected` (a click's navigation may still be under
    /// way when the click returns), or what it was after 20 s.
    async fn heading(c: &Client, expected: &str) -> String {
        let mut seen = String::new();
        for _ in 0..200 {
            seen = match c.find(Locator::Css("h1")).await {
                Ok(h) => h.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if seen == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    }

    #[tokio::test]
    async fn a_person_signs_in_enters_the_code_and_approves_the_device() {
        let Some((_driver, c)) = chromium().await else {
            return;
        };
        let w: Web = web().await;
        let d = super::device(&w).await;

        c.goto(&d.verification_uri).await.unwrap();
        assert_eq!(heading(&c, "Sign in to continue").await, "Sign in to continue");
        click(&c, "#sign-in").await;
        // Through the IdP and back: the code form.
        assert_eq!(heading(&c, "Connect a device").await, "Connect a device");
        let input = c.find(Locator::Css("#user_code")).await.unwrap();
        input
            .send_keys(&d.user_code.to_lowercase().replace('-', ""))
            .await
            .unwrap();
        click(&c, "#continue").await;
        assert_eq!(heading(&c, "Approve this device?").await, "Approve this device?");
        assert_eq!(text(&c, "#client").await, "tollgate-cli");
        assert_eq!(text(&c, "#scope").await, "read");
        assert_eq!(text(&c, "#code").await, d.user_code);
        click(&c, "#approve").await;
        assert_eq!(heading(&c, "Device approved").await, "Device approved");

        let tokens = w
            .app
            .client
            .device_token(&d.device_code, "tollgate-cli")
            .await
            .unwrap();
        let status = w.app.client.auth_status(&tokens.access_token).await.unwrap();
        assert_eq!(status.upstream.unwrap().sub, "alice");

        // Signing out from the page ends the browser session.
        click(&c, "#sign-out").await;
        assert_eq!(heading(&c, "Signed out").await, "Signed out");
        c.goto(&d.verification_uri).await.unwrap();
        assert_eq!(heading(&c, "Sign in to continue").await, "Sign in to continue");
        c.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_person_denies_a_device_they_did_not_start() {
        let Some((_driver, c)) = chromium().await else {
            return;
        };
        let w = web().await;
        let d = super::device(&w).await;
        c.goto(&d.verification_uri_complete).await.unwrap();
        click(&c, "#sign-in").await;
        assert_eq!(heading(&c, "Approve this device?").await, "Approve this device?");
        click(&c, "#deny").await;
        assert_eq!(heading(&c, "Device denied").await, "Device denied");
        assert_poll(&w, &d, "device-access-denied").await;
        c.close().await.unwrap();
    }

    #[tokio::test]
    async fn an_invitee_opens_the_link_signs_in_and_accepts() {
        let Some((_driver, c)) = chromium().await else {
            return;
        };
        let w = web().await;
        let req = CreateInviteRequest {
            email: "bob@example.com".into(),
            roles: vec!["member".into()],
            ..CreateInviteRequest::default()
        };
        let created = w.app.client.create_invite("acme", &req).await.unwrap();
        w.sso.sign_in_as(Some(("bob", "bob@example.com")));

        c.goto(&created.link).await.unwrap();
        assert_eq!(heading(&c, "You are invited").await, "You are invited");
        click(&c, "#sign-in").await;
        assert_eq!(heading(&c, "You are invited").await, "You are invited");
        click(&c, "#accept").await;
        assert_eq!(heading(&c, "Invite accepted").await, "Invite accepted");
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        if let Ok(dir) = std::env::var("TOLLGATE_TEST_SCREENSHOTS") {
            std::fs::write(format!("{dir}/invite-accepted.png"), &png).unwrap();
        }
        // The link is spent now.
        c.goto(&created.link).await.unwrap();
        assert_eq!(heading(&c, "Invite already used").await, "Invite already used");
        c.close().await.unwrap();
    }
}
