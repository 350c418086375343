//! Client certificates through the SDK: CSRs made here with keys made here, checked by an
//! independent verifier (`openssl verify` against the served chain, and rustls-webpki),
//! with the lifetime clamp per context; permissions, CSR and SAN refusals with their
//! reasons, audit without PEMs, metrics, the per-identity rate limit, and a CI job token
//! whose certificate ends no later than the job.

use crate::orgs::{World, world, world_with};
use rustls_pki_types::{CertificateDer, UnixTime as PkiTime};
use std::time::Duration;
use tollgate_client::Client;
use tollgate_client::proto::audit::AuditFilter;
use tollgate_client::proto::certs::IssuedCertificate;
use tollgate_core::SigningAlg;
use tollgate_core::time::Clock as _;
use tollgate_crypto::{SigningKey, csr};

fn key(alg: SigningAlg) -> SigningKey {
    SigningKey::generate(alg).unwrap().0
}

fn client_csr(alg: SigningAlg) -> String {
    csr::request(&key(alg), "whatever the CSR claims", &[], &[]).unwrap()
}

fn reason<T: std::fmt::Debug>(r: Result<T, tollgate_client::Error>) -> String {
    r.expect_err("refused").reason().unwrap_or("(none)").to_owned()
}

/// `acme` owned by alice; bob a viewer. Alice's id, and their clients with tokens for acme.
async fn acme(w: &World) -> (String, Client, Client) {
    let alice = w.user("alice").await;
    w.org("acme", &alice).await;
    let bob = w.user("bob").await;
    let alice_client = w
        .app
        .client
        .clone()
        .with_user_token(w.sign_in("alice", Some("acme")).await.access);
    alice_client.set_member("acme", &bob, &["viewer"]).await.unwrap();
    let bob_client = w
        .app
        .client
        .clone()
        .with_user_token(w.sign_in("bob", Some("acme")).await.access);
    (alice, alice_client, bob_client)
}

pub(crate) fn pem_blocks(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.unwrap().contents)
        .collect()
}

/// `openssl verify` of the leaf against the served chain (root trusted, issuing untrusted).
pub(crate) fn openssl_verify(leaf_pem: &str, chain_pem: &str, purpose: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<&str> = chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN"))
        .collect();
    assert_eq!(blocks.len(), 2, "issuing CA and root");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (issuing, root, leaf) = (
        write("issuing.pem", blocks[0]),
        write("root.pem", blocks[1]),
        write("leaf.pem", leaf_pem),
    );
    let out = std::process::Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&issuing)
        .arg(&leaf)
        .output()
        .expect("openssl is installed (Debian's openssl package)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() && text.contains(": OK") {
        Ok(())
    } else {
        Err(text)
    }
}

/// rustls-webpki's verdict on the leaf for `usage` at `at` (and, given a host, its name).
fn webpki_verify(
    issued: &IssuedCertificate,
    usage: webpki::KeyUsage,
    host: Option<&str>,
    at: i64,
) -> Result<(), webpki::Error> {
    let chain = pem_blocks(&issued.chain);
    let root = CertificateDer::from(chain[1].clone());
    let anchor = webpki::anchor_from_trusted_cert(&root).unwrap();
    let leaf = CertificateDer::from(pem_blocks(&issued.certificate).remove(0));
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    let intermediates = [CertificateDer::from(chain[0].clone())];
    let at = PkiTime::since_unix_epoch(Duration::from_secs(u64::try_from(at).unwrap()));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        at,
        usage,
        None,
        None,
    )?;
    match host {
        Some(h) => ee
            .verify_is_valid_for_subject_name(&rustls_pki_types::ServerName::try_from(h.to_owned()).unwrap()),
        None => Ok(()),
    }
}

fn webpki_client_auth(issued: &IssuedCertificate, at: i64) -> Result<(), webpki::Error> {
    webpki_verify(issued, webpki::KeyUsage::client_auth(), None, at)
}

fn webpki_server_auth(issued: &IssuedCertificate, host: &str, at: i64) -> Result<(), webpki::Error> {
    webpki_verify(issued, webpki::KeyUsage::server_auth(), Some(host), at)
}

fn lifetime(issued: &IssuedCertificate) -> i64 {
    let leaf = pem_blocks(&issued.certificate).remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()
}

#[tokio::test]
async fn a_member_gets_a_client_certificate_that_independent_verifiers_accept() {
    let w = world().await;
    let (alice_id, alice, _) = acme(&w).await;
    let chain = w.app.client.ca_chain().await.unwrap();
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
        let issued = alice
            .sign_client_certificate(&client_csr(alg), None)
            .await
            .unwrap();
        assert_eq!(issued.chain, chain);
        assert_eq!(issued.ca, "internal");
        openssl_verify(&issued.certificate, &issued.chain, "sslclient")
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        // A client certificate is not a server certificate.
        assert!(openssl_verify(&issued.certificate, &issued.chain, "sslserver").is_err());
        let now = w.app.clock.now().0;
        webpki_client_auth(&issued, now).unwrap();
        // Interactive developer: 90 minutes (plus the minute it is backdated).
        assert_eq!(lifetime(&issued), 90 * 60 + 60);
        assert_eq!(issued.expires_in, 90 * 60);
        assert!(
            webpki_client_auth(&issued, now + 90 * 60 + 1).is_err(),
            "expired after 90 min"
        );
    }
    // The subject is the user and org, whatever the CSR said.
    let issued = alice
        .sign_client_certificate(&client_csr(SigningAlg::ES256), Some("10m"))
        .await
        .unwrap();
    let leaf = pem_blocks(&issued.certificate).remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        format!("O=acme, OU=user, CN={alice_id}")
    );
    assert_eq!(issued.expires_in, 600);
    assert_eq!(issued.serial.len(), 32);

    // Audited with serial, lifetime, CA and provenance, never a PEM.
    let filter = AuditFilter {
        action: Some("certificate.issue".into()),
        ..AuditFilter::default()
    };
    let events = alice.org_audit("acme", &filter).await.unwrap().events;
    assert_eq!(events.len(), 4);
    let newest = serde_json::to_string(&events[0]).unwrap();
    assert!(
        newest.contains(&issued.serial)
            && newest.contains("\"ttl_seconds\":600")
            && newest.contains("internal"),
        "{newest}"
    );
    assert!(!newest.contains("BEGIN"), "{newest}");
    let metrics = w.app.get_text("/metrics").await;
    assert!(
        metrics.contains("tollgate_cert_issued_total{ca=\"internal\",profile=\"client\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_cert_issue_duration_seconds_count{ca=\"internal\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_csrs_and_callers_are_refused_with_the_rule_they_break() {
    let w = world().await;
    let (_, alice, bob) = acme(&w).await;
    let k = key(SigningAlg::ES256);
    let with_san = csr::request(&k, "x", &["alice.example.com".into()], &[]).unwrap();
    assert_eq!(
        reason(alice.sign_client_certificate(&with_san, None).await),
        "san-not-allowed"
    );
    let with_ip = csr::request(&k, "x", &[], &["10.0.0.1".parse().unwrap()]).unwrap();
    assert_eq!(
        reason(alice.sign_client_certificate(&with_ip, None).await),
        "san-not-allowed"
    );
    assert_eq!(
        reason(alice.sign_client_certificate("garbage", None).await),
        "csr-invalid"
    );
    // One character of the signed part changed: the signature no longer verifies.
    let good = client_csr(SigningAlg::ES256);
    let der = pem_blocks(&good.replace("CERTIFICATE REQUEST", "CERTIFICATE")).remove(0);
    let mut altered = der.clone();
    let at = altered.windows(8).position(|w| w == b"whatever").unwrap();
    altered[at] = b'W';
    use base64::Engine as _;
    let altered = base64::engine::general_purpose::STANDARD.encode(&altered);
    assert_eq!(
        reason(alice.sign_client_certificate(&altered, None).await),
        "csr-signature-invalid"
    );
    assert_eq!(
        reason(alice.sign_client_certificate(&good, Some("soon")).await),
        "invalid-parameter"
    );
    // A viewer's role does not grant certificate:sign:client.
    assert_eq!(
        reason(bob.sign_client_certificate(&good, None).await),
        "permission-denied"
    );
    // Service accounts and anonymous callers are not users or jobs.
    let anonymous = w.app.client.clone().with_user_token("not-a-token");
    assert_eq!(
        reason(anonymous.sign_client_certificate(&good, None).await),
        "malformed"
    );
    // Refusals are counted and audited (once the caller is known).
    let metrics = w.app.get_text("/metrics").await;
    assert!(
        metrics.contains("tollgate_cert_issue_errors_total{ca=\"internal\",reason=\"san-not-allowed\"} 2"),
        "{metrics}"
    );
    let filter = AuditFilter {
        action: Some("certificate.issue".into()),
        ..AuditFilter::default()
    };
    let events = alice.org_audit("acme", &filter).await.unwrap().events;
    assert!(events.iter().all(|e| e.outcome == "denied"), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("csr-signature-invalid"))
    );
}

#[tokio::test]
async fn issuance_is_rate_limited_per_identity() {
    let w = world_with(|c| {
        c.rate_limits.enabled = true;
        c.certs.issuance_rate_hourly = 2;
    })
    .await;
    let (_, alice, _) = acme(&w).await;
    let csr = client_csr(SigningAlg::ES256);
    alice.sign_client_certificate(&csr, None).await.unwrap();
    alice.sign_client_certificate(&csr, None).await.unwrap();
    let refused = alice.sign_client_certificate(&csr, None).await;
    assert_eq!(reason(refused), "rate-limited");
}

#[tokio::test]
async fn the_ca_survives_restarts_and_can_be_turned_off() {
    let w = world().await;
    let chain = w.app.client.ca_chain().await.unwrap();
    let World { app, .. } = w;
    let app = app.restart().await;
    assert_eq!(
        app.client.ca_chain().await.unwrap(),
        chain,
        "the same CA after a restart"
    );
    let off = crate::test_app::TestApp::with_config(|c| c.certs.enabled = false).await;
    assert_eq!(reason(off.client.ca_chain().await), "not-found");
}

#[tokio::test]
async fn a_service_account_gets_server_certificates_within_its_patterns() {
    let w = world().await;
    let app = &w.app;
    let build = app
        .service_account("build-servers", &["certificate:sign:server"], &["tollgate"])
        .await;
    let rules = tollgate_client::proto::certs::CertificateRules {
        dns: vec![
            "*.build.example.com".into(),
            "ci.example.com".into(),
            "*.bücher.example".into(),
        ],
        ips: vec!["10.0.0.7".into()],
    };
    let stored = app
        .client
        .set_certificate_rules(&build.client_id, &rules)
        .await
        .unwrap();
    assert_eq!(stored.dns[2], "*.xn--bcher-kva.example", "stored as A-labels");
    let svc = app.client.clone().with_user_token(app.token(&build).await);
    let k = key(SigningAlg::ES256);
    let names = |dns: &[&str]| dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>();
    let csr = csr::request(
        &k,
        "x",
        &names(&[
            "a.build.example.com",
            "CI.example.com",
            "shop.xn--bcher-kva.example",
        ]),
        &["10.0.0.7".parse().unwrap()],
    )
    .unwrap();
    let issued = svc.sign_server_certificate(&csr, None).await.unwrap();
    let now = app.clock.now().0;
    for host in [
        "a.build.example.com",
        "ci.example.com",
        "shop.xn--bcher-kva.example",
    ] {
        webpki_server_auth(&issued, host, now).unwrap_or_else(|e| panic!("{host}: {e:?}"));
    }
    assert!(webpki_server_auth(&issued, "evilbuild.example.com", now).is_err());
    assert!(
        webpki_server_auth(&issued, "a.build.example.com", now + 6 * 86_400 + 1).is_err(),
        "6 days at most"
    );
    openssl_verify(&issued.certificate, &issued.chain, "sslserver").unwrap();
    assert_eq!(lifetime(&issued), 6 * 86_400 + 60);
    let short = svc.sign_server_certificate(&csr, Some("1h")).await.unwrap();
    assert_eq!(short.expires_in, 3600);

    // Refusals name the rule.
    let refused = |dns: &[&str], ips: &[&str]| {
        let ips: Vec<std::net::IpAddr> = ips.iter().map(|i| i.parse().unwrap()).collect();
        let csr = csr::request(&k, "x", &names(dns), &ips).unwrap();
        let svc = svc.clone();
        async move { reason(svc.sign_server_certificate(&csr, None).await) }
    };
    assert_eq!(refused(&["evilbuild.example.com"], &[]).await, "san-not-allowed");
    assert_eq!(refused(&["a.b.build.example.com"], &[]).await, "san-not-allowed");
    assert_eq!(refused(&["*.*.build.example.com"], &[]).await, "wildcard-depth");
    assert_eq!(refused(&["*.example.com"], &[]).await, "wildcard-depth");
    assert_eq!(
        refused(&["ci.example.com"], &["10.0.0.8"]).await,
        "san-not-allowed"
    );
    assert_eq!(refused(&[], &[]).await, "san-not-allowed");
    let wildcard = csr::request(&k, "x", &names(&["*.build.example.com"]), &[]).unwrap();
    svc.sign_server_certificate(&wildcard, None).await.unwrap();

    // Without rules, without the scope, or as a user: refused.
    let bare = app
        .service_account("no-rules", &["certificate:sign:server"], &["tollgate"])
        .await;
    let bare = app.client.clone().with_user_token(app.token(&bare).await);
    assert_eq!(
        reason(bare.sign_server_certificate(&csr, None).await),
        "san-not-allowed"
    );
    let unscoped = app.service_account("unscoped", &["read"], &["tollgate"]).await;
    let unscoped = app.client.clone().with_user_token(app.token(&unscoped).await);
    assert_eq!(
        reason(unscoped.sign_server_certificate(&csr, None).await),
        "permission-denied"
    );
    let (_, alice, _) = acme(&w).await;
    assert_eq!(
        reason(alice.sign_server_certificate(&csr, None).await),
        "permission-denied"
    );
    let bad_rules = tollgate_client::proto::certs::CertificateRules {
        dns: vec!["a.*.example.com".into()],
        ips: vec![],
    };
    assert_eq!(
        reason(
            app.client
                .set_certificate_rules(&build.client_id, &bad_rules)
                .await
        ),
        "invalid-parameter"
    );
}

/// An Envoy `x-forwarded-client-cert` value carrying `pem`, as Envoy writes it.
fn xfcc(pem: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(pem.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!(r#"By=spiffe://cluster.local/ns/default/sa/envoy;Hash=0f;Cert="{encoded}";Subject="CN=x""#)
}

#[tokio::test]
async fn the_gateway_check_decides_from_the_forwarded_client_certificate_and_the_route() {
    let w = world_with(|c| {
        c.gateway.enabled = true;
        c.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.gateway.routes = vec![
            tollgate_server::config::GatewayRoute {
                prefix: "/deploy".into(),
                allow: vec!["ci".into()],
                orgs: vec![],
            },
            tollgate_server::config::GatewayRoute {
                prefix: "/".into(),
                allow: vec!["user".into()],
                orgs: vec!["acme".into()],
            },
        ];
    })
    .await;
    let (alice_id, alice, _) = acme(&w).await;
    let issued = alice
        .sign_client_certificate(&client_csr(SigningAlg::ES256), None)
        .await
        .unwrap();
    let check = |path: &str, header: Option<String>| {
        let mut req = w
            .app
            .http
            .post(w.app.url(&format!("/v1/gateway/authorize{path}")));
        if let Some(h) = header {
            req = req.header("x-forwarded-client-cert", h);
        }
        async move {
            let r = req.send().await.unwrap();
            let get = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
            (
                r.status().as_u16(),
                get("x-tollgate-reason"),
                get("x-tollgate-subject"),
                get("x-tollgate-org"),
            )
        }
    };
    let ok = check("/api/things", Some(xfcc(&issued.certificate))).await;
    assert_eq!(ok, (200, None, Some(alice_id.clone()), Some("acme".into())));
    assert_eq!(
        check("/deploy/app", Some(xfcc(&issued.certificate)))
            .await
            .1
            .as_deref(),
        Some("route-not-allowed")
    );
    assert_eq!(
        check("/api", None).await.1.as_deref(),
        Some("client-cert-missing")
    );
    // Not from tollgate's CA: a self-signed certificate with the same names.
    let k = key(SigningAlg::ES256);
    let foreign =
        tollgate_crypto::self_signed_certificate(&k, "tollgate Issuing CA", 1_700_000_000, 1_900_000_000)
            .unwrap();
    assert_eq!(
        check("/api", Some(xfcc(&foreign))).await.1.as_deref(),
        Some("client-cert-invalid")
    );
    // Expired (90 minutes for a person).
    w.app.advance(Duration::from_secs(91 * 60));
    assert_eq!(
        check("/api", Some(xfcc(&issued.certificate))).await.1.as_deref(),
        Some("client-cert-invalid")
    );

    // From a peer outside server.trusted_proxies, the header is not believed.
    let untrusted = world_with(|c| c.gateway.enabled = true).await;
    let (_, alice, _) = acme(&untrusted).await;
    let issued = alice
        .sign_client_certificate(&client_csr(SigningAlg::ES256), None)
        .await
        .unwrap();
    let r = untrusted
        .app
        .http
        .post(untrusted.app.url("/v1/gateway/authorize/x"))
        .header("x-forwarded-client-cert", xfcc(&issued.certificate))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-tollgate-reason"], "client-cert-invalid");
    // Off by default.
    let off = crate::test_app::TestApp::new().await;
    let r = off
        .http
        .post(off.url("/v1/gateway/authorize/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A stand-in for an external CA service (a cloud private CA's adapter) on loopback: its
/// own root and issuing keys; `POST /sign` issues what it is asked — unless told to lie
/// (a day longer than asked) or to fail — and `GET /chain` serves its chain.
struct FakeCa {
    url: String,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    _server: tokio::task::JoinHandle<()>,
}

const HONEST: u8 = 0;
const LIAR: u8 = 1;
const DOWN: u8 = 2;

struct FakeCaKeys {
    issuing: SigningKey,
    chain: String,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

async fn fake_sign(
    axum::extract::State(keys): axum::extract::State<std::sync::Arc<FakeCaKeys>>,
    headers: http::HeaderMap,
    axum::Json(req): axum::Json<serde_json::Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use tollgate_crypto::ca::{self, CaIdentity, Leaf, LeafProfile};
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
        return http::StatusCode::UNAUTHORIZED.into_response();
    }
    let mode = keys.mode.load(std::sync::atomic::Ordering::SeqCst);
    if mode == DOWN {
        return (http::StatusCode::INTERNAL_SERVER_ERROR, "backend down").into_response();
    }
    let parsed = csr::parse(req["csr"].as_str().unwrap()).unwrap();
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let dns: Vec<String> = serde_json::from_value(req["dns"].clone()).unwrap();
    let ips: Vec<std::net::IpAddr> = serde_json::from_value(req["ips"].clone()).unwrap();
    let (cn, o, ou) = (
        text(&req["subject"]["common_name"]).unwrap(),
        text(&req["subject"]["organization"]),
        text(&req["subject"]["organizational_unit"]),
    );
    let extra = if mode == LIAR { 86_400 } else { 0 };
    let leaf = Leaf {
        profile: if req["profile"] == "server" {
            LeafProfile::Server
        } else {
            LeafProfile::Client
        },
        common_name: &cn,
        organization: o.as_deref(),
        organizational_unit: ou.as_deref(),
        dns_names: &dns,
        ip_addresses: &ips,
        not_before: req["not_before"].as_i64().unwrap(),
        not_after: req["not_after"].as_i64().unwrap() + extra,
        serial: ca::random_serial(),
    };
    let issuer = CaIdentity {
        common_name: "Fake Cloud Issuing CA",
        key: &keys.issuing,
    };
    let issued = ca::issue(issuer, &parsed, &leaf).unwrap();
    axum::Json(serde_json::json!({"certificate": issued.pem})).into_response()
}

impl FakeCa {
    async fn start() -> Self {
        use tollgate_crypto::ca::{self, CaIdentity};
        let root = key(SigningAlg::ES256);
        let issuing = key(SigningAlg::ES256);
        let r = CaIdentity {
            common_name: "Fake Cloud Root CA",
            key: &root,
        };
        let i = CaIdentity {
            common_name: "Fake Cloud Issuing CA",
            key: &issuing,
        };
        let chain = ca::new_intermediate(r, i, 1_700_000_000, 1_900_000_000).unwrap()
            + &ca::new_root(r, 1_700_000_000, 1_900_000_000).unwrap();
        let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(HONEST));
        let keys = std::sync::Arc::new(FakeCaKeys {
            issuing,
            chain,
            mode: mode.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let chain_keys = keys.clone();
        let router = axum::Router::new()
            .route("/sign", axum::routing::post(fake_sign))
            .route(
                "/chain",
                axum::routing::get(move || async move { chain_keys.chain.clone() }),
            )
            .with_state(keys);
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            url,
            mode,
            _server: server,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn an_external_ca_signs_and_what_it_returns_is_checked() {
    let fake = FakeCa::start().await;
    let url = fake.url.clone();
    let w = world_with(move |c| {
        c.certs.ca = tollgate_server::config::CaKind::External;
        c.certs.external_url = url;
        c.certs.external_token = Some("s3cret".to_owned().into());
    })
    .await;
    let (alice_id, alice, _) = acme(&w).await;
    let issued = alice
        .sign_client_certificate(&client_csr(SigningAlg::ES256), Some("20m"))
        .await
        .unwrap();
    assert_eq!(issued.ca, "external");
    assert!(issued.chain.contains("BEGIN CERTIFICATE"));
    assert_eq!(w.app.client.ca_chain().await.unwrap(), issued.chain);
    openssl_verify(&issued.certificate, &issued.chain, "sslclient").unwrap();
    let leaf = pem_blocks(&issued.certificate).remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        format!("O=acme, OU=user, CN={alice_id}")
    );
    assert_eq!(cert.issuer().to_string(), "CN=Fake Cloud Issuing CA");

    // A certificate other than asked (longer-lived) is not handed out.
    fake.set(LIAR);
    assert_eq!(
        reason(
            alice
                .sign_client_certificate(&client_csr(SigningAlg::ES256), None)
                .await
        ),
        "ca-unavailable"
    );
    fake.set(DOWN);
    assert_eq!(
        reason(
            alice
                .sign_client_certificate(&client_csr(SigningAlg::ES256), None)
                .await
        ),
        "ca-unavailable"
    );
    let metrics = w.app.get_text("/metrics").await;
    assert!(
        metrics.contains("tollgate_cert_issue_errors_total{ca=\"external\",reason=\"ca-unavailable\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_cert_issued_total{ca=\"external\",profile=\"client\"} 1"),
        "{metrics}"
    );
}

/// An existing CA made with the `openssl` command line (P-256 root and issuing CA, a
/// PrintableString country and UTF8String names, SHA-1 key identifiers): files in `dir`.
fn openssl_ca(dir: &std::path::Path) -> (String, String, String) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "root.key",
    ]);
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "root.key",
        "-subj",
        "/C=DE/O=Example Corp/CN=Example Root",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        "root.pem",
    ]);
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "issuing.key",
    ]);
    run(&[
        "req",
        "-new",
        "-key",
        "issuing.key",
        "-subj",
        "/C=DE/O=Example Corp/CN=Example Issuing",
        "-out",
        "issuing.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "issuing.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-days",
        "1000",
        "-extfile",
        "ext.cnf",
        "-out",
        "issuing.pem",
    ]);
    let path = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    (path("root.pem"), path("issuing.pem"), path("issuing.key"))
}

#[tokio::test]
async fn an_existing_ca_can_be_imported_and_issues_certificates_that_chain_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (root, issuing, issuing_key) = openssl_ca(dir.path());
    let (r, i, k) = (root.clone(), issuing.clone(), issuing_key.clone());
    let w = world_with(move |c| {
        c.certs.import_root = r;
        c.certs.import_issuing = i;
        c.certs.import_issuing_key = k;
    })
    .await;
    let chain = w.app.client.ca_chain().await.unwrap();
    let expected = std::fs::read_to_string(&issuing).unwrap() + &std::fs::read_to_string(&root).unwrap();
    assert_eq!(chain, expected);
    let (_, alice, _) = acme(&w).await;
    let issued = alice
        .sign_client_certificate(&client_csr(SigningAlg::EdDSA), None)
        .await
        .unwrap();
    openssl_verify(&issued.certificate, &issued.chain, "sslclient").unwrap();
    webpki_client_auth(&issued, w.app.clock.now().0).unwrap();
    let leaf = pem_blocks(&issued.certificate).remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert_eq!(
        cert.issuer().to_string(),
        "C=DE, O=Example Corp, CN=Example Issuing"
    );

    // The issuing key must be the issuing certificate's: a wrong one stops the start.
    let other = dir.path().join("other.key");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut config = tollgate_server::Config::default();
    let data = tempfile::tempdir().unwrap();
    config.server.data_dir = data.path().to_owned();
    config.database.url = tollgate_store::testing::sqlite_url(data.path());
    config.certs.import_root = root;
    config.certs.import_issuing = issuing;
    config.certs.import_issuing_key = other.to_str().unwrap().to_owned();
    let clock = std::sync::Arc::new(tollgate_server::clock::ManualClock::new(w.app.clock.now()));
    let refused =
        tollgate_server::App::build(config, tollgate_crypto::MasterKey::from_bytes([7; 32]), clock).await;
    let message = refused.expect_err("a wrong issuing key is refused").to_string();
    assert!(message.contains("not the issuing certificate's key"), "{message}");
}
