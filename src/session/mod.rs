//! The session handle: one IAM user's MFA session token, the role
//! credentials assumed from it, and the one refresher thread that keeps them
//! fresh. The builder is in `builder.rs`, the MFA device lookup in
//! `mfa_serial.rs`; what the handle shares with its refresher thread is
//! [`Shared`], the credentials themselves are in the [`Slot`](crate::slot::Slot).

mod builder;
mod mfa_serial;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::profile::ProfileFiles;
use crate::refresher::{self, Refresher, Shared};
use crate::secret::Secret;
use crate::slot::{CredentialSet, RoleSpec, Snapshot};
use crate::sts::{AssumeRoleRequest, StsClient};

pub use builder::SessionBuilder;

/// The default session-token lifetime: 12 hours, as STS's own default.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The default role-credential lifetime: 1 hour, the most AWS allows for a
/// role assumed with session credentials.
pub const DEFAULT_ROLE_LIFETIME: u32 = 3600;

/// One IAM user's MFA session token and the role credentials assumed from
/// it, kept fresh by one background thread.
///
/// The thread (named `stslib-refresh`) runs only while there is something to
/// refresh; [`halt`](Session::halt) and `Drop` stop and join it. Readers
/// ([`current_credentials`](Session::current_credentials) and friends) take
/// a snapshot swapped in whole by each refresh: they never wait on the
/// network and never see a half-updated set.
#[must_use = "dropping a Session halts its refresher thread"]
pub struct Session {
    /// What the refresher thread gets a share of.
    shared: Arc<Shared>,
    files: Box<ProfileFiles>,
    strict: bool,
    refresh: bool,
    /// The lifetime of session tokens obtained before any was held.
    default_token_lifetime: Duration,
    /// Resolved once: `Some(None)` means "no MFA device".
    mfa_serial: Mutex<Option<Option<String>>>,
    refresher: Mutex<Option<Refresher>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.shared.slot.get();
        f.debug_struct("Session")
            .field("profile", &self.shared.profile)
            .field("endpoint", &self.shared.client.endpoint())
            .field("token", &snap.token)
            .field("roles", &snap.roles.keys().collect::<Vec<_>>())
            .field("refreshing", &self.is_refreshing())
            .finish()
    }
}

/// The outcome of [`Session::generate_credentials`] for each profile.
pub type RoleOutcomes = BTreeMap<String, Result<Credentials>>;

impl Session {
    /// A builder with every setting at its default.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::new()
    }

    /// The IAM-user profile this session belongs to.
    pub fn profile(&self) -> &str {
        &self.shared.profile
    }

    /// The STS client the session uses.
    pub fn client(&self) -> &StsClient {
        &self.shared.client
    }

    /// The MFA device serial used for the session token: the user
    /// profile's `mfa_serial`, else the one its role profiles name (they
    /// must agree), else the first of IAM `ListMFADevices` for the user,
    /// else none. Resolved once, then remembered.
    pub fn mfa_serial(&self) -> Result<Option<String>> {
        let mut cached = lock(&self.mfa_serial);
        if let Some(s) = &*cached {
            return Ok(s.clone());
        }
        let s = self.resolve_mfa_serial()?;
        *cached = Some(s.clone());
        Ok(s)
    }

    /// GetSessionToken with the user's keys, with MFA when the user has a
    /// device (see [`mfa_serial`](Self::mfa_serial)). The code comes from
    /// `mfa_code`, else from the MFA provider. `lifetime` is 15 min to 36 h,
    /// exact seconds. The token replaces any earlier one; role credentials
    /// already held are kept.
    pub fn generate_session_token(
        &self,
        lifetime: Duration,
        mfa_code: Option<&str>,
    ) -> Result<Credentials> {
        let secs = u32::try_from(lifetime.as_secs())
            .ok()
            .filter(|s| (900..=129_600).contains(s) && lifetime.subsec_nanos() == 0)
            .ok_or_else(|| {
                Error::invalid_input(
                    "DurationSeconds",
                    format!(
                        "session token lifetime must be whole seconds from 900 to 129600, got {lifetime:?}"
                    ),
                )
            })?;
        let serial = self.mfa_serial()?;
        // Processes sharing a cache ask for one token between them: the
        // lock covers "load, or fetch and store".
        let _guard = self.shared.cache.as_ref().and_then(|c| {
            c.lock()
                .map_err(|e| log::warn!("cache: cannot lock, going on without it: {e}"))
                .ok()
        });
        if let Some(token) = self.cached_token(serial.as_deref(), lifetime) {
            return Ok(token);
        }
        let code = match (&serial, mfa_code) {
            (None, _) => None,
            (Some(_), Some(code)) => Some(Secret::new(code)),
            (Some(serial), None) => match &self.shared.mfa_provider {
                Some(provider) => Some(provider.code(serial)?),
                None => {
                    return Err(Error::invalid_input(
                        "TokenCode",
                        format!("an MFA code is needed for device `{serial}`"),
                    ))
                }
            },
        };
        let token = self
            .shared
            .get_session_token(secs, serial.as_deref(), code)?;
        self.shared.store_token(serial.as_deref(), &token);
        self.shared.adopt_token(lifetime, &token);
        log::info!(
            "session token for `{}` obtained, expires {}",
            self.shared.profile,
            token.expiration_iso()
        );
        Ok(token)
    }

    /// AssumeRole for each profile with the session token's credentials,
    /// fanned out over a bounded number of short-lived threads. Each
    /// profile's outcome is its credentials or its error; with
    /// [`strict`](SessionBuilder::strict) the first error fails the whole
    /// call and nothing changes.
    ///
    /// The new set replaces the old one: the old refresher is halted and
    /// joined, and a new one started when any role would expire before the
    /// session token does (or an MFA provider can renew the token).
    ///
    /// Unknown profiles, profiles without `role_arn` and profiles sourced
    /// from another user fail the call before any network call.
    pub fn generate_credentials(&self, profiles: &[&str]) -> Result<RoleOutcomes> {
        let specs = profiles
            .iter()
            .map(|p| self.role_spec(p))
            .collect::<Result<Vec<_>>>()?;
        // Cached role credentials with more than their refresh window left
        // need no session token at all.
        let cached: Vec<Option<Credentials>> =
            specs.iter().map(|s| self.shared.cached_role(s)).collect();
        let missing: Vec<RoleSpec> = specs
            .iter()
            .zip(&cached)
            .filter(|(_, c)| c.is_none())
            .map(|(s, _)| s.clone())
            .collect();
        let token = if missing.is_empty() {
            // Still worth a token when refreshing: without one no refresher
            // starts, and the cached roles would simply run out. Not having
            // one is no error here, since every role is served.
            self.shared.valid_token().or_else(|| {
                self.refresh
                    .then(|| self.token_for_roles())
                    .and_then(|r| {
                        r.map_err(|e| log::warn!("roles served from the cache, but no session token to refresh them: {e}"))
                            .ok()
                    })
            })
        } else {
            Some(self.token_for_roles()?)
        };
        let mut fetched = match &token {
            Some(token) => refresher::assume_all(&self.shared, token, &missing),
            None => Vec::new(),
        }
        .into_iter();
        let mut results: Vec<(String, Result<Credentials>)> = specs
            .iter()
            .zip(cached)
            .map(|(spec, hit)| match hit {
                Some(c) => (spec.profile.clone(), Ok(c)),
                None => {
                    let (profile, r) = fetched.next().expect("one result per missing role");
                    if let Ok(c) = &r {
                        self.shared.store_role(spec, c);
                    }
                    (profile, r)
                }
            })
            .collect();
        if self.strict {
            if let Some(i) = results.iter().position(|(_, r)| r.is_err()) {
                if let (profile, Err(e)) = results.swap_remove(i) {
                    log::warn!("strict generate_credentials: `{profile}` failed: {e}");
                    return Err(e);
                }
            }
        }
        self.halt_refresher()?;
        let roles: BTreeMap<String, Arc<Credentials>> = results
            .iter()
            .filter_map(|(p, r)| r.as_ref().ok().map(|c| (p.clone(), Arc::new(c.clone()))))
            .collect();
        self.shared
            .slot
            .update(|snap| Snapshot::new(token.clone(), snap.token_lifetime, roles.clone()));
        let ok = roles.len();
        log::info!(
            "generate_credentials for `{}`: {ok} of {} roles obtained",
            self.shared.profile,
            results.len()
        );
        let live: Vec<_> = specs
            .into_iter()
            .filter(|s| roles.contains_key(&s.profile))
            .collect();
        let needed = token
            .as_ref()
            .is_some_and(|t| refresher::needs_refresher(&self.shared, t, &roles));
        if self.refresh && needed {
            let serial = lock(&self.mfa_serial).clone().flatten();
            let r = Refresher::spawn(self.shared.clone(), live, serial)?;
            // A concurrent call may have started one meanwhile: never leave
            // a second thread running unjoined.
            let previous = lock(&self.refresher).replace(r);
            if let Some(previous) = previous {
                previous.halt()?;
            }
        }
        Ok(results.into_iter().collect())
    }

    /// A valid session token for AssumeRole: the one held; else, with an
    /// MFA provider, a cached or new one; else a cached one.
    fn token_for_roles(&self) -> Result<Arc<Credentials>> {
        if let Some(t) = self.shared.valid_token() {
            return Ok(t);
        }
        let lifetime = self.token_lifetime();
        if self.shared.mfa_provider.is_some() {
            return self.generate_session_token(lifetime, None).map(Arc::new);
        }
        if self.shared.cache.is_some() {
            let serial = self.mfa_serial()?;
            if let Some(t) = self.cached_token(serial.as_deref(), lifetime) {
                return Ok(Arc::new(t));
            }
        }
        Err(Error::NoCredentials {
            profile: self.shared.profile.clone(),
            message: "no valid session token; call generate_session_token first".into(),
        })
    }

    /// A cached session token for this user and `serial` that lasts more
    /// than the refresh window of `lifetime`, made the session's token.
    fn cached_token(&self, serial: Option<&str>, lifetime: Duration) -> Option<Credentials> {
        let margin = self.shared.policy.window(lifetime);
        let token = self
            .shared
            .cache
            .as_ref()?
            .load_token(&self.shared.profile, serial, margin)?;
        log::info!(
            "session token for `{}` reused from the cache, expires {}",
            self.shared.profile,
            token.expiration_iso()
        );
        self.shared.adopt_token(lifetime, &token);
        Some(token)
    }

    fn role_spec(&self, profile: &str) -> Result<RoleSpec> {
        let chain = self.files.chain(profile)?;
        if chain.roles.is_empty() {
            return Err(Error::invalid_profile(
                profile,
                Some("role_arn"),
                "is not a role profile (no role_arn)",
            ));
        }
        if chain.source.profile != self.shared.profile {
            return Err(Error::invalid_profile(
                profile,
                Some("source_profile"),
                format!(
                    "is sourced from `{}`, not from this session's user `{}`",
                    chain.source.profile, self.shared.profile
                ),
            ));
        }
        let last = chain.roles.last().expect("checked non-empty above");
        let role_arn = last.role_arn.clone();
        let lifetime = last.duration_seconds.unwrap_or(DEFAULT_ROLE_LIFETIME);
        let hops = chain
            .roles
            .iter()
            .map(|hop| {
                let name = hop
                    .role_session_name
                    .clone()
                    .unwrap_or_else(|| default_session_name(&hop.profile));
                let mut req = AssumeRoleRequest::new(&hop.role_arn, name)
                    .duration_seconds(hop.duration_seconds.unwrap_or(DEFAULT_ROLE_LIFETIME));
                if let Some(id) = &hop.external_id {
                    req = req.external_id(id);
                }
                req
            })
            .collect();
        Ok(RoleSpec {
            profile: profile.to_owned(),
            hops,
            role_arn,
            lifetime,
        })
    }

    /// The session token, if one was obtained (even if expired).
    pub fn session_token(&self) -> Option<Credentials> {
        self.shared.slot.get().token.as_deref().cloned()
    }

    /// Role credentials that are valid now; expired ones are left out.
    /// Cheap: no lock is held across I/O and nothing waits on the network.
    pub fn current_credentials(&self) -> CredentialSet {
        self.shared.slot.valid_at(self.shared.now_nanos())
    }

    /// The latest role credentials, expired or not.
    pub fn credentials(&self) -> CredentialSet {
        CredentialSet::all(self.shared.slot.get())
    }

    /// Valid credentials of one profile, if any.
    pub fn credentials_for(&self, profile: &str) -> Option<Credentials> {
        let snap = self.shared.slot.get();
        snap.roles
            .get(profile)
            .filter(|c| c.expiration.unix_timestamp_nanos() > self.shared.now_nanos())
            .map(|c| (**c).clone())
    }

    /// A new subscription to this session's [`Event`]s. Dropping the
    /// receiver unsubscribes.
    pub fn subscribe(&self) -> crossbeam_channel::Receiver<Event> {
        self.shared.subscribers.subscribe()
    }

    /// True while the refresher thread runs.
    pub fn is_refreshing(&self) -> bool {
        lock(&self.refresher)
            .as_ref()
            .is_some_and(|r| !r.is_finished())
    }

    /// Stops the refresher thread and waits for it. Returns promptly when
    /// idle; mid-request, within the STS client's timeouts. A panic inside
    /// the thread is returned here as an error. Credentials already held stay
    /// readable. Calling it again is a no-op.
    pub fn halt(&self) -> Result<()> {
        self.halt_refresher()
    }

    /// The lifetime to ask for a session token the session gets by itself:
    /// the held token's, else the builder's.
    fn token_lifetime(&self) -> Duration {
        let snap = self.shared.slot.get();
        match snap.token {
            Some(_) => snap.token_lifetime,
            None => self.default_token_lifetime,
        }
    }

    fn halt_refresher(&self) -> Result<()> {
        let r = lock(&self.refresher).take();
        match r {
            Some(r) => r.halt(),
            None => Ok(()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Err(e) = self.halt_refresher() {
            log::warn!("refresher of `{}` ended badly: {e}", self.shared.profile);
        }
    }
}

/// `sts-<profile>`, made a valid RoleSessionName (`[\w+=,.@-]{2,64}`).
pub(crate) fn default_session_name(profile: &str) -> String {
    let mut name: String = format!("sts-{profile}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    name
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_session_names_are_valid() {
        assert_eq!(default_session_name("prod"), "sts-prod");
        assert_eq!(default_session_name("a b/c"), "sts-a-b-c");
        assert_eq!(default_session_name(&"x".repeat(100)).len(), 64);
    }
}
