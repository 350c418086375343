//! Rate limits: per client IP on the endpoints anyone can call, and per identity where a
//! handler knows who is asking (a refresh token's session, a service account). GCRA
//! (`tollgate_core::ratelimit`), counted in this process or, with `redis.url`, in Redis so
//! every replica shares one limit. A refusal is 429 `rate-limited` with `Retry-After`.
//!
//! The client IP is the TCP peer, unless the peer is one of `server.trusted_proxies`: then
//! it is the right-most address of `X-Forwarded-For` that is not itself a trusted proxy
//! (every proxy appends the address it received from, so only entries added by our own
//! proxies can be believed; anything to their left was written by the client).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use tollgate_core::Reason;
use tollgate_core::ratelimit::Quota;

/// Paths limited per client IP: the unauthenticated or self-authenticating endpoints.
#[must_use]
pub fn limited_per_ip(path: &str) -> bool {
    path.starts_with("/oauth/")
        || path == "/v2/token"
        || path == "/v1/publish/attest"
        || path == "/v1/keys/register"
        // Onboarding: invites (created by org admins, redeemed and shown to anyone).
        || path == "/v1/invites/redeem"
        || path == "/v1/invites"
        || path == "/verify"
        // Browser sign-in starts documents and calls the issuer; the device page takes codes.
        || path.starts_with("/login")
        || (path.starts_with("/v1/orgs/") && path.ends_with("/invites"))
}

/// An address range of `server.trusted_proxies`: `10.0.0.0/8`, `::1/128` or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an IP address or CIDR range (10.0.0.0/8, fd00::/8)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { net, prefix })
    }

    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (bytes, bits) = (usize::from(prefix / 8), prefix % 8);
    a[..bytes] == b[..bytes] && (bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0)
}

/// The client's address: the peer, or for a trusted peer the right-most untrusted
/// `X-Forwarded-For` entry (the left-most entry if all are trusted).
#[must_use]
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return canonical(peer);
    }
    let hops: Vec<IpAddr> = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    hops.iter()
        .rev()
        .copied()
        .find(|ip| !is_trusted(*ip))
        .or_else(|| hops.first().copied())
        .map_or(canonical(peer), canonical)
}

/// The configured limits, validated.
#[derive(Debug, Clone)]
pub struct Limits {
    pub per_ip: Option<Quota>,
    pub per_identity: Option<Quota>,
    /// Certificates per identity and hour (`certs.issuance_rate_hourly`).
    pub cert_issuance: Option<Quota>,
    pub trusted_proxies: Vec<Cidr>,
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Result<Self, String> {
        let r = &c.rate_limits;
        let quota = |name: &str, rate: &str, burst: u32| {
            Quota::parse(rate, burst).map_err(|e| format!("rate_limits.{name}: {e}"))
        };
        Ok(Self {
            per_ip: r
                .enabled
                .then(|| quota("per_ip", &r.per_ip, r.per_ip_burst))
                .transpose()?,
            per_identity: r
                .enabled
                .then(|| quota("per_identity", &r.per_identity, r.per_identity_burst))
                .transpose()?,
            cert_issuance: (r.enabled && c.certs.issuance_rate_hourly > 0)
                .then(|| {
                    let n = c.certs.issuance_rate_hourly;
                    quota("certs.issuance_rate_hourly", &format!("{n}/hour"), n)
                })
                .transpose()?,
            trusted_proxies: c
                .server
                .trusted_proxies
                .iter()
                .map(|s| Cidr::parse(s).map_err(|e| format!("server.trusted_proxies: {e}")))
                .collect::<Result<_, _>>()?,
        })
    }
}

fn limited(retry_after_ms: i64, what: &str) -> ApiError {
    let secs = (retry_after_ms + 999) / 1000;
    ApiError::new(
        Reason::RateLimited,
        format!("too many requests {what}; retry in {secs} s"),
    )
    .with_retry_after(u64::try_from(secs.max(1)).unwrap_or(1))
}

/// Counts one request against `quota` for `key` (`ip:…`, `id:…`).
async fn count(state: &AppState, quota: Quota, key: &str, limit: &'static str) -> Result<(), i64> {
    let now_ms = state.clock.now().0.saturating_mul(1000);
    match state.rate_limits.gcra(key, quota.gcra(), now_ms).await {
        Ok(None) => Ok(()),
        Ok(Some(wait)) => {
            state
                .metrics
                .rate_limited
                .get_or_create(&crate::metrics::LimitLabel { limit })
                .inc();
            Err(wait)
        }
        // Fails closed: the error is logged and answered 503 by the caller.
        Err(e) => {
            tracing::error!(error = %e, "rate-limit store failed; refusing request");
            Err(-1)
        }
    }
}

/// Refuses (429) a caller who asked too often as `identity` (a session, a client id).
pub async fn check_identity(state: &AppState, identity: &str) -> Result<(), ApiError> {
    let Some(quota) = state.limits.per_identity else {
        return Ok(());
    };
    check_quota(state, quota, &format!("id:{identity}"), "identity").await
}

/// Counts one request for `key` against `quota` (metrics label `limit`): 429 when over,
/// 503 when the counter store fails.
pub async fn check_quota(
    state: &AppState,
    quota: Quota,
    key: &str,
    limit: &'static str,
) -> Result<(), ApiError> {
    match count(state, quota, key, limit).await {
        Ok(()) => Ok(()),
        Err(-1) => Err(ApiError::new(
            Reason::ServiceUnavailable,
            "a backing service is unavailable; retry later",
        )),
        Err(wait) => Err(limited(wait, "with this credential")),
    }
}

/// Middleware: the per-IP limit on [`limited_per_ip`] paths.
pub async fn per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(quota) = state.limits.per_ip.filter(|_| {
        limited_per_ip(req.uri().path()) || req.uri().path() == state.config.device.verification_path
    }) else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    // Without the peer (a server not started with connect info) every caller shares one
    // bucket: stricter, never looser.
    let ip = peer.map_or_else(
        || "unknown".to_owned(),
        |p| client_ip(p, &forwarded, &state.limits.trusted_proxies).to_string(),
    );
    match count(&state, quota, &format!("ip:{ip}"), "ip").await {
        Ok(()) => next.run(req).await,
        Err(-1) => ApiError::new(
            Reason::ServiceUnavailable,
            "a backing service is unavailable; retry later",
        )
        .into_response(),
        Err(wait) => {
            let mut resp = limited(wait, "from this address").into_response();
            resp.headers_mut()
                .insert("x-tollgate-limit", HeaderValue::from_static("ip"));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidrs_match_on_prefix_boundaries() {
        let c = Cidr::parse("10.1.0.0/16").expect("valid");
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(
            c.contains(ip("::ffff:10.1.0.9")),
            "IPv4-mapped IPv6 is the IPv4 address"
        );
        let odd = Cidr::parse("192.168.0.0/23").expect("valid");
        assert!(odd.contains(ip("192.168.1.200")) && !odd.contains(ip("192.168.2.1")));
        assert!(Cidr::parse("fd00::/8").expect("valid").contains(ip("fd12::1")));
        assert!(
            Cidr::parse("127.0.0.1")
                .expect("one address")
                .contains(ip("127.0.0.1"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("example.com").is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").expect("valid")];
        // An untrusted peer's header is ignored: it could say anything.
        assert_eq!(
            client_ip(ip("203.0.113.7"), &["1.2.3.4"], &trusted),
            ip("203.0.113.7")
        );
        // Through our proxy: the address it appended, not what the client prepended.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &["6.6.6.6, 198.51.100.9"], &trusted),
            ip("198.51.100.9")
        );
        // Two proxies of ours (an NLB then Envoy), several headers.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &["6.6.6.6", "198.51.100.9, 10.0.0.7"], &trusted),
            ip("198.51.100.9")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.5"), &[], &trusted), ip("10.0.0.5"));
        // Nothing trusted (the default): always the peer.
        assert_eq!(client_ip(ip("10.0.0.5"), &["1.2.3.4"], &[]), ip("10.0.0.5"));
    }
}
