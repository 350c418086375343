//! Self-signed X.509 certificates for signing keys, e.g. for a Docker registry's
//! `rootcertbundle` (the registry takes the token keys from the certificates there).
//!
//! rcgen writes the certificate; the signature comes from the [`SigningKey`] itself through
//! rcgen's `SigningKey` trait, so no second copy of the private key is made and the
//! certificate's public key is the signing key's by construction (and checked).

use crate::{CryptoError, SigningKey};
use aws_lc_rs::digest;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyIdMethod, KeyUsagePurpose,
    PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use time::OffsetDateTime;
use tollgate_core::SigningAlg;

/// The longest common name X.520 allows (`ub-common-name`).
const MAX_COMMON_NAME: usize = 64;

/// A self-signed certificate for `key`, as PEM.
///
/// The certificate is a CA certificate (`basicConstraints` critical, `cA` true, path length
/// 0; key usage `digitalSignature` and `keyCertSign`) whose subject and issuer are
/// `CN=<common_name>`, valid from `not_before_unix` to `not_after_unix` (seconds since the
/// Unix epoch). Everything that is not a signature is derived from the key and the
/// arguments: the serial number is the first 16 bytes of the SHA-256 of the key's DER
/// `SubjectPublicKeyInfo` with the high bit cleared, and the subject key identifier its first
/// 20 bytes, so regenerating gives an equivalent certificate (byte for byte with RS256 and
/// EdDSA, whose signatures are deterministic).
///
/// ES256, RS256 and EdDSA keys are supported; a Docker registry accepts only the first two.
pub fn self_signed_certificate(
    key: &SigningKey,
    common_name: &str,
    not_before_unix: i64,
    not_after_unix: i64,
) -> Result<String, CryptoError> {
    check_name(common_name)?;
    let (nb, na) = validity(not_before_unix, not_after_unix)?;
    let hash = digest::digest(&digest::SHA256, key.public_key_der());
    let params = root_params(common_name, nb, na, hash.as_ref());
    let signer = checked_signer(key)?;
    let cert = params
        .self_signed(&signer)
        .map_err(|e| CryptoError::Certificate(e.to_string()))?;
    Ok(cert.pem())
}

/// A certificate for `key` named `leaf_name`, issued by the self-signed certificate
/// [`self_signed_certificate`] makes for the same key as `root_name` (the root itself need
/// not be passed around: it is rebuilt, and signatures do not depend on which copy).
///
/// Why not the root itself: a verifier that finds the key through an `x5c` chain (CNCF
/// distribution, Go's `x509.Verify`) skips a candidate parent with the same subject and key
/// as a certificate already in the chain, so a self-signed leaf only verifies if it is
/// byte-for-byte the root in its trust store — which ES256's randomized signatures prevent.
/// A leaf with its own subject chains to the root by name and signature.
pub fn certificate_issued_by_own_root(
    key: &SigningKey,
    root_name: &str,
    leaf_name: &str,
    not_before_unix: i64,
    not_after_unix: i64,
) -> Result<String, CryptoError> {
    for name in [root_name, leaf_name] {
        check_name(name)?;
    }
    if root_name == leaf_name {
        return Err(CryptoError::Certificate(
            "the leaf needs a name of its own".to_owned(),
        ));
    }
    let (nb, na) = validity(not_before_unix, not_after_unix)?;
    let hash = digest::digest(&digest::SHA256, key.public_key_der());
    let hash = hash.as_ref();
    let root = root_params(root_name, nb, na, hash);
    let signer = checked_signer(key)?;
    let issuer = rcgen::Issuer::from_params(&root, &signer);
    let mut leaf = CertificateParams::default();
    leaf.not_before = nb;
    leaf.not_after = na;
    let mut serial = hash[16..32].to_vec();
    serial[0] &= 0x7f;
    leaf.serial_number = Some(SerialNumber::from_slice(&serial));
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, leaf_name);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.key_identifier_method = KeyIdMethod::PreSpecified(hash[..20].to_vec());
    let cert = leaf
        .signed_by(&signer, &issuer)
        .map_err(|e| CryptoError::Certificate(e.to_string()))?;
    Ok(cert.pem())
}

/// A common name X.520 allows, without control characters.
fn check_name(common_name: &str) -> Result<(), CryptoError> {
    let bad = |why: &str| Err(CryptoError::Certificate(why.to_owned()));
    if common_name.is_empty() || common_name.chars().count() > MAX_COMMON_NAME {
        return bad("the common name must have 1 to 64 characters");
    }
    if common_name.chars().any(char::is_control) {
        return bad("the common name must not contain control characters");
    }
    Ok(())
}

/// The validity period, checked.
pub(crate) fn validity(
    not_before_unix: i64,
    not_after_unix: i64,
) -> Result<(OffsetDateTime, OffsetDateTime), CryptoError> {
    if not_before_unix >= not_after_unix {
        return Err(CryptoError::Certificate(
            "not_before must be earlier than not_after".to_owned(),
        ));
    }
    let time = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .map_err(|_| CryptoError::Certificate(format!("{t} is not a representable time")))
    };
    Ok((time(not_before_unix)?, time(not_after_unix)?))
}

/// The root certificate's parameters for a key whose DER SPKI hashes to `key_hash` (see
/// [`self_signed_certificate`]).
fn root_params(
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key_hash: &[u8],
) -> CertificateParams {
    let mut serial = key_hash[..16].to_vec();
    serial[0] &= 0x7f;
    let mut params = CertificateParams::default();
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyCertSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_hash[..20].to_vec());
    params
}

/// rcgen's signer for `key`, checked to carry exactly the key's public key.
pub(crate) fn checked_signer(key: &SigningKey) -> Result<CertSigner<'_>, CryptoError> {
    let signer = CertSigner(key);
    // rcgen rebuilds the SPKI from the algorithm and the raw key; it must be the key's own.
    if signer.subject_public_key_info() != key.public_key_der() {
        return Err(CryptoError::Certificate(
            "the certificate's public key would differ from the signing key's".to_owned(),
        ));
    }
    Ok(signer)
}

/// A [`SigningKey`] as rcgen's signer.
pub(crate) struct CertSigner<'a>(&'a SigningKey);

impl PublicKeyData for CertSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.subject_public_key()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.0.alg() {
            SigningAlg::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            SigningAlg::RS256 => &rcgen::PKCS_RSA_SHA256,
            SigningAlg::EdDSA => &rcgen::PKCS_ED25519,
        }
    }
}

impl rcgen::SigningKey for CertSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig = self.0.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)?;
        match self.0.alg() {
            // JWS wants raw r‖s; X.509 wants the DER `Ecdsa-Sig-Value`.
            SigningAlg::ES256 => ecdsa_fixed_to_der(&sig).ok_or(rcgen::Error::RemoteKeyError),
            SigningAlg::RS256 | SigningAlg::EdDSA => Ok(sig),
        }
    }
}

/// Re-encodes a fixed-width ECDSA signature `r‖s` as DER `SEQUENCE { INTEGER r, INTEGER s }`.
/// `None` for an odd length or a result too long for a one-byte length (over 61-byte halves).
fn ecdsa_fixed_to_der(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.is_empty() || sig.len() % 2 != 0 {
        return None;
    }
    let (r, s) = sig.split_at(sig.len() / 2);
    let integer = |mut v: &[u8]| {
        while v.len() > 1 && v[0] == 0 {
            v = &v[1..];
        }
        let pad = v[0] & 0x80 != 0;
        let mut out = vec![0x02, (v.len() + usize::from(pad)) as u8];
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    if r.len() > 61 {
        return None;
    }
    let body = [integer(r), integer(s)].concat();
    let mut out = vec![0x30, u8::try_from(body.len()).ok()?];
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libtrust_key_id;
    use aws_lc_rs::signature::{self, UnparsedPublicKey};
    use x509_parser::prelude::*;

    const NOT_BEFORE: i64 = 1_700_000_000;
    const NOT_AFTER: i64 = 1_700_000_000 + 10 * 365 * 86_400;

    fn certificate(alg: SigningAlg) -> (SigningKey, String) {
        let (key, _) = SigningKey::generate(alg).expect("generate");
        let pem =
            self_signed_certificate(&key, "tollgate registry tokens", NOT_BEFORE, NOT_AFTER).expect("cert");
        (key, pem)
    }

    fn der_of(pem: &str) -> Vec<u8> {
        let (rest, pem) = parse_x509_pem(pem.as_bytes()).expect("PEM");
        assert!(rest.iter().all(u8::is_ascii_whitespace));
        assert_eq!(pem.label, "CERTIFICATE");
        pem.contents
    }

    #[test]
    fn certificates_carry_the_signing_key_and_verify() {
        for alg in SigningAlg::ALL {
            let (key, pem) = certificate(alg);
            let der = der_of(&pem);
            let (rest, cert) = X509Certificate::from_der(&der).expect("X.509");
            assert!(rest.is_empty());

            assert_eq!(cert.public_key().raw, key.public_key_der(), "{alg}");
            assert_eq!(
                libtrust_key_id(cert.public_key().raw),
                key.libtrust_key_id(),
                "{alg}"
            );

            let cn: Vec<&str> = cert
                .subject()
                .iter_common_name()
                .map(|c| c.as_str().expect("utf8"))
                .collect();
            assert_eq!(cn, ["tollgate registry tokens"]);
            assert_eq!(cert.subject(), cert.issuer());
            assert_eq!(cert.validity().not_before.timestamp(), NOT_BEFORE);
            assert_eq!(cert.validity().not_after.timestamp(), NOT_AFTER);
            assert!(cert.is_ca());
            assert_eq!(cert.version(), X509Version::V3);

            let hash = digest::digest(&digest::SHA256, key.public_key_der());
            let mut serial = hash.as_ref()[..16].to_vec();
            serial[0] &= 0x7f;
            // DER integers are minimal: leading zero bytes are dropped (1 key in 128 has a
            // serial starting with 0x00), and one is added before a high bit.
            let as_number = |bytes: &[u8]| bytes.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b));
            assert_eq!(as_number(cert.raw_serial()), as_number(&serial));

            // The self-signature verifies with the key, through aws-lc-rs directly.
            let verify_alg: &dyn signature::VerificationAlgorithm = match alg {
                SigningAlg::ES256 => &signature::ECDSA_P256_SHA256_ASN1,
                SigningAlg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                SigningAlg::EdDSA => &signature::ED25519,
            };
            UnparsedPublicKey::new(verify_alg, key.subject_public_key())
                .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
                .unwrap_or_else(|e| panic!("{alg}: self-signature does not verify: {e}"));
        }
    }

    #[test]
    fn regenerating_gives_an_equivalent_certificate() {
        for alg in SigningAlg::ALL {
            let (key, pem) = certificate(alg);
            let again = self_signed_certificate(&key, "tollgate registry tokens", NOT_BEFORE, NOT_AFTER)
                .expect("cert");
            let (a, b) = (der_of(&pem), der_of(&again));
            let (_, a) = X509Certificate::from_der(&a).expect("X.509");
            let (_, b) = X509Certificate::from_der(&b).expect("X.509");
            assert_eq!(a.tbs_certificate.as_ref(), b.tbs_certificate.as_ref(), "{alg}");
            if alg != SigningAlg::ES256 {
                assert_eq!(pem, again, "{alg} signatures are deterministic");
            }
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let (key, _) = SigningKey::generate(SigningAlg::ES256).expect("generate");
        for (cn, nb, na) in [
            ("x", 10, 10),
            ("x", 11, 10),
            ("", 0, 10),
            (&*"x".repeat(65), 0, 10),
            ("a\nb", 0, 10),
            ("x", i64::MIN, 10),
            ("x", 0, i64::MAX),
        ] {
            assert!(
                matches!(
                    self_signed_certificate(&key, cn, nb, na),
                    Err(CryptoError::Certificate(_))
                ),
                "{cn:?} {nb} {na}"
            );
        }
        assert!(self_signed_certificate(&key, &"é".repeat(64), 0, 10).is_ok());
    }

    #[test]
    fn ecdsa_signatures_are_reencoded_as_der() {
        let mut r_high = [0u8; 64];
        r_high[0] = 0x80;
        r_high[63] = 1;
        let der = ecdsa_fixed_to_der(&r_high).expect("der");
        assert_eq!(&der[..4], [0x30, 2 + 33 + 3, 0x02, 33]);
        assert_eq!(&der[4..6], [0x00, 0x80]);
        assert_eq!(&der[der.len() - 3..], [0x02, 1, 1]);
        assert_eq!(
            ecdsa_fixed_to_der(&[0u8; 64]),
            Some(vec![0x30, 6, 2, 1, 0, 2, 1, 0])
        );
        assert_eq!(ecdsa_fixed_to_der(&[1u8; 3]), None);
        assert_eq!(ecdsa_fixed_to_der(&[]), None);

        let (key, _) = SigningKey::generate(SigningAlg::ES256).expect("generate");
        for _ in 0..32 {
            let fixed = key.sign(b"message").expect("sign");
            assert_eq!(fixed.len(), 64);
            let der = ecdsa_fixed_to_der(&fixed).expect("der");
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, key.subject_public_key())
                .verify(b"message", &der)
                .expect("DER signature verifies");
        }
    }

    /// `openssl` reads the certificate, and verifies it against itself as the trust anchor.
    /// Skipped when the binary is absent.
    #[test]
    fn openssl_accepts_the_certificate() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        if Command::new("openssl").arg("version").output().is_err() {
            return;
        }
        for alg in SigningAlg::ALL {
            let (key, pem) = certificate(alg);
            let mut child = Command::new("openssl")
                .args(["x509", "-noout", "-text"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn openssl");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(pem.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("openssl");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{alg}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("CN = tollgate registry tokens"), "{text}");
            assert!(text.contains("CA:TRUE"), "{text}");

            let path = std::env::temp_dir().join(format!("tollgate-cert-{}-{alg}.pem", std::process::id()));
            std::fs::write(&path, &pem).expect("write");
            let path_str = path.to_str().expect("utf8 path");
            // Verify at a time inside the validity window.
            let attime = (NOT_BEFORE + 86_400).to_string();
            let verify = Command::new("openssl")
                .args(["verify", "-attime", &attime, "-CAfile", path_str, path_str])
                .output()
                .expect("openssl verify");
            let pubkey = Command::new("openssl")
                .args(["x509", "-in", path_str, "-noout", "-pubkey"])
                .output()
                .expect("openssl pubkey");
            let _ = std::fs::remove_file(&path);
            assert!(
                verify.status.success(),
                "{alg}: {}{}",
                String::from_utf8_lossy(&verify.stdout),
                String::from_utf8_lossy(&verify.stderr)
            );
            // The public key openssl reads is the signing key's SPKI.
            let pubkey = String::from_utf8_lossy(&pubkey.stdout);
            let b64: String = pubkey.lines().filter(|l| !l.starts_with("-----")).collect();
            use base64::Engine as _;
            let spki = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64");
            assert_eq!(spki, key.public_key_der(), "{alg}");
        }
    }

    /// A leaf issued by the key's own root (rebuilt separately, as a registry's bundle is)
    /// verifies against that root with openssl, for every ES256 signature draw.
    #[test]
    fn a_leaf_chains_to_a_separately_made_root() {
        use std::process::Command;
        if Command::new("openssl").arg("version").output().is_err() {
            return;
        }
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let (key, root) = certificate(alg);
            let leaf = certificate_issued_by_own_root(
                &key,
                "tollgate registry tokens",
                "leaf",
                NOT_BEFORE,
                NOT_AFTER,
            )
            .expect("leaf");
            let dir = std::env::temp_dir().join(format!("tollgate-chain-{}-{alg}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            std::fs::write(dir.join("root.pem"), &root).expect("write");
            std::fs::write(dir.join("leaf.pem"), &leaf).expect("write");
            let attime = (NOT_BEFORE + 86_400).to_string();
            let verify = Command::new("openssl")
                .args(["verify", "-attime", &attime, "-CAfile"])
                .arg(dir.join("root.pem"))
                .arg(dir.join("leaf.pem"))
                .output()
                .expect("openssl verify");
            let _ = std::fs::remove_dir_all(&dir);
            assert!(
                verify.status.success(),
                "{alg}: {}",
                String::from_utf8_lossy(&verify.stderr)
            );
            let der = der_of(&leaf);
            let (_, parsed) = parse_x509_certificate(&der).expect("parses");
            assert_eq!(parsed.public_key().raw, key.public_key_der());
        }
        let (key, _) = certificate(SigningAlg::ES256);
        assert!(certificate_issued_by_own_root(&key, "same", "same", NOT_BEFORE, NOT_AFTER).is_err());
    }
}
