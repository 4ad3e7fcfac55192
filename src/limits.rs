//! STS's limits in one table: how long session tokens and role credentials
//! may live, the role-chaining cap, what a role session name may be. The
//! profile checks, the request checks and the session read them from here.
//!
//! (The emulator keeps its own copy on purpose: it models STS from the other
//! side, and a limit wrong here must not be wrong there too.)

use std::ops::RangeInclusive;
use std::time::Duration;

/// `GetSessionToken` `DurationSeconds`: 15 min to 36 h.
pub(crate) const SESSION_TOKEN_SECONDS: RangeInclusive<u32> = 900..=129_600;

/// `AssumeRole` `DurationSeconds`: 15 min to 12 h (and at most the role's
/// own maximum session duration).
pub(crate) const ROLE_SECONDS: RangeInclusive<u32> = 900..=43_200;

/// `AssumeRole` called with temporary credentials (a session token or
/// another role's credentials, "role chaining") gets at most 1 h.
pub(crate) const CHAINED_ROLE_MAX_SECONDS: u32 = 3600;

/// `RoleSessionName`: 2 to 64 characters ...
pub(crate) const ROLE_SESSION_NAME_LEN: RangeInclusive<usize> = 2..=64;

/// ... each of `A-Z a-z 0-9 _` or one of these.
pub(crate) const ROLE_SESSION_NAME_EXTRA: &str = "+=,.@-";

/// The default session-token lifetime: 12 hours, as STS's own default.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The default role-credential lifetime: 1 hour, the most STS allows for a
/// role assumed with temporary credentials, as a session's roles are.
pub const DEFAULT_ROLE_LIFETIME: Duration = Duration::from_secs(CHAINED_ROLE_MAX_SECONDS as u64);

/// True for a character allowed in a role session name.
pub(crate) fn is_session_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || ROLE_SESSION_NAME_EXTRA.contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_inside_the_limits() {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap();
        assert!(SESSION_TOKEN_SECONDS.contains(&secs(DEFAULT_TOKEN_LIFETIME)));
        assert!(ROLE_SECONDS.contains(&secs(DEFAULT_ROLE_LIFETIME)));
        assert!(secs(DEFAULT_ROLE_LIFETIME) <= CHAINED_ROLE_MAX_SECONDS);
        assert!("a-Z_0+=,.@".chars().all(is_session_name_char));
        assert!(!" /:*".chars().any(is_session_name_char));
    }
}
