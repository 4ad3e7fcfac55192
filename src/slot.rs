//! The read path: the session's credentials as one immutable snapshot behind
//! an `RwLock<Arc<_>>`, swapped in whole by whoever obtains new ones (the
//! caller's thread or the refresher) and read by everyone else.
//!
//! Nothing here does I/O; readers pass the clock to read "now" from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::credentials::Credentials;
use crate::sts::AssumeRoleRequest;

/// The shared slot holding the current [`Snapshot`].
#[derive(Default)]
pub(crate) struct Slot {
    current: RwLock<Arc<Snapshot>>,
}

impl Slot {
    /// The current snapshot (one read lock, one reference count).
    #[inline]
    pub(crate) fn get(&self) -> Arc<Snapshot> {
        // A writer that panicked left a whole snapshot behind: the swap is
        // one assignment, so a poisoned lock still holds a consistent value.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the snapshot with one made from the current one, under the
    /// write lock, so concurrent writers (the caller's thread and the
    /// refresher) never undo each other's changes.
    pub(crate) fn update(&self, f: impl FnOnce(&Snapshot) -> Snapshot) {
        let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
        let next = f(&slot);
        *slot = Arc::new(next);
    }

    /// The role credentials valid now by `clock`: the snapshot itself when
    /// all are (one clock read, one compare), else a filtered copy.
    #[inline]
    pub(crate) fn valid_now(&self, clock: &Clock) -> CredentialSet {
        let snap = self.get();
        match snap.earliest {
            Some(t) if !clock.is_before(t) => snap.without_expired(clock.now_nanos()),
            _ => CredentialSet { snap },
        }
    }
}

/// An immutable view of the session's credentials.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// The session token, if one was obtained (even if expired).
    pub(crate) token: Option<Arc<Credentials>>,
    /// The lifetime asked for when the session token was obtained: its
    /// renewals ask for the same.
    pub(crate) token_lifetime: Duration,
    pub(crate) roles: BTreeMap<String, Arc<Credentials>>,
    /// Earliest role expiration, so the read path can decide "all valid"
    /// with one clock read and one compare.
    earliest: Option<SystemTime>,
}

impl Snapshot {
    pub(crate) fn new(
        token: Option<Arc<Credentials>>,
        token_lifetime: Duration,
        roles: BTreeMap<String, Arc<Credentials>>,
    ) -> Self {
        let earliest = roles
            .values()
            .map(|c| c.expiration)
            .min()
            .map(SystemTime::from);
        Snapshot {
            token,
            token_lifetime,
            roles,
            earliest,
        }
    }

    /// This snapshot with other roles (the token kept).
    pub(crate) fn with_roles(&self, roles: BTreeMap<String, Arc<Credentials>>) -> Self {
        Snapshot::new(self.token.clone(), self.token_lifetime, roles)
    }

    /// This snapshot with another session token (the roles kept).
    pub(crate) fn with_token(&self, token: Arc<Credentials>, lifetime: Duration) -> Self {
        Snapshot::new(Some(token), lifetime, self.roles.clone())
    }

    #[cold]
    fn without_expired(&self, now_nanos: i128) -> CredentialSet {
        let roles = self
            .roles
            .iter()
            .filter(|(_, c)| c.expiration.unix_timestamp_nanos() > now_nanos)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        CredentialSet {
            snap: Arc::new(self.with_roles(roles)),
        }
    }
}

/// Role credentials keyed by profile name: a cheap, immutable snapshot.
#[derive(Clone)]
pub struct CredentialSet {
    snap: Arc<Snapshot>,
}

impl fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl CredentialSet {
    /// Every role of `snap`, expired or not.
    pub(crate) fn all(snap: Arc<Snapshot>) -> Self {
        CredentialSet { snap }
    }

    /// The credentials of `profile`.
    pub fn get(&self, profile: &str) -> Option<&Credentials> {
        self.snap.roles.get(profile).map(|c| &**c)
    }

    /// Profiles and their credentials, sorted by profile.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Credentials)> + '_ {
        self.snap.roles.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// How many profiles have credentials.
    pub fn len(&self) -> usize {
        self.snap.roles.len()
    }

    /// True when no profile has credentials.
    pub fn is_empty(&self) -> bool {
        self.snap.roles.is_empty()
    }

    /// The Python stslib's STS-map form: `sts-<profile>` keys whose values
    /// are the native STS fields (see
    /// [`Credentials::boto_map_exposing_secrets`]). **Holds secrets in clear
    /// text.**
    pub fn boto_maps_exposing_secrets(&self) -> BTreeMap<String, Vec<(&'static str, String)>> {
        self.iter()
            .map(|(p, c)| (format!("sts-{p}"), c.boto_map_exposing_secrets()))
            .collect()
    }
}

/// One role profile resolved to the `AssumeRole` calls that produce it:
/// the first signed with the session token, each next with the previous
/// role's credentials.
#[derive(Debug, Clone)]
pub(crate) struct RoleSpec {
    pub(crate) profile: String,
    pub(crate) hops: Vec<AssumeRoleRequest>,
    /// The last hop's role ARN and asked lifetime (the cache key and the
    /// refresh window of cached credentials).
    pub(crate) role_arn: String,
    pub(crate) lifetime: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use time::macros::datetime;
    use time::OffsetDateTime;

    fn creds(expiration: OffsetDateTime) -> Arc<Credentials> {
        Arc::new(Credentials {
            access_key_id: format!("ASIA{}", expiration.unix_timestamp()),
            secret_access_key: Secret::new("s"),
            session_token: Secret::new("t"),
            start_time: expiration - time::Duration::hours(1),
            expiration,
        })
    }

    #[test]
    fn readers_get_only_valid_roles_and_held_snapshots_never_change() {
        let t0 = datetime!(2026-01-01 12:00 UTC);
        let slot = Slot::default();
        let roles = BTreeMap::from([
            ("a".to_owned(), creds(t0 + time::Duration::seconds(10))),
            ("b".to_owned(), creds(t0 + time::Duration::seconds(20))),
        ]);
        slot.update(|s| s.with_roles(roles));
        let at = |t: OffsetDateTime| slot.valid_now(&crate::clock::ManualClock::new(t).clock());
        let held = at(t0);
        assert_eq!(held.len(), 2);
        assert_eq!(
            at(t0 + time::Duration::seconds(15))
                .iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert!(at(t0 + time::Duration::seconds(20)).is_empty());
        slot.update(|s| s.with_roles(BTreeMap::new()));
        assert_eq!(held.len(), 2, "a held set is immutable");
        assert!(CredentialSet::all(slot.get()).is_empty());
    }
}
