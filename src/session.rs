//! The session handle: one IAM user's MFA session token, the role
//! credentials assumed from it, and the one refresher thread that keeps them
//! fresh.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::cache::{Cache, CacheUser};
use crate::credentials::{AccessKey, Credentials};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::event::{Event, Subscribers};
use crate::location::FileLocations;
use crate::profile::ProfileFiles;
use crate::refresher::{self, Refresher};
use crate::schedule::RefreshPolicy;
use crate::secret::Secret;
use crate::sts::{AssumeRoleRequest, GetSessionTokenRequest, StsClient, StsClientBuilder};

/// Supplies a fresh MFA code for a device serial, when the session needs a
/// new session token. Called on the refresher thread (or the caller's, from
/// [`Session::generate_session_token`]); it may block, e.g. to ask a person.
pub type MfaProvider = Arc<dyn Fn(&str) -> Result<Secret> + Send + Sync>;

/// The default session-token lifetime: 12 hours, as STS's own default.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The default role-credential lifetime: 1 hour, the most AWS allows for a
/// role assumed with session credentials.
pub const DEFAULT_ROLE_LIFETIME: u32 = 3600;

/// Builds a [`Session`].
///
/// ```no_run
/// use stslib::Session;
/// let session = Session::builder().profile("alice").region("eu-west-1").build()?;
/// # Ok::<(), stslib::Error>(())
/// ```
#[must_use]
pub struct SessionBuilder {
    profile: Option<String>,
    files: Option<ProfileFiles>,
    env: Env,
    /// The client's own settings; the profile's and the environment's are
    /// applied at build time, below explicit ones.
    client: StsClientBuilder,
    policy: RefreshPolicy,
    mfa_provider: Option<MfaProvider>,
    parallelism: usize,
    strict: bool,
    cache: Option<Cache>,
    refresh: bool,
    token_lifetime: Duration,
}

impl fmt::Debug for SessionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("profile", &self.profile)
            .field("client", &self.client)
            .field("policy", &self.policy)
            .field("mfa_provider", &self.mfa_provider.is_some())
            .field("parallelism", &self.parallelism)
            .field("strict", &self.strict)
            .field("cache", &self.cache)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl SessionBuilder {
    /// The IAM-user profile whose long-lived keys get the session token.
    /// Defaults to `AWS_PROFILE`, else `default`.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// The profile files to use. Defaults to the AWS CLI's files, located
    /// through the environment ([`ProfileFiles::load`]).
    pub fn files(mut self, files: ProfileFiles) -> Self {
        self.files = Some(files);
        self
    }

    /// Where environment variables come from. Defaults to the process
    /// environment.
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// The STS region. Defaults to the profile's `region`, else
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.client = self.client.region(region);
        self
    }

    /// The STS endpoint URL. Defaults to `AWS_ENDPOINT_URL_STS`, else
    /// `AWS_ENDPOINT_URL`, else the profile's `endpoint_url`, else the
    /// regional AWS endpoint.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.client = self.client.endpoint(url);
        self
    }

    /// The IAM endpoint URL, used only to look up the user's MFA device
    /// (`ListMFADevices`) when no profile names `mfa_serial`. Defaults to
    /// `AWS_ENDPOINT_URL_IAM`, else `AWS_ENDPOINT_URL`, else the profile's
    /// `endpoint_url`, else IAM's global endpoint.
    pub fn iam_endpoint(mut self, url: impl Into<String>) -> Self {
        self.client = self.client.iam_endpoint(url);
        self
    }

    /// How many times one STS call is tried (throttling, 5xx and I/O
    /// errors are retried). With [`timeout`](Self::timeout) it bounds how
    /// long a halt can wait for a refresh in flight. Defaults to the
    /// client's (see
    /// [`StsClientBuilder::max_attempts`](crate::StsClientBuilder::max_attempts)).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.client = self.client.max_attempts(attempts);
        self
    }

    /// TCP connect timeout of each STS call. Defaults to the client's (see
    /// [`StsClientBuilder::connect_timeout`](crate::StsClientBuilder::connect_timeout)).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.connect_timeout(timeout);
        self
    }

    /// Overall timeout of each STS call attempt. Defaults to the client's
    /// (see [`StsClientBuilder::timeout`](crate::StsClientBuilder::timeout)).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.timeout(timeout);
        self
    }

    /// When and how roles are refreshed. Defaults to
    /// [`RefreshPolicy::default`].
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// A source of MFA codes. With one, the session gets a new session token
    /// by itself when the old one nears its end, and `generate_credentials`
    /// gets a first one when needed. Defaults to none: refreshing stops when
    /// the session token ends.
    pub fn mfa_provider(
        mut self,
        provider: impl Fn(&str) -> Result<Secret> + Send + Sync + 'static,
    ) -> Self {
        self.mfa_provider = Some(Arc::new(provider));
        self
    }

    /// How many `AssumeRole` calls run at once when many roles are asked
    /// for (at least 1). The threads live only for the call. Defaults
    /// to 64.
    pub fn parallelism(mut self, threads: usize) -> Self {
        self.parallelism = threads.max(1);
        self
    }

    /// Whether one failing role fails the whole `generate_credentials` call.
    /// Defaults to `false`: each role gets its own outcome.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// A disk cache for the session token and role credentials, shared with
    /// other processes: a valid cached token is reused without asking for
    /// MFA (taken under the cache's cross-process lock, so processes started
    /// together ask once), cached role credentials are reused while more
    /// than their refresh window remains, and everything obtained or
    /// refreshed is stored. A cache that cannot be read is ignored; one that
    /// cannot be written is logged and ignored. Use
    /// [`Cache::from_env`] for the default `~/.stslib/cache` (or
    /// `STSLIB_CACHE_DIR`). Defaults to none (nothing touches the disk).
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The lifetime of session tokens the session gets by itself (through
    /// the cache or the MFA provider, and on renewal); 15 min to 36 h.
    /// [`Session::generate_session_token`] takes its own. Defaults to
    /// [`DEFAULT_TOKEN_LIFETIME`] (12 h).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Whether a refresher thread keeps role credentials fresh. One-shot
    /// programs (a `credential_process` helper) turn it off. Defaults to
    /// `true`.
    pub fn refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    /// Reads the profile files, resolves the user profile to its static
    /// keys and builds the STS client. No network call is made.
    pub fn build(self) -> Result<Session> {
        let files = match self.files {
            Some(f) => f,
            None => ProfileFiles::load(&self.env)?,
        };
        let profile = self
            .profile
            .unwrap_or_else(|| FileLocations::from_env(&self.env).profile);
        let chain = files.chain(&profile)?;
        if !chain.roles.is_empty() {
            return Err(Error::invalid_profile(
                &profile,
                Some("role_arn"),
                "a session's profile must be an IAM user's (static keys), not a role; \
                 name the user profile and pass role profiles to generate_credentials",
            ));
        }
        let source = files.profile(&profile)?;
        let client = self.client.env(self.env.clone()).profile(source).build()?;
        log::info!(
            "session created for profile `{profile}` (endpoint {})",
            client.endpoint()
        );
        Ok(Session {
            inner: Arc::new(Inner {
                profile,
                files,
                user: chain.source.keys,
                client,
                policy: self.policy,
                mfa_provider: self.mfa_provider,
                parallelism: self.parallelism,
                strict: self.strict,
                cache: self.cache,
                refresh: self.refresh,
                mfa_serial: Mutex::new(None),
                token_lifetime: Mutex::new(self.token_lifetime),
                slot: RwLock::new(Arc::new(Snapshot::default())),
                subscribers: Subscribers::default(),
            }),
            refresher: Mutex::new(None),
        })
    }
}

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
    inner: Arc<Inner>,
    refresher: Mutex<Option<Refresher>>,
}

/// What the session and its refresher thread share.
pub(crate) struct Inner {
    pub(crate) profile: String,
    files: ProfileFiles,
    pub(crate) user: AccessKey,
    pub(crate) client: StsClient,
    pub(crate) policy: RefreshPolicy,
    pub(crate) mfa_provider: Option<MfaProvider>,
    pub(crate) parallelism: usize,
    strict: bool,
    cache: Option<Cache>,
    refresh: bool,
    /// Resolved once: `Some(None)` means "no MFA device".
    mfa_serial: Mutex<Option<Option<String>>>,
    pub(crate) token_lifetime: Mutex<Duration>,
    slot: RwLock<Arc<Snapshot>>,
    pub(crate) subscribers: Subscribers,
}

/// An immutable view of the session's credentials, swapped in whole.
#[derive(Default)]
pub(crate) struct Snapshot {
    pub(crate) token: Option<Arc<Credentials>>,
    pub(crate) roles: BTreeMap<String, Arc<Credentials>>,
    /// Earliest role expiration, as nanoseconds since the Unix epoch, so the
    /// read path can decide "all valid" with one integer compare.
    earliest_nanos: i128,
}

impl Snapshot {
    pub(crate) fn new(
        token: Option<Arc<Credentials>>,
        roles: BTreeMap<String, Arc<Credentials>>,
    ) -> Self {
        let earliest_nanos = roles
            .values()
            .map(|c| c.expiration.unix_timestamp_nanos())
            .min()
            .unwrap_or(i128::MAX);
        Snapshot {
            token,
            roles,
            earliest_nanos,
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.inner.snapshot();
        f.debug_struct("Session")
            .field("profile", &self.inner.profile)
            .field("endpoint", &self.inner.client.endpoint())
            .field("token", &snap.token)
            .field("roles", &snap.roles.keys().collect::<Vec<_>>())
            .field("refreshing", &self.is_refreshing())
            .finish()
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

/// The outcome of [`Session::generate_credentials`] for each profile.
pub type RoleOutcomes = BTreeMap<String, Result<Credentials>>;

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

impl Session {
    /// A builder with every setting at its default.
    pub fn builder() -> SessionBuilder {
        SessionBuilder {
            profile: None,
            files: None,
            env: Env::process(),
            client: StsClient::builder(),
            policy: RefreshPolicy::default(),
            mfa_provider: None,
            parallelism: 64,
            strict: false,
            cache: None,
            refresh: true,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }

    /// The IAM-user profile this session belongs to.
    pub fn profile(&self) -> &str {
        &self.inner.profile
    }

    /// The STS client the session uses.
    pub fn client(&self) -> &StsClient {
        &self.inner.client
    }

    /// The MFA device serial used for the session token: the user
    /// profile's `mfa_serial`, else the one its role profiles name (they
    /// must agree), else the first of IAM `ListMFADevices` for the user,
    /// else none. Resolved once, then remembered.
    pub fn mfa_serial(&self) -> Result<Option<String>> {
        let mut cached = lock(&self.inner.mfa_serial);
        if let Some(s) = &*cached {
            return Ok(s.clone());
        }
        let s = self.resolve_mfa_serial()?;
        *cached = Some(s.clone());
        Ok(s)
    }

    fn resolve_mfa_serial(&self) -> Result<Option<String>> {
        let files = &self.inner.files;
        if let Some(s) = files.profile(&self.inner.profile)?.get("mfa_serial") {
            return Ok(Some(s.to_owned()));
        }
        // Role profiles sourced from this user that name a device.
        let mut found: Option<(String, String)> = None;
        for name in files.profile_names() {
            let Ok(chain) = files.chain(name) else {
                continue;
            };
            if chain.source.profile != self.inner.profile {
                continue;
            }
            for hop in &chain.roles {
                if let Some(serial) = &hop.mfa_serial {
                    match &found {
                        Some((first, other)) if first != serial => {
                            return Err(Error::invalid_profile(
                                &hop.profile,
                                Some("mfa_serial"),
                                format!(
                                    "names MFA device `{serial}` but profile `{other}` names \
                                     `{first}`; role profiles of one user must agree \
                                     (or set mfa_serial on `{}`)",
                                    self.inner.profile
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => found = Some((serial.clone(), hop.profile.clone())),
                    }
                }
            }
        }
        if let Some((serial, _)) = found {
            return Ok(Some(serial));
        }
        // Ask IAM. The user name comes from the caller identity's ARN.
        let client = &self.inner.client;
        let who = client.get_caller_identity(&self.inner.user)?;
        match client.list_mfa_devices(&self.inner.user, who.user_name()) {
            Ok(serials) => Ok(serials.into_iter().next()),
            Err(e) if e.code() == Some("AccessDenied") => {
                log::warn!("ListMFADevices denied; continuing without MFA: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
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
        let _guard = self.inner.cache.as_ref().and_then(|c| {
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
            (Some(serial), None) => match &self.inner.mfa_provider {
                Some(provider) => Some(provider(serial)?),
                None => {
                    return Err(Error::invalid_input(
                        "TokenCode",
                        format!("an MFA code is needed for device `{serial}`"),
                    ))
                }
            },
        };
        let token = self
            .inner
            .get_session_token(secs, serial.as_deref(), code)?;
        self.inner.store_token(serial.as_deref(), &token);
        self.inner.adopt_token(lifetime, &token);
        log::info!(
            "session token for `{}` obtained, expires {}",
            self.inner.profile,
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
            specs.iter().map(|s| self.inner.cached_role(s)).collect();
        let missing: Vec<RoleSpec> = specs
            .iter()
            .zip(&cached)
            .filter(|(_, c)| c.is_none())
            .map(|(s, _)| s.clone())
            .collect();
        let token = if missing.is_empty() {
            self.inner.valid_token()
        } else {
            Some(self.token_for_roles()?)
        };
        let mut fetched = match &token {
            Some(token) => refresher::assume_all(&self.inner, token, &missing),
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
                        self.inner.store_role(spec, c);
                    }
                    (profile, r)
                }
            })
            .collect();
        if self.inner.strict {
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
        self.inner
            .publish(Snapshot::new(token.clone(), roles.clone()));
        let ok = roles.len();
        log::info!(
            "generate_credentials for `{}`: {ok} of {} roles obtained",
            self.inner.profile,
            results.len()
        );
        let live: Vec<_> = specs
            .into_iter()
            .filter(|s| roles.contains_key(&s.profile))
            .collect();
        let needed = token
            .as_ref()
            .is_some_and(|t| refresher::needs_refresher(&self.inner, t, &roles));
        if self.inner.refresh && needed {
            let r = Refresher::spawn(self.inner.clone(), live)?;
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
        if let Some(t) = self.inner.valid_token() {
            return Ok(t);
        }
        let lifetime = *lock(&self.inner.token_lifetime);
        if self.inner.mfa_provider.is_some() {
            return self.generate_session_token(lifetime, None).map(Arc::new);
        }
        if self.inner.cache.is_some() {
            let serial = self.mfa_serial()?;
            if let Some(t) = self.cached_token(serial.as_deref(), lifetime) {
                return Ok(Arc::new(t));
            }
        }
        Err(Error::NoCredentials {
            profile: self.inner.profile.clone(),
            message: "no valid session token; call generate_session_token first".into(),
        })
    }

    /// A cached session token for this user and `serial` that lasts more
    /// than the refresh window of `lifetime`, made the session's token.
    fn cached_token(&self, serial: Option<&str>, lifetime: Duration) -> Option<Credentials> {
        let margin = self.inner.policy.window(lifetime);
        let token = self
            .inner
            .cache
            .as_ref()?
            .load_token(self.inner.cache_user(), serial, margin)?
            .credentials;
        log::info!(
            "session token for `{}` reused from the cache, expires {}",
            self.inner.profile,
            token.expiration_iso()
        );
        self.inner.adopt_token(lifetime, &token);
        Some(token)
    }

    fn role_spec(&self, profile: &str) -> Result<RoleSpec> {
        let chain = self.inner.files.chain(profile)?;
        if chain.roles.is_empty() {
            return Err(Error::invalid_profile(
                profile,
                Some("role_arn"),
                "is not a role profile (no role_arn)",
            ));
        }
        if chain.source.profile != self.inner.profile {
            return Err(Error::invalid_profile(
                profile,
                Some("source_profile"),
                format!(
                    "is sourced from `{}`, not from this session's user `{}`",
                    chain.source.profile, self.inner.profile
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
        self.inner.snapshot().token.as_deref().cloned()
    }

    /// Role credentials that are valid now; expired ones are left out.
    /// Cheap: no lock is held across I/O and nothing waits on the network.
    pub fn current_credentials(&self) -> CredentialSet {
        let snap = self.inner.snapshot();
        let now = self.inner.now_nanos();
        if now < snap.earliest_nanos {
            return CredentialSet { snap };
        }
        let roles = snap
            .roles
            .iter()
            .filter(|(_, c)| c.expiration.unix_timestamp_nanos() > now)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        CredentialSet {
            snap: Arc::new(Snapshot::new(snap.token.clone(), roles)),
        }
    }

    /// The latest role credentials, expired or not.
    pub fn credentials(&self) -> CredentialSet {
        CredentialSet {
            snap: self.inner.snapshot(),
        }
    }

    /// Valid credentials of one profile, if any.
    pub fn credentials_for(&self, profile: &str) -> Option<Credentials> {
        let snap = self.inner.snapshot();
        snap.roles
            .get(profile)
            .filter(|c| c.expiration.unix_timestamp_nanos() > self.inner.now_nanos())
            .map(|c| (**c).clone())
    }

    /// A new subscription to this session's [`Event`]s. Dropping the
    /// receiver unsubscribes.
    pub fn subscribe(&self) -> crossbeam_channel::Receiver<Event> {
        self.inner.subscribers.subscribe()
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
            log::warn!("refresher of `{}` ended badly: {e}", self.inner.profile);
        }
    }
}

impl Inner {
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn publish(&self, snap: Snapshot) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
    }

    /// Replaces the snapshot with one made from the current one, under the
    /// write lock, so concurrent writers (the caller's thread and the
    /// refresher) never undo each other's changes.
    pub(crate) fn update(&self, f: impl FnOnce(&Snapshot) -> Snapshot) {
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        let next = f(&slot);
        *slot = Arc::new(next);
    }

    /// Now, by the system clock corrected with the skew STS taught the
    /// client: expiry decisions compare STS's expirations against this.
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.client.now()
    }

    /// [`now`](Self::now) as nanoseconds since the Unix epoch, cheaply (the
    /// read path calls it).
    pub(crate) fn now_nanos(&self) -> i128 {
        let local = match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        local + self.client.clock_skew().whole_nanoseconds()
    }

    /// Makes `token` the session's token.
    fn adopt_token(&self, lifetime: Duration, token: &Credentials) {
        *lock(&self.token_lifetime) = lifetime;
        let new = Arc::new(token.clone());
        self.update(|snap| Snapshot::new(Some(new), snap.roles.clone()));
    }

    /// Whose entries this session reads and writes in the cache.
    pub(crate) fn cache_user(&self) -> CacheUser<'_> {
        CacheUser::new(&self.profile, &self.user.access_key_id)
    }

    /// Cached credentials of `spec` with more than its refresh window left.
    fn cached_role(&self, spec: &RoleSpec) -> Option<Credentials> {
        let window = self
            .policy
            .window(Duration::from_secs(u64::from(spec.lifetime)));
        let c = self
            .cache
            .as_ref()?
            .load_role(self.cache_user(), &spec.profile, &spec.role_arn, window)?
            .credentials;
        log::debug!("role `{}` reused from the cache", spec.profile);
        Some(c)
    }

    /// Stores role credentials in the cache, if any; failures are logged.
    pub(crate) fn store_role(&self, spec: &RoleSpec, c: &Credentials) {
        if let Some(cache) = &self.cache {
            let offset = self.client.clock_skew();
            let user = self.cache_user();
            if let Err(e) = cache.store_role(user, &spec.profile, &spec.role_arn, c, offset) {
                log::warn!("cache: cannot store `{}`: {e}", spec.profile);
            }
        }
    }

    /// Stores a session token in the cache, if any; failures are logged.
    pub(crate) fn store_token(&self, serial: Option<&str>, token: &Credentials) {
        if let Some(cache) = &self.cache {
            let offset = self.client.clock_skew();
            if let Err(e) = cache.store_token(self.cache_user(), serial, token, offset) {
                log::warn!("cache: cannot store the session token: {e}");
            }
        }
    }

    fn valid_token(&self) -> Option<Arc<Credentials>> {
        self.snapshot()
            .token
            .clone()
            .filter(|t| t.expiration.unix_timestamp_nanos() > self.now_nanos())
    }

    pub(crate) fn get_session_token(
        &self,
        secs: u32,
        serial: Option<&str>,
        code: Option<Secret>,
    ) -> Result<Credentials> {
        let mut req = GetSessionTokenRequest::new().duration_seconds(secs);
        if let (Some(serial), Some(code)) = (serial, code) {
            req = req.serial_number(serial).token_code(code);
        }
        self.client.get_session_token(&self.user, &req)
    }

    /// The remembered MFA serial (resolved by the session before any
    /// refresher starts).
    pub(crate) fn known_mfa_serial(&self) -> Option<String> {
        lock(&self.mfa_serial).clone().flatten()
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
