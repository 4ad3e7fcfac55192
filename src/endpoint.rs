//! Where STS, IAM and KMS requests go: endpoint resolution (pure; the
//! environment comes in through [`Env`]).
//!
//! Overrides follow the AWS SDKs' order, first found wins: the explicit
//! setting (code, or the binary's `--endpoint`), `AWS_ENDPOINT_URL_<SERVICE>`,
//! `AWS_ENDPOINT_URL`, the service's `endpoint_url` in the `[services NAME]`
//! section the profile names, the profile's own `endpoint_url`.
//! `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` (or the profile's
//! `ignore_configured_endpoint_urls = true`; the variable wins when set)
//! drops all but the explicit setting. A service-specific variable applies
//! to its service only: `AWS_ENDPOINT_URL_STS` does not move IAM calls.
//!
//! STS: regional by default, `https://sts.{region}.{partition domain}`. With
//! `sts_regional_endpoints = legacy`, the regions that AWS served from the
//! global endpoint before regional endpoints became the default (and
//! `aws-global`) use `https://sts.amazonaws.com`, signed for `us-east-1`,
//! as the AWS SDKs do; other regions stay regional.
//!
//! IAM is global per partition (`https://iam.amazonaws.com` signed for
//! `us-east-1`; `https://iam.cn-north-1.amazonaws.com.cn` signed for
//! `cn-north-1`, ...), with the same overrides (`AWS_ENDPOINT_URL_IAM`,
//! `iam` in the services section).
//!
//! KMS is regional in every partition, `https://kms.{region}.{partition
//! domain}`; overrides: the explicit setting, `AWS_ENDPOINT_URL_KMS`,
//! `AWS_ENDPOINT_URL`, the profile's `endpoint_url`.
//!
//! Plain `http://` is refused unless the host is loopback (`127.0.0.0/8`,
//! `::1`, `localhost`): request bodies carry MFA codes and responses carry
//! secrets.

use std::net::{IpAddr, Ipv6Addr};

use crate::env::Env;
use crate::error::{Error, Result};

/// A resolved endpoint: where to POST, the `Host` header, and the region to
/// sign for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Scheme, authority and path (at least `/`), no query.
    pub url: String,
    /// The `Host` header value: host, plus `:port` when not the scheme's
    /// default.
    pub host: String,
    /// The SigV4 signing region.
    pub signing_region: String,
    /// True when the host is loopback.
    pub loopback: bool,
}

/// The inputs that decide the STS endpoint.
#[derive(Clone, Debug, Default)]
pub(crate) struct StsEndpointConfig<'a> {
    pub region: &'a str,
    pub explicit: Option<&'a str>,
    pub profile: ProfileEndpoints<'a>,
    pub legacy_global: bool,
}

/// What a profile says about endpoints, for one service.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProfileEndpoints<'a> {
    /// The profile's `endpoint_url` (every service).
    pub endpoint_url: Option<&'a str>,
    /// The service's `endpoint_url` in the `[services NAME]` section.
    pub service_endpoint_url: Option<&'a str>,
    /// `ignore_configured_endpoint_urls = true`.
    pub ignore_configured: bool,
}

/// The configured endpoint URL of a service, in the SDKs' order;
/// `env_var` is its `AWS_ENDPOINT_URL_<SERVICE>`.
fn configured_url(
    explicit: Option<&str>,
    env_var: &str,
    profile: &ProfileEndpoints<'_>,
    env: &Env,
) -> Option<String> {
    if let Some(url) = explicit {
        return Some(url.to_owned());
    }
    let ignore = match env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
        Some(v) => v.trim().eq_ignore_ascii_case("true"),
        None => profile.ignore_configured,
    };
    if ignore {
        return None;
    }
    env.get(env_var)
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .or_else(|| profile.service_endpoint_url.map(str::to_owned))
        .or_else(|| profile.endpoint_url.map(str::to_owned))
}

/// Regions that used the global STS endpoint under
/// `sts_regional_endpoints = legacy`.
const LEGACY_GLOBAL_REGIONS: &[&str] = &[
    "aws-global",
    "ap-northeast-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// The DNS suffix of the partition a region belongs to.
fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("us-isob-") {
        "sc2s.sgov.gov"
    } else if region.starts_with("us-isof-") {
        "csp.hci.ic.gov"
    } else if region.starts_with("us-iso-") {
        "c2s.ic.gov"
    } else if region.starts_with("eu-isoe-") {
        "cloud.adc-e.uk"
    } else {
        // aws and aws-us-gov
        "amazonaws.com"
    }
}

/// Region names go into host names: only `[a-z0-9-]`, 1..=64 bytes.
pub(crate) fn validate_region(region: &str) -> Result<()> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "region",
            format!("`{region}` is not a region name (expected e.g. `us-east-1`)"),
        ))
    }
}

/// Resolves the STS endpoint.
pub(crate) fn resolve_sts(cfg: &StsEndpointConfig<'_>, env: &Env) -> Result<Endpoint> {
    validate_region(cfg.region)?;
    if let Some(url) = configured_url(cfg.explicit, "AWS_ENDPOINT_URL_STS", &cfg.profile, env) {
        return parse_endpoint(&url, cfg.region);
    }
    let legacy = cfg.legacy_global && LEGACY_GLOBAL_REGIONS.contains(&cfg.region);
    if legacy || cfg.region == "aws-global" {
        return parse_endpoint("https://sts.amazonaws.com", "us-east-1");
    }
    parse_endpoint(
        &format!("https://sts.{}.{}", cfg.region, dns_suffix(cfg.region)),
        cfg.region,
    )
}

/// Resolves the IAM endpoint for the partition of `region`.
pub(crate) fn resolve_iam(
    region: &str,
    explicit: Option<&str>,
    profile: &ProfileEndpoints<'_>,
    env: &Env,
) -> Result<Endpoint> {
    validate_region(region)?;
    let (default_url, signing_region) = iam_default(region);
    let overridden = configured_url(explicit, "AWS_ENDPOINT_URL_IAM", profile, env);
    parse_endpoint(overridden.as_deref().unwrap_or(default_url), signing_region)
}

/// Resolves the KMS endpoint: `https://kms.{region}.{partition domain}`,
/// signed for `region` (KMS keys live in one region). Overrides, first
/// found wins: `explicit`, `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, the
/// profile's `endpoint_url`; an override is still signed for `region`.
pub(crate) fn resolve_kms(
    region: &str,
    explicit: Option<&str>,
    profile_endpoint_url: Option<&str>,
    env: &Env,
) -> Result<Endpoint> {
    validate_region(region)?;
    let overridden = explicit
        .map(str::to_owned)
        .or_else(|| env.get("AWS_ENDPOINT_URL_KMS"))
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .or_else(|| profile_endpoint_url.map(str::to_owned));
    match overridden {
        Some(url) => parse_endpoint(&url, region),
        None => parse_endpoint(
            &format!("https://kms.{region}.{}", dns_suffix(region)),
            region,
        ),
    }
}

fn iam_default(region: &str) -> (&'static str, &'static str) {
    if region.starts_with("cn-") {
        ("https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1")
    } else if region.starts_with("us-gov-") {
        ("https://iam.us-gov.amazonaws.com", "us-gov-west-1")
    } else if region.starts_with("us-isob-") {
        ("https://iam.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1")
    } else if region.starts_with("us-iso-") {
        ("https://iam.us-iso-east-1.c2s.ic.gov", "us-iso-east-1")
    } else {
        ("https://iam.amazonaws.com", "us-east-1")
    }
}

/// Parses and checks an endpoint URL: `http` or `https`, a host, no user
/// info, query or fragment; `http` only to loopback.
pub(crate) fn parse_endpoint(url: &str, signing_region: &str) -> Result<Endpoint> {
    let refuse = |message: &str| Error::InvalidEndpoint {
        url: shown_url(url),
        message: message.to_owned(),
    };
    let trimmed = url.trim();
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| refuse("not a URL (expected https://host[:port][/path])"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(refuse("scheme must be https (or http to a loopback host)")),
    };
    if rest.contains(['?', '#']) {
        return Err(refuse("query strings and fragments are not allowed"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(refuse("user info in the URL is not allowed"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("the path contains whitespace"));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| refuse("invalid host or port"))?;
    let host = host.to_ascii_lowercase();
    let loopback = is_loopback(&host);
    if scheme == "http" && !loopback {
        return Err(refuse(
            "plain http is only allowed to a loopback host (127.0.0.0/8, ::1, localhost)",
        ));
    }
    let host_header = match port {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host.clone(),
    };
    Ok(Endpoint {
        url: format!("{scheme}://{host_header}{path}"),
        host: host_header,
        signing_region: signing_region.to_owned(),
        loopback,
    })
}

/// `url` as a message shows it: user info (`user:password@`) replaced by
/// `***@`, and at most a readable length.
pub(crate) fn shown_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let shown = match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    };
    crate::error::cap(&shown).into_owned()
}

/// `host[:port]` or `[v6][:port]`; the host keeps IPv6 brackets.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        host[1..end].parse::<Ipv6Addr>().ok()?;
        match &authority[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
    };
    Some((host, port))
}

fn is_loopback(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The proxy URL for `target`: `HTTPS_PROXY` (or `https_proxy`,
/// `ALL_PROXY`, `all_proxy`) unless `NO_PROXY` (or `no_proxy`) names the
/// host; never for a loopback endpoint.
pub(crate) fn proxy_for(env: &Env, target: &Endpoint) -> Option<String> {
    if target.loopback {
        return None;
    }
    let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .find_map(|k| env.get(k))?;
    let no_proxy = env
        .get("NO_PROXY")
        .or_else(|| env.get("no_proxy"))
        .unwrap_or_default();
    (!no_proxy_matches(&no_proxy, &target.host)).then_some(proxy)
}

/// True when the comma-separated `NO_PROXY` list names `host` (a `Host`
/// value, port allowed): `*`, the host itself, or a parent domain written
/// `example.com`, `.example.com` or `*.example.com`.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = strip_port(host).to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let domain = strip_port(entry.trim_start_matches('*').trim_start_matches('.'))
                .to_ascii_lowercase();
            !domain.is_empty()
                && (host == domain
                    || host
                        .strip_suffix(&domain)
                        .is_some_and(|rest| rest.ends_with('.')))
        })
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn refused_urls_hide_user_info_and_stay_short() {
        use super::shown_url;
        assert_eq!(
            shown_url("https://user:hunter2@sts.example.com/x"),
            "https://***@sts.example.com/x"
        );
        assert_eq!(
            shown_url("http://a@b@127.0.0.1:9/"),
            "http://***@127.0.0.1:9/"
        );
        // An `@` in the path is not user info.
        assert_eq!(shown_url("https://h/p@q"), "https://h/p@q");
        let long = format!("https://{}.example.com/", "h".repeat(10_000));
        let shown = shown_url(&long);
        assert!(shown.len() < 200 && shown.ends_with(&format!("... ({} bytes)", long.len())));
        let e = super::parse_endpoint("ftp://u:secretpw@host/", "us-east-1").unwrap_err();
        assert!(!e.to_string().contains("secretpw"), "{e}");
    }

    use super::*;

    #[test]
    fn kms_endpoints_by_partition_and_overrides() {
        let none = Env::from_pairs::<&str, &str>([]);
        let url = |region, explicit, profile, env: &Env| {
            resolve_kms(region, explicit, profile, env)
                .map(|e| (e.url, e.signing_region))
                .ok()
        };
        let own = |u: &str, r: &str| Some((u.to_owned(), r.to_owned()));
        assert_eq!(
            url("eu-west-1", None, None, &none),
            own("https://kms.eu-west-1.amazonaws.com/", "eu-west-1")
        );
        assert_eq!(
            url("cn-north-1", None, None, &none),
            own("https://kms.cn-north-1.amazonaws.com.cn/", "cn-north-1")
        );
        assert_eq!(
            url("us-gov-west-1", None, None, &none),
            own("https://kms.us-gov-west-1.amazonaws.com/", "us-gov-west-1")
        );
        assert_eq!(
            url("us-isob-east-1", None, None, &none),
            own(
                "https://kms.us-isob-east-1.sc2s.sgov.gov/",
                "us-isob-east-1"
            )
        );
        let both = Env::from_pairs([
            ("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:2"),
        ]);
        let general = Env::from_pairs([("AWS_ENDPOINT_URL", "http://localhost:2")]);
        assert_eq!(
            url("us-east-1", None, Some("http://127.0.0.1:3"), &both),
            own("http://127.0.0.1:1/", "us-east-1")
        );
        assert_eq!(
            url("us-east-1", None, Some("http://127.0.0.1:3"), &general),
            own("http://localhost:2/", "us-east-1")
        );
        assert_eq!(
            url("us-east-1", None, Some("http://127.0.0.1:3"), &none),
            own("http://127.0.0.1:3/", "us-east-1")
        );
        assert_eq!(
            url("us-east-1", Some("http://[::1]:4"), None, &both),
            own("http://[::1]:4/", "us-east-1")
        );
        assert!(matches!(
            resolve_kms("us-east-1", Some("http://kms.example.com"), None, &none),
            Err(Error::InvalidEndpoint { .. })
        ));
        assert!(resolve_kms("US_EAST", None, None, &none).is_err());
    }

    #[test]
    fn no_proxy_lists() {
        let h = "sts.us-east-1.amazonaws.com";
        assert!(no_proxy_matches("*", h));
        assert!(no_proxy_matches("localhost, amazonaws.com", h));
        assert!(no_proxy_matches(".amazonaws.com", h));
        assert!(no_proxy_matches("*.AMAZONAWS.com", h));
        assert!(no_proxy_matches(h, &format!("{h}:443")));
        assert!(!no_proxy_matches("ws.com", h));
        assert!(!no_proxy_matches("", h));
        assert!(!no_proxy_matches("example.com,.", h));
        assert!(no_proxy_matches("[::1]", "[::1]:8080"));
    }

    #[test]
    fn proxy_from_env_unless_no_proxy_or_loopback() {
        let remote = Endpoint {
            url: "https://sts.eu-west-1.amazonaws.com/".into(),
            host: "sts.eu-west-1.amazonaws.com".into(),
            signing_region: "eu-west-1".into(),
            loopback: false,
        };
        let env = Env::from_pairs([("https_proxy", "http://127.0.0.1:3128")]);
        assert_eq!(
            proxy_for(&env, &remote).as_deref(),
            Some("http://127.0.0.1:3128")
        );
        let env = Env::from_pairs([
            ("HTTPS_PROXY", "http://127.0.0.1:3128"),
            ("NO_PROXY", "amazonaws.com"),
        ]);
        assert_eq!(proxy_for(&env, &remote), None);
        let local = Endpoint {
            url: "http://127.0.0.1:9000/".into(),
            host: "127.0.0.1:9000".into(),
            signing_region: "us-east-1".into(),
            loopback: true,
        };
        let env = Env::from_pairs([("HTTPS_PROXY", "http://127.0.0.1:3128")]);
        assert_eq!(proxy_for(&env, &local), None);
        assert_eq!(proxy_for(&Env::from_pairs([("X", "1")]), &remote), None);
    }

    fn sts(region: &str) -> StsEndpointConfig<'_> {
        StsEndpointConfig {
            region,
            ..Default::default()
        }
    }

    fn no_env() -> Env {
        Env::from_pairs::<&str, &str>([])
    }

    #[test]
    fn regional_by_partition() {
        let url = |r| resolve_sts(&sts(r), &no_env()).unwrap().url;
        assert_eq!(url("us-east-1"), "https://sts.us-east-1.amazonaws.com/");
        assert_eq!(url("eu-west-3"), "https://sts.eu-west-3.amazonaws.com/");
        assert_eq!(
            url("cn-north-1"),
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            url("us-gov-west-1"),
            "https://sts.us-gov-west-1.amazonaws.com/"
        );
        assert_eq!(
            url("us-iso-east-1"),
            "https://sts.us-iso-east-1.c2s.ic.gov/"
        );
        assert_eq!(
            url("us-isob-east-1"),
            "https://sts.us-isob-east-1.sc2s.sgov.gov/"
        );
        assert_eq!(url("aws-global"), "https://sts.amazonaws.com/");
        let e = resolve_sts(&sts("cn-northwest-1"), &no_env()).unwrap();
        assert_eq!(e.signing_region, "cn-northwest-1");
        assert_eq!(e.host, "sts.cn-northwest-1.amazonaws.com.cn");
    }

    #[test]
    fn legacy_uses_global_for_legacy_regions_only() {
        let legacy = |region| StsEndpointConfig {
            region,
            legacy_global: true,
            ..Default::default()
        };
        let e = resolve_sts(&legacy("eu-west-1"), &no_env()).unwrap();
        assert_eq!(e.url, "https://sts.amazonaws.com/");
        assert_eq!(e.signing_region, "us-east-1");
        let e = resolve_sts(&legacy("af-south-1"), &no_env()).unwrap();
        assert_eq!(e.url, "https://sts.af-south-1.amazonaws.com/");
        let e = resolve_sts(&legacy("cn-north-1"), &no_env()).unwrap();
        assert_eq!(e.url, "https://sts.cn-north-1.amazonaws.com.cn/");
    }

    #[test]
    fn override_order() {
        let env_both = Env::from_pairs([
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1001"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1002"),
        ]);
        let env_generic = Env::from_pairs([("AWS_ENDPOINT_URL", "http://127.0.0.1:1002")]);
        let mut cfg = StsEndpointConfig {
            region: "eu-west-1",
            explicit: Some("http://localhost:1000/"),
            profile: ProfileEndpoints {
                endpoint_url: Some("http://[::1]:1003"),
                ..Default::default()
            },
            legacy_global: true,
        };
        assert_eq!(
            resolve_sts(&cfg, &env_both).unwrap().url,
            "http://localhost:1000/"
        );
        cfg.explicit = None;
        let e = resolve_sts(&cfg, &env_both).unwrap();
        assert_eq!(e.url, "http://127.0.0.1:1001/");
        assert_eq!(e.signing_region, "eu-west-1");
        assert_eq!(
            resolve_sts(&cfg, &env_generic).unwrap().url,
            "http://127.0.0.1:1002/"
        );
        let e = resolve_sts(&cfg, &no_env()).unwrap();
        assert_eq!(e.url, "http://[::1]:1003/");
        assert_eq!(e.host, "[::1]:1003");
        // An empty variable counts as unset.
        let env_empty = Env::from_pairs([("AWS_ENDPOINT_URL_STS", "")]);
        assert_eq!(
            resolve_sts(&cfg, &env_empty).unwrap().url,
            "http://[::1]:1003/"
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://127.3.4.5",
            "http://localhost:8080/sts",
            "HTTP://LOCALHOST",
            "http://[::1]:9000",
            "https://sts.example.com",
            "https://10.0.0.1:8443",
        ] {
            assert!(parse_endpoint(ok, "us-east-1").is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://sts.amazonaws.com",
            "http://localhost.evil.com",
            "http://128.0.0.1",
            "http://[::2]",
            "ftp://127.0.0.1",
            "127.0.0.1:5000",
            "https://user:pw@host",
            "https://host?x=1",
            "https://host:99999",
            "https://host:0",
            "https://",
            "https://ho st",
        ] {
            let e = parse_endpoint(bad, "us-east-1").unwrap_err();
            assert!(matches!(e, Error::InvalidEndpoint { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn host_header_drops_default_port() {
        let e = parse_endpoint("https://sts.example.com:443/base", "r").unwrap();
        assert_eq!(
            (e.host.as_str(), e.url.as_str()),
            ("sts.example.com", "https://sts.example.com/base")
        );
        let e = parse_endpoint("http://127.0.0.1:80", "r").unwrap();
        assert_eq!(e.host, "127.0.0.1");
        assert!(e.loopback);
    }

    #[test]
    fn bad_region_refused() {
        for r in ["", "US-EAST-1", "us-east-1.evil.com", "a/b", "-x"] {
            let e = resolve_sts(&sts(r), &no_env()).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidInput {
                        field: "region",
                        ..
                    }
                ),
                "{r}"
            );
        }
    }

    #[test]
    fn iam_endpoints() {
        let e = resolve_iam("eu-west-1", None, &ProfileEndpoints::default(), &no_env()).unwrap();
        assert_eq!(
            (e.url.as_str(), e.signing_region.as_str()),
            ("https://iam.amazonaws.com/", "us-east-1")
        );
        let e = resolve_iam(
            "cn-northwest-1",
            None,
            &ProfileEndpoints::default(),
            &no_env(),
        )
        .unwrap();
        assert_eq!(
            (e.url.as_str(), e.signing_region.as_str()),
            ("https://iam.cn-north-1.amazonaws.com.cn/", "cn-north-1")
        );
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:2"),
        ]);
        assert_eq!(
            resolve_iam("us-east-1", None, &ProfileEndpoints::default(), &env)
                .unwrap()
                .url,
            "http://127.0.0.1:2/"
        );
        let env = Env::from_pairs([("AWS_ENDPOINT_URL_IAM", "http://127.0.0.1:3")]);
        let p4 = ProfileEndpoints {
            endpoint_url: Some("http://127.0.0.1:4"),
            ..Default::default()
        };
        let e = resolve_iam("us-west-2", None, &p4, &env).unwrap();
        assert_eq!(
            (e.url.as_str(), e.signing_region.as_str()),
            ("http://127.0.0.1:3/", "us-east-1")
        );
        let e = resolve_iam("us-west-2", Some("http://127.0.0.1:5"), &p4, &env).unwrap();
        assert_eq!(e.url, "http://127.0.0.1:5/");
        let e = resolve_iam("us-west-2", None, &p4, &no_env()).unwrap();
        assert_eq!(e.url, "http://127.0.0.1:4/");
    }

    /// The SDKs' order, for each service: explicit, AWS_ENDPOINT_URL_<SVC>,
    /// AWS_ENDPOINT_URL, services section, profile endpoint_url; and
    /// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS / ignore_configured_endpoint_urls.
    #[test]
    fn sdk_endpoint_order_and_ignore_configured() {
        let profile = ProfileEndpoints {
            endpoint_url: Some("http://127.0.0.1:5"),
            service_endpoint_url: Some("http://127.0.0.1:4"),
            ignore_configured: false,
        };
        let sts = |env: &Env, p: &ProfileEndpoints<'_>, explicit| {
            let cfg = StsEndpointConfig {
                region: "eu-west-1",
                explicit,
                profile: *p,
                legacy_global: false,
            };
            resolve_sts(&cfg, env).unwrap().url
        };
        let iam = |env: &Env, p: &ProfileEndpoints<'_>| {
            resolve_iam("eu-west-1", None, p, env).unwrap().url
        };
        let all = Env::from_pairs([
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2"),
            ("AWS_ENDPOINT_URL_IAM", "http://127.0.0.1:12"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:3"),
        ]);
        assert_eq!(
            sts(&all, &profile, Some("http://127.0.0.1:1")),
            "http://127.0.0.1:1/"
        );
        assert_eq!(sts(&all, &profile, None), "http://127.0.0.1:2/");
        assert_eq!(iam(&all, &profile), "http://127.0.0.1:12/");
        // The STS variable moves STS only.
        let sts_only = Env::from_pairs([("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2")]);
        assert_eq!(
            sts(&sts_only, &ProfileEndpoints::default(), None),
            "http://127.0.0.1:2/"
        );
        assert_eq!(
            iam(&sts_only, &ProfileEndpoints::default()),
            "https://iam.amazonaws.com/"
        );
        let global = Env::from_pairs([("AWS_ENDPOINT_URL", "http://127.0.0.1:3")]);
        assert_eq!(sts(&global, &profile, None), "http://127.0.0.1:3/");
        assert_eq!(iam(&global, &profile), "http://127.0.0.1:3/");
        assert_eq!(sts(&no_env(), &profile, None), "http://127.0.0.1:4/");
        let no_service = ProfileEndpoints {
            service_endpoint_url: None,
            ..profile
        };
        assert_eq!(sts(&no_env(), &no_service, None), "http://127.0.0.1:5/");
        // Ignoring configured URLs: only the explicit one counts.
        let ignore = Env::from_pairs([
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:3"),
        ]);
        assert_eq!(
            sts(&ignore, &profile, None),
            "https://sts.eu-west-1.amazonaws.com/"
        );
        assert_eq!(iam(&ignore, &profile), "https://iam.amazonaws.com/");
        assert_eq!(
            sts(&ignore, &profile, Some("http://127.0.0.1:1")),
            "http://127.0.0.1:1/"
        );
        let ignoring = ProfileEndpoints {
            ignore_configured: true,
            ..profile
        };
        assert_eq!(
            sts(&global, &ignoring, None),
            "https://sts.eu-west-1.amazonaws.com/"
        );
        // The variable, when set, wins over the profile's setting.
        let dont = Env::from_pairs([
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:3"),
        ]);
        assert_eq!(sts(&dont, &ignoring, None), "http://127.0.0.1:3/");
    }
}
