//! What issuing a certificate costs compared with the signature it is built on.
//!
//! The CA signs with a P-256 key (ES256). For a P-256 CSR with no SANs (a client
//! certificate) and one with three DNS names (a server certificate):
//! - `raw_sign`: the CA key's ECDSA signature alone, over a message the size of the
//!   certificate's to-be-signed part;
//! - `issue`: `ca::issue_as` of an already checked CSR as a prepared issuing certificate
//!   (what the server's internal CA does: DER encoding and signature);
//! - `csr_and_issue`: parsing the CSR, checking its signature and issuing — the crypto work
//!   of one `POST /v1/certificates/sign` (the server adds HTTP, a database audit record).
//!
//! Then plain timed loops in the same process print each path's rate as a share of the raw
//! crypto it cannot avoid: `issue` against one signature (the goal: at least 75%),
//! `csr_and_issue` against one signature plus one verification of the CSR's signature.

#![allow(clippy::print_stdout, clippy::expect_used)] // The ratios are this benchmark's output.

#[path = "common/paired_timing.rs"]
mod paired_timing;

use criterion::Criterion;
use paired_timing::{RATIO_SLICES, RATIO_TIME, time_pair};
use std::hint::black_box;
use std::time::Duration;
use tollgate_core::SigningAlg;
use tollgate_crypto::SigningKey;
use tollgate_crypto::ca::{self, CaIdentity, Leaf, LeafProfile};
use tollgate_crypto::csr::{self, ParsedCsr};

const ISSUE_GOAL_PERCENT: f64 = 75.0;
const NOW: i64 = 1_800_000_000;

struct Fixture {
    name: &'static str,
    issuing: SigningKey,
    issuer: ca::IssuerCert,
    csr_pem: String,
    parsed: ParsedCsr,
    dns: Vec<String>,
    profile: LeafProfile,
    message: Vec<u8>,
    /// A signature by the subject key over `message`, and that key, for a raw verification.
    subject_signature: Vec<u8>,
    subject_public: Vec<u8>,
}

impl Fixture {
    fn new(name: &'static str, dns: &[&str], profile: LeafProfile) -> Self {
        let issuing = SigningKey::generate(SigningAlg::ES256).expect("issuing key").0;
        let root = SigningKey::generate(SigningAlg::ES256).expect("root key").0;
        let issuing_pem = ca::new_intermediate(
            CaIdentity {
                common_name: "bench root",
                key: &root,
            },
            CaIdentity {
                common_name: "tollgate Issuing CA",
                key: &issuing,
            },
            NOW - 60,
            NOW + 86_400,
        )
        .expect("issuing certificate");
        let issuer = ca::IssuerCert::from_pem(&issuing_pem).expect("issuer");
        let subject = SigningKey::generate(SigningAlg::ES256).expect("subject key").0;
        let dns: Vec<String> = dns.iter().map(|d| (*d).to_owned()).collect();
        let csr_pem = csr::request(&subject, "bench", &dns, &[]).expect("csr");
        let parsed = csr::parse(&csr_pem).expect("parse");
        let mut f = Self {
            name,
            issuing,
            issuer,
            csr_pem,
            parsed,
            dns,
            profile,
            message: Vec::new(),
            subject_signature: Vec::new(),
            // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
            subject_public: subject.public_key_der()[subject.public_key_der().len() - 65..].to_vec(),
        };
        // The raw signature covers as many bytes as the certificate's signed part.
        let der = f.issue_parsed(&f.parsed.clone());
        f.message = vec![0x5a; der.len().saturating_sub(80)];
        let fixed = subject.sign(&f.message).expect("subject signature");
        f.subject_signature = fixed;
        f
    }

    fn leaf(&self) -> Leaf<'_> {
        Leaf {
            profile: self.profile,
            common_name: "usr_0123456789abcdefghij",
            organization: Some("acme"),
            organizational_unit: Some("user"),
            dns_names: &self.dns,
            ip_addresses: &[],
            not_before: NOW,
            not_after: NOW + 5400,
            serial: ca::random_serial(),
        }
    }

    fn issue_parsed(&self, parsed: &ParsedCsr) -> Vec<u8> {
        ca::issue_as(&self.issuer, &self.issuing, parsed, &self.leaf())
            .expect("issue")
            .der
    }

    fn raw_sign(&self) -> Vec<u8> {
        self.issuing.sign(black_box(&self.message)).expect("sign")
    }

    /// One CA signature and one verification of a subject's signature: the crypto floor of
    /// checking a CSR and issuing for it.
    fn raw_sign_and_verify(&self) -> bool {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
        let sig = self.raw_sign();
        black_box(sig);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.subject_public)
            .verify(black_box(&self.message), &self.subject_signature)
            .is_ok()
    }

    fn issue(&self) -> Vec<u8> {
        self.issue_parsed(black_box(&self.parsed))
    }

    fn csr_and_issue(&self) -> Vec<u8> {
        let parsed = csr::parse(black_box(&self.csr_pem)).expect("parse");
        self.issue_parsed(&parsed)
    }
}

fn print_ratio(name: &str, what: &str, raw_what: &str, path: Duration, raw: Duration, goal: Option<f64>) {
    let share = 100.0 * raw.as_secs_f64() / path.as_secs_f64();
    let goal = goal.map_or_else(String::new, |g| {
        let verdict = if share >= g { "met" } else { "NOT met" };
        format!(" (goal >= {g:.0}%: {verdict})")
    });
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "ratio {name} {what}: {:.1} µs vs raw {raw_what} {:.1} µs -> {share:.1}% of raw rate{goal}",
        micros(path),
        micros(raw)
    );
}

/// Whether this is `cargo bench` proper (not `cargo test --benches` or `--list`).
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--test") && !has("--list")
}

fn main() {
    let fixtures = [
        Fixture::new("client", &[], LeafProfile::Client),
        Fixture::new(
            "server",
            &["a.build.example.com", "b.build.example.com", "ci.example.com"],
            LeafProfile::Server,
        ),
    ];
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(30)
        .configure_from_args();
    for f in &fixtures {
        let mut group = c.benchmark_group(format!("certificate/{}", f.name));
        group.bench_function("raw_sign", |b| b.iter(|| f.raw_sign()));
        group.bench_function("raw_sign_and_verify", |b| b.iter(|| f.raw_sign_and_verify()));
        group.bench_function("issue", |b| b.iter(|| f.issue()));
        group.bench_function("csr_and_issue", |b| b.iter(|| f.csr_and_issue()));
        group.finish();
    }
    c.final_summary();
    if benchmarking() {
        println!(
            "\nsame-process timed loops, one thread, {RATIO_TIME:?} per operation \
             (best of {RATIO_SLICES} alternating slices):"
        );
        for f in &fixtures {
            let (path, raw) = time_pair(|| f.issue(), || f.raw_sign());
            print_ratio(f.name, "issue", "ES256 sign", path, raw, Some(ISSUE_GOAL_PERCENT));
            let (path, raw) = time_pair(|| f.csr_and_issue(), || f.raw_sign_and_verify());
            print_ratio(f.name, "csr+issue", "ES256 sign + verify", path, raw, None);
        }
    }
}
