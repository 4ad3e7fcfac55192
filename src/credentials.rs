//! The credentials value: keys, secret, session token, start and expiration;
//! plus the identities STS reports (`GetCallerIdentity`, `AssumeRole`).

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::secret::Secret;
use crate::words::humanize;

/// Long-lived or temporary access keys used to sign a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id (`AKIA...` or `ASIA...`); not a secret.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token, for temporary keys.
    pub session_token: Option<Secret>,
}

/// Temporary credentials from STS (`GetSessionToken` or `AssumeRole`).
///
/// This struct is the typed ("vault") form. `Debug` prints the access key id
/// and the times but redacts the secret key and the session token.
///
/// Times are UTC. `start_time` is the client's clock read just *before* the
/// request was sent, so `duration()` never overstates how long the
/// credentials live.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The temporary access key id (`ASIA...`); not a secret.
    pub access_key_id: String,
    /// The temporary secret access key.
    pub secret_access_key: Secret,
    /// The session token that must accompany the key.
    pub session_token: Secret,
    /// When the request for these credentials was about to be sent (UTC,
    /// client clock).
    pub start_time: OffsetDateTime,
    /// When STS says the credentials expire (UTC).
    pub expiration: OffsetDateTime,
}

impl Credentials {
    /// The keys to sign further requests with (session token included).
    pub fn access_key(&self) -> AccessKey {
        AccessKey {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: Some(self.session_token.clone()),
        }
    }

    /// The lifetime from `start_time` to `expiration`, exact (days count).
    pub fn duration(&self) -> Duration {
        self.expiration - self.start_time
    }

    /// `expiration` as RFC 3339 in UTC, e.g. `2026-11-23T00:58:15Z`
    /// (fractional seconds appear only when STS sent them).
    pub fn expiration_iso(&self) -> String {
        iso(self.expiration)
    }

    /// `start_time` as RFC 3339 in UTC.
    pub fn start_time_iso(&self) -> String {
        iso(self.start_time)
    }

    /// Time left at `now`; zero once expired, never negative.
    pub fn remaining_at(&self, now: OffsetDateTime) -> Duration {
        (self.expiration - now).max(Duration::ZERO)
    }

    /// Time left by the system clock, uncorrected for any learnt skew (see
    /// [`is_valid`](Self::is_valid)); zero once expired.
    pub fn remaining(&self) -> Duration {
        self.remaining_at(OffsetDateTime::now_utc())
    }

    /// True while `now` is before `expiration`.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        now < self.expiration
    }

    /// True while the system clock is before `expiration`. It knows nothing
    /// of the clock skew a client learnt from STS: with a local clock that
    /// is off, use `is_valid_at(session.clock().now())` (see
    /// [`Session::clock`](crate::Session::clock)), as the session's own
    /// readers do.
    pub fn is_valid(&self) -> bool {
        self.is_valid_at(OffsetDateTime::now_utc())
    }

    /// Time left at `now` in words, e.g. `4 hours, 59 min`: the largest
    /// non-zero unit and the one below it.
    pub fn humanized_remaining_at(&self, now: OffsetDateTime) -> String {
        humanize(self.remaining_at(now))
    }

    /// Time left by the system clock in words.
    pub fn humanized_remaining(&self) -> String {
        humanize(self.remaining())
    }

    /// The "boto" form: the native STS field names in STS order
    /// (`AccessKeyId`, `SecretAccessKey`, `SessionToken`, `Expiration`,
    /// `StartTime`), times as RFC 3339 strings.
    ///
    /// **The result holds the secret key and session token in clear text**
    /// (that is what this form is for: handing them to another tool). Do not
    /// log or print it.
    pub fn boto_map_exposing_secrets(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AccessKeyId", self.access_key_id.clone()),
            (
                "SecretAccessKey",
                self.secret_access_key.expose().to_owned(),
            ),
            ("SessionToken", self.session_token.expose().to_owned()),
            ("Expiration", self.expiration_iso()),
            ("StartTime", self.start_time_iso()),
        ]
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field("start_time", &iso(self.start_time))
            .field("expiration", &iso(self.expiration))
            .finish()
    }
}

/// RFC 3339 in UTC with `Z`. Formatting a UTC `OffsetDateTime` with a year in
/// 0..=9999 cannot fail; other years fall back to `time`'s Display.
fn iso(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Who a set of keys belongs to, from `GetCallerIdentity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account id.
    pub account: String,
    /// The caller's ARN: `arn:aws:iam::123456789012:user/PATH/NAME` for an
    /// IAM user, `arn:aws:sts::123456789012:assumed-role/ROLE/SESSION` for
    /// an assumed role.
    pub arn: String,
    /// The unique id (`AIDA...` for a user, `AROA...:SESSION` for a role).
    pub user_id: String,
}

impl CallerIdentity {
    /// The IAM user name when the ARN is an IAM user's (the last path
    /// segment, so `user/ops/alice` gives `alice`); `None` otherwise.
    ///
    /// ```
    /// use stslib::sts::CallerIdentity;
    /// let id = |arn: &str| CallerIdentity { account: "123456789012".into(), arn: arn.into(), user_id: "AIDAX".into() };
    /// assert_eq!(id("arn:aws:iam::123456789012:user/ops/alice").user_name(), Some("alice"));
    /// assert_eq!(id("arn:aws:iam::123456789012:user/bob").user_name(), Some("bob"));
    /// assert_eq!(id("arn:aws:sts::123456789012:assumed-role/Admin/s1").user_name(), None);
    /// ```
    pub fn user_name(&self) -> Option<&str> {
        let (service, resource) = arn_resource(&self.arn)?;
        let path = resource
            .strip_prefix("user/")
            .filter(|_| service == "iam")?;
        last_segment(path)
    }

    /// The role name when the ARN is an assumed role's
    /// (`assumed-role/ROLE/SESSION`) or a role's (`role/PATH/ROLE`).
    ///
    /// ```
    /// use stslib::sts::CallerIdentity;
    /// let id = |arn: &str| CallerIdentity { account: "123456789012".into(), arn: arn.into(), user_id: "AROAX:s1".into() };
    /// assert_eq!(id("arn:aws:sts::123456789012:assumed-role/Admin/s1").role_name(), Some("Admin"));
    /// assert_eq!(id("arn:aws:iam::123456789012:role/team/Admin").role_name(), Some("Admin"));
    /// assert_eq!(id("arn:aws:iam::123456789012:user/bob").role_name(), None);
    /// ```
    pub fn role_name(&self) -> Option<&str> {
        let (service, resource) = arn_resource(&self.arn)?;
        match service {
            "sts" => {
                let rest = resource.strip_prefix("assumed-role/")?;
                rest.split('/').next().filter(|s| !s.is_empty())
            }
            "iam" => last_segment(resource.strip_prefix("role/")?),
            _ => None,
        }
    }
}

/// `(service, resource)` of an ARN `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
fn arn_resource(arn: &str) -> Option<(&str, &str)> {
    let mut it = arn.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    let _partition = it.next()?;
    let service = it.next()?;
    let _region = it.next()?;
    let _account = it.next()?;
    Some((service, it.next()?))
}

fn last_segment(path: &str) -> Option<&str> {
    path.rsplit('/').next().filter(|s| !s.is_empty())
}

/// The answer to `AssumeRole`: the role's temporary credentials and the
/// identity they carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumedRole {
    /// The temporary credentials.
    pub credentials: Credentials,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub assumed_role_arn: String,
    /// `AROA...:SESSION`.
    pub assumed_role_id: String,
    /// Percentage of the allowed size used by session policies and tags,
    /// when STS reports it.
    pub packed_policy_size: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("s3cr3t-key"),
            session_token: Secret::new("t0k3n"),
            start_time: datetime!(2026-01-01 10:00:00 UTC),
            expiration: datetime!(2026-01-02 12:30:00.5 UTC),
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = format!("{:?}", creds());
        assert!(s.contains("ASIAEXAMPLE"));
        assert!(!s.contains("s3cr3t") && !s.contains("t0k3n"), "{s}");
    }

    #[test]
    fn duration_counts_days_exactly() {
        assert_eq!(
            creds().duration(),
            Duration::days(1)
                + Duration::hours(2)
                + Duration::minutes(30)
                + Duration::milliseconds(500)
        );
    }

    #[test]
    fn iso_uses_z() {
        let mut c = creds();
        assert_eq!(c.expiration_iso(), "2026-01-02T12:30:00.5Z");
        assert_eq!(c.start_time_iso(), "2026-01-01T10:00:00Z");
        c.expiration = datetime!(2026-01-02 14:30:00 +02:00);
        assert_eq!(c.expiration_iso(), "2026-01-02T12:30:00Z");
    }

    #[test]
    fn remaining_never_negative() {
        let c = creds();
        assert_eq!(
            c.remaining_at(datetime!(2026-01-02 12:00:00 UTC)),
            Duration::minutes(30) + Duration::milliseconds(500)
        );
        assert_eq!(
            c.remaining_at(datetime!(2026-01-03 00:00:00 UTC)),
            Duration::ZERO
        );
        assert!(c.is_valid_at(datetime!(2026-01-02 12:30:00 UTC)));
        assert!(!c.is_valid_at(datetime!(2026-01-02 12:30:00.5 UTC)));
        assert_eq!(
            c.humanized_remaining_at(datetime!(2026-01-01 12:00:00 UTC)),
            "1 day"
        );
    }

    #[test]
    fn humanize_units() {
        assert_eq!(humanize(Duration::ZERO), "0 sec");
        assert_eq!(humanize(Duration::seconds(1)), "1 sec");
        assert_eq!(humanize(Duration::seconds(61)), "1 min, 1 sec");
        assert_eq!(humanize(Duration::seconds(3600 + 59)), "1 hour");
        assert_eq!(
            humanize(Duration::seconds(2 * 86_400 + 3600)),
            "2 days, 1 hour"
        );
        assert_eq!(humanize(Duration::milliseconds(999)), "0 sec");
    }

    #[test]
    fn boto_map_order_and_values() {
        let m = creds().boto_map_exposing_secrets();
        let keys: Vec<_> = m.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "AccessKeyId",
                "SecretAccessKey",
                "SessionToken",
                "Expiration",
                "StartTime"
            ]
        );
        assert_eq!(m[1].1, "s3cr3t-key");
        assert_eq!(m[3].1, "2026-01-02T12:30:00.5Z");
    }

    #[test]
    fn access_key_carries_token() {
        let k = creds().access_key();
        assert_eq!(k.access_key_id, "ASIAEXAMPLE");
        assert_eq!(k.session_token.as_ref().map(Secret::expose), Some("t0k3n"));
    }

    #[test]
    fn arn_names() {
        let id = |arn: &str| CallerIdentity {
            account: "1".into(),
            arn: arn.into(),
            user_id: "x".into(),
        };
        assert_eq!(
            id("arn:aws-cn:iam::1:user/a/b/carol").user_name(),
            Some("carol")
        );
        assert_eq!(id("arn:aws:iam::1:user/").user_name(), None);
        assert_eq!(id("arn:aws:iam::1:root").user_name(), None);
        assert_eq!(id("not an arn").user_name(), None);
        assert_eq!(id("arn:aws:sts::1:federated-user/bob").role_name(), None);
    }
}
