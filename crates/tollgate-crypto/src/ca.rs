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

/// The leaf's certificate parameters (everything but the issuer and the key).
fn leaf_params(leaf: &Leaf<'_>) -> Result<CertificateParams, CryptoError> {
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
    Ok(params)
}

/// Issues `leaf` for the key of `csr`, signed by `issuer` (an intermediate).
///
/// # Errors
/// A CSR whose key is never issued, a bad name or validity, or a signing failure.
pub fn issue(issuer: CaIdentity<'_>, csr: &ParsedCsr, leaf: &Leaf<'_>) -> Result<IssuedLeaf, CryptoError> {
    let key = csr
        .public_key()
        .ok_or_else(|| CryptoError::Certificate("the CSR's key type is not issued".into()))?;
    let params = leaf_params(leaf)?;
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

/// What a verified leaf says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    pub common_name: String,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    /// Serial number, lowercase hex.
    pub serial: String,
    pub not_after: i64,
}

/// Why a presented leaf is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    #[error("the certificate does not parse: {0}")]
    Malformed(String),
    #[error("the certificate was not issued by this CA")]
    WrongIssuer,
    #[error("the certificate's signature does not verify with this CA's key")]
    BadSignature,
    #[error("the certificate is not valid now (valid {0} to {1})")]
    NotValidNow(i64, i64),
    #[error("the certificate is not for TLS client authentication")]
    NotForClients,
}

/// Checks that `leaf_der` is a client certificate issued by `issuer` (an ES256 CA, as
/// [`issue`] makes) and valid at `now`; what it names.
///
/// # Errors
/// The [`LeafError`] that says which check failed.
pub fn verify_client_leaf(leaf_der: &[u8], issuer: &IssuerCert, now: i64) -> Result<LeafInfo, LeafError> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let (rest, leaf) =
        X509Certificate::from_der(leaf_der).map_err(|e| LeafError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(LeafError::Malformed("trailing bytes".into()));
    }
    if leaf.issuer().as_raw() != issuer.subject.as_slice() {
        return Err(LeafError::WrongIssuer);
    }
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &issuer.public_key,
    )
    .verify(leaf.tbs_certificate.as_ref(), &leaf.signature_value.data)
    .map_err(|_| LeafError::BadSignature)?;
    let (nb, na) = (
        leaf.validity().not_before.timestamp(),
        leaf.validity().not_after.timestamp(),
    );
    if now < nb || now > na {
        return Err(LeafError::NotValidNow(nb, na));
    }
    let client = leaf
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.client_auth);
    if !client {
        return Err(LeafError::NotForClients);
    }
    let subject = leaf.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_owned)
    };
    Ok(LeafInfo {
        common_name: first(&mut subject.iter_common_name()).unwrap_or_default(),
        organization: first(&mut subject.iter_organization()),
        organizational_unit: first(&mut subject.iter_organizational_unit()),
        serial: hex::encode(leaf.raw_serial()),
        not_after: na,
    })
}

/// [`verify_client_leaf`] for a PEM certificate.
///
/// # Errors
/// As [`verify_client_leaf`]; [`LeafError::Malformed`] when it is not PEM.
pub fn verify_client_leaf_pem(leaf_pem: &str, issuer: &IssuerCert, now: i64) -> Result<LeafInfo, LeafError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes())
        .map_err(|e| LeafError::Malformed(format!("not PEM: {e}")))?;
    verify_client_leaf(&pem.contents, issuer, now)
}

/// Checks that `cert_pem`, signed elsewhere (an external CA), is exactly what `leaf` asked
/// for `csr`'s key: the same public key, subject common name, DNS and IP SANs, key usage
/// profile, and a validity within the asked one. An external CA is trusted to sign, not to
/// decide what it signs. The certificate's DER.
///
/// # Errors
/// [`LeafError::Malformed`] naming the first difference.
pub fn check_external_leaf(cert_pem: &str, csr: &ParsedCsr, leaf: &Leaf<'_>) -> Result<Vec<u8>, LeafError> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let differs =
        |what: &str| LeafError::Malformed(format!("the external CA's certificate differs in {what}"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| LeafError::Malformed(format!("not PEM: {e}")))?;
    let (_, cert) =
        X509Certificate::from_der(&pem.contents).map_err(|e| LeafError::Malformed(e.to_string()))?;
    let key = csr.public_key().ok_or_else(|| differs("the key type"))?;
    if cert.public_key().subject_public_key.data.as_ref() != rcgen::PublicKeyData::der_bytes(&key) {
        return Err(differs("its public key"));
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok());
    if cn != Some(leaf.common_name) {
        return Err(differs("its subject"));
    }
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                _ => return Err(differs("its SANs (a kind that was not asked for)")),
            }
        }
    }
    let asked_ips: Vec<Vec<u8>> = leaf
        .ip_addresses
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        })
        .collect();
    if dns != leaf.dns_names || ips != asked_ips {
        return Err(differs("its SANs"));
    }
    let eku = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|e| (e.value.client_auth, e.value.server_auth));
    let wanted = match leaf.profile {
        LeafProfile::Client => (true, false),
        LeafProfile::Server => (false, true),
    };
    if eku != Some(wanted) || cert.is_ca() {
        return Err(differs("its key usage (extended key usage or CA flag)"));
    }
    let (nb, na) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    if na > leaf.not_after || nb > leaf.not_after || na <= nb {
        return Err(differs(
            "its validity (it may not outlive the lifetime asked for)",
        ));
    }
    Ok(pem.contents)
}

/// The parameters to sign as the CA of certificate `cert`: its exact subject (each
/// attribute with its string type) and its subject key identifier, so that what it signs
/// names it as issuer byte for byte and carries its key identifier as authority key id.
fn issuer_params(
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<CertificateParams, CryptoError> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let bad = |m: &str| CryptoError::Certificate(format!("CA certificate: {m}"));
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(bad("a multi-valued RDN in its subject is not supported"));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| bad("an OID too large"))?
            .collect();
        let value = attr.attr_value();
        let text =
            std::str::from_utf8(value.data).map_err(|_| bad("a subject attribute that is not text"))?;
        let dn_value = match value.tag() {
            Tag::Utf8String => rcgen::DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => rcgen::DnValue::PrintableString(
                text.try_into().map_err(|_| bad("an invalid PrintableString"))?,
            ),
            Tag::Ia5String => {
                rcgen::DnValue::Ia5String(text.try_into().map_err(|_| bad("an invalid IA5String"))?)
            }
            _ => return Err(bad("a subject string type other than UTF8, Printable or IA5")),
        };
        let kind = DnType::from_oid(&oid);
        if dn.get(&kind).is_some() {
            return Err(bad("a repeated subject attribute type is not supported"));
        }
        dn.push(kind, dn_value);
    }
    let ski = match cert.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
    {
        Ok(Some(ext)) => match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => k.0.to_vec(),
            _ => return Err(bad("an unreadable subject key identifier")),
        },
        _ => return Err(bad("no subject key identifier")),
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ok(params)
}

/// A CA certificate read once, for signing as it (its exact subject and key identifier)
/// and for checking what it signed (its subject and public key): no parsing per use.
#[derive(Debug, Clone)]
pub struct IssuerCert {
    params: CertificateParams,
    /// The subject, DER, as leaves name their issuer.
    subject: Vec<u8>,
    /// The public key (the BIT STRING's contents: a P-256 point).
    public_key: Vec<u8>,
}

impl IssuerCert {
    /// Reads the CA certificate `pem` (the first one, when it is a chain).
    ///
    /// # Errors
    /// A certificate that cannot be signed as (see [`check_import`]).
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        use x509_parser::prelude::{FromDer as _, X509Certificate};
        let bad = |m: &str| CryptoError::Certificate(format!("CA certificate: {m}"));
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| bad("not PEM"))?;
        let (_, cert) = X509Certificate::from_der(&pem.contents).map_err(|_| bad("does not parse"))?;
        Ok(Self {
            params: issuer_params(&cert)?,
            subject: cert.subject().as_raw().to_vec(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
        })
    }
}

/// Issues `leaf` for `csr`'s key as the CA `issuer` with its `key` (tollgate's own issuing
/// CA, or one imported).
///
/// # Errors
/// As [`issue`].
pub fn issue_as(
    issuer: &IssuerCert,
    key: &SigningKey,
    csr: &ParsedCsr,
    leaf: &Leaf<'_>,
) -> Result<IssuedLeaf, CryptoError> {
    let signer = checked_signer(key)?;
    let issuer = rcgen::Issuer::from_params(&issuer.params, &signer);
    let public = csr
        .public_key()
        .ok_or_else(|| CryptoError::Certificate("the CSR's key type is not issued".into()))?;
    let cert = leaf_params(leaf)?
        .signed_by(&public, &issuer)
        .map_err(|e| CryptoError::Certificate(e.to_string()))?;
    Ok(IssuedLeaf {
        pem: cert.pem(),
        der: cert.der().to_vec(),
    })
}

/// Checks an existing CA to import: the issuing certificate is a CA certified by the root
/// (P-256 ECDSA), `issuing_key` is its key, and a test leaf issued as it chains back to it
/// (its subject and key identifier can be reproduced exactly).
///
/// # Errors
/// [`CryptoError::Certificate`] naming the first problem.
pub fn check_import(
    root_pem: &str,
    issuing_pem: &str,
    issuing_key: &SigningKey,
    now: i64,
) -> Result<(), CryptoError> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let bad = |m: &str| CryptoError::Certificate(format!("import: {m}"));
    let der = |pem: &str| {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map(|(_, p)| p.contents)
            .map_err(|_| bad("a certificate is not PEM"))
    };
    let (root_der, issuing_der) = (der(root_pem)?, der(issuing_pem)?);
    let (_, root) = X509Certificate::from_der(&root_der).map_err(|_| bad("the root does not parse"))?;
    let (_, issuing) =
        X509Certificate::from_der(&issuing_der).map_err(|_| bad("the issuing CA does not parse"))?;
    if !root.is_ca() || !issuing.is_ca() {
        return Err(bad(
            "both certificates must be CA certificates (basicConstraints cA)",
        ));
    }
    if issuing.issuer().as_raw() != root.subject().as_raw() {
        return Err(bad("the issuing CA is not issued by the root"));
    }
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &root.public_key().subject_public_key.data,
    )
    .verify(issuing.tbs_certificate.as_ref(), &issuing.signature_value.data)
    .map_err(|_| bad("the root's (P-256) signature on the issuing CA does not verify"))?;
    if issuing.public_key().raw != issuing_key.public_key_der() {
        return Err(bad("the issuing key is not the issuing certificate's key"));
    }
    // A throwaway leaf must chain to the imported issuer exactly.
    let probe_key = SigningKey::generate(tollgate_core::SigningAlg::ES256)?.0;
    let csr = crate::csr::parse(&crate::csr::request(&probe_key, "probe", &[], &[])?)
        .map_err(|e| bad(&e.to_string()))?;
    let leaf = Leaf {
        profile: LeafProfile::Client,
        common_name: "import check",
        organization: None,
        organizational_unit: None,
        dns_names: &[],
        ip_addresses: &[],
        not_before: now,
        not_after: now + 60,
        serial: random_serial(),
    };
    let issuer = IssuerCert::from_pem(issuing_pem)?;
    let issued = issue_as(&issuer, issuing_key, &csr, &leaf)?;
    verify_client_leaf(&issued.der, &issuer, now)
        .map_err(|e| bad(&format!("a test leaf does not chain: {e}")))?;
    Ok(())
}

/// The subject common name of a PEM certificate, if it has one.
#[must_use]
pub fn common_name(pem: &str) -> Option<String> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let (_, cert) = X509Certificate::from_der(&p.contents).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}
