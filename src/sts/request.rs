//! The STS request types and their validation: every parameter is checked
//! against STS's documented limits before any network call, and a rejection
//! is [`Error::InvalidInput`] naming the parameter.

use std::ops::RangeInclusive;

use crate::error::{cap, Error, Result};
use crate::limits;
use crate::secret::Secret;

/// Parameters of `GetSessionToken`.
///
/// ```
/// use stslib::sts::GetSessionTokenRequest;
/// let req = GetSessionTokenRequest::new()
///     .duration_seconds(3600)
///     .serial_number("arn:aws:iam::123456789012:mfa/alice")
///     .token_code("123456");
/// assert!(!format!("{req:?}").contains("123456\""));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct GetSessionTokenRequest {
    duration_seconds: Option<u32>,
    serial_number: Option<String>,
    token_code: Option<Secret>,
}

impl GetSessionTokenRequest {
    /// A request with no parameters set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lifetime in seconds, 900 to 129600. Defaults to unset (STS then uses
    /// 43200, 12 hours).
    pub fn duration_seconds(mut self, seconds: u32) -> Self {
        self.duration_seconds = Some(seconds);
        self
    }

    /// The MFA device: `arn:aws:iam::ACCOUNT:mfa/NAME` or a hardware
    /// serial. Needs a [`token_code`](Self::token_code). Defaults to unset.
    pub fn serial_number(mut self, serial: impl Into<String>) -> Self {
        self.serial_number = Some(serial.into());
        self
    }

    /// The 6-digit MFA code. Defaults to unset.
    pub fn token_code(mut self, code: impl Into<Secret>) -> Self {
        self.token_code = Some(code.into());
        self
    }

    pub(crate) fn params(&self) -> Result<Vec<(&'static str, String)>> {
        let mut p = Vec::new();
        if let Some(d) = self.duration_seconds {
            check_duration(d, limits::SESSION_TOKEN_SECONDS)?;
            p.push(("DurationSeconds", d.to_string()));
        }
        push_mfa(
            &mut p,
            self.serial_number.as_deref(),
            self.token_code.as_ref(),
        )?;
        Ok(p)
    }
}

/// Parameters of `AssumeRole`.
///
/// ```
/// use stslib::sts::AssumeRoleRequest;
/// let req = AssumeRoleRequest::new("arn:aws:iam::123456789012:role/Admin", "alice-cli")
///     .duration_seconds(3600)
///     .external_id("partner-42");
/// # let _ = req;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct AssumeRoleRequest {
    role_arn: String,
    role_session_name: String,
    duration_seconds: Option<u32>,
    external_id: Option<String>,
    serial_number: Option<String>,
    token_code: Option<Secret>,
}

impl AssumeRoleRequest {
    /// A request for `role_arn` (`arn:aws:iam::ACCOUNT:role/NAME`) under the
    /// session name `role_session_name` (2 to 64 of `A-Z a-z 0-9 _ + = , . @ -`).
    pub fn new(role_arn: impl Into<String>, role_session_name: impl Into<String>) -> Self {
        AssumeRoleRequest {
            role_arn: role_arn.into(),
            role_session_name: role_session_name.into(),
            duration_seconds: None,
            external_id: None,
            serial_number: None,
            token_code: None,
        }
    }

    /// Lifetime in seconds, 900 to 43200 (and at most the role's maximum
    /// session duration, which only STS knows). Defaults to unset (STS then
    /// uses 3600).
    pub fn duration_seconds(mut self, seconds: u32) -> Self {
        self.duration_seconds = Some(seconds);
        self
    }

    /// The external id the role's trust policy asks for. Defaults to unset.
    pub fn external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// The MFA device, when the trust policy requires MFA. Needs a
    /// [`token_code`](Self::token_code). Defaults to unset.
    pub fn serial_number(mut self, serial: impl Into<String>) -> Self {
        self.serial_number = Some(serial.into());
        self
    }

    /// The 6-digit MFA code. Defaults to unset.
    pub fn token_code(mut self, code: impl Into<Secret>) -> Self {
        self.token_code = Some(code.into());
        self
    }

    pub(crate) fn params(&self) -> Result<Vec<(&'static str, String)>> {
        check_role_arn(&self.role_arn)?;
        check_session_name(&self.role_session_name)?;
        let mut p = vec![
            ("RoleArn", self.role_arn.clone()),
            ("RoleSessionName", self.role_session_name.clone()),
        ];
        if let Some(d) = self.duration_seconds {
            check_duration(d, limits::ROLE_SECONDS)?;
            p.push(("DurationSeconds", d.to_string()));
        }
        if let Some(id) = &self.external_id {
            check_external_id(id)?;
            p.push(("ExternalId", id.clone()));
        }
        push_mfa(
            &mut p,
            self.serial_number.as_deref(),
            self.token_code.as_ref(),
        )?;
        Ok(p)
    }
}

fn push_mfa(
    p: &mut Vec<(&'static str, String)>,
    serial: Option<&str>,
    code: Option<&Secret>,
) -> Result<()> {
    match (serial, code) {
        (None, None) => Ok(()),
        (Some(s), Some(c)) => {
            check_serial(s)?;
            check_token_code(c)?;
            p.push(("SerialNumber", s.to_owned()));
            p.push(("TokenCode", c.expose().to_owned()));
            Ok(())
        }
        (Some(_), None) => Err(Error::invalid_input(
            "TokenCode",
            "an MFA serial number was given without a token code",
        )),
        (None, Some(_)) => Err(Error::invalid_input(
            "SerialNumber",
            "an MFA token code was given without a serial number",
        )),
    }
}

fn check_duration(seconds: u32, range: RangeInclusive<u32>) -> Result<()> {
    if range.contains(&seconds) {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "DurationSeconds",
            format!("{seconds} is outside {}..={}", range.start(), range.end()),
        ))
    }
}

/// `\w` as IAM means it, plus the extra characters allowed.
fn word_or(extra: &'static str) -> impl Fn(char) -> bool {
    move |c: char| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c)
}

fn check_session_name(name: &str) -> Result<()> {
    if limits::ROLE_SESSION_NAME_LEN.contains(&name.len())
        && name.chars().all(limits::is_session_name_char)
    {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "RoleSessionName",
            format!(
                "`{}` must be 2 to 64 of A-Z a-z 0-9 _ + = , . @ -",
                cap(name)
            ),
        ))
    }
}

fn check_token_code(code: &Secret) -> Result<()> {
    let c = code.expose();
    if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        // Never echo the value.
        Err(Error::invalid_input(
            "TokenCode",
            "the MFA code must be exactly 6 digits",
        ))
    }
}

/// `arn:PARTITION:iam::ACCOUNT:KIND/NAME` with a 12-digit account; returns
/// the part after `KIND/`.
fn iam_arn_resource<'a>(arn: &'a str, kind: &str) -> Option<&'a str> {
    let mut it = arn.splitn(6, ':');
    let ok = it.next() == Some("arn")
        && it.next().is_some_and(|p| {
            p.starts_with("aws") && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        })
        && it.next() == Some("iam")
        && it.next() == Some("")
        && it
            .next()
            .is_some_and(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return None;
    }
    let rest = it.next()?.strip_prefix(kind)?.strip_prefix('/')?;
    let name = rest.rsplit('/').next()?;
    (!name.is_empty() && rest.chars().all(word_or("+=,.@-/"))).then_some(rest)
}

fn check_role_arn(arn: &str) -> Result<()> {
    if (20..=2048).contains(&arn.len()) && iam_arn_resource(arn, "role").is_some() {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "RoleArn",
            format!(
                "`{}` is not a role ARN (arn:aws:iam::123456789012:role/NAME)",
                cap(arn)
            ),
        ))
    }
}

fn check_serial(serial: &str) -> Result<()> {
    let ok = if serial.starts_with("arn:") {
        serial.len() <= 256 && iam_arn_resource(serial, "mfa").is_some()
    } else {
        (9..=256).contains(&serial.len()) && serial.chars().all(word_or("+=/:,.@-"))
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "SerialNumber",
            format!(
                "`{}` is neither an MFA ARN (arn:aws:iam::123456789012:mfa/NAME) nor a hardware serial",
                cap(serial)
            ),
        ))
    }
}

fn check_external_id(id: &str) -> Result<()> {
    if (2..=1224).contains(&id.len()) && id.chars().all(word_or("+=,.@:/-")) {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "ExternalId",
            "must be 2 to 1224 of A-Z a-z 0-9 _ + = , . @ : / -",
        ))
    }
}

pub(crate) fn check_user_name(name: &str) -> Result<()> {
    if (1..=64).contains(&name.len()) && name.chars().all(word_or("+=,.@-")) {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "UserName",
            format!(
                "`{}` must be 1 to 64 of A-Z a-z 0-9 _ + = , . @ -",
                cap(name)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    fn field(r: Result<impl fmt::Debug>) -> &'static str {
        match r.unwrap_err() {
            Error::InvalidInput { field, .. } => field,
            e => panic!("not InvalidInput: {e}"),
        }
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/Admin";
    const MFA: &str = "arn:aws:iam::123456789012:mfa/alice";

    #[test]
    fn session_token_params_in_order() {
        let p = GetSessionTokenRequest::new()
            .duration_seconds(129_600)
            .serial_number(MFA)
            .token_code("012345")
            .params()
            .unwrap();
        let names: Vec<_> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["DurationSeconds", "SerialNumber", "TokenCode"]);
        assert_eq!(p[2].1, "012345");
        assert!(GetSessionTokenRequest::new().params().unwrap().is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(
            field(GetSessionTokenRequest::new().duration_seconds(899).params()),
            "DurationSeconds"
        );
        assert_eq!(
            field(
                GetSessionTokenRequest::new()
                    .duration_seconds(129_601)
                    .params()
            ),
            "DurationSeconds"
        );
        assert!(GetSessionTokenRequest::new()
            .duration_seconds(900)
            .params()
            .is_ok());
        let ar = |d| {
            AssumeRoleRequest::new(ROLE, "s1")
                .duration_seconds(d)
                .params()
        };
        assert!(ar(43_200).is_ok());
        assert_eq!(field(ar(43_201)), "DurationSeconds");
        assert_eq!(field(ar(0)), "DurationSeconds");
    }

    #[test]
    fn mfa_code_and_serial() {
        let gst = |s: &str, c: &str| {
            GetSessionTokenRequest::new()
                .serial_number(s)
                .token_code(c)
                .params()
        };
        for bad in ["12345", "1234567", "12345a", "１２３４５６", " 12345"] {
            let e = gst(MFA, bad).unwrap_err();
            assert!(matches!(
                e,
                Error::InvalidInput {
                    field: "TokenCode",
                    ..
                }
            ));
            assert!(!e.to_string().contains(bad.trim()), "code echoed: {e}");
        }
        assert!(gst("GAHT12345678", "000000").is_ok());
        assert!(gst("arn:aws-cn:iam::123456789012:mfa/path/bob", "000000").is_ok());
        for bad in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::12345:mfa/a",
            "short",
            "arn:aws:sts::123456789012:mfa/a",
            "has space 123",
        ] {
            assert_eq!(field(gst(bad, "000000")), "SerialNumber", "{bad}");
        }
        assert_eq!(
            field(GetSessionTokenRequest::new().serial_number(MFA).params()),
            "TokenCode"
        );
        assert_eq!(
            field(GetSessionTokenRequest::new().token_code("123456").params()),
            "SerialNumber"
        );
    }

    #[test]
    fn role_arn_and_session_name() {
        let ar = |arn: &str, name: &str| AssumeRoleRequest::new(arn, name).params();
        assert!(ar(ROLE, "a=b,c.d@e-f_g+h").is_ok());
        assert!(ar("arn:aws-us-gov:iam::123456789012:role/path/to/Role", "ab").is_ok());
        for bad in [
            "arn:aws:iam::123456789012:user/Admin",
            "arn:aws:iam::12345678901:role/Admin",
            "arn:aws:iam:us-east-1:123456789012:role/Admin",
            "arn:aws:sts::123456789012:role/Admin",
            "arn:aws:iam::123456789012:role/",
            "Admin",
        ] {
            assert_eq!(field(ar(bad, "ok-name")), "RoleArn", "{bad}");
        }
        for bad in ["a", "has space", "x".repeat(65).as_str(), "é1", "a/b"] {
            assert_eq!(field(ar(ROLE, bad)), "RoleSessionName", "{bad}");
        }
        assert!(ar(ROLE, &"x".repeat(64)).is_ok());
        let p = AssumeRoleRequest::new(ROLE, "s1")
            .external_id("ext-1")
            .serial_number(MFA)
            .token_code("123456")
            .duration_seconds(900)
            .params()
            .unwrap();
        let names: Vec<_> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "RoleArn",
                "RoleSessionName",
                "DurationSeconds",
                "ExternalId",
                "SerialNumber",
                "TokenCode"
            ]
        );
        assert_eq!(
            field(AssumeRoleRequest::new(ROLE, "s1").external_id("x").params()),
            "ExternalId"
        );
    }

    #[test]
    fn request_debug_redacts_code() {
        let r = AssumeRoleRequest::new(ROLE, "s1")
            .serial_number(MFA)
            .token_code("987654");
        assert!(!format!("{r:?}").contains("987654"));
    }
}
