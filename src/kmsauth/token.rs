//! The token format python-kmsauth uses (pure: no I/O, no clock reads).
//!
//! - Username: v1 `<from>` (user type `service`); v2 `2/<user_type>/<from>`.
//! - Encryption context: `to`, `from`, and (v2) `user_type`, plus agreed
//!   extra pairs, over which the three win.
//! - Plaintext: `{"not_before": "…", "not_after": "…"}` with times in
//!   `%Y%m%dT%H%M%SZ` (UTC, whole seconds), exactly as Python's `json.dumps`
//!   writes it.
//! - Token: standard base64 with padding of the KMS ciphertext blob.

use std::collections::BTreeMap;
use std::fmt;

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::kms::json::{self, JsonError};

/// The lowest and highest token versions python-kmsauth knows.
pub(crate) const MIN_VERSION: u32 = 1;
pub(crate) const MAX_VERSION: u32 = 2;

/// Who a token speaks for: the `user_type` of a v2 username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserType {
    /// A service (`service`); the only type of a v1 token. Checked against
    /// the service keys and the scoped keys.
    Service,
    /// A person (`user`). Checked against the user keys.
    User,
}

impl UserType {
    /// The wire name, `service` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Service => "service",
            UserType::User => "user",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<UserType> {
        match s {
            "service" => Some(UserType::Service),
            "user" => Some(UserType::User),
            _ => None,
        }
    }
}

impl fmt::Display for UserType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A username as the validator reads it, before the user type is known to
/// be supported (python-kmsauth checks that only after Decrypt).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Username {
    pub version: u32,
    pub user_type: String,
    pub from: String,
}

/// Splits a username on `/`: three parts are `version/user_type/from`, one
/// part is a v1 `from`. `None` for any other shape and for a version that
/// is not ASCII digits (python-kmsauth raises a bare `ValueError` there).
/// A version too large for `u32` reads as `u32::MAX`, which no range
/// accepts.
pub(crate) fn parse_username(username: &str) -> Option<Username> {
    let parts: Vec<&str> = username.split('/').collect();
    match parts[..] {
        [from] => Some(Username {
            version: 1,
            user_type: "service".to_owned(),
            from: from.to_owned(),
        }),
        [version, user_type, from] => {
            if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(Username {
                version: version.parse().unwrap_or(u32::MAX),
                user_type: user_type.to_owned(),
                from: from.to_owned(),
            })
        }
        _ => None,
    }
}

/// The username a generator sends next to its token.
pub(crate) fn format_username(version: u32, user_type: UserType, from: &str) -> String {
    if version == 1 {
        from.to_owned()
    } else {
        format!("{version}/{user_type}/{from}")
    }
}

/// The encryption context: `extra`, then `to`, `from` and (v2 and later)
/// `user_type` over it.
pub(crate) fn context(
    extra: &BTreeMap<String, String>,
    version: u32,
    to: &str,
    from: &str,
    user_type: &str,
) -> BTreeMap<String, String> {
    let mut ctx = extra.clone();
    ctx.insert("to".to_owned(), to.to_owned());
    ctx.insert("from".to_owned(), from.to_owned());
    if version > 1 {
        ctx.insert("user_type".to_owned(), user_type.to_owned());
    } else {
        ctx.remove("user_type");
    }
    ctx
}

/// `20261203T071445Z`: the token time format, UTC, whole seconds.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(fmt)
        .unwrap_or_default()
}

/// Parses the token time format, strictly: 8 digits, `T`, 6 digits, `Z`.
pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shape {
        return None;
    }
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, fmt)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// The plaintext a generator encrypts, byte for byte what python-kmsauth's
/// `json.dumps` writes (67 bytes).
pub(crate) fn format_plaintext(not_before: &str, not_after: &str) -> String {
    format!("{{\"not_before\": \"{not_before}\", \"not_after\": \"{not_after}\"}}")
}

/// What a decrypted plaintext says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// How a decrypted plaintext fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlaintextError {
    /// Not JSON at all, or not UTF-8 (python-kmsauth: `General error.`).
    NotJson(String),
    /// JSON, but not an object with both times as strings in the basic
    /// format (python-kmsauth: `Missing validity.`).
    MissingValidity,
}

/// Reads a decrypted plaintext: any JSON object holding `not_before` and
/// `not_after` as strings in the token time format.
pub(crate) fn parse_plaintext(plaintext: &[u8]) -> Result<Validity, PlaintextError> {
    if std::str::from_utf8(plaintext).is_err() {
        return Err(PlaintextError::NotJson("not UTF-8".into()));
    }
    let fields = match json::parse_object(plaintext) {
        Ok(f) => f,
        Err(JsonError::NotAnObject) => return Err(PlaintextError::MissingValidity),
        Err(e) => return Err(PlaintextError::NotJson(e.to_string())),
    };
    let time = |key| fields.str(key).and_then(parse_time);
    match (time("not_before"), time("not_after")) {
        (Some(not_before), Some(not_after)) => Ok(Validity {
            not_before,
            not_after,
        }),
        _ => Err(PlaintextError::MissingValidity),
    }
}

/// Standard base64 with padding, one line.
pub(crate) fn encode_token(blob: &[u8]) -> String {
    aws_smithy_types::base64::encode(blob)
}

/// Decodes a token: standard alphabet, padding required; CR and LF (MIME
/// line breaks) are ignored, as Python's decoder ignores them.
pub(crate) fn decode_token(token: &str) -> Option<Vec<u8>> {
    let decoded = if token.contains(['\r', '\n']) {
        let joined: String = token
            .chars()
            .filter(|c| !matches!(c, '\r' | '\n'))
            .collect();
        aws_smithy_types::base64::decode(joined)
    } else {
        aws_smithy_types::base64::decode(token)
    };
    decoded.ok().filter(|b| !b.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn usernames() {
        let u = |s| parse_username(s);
        assert_eq!(
            u("svc-a"),
            Some(Username {
                version: 1,
                user_type: "service".into(),
                from: "svc-a".into()
            })
        );
        assert_eq!(
            u("2/user/alice"),
            Some(Username {
                version: 2,
                user_type: "user".into(),
                from: "alice".into()
            })
        );
        assert_eq!(
            u("02/robot/x").map(|n| (n.version, n.user_type)),
            Some((2, "robot".into()))
        );
        assert_eq!(
            u("99999999999999999999/service/a").map(|n| n.version),
            Some(u32::MAX)
        );
        for bad in [
            "a/b",
            "1/2/3/4",
            "x/service/a",
            "/service/a",
            "-1/service/a",
            " 2/service/a",
        ] {
            assert_eq!(u(bad), None, "{bad}");
        }
        assert_eq!(format_username(1, UserType::Service, "svc-a"), "svc-a");
        assert_eq!(format_username(2, UserType::User, "alice"), "2/user/alice");
    }

    #[test]
    fn contexts_let_the_real_fields_win() {
        let mut extra = BTreeMap::new();
        extra.insert("from".to_owned(), "svc-x".to_owned());
        extra.insert("user_type".to_owned(), "user".to_owned());
        extra.insert("env".to_owned(), "prod".to_owned());
        let v1 = context(&extra, 1, "b", "a", "service");
        assert_eq!(
            v1.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            ["env=prod", "from=a", "to=b"]
        );
        let v2 = context(&extra, 2, "b", "a", "service");
        assert_eq!(v2.get("user_type").map(String::as_str), Some("service"));
        assert_eq!(v2.len(), 4);
    }

    #[test]
    fn times_are_basic_format_only() {
        let t = datetime!(2026-12-03 07:14:45.9 UTC);
        assert_eq!(format_time(t), "20261203T071445Z");
        assert_eq!(
            parse_time("20261203T071445Z"),
            Some(datetime!(2026-12-03 07:14:45 UTC))
        );
        for bad in [
            "2026-12-03T07:14:45Z",
            "20261203T071445",
            "20261303T071445Z",
            "20261203t071445Z",
            "2026123T071445Z ",
            "+0261203T071445Z",
            "",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn plaintext_is_pythons_bytes() {
        let p = format_plaintext("20261203T071309Z", "20261203T072309Z");
        assert_eq!(
            p,
            r#"{"not_before": "20261203T071309Z", "not_after": "20261203T072309Z"}"#
        );
        assert_eq!(p.len(), 67);
        let v = parse_plaintext(p.as_bytes()).unwrap();
        assert_eq!(v.not_after - v.not_before, time::Duration::minutes(10));
    }

    #[test]
    fn plaintext_failures_split_like_python() {
        let ok = r#"{"not_after":"20261203T072309Z","x":[1],"not_before":"20261203T071309Z"}"#;
        assert!(parse_plaintext(ok.as_bytes()).is_ok());
        for missing in [
            r#"{"not_before": "20261203T071309Z"}"#,
            r#"{"not_before": "2026-12-03T07:13:09Z", "not_after": "20261203T072309Z"}"#,
            r#"{"not_before": 1, "not_after": "20261203T072309Z"}"#,
            r#"["20261203T071309Z"]"#,
            r#""x""#,
        ] {
            assert_eq!(
                parse_plaintext(missing.as_bytes()),
                Err(PlaintextError::MissingValidity),
                "{missing}"
            );
        }
        for not_json in [&b"{"[..], b"hello", b"\xff\xfe"] {
            assert!(matches!(
                parse_plaintext(not_json),
                Err(PlaintextError::NotJson(_))
            ));
        }
    }

    #[test]
    fn tokens_are_standard_padded_base64() {
        let blob = b"\xfb\xff\xfe binary blob?";
        let t = encode_token(blob);
        assert!(t.ends_with('=') && !t.contains(['\n', '-', '_']));
        assert_eq!(decode_token(&t).as_deref(), Some(&blob[..]));
        let (a, b) = t.split_at(8);
        assert_eq!(
            decode_token(&format!("{a}\r\n{b}")).as_deref(),
            Some(&blob[..])
        );
        assert_eq!(decode_token(t.trim_end_matches('=')), None);
        assert_eq!(decode_token(&t.replace('/', "_").replace('+', "-")), None);
        assert_eq!(decode_token(""), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,80}", b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_username(&s);
            let _ = parse_time(&s);
            let _ = decode_token(&s);
            let _ = parse_plaintext(&b);
            let _ = parse_plaintext(s.as_bytes());
        }

        #[test]
        fn times_round_trip(secs in 0i64..253_402_300_799) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            proptest::prop_assert_eq!(parse_time(&format_time(t)), Some(t));
        }
    }
}
