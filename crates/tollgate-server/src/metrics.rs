//! Prometheus metrics, in a registry owned by the app (no global recorder), so every
//! test app and every embedded server has its own.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// An upstream issuer, named by the cache key its configuration gave it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerLabel {
    pub issuer: String,
}

/// A JWKS fetch and how it ended: `ok`, `not_modified` or `error`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JwksFetchLabels {
    pub issuer: String,
    pub outcome: &'static str,
}

/// A JWKS cache lookup and how it was answered: `hit`, `miss` or `stale`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JwksLookupLabels {
    pub issuer: String,
    pub result: &'static str,
}

type HistogramFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

/// Every metric tollgate exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily,
    pub tokens_issued: Family<KindLabel, Counter>,
    pub audit_failures: Counter,
    /// Upstream JWKS fetches by issuer and outcome.
    pub jwks_fetches: Family<JwksFetchLabels, Counter>,
    /// Upstream key lookups by issuer and how the cache answered.
    pub jwks_lookups: Family<JwksLookupLabels, Counter>,
    /// Keys in each issuer's cached set.
    pub jwks_keys: Family<IssuerLabel, Gauge>,
    /// When each issuer's cached set expires (Unix seconds); past it, keys are served stale.
    pub jwks_expiry: Family<IssuerLabel, Gauge>,
    /// Upstream token verifications by issuer and outcome (`ok` or a reason code).
    pub upstream_verifications: Family<UpstreamLabels, Counter>,
    /// Token exchanges by issuer and outcome (`ok` or a reason code).
    pub exchanges: Family<UpstreamLabels, Counter>,
    /// Registry actions asked for, by action and whether they were granted.
    pub registry_grants: Family<RegistryLabels, Counter>,
    /// Trust-policy decisions on CI tokens, by issuer, deciding policy and outcome.
    pub policy_decisions: Family<PolicyLabels, Counter>,
    /// Publish-session steps by step and outcome (`ok` or a reason code).
    pub publish_steps: Family<StepLabels, Counter>,
    /// Requests refused by a rate limit, by limit (`ip`, `identity`).
    pub rate_limited: Family<LimitLabel, Counter>,
    /// Device authorization requests (RFC 8628).
    pub device_authorizations: Family<KindLabel, Counter>,
    /// Certificates issued, by CA and profile.
    pub certs_issued: Family<CertLabels, Counter>,
    /// Certificate requests refused or failed, by CA and reason code.
    pub cert_errors: Family<CertErrorLabels, Counter>,
    /// Time to sign a certificate, by CA.
    pub cert_issue_duration: Family<CaLabel, Histogram, fn() -> Histogram>,
}

/// A CA and the certificate profile (`client`, `server`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabels {
    pub ca: String,
    pub profile: &'static str,
}

/// A CA and why a certificate was not issued.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertErrorLabels {
    pub ca: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CaLabel {
    pub ca: String,
}

/// Which rate limit refused a request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: &'static str,
}

/// A trust-policy decision: the issuer, the policy that matched (`org/name`, or `none`),
/// and `granted` or the reason code of the refusal.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub issuer: String,
    pub policy: String,
    pub outcome: &'static str,
}

/// A step of a flow (`init`, `attest`, …) and its outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub step: &'static str,
    pub outcome: &'static str,
}

/// A registry action (`pull`, `push`, `delete`, `*`, or `other`) and `granted`/`denied`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    pub action: &'static str,
    pub result: &'static str,
}

impl RegistryLabels {
    /// Labels for `action`; unknown actions share one label (clients choose the text).
    #[must_use]
    pub fn new(action: &str, granted: bool) -> Self {
        let action = match action {
            "pull" => "pull",
            "push" => "push",
            "delete" => "delete",
            "*" => "*",
            _ => "other",
        };
        Self {
            action,
            result: if granted { "granted" } else { "denied" },
        }
    }
}

/// An upstream issuer's configured name (never a token's raw `iss`) and an outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub issuer: String,
    pub outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let tokens_issued = Family::<KindLabel, Counter>::default();
        let audit_failures = Counter::default();
        let jwks_fetches = Family::<JwksFetchLabels, Counter>::default();
        let jwks_lookups = Family::<JwksLookupLabels, Counter>::default();
        let jwks_keys = Family::<IssuerLabel, Gauge>::default();
        let jwks_expiry = Family::<IssuerLabel, Gauge>::default();
        let upstream_verifications = Family::<UpstreamLabels, Counter>::default();
        let exchanges = Family::<UpstreamLabels, Counter>::default();
        let registry_grants = Family::<RegistryLabels, Counter>::default();
        let policy_decisions = Family::<PolicyLabels, Counter>::default();
        let publish_steps = Family::<StepLabels, Counter>::default();
        let rate_limited = Family::<LimitLabel, Counter>::default();
        let device_authorizations = Family::<KindLabel, Counter>::default();
        let certs_issued = Family::<CertLabels, Counter>::default();
        let cert_errors = Family::<CertErrorLabels, Counter>::default();
        let cert_issue_duration: Family<CaLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "cert_issued",
            "Certificates issued, by CA and profile",
            certs_issued.clone(),
        );
        registry.register(
            "cert_issue_errors",
            "Certificate requests refused or failed, by CA and reason code",
            cert_errors.clone(),
        );
        registry.register(
            "cert_issue_duration_seconds",
            "Time to sign a certificate (CSR checked to certificate signed), by CA",
            cert_issue_duration.clone(),
        );
        registry.register(
            "device_authorizations",
            "Device authorization requests (RFC 8628)",
            device_authorizations.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by limit (ip, identity)",
            rate_limited.clone(),
        );
        registry.register(
            "trust_policy_decisions",
            "Trust-policy decisions on CI tokens by issuer, policy (org/name or none) and outcome (granted or reason code)",
            policy_decisions.clone(),
        );
        registry.register(
            "publish_steps",
            "Publish-session steps by step and outcome (ok or reason code)",
            publish_steps.clone(),
        );
        registry.register(
            "registry_grants",
            "Registry actions asked for, by action and result (granted, denied)",
            registry_grants.clone(),
        );
        registry.register(
            "upstream_verifications",
            "Upstream token verifications by issuer and outcome (ok or reason code)",
            upstream_verifications.clone(),
        );
        registry.register(
            "token_exchanges",
            "Token exchanges by issuer and outcome (ok or reason code)",
            exchanges.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            http_duration.clone(),
        );
        registry.register(
            "tokens_issued",
            "Credentials issued by kind",
            tokens_issued.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit events that could not be written",
            audit_failures.clone(),
        );
        registry.register(
            "jwks_fetches",
            "Upstream JWKS fetches by issuer and outcome (ok, not_modified, error)",
            jwks_fetches.clone(),
        );
        registry.register(
            "jwks_cache_lookups",
            "Upstream key lookups by issuer and result (hit, miss, stale)",
            jwks_lookups.clone(),
        );
        registry.register(
            "jwks_keys",
            "Keys in the cached JWKS of each issuer",
            jwks_keys.clone(),
        );
        registry.register(
            "jwks_expiry_timestamp_seconds",
            "When the cached JWKS of each issuer expires (Unix seconds, 0 before the first fetch); later, keys are served stale",
            jwks_expiry.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            tokens_issued,
            audit_failures,
            jwks_fetches,
            jwks_lookups,
            jwks_keys,
            jwks_expiry,
            upstream_verifications,
            exchanges,
            registry_grants,
            policy_decisions,
            publish_steps,
            rate_limited,
            device_authorizations,
            certs_issued,
            cert_errors,
            cert_issue_duration,
        }
    }

    /// The OpenMetrics text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
