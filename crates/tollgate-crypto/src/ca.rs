//! A certificate authority's signing: a self-signed root, an intermediate it certifies, and
//! leaf certificates the intermediate issues for verified CSRs. rcgen writes the DER; the
//! signatures come from [`SigningKey`]s (ES256: P-256), so private keys stay where the key
//! ring keeps them.
//!
//! An issuer is named by its common name and key only: the parameters rcgen needs to sign
//! as it (its distinguished name and key identifier) are rebuilt the same way each time, so
//! the authority key identifier of what it signs is its subject key identifier.

use crate::certificate::{CertSigner, checked_signer, validity};
use crate::csr::ParsedCsr;
use crate::{CryptoError, SigningKey};
use aws_lc_rs::digest;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
};
use std::net::IpAddr;

/// A CA certificate's signing identity.
#[derive(Clone, Copy)]
pub struct CaIdentity<'a> {
    pub common_name: &'a str,
    pub key: &'a SigningKey,
}

impl std::fmt::Debug for CaIdentity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaIdentity")
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

/// A fresh random serial number: 16 bytes, positive (≥ 120 random bits).
#[must_use]
pub fn random_serial() -> [u8; 16] {
    let mut serial = [0u8; 16];
    crate::random_bytes(&mut serial);
    serial[0] &= 0x7f;
    // A leading zero byte would shorten the DER INTEGER; keep 16 bytes.
    serial[0] |= 0x01;
    serial
}

fn key_id(key: &SigningKey) -> Vec<u8> {
    digest::digest(&digest::SHA256, key.public_key_der()).as_ref()[..20].to_vec()
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The parameters of a CA certificate (or, for signing, of its issuer identity).
fn ca_params(ca: CaIdentity<'_>, path_len: u8) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(ca.common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id(ca.key));
    params
}

/// A self-signed root (path length 1: it certifies intermediates that issue leaves), PEM.
///
/// # Errors
/// A bad name, an empty validity period, or a signing failure.
pub fn new_root(root: CaIdentity<'_>, not_before: i64, not_after: i64) -> Result<String, CryptoError> {
    let (nb, na) = validity(not_before, not_after)?;
    let mut params = ca_params(root, 1);
    params.not_before = nb;
    params.not_after = na;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    let signer = checked_signer(root.key)?;
    let cert = params
        .self_signed(&signer)
        .map_err(|e| CryptoError::Certificate(e.to_string()))?;
    Ok(cert.pem())
}

/// An intermediate for `key` named `common_name`, certified by `root` (path length 0), PEM.
///
/// # Errors
/// As [`new_root`].
pub fn new_intermediate(
    root: CaIdentity<'_>,
    intermediate: CaIdentity<'_>,
    not_before: i64,
    not_after: i64,
) -> Result<String, CryptoError> {
    let (nb, na) = validity(not_before, not_after)?;
    let mut params = ca_params(intermediate, 0);
    params.not_before = nb;
    params.not_after = na;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.use_authority_key_identifier_extension = true;
    let subject = checked_signer(intermediate.key)?;
    let issuer_signer = checked_signer(root.key)?;
    let issuer_params = ca_params(root, 1);
    let issuer = rcgen::Issuer::from_params(&issuer_params, &issuer_signer);
    let cert = params
        .signed_by(&subject, &issuer)
        .map_err(|e| CryptoError::Certificate(e.to_string()))?;
    Ok(cert.pem())
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafProfile {
    /// TLS client authentication (mTLS): `extKeyUsage clientAuth`, no SANs.
    Client,
    /// TLS server authentication: `extKeyUsage serverAuth` and the DNS/IP SANs.
    Server,
}

/// The leaf's contents, decided by the caller from the verified identity and the rules.
#[derive(Debug, Clone)]
pub struct Leaf<'a> {
    pub profile: LeafProfile,
    /// The subject's common name (the identity: user id, workload, first DNS name).
    pub common_name: &'a str,
    /// The subject's organization (the org), if any.
    pub organization: Option<&'a str>,
    /// The subject's organizational unit (what kind of identity), if any.
    pub organizational_unit: Option<&'a str>,
    pub dns_names: &'a [String],
    pub ip_addresses: &'a [IpAddr],
    pub not_before: i64,
    pub not_after: i64,
    pub serial: [u8; 16],
}

/// An issued leaf: PEM and DER.
#[derive(Debug, Clone)]
pub struct IssuedLeaf {
    pub pem: String,
    pub der: Vec<u8>,
}

/// Issues `leaf` for the key of `csr`, signed by `issuer` (an intermediate).
///
/// # Errors
/// A CSR whose key is never issued, a bad name or validity, or a signing failure.
pub fn issue(issuer: CaIdentity<'_>, csr: &ParsedCsr, leaf: &Leaf<'_>) -> Result<IssuedLeaf, CryptoError> {
    let key = csr
        .public_key()
        .ok_or_else(|| CryptoError::Certificate("the CSR's key type is not issued".into()))?;
    let (nb, na) = validity(leaf.not_before, leaf.not_after)?;
    let mut params = CertificateParams::default();
    params.not_before = nb;
    params.not_after = na;
    params.serial_number = Some(SerialNumber::from_slice(&leaf.serial));
    let mut dn = DistinguishedName::new();
    if let Some(o) = leaf.organization {
        dn.push(DnType::OrganizationName, o);
    }
    if let Some(ou) = leaf.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, leaf.common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match leaf.profile {
        LeafProfile::Client => ExtendedKeyUsagePurpose::ClientAuth,
        LeafProfile::Server => ExtendedKeyUsagePurpose::ServerAuth,
    }];
    let mut sans = Vec::new();
    for d in leaf.dns_names {
        let ia5 = d
            .as_str()
            .try_into()
            .map_err(|_| CryptoError::Certificate(format!("`{d}` is not an IA5 string")))?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(leaf.ip_addresses.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    let issuer_signer: CertSigner<'_> = checked_signer(issuer.key)?;
    let issuer_params = ca_params(issuer, 0);
    let issuer = rcgen::Issuer::from_params(&issuer_params, &issuer_signer);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| CryptoError::Certificate(e.to_string()))?;
    Ok(IssuedLeaf {
        pem: cert.pem(),
        der: cert.der().to_vec(),
    })
}
