//! How a profile resolves to a chain: static keys, then zero or more roles
//! to assume in turn.
//!
//! Pure: works on parsed [`ProfileFiles`]. The rules follow the AWS SDKs:
//!
//! - A profile with `role_arn` is a hop. Its credentials come from
//!   `source_profile`, which is followed; a profile naming itself as
//!   `source_profile` uses its own static keys.
//! - After the first profile, a profile with complete static keys
//!   (`aws_access_key_id` + `aws_secret_access_key`) ends the chain with
//!   those keys, even if it also has `role_arn`.
//! - A profile without `role_arn` must have static keys.
//! - Visiting a profile twice is a loop ([`Error::ProfileLoop`]).
//! - Web identity (`web_identity_token_file`), SSO (`sso_*` keys),
//!   `credential_source` and `credential_process` are
//!   [`Error::Unsupported`]: stslib does not fetch those credentials, and
//!   says so rather than silently using something else.

use crate::credentials::AccessKey;
use crate::error::{Error, Result};
use crate::limits::{self, DEFAULT_ROLE_LIFETIME};
use crate::profile::{Profile, ProfileFiles, Property};
use crate::secret::Secret;
use crate::sts::AssumeRoleRequest;

const DURATION_RANGE: std::ops::RangeInclusive<u32> = limits::ROLE_SECONDS;

/// Where a profile's credentials come from: static keys, then the roles to
/// assume with them, in order.
///
/// ```
/// use stslib::profile::ProfileFiles;
/// let files = ProfileFiles::from_strings(
///     "[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/Admin\n\
///      source_profile = base\nmfa_serial = arn:aws:iam::111111111111:mfa/me\n",
///     "[base]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\n",
/// )?;
/// let chain = files.chain("admin")?;
/// assert_eq!(chain.source.profile, "base");
/// assert_eq!(chain.source.keys.access_key_id, "AKIAEXAMPLE");
/// assert_eq!(chain.roles.len(), 1);
/// assert_eq!(chain.roles[0].role_arn, "arn:aws:iam::123456789012:role/Admin");
/// assert_eq!(chain.roles[0].mfa_serial.as_deref(), Some("arn:aws:iam::111111111111:mfa/me"));
/// # Ok::<(), stslib::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Chain {
    /// The static keys at the root of the chain.
    pub source: SourceKeys,
    /// The roles to assume, first to last: the first with `source`'s keys,
    /// each next one with the credentials of the one before. Empty when the
    /// profile itself holds static keys.
    pub roles: Vec<RoleHop>,
}

/// Static keys from a profile. `Debug` redacts the secret and token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceKeys {
    /// The profile holding the keys.
    pub profile: String,
    /// `aws_access_key_id`, `aws_secret_access_key` and, if set,
    /// `aws_session_token`.
    pub keys: AccessKey,
    /// `aws_account_id`, if set.
    pub account_id: Option<String>,
}

/// One role to assume, from a profile with `role_arn`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleHop {
    /// The profile that names the role.
    pub profile: String,
    /// `role_arn`.
    pub role_arn: String,
    /// `source_profile`: the profile whose credentials assume this role.
    pub source_profile: String,
    /// `mfa_serial`, if set.
    pub mfa_serial: Option<String>,
    /// `external_id`, if set.
    pub external_id: Option<String>,
    /// `role_session_name`, if set.
    pub role_session_name: Option<String>,
    /// `duration_seconds`, if set (checked to be 900 to 43200).
    pub duration_seconds: Option<u32>,
    /// `region` of the profile, if set.
    pub region: Option<String>,
}

impl Chain {
    /// The `AssumeRole` request of each hop, first to last: the one walk a
    /// [`Session`](crate::Session) and `stslib whoami` share. A hop's session
    /// name is its `role_session_name`, else `sts-<profile>` (made valid);
    /// its lifetime its `duration_seconds`, else
    /// [`DEFAULT_ROLE_LIFETIME`]; its `external_id` when set. With
    /// `mfa_code`, each hop that names `mfa_serial` sends the device and the
    /// code (a chain started from long-lived keys); without, none does (a
    /// session's chains start from its session token, which carries MFA).
    ///
    /// ```
    /// use stslib::profile::ProfileFiles;
    /// let files = ProfileFiles::from_strings(
    ///     "[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/Ops\nsource_profile = me\n\
    ///      mfa_serial = arn:aws:iam::123456789012:mfa/me\n",
    ///     "[me]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\n",
    /// )?;
    /// let chain = files.chain("ops")?;
    /// assert_eq!(chain.mfa_hop().map(|h| h.profile.as_str()), Some("ops"));
    /// // Session name `sts-ops`, 3600 s, the device and the code:
    /// let reqs = chain.assume_role_requests(Some("123456"));
    /// assert_eq!(reqs.len(), 1);
    /// # Ok::<(), stslib::Error>(())
    /// ```
    pub fn assume_role_requests(&self, mfa_code: Option<&str>) -> Vec<AssumeRoleRequest> {
        self.roles
            .iter()
            .map(|hop| {
                let name = hop
                    .role_session_name
                    .clone()
                    .unwrap_or_else(|| default_session_name(&hop.profile));
                let mut req =
                    AssumeRoleRequest::new(&hop.role_arn, name).duration_seconds(hop_lifetime(hop));
                if let Some(id) = &hop.external_id {
                    req = req.external_id(id);
                }
                if let (Some(serial), Some(code)) = (&hop.mfa_serial, mfa_code) {
                    req = req.serial_number(serial).token_code(code);
                }
                req
            })
            .collect()
    }

    /// The first hop that names `mfa_serial`, if any: a chain walked from
    /// long-lived keys needs a code for it.
    pub fn mfa_hop(&self) -> Option<&RoleHop> {
        self.roles.iter().find(|h| h.mfa_serial.is_some())
    }
}

/// The lifetime asked for a hop: its `duration_seconds`, else the default.
pub(crate) fn hop_lifetime(hop: &RoleHop) -> u32 {
    hop.duration_seconds
        .unwrap_or(DEFAULT_ROLE_LIFETIME.as_secs() as u32)
}

/// `sts-<profile>`, made a valid RoleSessionName (see [`limits`]).
pub(crate) fn default_session_name(profile: &str) -> String {
    let mut name: String = format!("sts-{profile}")
        .chars()
        .map(|c| {
            if limits::is_session_name_char(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(*limits::ROLE_SESSION_NAME_LEN.end());
    name
}

impl ProfileFiles {
    /// Resolves `profile` into static keys and the roles to assume (see the
    /// [`Chain`] example).
    ///
    /// Errors: [`Error::ProfileNotFound`] for an unknown `profile`;
    /// [`Error::InvalidProfile`] naming the profile and key for a missing
    /// source profile, missing or partial keys, `role_arn` without
    /// `source_profile`, or a bad `duration_seconds`;
    /// [`Error::ProfileLoop`]; [`Error::Unsupported`] for web identity, SSO,
    /// `credential_source` and `credential_process`.
    pub fn chain(&self, profile: &str) -> Result<Chain> {
        let mut visited: Vec<String> = Vec::new();
        let mut roles = Vec::new();
        let mut current = self.profile(profile)?;
        let source = loop {
            let name = current.name();
            if visited.iter().any(|v| v == name) {
                visited.push(name.to_owned());
                return Err(Error::ProfileLoop { chain: visited });
            }
            visited.push(name.to_owned());
            if visited.len() > 1 {
                if let Ok(Some(keys)) = static_keys(current) {
                    break keys;
                }
            }
            if current.get("web_identity_token_file").is_some() {
                return Err(unsupported(
                    current,
                    "web identity (web_identity_token_file)",
                ));
            }
            let Some(role_arn) = current.get("role_arn") else {
                break base_keys(current)?;
            };
            let source_profile = current.get("source_profile");
            let credential_source = current.get("credential_source");
            let source_profile = match (source_profile, credential_source) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid_profile(
                        name,
                        Some("credential_source"),
                        "profile contained both source_profile and credential_source; \
                         only one may be set",
                    ))
                }
                (None, Some(_)) => return Err(unsupported(current, "credential_source")),
                (None, None) => {
                    return Err(Error::invalid_profile(
                        name,
                        Some("source_profile"),
                        "profile must contain `source_profile` to go with `role_arn`",
                    ))
                }
                (Some(s), None) => s,
            };
            roles.push(hop(current, role_arn, source_profile)?);
            if source_profile == name {
                break required_static_keys(current)?;
            }
            current = self.profile(source_profile).map_err(|_| {
                let available: Vec<_> = self.profile_names().collect();
                Error::invalid_profile(
                    name,
                    Some("source_profile"),
                    format!(
                        "could not find source profile {source_profile} referenced from {name} \
                         ({}); available profiles: {}",
                        origin(current, "source_profile"),
                        available.join(", ")
                    ),
                )
            })?;
        };
        roles.reverse();
        Ok(Chain { source, roles })
    }
}

fn unsupported(profile: &Profile, feature: &str) -> Error {
    Error::Unsupported {
        profile: profile.name().to_owned(),
        feature: feature.to_owned(),
    }
}

/// `file:line` of `key` in `profile`, for messages.
fn origin(profile: &Profile, key: &str) -> String {
    profile
        .property(key)
        .map(|p: &Property| p.origin().to_string())
        .unwrap_or_default()
}

/// The credentials of a profile at the end of the chain.
fn base_keys(profile: &Profile) -> Result<SourceKeys> {
    if profile.get("credential_source").is_some() {
        return Err(unsupported(profile, "credential_source"));
    }
    if profile.properties().any(|p| p.key().starts_with("sso_")) {
        return Err(unsupported(profile, "SSO (sso_* keys)"));
    }
    match static_keys(profile)? {
        Some(keys) => Ok(keys),
        None if profile.get("credential_process").is_some() => {
            Err(unsupported(profile, "credential_process"))
        }
        None => Err(no_credentials(profile)),
    }
}

fn required_static_keys(profile: &Profile) -> Result<SourceKeys> {
    static_keys(profile)?.ok_or_else(|| no_credentials(profile))
}

fn no_credentials(profile: &Profile) -> Error {
    Error::invalid_profile(
        profile.name(),
        None,
        format!(
            "profile `{}` did not contain credential information: expected \
             `aws_access_key_id` and `aws_secret_access_key`, or `role_arn` with `source_profile`",
            profile.name()
        ),
    )
}

/// `None` when the profile has none of the static key properties; an error
/// when it has only some of them.
fn static_keys(profile: &Profile) -> Result<Option<SourceKeys>> {
    let id = profile.get("aws_access_key_id");
    let secret = profile.get("aws_secret_access_key");
    let token = profile.get("aws_session_token");
    let missing = |key: &str, other: &str| {
        Error::invalid_profile(
            profile.name(),
            Some(key),
            format!(
                "profile missing {key} (`{other}` is set at {})",
                origin(profile, other)
            ),
        )
    };
    match (id, secret, token) {
        (None, None, None) => Ok(None),
        (Some(id), Some(secret), token) => Ok(Some(SourceKeys {
            profile: profile.name().to_owned(),
            keys: AccessKey {
                access_key_id: id.to_owned(),
                secret_access_key: Secret::new(secret),
                session_token: token.map(Secret::new),
            },
            account_id: profile.get("aws_account_id").map(str::to_owned),
        })),
        (Some(_), None, _) => Err(missing("aws_secret_access_key", "aws_access_key_id")),
        (None, Some(_), _) => Err(missing("aws_access_key_id", "aws_secret_access_key")),
        (None, None, Some(_)) => Err(missing("aws_access_key_id", "aws_session_token")),
    }
}

fn hop(profile: &Profile, role_arn: &str, source_profile: &str) -> Result<RoleHop> {
    let get = |key: &str| profile.get(key).map(str::to_owned);
    let duration_seconds = match profile.get("duration_seconds") {
        None => None,
        Some(text) => match text.parse::<u32>() {
            Ok(d) if DURATION_RANGE.contains(&d) => Some(d),
            _ => {
                return Err(Error::invalid_profile(
                    profile.name(),
                    Some("duration_seconds"),
                    format!(
                        "`{text}` is not a whole number of seconds from {} to {} ({})",
                        DURATION_RANGE.start(),
                        DURATION_RANGE.end(),
                        origin(profile, "duration_seconds")
                    ),
                ))
            }
        },
    };
    Ok(RoleHop {
        profile: profile.name().to_owned(),
        role_arn: role_arn.to_owned(),
        source_profile: source_profile.to_owned(),
        mfa_serial: get("mfa_serial"),
        external_id: get("external_id"),
        role_session_name: get("role_session_name"),
        duration_seconds,
        region: get("region"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(config: &str, credentials: &str) -> ProfileFiles {
        ProfileFiles::from_strings(config, credentials).unwrap()
    }

    #[test]
    fn hop_fields() {
        let f = files(
            "[profile r]\nrole_arn = arn:r\nsource_profile = b\nmfa_serial = arn:mfa\n\
             external_id = ext\nrole_session_name = me\nduration_seconds = 3600\nregion = eu-west-1\n",
            "[b]\naws_access_key_id = AK\naws_secret_access_key = SK\naws_session_token = T\n",
        );
        let c = f.chain("r").unwrap();
        assert_eq!(
            c.roles,
            [RoleHop {
                profile: "r".into(),
                role_arn: "arn:r".into(),
                source_profile: "b".into(),
                mfa_serial: Some("arn:mfa".into()),
                external_id: Some("ext".into()),
                role_session_name: Some("me".into()),
                duration_seconds: Some(3600),
                region: Some("eu-west-1".into()),
            }]
        );
        assert_eq!(c.source.keys.session_token.as_ref().unwrap().expose(), "T");
        assert!(!format!("{c:?}").contains("SK"));
    }

    #[test]
    fn default_session_names_are_valid() {
        assert_eq!(default_session_name("prod"), "sts-prod");
        assert_eq!(default_session_name("a b/c"), "sts-a-b-c");
        assert_eq!(default_session_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn one_walk_names_sizes_and_signs_each_hop() {
        let f = files(
            "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = b\nrole_session_name = mine\n\
             duration_seconds = 900\nexternal_id = ext\n\
             [profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = c\nmfa_serial = arn:aws:iam::123456789012:mfa/me\n",
            "[c]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
        );
        let chain = f.chain("a").unwrap();
        assert_eq!(chain.mfa_hop().map(|h| h.profile.as_str()), Some("b"));
        let param = |r: &AssumeRoleRequest, key: &str| {
            r.params()
                .unwrap()
                .into_iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        };
        let with = chain.assume_role_requests(Some("123456"));
        let names: Vec<_> = with.iter().map(|r| param(r, "RoleSessionName")).collect();
        assert_eq!(names, [Some("sts-b".into()), Some("mine".into())]);
        assert_eq!(param(&with[0], "DurationSeconds").as_deref(), Some("3600"));
        assert_eq!(param(&with[1], "DurationSeconds").as_deref(), Some("900"));
        assert_eq!(param(&with[1], "ExternalId").as_deref(), Some("ext"));
        assert_eq!(
            param(&with[0], "SerialNumber").as_deref(),
            Some("arn:aws:iam::123456789012:mfa/me")
        );
        assert_eq!(param(&with[0], "TokenCode").as_deref(), Some("123456"));
        assert_eq!(param(&with[1], "SerialNumber"), None);
        let without = chain.assume_role_requests(None);
        assert!(without.iter().all(|r| param(r, "SerialNumber").is_none()));
    }

    #[test]
    fn static_profile_has_no_roles() {
        let f = files(
            "",
            "[b]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
        );
        let c = f.chain("b").unwrap();
        assert_eq!(c.source.profile, "b");
        assert!(c.roles.is_empty());
    }

    #[test]
    fn bad_duration_names_key_and_line() {
        for bad in ["abc", "60", "-1", "99999999999"] {
            let f = files(
                &format!(
                    "[profile r]\nrole_arn = a\nsource_profile = b\nduration_seconds = {bad}\n"
                ),
                "[b]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
            );
            match f.chain("r").unwrap_err() {
                Error::InvalidProfile {
                    profile,
                    key,
                    message,
                } => {
                    assert_eq!(
                        (profile.as_str(), key.as_deref()),
                        ("r", Some("duration_seconds"))
                    );
                    assert!(message.contains("<string>:4"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn missing_source_names_profile_key_and_origin() {
        let f = files(
            "[profile r]\nrole_arn = a\nsource_profile = gone\n",
            "[x]\n",
        );
        let e = f.chain("r").unwrap_err();
        assert!(
            matches!(&e, Error::InvalidProfile { profile, key: Some(k), .. } if profile == "r" && k == "source_profile"),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("gone")
                && text.contains("<string>:3")
                && text.contains("available profiles: r, x"),
            "{text}"
        );
    }

    #[test]
    fn credential_process_is_unsupported() {
        let f = files("[profile p]\ncredential_process = /bin/creds\n", "");
        assert!(matches!(
            f.chain("p").unwrap_err(),
            Error::Unsupported { profile, feature } if profile == "p" && feature == "credential_process"
        ));
    }

    #[test]
    fn loop_lists_the_path() {
        let f = files(
            "[profile a]\nrole_arn = x\nsource_profile = b\n[profile b]\nrole_arn = y\nsource_profile = c\n\
             [profile c]\nrole_arn = z\nsource_profile = b\n",
            "",
        );
        match f.chain("a").unwrap_err() {
            Error::ProfileLoop { chain } => assert_eq!(chain, ["a", "b", "c", "b"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_text_has_no_secret() {
        let f = files("", "[b]\naws_secret_access_key = TOPSECRET\n");
        let e = f.chain("b").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("TOPSECRET"));
    }
}
