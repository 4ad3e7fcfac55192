//! The session builder: settings, then one `build` that reads the profile
//! files and resolves the user profile. No network call.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::event::Subscribers;
use crate::location::FileLocations;
use crate::mfa::MfaProvider;
use crate::profile::ProfileFiles;
use crate::refresher::Shared;
use crate::schedule::RefreshPolicy;
use crate::secret::Secret;
use crate::slot::Slot;
use crate::sts::StsClientBuilder;
use crate::tasks::Tasks;

use super::Session;
use crate::limits::DEFAULT_TOKEN_LIFETIME;

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
    clock: Clock,
    policy: RefreshPolicy,
    mfa_provider: Option<MfaProvider>,
    parallelism: usize,
    strict: bool,
    cache: Option<Cache>,
    refresh: bool,
    token_lifetime: Duration,
    require_mfa: bool,
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
            .field("require_mfa", &self.require_mfa)
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

    /// The STS endpoint URL: where `GetSessionToken` and every `AssumeRole`
    /// of the session (and of its refresher) go. It does not redirect the
    /// IAM `ListMFADevices` lookup (see
    /// [`iam_endpoint`](Self::iam_endpoint)); set both for a local STS and
    /// IAM such as moto. Wins over every other source. Defaults to
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the `sts`
    /// endpoint of the profile's services section, else the profile's
    /// `endpoint_url`, else the regional AWS endpoint (the AWS SDKs' order;
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` keeps only this setting).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.client = self.client.endpoint(url);
        self
    }

    /// The IAM endpoint URL, used only to look up the user's MFA device
    /// (`ListMFADevices`) when no profile names `mfa_serial`. Defaults to
    /// `AWS_ENDPOINT_URL_IAM`, else `AWS_ENDPOINT_URL`, else the `iam`
    /// endpoint of the profile's services section, else the profile's
    /// `endpoint_url`, else IAM's global endpoint. `AWS_ENDPOINT_URL_STS`
    /// does not apply to IAM.
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

    /// How long an STS call attempt waits for the server (per read or
    /// write; twice that per phase). Defaults to the client's
    /// (see [`StsClientBuilder::timeout`](crate::StsClientBuilder::timeout)).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.timeout(timeout);
        self
    }

    /// Where the session reads the time: the STS client signs with it, the
    /// refresher's deadlines and every validity check compare against it
    /// (corrected by the skew the client learns from STS). A
    /// [`ManualClock`](crate::clock::ManualClock)'s clock lets a test drive
    /// hours of refreshes without sleeping. Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
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
        self.mfa_provider = Some(MfaProvider::new(provider));
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
    /// MFA, cached role credentials are reused while more than their refresh
    /// window remains, and everything obtained or refreshed is stored. The
    /// MFA provider is asked before the cache's cross-process lock is taken;
    /// under the lock (held for a look only, never across a prompt or an
    /// STS call) the cache is checked again and the fetch recorded, so
    /// processes started together make one GetSessionToken and one
    /// AssumeRole per role. A
    /// cached token STS rejects is removed. A cache that cannot be read (or
    /// is not trusted: see [`Cache`]) is ignored with a warning; one that
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

    /// Whether finding no MFA device for the user is an error. The device
    /// is looked for in the user profile's `mfa_serial`, then in the role
    /// profiles sourced from it, then with IAM `ListMFADevices`; when all
    /// come up empty (or IAM denies the lookup), a session token without MFA
    /// would fail every MFA-protected role with a bare `AccessDenied`. With
    /// `true` that is an [`Error::InvalidProfile`] naming where it looked;
    /// with `false` a session without MFA is made (a denied lookup is
    /// logged as a warning). Defaults to `false`; the `stslib` command sets
    /// it unless `--no-mfa` is given.
    pub fn require_mfa(mut self, require: bool) -> Self {
        self.require_mfa = require;
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
        let client = self
            .client
            .env(self.env.clone())
            .profile(source)
            .clock(self.clock.clone())
            .build()?;
        log::info!(
            "session created for profile `{profile}` (endpoint {})",
            client.endpoint()
        );
        Ok(Session {
            shared: Arc::new(Shared {
                profile,
                user: chain.source.keys,
                client,
                clock: self.clock,
                policy: self.policy,
                mfa_provider: self.mfa_provider,
                parallelism: self.parallelism,
                cache: self.cache,
                slot: Slot::default(),
                tasks: Tasks::default(),
                subscribers: Subscribers::default(),
            }),
            files: Box::new(files),
            strict: self.strict,
            refresh: self.refresh,
            default_token_lifetime: self.token_lifetime,
            mfa_serial: Mutex::new(None),
            require_mfa: self.require_mfa,
            token_state: Mutex::default(),
            refresher: Arc::default(),
        })
    }
}

impl SessionBuilder {
    pub(super) fn new() -> Self {
        SessionBuilder {
            profile: None,
            files: None,
            env: Env::process(),
            client: StsClientBuilder::default(),
            clock: Clock::system(),
            policy: RefreshPolicy::default(),
            mfa_provider: None,
            parallelism: 64,
            strict: false,
            cache: None,
            refresh: true,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            require_mfa: false,
        }
    }
}
