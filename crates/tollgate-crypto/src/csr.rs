//! PKCS #10 certificate signing requests: parsed with x509-parser, their signature checked
//! with aws-lc-rs against the key they carry (proof that the requester holds it), and what
//! they ask for reduced to [`CsrRequest`] for the rules in `tollgate_core::certs`. Nothing a
//! CSR says about its subject is used: the subject comes from the verified identity.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rcgen::{PublicKeyData, SignatureAlgorithm};
use std::net::IpAddr;
use tollgate_core::certs::{CsrRequest, KeyKind};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// Largest CSR accepted (an RSA-8192 CSR with a few names is under 3 KiB).
pub const MAX_CSR_BYTES: usize = 16 * 1024;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// Why a CSR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("the CSR is malformed: {0}")]
    Malformed(String),
    #[error("the CSR's signature does not verify with its own public key")]
    SignatureInvalid,
}

/// A parsed CSR: what it asks for, and its public key for the certificate. Its signature
/// verified, except for key types that are never issued (unknown algorithms, RSA under 2048
/// bits), which carry no issuable key ([`ParsedCsr::public_key`] is `None`) and which
/// `tollgate_core::certs::check_key` refuses by name.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    pub request: CsrRequest,
    /// The subject public key (the BIT STRING's contents).
    key_bits: Vec<u8>,
    /// The request as PEM (for a CA elsewhere).
    pem: String,
    /// How the key is written into a certificate; `None` for a key type never issued.
    key_alg: Option<&'static SignatureAlgorithm>,
}

impl ParsedCsr {
    /// The request, PEM.
    #[must_use]
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The key, for rcgen; `None` for a key type that is never issued.
    pub(crate) fn public_key(&self) -> Option<CsrKey<'_>> {
        self.key_alg.map(|alg| CsrKey {
            bits: &self.key_bits,
            alg,
        })
    }
}

/// A CSR's public key as rcgen writes it into the certificate.
pub(crate) struct CsrKey<'a> {
    bits: &'a [u8],
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// The DER of a CSR sent as PEM (`-----BEGIN CERTIFICATE REQUEST-----`) or as bare base64.
fn der_of(text: &str) -> Result<Vec<u8>, CsrError> {
    use base64::Engine as _;
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    if text.trim_start().starts_with("-----") && !text.contains("CERTIFICATE REQUEST-----") {
        return Err(CsrError::Malformed(
            "the PEM block is not a CERTIFICATE REQUEST".into(),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| CsrError::Malformed("not PEM or base64".into()))
}

/// Parses `text` (PEM or base64 DER) and verifies its signature.
///
/// # Errors
/// [`CsrError::Malformed`] for anything that is not a PKCS #10 request, or a signature
/// algorithm that cannot be checked; [`CsrError::SignatureInvalid`] when the signature
/// does not verify with the CSR's own key.
pub fn parse(text: &str) -> Result<ParsedCsr, CsrError> {
    if text.len() > MAX_CSR_BYTES {
        return Err(CsrError::Malformed(format!("larger than {MAX_CSR_BYTES} bytes")));
    }
    let der = der_of(text)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| CsrError::Malformed(format!("not a PKCS #10 request ({e})")))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed("trailing bytes after the request".into()));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let key_bits = spki.subject_public_key.data.to_vec();
    let alg_oid = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let (key, key_alg): (KeyKind, Option<&'static SignatureAlgorithm>) =
        match (alg_oid.as_str(), curve.as_deref()) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256)) => (KeyKind::P256, Some(&rcgen::PKCS_ECDSA_P256_SHA256)),
            (OID_EC_PUBLIC_KEY, Some(OID_P384)) => (KeyKind::P384, Some(&rcgen::PKCS_ECDSA_P384_SHA384)),
            (OID_ED25519, _) => (KeyKind::Ed25519, Some(&rcgen::PKCS_ED25519)),
            (OID_RSA, _) => match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => {
                    let bits = u32::try_from(rsa.key_size()).unwrap_or(u32::MAX);
                    // Keys too small to check are never issued (no signature was verified).
                    let alg = (bits >= 2048).then_some(&rcgen::PKCS_RSA_SHA256);
                    (KeyKind::Rsa { bits }, alg)
                }
                _ => return Err(CsrError::Malformed("an RSA key that does not parse".into())),
            },
            (oid, curve) => (
                KeyKind::Other(curve.map_or_else(|| oid.to_owned(), |c| format!("{oid} {c}"))),
                None,
            ),
        };
    verify(&csr, &key, &key_bits)?;
    let mut request = CsrRequest {
        key: Some(key),
        ..CsrRequest::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => request.dns_names.push((*d).to_owned()),
                    GeneralName::IPAddress(bytes) => match ip_of(bytes) {
                        Some(ip) => request.ip_addresses.push(ip),
                        None => request.other_sans.push("IP (malformed)".into()),
                    },
                    GeneralName::RFC822Name(e) => request.other_sans.push(format!("email:{e}")),
                    GeneralName::URI(u) => request.other_sans.push(format!("URI:{u}")),
                    other => request.other_sans.push(format!("{other:?}")),
                }
            }
        }
    }
    Ok(ParsedCsr {
        request,
        key_bits,
        key_alg,
        pem: crate::pem_encode("CERTIFICATE REQUEST", &der),
    })
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Checks the CSR's signature with its own key (proof of possession).
fn verify(csr: &X509CertificationRequest<'_>, key: &KeyKind, key_bits: &[u8]) -> Result<(), CsrError> {
    let sig_oid = csr.signature_algorithm.algorithm.to_id_string();
    let alg: &'static dyn VerificationAlgorithm = match (key, sig_oid.as_str()) {
        (KeyKind::P256, "1.2.840.10045.4.3.2") => &signature::ECDSA_P256_SHA256_ASN1,
        (KeyKind::P256, "1.2.840.10045.4.3.3") => &signature::ECDSA_P256_SHA384_ASN1,
        (KeyKind::P384, "1.2.840.10045.4.3.3") => &signature::ECDSA_P384_SHA384_ASN1,
        (KeyKind::P384, "1.2.840.10045.4.3.2") => &signature::ECDSA_P384_SHA256_ASN1,
        (KeyKind::Ed25519, OID_ED25519) => &signature::ED25519,
        (KeyKind::Rsa { .. }, "1.2.840.113549.1.1.11") => &signature::RSA_PKCS1_2048_8192_SHA256,
        (KeyKind::Rsa { .. }, "1.2.840.113549.1.1.12") => &signature::RSA_PKCS1_2048_8192_SHA384,
        (KeyKind::Rsa { .. }, "1.2.840.113549.1.1.13") => &signature::RSA_PKCS1_2048_8192_SHA512,
        // A key type tollgate never issues: its signature is not checked, the key is refused
        // by the rules (`key-type-not-allowed`) with a better message than "bad signature".
        (KeyKind::Other(_), _) => return Ok(()),
        (_, oid) => {
            return Err(CsrError::Malformed(format!(
                "signature algorithm {oid} does not fit the key ({key})"
            )));
        }
    };
    // RSA keys under 2048 bits fail here; say why rather than "bad signature".
    if let KeyKind::Rsa { bits } = key
        && *bits < 2048
    {
        return Ok(());
    }
    UnparsedPublicKey::new(alg, key_bits)
        .verify(csr.certification_request_info.raw, &csr.signature_value.data)
        .map_err(|_| CsrError::SignatureInvalid)
}

/// A CSR (PEM) for `key` with subject `CN=<common_name>`, naming `dns_names` and
/// `ip_addresses` (a server certificate's; a client CSR names none): what
/// `tollgate cert request` sends after generating the key locally.
///
/// # Errors
/// A name that is not an IA5 string, or a signing failure.
pub fn request(
    key: &crate::SigningKey,
    common_name: &str,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
) -> Result<String, crate::CryptoError> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    for d in dns_names {
        let ia5 = d
            .as_str()
            .try_into()
            .map_err(|_| crate::CryptoError::Certificate(format!("`{d}` is not an IA5 string")))?;
        params.subject_alt_names.push(rcgen::SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ip_addresses.iter().copied().map(rcgen::SanType::IpAddress));
    let signer = crate::certificate::checked_signer(key)?;
    let csr = params
        .serialize_request(&signer)
        .map_err(|e| crate::CryptoError::Certificate(e.to_string()))?;
    csr.pem()
        .map_err(|e| crate::CryptoError::Certificate(e.to_string()))
}
