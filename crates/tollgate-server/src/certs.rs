//! Certificates at run time: the CA behind an adapter, and issuing a client certificate to
//! a verified caller.
//!
//! **The CA.** [`CertificateAuthority`] is what signs: [`InternalCa`] by default, a P-256
//! root and issuing intermediate made on the first start (keys sealed with the master key
//! like signing keys, stored once as a set so replicas starting together agree), serving the
//! chain `GET /v1/ca/chain` returns. An external CA (a cloud private CA, step-ca) would be
//! another implementation of the trait.
//!
//! **Issuing.** The CSR's signature is checked (the caller holds its key), its key type and
//! SANs are judged by `tollgate_core::certs` for the profile, and the subject is built from
//! the verified caller, never from the CSR: a user's id (`OU=user`) or a CI job's workload
//! subject (`OU=ci`), in its org (`O=`). The lifetime is clamped by context. Each issuance
//! and refusal is counted and audited (serial, SANs, lifetime, CA, provenance; never a PEM).

use crate::error::ApiError;
use crate::state::AppState;
use async_trait::async_trait;
use serde_json::json;
use std::time::{Duration, Instant};
use tollgate_core::certs::{self as rules, CertRefusal, TtlContext, TtlLimits};
use tollgate_core::claims::AccessTokenClaims;
use tollgate_core::{Reason, SigningAlg};
use tollgate_crypto::ca::{self, CaIdentity, IssuedLeaf, Leaf, LeafProfile};
use tollgate_crypto::csr::{self, CsrError, ParsedCsr};
use tollgate_crypto::{MasterKey, SigningKey};
use tollgate_store::{CaKeyRecord, Store};

const ROOT: &str = "root";
const ISSUING: &str = "issuing";
/// Validity of the CA certificates made on first start.
const ROOT_LIFETIME: i64 = 10 * 365 * 86_400;
const ISSUING_LIFETIME: i64 = 5 * 365 * 86_400;
/// Certificates start this much before now, for clocks slightly behind.
const BACKDATE: i64 = 60;

/// Something that signs certificates.
#[async_trait]
pub trait CertificateAuthority: Send + Sync + std::fmt::Debug {
    /// A short name for metrics and audit (`internal`, …).
    fn id(&self) -> &str;
    /// The PEM chain a verifier needs above the leaves: issuing CA, then root.
    async fn chain_pem(&self) -> Result<String, ApiError>;
    /// The issuing CA's certificate, read once: to check what it signed.
    async fn issuer_cert(&self) -> Result<&ca::IssuerCert, ApiError>;
    /// Signs `leaf` for `csr`'s key.
    async fn issue(&self, csr: &ParsedCsr, leaf: &Leaf<'_>) -> Result<IssuedLeaf, ApiError>;
}

/// The built-in CA: its issuing key and both certificates.
pub struct InternalCa {
    issuer: ca::IssuerCert,
    issuing_key: SigningKey,
    /// Issuing CA then root, PEM.
    chain: String,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa").finish_non_exhaustive()
    }
}

fn seal_context(role: &str) -> String {
    format!("tollgate-ca:{role}")
}

impl InternalCa {
    /// Loads the CA, or makes and stores it on the first start (of replicas starting
    /// together, one set is kept and all load it).
    ///
    /// # Errors
    /// A store failure, or stored keys that do not open under this master key.
    pub async fn start(
        store: &dyn Store,
        master: &MasterKey,
        now: i64,
        config: &crate::config::CertsConfig,
    ) -> Result<Self, String> {
        let mut records = store.ca_keys().await.map_err(|e| e.to_string())?;
        if records.is_empty() {
            let made = if config.import_issuing.is_empty() {
                make(master, now, &config.ca_name)?
            } else {
                import(master, now, config)?
            };
            store.create_ca_keys(&made).await.map_err(|e| e.to_string())?;
            records = store.ca_keys().await.map_err(|e| e.to_string())?;
        } else if !config.import_issuing.is_empty() {
            tracing::warn!("certs.import_* is ignored: a CA is stored already");
        }
        let find = |role: &str| {
            records
                .iter()
                .find(|r| r.role == role)
                .ok_or_else(|| format!("the stored CA has no {role} certificate"))
        };
        let (root, issuing) = (find(ROOT)?, find(ISSUING)?);
        let pkcs8 = master
            .open(&seal_context(ISSUING), &issuing.sealed_key)
            .map_err(|_| "the CA's issuing key does not open with this master key".to_owned())?;
        let issuing_key = SigningKey::from_pkcs8(SigningAlg::ES256, &pkcs8).map_err(|e| e.to_string())?;
        let issuer = ca::IssuerCert::from_pem(&issuing.cert_pem).map_err(|e| e.to_string())?;
        Ok(Self {
            issuer,
            issuing_key,
            chain: format!("{}{}", issuing.cert_pem, root.cert_pem),
        })
    }
}

/// An existing CA from the `certs.import_*` files, checked, sealed for the store (its root
/// key is not needed, and not kept).
fn import(master: &MasterKey, now: i64, c: &crate::config::CertsConfig) -> Result<[CaKeyRecord; 2], String> {
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let (root_pem, issuing_pem, key_pem) = (
        read(&c.import_root)?,
        read(&c.import_issuing)?,
        read(&c.import_issuing_key)?,
    );
    let body: String = key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let pkcs8 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| format!("{} is not a PEM key", c.import_issuing_key))?
    };
    let key = SigningKey::from_pkcs8(SigningAlg::ES256, &pkcs8)
        .map_err(|e| format!("{}: a P-256 key in PKCS #8 is needed ({e})", c.import_issuing_key))?;
    ca::check_import(&root_pem, &issuing_pem, &key, now).map_err(|e| e.to_string())?;
    let name_of = |pem: &str, fallback: &str| ca::common_name(pem).unwrap_or_else(|| fallback.to_owned());
    Ok([
        CaKeyRecord {
            role: ROOT.to_owned(),
            common_name: name_of(&root_pem, "imported root"),
            alg: "ES256".to_owned(),
            sealed_key: Vec::new(),
            cert_pem: root_pem,
            created_at: now,
        },
        CaKeyRecord {
            role: ISSUING.to_owned(),
            common_name: name_of(&issuing_pem, "imported issuing CA"),
            alg: "ES256".to_owned(),
            sealed_key: master.seal(&seal_context(ISSUING), &pkcs8),
            cert_pem: issuing_pem,
            created_at: now,
        },
    ])
}

/// A new root and issuing CA, sealed for the store.
fn make(master: &MasterKey, now: i64, ca_name: &str) -> Result<[CaKeyRecord; 2], String> {
    let (root_key, root_pkcs8) = SigningKey::generate(SigningAlg::ES256).map_err(|e| e.to_string())?;
    let (issuing_key, issuing_pkcs8) = SigningKey::generate(SigningAlg::ES256).map_err(|e| e.to_string())?;
    let root_name = format!("{ca_name} Root CA");
    let issuing_name = format!("{ca_name} Issuing CA");
    let root = CaIdentity {
        common_name: &root_name,
        key: &root_key,
    };
    let issuing = CaIdentity {
        common_name: &issuing_name,
        key: &issuing_key,
    };
    let root_pem = ca::new_root(root, now - BACKDATE, now + ROOT_LIFETIME).map_err(|e| e.to_string())?;
    let issuing_pem = ca::new_intermediate(root, issuing, now - BACKDATE, now + ISSUING_LIFETIME)
        .map_err(|e| e.to_string())?;
    let record = |role: &str, name: String, pkcs8: &[u8], pem: String| CaKeyRecord {
        role: role.to_owned(),
        common_name: name,
        alg: "ES256".to_owned(),
        sealed_key: master.seal(&seal_context(role), pkcs8),
        cert_pem: pem,
        created_at: now,
    };
    Ok([
        record(ROOT, root_name, &root_pkcs8, root_pem),
        record(ISSUING, issuing_name, &issuing_pkcs8, issuing_pem),
    ])
}

#[async_trait]
impl CertificateAuthority for InternalCa {
    fn id(&self) -> &str {
        "internal"
    }

    async fn chain_pem(&self) -> Result<String, ApiError> {
        Ok(self.chain.clone())
    }

    async fn issuer_cert(&self) -> Result<&ca::IssuerCert, ApiError> {
        Ok(&self.issuer)
    }

    async fn issue(&self, csr: &ParsedCsr, leaf: &Leaf<'_>) -> Result<IssuedLeaf, ApiError> {
        ca::issue_as(&self.issuer, &self.issuing_key, csr, leaf).map_err(|e| ApiError::internal(&e))
    }
}

/// A CA elsewhere, reached over HTTP (a cloud private CA or step-ca behind a small
/// translating service): `POST <url>/sign` with what to issue, `GET <url>/chain` for its
/// chain (fetched once, on first need). What it returns is checked against what was asked
/// (`tollgate_crypto::ca::check_external_leaf`): it signs, it does not decide.
#[derive(Debug)]
pub struct ExternalCa {
    url: String,
    token: Option<secrecy::SecretString>,
    http: reqwest::Client,
    chain: tokio::sync::OnceCell<String>,
    issuer: tokio::sync::OnceCell<ca::IssuerCert>,
}

impl ExternalCa {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(url: &str, token: Option<secrecy::SecretString>) -> Result<Self, reqwest::Error> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            chain: tokio::sync::OnceCell::new(),
            issuer: tokio::sync::OnceCell::new(),
        })
    }

    fn request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        use secrecy::ExposeSecret as _;
        match &self.token {
            Some(t) => req.bearer_auth(t.expose_secret()),
            None => req,
        }
    }
}

fn ca_down(what: String) -> ApiError {
    tracing::warn!("external CA: {what}");
    ApiError::new(
        Reason::CaUnavailable,
        format!("the external CA could not sign: {what}"),
    )
}

#[async_trait]
impl CertificateAuthority for ExternalCa {
    fn id(&self) -> &str {
        "external"
    }

    async fn chain_pem(&self) -> Result<String, ApiError> {
        self.chain
            .get_or_try_init(|| async {
                let url = format!("{}/chain", self.url);
                let resp = self
                    .request(self.http.get(&url))
                    .send()
                    .await
                    .map_err(|e| ca_down(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(ca_down(format!("{url} answered {}", resp.status())));
                }
                resp.text().await.map_err(|e| ca_down(e.to_string()))
            })
            .await
            .cloned()
    }

    async fn issuer_cert(&self) -> Result<&ca::IssuerCert, ApiError> {
        let chain = self.chain_pem().await?;
        self.issuer
            .get_or_try_init(|| async {
                ca::IssuerCert::from_pem(&chain).map_err(|e| ca_down(format!("its chain: {e}")))
            })
            .await
    }

    async fn issue(&self, csr: &ParsedCsr, leaf: &Leaf<'_>) -> Result<IssuedLeaf, ApiError> {
        let body = json!({
            "csr": csr.pem(),
            "profile": match leaf.profile { LeafProfile::Client => "client", LeafProfile::Server => "server" },
            "subject": {"common_name": leaf.common_name, "organization": leaf.organization, "organizational_unit": leaf.organizational_unit},
            "dns": leaf.dns_names,
            "ips": leaf.ip_addresses,
            "not_before": leaf.not_before,
            "not_after": leaf.not_after,
            "serial": hex::encode(leaf.serial),
        });
        let url = format!("{}/sign", self.url);
        let resp = self
            .request(self.http.post(&url).json(&body))
            .send()
            .await
            .map_err(|e| ca_down(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let text: String = resp.text().await.unwrap_or_default().chars().take(200).collect();
            return Err(ca_down(format!("{url} answered {status}: {text}")));
        }
        #[derive(serde::Deserialize)]
        struct Signed {
            certificate: String,
        }
        let signed: Signed = resp.json().await.map_err(|e| ca_down(format!("{url}: {e}")))?;
        let der = ca::check_external_leaf(&signed.certificate, csr, leaf).map_err(|e| {
            tracing::error!("external CA returned a certificate other than asked: {e}");
            ca_down(e.to_string())
        })?;
        Ok(IssuedLeaf {
            pem: signed.certificate,
            der,
        })
    }
}

/// The caller's CA, or a refusal when certificates are off.
fn authority(state: &AppState) -> Result<&dyn CertificateAuthority, ApiError> {
    state
        .ca
        .as_deref()
        .ok_or_else(|| ApiError::new(Reason::NotFound, "certificates are disabled here (certs.enabled)"))
}

/// The CA chain (PEM), for `GET /v1/ca/chain`.
pub async fn chain(state: &AppState) -> Result<String, ApiError> {
    authority(state)?.chain_pem().await
}

fn refusal(r: CertRefusal) -> ApiError {
    ApiError::new(r.reason, r.message)
}

fn csr_refusal(e: CsrError) -> ApiError {
    match e {
        CsrError::Malformed(m) => ApiError::new(Reason::CsrInvalid, format!("the CSR is malformed: {m}")),
        CsrError::SignatureInvalid => ApiError::new(
            Reason::CsrSignatureInvalid,
            "the CSR's signature does not verify with its own public key",
        ),
    }
}

/// Who a client certificate is for, from the verified token.
struct Holder {
    context: TtlContext,
    common_name: String,
    unit: &'static str,
    org: Option<String>,
    /// For the rate limit and the audit trail.
    actor: String,
}

/// The holder, if the caller may get a client certificate: a CI job whose trust policy
/// grants the `client` certificate profile (read now), or a user whose role in the token's
/// org grants `certificate:sign:client`.
async fn client_holder(state: &AppState, claims: &AccessTokenClaims) -> Result<Holder, ApiError> {
    const PERMISSION: &str = "certificate:sign:client";
    if let Some(job) = &claims.ci {
        // The policy as it is now: a grant taken back stops further certificates.
        let granted = crate::workloads::policy_of(state, claims)
            .await?
            .is_some_and(|p| p.grant.certificates.iter().any(|c| c == "client"));
        if !granted {
            return Err(ApiError::new(
                Reason::PermissionDenied,
                format!(
                    "trust policy `{}` does not grant client certificates (grant.certificates: [\"client\"])",
                    job.policy
                ),
            ));
        }
        let org_name = match &claims.org {
            Some(id) => state.store.find_org(id).await?.map(|o| o.name),
            None => None,
        };
        return Ok(Holder {
            context: TtlContext::CiJob {
                job_expires_at: claims.exp.0,
            },
            common_name: claims.sub.clone(),
            unit: "ci",
            org: org_name,
            actor: format!("job:{}", claims.sub),
        });
    }
    let user = crate::users::find(state, &claims.sub).await?;
    let Some(org_id) = &claims.org else {
        return Err(ApiError::new(
            Reason::PermissionDenied,
            format!("{PERMISSION} is granted by an org role; use a token for an org (exchange with org=…)"),
        ));
    };
    let org = state
        .store
        .find_org(org_id)
        .await?
        .ok_or_else(|| ApiError::new(Reason::OrgNotMember, "the token's org no longer exists"))?;
    let active = crate::orgs::membership(state, &org, &user.id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Reason::OrgNotMember,
                format!("not a member of org `{}`", org.name),
            )
        })?;
    tollgate_core::authz::decide(
        tollgate_core::authz::Requirement::All(&[PERMISSION]),
        &active.permissions,
    )
    .map_err(|d| ApiError::new(Reason::PermissionDenied, format!("in org `{}`: {d}", org.name)))?;
    Ok(Holder {
        context: TtlContext::Developer,
        common_name: user.id.clone(),
        unit: "user",
        org: Some(org.name),
        actor: format!("user:{}", user.id),
    })
}

/// An issued certificate and what the answer says about it.
#[derive(Debug)]
pub struct Issued {
    pub certificate_pem: String,
    pub chain_pem: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub ca: String,
}

/// Issues a client certificate for `csr_text` to the caller of `claims`, for at most
/// `requested` (clamped by context). Refusals are counted and audited.
pub async fn sign_client(
    state: &AppState,
    claims: &AccessTokenClaims,
    csr_text: &str,
    requested: Option<Duration>,
) -> Result<Issued, ApiError> {
    let ca = authority(state)?;
    let started = Instant::now();
    let result = sign_client_inner(state, ca, claims, csr_text, requested).await;
    observe(state, ca, claims, "client", started, &result).await?;
    result
}

async fn sign_client_inner(
    state: &AppState,
    ca: &dyn CertificateAuthority,
    claims: &AccessTokenClaims,
    csr_text: &str,
    requested: Option<Duration>,
) -> Result<Issued, ApiError> {
    let holder = client_holder(state, claims).await?;
    if let Some(quota) = state.limits.cert_issuance {
        crate::rate_limit::check_quota(state, quota, &format!("cert:{}", holder.actor), "certificates")
            .await?;
    }
    let parsed = csr::parse(csr_text).map_err(csr_refusal)?;
    rules::check_client(&parsed.request).map_err(refusal)?;
    let now = state.clock.now().0;
    let ttl = rules::clamp_ttl(holder.context, requested, &ttl_limits(state), now);
    if ttl < 60 {
        return Err(ApiError::new(
            Reason::Expired,
            "the job token expires within a minute; a certificate would be useless — get a fresh job token",
        ));
    }
    let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
    let serial = ca::random_serial();
    let leaf = Leaf {
        profile: LeafProfile::Client,
        common_name: &holder.common_name,
        organization: holder.org.as_deref(),
        organizational_unit: Some(holder.unit),
        dns_names: &[],
        ip_addresses: &[],
        // Backdated a little for skew, but never past a CI job's token.
        not_before: now - BACKDATE.min(ttl),
        not_after: now + ttl,
        serial,
    };
    let provenance = json!({
        "client_id": claims.client_id,
        "upstream": claims.upstream.as_ref().map(|u| &u.name),
        "ci": claims.ci.is_some(),
    });
    issue_and_record(state, ca, claims, &holder.actor, &parsed, &leaf, provenance).await
}

/// The configured lifetime ceilings.
fn ttl_limits(state: &AppState) -> TtlLimits {
    let c = &state.config.certs;
    TtlLimits {
        developer: c.developer_ttl,
        ci_job: c.ci_job_ttl,
        server: c.server_ttl,
    }
}

/// Signs `leaf` for `parsed`, audits the issuance as `actor` (serial, subject, SANs,
/// lifetime, key type, CA, `provenance`; never a PEM) and builds the answer.
async fn issue_and_record(
    state: &AppState,
    ca: &dyn CertificateAuthority,
    claims: &AccessTokenClaims,
    actor: &str,
    parsed: &ParsedCsr,
    leaf: &Leaf<'_>,
    provenance: serde_json::Value,
) -> Result<Issued, ApiError> {
    let issued = ca.issue(parsed, leaf).await?;
    let serial = hex::encode(leaf.serial);
    let profile = match leaf.profile {
        LeafProfile::Client => "client",
        LeafProfile::Server => "server",
    };
    let mut event = crate::audit::AuditEvent::new(actor, "certificate.issue")
        .credential(claims.jti.clone())
        .target(&serial)
        .detail(json!({
            "profile": profile,
            "ca": ca.id(),
            "serial": serial,
            "subject": {"cn": leaf.common_name, "ou": leaf.organizational_unit, "o": leaf.organization},
            "sans": {"dns": leaf.dns_names, "ip": leaf.ip_addresses},
            "key": parsed.request.key.as_ref().map(ToString::to_string),
            "not_before": leaf.not_before,
            "not_after": leaf.not_after,
            "ttl_seconds": leaf.not_after - state.clock.now().0,
            "provenance": provenance,
        }));
    event.org_id = claims.org.clone();
    crate::audit::record_event(state, event).await?;
    Ok(Issued {
        certificate_pem: issued.pem,
        chain_pem: ca.chain_pem().await?,
        serial,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        ca: ca.id().to_owned(),
    })
}

/// Checks and normalizes rules for storage: patterns parsed (IDNA to A-labels), IPs parsed.
///
/// # Errors
/// `invalid-parameter` naming the first bad pattern or address.
pub fn normalize_rules(dns: &[String], ips: &[String]) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let invalid = |m: String| ApiError::new(Reason::InvalidParameter, m);
    let dns = dns
        .iter()
        .map(|p| {
            rules::DnsPattern::parse(p)
                .map(|p| p.to_string())
                .map_err(|e| invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ips = ips
        .iter()
        .map(|ip| {
            ip.parse::<std::net::IpAddr>()
                .map(|a| a.to_string())
                .map_err(|_| invalid(format!("`{ip}` is not an IP address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((dns, ips))
}

/// The rules of a service account, as the checks use them.
async fn server_rules(state: &AppState, client_id: &str) -> Result<rules::ServerRules, ApiError> {
    let stored = state.store.cert_rules(client_id).await?.ok_or_else(|| {
        ApiError::new(
            Reason::SanNotAllowed,
            format!("service account `{client_id}` has no certificate rules; an operator sets them (PUT /v1/admin/clients/{client_id}/certificate-rules)"),
        )
    })?;
    let corrupt = |m: String| ApiError::unavailable(&tollgate_store::StoreError::Corrupt(m));
    Ok(rules::ServerRules {
        dns: stored
            .dns_patterns
            .iter()
            .map(|p| rules::DnsPattern::parse(p).map_err(|e| corrupt(e.to_string())))
            .collect::<Result<_, _>>()?,
        ips: stored
            .ip_addresses
            .iter()
            .map(|ip| ip.parse().map_err(|_| corrupt(format!("stored IP `{ip}`"))))
            .collect::<Result<_, _>>()?,
    })
}

/// Issues a server certificate for `csr_text` to the service account of `claims` (scope
/// `certificate:sign:server`): its DNS SANs judged against the account's patterns.
pub async fn sign_server(
    state: &AppState,
    claims: &AccessTokenClaims,
    csr_text: &str,
    requested: Option<Duration>,
) -> Result<Issued, ApiError> {
    let ca = authority(state)?;
    let started = Instant::now();
    let result = async {
        if claims.user_ver.is_some() || claims.ci.is_some() || !claims.scope.split(' ').any(|s| s == "certificate:sign:server") {
            return Err(ApiError::new(
                Reason::PermissionDenied,
                "server certificates are for service accounts whose token carries the scope certificate:sign:server",
            ));
        }
        let actor = format!("client:{}", claims.client_id);
        if let Some(quota) = state.limits.cert_issuance {
            crate::rate_limit::check_quota(state, quota, &format!("cert:{actor}"), "certificates").await?;
        }
        let parsed = csr::parse(csr_text).map_err(csr_refusal)?;
        let rules = server_rules(state, &claims.client_id).await?;
        let names = rules::check_server(&parsed.request, &rules).map_err(refusal)?;
        let dns: Vec<String> = names.iter().map(ToString::to_string).collect();
        let now = state.clock.now().0;
        let ttl = rules::clamp_ttl(TtlContext::Server, requested, &ttl_limits(state), now);
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        let common_name = dns.first().cloned().unwrap_or_else(|| claims.client_id.clone());
        let serial = ca::random_serial();
        let org_name = match &claims.org {
            Some(id) => state.store.find_org(id).await?.map(|o| o.name),
            None => None,
        };
        let leaf = Leaf {
            profile: LeafProfile::Server,
            common_name: &common_name,
            organization: org_name.as_deref(),
            organizational_unit: Some("service"),
            dns_names: &dns,
            ip_addresses: &parsed.request.ip_addresses,
            not_before: now - BACKDATE,
            not_after: now + ttl,
            serial,
        };
        let provenance = json!({"client_id": claims.client_id});
        issue_and_record(state, ca, claims, &actor, &parsed, &leaf, provenance).await
    }
    .await;
    observe(state, ca, claims, "server", started, &result).await?;
    result
}

/// Counts (and for refusals, audits) the outcome of one certificate request.
async fn observe(
    state: &AppState,
    ca: &dyn CertificateAuthority,
    claims: &AccessTokenClaims,
    profile: &'static str,
    started: Instant,
    result: &Result<Issued, ApiError>,
) -> Result<(), ApiError> {
    let ca_id = ca.id().to_owned();
    match result {
        Ok(_) => {
            state
                .metrics
                .cert_issue_duration
                .get_or_create(&crate::metrics::CaLabel { ca: ca_id.clone() })
                .observe(started.elapsed().as_secs_f64());
            state
                .metrics
                .certs_issued
                .get_or_create(&crate::metrics::CertLabels { ca: ca_id, profile })
                .inc();
        }
        Err(e) => {
            state
                .metrics
                .cert_errors
                .get_or_create(&crate::metrics::CertErrorLabels {
                    ca: ca_id,
                    reason: e.reason.code(),
                })
                .inc();
            if e.reason != Reason::RateLimited && !crate::error::classify(e.reason).0.is_server_error() {
                let mut event =
                    crate::audit::AuditEvent::new(format!("token:{}", claims.sub), "certificate.issue")
                        .credential(claims.jti.clone())
                        .denied(e.reason)
                        .detail(json!({"profile": profile, "ca": ca.id(), "why": e.message}));
                event.org_id = claims.org.clone();
                crate::audit::record_event(state, event).await?;
            }
        }
    }
    Ok(())
}

/// The certificate element of an `x-forwarded-client-cert` value that the nearest proxy
/// added (the last one), URL-decoded: its `Cert` (PEM), if any.
fn xfcc_cert(header: &str) -> Option<String> {
    // Elements are separated by `,` and pairs by `;` outside double quotes.
    let mut elements = vec![String::new()];
    let mut quoted = false;
    for c in header.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                elements.last_mut()?.push(c);
            }
            ',' if !quoted => elements.push(String::new()),
            _ => elements.last_mut()?.push(c),
        }
    }
    let last = elements.pop()?;
    let mut pairs = Vec::new();
    let mut current = String::new();
    quoted = false;
    for c in last.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => pairs.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pairs.push(current);
    pairs.iter().find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("cert").then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Whether `path` is under `prefix` at a segment boundary.
fn under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/') || prefix.ends_with('/'))
}

/// The ext_authz decision for a request to `path` that Envoy forwarded from `peer` with the
/// `x-forwarded-client-cert` value `xfcc`: the holder, or the refusal naming why.
pub async fn gateway_decision(
    state: &AppState,
    peer: std::net::IpAddr,
    xfcc: Option<&str>,
    path: &str,
) -> Result<ca::LeafInfo, ApiError> {
    let gateway = &state.config.gateway;
    if !gateway.enabled {
        return Err(ApiError::new(
            Reason::NotFound,
            "the gateway check is off (gateway.enabled)",
        ));
    }
    let ca = authority(state)?;
    if !state.limits.trusted_proxies.iter().any(|c| c.contains(peer)) {
        return Err(ApiError::new(
            Reason::ClientCertInvalid,
            format!(
                "x-forwarded-client-cert is believed only from server.trusted_proxies; {peer} is not one"
            ),
        ));
    }
    let pem = xfcc.and_then(xfcc_cert).ok_or_else(|| {
        ApiError::new(
            Reason::ClientCertMissing,
            "no client certificate in x-forwarded-client-cert (Envoy: forward_client_cert_details with Cert)",
        )
    })?;
    let leaf = ca::verify_client_leaf_pem(&pem, ca.issuer_cert().await?, state.clock.now().0)
        .map_err(|e| ApiError::new(Reason::ClientCertInvalid, e.to_string()))?;
    let route = gateway
        .routes
        .iter()
        .find(|r| under(path, &r.prefix))
        .ok_or_else(|| ApiError::new(Reason::RouteNotAllowed, format!("no gateway route covers {path}")))?;
    let kind = leaf.organizational_unit.as_deref().unwrap_or_default();
    if !route.allow.iter().any(|a| a == kind) {
        return Err(ApiError::new(
            Reason::RouteNotAllowed,
            format!(
                "{path} (route {}) allows {:?}; the certificate is a {kind}'s",
                route.prefix, route.allow
            ),
        ));
    }
    if !route.orgs.is_empty() && !leaf.organization.as_ref().is_some_and(|o| route.orgs.contains(o)) {
        return Err(ApiError::new(
            Reason::RouteNotAllowed,
            format!(
                "{path} (route {}) allows orgs {:?} only",
                route.prefix, route.orgs
            ),
        ));
    }
    Ok(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_proxys_certificate_is_read_from_xfcc() {
        let one = r#"By=spiffe://envoy;Hash=ab;Cert="-----BEGIN%20CERTIFICATE-----%0AAAA%0A-----END%20CERTIFICATE-----%0A";Subject="CN=a,O=b""#;
        assert_eq!(
            xfcc_cert(one).as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n")
        );
        let two = format!(r#"By=x;Cert="first",{one}"#);
        assert!(xfcc_cert(&two).is_some_and(|c| c.contains("AAA")));
        assert_eq!(xfcc_cert("By=x;Hash=y"), None);
        assert_eq!(xfcc_cert(""), None);
    }

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(under("/deploy", "/deploy") && under("/deploy/x", "/deploy") && under("/anything", "/"));
        assert!(!under("/deployer", "/deploy"));
        assert!(under("/api/v1", "/api/"));
    }
}
