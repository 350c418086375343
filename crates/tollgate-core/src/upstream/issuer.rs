//! How tollgate trusts one upstream issuer, and the presets for well-known ones.
//!
//! [`IssuerSpec`] is what an operator writes (config file `[[issuers]]` or admin API), with
//! every field optional where a preset can supply it. [`Issuer`] is the validated,
//! resolved form the verifier uses; building one is the only way to get one.

use crate::alg::JwsAlg;
use crate::audience::Audience;
use crate::client_grant::ClientPolicy;
use crate::scope::Scope;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Well-known issuer families whose defaults tollgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Clerk session tokens: RS256, no `aud` by default, `azp` = the requesting origin,
    /// organization claims as `org_id`/`org_role` (v1) or `o.id`/`o.rol` (v2).
    Clerk,
    /// GitHub Actions OIDC: RS256, `aud` required, repository claims.
    GithubActions,
    /// GitLab CI `id_tokens`: RS256, `aud` required, project claims.
    Gitlab,
    /// Any standards-compliant OIDC provider: `aud` required.
    #[default]
    Oidc,
}

/// Where claims live in a token. Each entry is a list of dotted paths tried in order (the
/// first present wins), so one mapping covers Clerk's v1 and v2 token shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClaimMapping {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub org_id: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub org_role: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// For workload issuers: trust-policy attribute → claim path (`repository =
    /// "project_path"`), on top of the preset's (see `trust::workload`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub workload: std::collections::BTreeMap<String, String>,
}

/// Whom an issuer's tokens describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuerKind {
    /// People: exchanges register or find a local user.
    Users,
    /// CI jobs: exchanges go through the orgs' trust policies and give job tokens; each
    /// token (`jti`) is accepted once.
    Workloads,
}

/// An issuer as configured. Absent fields take the preset's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    /// A short unique name (`clerk-prod`), used in metrics, audit and the admin API.
    pub name: String,
    /// The exact `iss` value tokens carry.
    pub issuer: String,
    #[serde(default)]
    pub preset: Preset,
    /// Users or workloads; the github-actions and gitlab presets say workloads, the
    /// others users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<IssuerKind>,
    /// Find the JWKS through `<issuer>/.well-known/openid-configuration` (default when no
    /// `jwks_uri` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<bool>,
    /// Explicit JWKS URL; excludes `discovery = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Accepted audiences.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Whether a token must carry `aud`. Clerk's preset says no; every other says yes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_required: Option<bool>,
    /// Accepted `azp` values (Clerk: the web origins); empty means not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorized_parties: Vec<String>,
    /// Algorithms accepted from this issuer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<JwsAlg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimMapping>,
    /// Claims that must be present (besides `iss`, `sub`, `exp`, `iat`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_claims: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf`, `iat`.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub clock_skew: Option<Duration>,
    /// Tokens issued (`iat`) longer ago than this are refused, whatever their `exp`.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_token_age: Option<Duration>,
    /// What tokens exchanged from this issuer may carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantSpec>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// What an exchanged token may carry: scopes and audiences (the first audience is the
/// default). Without it, exchanged tokens carry the identity only: no scope, and the
/// server's default audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Conditions on verified claims, all of which must hold for an exchange: claim path
    /// (dotted) → glob pattern (`*` matches any run). An array claim matches if any element
    /// does. E.g. `{ "org_role" = "org:admin", "repository" = "acme/*" }`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub require: std::collections::BTreeMap<String, String>,
    /// Exchanges also start a session and return a rotating refresh token, so the client
    /// can get new access tokens without the upstream token until the session ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_tokens: bool,
}

fn yes() -> bool {
    true
}

/// Where the issuer's keys are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksLocation {
    Discovery,
    Uri(String),
}

/// What the `aud` claim must look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudienceRule {
    pub required: bool,
    pub accepted: Vec<String>,
}

/// A validated issuer with every default resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issuer {
    pub name: String,
    pub issuer: String,
    pub preset: Preset,
    pub kind: IssuerKind,
    pub jwks: JwksLocation,
    pub audience: AudienceRule,
    pub authorized_parties: Vec<String>,
    pub algorithms: Vec<JwsAlg>,
    pub claims: ClaimMapping,
    pub required_claims: Vec<String>,
    /// For workload issuers: trust-policy attribute → claim path, preset and custom merged.
    pub workload_claims: std::collections::BTreeMap<String, String>,
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    #[serde(with = "humantime_serde::option")]
    pub max_token_age: Option<Duration>,
    /// What exchanged tokens may carry.
    #[serde(skip)]
    pub grant: ClientPolicy,
    /// Conditions on verified claims an exchange requires (claim path, glob pattern).
    pub require: Vec<(String, String)>,
    /// Whether exchanges start sessions with refresh tokens.
    pub refresh_tokens: bool,
    pub enabled: bool,
}

impl Issuer {
    /// The allowed algorithm named `alg` (a JOSE header value), if this issuer accepts it.
    #[must_use]
    pub fn allowed_alg(&self, alg: &str) -> Option<JwsAlg> {
        self.algorithms.iter().copied().find(|a| a.as_str() == alg)
    }
}

/// Why an issuer specification is not acceptable; names the issuer and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("issuer `{name}`: {message}")]
pub struct IssuerError {
    pub name: String,
    pub message: String,
}

/// GitHub's issuer URL, the default for the github-actions preset.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn paths(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| (*s).to_owned()).collect()
}

impl Preset {
    fn claims(self) -> ClaimMapping {
        match self {
            Preset::Clerk => ClaimMapping {
                subject: paths(&["sub"]),
                email: paths(&["email", "primary_email"]),
                org_id: paths(&["org_id", "o.id"]),
                org_role: paths(&["org_role", "o.rol"]),
                roles: paths(&["org_permissions", "o.per"]),
                workload: Default::default(),
            },
            Preset::GithubActions => ClaimMapping {
                subject: paths(&["sub"]),
                email: vec![],
                org_id: paths(&["repository_owner_id"]),
                org_role: vec![],
                roles: vec![],
                workload: Default::default(),
            },
            Preset::Gitlab => ClaimMapping {
                subject: paths(&["sub"]),
                email: paths(&["user_email"]),
                org_id: paths(&["namespace_id"]),
                org_role: vec![],
                roles: vec![],
                workload: Default::default(),
            },
            Preset::Oidc => ClaimMapping {
                subject: paths(&["sub"]),
                email: paths(&["email"]),
                org_id: paths(&["org_id"]),
                org_role: vec![],
                roles: paths(&["roles"]),
                workload: Default::default(),
            },
        }
    }

    fn kind(self) -> IssuerKind {
        match self {
            Preset::GithubActions | Preset::Gitlab => IssuerKind::Workloads,
            Preset::Clerk | Preset::Oidc => IssuerKind::Users,
        }
    }

    fn workload_claims(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Preset::GithubActions => crate::trust::workload::GITHUB_ACTIONS,
            Preset::Gitlab => crate::trust::workload::GITLAB,
            Preset::Clerk | Preset::Oidc => &[("subject", "sub")],
        }
    }

    fn audience_required(self) -> bool {
        !matches!(self, Preset::Clerk)
    }

    fn required_claims(self) -> Vec<String> {
        match self {
            Preset::Clerk => paths(&["sid"]),
            Preset::GithubActions => {
                paths(&["repository", "repository_id", "repository_owner_id", "ref", "jti"])
            }
            Preset::Gitlab => paths(&["project_path", "project_id", "namespace_id", "ref", "jti"]),
            Preset::Oidc => vec![],
        }
    }

    fn clock_skew(self) -> Duration {
        // Clerk session tokens live ~60 s, so a little skew matters more there.
        Duration::from_secs(if self == Preset::Clerk { 10 } else { 30 })
    }
}

fn err(name: &str, message: impl Into<String>) -> IssuerError {
    IssuerError {
        name: name.to_owned(),
        message: message.into(),
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether tollgate may fetch keys from `url`: `https://`, or `http://` only to a loopback
/// host (development and tests), never with userinfo. Parsed, not prefix-matched, so
/// `http://localhost@169.254.169.254/` or `http://127.0.0.1.nip.io/` are refused.
#[must_use]
pub fn acceptable_url(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else { return false };
    if !u.username().is_empty() || u.password().is_some() || u.cannot_be_a_base() {
        return false;
    }
    match (u.scheme(), u.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(d))) => d.eq_ignore_ascii_case("localhost"),
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    }
}

impl IssuerSpec {
    /// Validates the specification and fills in the preset's defaults.
    pub fn resolve(&self) -> Result<Issuer, IssuerError> {
        let name = self.name.as_str();
        if !valid_name(name) {
            return Err(err(name, "name must be 1–64 characters of A–Z a–z 0–9 . _ -"));
        }
        if !acceptable_url(&self.issuer) {
            return Err(err(
                name,
                "issuer must be an https:// URL (http:// only for loopback)",
            ));
        }
        let jwks = match (&self.jwks_uri, self.discovery) {
            (Some(_), Some(true)) => {
                return Err(err(name, "set either discovery = true or jwks_uri, not both"));
            }
            (Some(uri), _) if !acceptable_url(uri) => {
                return Err(err(
                    name,
                    "jwks_uri must be an https:// URL (http:// only for loopback)",
                ));
            }
            (Some(uri), _) => JwksLocation::Uri(uri.clone()),
            (None, Some(false)) => return Err(err(name, "discovery = false needs a jwks_uri")),
            (None, _) => JwksLocation::Discovery,
        };
        let required = self.audience_required.unwrap_or(self.preset.audience_required());
        if required && self.audiences.is_empty() {
            return Err(err(
                name,
                "audience_required = true needs at least one entry in audiences \
                 (for tokens without aud, such as Clerk session tokens, set audience_required = false)",
            ));
        }
        if self.audiences.iter().any(|a| a.is_empty()) {
            return Err(err(name, "audiences must not contain empty strings"));
        }
        let algorithms = if self.algorithms.is_empty() {
            vec![JwsAlg::RS256]
        } else {
            self.algorithms.clone()
        };
        let mut claims = self.preset.claims();
        if let Some(custom) = &self.claims {
            for (field, value) in [
                (&mut claims.subject, &custom.subject),
                (&mut claims.email, &custom.email),
                (&mut claims.org_id, &custom.org_id),
                (&mut claims.org_role, &custom.org_role),
                (&mut claims.roles, &custom.roles),
            ] {
                if !value.is_empty() {
                    field.clone_from(value);
                }
            }
        }
        if claims.subject.is_empty() {
            return Err(err(name, "claims.subject must name at least one claim"));
        }
        let kind = self.kind.unwrap_or(self.preset.kind());
        let mut workload_claims: std::collections::BTreeMap<String, String> = self
            .preset
            .workload_claims()
            .iter()
            .map(|(a, c)| ((*a).to_owned(), (*c).to_owned()))
            .collect();
        if let Some(custom) = &self.claims {
            if let Some((a, _)) = custom.workload.iter().find(|(a, c)| a.is_empty() || c.is_empty()) {
                return Err(err(
                    name,
                    format!("claims.workload: empty attribute or claim (`{a}`)"),
                ));
            }
            workload_claims.extend(custom.workload.iter().map(|(a, c)| (a.clone(), c.clone())));
        }
        let mut required_claims = self.preset.required_claims();
        // A workload token is accepted once; that needs its `jti`.
        if kind == IssuerKind::Workloads && !required_claims.iter().any(|c| c == "jti") {
            required_claims.push("jti".to_owned());
        }
        for c in &self.required_claims {
            if !required_claims.contains(c) {
                required_claims.push(c.clone());
            }
        }
        let clock_skew = self.clock_skew.unwrap_or(self.preset.clock_skew());
        if clock_skew > Duration::from_secs(300) {
            return Err(err(
                name,
                "clock_skew above 5m is refused; fix the clocks instead",
            ));
        }
        let grant = self.grant.clone().unwrap_or_default();
        if let Some((claim, _)) = grant.require.iter().find(|(c, p)| c.is_empty() || p.is_empty()) {
            return Err(err(
                name,
                format!("grant.require: empty claim or pattern (`{claim}`)"),
            ));
        }
        let require = grant
            .require
            .iter()
            .map(|(c, p)| (c.clone(), p.clone()))
            .collect();
        let refresh_tokens = grant.refresh_tokens;
        let grant = ClientPolicy {
            allowed_scope: Scope::from_tokens(&grant.scopes)
                .map_err(|e| err(name, format!("grant.scopes: {e}")))?,
            allowed_audiences: grant
                .audiences
                .iter()
                .map(|a| Audience::parse(a).map_err(|e| err(name, format!("grant.audiences `{a}`: {e}"))))
                .collect::<Result<_, _>>()?,
        };
        Ok(Issuer {
            grant,
            require,
            refresh_tokens,
            name: name.to_owned(),
            issuer: self.issuer.clone(),
            preset: self.preset,
            kind,
            workload_claims,
            jwks,
            audience: AudienceRule {
                required,
                accepted: self.audiences.clone(),
            },
            authorized_parties: self.authorized_parties.clone(),
            algorithms,
            claims,
            required_claims,
            clock_skew,
            max_token_age: self.max_token_age,
            enabled: self.enabled,
        })
    }
}

/// The trusted issuers, looked up by exact `iss`.
#[derive(Debug, Clone, Default)]
pub struct IssuerSet {
    by_iss: std::collections::HashMap<String, Issuer>,
}

impl IssuerSet {
    /// Builds the set; names and `iss` values must be unique.
    pub fn new(issuers: Vec<Issuer>) -> Result<Self, IssuerError> {
        let mut by_iss = std::collections::HashMap::new();
        let mut names = std::collections::HashSet::new();
        for i in issuers {
            if !names.insert(i.name.clone()) {
                return Err(err(&i.name, "two issuers have this name"));
            }
            if by_iss.contains_key(&i.issuer) {
                return Err(err(
                    &i.name,
                    format!("another issuer already trusts `{}`", i.issuer),
                ));
            }
            by_iss.insert(i.issuer.clone(), i);
        }
        Ok(Self { by_iss })
    }

    /// The issuer whose `iss` is exactly `iss`.
    #[must_use]
    pub fn get(&self, iss: &str) -> Option<&Issuer> {
        self.by_iss.get(iss)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Issuer> {
        self.by_iss.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(preset: Preset) -> IssuerSpec {
        IssuerSpec {
            name: "x".into(),
            issuer: "https://idp.example.com".into(),
            preset,
            enabled: true,
            ..IssuerSpec::default()
        }
    }

    #[test]
    fn clerk_preset_accepts_no_audience_and_maps_both_org_claim_shapes() {
        let i = spec(Preset::Clerk).resolve().expect("valid");
        assert!(!i.audience.required);
        assert_eq!(i.claims.org_id, vec!["org_id", "o.id"]);
        assert_eq!(i.algorithms, vec![JwsAlg::RS256]);
        assert_eq!(i.jwks, JwksLocation::Discovery);
    }

    #[test]
    fn oidc_preset_requires_audiences() {
        let e = spec(Preset::Oidc).resolve().expect_err("needs audiences");
        assert!(e.message.contains("audience_required"), "{e}");
        let ok = IssuerSpec {
            audiences: vec!["api".into()],
            ..spec(Preset::Oidc)
        }
        .resolve()
        .expect("valid");
        assert!(ok.audience.required);
    }

    #[test]
    fn explicit_audience_rule_overrides_the_preset() {
        let i = IssuerSpec {
            audience_required: Some(false),
            ..spec(Preset::GithubActions)
        }
        .resolve()
        .expect("valid");
        assert!(!i.audience.required);
    }

    #[test]
    fn jwks_source_must_be_unambiguous() {
        let both = IssuerSpec {
            discovery: Some(true),
            jwks_uri: Some("https://idp/jwks".into()),
            ..spec(Preset::Clerk)
        };
        assert!(both.resolve().is_err());
        let neither = IssuerSpec {
            discovery: Some(false),
            ..spec(Preset::Clerk)
        };
        assert!(neither.resolve().is_err());
        let plain_http = IssuerSpec {
            jwks_uri: Some("http://idp.example.com/jwks".into()),
            ..spec(Preset::Clerk)
        };
        assert!(
            plain_http.resolve().is_err(),
            "JWKS over plain http is only for loopback"
        );
    }

    #[test]
    fn plain_http_is_for_loopback_only_and_userinfo_is_refused() {
        for good in [
            "https://clerk.example.com",
            "http://127.0.0.1:8080/x",
            "http://localhost:9/jwks",
            "http://[::1]:1/",
        ] {
            assert!(acceptable_url(good), "{good}");
        }
        for bad in [
            "http://localhost@169.254.169.254/latest/meta-data/",
            "http://localhost.attacker.example/jwks",
            "http://127.0.0.1.nip.io/jwks",
            "https://user:pw@idp.example.com/",
            "http://10.0.0.1/jwks",
            "ftp://127.0.0.1/",
            "https://idp.example.com /x",
            "not a url",
        ] {
            assert!(!acceptable_url(bad), "{bad}");
        }
    }

    #[test]
    fn ci_presets_describe_workloads_and_any_oidc_issuer_can_with_its_own_mapping() {
        let gh = IssuerSpec {
            audiences: vec!["tollgate".into()],
            ..spec(Preset::GithubActions)
        }
        .resolve()
        .expect("valid");
        assert_eq!(gh.kind, IssuerKind::Workloads);
        assert_eq!(gh.workload_claims["owner_id"], "repository_owner_id");
        assert!(gh.required_claims.contains(&"jti".to_owned()));
        let oidc = spec(Preset::Oidc);
        let custom = IssuerSpec {
            audiences: vec!["tollgate".into()],
            kind: Some(IssuerKind::Workloads),
            claims: Some(ClaimMapping {
                workload: [("repository".to_owned(), "build.project".to_owned())].into(),
                ..ClaimMapping::default()
            }),
            ..oidc.clone()
        }
        .resolve()
        .expect("valid");
        assert_eq!(custom.kind, IssuerKind::Workloads);
        assert_eq!(custom.workload_claims["repository"], "build.project");
        assert_eq!(custom.workload_claims["subject"], "sub");
        assert!(
            custom.required_claims.contains(&"jti".to_owned()),
            "accepted once needs jti"
        );
        let users = IssuerSpec {
            audiences: vec!["tollgate".into()],
            ..oidc
        }
        .resolve()
        .expect("valid");
        assert_eq!(users.kind, IssuerKind::Users);
        assert!(!users.required_claims.contains(&"jti".to_owned()));
    }

    #[test]
    fn custom_claims_replace_only_what_they_name() {
        let custom = ClaimMapping {
            email: vec!["mail".into()],
            ..ClaimMapping::default()
        };
        let i = IssuerSpec {
            claims: Some(custom),
            ..spec(Preset::Clerk)
        }
        .resolve()
        .expect("valid");
        assert_eq!(i.claims.email, vec!["mail"]);
        assert_eq!(i.claims.subject, vec!["sub"]);
    }

    #[test]
    fn issuer_set_refuses_duplicates() {
        let a = spec(Preset::Clerk).resolve().expect("valid");
        let mut b = a.clone();
        b.name = "y".into();
        assert!(IssuerSet::new(vec![a.clone(), b]).is_err(), "same iss twice");
        assert!(IssuerSet::new(vec![a.clone(), a]).is_err(), "same name twice");
    }

    #[test]
    fn spec_parses_from_toml_with_durations_and_algs() {
        let s: IssuerSpec = toml::from_str(
            r#"
            name = "clerk-dev"
            issuer = "https://sincere-cheetah-30.clerk.accounts.dev"
            preset = "clerk"
            algorithms = ["RS256", "EdDSA"]
            clock_skew = "5s"
            max_token_age = "10m"
            "#,
        )
        .expect("parses");
        let i = s.resolve().expect("valid");
        assert_eq!(i.clock_skew, Duration::from_secs(5));
        assert_eq!(i.max_token_age, Some(Duration::from_secs(600)));
        assert!(
            toml::from_str::<IssuerSpec>("name='a'\nissuer='b'\naudience='x'").is_err(),
            "typos are errors"
        );
    }
}
