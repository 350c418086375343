//! Docker / OCI registry tokens (CNCF distribution token authentication): the scope grammar,
//! the claims a registry verifies, and which requested actions a caller is granted.
//!
//! A registry challenges a client with `scope="repository:library/alpine:pull,push"`; the
//! client asks the token server for those scopes, and the token lists in `access` what was
//! granted. Denied actions are left out (the registry then answers 401/403 itself).
//!
//! Canonical actions: a [`ResourceScope`]'s actions are deduplicated and sorted bytewise, so
//! `*` (0x2A) comes before the letters: `["*", "delete", "pull", "push"]`. `*` is **not**
//! collapsed with the others: the registry compares actions as exact strings (`*` is what it
//! asks for on `/v2/_catalog`, `pull`/`push`/`delete` on repositories), so `pull,*` asks for
//! both strings, and a caller who may pull but not everything still gets `pull`.

use crate::UnixTime;
use crate::authz::{Permission, PermissionSet};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest repository name the reference grammar allows (distribution's `NameTotalLengthMax`).
pub const MAX_NAME_LEN: usize = 255;
/// The longest single resource scope accepted (`type(class):name:actions`).
pub const MAX_SCOPE_LEN: usize = 1024;
/// The most distinct resources one request may ask for (docker asks for one to three).
pub const MAX_SCOPES: usize = 64;

/// The resource type of repositories.
pub const REPOSITORY: &str = "repository";
/// The resource type of the registry itself; with name [`CATALOG`], `/v2/_catalog`.
pub const REGISTRY: &str = "registry";
/// The name of the catalog resource (`registry:catalog:*`).
pub const CATALOG: &str = "catalog";

/// Permission needed for `pull`.
pub const PERMISSION_PULL: &str = "registry:pull";
/// Permission needed for `push`.
pub const PERMISSION_PUSH: &str = "registry:push";
/// Permission needed for `delete`.
pub const PERMISSION_DELETE: &str = "registry:delete";
/// Permission needed for `registry:catalog:*`.
pub const PERMISSION_CATALOG: &str = "registry:catalog";

/// One requested resource: `resourcetype[(class)]:resourcename:action[,action]*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    /// `repository`, `registry`, …: `[a-z0-9]+`.
    pub resource_type: String,
    /// The optional class, e.g. `plugin` in `repository(plugin):…`: `[a-z0-9]+`.
    pub resource_class: Option<String>,
    /// The resource name; may start with `host[:port]/`.
    pub name: String,
    /// Deduplicated and sorted bytewise (`*` first); never empty after [`parse_scope`].
    pub actions: Vec<String>,
}

impl ResourceScope {
    /// Whether this is `registry:catalog`.
    #[must_use]
    pub fn is_catalog(&self) -> bool {
        self.resource_type == REGISTRY && self.name == CATALOG
    }

    fn same_resource(&self, other: &ResourceScope) -> bool {
        self.resource_type == other.resource_type
            && self.resource_class == other.resource_class
            && self.name == other.name
    }
}

impl fmt::Display for ResourceScope {
    /// The scope as the grammar writes it (actions in canonical order).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.resource_type)?;
        if let Some(class) = &self.resource_class {
            write!(f, "({class})")?;
        }
        write!(f, ":{}:{}", self.name, self.actions.join(","))
    }
}

/// Why a `scope` parameter was refused. The offending text is quoted, clipped to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("empty scope: expected `type:name:action[,action]`")]
    Empty,
    #[error("scope is {len} bytes long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("`{0}` is not a scope: expected `type:name:action[,action]`")]
    Shape(String),
    #[error(
        "resource type `{0}` is not valid: use lowercase letters and digits, optionally with a `(class)`"
    )]
    Type(String),
    #[error("resource name `{name}` is not valid: {why}")]
    Name { name: String, why: &'static str },
    #[error("action `{action}` in `{scope}` is not valid: use lowercase letters or `*`")]
    Action { scope: String, action: String },
    #[error("more than {0} resources requested")]
    TooMany(usize),
}

/// At most 100 characters of `s`, for messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn lower_alnum(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Parses one resource scope, e.g. `repository:localhost:5000/team/app:push,pull`.
///
/// The type ends at the first `:` and the actions start after the last one, so the name may
/// contain `:` (a `host:port/` prefix). Names of `repository` scopes must match the
/// distribution reference grammar; names of other types must be 1–255 printable ASCII
/// characters without spaces. Actions are `[a-z]+` or `*`, returned deduplicated and sorted.
pub fn parse_scope(s: &str) -> Result<ResourceScope, ScopeError> {
    if s.is_empty() {
        return Err(ScopeError::Empty);
    }
    if s.len() > MAX_SCOPE_LEN {
        return Err(ScopeError::TooLong {
            len: s.len(),
            max: MAX_SCOPE_LEN,
        });
    }
    let shape = || ScopeError::Shape(clip(s));
    let (first, last) = (s.find(':').ok_or_else(shape)?, s.rfind(':').ok_or_else(shape)?);
    if first == last {
        return Err(shape());
    }
    let (type_part, name, actions_part) = (&s[..first], &s[first + 1..last], &s[last + 1..]);

    let (resource_type, resource_class) = match type_part.split_once('(') {
        None => (type_part, None),
        Some((t, rest)) => {
            let class = rest
                .strip_suffix(')')
                .ok_or_else(|| ScopeError::Type(clip(type_part)))?;
            (t, Some(class))
        }
    };
    if !lower_alnum(resource_type) || resource_class.is_some_and(|c| !lower_alnum(c)) {
        return Err(ScopeError::Type(clip(type_part)));
    }

    if resource_type == REPOSITORY {
        validate_repository_name(name)?;
    } else {
        validate_other_name(name)?;
    }

    let mut actions = Vec::new();
    for action in actions_part.split(',') {
        let ok = action == "*" || (!action.is_empty() && action.bytes().all(|b| b.is_ascii_lowercase()));
        if !ok {
            return Err(ScopeError::Action {
                scope: clip(s),
                action: clip(action),
            });
        }
        actions.push(action.to_owned());
    }
    actions.sort();
    actions.dedup();

    Ok(ResourceScope {
        resource_type: resource_type.to_owned(),
        resource_class: resource_class.map(str::to_owned),
        name: name.to_owned(),
        actions,
    })
}

/// Parses every `scope` parameter of a request. Each parameter may hold several scopes
/// separated by spaces (docker sends one per parameter; OAuth2-style clients join them);
/// empty pieces, such as an empty parameter, are skipped. Scopes naming the same resource
/// (type, class and name) are merged into one with the union of their actions; resources
/// keep the order in which they first appear.
pub fn parse_scopes(params: &[&str]) -> Result<Vec<ResourceScope>, ScopeError> {
    let mut out: Vec<ResourceScope> = Vec::new();
    for piece in params.iter().flat_map(|p| p.split(' ')).filter(|p| !p.is_empty()) {
        let scope = parse_scope(piece)?;
        if let Some(existing) = out.iter_mut().find(|s| s.same_resource(&scope)) {
            existing.actions.extend(scope.actions);
            existing.actions.sort();
            existing.actions.dedup();
        } else if out.len() >= MAX_SCOPES {
            return Err(ScopeError::TooMany(MAX_SCOPES));
        } else {
            out.push(scope);
        }
    }
    Ok(out)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        // One or more alphanumerics.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // A separator: `.`, `_`, `__` or one or more `-`.
        match b[i] {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `host[:port]` where host is `domain-component(.domain-component)*` or `[ipv6]`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if d.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// The distribution reference grammar for repository names: path components joined by `/`,
/// optionally after a `host[:port]/` domain, at most [`MAX_NAME_LEN`] characters in all.
fn validate_repository_name(name: &str) -> Result<(), ScopeError> {
    let bad = |why| {
        Err(ScopeError::Name {
            name: clip(name),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("repository names have at most 255 characters");
    }
    let components: Vec<&str> = name.split('/').collect();
    if components.iter().all(|c| valid_path_component(c)) {
        return Ok(());
    }
    if components.len() >= 2
        && valid_domain(components[0])
        && components[1..].iter().all(|c| valid_path_component(c))
    {
        return Ok(());
    }
    bad(
        "use lowercase components of letters and digits separated by `.`, `_`, `__` or dashes, joined by `/`, optionally after `host[:port]/`",
    )
}

fn validate_other_name(name: &str) -> Result<(), ScopeError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ScopeError::Name {
            name: clip(name),
            why: "use 1 to 255 printable ASCII characters without spaces",
        });
    }
    Ok(())
}

/// One entry of a registry token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAccess {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// The claims of a registry access token, as distribution's token authentication reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryClaims {
    /// Must equal the registry's configured `issuer`.
    pub iss: String,
    pub sub: String,
    /// Must equal the registry's configured `service`.
    pub aud: String,
    pub exp: UnixTime,
    pub nbf: UnixTime,
    pub iat: UnixTime,
    pub jti: String,
    /// What was granted; resources with no granted action are left out.
    #[serde(default)]
    pub access: Vec<RegistryAccess>,
}

/// The actions of `scope` that `permissions` allow, in the order of `scope.actions`, without
/// duplicates. Denied and unknown actions are left out.
///
/// On `repository` scopes: `pull` needs `registry:pull` (or, with `push_implies_pull`,
/// `registry:push`), `push` needs `registry:push`, `delete` needs `registry:delete`, and `*`
/// needs all three (pull as just said) and is granted as `*`. On `registry:catalog`, only
/// `*` exists and it needs `registry:catalog`. Every other resource type gets nothing. The
/// class (`repository(plugin)`) does not change the decision.
#[must_use]
pub fn granted_actions(
    scope: &ResourceScope,
    permissions: &PermissionSet,
    push_implies_pull: bool,
) -> Vec<String> {
    let has = |name: &str| Permission::parse(name).is_ok_and(|p| permissions.allows(&p));
    let allowed: &dyn Fn(&str) -> bool = if scope.resource_type == REPOSITORY {
        let push = has(PERMISSION_PUSH);
        let pull = has(PERMISSION_PULL) || (push_implies_pull && push);
        let delete = has(PERMISSION_DELETE);
        &move |action: &str| match action {
            "pull" => pull,
            "push" => push,
            "delete" => delete,
            "*" => pull && push && delete,
            _ => false,
        }
    } else if scope.is_catalog() {
        let catalog = has(PERMISSION_CATALOG);
        &move |action: &str| action == "*" && catalog
    } else {
        &|_: &str| false
    };
    let mut out: Vec<String> = Vec::new();
    for action in &scope.actions {
        if allowed(action) && !out.contains(action) {
            out.push(action.clone());
        }
    }
    out
}

/// The `access` claim for `scopes`: one entry per scope with its [`granted_actions`];
/// scopes with nothing granted are left out.
#[must_use]
pub fn grant(
    scopes: &[ResourceScope],
    permissions: &PermissionSet,
    push_implies_pull: bool,
) -> Vec<RegistryAccess> {
    scopes
        .iter()
        .filter_map(|scope| {
            let actions = granted_actions(scope, permissions, push_implies_pull);
            (!actions.is_empty()).then(|| RegistryAccess {
                resource_type: scope.resource_type.clone(),
                name: scope.name.clone(),
                actions,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scope(s: &str) -> ResourceScope {
        parse_scope(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn perms(grants: &[&str]) -> PermissionSet {
        PermissionSet::parse(grants.iter().copied()).expect("valid grants")
    }

    #[test]
    fn simple_scopes() {
        let s = scope("repository:library/alpine:pull");
        assert_eq!(
            s,
            ResourceScope {
                resource_type: "repository".into(),
                resource_class: None,
                name: "library/alpine".into(),
                actions: vec!["pull".into()],
            }
        );
        assert_eq!(s.to_string(), "repository:library/alpine:pull");
        assert_eq!(scope("repository:a:pull,push"), scope("repository:a:push,pull"));
        assert_eq!(scope("repository:a:push,pull,push").actions, ["pull", "push"]);
        assert_eq!(scope("repository:a:*").actions, ["*"]);
        assert_eq!(scope("repository:a:push,*,pull").actions, ["*", "pull", "push"]);
        assert_eq!(scope("repository:a:frobnicate").actions, ["frobnicate"]);
        let c = scope("registry:catalog:*");
        assert!(c.is_catalog());
        assert_eq!(c.to_string(), "registry:catalog:*");
    }

    #[test]
    fn class_and_host_port() {
        let s = scope("repository(plugin):vieux/sshfs:pull");
        assert_eq!(s.resource_type, "repository");
        assert_eq!(s.resource_class.as_deref(), Some("plugin"));
        assert_eq!(s.name, "vieux/sshfs");
        assert_eq!(s.to_string(), "repository(plugin):vieux/sshfs:pull");

        for (input, name) in [
            ("repository:localhost:5000/app:pull", "localhost:5000/app"),
            (
                "repository:registry.example.com:443/team/app:push,pull",
                "registry.example.com:443/team/app",
            ),
            (
                "repository:Registry.Example.com/team/app:pull",
                "Registry.Example.com/team/app",
            ),
            ("repository:[::1]:5000/app:pull", "[::1]:5000/app"),
            ("repository:[fe80::1]/app:pull", "[fe80::1]/app"),
            ("repository:a.b_c__d--e---f/g:pull", "a.b_c__d--e---f/g"),
            ("repository:0:pull", "0"),
        ] {
            assert_eq!(scope(input).name, name, "{input}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        let long = format!("repository:{}:pull", "a".repeat(MAX_NAME_LEN + 1));
        let long_path = format!("repository:{}/{}:pull", "a".repeat(200), "b".repeat(60));
        for bad in [
            "",
            "repository",
            "repository:a",
            "repository::pull",
            "repository:UPPER:pull",
            "repository:a:pu ll",
            "repository:a:",
            "repository:a:pull,",
            "repository:a:,pull",
            "repository:a:pull,,push",
            "repository:a:PULL",
            "repository:a:**",
            ":a:pull",
            "Repository:a:pull",
            "repo sitory:a:pull",
            "repository():a:pull",
            "repository(plugin:a:pull",
            "repository(Plugin):a:pull",
            "repository)x(:a:pull",
            "repository:a//b:pull",
            "repository:/a:pull",
            "repository:a/:pull",
            "repository:a..b:pull",
            "repository:a___b:pull",
            "repository:a-_b:pull",
            "repository:-a:pull",
            "repository:a-:pull",
            "repository:a b:pull",
            "repository:localhost:5000:pull",
            "repository:host:/a:pull",
            "repository:host:port/a:pull",
            "repository:-host/a:pull",
            "repository:[zz]/a:pull",
            "repository:a@sha256:pull",
            "registry::*",
            "registry:cat alog:*",
            &long,
            &long_path,
        ] {
            assert!(parse_scope(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_scope(&format!("repository:{}:pull", "a".repeat(MAX_NAME_LEN))).is_ok());
        assert!(matches!(
            parse_scope(&"a".repeat(MAX_SCOPE_LEN + 1)),
            Err(ScopeError::TooLong { .. })
        ));
    }

    #[test]
    fn errors_name_the_problem() {
        let msg = |s: &str| parse_scope(s).expect_err("refused").to_string();
        assert!(msg("repository:UPPER:pull").contains("`UPPER`"));
        assert!(msg("repository:a:pu ll").contains("`pu ll`"));
        assert!(msg("Repo:a:pull").contains("`Repo`"));
        assert!(msg("repository").contains("`repository`"));
        assert!(msg(&format!("repository:{}:pull", "a".repeat(300))).contains("255"));
        assert!(msg(&format!("x:{}:pull", "a".repeat(300))).chars().count() < 300);
    }

    #[test]
    fn several_scopes_merge() {
        let got = parse_scopes(&[
            "repository:a:pull",
            "repository:b:push repository:a:push",
            "",
            "registry:catalog:*  repository:a:pull",
        ])
        .expect("valid");
        assert_eq!(
            got.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "repository:a:pull,push",
                "repository:b:push",
                "registry:catalog:*"
            ]
        );
        // The class is part of the resource's identity.
        let got = parse_scopes(&["repository:a:pull", "repository(plugin):a:push"]).expect("valid");
        assert_eq!(got.len(), 2);
        assert_eq!(parse_scopes(&[]).expect("none"), []);
        assert!(parse_scopes(&["repository:a:pull", "repository:A:pull"]).is_err());
        assert!(parse_scopes(&["repository:a:pull\trepository:b:pull"]).is_err());
        let many: Vec<String> = (0..=MAX_SCOPES)
            .map(|i| format!("repository:r{i}:pull"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(parse_scopes(&many), Err(ScopeError::TooMany(MAX_SCOPES)));
        assert!(parse_scopes(&many[..MAX_SCOPES]).is_ok());
    }

    #[test]
    fn granted_actions_matrix() {
        let all = "repository:a:*,delete,pull,push";
        // (grants, push_implies_pull, expected)
        let cases: &[(&[&str], bool, &[&str])] = &[
            (&[], false, &[]),
            (&["registry:pull"], false, &["pull"]),
            (&["registry:push"], false, &["push"]),
            (&["registry:push"], true, &["pull", "push"]),
            (&["registry:delete"], false, &["delete"]),
            (&["registry:pull", "registry:push"], false, &["pull", "push"]),
            (
                &["registry:pull", "registry:push", "registry:delete"],
                false,
                &["*", "delete", "pull", "push"],
            ),
            (&["registry:push", "registry:delete"], false, &["delete", "push"]),
            (
                &["registry:push", "registry:delete"],
                true,
                &["*", "delete", "pull", "push"],
            ),
            (&["registry:*"], false, &["*", "delete", "pull", "push"]),
            (&["*"], false, &["*", "delete", "pull", "push"]),
            (&["registry:catalog"], false, &[]),
            (&["registry:pull:x"], false, &[]),
            (&["org:admin"], false, &[]),
        ];
        for (grants, implies, expected) in cases {
            assert_eq!(
                granted_actions(&scope(all), &perms(grants), *implies),
                *expected,
                "{grants:?} implies={implies}"
            );
        }
        let p = perms(&["registry:*"]);
        // Unknown actions are never granted; the class does not matter.
        assert_eq!(
            granted_actions(&scope("repository:a:frob,pull"), &p, false),
            ["pull"]
        );
        assert_eq!(
            granted_actions(&scope("repository(plugin):a:pull"), &p, false),
            ["pull"]
        );
        // `*` alone needs all three.
        assert!(
            granted_actions(
                &scope("repository:a:*"),
                &perms(&["registry:pull", "registry:push"]),
                true
            )
            .is_empty()
        );
        // The catalog needs registry:catalog, and has only `*`.
        let catalog = scope("registry:catalog:*,pull");
        assert_eq!(
            granted_actions(&catalog, &perms(&["registry:catalog"]), false),
            ["*"]
        );
        assert!(
            granted_actions(
                &catalog,
                &perms(&["registry:pull", "registry:push", "registry:delete"]),
                true
            )
            .is_empty()
        );
        assert_eq!(granted_actions(&catalog, &perms(&["*"]), false), ["*"]);
        // Other resources get nothing, even for `*` holders.
        for other in ["registry:other:*", "plugin:a:pull", "repositoryx:a:pull"] {
            assert!(
                granted_actions(&scope(other), &perms(&["*"]), true).is_empty(),
                "{other}"
            );
        }
        // Hand-built scopes with duplicates still yield each action once.
        let mut dup = scope("repository:a:pull");
        dup.actions.push("pull".into());
        assert_eq!(granted_actions(&dup, &p, false), ["pull"]);
    }

    #[test]
    fn grant_leaves_out_denied_resources() {
        let scopes = parse_scopes(&["repository:a:pull,push registry:catalog:*"]).expect("valid");
        assert_eq!(
            grant(&scopes, &perms(&["registry:pull"]), false),
            [RegistryAccess {
                resource_type: "repository".into(),
                name: "a".into(),
                actions: vec!["pull".into()],
            }]
        );
        assert!(grant(&scopes, &perms(&[]), true).is_empty());
    }

    #[test]
    fn claims_serialize_as_distribution_reads_them() {
        let claims = RegistryClaims {
            iss: "https://tollgate.example".into(),
            sub: "alice".into(),
            aud: "registry.example".into(),
            exp: UnixTime(1_700_000_300),
            nbf: UnixTime(1_700_000_000),
            iat: UnixTime(1_700_000_000),
            jti: "j1".into(),
            access: vec![RegistryAccess {
                resource_type: "repository".into(),
                name: "team/app".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
        };
        let json = serde_json::to_value(&claims).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "iss": "https://tollgate.example", "sub": "alice", "aud": "registry.example",
                "exp": 1_700_000_300, "nbf": 1_700_000_000, "iat": 1_700_000_000, "jti": "j1",
                "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]
            })
        );
        assert_eq!(
            serde_json::from_value::<RegistryClaims>(json).expect("back"),
            claims
        );
        let empty = RegistryClaims {
            access: vec![],
            ..claims
        };
        assert_eq!(
            serde_json::to_value(&empty).expect("json")["access"],
            serde_json::json!([])
        );
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        let component = "[a-z0-9]{1,4}(([._]|__|-{1,3})[a-z0-9]{1,4}){0,2}";
        let domain = prop_oneof![
            Just(String::new()),
            "[a-z0-9]{1,6}(\\.[a-z]{2,4})?(:[0-9]{1,5})?/",
            Just("[::1]:5000/".to_owned()),
        ];
        (domain, prop::collection::vec(component, 1..4)).prop_map(|(d, c)| format!("{d}{}", c.join("/")))
    }

    fn actions_strategy() -> impl Strategy<Value = Vec<&'static str>> {
        prop::collection::vec(
            prop::sample::select(vec!["pull", "push", "delete", "*", "x"]),
            1..6,
        )
    }

    proptest! {
        /// Arbitrary input is refused or parsed, never panicked on; what parses prints back
        /// to something that parses to the same scope.
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            if let Ok(scope) = parse_scope(&s) {
                prop_assert_eq!(parse_scope(&scope.to_string()), Ok(scope));
            }
            let _ = parse_scopes(&[&s, &s]);
        }

        /// Scope-shaped input with arbitrary bytes in each part never panics either.
        #[test]
        fn scope_shaped_input_never_panics(t in "[a-z()]{0,12}", n in "[ -~]{0,40}", a in "[a-z*, ]{0,12}") {
            let _ = parse_scope(&format!("{t}:{n}:{a}"));
        }

        /// Well-formed names parse; action order and repetition do not matter.
        #[test]
        fn valid_scopes_parse_canonically(name in name_strategy(), actions in actions_strategy()) {
            let s = format!("repository:{name}:{}", actions.join(","));
            let parsed = parse_scope(&s);
            prop_assert!(parsed.is_ok(), "{}: {:?}", s, parsed);
            let parsed = parsed.expect("checked");
            prop_assert_eq!(&parsed.name, &name);
            let mut reversed = actions.clone();
            reversed.reverse();
            let again = parse_scope(&format!("repository:{name}:{}", reversed.join(","))).expect("valid");
            prop_assert_eq!(&again, &parsed);
            let mut expected: Vec<String> = actions.iter().map(|a| (*a).to_owned()).collect();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(parsed.actions, expected);
        }

        /// Granted actions are always a subset of the requested ones, and `push_implies_pull`
        /// only ever adds.
        #[test]
        fn granted_is_a_subset(actions in actions_strategy(),
                               grants in prop::collection::vec(prop::sample::select(vec![
                                   "registry:pull", "registry:push", "registry:delete", "registry:catalog", "registry:*", "*"]), 0..4)) {
            let s = parse_scope(&format!("repository:a:{}", actions.join(","))).expect("valid");
            let p = perms(&grants);
            let without = granted_actions(&s, &p, false);
            let with = granted_actions(&s, &p, true);
            prop_assert!(without.iter().all(|a| s.actions.contains(a)));
            prop_assert!(without.iter().all(|a| with.contains(a)));
            prop_assert!(!with.iter().any(|a| a == "x"));
        }
    }
}

/// The default binding of repositories to orgs: the first path component names the org.
pub const DEFAULT_REPOSITORY_PATTERN: &str = "{org}/*";

/// Checks a repository pattern: path components, exactly one `{org}` inside one of them
/// (with an optional literal prefix and suffix, e.g. `team-{org}`), and a last component
/// `*` (any one or more further components).
pub fn validate_repository_pattern(pattern: &str) -> Result<(), String> {
    let parts: Vec<&str> = pattern.split('/').collect();
    let ok = parts.len() >= 2
        && parts.last() == Some(&"*")
        && pattern.matches("{org}").count() == 1
        && parts[..parts.len() - 1].iter().all(|p| {
            let literal = p.replace("{org}", "");
            !p.is_empty()
                && literal
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "repository pattern `{pattern}`: use path components of a-z 0-9 . _ - with one `{{org}}` and a final `/*`, e.g. `{{org}}/*` or `team-{{org}}/*`"
        ))
    }
}

/// The org name the first matching pattern gives `repository` (a `host[:port]/` prefix is
/// dropped first), or `None`. Patterns are assumed valid ([`validate_repository_pattern`]).
#[must_use]
pub fn repository_org<'r>(patterns: &[String], repository: &'r str) -> Option<&'r str> {
    let mut parts: Vec<&str> = repository.split('/').collect();
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        parts.remove(0);
    }
    patterns.iter().find_map(|pattern| {
        let fixed: Vec<&str> = pattern.split('/').collect();
        let fixed = &fixed[..fixed.len().saturating_sub(1)];
        if parts.len() <= fixed.len() {
            return None;
        }
        let mut org = None;
        for (want, got) in fixed.iter().zip(&parts) {
            match want.split_once("{org}") {
                Some((prefix, suffix)) => {
                    let name = got.strip_prefix(prefix)?.strip_suffix(suffix)?;
                    if name.is_empty() {
                        return None;
                    }
                    org = Some(name);
                }
                None if want == got => {}
                None => return None,
            }
        }
        org
    })
}

#[cfg(test)]
mod repository_org_tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_default_binds_the_first_component() {
        let d = pats(&[DEFAULT_REPOSITORY_PATTERN]);
        assert_eq!(repository_org(&d, "acme/app"), Some("acme"));
        assert_eq!(repository_org(&d, "acme/team/app"), Some("acme"));
        assert_eq!(
            repository_org(&d, "registry.example.com:5000/acme/app"),
            Some("acme")
        );
        assert_eq!(repository_org(&d, "acme"), None, "a bare name belongs to no org");
    }

    #[test]
    fn prefixes_suffixes_and_fixed_components() {
        let p = pats(&["team-{org}/*", "apps/{org}-prod/*"]);
        assert_eq!(repository_org(&p, "team-acme/app"), Some("acme"));
        assert_eq!(repository_org(&p, "apps/globex-prod/web"), Some("globex"));
        assert_eq!(repository_org(&p, "acme/app"), None);
        assert_eq!(repository_org(&p, "team-/app"), None);
        assert_eq!(repository_org(&p, "apps/globex-prod"), None);
        assert_eq!(repository_org(&p, "apps/globex/web"), None);
    }

    #[test]
    fn patterns_are_checked() {
        for ok in ["{org}/*", "team-{org}/*", "apps/{org}/*", "a/b/{org}.x/*"] {
            assert!(validate_repository_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "{org}",
            "{org}/app",
            "*/{org}/*",
            "{org}/{org}/*",
            "Team-{org}/*",
            "x/*",
            "/{org}/*",
            "",
        ] {
            assert!(validate_repository_pattern(bad).is_err(), "{bad}");
        }
    }
}
