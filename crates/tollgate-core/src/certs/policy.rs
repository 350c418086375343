//! What a certificate request may ask for: the key types allowed, the SANs of each profile,
//! and the lifetime by context. Pure: the CSR arrives parsed (`tollgate-crypto`), the time
//! and the caller's context from the server.

use super::names::{DnsName, DnsPattern, NameError};
use crate::Reason;
use std::net::IpAddr;
use std::time::Duration;

/// The public key a CSR carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    P384,
    Ed25519,
    Rsa {
        bits: u32,
    },
    /// Anything else, by its algorithm (and curve) OID.
    Other(String),
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::P256 => f.write_str("P-256"),
            Self::P384 => f.write_str("P-384"),
            Self::Ed25519 => f.write_str("Ed25519"),
            Self::Rsa { bits } => write!(f, "RSA-{bits}"),
            Self::Other(oid) => write!(f, "unsupported key ({oid})"),
        }
    }
}

/// Smallest and largest RSA modulus accepted.
pub const RSA_MIN_BITS: u32 = 2048;
pub const RSA_MAX_BITS: u32 = 8192;

/// What a CSR asks for, as parsed and signature-checked by the crypto layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrRequest {
    pub key: Option<KeyKind>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// `rfc822Name`, URI and other SAN kinds, by kind (never issued).
    pub other_sans: Vec<String>,
}

/// A refusal that names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CertRefusal {
    pub reason: Reason,
    pub message: String,
}

fn refuse(reason: Reason, message: impl Into<String>) -> CertRefusal {
    CertRefusal {
        reason,
        message: message.into(),
    }
}

/// P-256, P-384, Ed25519 and RSA of 2048–8192 bits.
///
/// # Errors
/// `key-type-not-allowed` naming the key and what is accepted.
pub fn check_key(key: &KeyKind) -> Result<(), CertRefusal> {
    match key {
        KeyKind::P256 | KeyKind::P384 | KeyKind::Ed25519 => Ok(()),
        KeyKind::Rsa { bits } if (RSA_MIN_BITS..=RSA_MAX_BITS).contains(bits) => Ok(()),
        other => Err(refuse(
            Reason::KeyTypeNotAllowed,
            format!(
                "the CSR's key is {other}; accepted: P-256, P-384, Ed25519, RSA of {RSA_MIN_BITS}–{RSA_MAX_BITS} bits"
            ),
        )),
    }
}

fn key_of(req: &CsrRequest) -> Result<&KeyKind, CertRefusal> {
    let key = req
        .key
        .as_ref()
        .ok_or_else(|| refuse(Reason::KeyTypeNotAllowed, "the CSR carries no usable public key"))?;
    check_key(key)?;
    Ok(key)
}

/// A client certificate: the subject comes from the verified identity, so the CSR may name
/// no DNS, IP, email or URI SANs (they would be claims nobody checked).
///
/// # Errors
/// `key-type-not-allowed`, or `san-not-allowed` naming the first SAN.
pub fn check_client(req: &CsrRequest) -> Result<(), CertRefusal> {
    key_of(req)?;
    let first = req
        .dns_names
        .first()
        .map(|d| format!("DNS name `{d}`"))
        .or_else(|| req.ip_addresses.first().map(|ip| format!("IP address {ip}")))
        .or_else(|| req.other_sans.first().map(|o| format!("SAN {o}")));
    match first {
        None => Ok(()),
        Some(san) => Err(refuse(
            Reason::SanNotAllowed,
            format!(
                "a client certificate names its holder from the verified identity; remove the {san} from the CSR"
            ),
        )),
    }
}

/// What a server certificate may name.
#[derive(Debug, Clone, Default)]
pub struct ServerRules {
    pub dns: Vec<DnsPattern>,
    /// IP addresses allowed as SANs (none unless listed).
    pub ips: Vec<IpAddr>,
}

/// A server certificate: every DNS SAN (IDNA-normalized) must match an allowed pattern, IP
/// SANs must be listed, other SAN kinds are refused, and at least one name is required.
/// The normalized DNS names, in the CSR's order, without duplicates.
///
/// # Errors
/// `key-type-not-allowed`, `wildcard-depth` (a misplaced or too deep wildcard),
/// `san-not-allowed` (a name no pattern allows, an unlisted IP, an email or URI SAN, no
/// name at all), `invalid-parameter` for a malformed name.
pub fn check_server(req: &CsrRequest, rules: &ServerRules) -> Result<Vec<DnsName>, CertRefusal> {
    key_of(req)?;
    if let Some(other) = req.other_sans.first() {
        return Err(refuse(
            Reason::SanNotAllowed,
            format!("server certificates carry DNS names (and listed IPs) only; remove SAN {other}"),
        ));
    }
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err(refuse(
            Reason::SanNotAllowed,
            "the CSR names no DNS SAN; a server certificate needs at least one",
        ));
    }
    let mut names: Vec<DnsName> = Vec::new();
    for raw in &req.dns_names {
        let name = DnsName::parse(raw).map_err(|e| match e {
            NameError::Wildcard(..) => refuse(Reason::WildcardDepth, e.to_string()),
            NameError::Invalid(..) => refuse(Reason::InvalidParameter, e.to_string()),
        })?;
        if !rules.dns.iter().any(|p| p.allows(&name)) {
            let allowed: Vec<String> = rules.dns.iter().map(ToString::to_string).collect();
            let shown = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            };
            if name.is_wildcard() && rules.dns.iter().any(|p| p.allows_children_of(&name)) {
                return Err(refuse(
                    Reason::WildcardDepth,
                    format!(
                        "`{name}` is a wildcard deeper than the patterns allow ({shown}); name the hosts"
                    ),
                ));
            }
            return Err(refuse(
                Reason::SanNotAllowed,
                format!("DNS name `{name}` (from `{raw}`) matches none of this account's patterns: {shown}"),
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if let Some(ip) = req.ip_addresses.iter().find(|ip| !rules.ips.contains(ip)) {
        return Err(refuse(
            Reason::SanNotAllowed,
            format!("IP address SAN {ip} is not allowed for this account"),
        ));
    }
    Ok(names)
}

/// Who asks, for the lifetime clamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlContext {
    /// A person's sign-in.
    Developer,
    /// A CI job: never past the job token's expiry (Unix seconds).
    CiJob { job_expires_at: i64 },
    /// A service account's server certificate.
    Server,
}

/// The configured ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlLimits {
    pub developer: Duration,
    pub ci_job: Duration,
    pub server: Duration,
}

impl Default for TtlLimits {
    fn default() -> Self {
        Self {
            developer: Duration::from_secs(90 * 60),
            ci_job: Duration::from_secs(120 * 60),
            server: Duration::from_secs(6 * 24 * 3600),
        }
    }
}

/// The certificate's lifetime in seconds: what was asked (or the ceiling), at most the
/// context's ceiling, and for a CI job at most until its token expires. Never below 60 s
/// of a requested lifetime is refused: a job whose token expires within a minute gets
/// what is left (possibly 0, which the caller refuses).
#[must_use]
pub fn clamp_ttl(context: TtlContext, requested: Option<Duration>, limits: &TtlLimits, now: i64) -> u64 {
    let ceiling = match context {
        TtlContext::Developer => limits.developer,
        TtlContext::CiJob { .. } => limits.ci_job,
        TtlContext::Server => limits.server,
    };
    let mut ttl = requested.map_or(ceiling, |r| r.min(ceiling)).as_secs();
    if let TtlContext::CiJob { job_expires_at } = context {
        let left = u64::try_from(job_expires_at.saturating_sub(now)).unwrap_or(0);
        ttl = ttl.min(left);
    }
    ttl
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(dns: &[&str]) -> CsrRequest {
        CsrRequest {
            key: Some(KeyKind::P256),
            dns_names: dns.iter().map(|d| (*d).to_owned()).collect(),
            ..CsrRequest::default()
        }
    }

    fn rules(patterns: &[&str]) -> ServerRules {
        ServerRules {
            dns: patterns.iter().map(|p| DnsPattern::parse(p).unwrap()).collect(),
            ips: vec![],
        }
    }

    fn reason(r: Result<impl std::fmt::Debug, CertRefusal>) -> Reason {
        r.expect_err("refused").reason
    }

    #[test]
    fn keys_are_allowlisted() {
        for ok in [
            KeyKind::P256,
            KeyKind::P384,
            KeyKind::Ed25519,
            KeyKind::Rsa { bits: 2048 },
            KeyKind::Rsa { bits: 4096 },
        ] {
            assert!(check_key(&ok).is_ok(), "{ok}");
        }
        for bad in [
            KeyKind::Rsa { bits: 1024 },
            KeyKind::Rsa { bits: 16384 },
            KeyKind::Other("1.3.132.0.10".into()),
        ] {
            assert_eq!(reason(check_key(&bad)), Reason::KeyTypeNotAllowed, "{bad}");
        }
        assert_eq!(
            reason(check_client(&CsrRequest::default())),
            Reason::KeyTypeNotAllowed
        );
    }

    #[test]
    fn client_certificates_carry_no_sans() {
        assert!(check_client(&req(&[])).is_ok());
        assert_eq!(
            reason(check_client(&req(&["a.example.com"]))),
            Reason::SanNotAllowed
        );
        let with_ip = CsrRequest {
            ip_addresses: vec!["10.0.0.1".parse().unwrap()],
            ..req(&[])
        };
        assert_eq!(reason(check_client(&with_ip)), Reason::SanNotAllowed);
        let with_email = CsrRequest {
            other_sans: vec!["email:a@example.com".into()],
            ..req(&[])
        };
        assert_eq!(reason(check_client(&with_email)), Reason::SanNotAllowed);
    }

    #[test]
    fn server_names_must_match_and_wildcards_have_depth_rules() {
        let r = rules(&["*.build.example.com", "ci.example.com"]);
        let ok = check_server(
            &req(&["A.build.example.com", "ci.example.com.", "a.build.example.com"]),
            &r,
        )
        .unwrap();
        assert_eq!(
            ok.iter().map(DnsName::as_str).collect::<Vec<_>>(),
            ["a.build.example.com", "ci.example.com"]
        );
        assert!(check_server(&req(&["*.build.example.com"]), &r).is_ok());
        assert_eq!(
            reason(check_server(&req(&["evilbuild.example.com"]), &r)),
            Reason::SanNotAllowed
        );
        // `ci.example.com` is allowed, the wildcard over all of example.com is not.
        assert_eq!(
            reason(check_server(&req(&["*.example.com"]), &r)),
            Reason::WildcardDepth
        );
        assert_eq!(
            reason(check_server(&req(&["*.example.org"]), &r)),
            Reason::SanNotAllowed
        );
        assert_eq!(
            reason(check_server(&req(&["*.x.build.example.com"]), &r)),
            Reason::SanNotAllowed
        );
        let deep = rules(&["*.build.example.com", "*.x.build.example.com"]);
        assert!(check_server(&req(&["*.x.build.example.com"]), &deep).is_ok());
        // A wildcard one level above what the patterns allow: named as a depth problem.
        let hosts = rules(&["*.x.build.example.com"]);
        assert_eq!(
            reason(check_server(&req(&["*.build.example.com"]), &hosts)),
            Reason::SanNotAllowed
        );
        let hosts_only = rules(&["**.build.example.com"]);
        assert!(check_server(&req(&["*.a.b.build.example.com"]), &hosts_only).is_ok());
        for bad in ["*.*.build.example.com", "a*.build.example.com", "*.com"] {
            assert_eq!(
                reason(check_server(&req(&[bad]), &r)),
                Reason::WildcardDepth,
                "{bad}"
            );
        }
        assert_eq!(reason(check_server(&req(&[]), &r)), Reason::SanNotAllowed);
        assert_eq!(
            reason(check_server(&req(&["a_b.build.example.com"]), &r)),
            Reason::InvalidParameter
        );
        let ip = CsrRequest {
            ip_addresses: vec!["10.0.0.1".parse().unwrap()],
            ..req(&["ci.example.com"])
        };
        assert_eq!(reason(check_server(&ip, &r)), Reason::SanNotAllowed);
        let allowed_ip = ServerRules {
            ips: vec!["10.0.0.1".parse().unwrap()],
            ..r.clone()
        };
        assert!(check_server(&ip, &allowed_ip).is_ok());
    }

    #[test]
    fn wildcards_deeper_than_a_one_label_pattern_are_a_depth_refusal() {
        // `*.build.example.com` allows `x.build.example.com`, but not `*.build.example.com`'s
        // children's children: `*.a.build.example.com` is refused as too deep.
        let r = rules(&["**.a.build.example.com", "*.build.example.com"]);
        assert!(check_server(&req(&["*.a.build.example.com"]), &r).is_ok());
        let r = rules(&["*.a.build.example.com"]);
        // The children of `*.build.example.com` include `a.build.example.com`, which the
        // pattern does not allow; no child is allowed, so it is a plain refusal.
        assert_eq!(
            reason(check_server(&req(&["*.build.example.com"]), &r)),
            Reason::SanNotAllowed
        );
        let r = rules(&["x.build.example.com"]);
        assert_eq!(
            reason(check_server(&req(&["*.build.example.com"]), &r)),
            Reason::WildcardDepth
        );
    }

    #[test]
    fn lifetimes_are_clamped_by_context() {
        let l = TtlLimits::default();
        assert_eq!(clamp_ttl(TtlContext::Developer, None, &l, 0), 90 * 60);
        assert_eq!(
            clamp_ttl(TtlContext::Developer, Some(Duration::from_secs(600)), &l, 0),
            600
        );
        assert_eq!(
            clamp_ttl(TtlContext::Developer, Some(Duration::from_secs(86_400)), &l, 0),
            90 * 60
        );
        assert_eq!(clamp_ttl(TtlContext::Server, None, &l, 0), 6 * 86_400);
        assert_eq!(
            clamp_ttl(
                TtlContext::CiJob {
                    job_expires_at: 1_000 + 1_800
                },
                None,
                &l,
                1_000
            ),
            1_800
        );
        assert_eq!(
            clamp_ttl(
                TtlContext::CiJob {
                    job_expires_at: 1_000 + 86_400
                },
                None,
                &l,
                1_000
            ),
            7_200
        );
        assert_eq!(
            clamp_ttl(TtlContext::CiJob { job_expires_at: 500 }, None, &l, 1_000),
            0
        );
    }

    proptest! {
        /// A CI job's certificate never outlives its job token, nor any ceiling.
        #[test]
        fn ci_certificates_never_outlive_the_job(now in 0i64..2_000_000_000, left in -100i64..100_000, asked in proptest::option::of(0u64..1_000_000)) {
            let l = TtlLimits::default();
            let ttl = clamp_ttl(TtlContext::CiJob { job_expires_at: now + left }, asked.map(Duration::from_secs), &l, now);
            let within_job = i64::try_from(ttl).unwrap() <= left.max(0);
            prop_assert!(within_job);
            prop_assert!(ttl <= l.ci_job.as_secs());
            let within_asked = asked.is_none_or(|a| ttl <= a);
            prop_assert!(within_asked);
        }
    }
}
