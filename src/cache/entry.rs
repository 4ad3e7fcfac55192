//! The cache's pure part: keys, file names and the entry text format. No
//! I/O and no clock reads: times come in as arguments.

use std::time::Duration as StdDuration;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The format version this build writes and accepts. Version 2 added the
/// user's key hash to every key and the clock offset to every entry.
pub(crate) const VERSION: &str = "2";
/// Longest profile-name prefix kept in a file name.
const NAME_PREFIX_MAX: usize = 32;
/// Largest clock offset kept with an entry (a week; beyond that the local
/// clock is not worth correcting).
const MAX_OFFSET_MS: i64 = 7 * 24 * 3600 * 1000;

/// What an entry is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    Token {
        source_profile: &'a str,
        /// [`user_hash`] of the user's long-term access key id.
        user: String,
        /// Never `Some("")`: an empty serial is no serial.
        mfa_serial: Option<&'a str>,
    },
    Role {
        source_profile: &'a str,
        user: String,
        role_profile: &'a str,
        role_arn: &'a str,
    },
}

impl<'a> Key<'a> {
    pub(crate) fn token(
        source_profile: &'a str,
        user_key_id: &str,
        mfa_serial: Option<&'a str>,
    ) -> Self {
        Key::Token {
            source_profile,
            user: user_hash(user_key_id),
            mfa_serial: mfa_serial.filter(|s| !s.is_empty()),
        }
    }

    pub(crate) fn role(
        source_profile: &'a str,
        user_key_id: &str,
        role_profile: &'a str,
        role_arn: &'a str,
    ) -> Self {
        Key::Role {
            source_profile,
            user: user_hash(user_key_id),
            role_profile,
            role_arn,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Key::Token { .. } => "token",
            Key::Role { .. } => "role",
        }
    }

    /// The key's fields as written, in file order.
    pub(crate) fn fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            Key::Token {
                source_profile,
                user,
                mfa_serial,
            } => vec![
                ("source_profile", source_profile),
                ("user_key", user),
                ("mfa_serial", mfa_serial.unwrap_or("")),
            ],
            Key::Role {
                source_profile,
                user,
                role_profile,
                role_arn,
            } => vec![
                ("source_profile", source_profile),
                ("user_key", user),
                ("role_profile", role_profile),
                ("role_arn", role_arn),
            ],
        }
    }

    /// The profile named in the file name.
    fn display_profile(&self) -> &'a str {
        match *self {
            Key::Token { source_profile, .. } => source_profile,
            Key::Role { role_profile, .. } => role_profile,
        }
    }
}

/// The user's long-term access key id as kept in entries: a 64-bit hash,
/// so two IAM users behind one profile name never share an entry and the
/// key id itself is not written down.
pub(crate) fn user_hash(access_key_id: &str) -> String {
    format!("{:016x}", fnv1a64(access_key_id.as_bytes()))
}

/// 64-bit FNV-1a: stable across runs, builds and platforms (unlike std's
/// randomly keyed hasher). Not cryptographic; collisions only cost a miss,
/// since a loaded entry must name the same key.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `token-<profile>-<hash>` or `role-<profile>-<hash>`. The hash covers the
/// kind and every key field, each length-prefixed so no two keys encode
/// alike; the profile part is for people and keeps only `[A-Za-z0-9_.-]`
/// (others become `_`), at most 32 characters, no leading dot.
pub(crate) fn file_name(key: &Key<'_>) -> String {
    let mut buf = Vec::new();
    buf.extend_from_slice(key.kind().as_bytes());
    for (_, value) in key.fields() {
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
        buf.extend_from_slice(value.as_bytes());
    }
    let readable: String = key
        .display_profile()
        .chars()
        .take(NAME_PREFIX_MAX)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let readable = readable.trim_start_matches('.');
    format!("{}-{}-{:016x}", key.kind(), readable, fnv1a64(&buf))
}

/// RFC 3339 in UTC.
fn iso(t: OffsetDateTime) -> Result<String> {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|e| Error::CacheFormat {
            field: "expiration",
            message: format!("time not representable: {e}"),
        })
}

/// The entry's text. `clock_offset` is STS's clock minus the local one, as
/// the writer learnt it (kept to the millisecond, capped at a week). Fails
/// when a value contains a line break (the error names the field, never the
/// value).
pub(crate) fn encode(
    key: &Key<'_>,
    c: &Credentials,
    created: OffsetDateTime,
    clock_offset: Duration,
) -> Result<String> {
    let start = iso(c.start_time)?;
    let expiration = iso(c.expiration)?;
    let created = iso(created)?;
    let offset_ms = (clock_offset
        .whole_milliseconds()
        .clamp(i128::from(-MAX_OFFSET_MS), i128::from(MAX_OFFSET_MS)) as i64)
        .to_string();
    let mut lines: Vec<(&'static str, &str)> = vec![("version", VERSION), ("kind", key.kind())];
    lines.extend(key.fields());
    lines.extend([
        ("access_key_id", c.access_key_id.as_str()),
        ("secret_access_key", c.secret_access_key.expose()),
        ("session_token", c.session_token.expose()),
        ("start_time", start.as_str()),
        ("expiration", expiration.as_str()),
        ("created", created.as_str()),
        ("clock_offset_ms", offset_ms.as_str()),
    ]);
    let mut out = String::new();
    for (name, value) in lines {
        if value.contains(['\n', '\r']) {
            return Err(Error::CacheFormat {
                field: name,
                message: "contains a line break".into(),
            });
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    let sum = fnv1a64(out.as_bytes());
    out.push_str(&format!("checksum={sum:016x}\n"));
    Ok(out)
}

/// A decoded entry, before it is checked against a key and a time.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) kind: String,
    /// `(name, value)` key fields in file order.
    pub(crate) key_fields: Vec<(&'static str, String)>,
    pub(crate) credentials: Credentials,
    pub(crate) created: OffsetDateTime,
    /// STS's clock minus the writer's, as the writer learnt it.
    pub(crate) clock_offset: Duration,
}

impl Entry {
    /// A key field's value (`source_profile`, `role_profile`, ...).
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.key_fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an entry was ignored: a fixed phrase, never a value from the file.
pub(crate) type Reject = &'static str;

/// Parses an entry. Every field is required exactly once and nothing else
/// is allowed; the last line is a checksum over everything before it.
pub(crate) fn decode(text: &str) -> std::result::Result<Entry, Reject> {
    const TOKEN_FIELDS: &[&str] = &["source_profile", "user_key", "mfa_serial"];
    const ROLE_FIELDS: &[&str] = &["source_profile", "user_key", "role_profile", "role_arn"];
    const CRED_FIELDS: &[&str] = &[
        "access_key_id",
        "secret_access_key",
        "session_token",
        "start_time",
        "expiration",
        "created",
        "clock_offset_ms",
    ];

    let body = text
        .strip_suffix('\n')
        .ok_or("truncated (no final line break)")?;
    let (head, last) = match body.rfind('\n') {
        Some(i) => (&text[..=i], &body[i + 1..]),
        None => return Err("truncated or not an entry (one line)"),
    };
    let sum = last.strip_prefix("checksum=").ok_or("no checksum line")?;
    if sum.len() != 16 || u64::from_str_radix(sum, 16).ok() != Some(fnv1a64(head.as_bytes())) {
        return Err("checksum mismatch (corrupt or truncated)");
    }

    let mut lines = head.lines();
    let first = lines.next().ok_or("empty")?;
    match first.strip_prefix("version=") {
        Some(VERSION) => {}
        Some(_) => return Err("unsupported version"),
        None => return Err("no version line"),
    }
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for line in lines {
        let (name, value) = line.split_once('=').ok_or("line without `=`")?;
        if fields.iter().any(|(n, _)| *n == name) {
            return Err("repeated field");
        }
        fields.push((name, value));
    }
    let get = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let kind = get("kind").ok_or("no kind")?;
    let key_names = match kind {
        "token" => TOKEN_FIELDS,
        "role" => ROLE_FIELDS,
        _ => return Err("unknown kind"),
    };
    let expected = 1 + key_names.len() + CRED_FIELDS.len();
    let all_known = fields
        .iter()
        .all(|(n, _)| *n == "kind" || key_names.contains(n) || CRED_FIELDS.contains(n));
    if !all_known {
        return Err("unknown field");
    }
    if fields.len() != expected {
        return Err("missing field");
    }
    // All names are known, unique and as many as expected: each is present.
    let field = |name: &str| get(name).ok_or("missing field");
    let time = |name: &str| {
        OffsetDateTime::parse(field(name)?, &Rfc3339)
            .map(|t| t.to_offset(UtcOffset::UTC))
            .map_err(|_| "bad time")
    };
    let mut key_fields = Vec::new();
    for &name in key_names {
        key_fields.push((name, field(name)?.to_owned()));
    }
    let credentials = Credentials {
        access_key_id: field("access_key_id")?.to_owned(),
        secret_access_key: Secret::new(field("secret_access_key")?),
        session_token: Secret::new(field("session_token")?),
        start_time: time("start_time")?,
        expiration: time("expiration")?,
    };
    if credentials.access_key_id.is_empty()
        || credentials.secret_access_key.is_empty()
        || credentials.session_token.is_empty()
    {
        return Err("empty key, secret or token");
    }
    if credentials.expiration <= credentials.start_time {
        return Err("expiration not after start time");
    }
    let offset_ms: i64 = field("clock_offset_ms")?
        .parse()
        .map_err(|_| "bad clock offset")?;
    if offset_ms.abs() > MAX_OFFSET_MS {
        return Err("clock offset out of range");
    }
    Ok(Entry {
        kind: kind.to_owned(),
        key_fields,
        credentials,
        created: time("created")?,
        clock_offset: Duration::milliseconds(offset_ms),
    })
}

/// The entry if it is for `key` and valid for more than `min` after `now`,
/// where `now` is the local clock: the entry's own clock offset corrects it
/// (expirations are on STS's clock).
pub(crate) fn accept(
    entry: Entry,
    key: &Key<'_>,
    now: OffsetDateTime,
    min: StdDuration,
) -> std::result::Result<Entry, Reject> {
    if entry.kind != key.kind() {
        return Err("entry of another kind");
    }
    let same_key = entry.key_fields.len() == key.fields().len()
        && entry
            .key_fields
            .iter()
            .zip(key.fields())
            .all(|((n1, v1), (n2, v2))| *n1 == n2 && v1 == v2);
    if !same_key {
        return Err("entry for another profile, user, MFA serial or role");
    }
    let min = Duration::try_from(min).map_err(|_| "minimum lifetime out of range")?;
    let now = now + entry.clock_offset;
    let c = &entry.credentials;
    if c.expiration <= now {
        return Err("expired");
    }
    if c.expiration - now <= min {
        return Err("expires within the requested margin");
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 12:00:00 UTC);
    const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
    const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/Admin";
    const AKID: &str = "AKIAALICEEXAMPLE0001";

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("s3cr3t/key+AB=="),
            session_token: Secret::new("t0k3n//long=="),
            start_time: datetime!(2026-01-01 10:00:00 UTC),
            expiration: datetime!(2026-01-01 22:00:00.5 UTC),
        }
    }

    fn token_key() -> Key<'static> {
        Key::token("alice", AKID, Some(SERIAL))
    }

    fn role_key() -> Key<'static> {
        Key::role("alice", AKID, "prod", ROLE_ARN)
    }

    fn valid_text(key: &Key<'_>) -> String {
        encode(
            key,
            &creds(),
            datetime!(2026-01-01 10:00:01 UTC),
            Duration::ZERO,
        )
        .unwrap()
    }

    fn load(text: &str, key: &Key<'_>, min_secs: u64) -> std::result::Result<Credentials, Reject> {
        decode(text)
            .and_then(|e| accept(e, key, NOW, StdDuration::from_secs(min_secs)))
            .map(|e| e.credentials)
    }

    #[test]
    fn token_round_trip() {
        let text = valid_text(&token_key());
        assert!(text.starts_with("version=2\nkind=token\nsource_profile=alice\nuser_key="));
        assert!(!text.contains(AKID), "the user's key id is hashed: {text}");
        assert!(text.contains("\nclock_offset_ms=0\n"));
        assert!(text.contains("\nmfa_serial=arn:aws:iam::123456789012:mfa/alice\n"));
        assert!(text.contains("\nexpiration=2026-01-01T22:00:00.5Z\n"));
        assert!(text.contains("\ncreated=2026-01-01T10:00:01Z\n"));
        let entry = decode(&text).unwrap();
        assert_eq!(entry.created, datetime!(2026-01-01 10:00:01 UTC));
        let entry = accept(entry, &token_key(), NOW, StdDuration::ZERO).unwrap();
        assert_eq!(entry.credentials, creds());
        assert_eq!(entry.clock_offset, Duration::ZERO);
    }

    #[test]
    fn role_round_trip_and_no_serial() {
        let text = valid_text(&role_key());
        assert!(text.contains("\nkind=role\n") && text.contains("\nrole_profile=prod\n"));
        assert_eq!(load(&text, &role_key(), 60), Ok(creds()));

        let none = Key::token("alice", AKID, None);
        let text = valid_text(&none);
        assert!(text.contains("\nmfa_serial=\n"));
        assert_eq!(load(&text, &none, 0), Ok(creds()));
        // An empty serial is no serial.
        assert_eq!(
            load(&text, &Key::token("alice", AKID, Some("")), 0),
            Ok(creds())
        );
    }

    #[test]
    fn times_in_other_offsets_come_back_utc() {
        let mut c = creds();
        c.expiration = datetime!(2026-01-02 00:00:00 +02:00);
        let text = encode(&token_key(), &c, NOW, Duration::ZERO).unwrap();
        assert!(text.contains("\nexpiration=2026-01-01T22:00:00Z\n"));
        let back = load(&text, &token_key(), 0).unwrap();
        assert_eq!(back.expiration, c.expiration);
        assert_eq!(back.expiration.offset(), UtcOffset::UTC);
    }

    #[test]
    fn line_breaks_refused_without_echoing_the_value() {
        let mut c = creds();
        c.session_token = Secret::new("abc\ndef");
        let e = encode(&token_key(), &c, NOW, Duration::ZERO).unwrap_err();
        assert!(matches!(
            e,
            Error::CacheFormat {
                field: "session_token",
                ..
            }
        ));
        assert!(!e.to_string().contains("abc"), "{e}");
        let e = encode(
            &Key::token("a\rb", AKID, None),
            &creds(),
            NOW,
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            Error::CacheFormat {
                field: "source_profile",
                ..
            }
        ));
    }

    #[test]
    fn rejects_other_versions() {
        let text = valid_text(&token_key()).replacen("version=2", "version=1", 1);
        // Re-seal so only the version is wrong.
        let text = reseal(&text);
        assert_eq!(load(&text, &token_key(), 0), Err("unsupported version"));
        let text = reseal(&valid_text(&token_key()).replacen("version=2\n", "", 1));
        assert_eq!(load(&text, &token_key(), 0), Err("no version line"));
    }

    /// Replaces the checksum line with a correct one for the edited text.
    fn reseal(text: &str) -> String {
        let body = text.strip_suffix('\n').unwrap();
        let head = &text[..=body.rfind('\n').unwrap()];
        format!("{head}checksum={:016x}\n", fnv1a64(head.as_bytes()))
    }

    #[test]
    fn rejects_every_truncation() {
        for key in [token_key(), role_key()] {
            let text = valid_text(&key);
            for cut in 0..text.len() {
                let part = &text[..cut];
                assert!(
                    load(part, &key, 0).is_err(),
                    "truncated at {cut} of {} was accepted",
                    text.len()
                );
            }
            assert!(load(&text, &key, 0).is_ok());
        }
    }

    #[test]
    fn rejects_corruption() {
        let text = valid_text(&token_key());
        // Flip one character in each position of the body (not the checksum
        // line): the checksum catches it.
        let head_len = text.rfind("checksum=").unwrap();
        for i in 0..head_len {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            let Ok(s) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(load(&s, &token_key(), 0).is_err(), "flip at {i} accepted");
        }
        let bad_sum = text.replace("checksum=", "checksum=0");
        assert!(load(&bad_sum, &token_key(), 0).is_err());
    }

    #[test]
    fn rejects_garbage() {
        for g in [
            "",
            "\n",
            "hello",
            "version=1\n",
            "checksum=0000000000000000\n",
            "\u{0}\u{1}\u{2}\n\n\n",
            "version=1\nkind=token\nchecksum=zzzzzzzzzzzzzzzz\n",
            "{\"version\": 1}\n",
        ] {
            assert!(load(g, &token_key(), 0).is_err(), "{g:?} accepted");
        }
    }

    #[test]
    fn rejects_malformed_fields_even_with_a_good_checksum() {
        let base = valid_text(&token_key());
        let cases: &[(&str, &str, Reject)] = &[
            ("kind=token", "kind=session", "unknown kind"),
            ("access_key_id=ASIAEXAMPLE\n", "", "missing field"),
            (
                "access_key_id=ASIAEXAMPLE",
                "access_key_id=",
                "empty key, secret or token",
            ),
            ("created=", "colour=blue\ncreated=", "unknown field"),
            ("created=", "kind=token\ncreated=", "repeated field"),
            ("created=", "nonsense\ncreated=", "line without `=`"),
            (
                "expiration=2026-01-01T22:00:00.5Z",
                "expiration=tomorrow",
                "bad time",
            ),
            (
                "expiration=2026-01-01T22:00:00.5Z",
                "expiration=2026-01-01T09:00:00Z",
                "expiration not after start time",
            ),
            ("mfa_serial=", "role_arn=", "unknown field"),
        ];
        for (from, to, why) in cases {
            let text = reseal(&base.replacen(from, to, 1));
            assert_eq!(load(&text, &token_key(), 0), Err(*why), "{from} -> {to}");
        }
    }

    #[test]
    fn rejects_expired_and_expiring() {
        let text = valid_text(&token_key());
        // 10 h 0.5 s left at NOW.
        assert!(load(&text, &token_key(), 10 * 3600).is_ok());
        assert_eq!(
            load(&text, &token_key(), 10 * 3600 + 1),
            Err("expires within the requested margin")
        );
        let entry = decode(&text).unwrap();
        let later = datetime!(2026-01-01 22:00:00.5 UTC);
        assert_eq!(
            accept(entry, &token_key(), later, StdDuration::ZERO).map(|e| e.credentials),
            Err("expired")
        );
        let entry = decode(&text).unwrap();
        assert_eq!(
            accept(entry, &token_key(), NOW, StdDuration::MAX).map(|e| e.credentials),
            Err("minimum lifetime out of range")
        );
    }

    #[test]
    fn rejects_other_keys() {
        let text = valid_text(&token_key());
        let other = "entry for another profile, user, MFA serial or role";
        assert_eq!(
            load(&text, &Key::token("bob", AKID, Some(SERIAL)), 0),
            Err(other)
        );
        assert_eq!(load(&text, &Key::token("alice", AKID, None), 0), Err(other));
        assert_eq!(
            load(
                &text,
                &Key::token("alice", AKID, Some("arn:aws:iam::1:mfa/x")),
                0
            ),
            Err(other)
        );
        assert_eq!(load(&text, &role_key(), 0), Err("entry of another kind"));

        let text = valid_text(&role_key());
        assert_eq!(
            load(&text, &Key::role("bob", AKID, "prod", ROLE_ARN), 0),
            Err(other)
        );
        assert_eq!(
            load(&text, &Key::role("alice", AKID, "dev", ROLE_ARN), 0),
            Err(other)
        );
        assert_eq!(
            load(
                &text,
                &Key::role("alice", AKID, "prod", "arn:aws:iam::1:role/X"),
                0
            ),
            Err(other)
        );
        assert_eq!(load(&text, &token_key(), 0), Err("entry of another kind"));
    }

    #[test]
    fn file_names_are_stable_and_reveal_no_serial_or_arn() {
        // Fixed values: FNV-1a is specified, so these never change between
        // runs, builds or platforms.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let t = file_name(&token_key());
        assert_eq!(t, file_name(&Key::token("alice", AKID, Some(SERIAL))));
        assert!(
            t.starts_with("token-alice-") && t.len() == "token-alice-".len() + 16,
            "{t}"
        );
        assert!(!t.contains("mfa") && !t.contains("123456789012"), "{t}");
        let r = file_name(&role_key());
        assert!(r.starts_with("role-prod-"), "{r}");
        assert!(!r.contains("Admin") && !r.contains("123456789012"), "{r}");
    }

    #[test]
    fn file_names_pinned() {
        // If this changes, every user's cache misses once: bump deliberately.
        assert_eq!(
            file_name(&Key::token("alice", AKID, None)),
            file_name(&Key::token("alice", AKID, Some("")))
        );
        let pinned = [
            file_name(&Key::token("alice", AKID, None)),
            file_name(&token_key()),
            file_name(&role_key()),
        ];
        let again = [
            file_name(&Key::token("alice", AKID, None)),
            file_name(&Key::token("alice", AKID, Some(SERIAL))),
            file_name(&Key::role("alice", AKID, "prod", ROLE_ARN)),
        ];
        assert_eq!(pinned, again);
        assert_eq!(pinned[1], PINNED_TOKEN_NAME);
    }

    const PINNED_TOKEN_NAME: &str = "token-alice-3b70bf25224a318c";

    #[test]
    fn file_names_distinguish_keys_and_sanitise() {
        let names = [
            file_name(&Key::token("alice", AKID, None)),
            file_name(&Key::token("alice", AKID, Some(SERIAL))),
            file_name(&Key::token("alic", AKID, Some("e"))),
            file_name(&Key::role("alice", AKID, "prod", ROLE_ARN)),
            file_name(&Key::role("alice", AKID, "pro", ROLE_ARN)),
            file_name(&Key::role("bob", AKID, "prod", ROLE_ARN)),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let odd = file_name(&Key::token("../we ird/ß", AKID, None));
        assert!(odd.starts_with("token-_we_ird__-"), "{odd}");
        let long = file_name(&Key::token(&"p".repeat(100), AKID, None));
        assert_eq!(long.len(), "token-".len() + 32 + 1 + 16);
        let dots = file_name(&Key::role("a", AKID, "..", ROLE_ARN));
        assert!(dots.starts_with("role--"), "{dots}");
    }

    #[test]
    fn debug_of_entry_holds_no_secret() {
        let entry = decode(&valid_text(&token_key())).unwrap();
        let s = format!("{entry:?}");
        assert!(!s.contains("s3cr3t") && !s.contains("t0k3n"), "{s}");
    }

    #[test]
    fn two_users_behind_one_profile_name_never_share_an_entry() {
        let mine = Key::token("alice", "AKIAUSERONE000000001", None);
        let theirs = Key::token("alice", "AKIAUSERTWO000000002", None);
        assert_ne!(file_name(&mine), file_name(&theirs));
        let text = encode(&mine, &creds(), NOW, Duration::ZERO).unwrap();
        let e = decode(&text).and_then(|e| accept(e, &theirs, NOW, StdDuration::ZERO));
        assert_eq!(
            e.map(|e| e.credentials),
            Err("entry for another profile, user, MFA serial or role")
        );
        let r1 = Key::role("alice", "AKIAUSERONE000000001", "prod", ROLE_ARN);
        let r2 = Key::role("alice", "AKIAUSERTWO000000002", "prod", ROLE_ARN);
        assert_ne!(file_name(&r1), file_name(&r2));
        assert!(!file_name(&r1).contains("AKIA"));
    }

    #[test]
    fn the_stored_clock_offset_corrects_validity() {
        // Written by a process whose clock ran 2 h ahead of STS's: the
        // credentials end at 13:00 by STS's clock, and it is 12:00 by STS's
        // clock when the local one says 14:00.
        let mut c = creds();
        c.start_time = datetime!(2026-01-01 11:45:00 UTC);
        c.expiration = datetime!(2026-01-01 13:00:00 UTC);
        let key = role_key();
        let local_now = datetime!(2026-01-01 14:00:00 UTC);
        let ahead = encode(&key, &c, local_now, Duration::hours(-2)).unwrap();
        assert!(ahead.contains("\nclock_offset_ms=-7200000\n"));
        let e = decode(&ahead)
            .and_then(|e| accept(e, &key, local_now, StdDuration::from_secs(30 * 60)))
            .unwrap();
        assert_eq!(e.clock_offset, Duration::hours(-2));
        // Without the offset the same credentials look expired.
        let plain = encode(&key, &c, local_now, Duration::ZERO).unwrap();
        let e = decode(&plain).and_then(|e| accept(e, &key, local_now, StdDuration::ZERO));
        assert_eq!(e.map(|e| e.credentials), Err("expired"));
        // Offsets beyond a week are capped when written, refused when read.
        let far = encode(&key, &c, local_now, Duration::days(30)).unwrap();
        assert!(far.contains("\nclock_offset_ms=604800000\n"));
        let bad = reseal(&far.replace("=604800000", "=604800001"));
        assert_eq!(decode(&bad).map(|_| ()), Err("clock offset out of range"));
        let bad = reseal(&far.replace("=604800000", "=soon"));
        assert_eq!(decode(&bad).map(|_| ()), Err("bad clock offset"));
    }
}
