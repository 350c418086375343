//! CSRs made in the test (good ones, altered ones, other key types) through the parser and
//! the CA: signatures checked, SANs read back exactly, leaves that chain to the
//! intermediate and the root (checked with x509-parser here; `openssl verify` and webpki
//! in the server's tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::net::IpAddr;
use tollgate_core::SigningAlg;
use tollgate_core::certs::KeyKind;
use tollgate_crypto::SigningKey;
use tollgate_crypto::ca::{self, CaIdentity, Leaf, LeafProfile};
use tollgate_crypto::csr::{self, CsrError};
use x509_parser::prelude::*;

fn key(alg: SigningAlg) -> SigningKey {
    SigningKey::generate(alg).unwrap().0
}

fn pem_der(pem: &str) -> Vec<u8> {
    parse_x509_pem(pem.as_bytes()).unwrap().1.contents
}

#[test]
fn good_csrs_parse_with_their_key_and_names() {
    for (alg, kind) in [
        (SigningAlg::ES256, KeyKind::P256),
        (SigningAlg::EdDSA, KeyKind::Ed25519),
        (SigningAlg::RS256, KeyKind::Rsa { bits: 2048 }),
    ] {
        let k = key(alg);
        let ips: Vec<IpAddr> = vec!["10.1.2.3".parse().unwrap(), "::1".parse().unwrap()];
        let pem = csr::request(
            &k,
            "ignored",
            &["a.example.com".into(), "b.example.com".into()],
            &ips,
        )
        .unwrap();
        let parsed = csr::parse(&pem).unwrap();
        assert_eq!(parsed.request.key, Some(kind));
        assert_eq!(parsed.request.dns_names, ["a.example.com", "b.example.com"]);
        assert_eq!(parsed.request.ip_addresses, ips);
        assert!(parsed.request.other_sans.is_empty());
        // Bare base64 DER is accepted too.
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(csr::parse(&b64).is_ok());
    }
}

#[test]
fn an_altered_csr_fails_its_signature_and_garbage_is_malformed() {
    let k = key(SigningAlg::ES256);
    let pem = csr::request(&k, "alice", &["victim.example.com".into()], &[]).unwrap();
    let mut der = pem_der(&pem.replace("CERTIFICATE REQUEST", "CERTIFICATE"));
    // Change one letter of the SAN: the DER stays well-formed, the signature no longer fits.
    let at = der.windows(6).position(|w| w == b"victim").unwrap();
    der[at] = b'w';
    use base64::Engine as _;
    let altered = base64::engine::general_purpose::STANDARD.encode(&der);
    assert_eq!(csr::parse(&altered).unwrap_err(), CsrError::SignatureInvalid);
    for bad in [
        "",
        "not base64 !",
        "aGVsbG8=",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    ] {
        assert!(matches!(csr::parse(bad), Err(CsrError::Malformed(_))), "{bad:?}");
    }
    assert!(matches!(
        csr::parse(&"A".repeat(20_000)),
        Err(CsrError::Malformed(_))
    ));
}

/// A P-384 key through rcgen's signer trait, signed with aws-lc-rs (tollgate's own keys are
/// P-256, Ed25519 and RSA).
struct P384(aws_lc_rs::signature::EcdsaKeyPair);

impl rcgen::PublicKeyData for P384 {
    fn der_bytes(&self) -> &[u8] {
        use aws_lc_rs::signature::KeyPair as _;
        self.0.public_key().as_ref()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P384_SHA384
    }
}

impl rcgen::SigningKey for P384 {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Ok(self
            .0
            .sign(&rng, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)?
            .as_ref()
            .to_vec())
    }
}

#[test]
fn p384_csrs_verify_and_are_issued() {
    use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P384_SHA384_ASN1_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let pair = P384(EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref()).unwrap());
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "p384");
    let pem = params.serialize_request(&pair).unwrap().pem().unwrap();
    let parsed = csr::parse(&pem).unwrap();
    assert_eq!(parsed.request.key, Some(KeyKind::P384));
    let (_, inter, _, _) = hierarchy();
    let leaf = issue_client(&inter, &parsed, "workload");
    let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
    assert_eq!(
        cert.public_key()
            .algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap()
            .to_id_string(),
        "1.3.132.0.34"
    );
}

/// Root and intermediate keys and PEMs.
fn hierarchy() -> (SigningKey, SigningKey, String, String) {
    let root_key = key(SigningAlg::ES256);
    let inter_key = key(SigningAlg::ES256);
    let root = CaIdentity {
        common_name: "tollgate root",
        key: &root_key,
    };
    let inter = CaIdentity {
        common_name: "tollgate issuing",
        key: &inter_key,
    };
    let root_pem = ca::new_root(root, 1_700_000_000, 1_900_000_000).unwrap();
    let inter_pem = ca::new_intermediate(root, inter, 1_700_000_000, 1_800_000_000).unwrap();
    (root_key, inter_key, root_pem, inter_pem)
}

fn issue_client(inter_key: &SigningKey, parsed: &csr::ParsedCsr, cn: &str) -> Vec<u8> {
    let issuer = CaIdentity {
        common_name: "tollgate issuing",
        key: inter_key,
    };
    let leaf = Leaf {
        profile: LeafProfile::Client,
        common_name: cn,
        organization: Some("acme"),
        organizational_unit: Some("user"),
        dns_names: &[],
        ip_addresses: &[],
        not_before: 1_750_000_000,
        not_after: 1_750_005_400,
        serial: ca::random_serial(),
    };
    ca::issue(issuer, parsed, &leaf).unwrap().der
}

#[test]
fn leaves_chain_to_the_intermediate_and_the_root() {
    let (root_key, inter_key, root_pem, inter_pem) = hierarchy();
    let root_der = pem_der(&root_pem);
    let inter_der = pem_der(&inter_pem);
    let (_, root) = X509Certificate::from_der(&root_der).unwrap();
    let (_, inter) = X509Certificate::from_der(&inter_der).unwrap();
    assert!(root.is_ca() && inter.is_ca());
    assert_eq!(inter.issuer(), root.subject());
    assert_eq!(root.public_key().raw, root_key.public_key_der());
    let leaf_key = key(SigningAlg::EdDSA);
    let parsed = csr::parse(&csr::request(&leaf_key, "whatever the CSR says", &[], &[]).unwrap()).unwrap();
    let leaf_der = issue_client(&inter_key, &parsed, "usr_alice");
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
    assert_eq!(leaf.issuer(), inter.subject());
    assert_eq!(leaf.subject().to_string(), "O=acme, OU=user, CN=usr_alice");
    assert_eq!(leaf.public_key().raw, leaf_key.public_key_der());
    assert_eq!(
        leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp(),
        5_400
    );
    assert!(!leaf.is_ca());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    // The AKI of each is its issuer's SKI.
    let ski = |c: &X509Certificate<'_>| match c
        .get_extension_unique(&oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    {
        ParsedExtension::SubjectKeyIdentifier(k) => k.0.to_vec(),
        _ => panic!("no SKI"),
    };
    let aki = |c: &X509Certificate<'_>| match c
        .get_extension_unique(&oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    {
        ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().unwrap().0.to_vec(),
        _ => panic!("no AKI"),
    };
    assert_eq!(aki(&leaf), ski(&inter));
    assert_eq!(aki(&inter), ski(&root));
    // Signatures: the leaf by the intermediate's key, the intermediate by the root's.
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    let check = |cert: &X509Certificate<'_>, by: &X509Certificate<'_>| {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &by.public_key().subject_public_key.data)
            .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
            .is_ok()
    };
    assert!(check(&leaf, &inter) && check(&inter, &root) && check(&root, &root));
    assert!(!check(&leaf, &root));
    // Serials are random, positive and 16 bytes.
    let serials: std::collections::HashSet<Vec<u8>> = (0..50).map(|_| ca::random_serial().to_vec()).collect();
    assert_eq!(serials.len(), 50);
    assert!(
        serials
            .iter()
            .all(|s| s.len() == 16 && s[0] & 0x80 == 0 && s[0] != 0)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Whatever names a CSR carries, the parser reads back exactly those, in order.
    #[test]
    fn sans_round_trip(names in proptest::collection::vec("[a-z][a-z0-9]{0,8}(\\.[a-z][a-z0-9]{0,8}){1,3}", 0..6),
                       ips in proptest::collection::vec(any::<[u8; 4]>(), 0..3)) {
        let k = key(SigningAlg::ES256);
        let ips: Vec<IpAddr> = ips.into_iter().map(IpAddr::from).collect();
        let parsed = csr::parse(&csr::request(&k, "x", &names, &ips).unwrap()).unwrap();
        prop_assert_eq!(&parsed.request.dns_names, &names);
        prop_assert_eq!(&parsed.request.ip_addresses, &ips);
    }
}
