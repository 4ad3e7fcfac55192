//! The session handle: one IAM user's MFA session token, the role
//! credentials assumed from it, and the one refresher thread that keeps them
//! fresh. The builder is in `builder.rs`, the MFA device lookup in
//! `mfa_serial.rs`; what the handle shares with its refresher thread is
//! [`Shared`], the credentials themselves are in the [`Slot`](crate::slot::Slot).

mod builder;
mod cache_flow;
mod mfa_serial;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::clock::Clock;
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::profile::ProfileFiles;
use crate::refresher::{self, Refresher, Shared};
use crate::slot::{CredentialSet, RoleSpec, Snapshot};
use crate::sts::{AssumeRoleRequest, StsClient};
use crate::tasks::Task;

pub use builder::SessionBuilder;
pub use cache_flow::{TokenMiss, TokenOrigin};

/// One IAM user's MFA session token and the role credentials assumed from
/// it, kept fresh by one background thread.
///
/// The thread (named `stslib-refresh`) runs only while there is something to
/// refresh (roles, or a kmsauth generator's token with
/// [`refresh_in_background`](crate::kmsauth::TokenGeneratorBuilder::refresh_in_background));
/// [`halt`](Session::halt) and `Drop` stop and join it. Readers
/// ([`valid_credentials`](Session::valid_credentials) and friends) take
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
    /// Whether finding no MFA device is an error.
    require_mfa: bool,
    /// Where the token came from and why a new one was needed.
    token_state: Mutex<cache_flow::TokenState>,
    /// Shared weakly with the [`TaskHost`]s of kmsauth generators.
    refresher: Arc<Mutex<Runner>>,
}

/// The session's refresher thread, when one runs.
#[derive(Default)]
pub(crate) struct Runner {
    current: Option<Refresher>,
    /// Set when the session is dropped: no thread starts after that.
    closed: bool,
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

    /// The session's clock (see [`SessionBuilder::clock`]): check
    /// credentials against `clock().now()`, which carries the correction the
    /// client learnt from STS, e.g. `c.is_valid_at(session.clock().now())`.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
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

    /// A session token for this user, with MFA when the user has a device
    /// (see [`mfa_serial`](Self::mfa_serial)). With `mfa_code`, always a new
    /// one from GetSessionToken. Without, a cached one is reused while it has
    /// more than its own refresh window left (whatever `lifetime` is asked);
    /// else a new one with a code from the MFA provider. `lifetime` is
    /// 15 min to 36 h, exact seconds. The token replaces any earlier one;
    /// role credentials already held are kept. See
    /// [`token_origin`](Self::token_origin) for which it was.
    ///
    /// With a cache, the MFA provider is asked before the cache's lock is
    /// taken (never while holding it); under the lock the cache is checked
    /// again, so processes started together make one GetSessionToken.
    pub fn generate_session_token(
        &self,
        lifetime: Duration,
        mfa_code: Option<&str>,
    ) -> Result<Credentials> {
        if mfa_code.is_some() {
            return self.renew_session_token(lifetime, mfa_code);
        }
        let secs = cache_flow::token_seconds(lifetime)?;
        let serial = self.mfa_serial()?;
        let window = |t: &Credentials| self.shared.policy.window(cache_flow::own_lifetime(t));
        if let Some(token) = self.cached_token(serial.as_deref(), lifetime, window) {
            return Ok(token);
        }
        self.new_token(lifetime, secs, serial.as_deref(), None, true)
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
    ///
    /// `profiles` is any list of names: `&["dev", "prod"]`, a `Vec<String>`,
    /// an iterator of `&str`.
    pub fn generate_credentials<I>(&self, profiles: I) -> Result<RoleOutcomes>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let specs = profiles
            .into_iter()
            .map(|p| self.role_spec(p.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        // Cached role credentials with more than their refresh window left
        // need no session token at all.
        let mut outcomes: Vec<Option<Result<Credentials>>> = specs
            .iter()
            .map(|s| self.shared.cached_role(s).map(Ok))
            .collect();
        let token = if outcomes.iter().all(Option::is_some) {
            // Still worth a token when refreshing: without one no refresher
            // starts, and the cached roles would simply run out. Not having
            // one is no error here, since every role is served.
            self.shared.valid_token().or_else(|| {
                let margin = specs
                    .iter()
                    .map(|s| {
                        self.shared
                            .policy
                            .window(Duration::from_secs(u64::from(s.lifetime)))
                    })
                    .max()
                    .unwrap_or_default();
                self.refresh
                    .then(|| self.token_for_roles(margin))
                    .and_then(|r| {
                        r.map_err(|e| {
                            log::warn!(
                                "roles served from the cache, but no session token to refresh them: {e}"
                            )
                        })
                        .ok()
                    })
            })
        } else {
            // The token must outlast the refresh window of the roles it
            // mints, whatever lifetime the caller asks for new tokens.
            let margin = specs
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.is_none())
                .map(|(s, _)| {
                    self.shared
                        .policy
                        .window(Duration::from_secs(u64::from(s.lifetime)))
                })
                .max()
                .unwrap_or_default();
            let token = self.token_for_roles(margin)?;
            self.fetch_missing(&specs, &mut outcomes, &token);
            let rejected = self.drop_rejected_token(&token, &mut outcomes);
            if rejected.is_empty() {
                Some(token)
            } else {
                // One more go with a new token (the cache may hold a newer
                // one; the MFA provider may give a code). Without one, the
                // roles keep STS's rejection as their outcome.
                match self.token_for_roles(margin) {
                    Ok(token) => {
                        self.fetch_missing(&specs, &mut outcomes, &token);
                        Some(token)
                    }
                    Err(e) => {
                        log::warn!("no new session token after the rejection: {e}");
                        for (i, e) in rejected {
                            outcomes[i] = Some(Err(e));
                        }
                        None
                    }
                }
            }
        };
        let mut results: Vec<(String, Result<Credentials>)> = specs
            .iter()
            .zip(outcomes)
            .map(|(spec, o)| {
                let r = o.unwrap_or_else(|| {
                    Err(Error::NoCredentials {
                        profile: spec.profile.clone(),
                        message: "no valid session token".into(),
                    })
                });
                (spec.profile.clone(), r)
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
            .is_some_and(|t| refresher::needs_refresher(&self.shared, t, &roles))
            || !self.shared.tasks.is_empty();
        if self.refresh && needed {
            let serial = lock(&self.mfa_serial).clone().flatten();
            let r = Refresher::spawn(self.shared.clone(), live, serial)?;
            // A concurrent call (or a generator's task) may have started one
            // meanwhile: never leave a second thread running unjoined.
            let previous = lock(&self.refresher).current.replace(r);
            if let Some(previous) = previous {
                previous.halt()?;
            }
        }
        Ok(results.into_iter().collect())
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
        let lifetime = last.lifetime();
        // The session token carries MFA: hops send no device or code.
        let hops = AssumeRoleRequest::for_chain(&chain, None);
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

    /// Role credentials that are valid now (by the session's clock);
    /// expired ones are left out. Cheap: one read lock and one clock read,
    /// nothing waits on the network.
    #[inline]
    pub fn valid_credentials(&self) -> CredentialSet {
        self.shared.slot.valid_now(&self.shared.clock)
    }

    /// The latest role credentials, **expired or not** (see
    /// [`valid_credentials`](Self::valid_credentials) for only valid ones).
    pub fn latest_credentials(&self) -> CredentialSet {
        CredentialSet::all(self.shared.slot.get())
    }

    /// Credentials of one profile if they are valid now, else `None`.
    pub fn valid_credentials_for(&self, profile: &str) -> Option<Credentials> {
        let snap = self.shared.slot.get();
        snap.roles
            .get(profile)
            .filter(|c| c.expiration.unix_timestamp_nanos() > self.shared.now_nanos())
            .map(|c| (**c).clone())
    }

    /// A new subscription to this session's [`Event`]s. Dropping the
    /// receiver unsubscribes. The stream ends (the receiver reports
    /// disconnection, an iterator over it stops) when the session is halted
    /// or dropped, after the [`Event::Halted`] it gets if a refresher ran;
    /// subscribing after that gives a stream that has already ended.
    pub fn subscribe(&self) -> crossbeam_channel::Receiver<Event> {
        self.shared.subscribers.subscribe()
    }

    /// True while the refresher thread runs.
    pub fn is_refreshing(&self) -> bool {
        lock(&self.refresher)
            .current
            .as_ref()
            .is_some_and(|r| !r.is_finished())
    }

    /// Stops the refresher thread and waits for it, then ends every event
    /// stream (see [`subscribe`](Self::subscribe)). Returns promptly when
    /// idle; mid-request, within the STS client's timeouts (or, inside a
    /// kmsauth generator's background renewal, the KMS client's); inside the MFA
    /// provider, at once (the thread is left to end when the provider
    /// returns, without using its answer). A panic inside the thread is
    /// returned here as an error. Credentials already held stay readable,
    /// and generators still make tokens, on the caller's thread. A later
    /// `generate_credentials` starts the thread again, background renewals
    /// included. Calling it again is a no-op.
    pub fn halt(&self) -> Result<()> {
        let halted = self.halt_refresher();
        self.shared.subscribers.close();
        halted
    }

    /// The lifetime to ask for a session token the session gets by itself:
    /// the held token's, else the builder's.
    pub(super) fn token_lifetime(&self) -> Duration {
        let snap = self.shared.slot.get();
        match snap.token {
            Some(_) => snap.token_lifetime,
            None => self.default_token_lifetime,
        }
    }

    fn halt_refresher(&self) -> Result<()> {
        let r = lock(&self.refresher).current.take();
        match r {
            Some(r) => r.halt(),
            None => Ok(()),
        }
    }
}

/// Reads one role profile's valid credentials from a session's slot, from
/// any thread and for as long as it is held (kmsauth signs with it; the
/// session's refresher keeps the credentials fresh while the session lives).
#[derive(Clone)]
pub(crate) struct RoleReader {
    shared: Arc<Shared>,
    profile: String,
}

impl RoleReader {
    pub(crate) fn profile(&self) -> &str {
        &self.profile
    }

    /// The role's credentials, if valid now.
    pub(crate) fn get(&self) -> Option<Credentials> {
        self.shared
            .slot
            .get()
            .roles
            .get(&self.profile)
            .filter(|c| c.expiration.unix_timestamp_nanos() > self.shared.now_nanos())
            .map(|c| (**c).clone())
    }
}

impl Session {
    /// A reader of `profile`'s role credentials that outlives this borrow.
    pub(crate) fn role_reader(&self, profile: &str) -> RoleReader {
        RoleReader {
            shared: Arc::clone(&self.shared),
            profile: profile.to_owned(),
        }
    }

    /// A handle that puts [`Task`]s on this session's refresher thread
    /// without keeping the session alive.
    pub(crate) fn task_host(&self) -> TaskHost {
        TaskHost {
            shared: Arc::clone(&self.shared),
            runner: Arc::downgrade(&self.refresher),
            refresh: self.refresh,
        }
    }
}

/// Puts background work on a session's refresher thread (see
/// [`crate::tasks`]); held by a kmsauth generator. It does not keep the
/// session alive: once the session is dropped, nothing is added.
#[derive(Clone)]
pub(crate) struct TaskHost {
    shared: Arc<Shared>,
    runner: Weak<Mutex<Runner>>,
    refresh: bool,
}

impl TaskHost {
    /// Registers `task`, due at once, starting the refresher thread when
    /// none runs (or the one running has decided to end). `field` names the
    /// setting in errors: a session built with `refresh(false)`, or
    /// dropped, runs no tasks.
    pub(crate) fn add(&self, task: Box<dyn Task>, field: &'static str) -> Result<()> {
        if !self.refresh {
            return Err(Error::invalid_input(
                field,
                "the session was built with refresh(false): it runs no refresher thread",
            ));
        }
        let gone = || Error::invalid_input(field, "the session has been dropped");
        let runner = self.runner.upgrade().ok_or_else(gone)?;
        let mut runner = lock(&runner);
        if runner.closed {
            return Err(gone());
        }
        let live = runner
            .current
            .as_ref()
            .filter(|r| !r.is_finished())
            .map(Refresher::ending);
        if self.shared.tasks.add(task, live) {
            return Ok(());
        }
        // The thread is ending (or gone) without having seen the task:
        // join it (it has nothing left to do) and start one for the tasks.
        if let Some(old) = runner.current.take() {
            if let Err(e) = old.halt() {
                log::warn!("refresher of `{}` ended badly: {e}", self.shared.profile);
            }
        }
        runner.current = Some(Refresher::spawn(self.shared.clone(), Vec::new(), None)?);
        Ok(())
    }

    /// A sender that wakes the refresher, for the task's owner to use when
    /// it goes away (the task is then dropped at once).
    pub(crate) fn waker(&self) -> crossbeam_channel::Sender<()> {
        self.shared.tasks.waker()
    }

    /// The session's refresh policy (task schedules follow it too).
    pub(crate) fn policy(&self) -> &crate::schedule::RefreshPolicy {
        &self.shared.policy
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // No generator may start a thread once the session is gone.
        lock(&self.refresher).closed = true;
        if let Err(e) = self.halt() {
            log::warn!("refresher of `{}` ended badly: {e}", self.shared.profile);
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
