//! Certificates: signing requests and issued certificates.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/certificates/sign`: a PKCS #10 CSR for a client certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignCertificateRequest {
    /// The CSR, PEM (`-----BEGIN CERTIFICATE REQUEST-----`) or base64 DER. Its subject is
    /// ignored (the certificate names the verified caller); it may carry no SANs.
    pub csr: String,
    /// Wanted lifetime (`"30m"`); at most the caller's ceiling (person 90 min, CI job 2 h
    /// and never past its job token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuedCertificate {
    /// The leaf, PEM.
    pub certificate: String,
    /// The issuing CA and the root, PEM (as `GET /v1/ca/chain`).
    pub chain: String,
    /// The serial number, hex.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Seconds from issuance to `not_after`.
    pub expires_in: u64,
    /// Which CA signed (`internal`, …).
    pub ca: String,
}

/// `POST /v1/certificates/server`: a PKCS #10 CSR for a server certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignServerCertificateRequest {
    /// The CSR, PEM or base64 DER, naming the DNS SANs (and listed IP SANs) wanted.
    pub csr: String,
    /// Wanted lifetime (`"24h"`); at most `certs.server_ttl` (6 days by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// What a service account's server certificates may name
/// (`PUT /v1/admin/clients/{client_id}/certificate-rules`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRules {
    /// DNS patterns: `host.example.com`, `*.zone` (one label below), `**.zone` (any depth);
    /// Unicode or punycode, stored as A-labels.
    #[serde(default)]
    pub dns: Vec<String>,
    /// IP addresses allowed as SANs (none unless listed).
    #[serde(default)]
    pub ips: Vec<String>,
}
