//! The blocking STS (and IAM) client: validate, sign, send, retry, parse.
//!
//! Protocol: AWS Query over `POST`, a form body encoded as botocore does
//! (see `wire.rs`), SigV4 from `aws-sigv4` over exactly the headers sent
//! except `user-agent` (`content-type`, `host`, `x-amz-date` and, with
//! temporary keys, `x-amz-security-token`). One `ureq::Agent` per client, so
//! connections are kept alive between calls.
//!
//! Retries: throttling codes, HTTP 429 and 5xx answers, and I/O failures
//! (refused, reset, timeout) are retried up to `max_attempts` in all, with
//! exponential backoff and full jitter (base 100 ms, cap 2 s). Anything
//! else (`AccessDenied`, `ExpiredToken`, `SignatureDoesNotMatch`, other 4xx)
//! is returned at once.
//!
//! Logging: `debug` lines name the action, endpoint, attempt, status and
//! request id; never a key, token, MFA code or body. (ureq itself logs raw
//! wire bytes at `trace`.)
//!
//! The SigV4 signing key is derived anew per request: `aws-sigv4` offers no
//! hook to pass a cached key to `http_request::sign`, and the derivation is
//! four HMAC-SHA256 operations, negligible next to a network round trip.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use crossbeam_channel::{select_biased, Receiver};
use time::OffsetDateTime;

use crate::credentials::{AccessKey, AssumedRole, CallerIdentity, Credentials};
use crate::endpoint::{self, Endpoint, StsEndpointConfig};
use crate::env::Env;
use crate::error::{cap, Error, Result, ServiceError};
use crate::secret::Secret;
use crate::wire;

const STS_VERSION: &str = "2011-06-15";
const IAM_VERSION: &str = "2010-05-08";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
const USER_AGENT: &str = concat!("stslib/", env!("CARGO_PKG_VERSION"));
const BACKOFF_BASE_MS: u64 = 100;
const BACKOFF_CAP_MS: u64 = 2_000;
/// More `ListMFADevices` pages than any user has devices is a loop.
const MAX_PAGES: usize = 100;

/// AWS error codes that mean "slow down"; retried.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "IDPCommunicationError",
];

/// Where the client reads the time used for signing and for
/// [`Credentials::start_time`].
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Parameters of `GetSessionToken`.
///
/// ```
/// use stslib::GetSessionTokenRequest;
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

    fn params(&self) -> Result<Vec<(&'static str, String)>> {
        let mut p = Vec::new();
        if let Some(d) = self.duration_seconds {
            check_duration(d, 129_600)?;
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
/// use stslib::AssumeRoleRequest;
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

    fn params(&self) -> Result<Vec<(&'static str, String)>> {
        check_role_arn(&self.role_arn)?;
        check_session_name(&self.role_session_name)?;
        let mut p = vec![
            ("RoleArn", self.role_arn.clone()),
            ("RoleSessionName", self.role_session_name.clone()),
        ];
        if let Some(d) = self.duration_seconds {
            check_duration(d, 43_200)?;
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

fn check_duration(seconds: u32, max: u32) -> Result<()> {
    if (900..=max).contains(&seconds) {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "DurationSeconds",
            format!("{seconds} is outside 900..={max}"),
        ))
    }
}

/// `\w` as IAM means it, plus the extra characters allowed.
fn word_or(extra: &'static str) -> impl Fn(char) -> bool {
    move |c: char| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c)
}

fn check_session_name(name: &str) -> Result<()> {
    if (2..=64).contains(&name.len()) && name.chars().all(word_or("+=,.@-")) {
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

fn check_user_name(name: &str) -> Result<()> {
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

/// A blocking client for STS (`GetSessionToken`, `AssumeRole`,
/// `GetCallerIdentity`) and IAM `ListMFADevices`.
///
/// Cheap to clone (the connection pool is shared). Each call takes the keys
/// to sign with, so one client serves a whole profile chain.
///
/// ```no_run
/// use stslib::{AccessKey, GetSessionTokenRequest, Secret, StsClient};
/// let client = StsClient::builder().region("eu-west-1").build()?;
/// let keys = AccessKey {
///     access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
///     secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
///     session_token: None,
/// };
/// let creds = client.get_session_token(
///     &keys,
///     &GetSessionTokenRequest::new()
///         .serial_number("arn:aws:iam::123456789012:mfa/alice")
///         .token_code("123456"),
/// )?;
/// println!("valid for {}", creds.humanized_remaining());
/// # Ok::<(), stslib::Error>(())
/// ```
#[derive(Clone)]
pub struct StsClient {
    agent: ureq::Agent,
    sts: Endpoint,
    iam: Endpoint,
    max_attempts: u32,
    clock: Clock,
    /// Server time minus local time, in milliseconds, learnt from the
    /// `Date` header of a clock-skew error; shared by clones.
    skew_ms: Arc<AtomicI64>,
}

impl fmt::Debug for StsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsClient")
            .field("sts", &self.sts.url)
            .field("sts_signing_region", &self.sts.signing_region)
            .field("iam", &self.iam.url)
            .field("max_attempts", &self.max_attempts)
            .field("clock_skew_ms", &self.skew_ms.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Builds an [`StsClient`].
#[must_use]
#[derive(Clone)]
pub struct StsClientBuilder {
    region: Option<String>,
    profile_region: Option<String>,
    endpoint: Option<String>,
    iam_endpoint: Option<String>,
    profile_endpoint_url: Option<String>,
    legacy_global_endpoint: bool,
    env: Env,
    connect_timeout: Duration,
    timeout: Duration,
    max_attempts: u32,
    clock: Clock,
}

impl fmt::Debug for StsClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsClientBuilder")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("iam_endpoint", &self.iam_endpoint)
            .field("profile_endpoint_url", &self.profile_endpoint_url)
            .field("legacy_global_endpoint", &self.legacy_global_endpoint)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Default for StsClientBuilder {
    fn default() -> Self {
        StsClientBuilder {
            region: None,
            profile_region: None,
            endpoint: None,
            iam_endpoint: None,
            profile_endpoint_url: None,
            legacy_global_endpoint: false,
            env: Env::process(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            clock: Arc::new(SystemTime::now),
        }
    }
}

impl StsClientBuilder {
    /// The AWS region: picks the regional STS endpoint and the SigV4 signing
    /// region. Defaults to the profile's `region` (see
    /// [`profile`](Self::profile)), else `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Takes the profile's `region`, `endpoint_url` and
    /// `sts_regional_endpoints = legacy` as the defaults they are in the AWS
    /// CLI; explicit [`region`](Self::region) and
    /// [`endpoint`](Self::endpoint) settings and the environment's
    /// endpoint variables still win. Defaults to no profile.
    pub fn profile(mut self, profile: &crate::Profile) -> Self {
        self.profile_region = profile.get("region").map(str::to_owned);
        self.profile_endpoint_url = profile.get("endpoint_url").map(str::to_owned);
        self.legacy_global_endpoint = profile
            .get("sts_regional_endpoints")
            .is_some_and(|v| v.eq_ignore_ascii_case("legacy"));
        self
    }

    /// An explicit STS endpoint URL, winning over every other source. Plain
    /// `http://` is accepted only for loopback hosts. Defaults to none.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// An explicit IAM endpoint URL (for `ListMFADevices`). Defaults to
    /// none: `AWS_ENDPOINT_URL_IAM`, `AWS_ENDPOINT_URL`, the profile's
    /// `endpoint_url`, then the partition's global IAM endpoint.
    pub fn iam_endpoint(mut self, url: impl Into<String>) -> Self {
        self.iam_endpoint = Some(url.into());
        self
    }

    /// The profile's `endpoint_url`, used when neither an explicit endpoint
    /// nor `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` is set. Defaults to
    /// none.
    pub fn profile_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.profile_endpoint_url = Some(url.into());
        self
    }

    /// `sts_regional_endpoints = legacy`: the regions AWS historically
    /// served from `https://sts.amazonaws.com` use it again (signed for
    /// `us-east-1`). Defaults to `false` (regional endpoints).
    pub fn legacy_global_endpoint(mut self, legacy: bool) -> Self {
        self.legacy_global_endpoint = legacy;
        self
    }

    /// Where `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_IAM` and
    /// `AWS_ENDPOINT_URL` are read from. Defaults to the process
    /// environment.
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// Time allowed to connect (DNS, TCP, TLS). Defaults to 3 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one attempt, connect to last byte. Defaults to 10
    /// seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per call, first one included (1 = no retries). Defaults
    /// to 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The clock used for the SigV4 date and for
    /// [`Credentials::start_time`], so a clock-skew correction can be slotted
    /// in. Defaults to [`SystemTime::now`].
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Resolves the endpoints and creates the connection pool. Fails on an
    /// invalid region, a refused endpoint, `max_attempts == 0` or a zero
    /// timeout; no network call is made.
    pub fn build(self) -> Result<StsClient> {
        if self.max_attempts == 0 {
            return Err(Error::invalid_input("max_attempts", "must be at least 1"));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::invalid_input(
                "timeout",
                "timeouts must be greater than zero",
            ));
        }
        let region = self
            .region
            .clone()
            .or_else(|| self.profile_region.clone())
            .or_else(|| self.env.get("AWS_REGION"))
            .or_else(|| self.env.get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let sts = endpoint::resolve_sts(
            &StsEndpointConfig {
                region: &region,
                explicit: self.endpoint.as_deref(),
                profile_endpoint_url: self.profile_endpoint_url.as_deref(),
                legacy_global: self.legacy_global_endpoint,
            },
            &self.env,
        )?;
        let iam = endpoint::resolve_iam(
            &region,
            self.iam_endpoint.as_deref(),
            self.profile_endpoint_url.as_deref(),
            &self.env,
        )?;
        // The IAM endpoint is only needed to look up MFA devices: it is
        // checked when used, so a loopback-only build works without it.
        check_tls(&sts.url)?;
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(USER_AGENT)
            .timeout_connect(Some(self.connect_timeout))
            .timeout_global(Some(self.timeout))
            // A fan-out of many AssumeRole calls keeps its connections for
            // the next refresh round instead of reopening all but three.
            .max_idle_connections(IDLE_CONNECTIONS)
            .max_idle_connections_per_host(IDLE_CONNECTIONS);
        // Proxies come from the Env seam, not from ureq's own reading of the
        // process environment; a loopback endpoint is never proxied.
        let proxy = match endpoint::proxy_for(&self.env, &sts) {
            Some(url) => Some(ureq::Proxy::new(&url).map_err(|e| {
                // The URL may hold a password: it is not repeated here.
                Error::invalid_input("HTTPS_PROXY", format!("not a usable proxy URL ({e})"))
            })?),
            None => None,
        };
        config = config.proxy(proxy);
        #[cfg(feature = "tls")]
        if let Some(path) = self.env.get("AWS_CA_BUNDLE") {
            config = config.tls_config(ca_bundle(&path)?);
        }
        Ok(StsClient {
            agent: config.build().new_agent(),
            sts,
            iam,
            max_attempts: self.max_attempts,
            clock: self.clock,
            skew_ms: Arc::new(AtomicI64::new(0)),
        })
    }
}

impl StsClient {
    /// A builder with the defaults: `us-east-1`, regional endpoint, 3 s to
    /// connect, 10 s per attempt, 3 attempts.
    pub fn builder() -> StsClientBuilder {
        StsClientBuilder::default()
    }

    /// The resolved STS endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.sts.url
    }

    /// The resolved IAM endpoint URL.
    pub fn iam_endpoint(&self) -> &str {
        &self.iam.url
    }

    /// The region STS requests are signed for.
    pub fn signing_region(&self) -> &str {
        &self.sts.signing_region
    }

    /// `GetSessionToken`: temporary credentials for the IAM user owning
    /// `keys`, with MFA when the request carries a serial and code.
    pub fn get_session_token(
        &self,
        keys: &AccessKey,
        req: &GetSessionTokenRequest,
    ) -> Result<Credentials> {
        let params = req.params()?;
        let reply = self.call("GetSessionToken", Service::Sts, keys, &params, None)?;
        wire::parse_get_session_token(&reply.body, reply.start_time)
            .map_err(|e| with_header_request_id(e, reply.request_id))
    }

    /// `AssumeRole`: temporary credentials for a role.
    pub fn assume_role(&self, keys: &AccessKey, req: &AssumeRoleRequest) -> Result<AssumedRole> {
        self.assume_role_cancellable(keys, req, None)
    }

    /// [`assume_role`](Self::assume_role) whose retry backoff ends early
    /// when `cancel` gets a message or is disconnected (a halting
    /// refresher): the last attempt's error is returned then.
    pub(crate) fn assume_role_cancellable(
        &self,
        keys: &AccessKey,
        req: &AssumeRoleRequest,
        cancel: Option<&Receiver<()>>,
    ) -> Result<AssumedRole> {
        let params = req.params()?;
        let reply = self.call("AssumeRole", Service::Sts, keys, &params, cancel)?;
        wire::parse_assume_role(&reply.body, reply.start_time)
            .map_err(|e| with_header_request_id(e, reply.request_id))
    }

    /// `GetCallerIdentity`: who `keys` belong to.
    pub fn get_caller_identity(&self, keys: &AccessKey) -> Result<CallerIdentity> {
        let reply = self.call("GetCallerIdentity", Service::Sts, keys, &[], None)?;
        wire::parse_caller_identity(&reply.body)
            .map_err(|e| with_header_request_id(e, reply.request_id))
    }

    /// IAM `ListMFADevices`: the serial numbers (ARNs for virtual devices)
    /// of `user_name`'s MFA devices, or of the caller's own when `None`.
    /// Follows pagination.
    pub fn list_mfa_devices(
        &self,
        keys: &AccessKey,
        user_name: Option<&str>,
    ) -> Result<Vec<String>> {
        let mut base = Vec::new();
        if let Some(name) = user_name {
            check_user_name(name)?;
            base.push(("UserName", name.to_owned()));
        }
        let mut serials = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = base.clone();
            if let Some(m) = marker.take() {
                params.push(("Marker", m));
            }
            let reply = self.call("ListMFADevices", Service::Iam, keys, &params, None)?;
            let page = wire::parse_list_mfa_devices(&reply.body)
                .map_err(|e| with_header_request_id(e, reply.request_id))?;
            serials.extend(page.devices.into_iter().map(|d| d.serial_number));
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => return Ok(serials),
            }
        }
        Err(Error::Response {
            action: "ListMFADevices",
            message: format!("more than {MAX_PAGES} pages"),
            request_id: None,
        })
    }

    /// Sends one action with retries; returns the 2xx body.
    fn call(
        &self,
        action: &'static str,
        service: Service,
        keys: &AccessKey,
        params: &[(&'static str, String)],
        cancel: Option<&Receiver<()>>,
    ) -> Result<Reply> {
        let (target, version) = match service {
            Service::Sts => (&self.sts, STS_VERSION),
            Service::Iam => (&self.iam, IAM_VERSION),
        };
        check_tls(&target.url)?;
        let body = wire::form_encode(
            [("Action", action), ("Version", version)]
                .into_iter()
                .chain(params.iter().map(|(k, v)| (*k, v.as_str()))),
        )
        .into_bytes();
        let mut attempt = 1;
        let mut skew_corrected = false;
        loop {
            let outcome = match self.attempt(action, service, target, keys, &body) {
                // Signed at a time STS refused, and its Date header told us
                // its clock: sign again, once, at the corrected time.
                Attempt::SkewCorrected(_) if !skew_corrected => {
                    skew_corrected = true;
                    continue;
                }
                Attempt::SkewCorrected(e) => Err(e),
                Attempt::Done(r) => r,
            };
            let retry = match &outcome {
                Ok(_) => false,
                Err(e) => attempt < self.max_attempts && is_retryable(e),
            };
            if !retry {
                return outcome;
            }
            let delay = backoff(attempt);
            log::debug!(
                "{action}: attempt {attempt} of {} failed ({}); retrying in {} ms",
                self.max_attempts,
                outcome.as_ref().err().map(short_reason).unwrap_or_default(),
                delay.as_millis()
            );
            let wait = crossbeam_channel::after(delay);
            match cancel {
                Some(cancel) => select_biased! {
                    recv(cancel) -> _ => return outcome,
                    recv(wait) -> _ => {}
                },
                None => {
                    let _ = wait.recv();
                }
            }
            attempt += 1;
        }
    }

    /// The clock offset learnt from STS: server time minus local time.
    /// Zero until STS rejects a request for its time (then the SDKs' rule
    /// applies: the `Date` header of the rejection sets it).
    pub fn clock_skew(&self) -> time::Duration {
        time::Duration::milliseconds(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Starts from a clock offset learnt earlier (by another process, kept
    /// in the disk cache), unless this client has learnt one itself. Saves
    /// the one request STS would reject for its signing time.
    pub(crate) fn seed_clock_skew(&self, skew: time::Duration) {
        let ms = skew
            .whole_milliseconds()
            .clamp(i64::MIN.into(), i64::MAX.into()) as i64;
        if ms != 0
            && self
                .skew_ms
                .compare_exchange(0, ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::debug!(
                "clock offset {} s taken from the cache",
                skew.whole_seconds()
            );
        }
    }

    /// The current time by the client's clock, corrected by the learnt
    /// skew: what expiry decisions should compare against.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from((self.clock)()) + self.clock_skew()
    }

    /// One signed POST, or the news that it was refused for clock skew and
    /// the skew has been corrected.
    fn attempt(
        &self,
        action: &'static str,
        service: Service,
        target: &Endpoint,
        keys: &AccessKey,
        body: &[u8],
    ) -> Attempt {
        match self.attempt_once(action, service, target, keys, body) {
            Ok(reply) => Attempt::Done(Ok(reply)),
            Err((e, date)) => match date.filter(|_| is_skew_error(&e)) {
                Some(server) => {
                    let local = OffsetDateTime::from((self.clock)());
                    let skew = server - local;
                    let old = self.clock_skew();
                    if (skew - old).abs() < time::Duration::seconds(1) {
                        // Our clock already agrees: something else is wrong.
                        return Attempt::Done(Err(e));
                    }
                    log::warn!(
                        "{action}: STS rejected the request time; local clock is off by {} s, \
                         signing with the corrected time",
                        skew.whole_seconds()
                    );
                    self.skew_ms
                        .store(skew.whole_milliseconds() as i64, Ordering::Relaxed);
                    Attempt::SkewCorrected(e)
                }
                None => Attempt::Done(Err(e)),
            },
        }
    }

    fn attempt_once(
        &self,
        action: &'static str,
        service: Service,
        target: &Endpoint,
        keys: &AccessKey,
        body: &[u8],
    ) -> std::result::Result<Reply, (Error, Option<OffsetDateTime>)> {
        let plain = |e: Error| (e, None);
        let now = shift((self.clock)(), self.clock_skew());
        let start_time = OffsetDateTime::from(now);
        let auth_headers = sign_headers(action, service, target, keys, body, now).map_err(plain)?;

        let mut builder = ureq::http::Request::builder()
            .method("POST")
            .uri(&target.url)
            .header("host", &target.host)
            .header("content-type", CONTENT_TYPE);
        for (name, value) in &auth_headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder.body(body).map_err(|e| {
            plain(Error::Transport {
                action,
                message: format!("cannot build the request: {e}"),
                source: Some(Box::new(e)),
            })
        })?;

        let mut response = self
            .agent
            .run(request)
            .map_err(|e| plain(transport(action, e)))?;
        let status = response.status().as_u16();
        let date = response
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let header_rid = response
            .headers()
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        log::debug!(
            "{action}: POST {} -> HTTP {status}, request id {}",
            target.url,
            header_rid.as_deref().unwrap_or("-")
        );
        let body = response
            .body_mut()
            .with_config()
            .limit(wire::MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => plain(Error::Response {
                    action,
                    message: format!(
                        "response body larger than {} bytes",
                        wire::MAX_RESPONSE_BYTES
                    ),
                    request_id: header_rid.clone(),
                }),
                e => plain(transport(action, e)),
            })?;
        if (200..300).contains(&status) {
            Ok(Reply {
                body,
                request_id: header_rid,
                start_time,
            })
        } else {
            Err((
                wire::parse_error(action, status, &body, header_rid.as_deref()).into(),
                date,
            ))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Sts,
    Iam,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::Sts => "sts",
            Service::Iam => "iam",
        }
    }
}

struct Reply {
    body: Vec<u8>,
    request_id: Option<String>,
    start_time: OffsetDateTime,
}

/// The SigV4 headers to add (`x-amz-date`, `authorization`,
/// `x-amz-security-token`), signing `host`, `content-type` and those.
fn sign_headers(
    action: &'static str,
    service: Service,
    target: &Endpoint,
    keys: &AccessKey,
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>> {
    let signing_failed = |message: String| Error::InvalidInput {
        field: "signing",
        message: format!("{action}: cannot sign the request: {message}"),
    };
    let identity = aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose(),
        keys.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "stslib",
    )
    .into();
    let mut settings = SigningSettings::default();
    // botocore leaves these out when it recomputes the signature.
    settings
        .excluded_headers
        .get_or_insert_with(Vec::new)
        .extend(["user-agent".into(), "expect".into()]);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&target.signing_region)
        .name(service.signing_name())
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| signing_failed(e.to_string()))?
        .into();
    let headers = [
        ("host", target.host.as_str()),
        ("content-type", CONTENT_TYPE),
    ];
    let signable = SignableRequest::new(
        "POST",
        target.url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| signing_failed(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| signing_failed(e.to_string()))?
        .into_parts();
    let (added, _query) = instructions.into_parts();
    Ok(added
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

fn transport(action: &'static str, e: ureq::Error) -> Error {
    let message = match &e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        // The inner error says what went wrong (a refused certificate, a
        // reset connection); it never carries request data.
        ureq::Error::Io(io) => match io.get_ref() {
            Some(inner) => format!("I/O error: {}: {inner}", io.kind()),
            None => format!("I/O error: {}", io.kind()),
        },
        other => other.to_string(),
    };
    Error::Transport {
        action,
        message,
        source: Some(Box::new(e)),
    }
}

/// Throttling codes, 429, 5xx and I/O-level failures.
fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Service(s) => is_retryable_service(s),
        Error::Transport {
            source: Some(source),
            ..
        } => match source.downcast_ref::<ureq::Error>() {
            // A refused certificate (invalid data) will be refused again.
            Some(ureq::Error::Io(io)) => io.kind() != std::io::ErrorKind::InvalidData,
            Some(ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed) => true,
            Some(_) | None => false,
        },
        _ => false,
    }
}

fn is_retryable_service(s: &ServiceError) -> bool {
    THROTTLING_CODES.contains(&s.code.as_str()) || s.status == 429 || (500..600).contains(&s.status)
}

/// Full jitter: uniform in `0..=min(cap, base * 2^(attempt-1))`.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE_MS
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(BACKOFF_CAP_MS);
    Duration::from_millis(crate::rand::below(ceiling + 1))
}

fn short_reason(e: &Error) -> String {
    match e {
        Error::Service(s) => format!("HTTP {} {}", s.status, s.code),
        Error::Transport { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Adds the header request id to a parse error that has none.
fn with_header_request_id(e: Error, header_rid: Option<String>) -> Error {
    match e {
        Error::Response {
            action,
            message,
            request_id: None,
        } => Error::Response {
            action,
            message,
            request_id: header_rid,
        },
        other => other,
    }
}

/// A TLS configuration trusting only the certificates in the PEM file at
/// `path` (`AWS_CA_BUNDLE`, as the AWS SDKs read it).
#[cfg(feature = "tls")]
fn ca_bundle(path: &str) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
    let pem = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let certs: Vec<_> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::invalid_input(
            "AWS_CA_BUNDLE",
            format!("{path}: no PEM certificate in it"),
        ));
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
}

/// Idle keep-alive connections an agent keeps (per host and in all): as
/// many as a session's default fan-out.
const IDLE_CONNECTIONS: usize = 64;

/// What one attempt came to.
enum Attempt {
    Done(Result<Reply>),
    /// Refused for its signing time; the skew is now corrected.
    SkewCorrected(Error),
}

/// True for the errors STS gives a request signed at the wrong time.
fn is_skew_error(e: &Error) -> bool {
    let Error::Service(e) = e else {
        return false;
    };
    match e.code.as_str() {
        "RequestExpired"
        | "RequestTimeTooSkewed"
        | "RequestInTheFuture"
        | "InvalidSignatureException" => true,
        "SignatureDoesNotMatch" => {
            let m = e.message.to_ascii_lowercase();
            m.contains("signature expired") || m.contains("not yet current")
        }
        _ => false,
    }
}

/// `t` moved by `d` (either sign).
fn shift(t: SystemTime, d: time::Duration) -> SystemTime {
    let ms = d.whole_milliseconds();
    let abs = Duration::from_millis(ms.unsigned_abs() as u64);
    if ms >= 0 {
        t.checked_add(abs).unwrap_or(t)
    } else {
        t.checked_sub(abs).unwrap_or(t)
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's preferred
/// form).
fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// Refuses `https://` when stslib was built without the `tls` feature.
fn check_tls(url: &str) -> Result<()> {
    if cfg!(not(feature = "tls")) && url.starts_with("https:") {
        return Err(Error::InvalidEndpoint {
            url: url.to_owned(),
            message: "stslib was built without the `tls` feature; only http:// on loopback"
                .to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 784_111_777);
        assert!(parse_http_date("06 Nov 1994").is_none());
        assert!(parse_http_date("").is_none());
    }

    #[test]
    fn skew_errors_are_recognised_by_code_and_message() {
        let e = |code: &str, message: &str| {
            Error::from(ServiceError {
                action: "AssumeRole",
                status: 403,
                code: code.into(),
                message: message.into(),
                request_id: None,
            })
        };
        assert!(is_skew_error(&e("RequestExpired", "")));
        assert!(is_skew_error(&e(
            "SignatureDoesNotMatch",
            "Signature expired: 20260101T000000Z is now earlier than ..."
        )));
        assert!(is_skew_error(&e(
            "SignatureDoesNotMatch",
            "Signature not yet current: ..."
        )));
        assert!(!is_skew_error(&e(
            "SignatureDoesNotMatch",
            "does not match"
        )));
        assert!(!is_skew_error(&e("AccessDenied", "expired")));
    }

    #[test]
    fn shift_moves_both_ways() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            shift(t, time::Duration::seconds(-10)),
            SystemTime::UNIX_EPOCH + Duration::from_secs(990)
        );
        assert_eq!(
            shift(t, time::Duration::milliseconds(1500)),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_001_500)
        );
    }

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

    #[test]
    fn retry_classification() {
        let svc = |status, code: &str| {
            Error::from(ServiceError {
                action: "AssumeRole",
                status,
                code: code.into(),
                message: String::new(),
                request_id: None,
            })
        };
        for (status, code) in [
            (400, "Throttling"),
            (400, "ThrottlingException"),
            (503, "RequestLimitExceeded"),
            (400, "TooManyRequestsException"),
            (400, "IDPCommunicationError"),
            (500, "HttpStatus500"),
            (503, "ServiceUnavailable"),
            (429, "HttpStatus429"),
        ] {
            assert!(is_retryable(&svc(status, code)), "{code}");
        }
        for (status, code) in [
            (403, "AccessDenied"),
            (400, "ValidationError"),
            (400, "ExpiredToken"),
            (403, "InvalidClientTokenId"),
            (403, "SignatureDoesNotMatch"),
            (404, "HttpStatus404"),
        ] {
            assert!(!is_retryable(&svc(status, code)), "{code}");
        }
        assert!(!is_retryable(&Error::invalid_input("x", "y")));
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        for attempt in 1..40 {
            let ceiling = (100u64 << (attempt - 1).min(20)).min(2_000);
            for _ in 0..20 {
                assert!(backoff(attempt).as_millis() as u64 <= ceiling);
            }
        }
    }

    #[test]
    fn builder_defaults_and_checks() {
        let c = StsClient::builder()
            .env(Env::from_pairs::<&str, &str>([]))
            .build()
            .unwrap();
        assert_eq!(c.endpoint(), "https://sts.us-east-1.amazonaws.com/");
        assert_eq!(c.iam_endpoint(), "https://iam.amazonaws.com/");
        assert_eq!(c.signing_region(), "us-east-1");
        let e = StsClient::builder().max_attempts(0).build().unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidInput {
                field: "max_attempts",
                ..
            }
        ));
        let e = StsClient::builder()
            .endpoint("http://sts.example.com")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::InvalidEndpoint { .. }));
        let c = StsClient::builder()
            .region("eu-west-1")
            .env(Env::from_pairs([(
                "AWS_ENDPOINT_URL_STS",
                "http://127.0.0.1:4566",
            )]))
            .build()
            .unwrap();
        assert_eq!(
            (c.endpoint(), c.signing_region()),
            ("http://127.0.0.1:4566/", "eu-west-1")
        );
    }

    #[test]
    fn signature_headers_shape() {
        let target = endpoint::parse_endpoint("http://127.0.0.1:5123", "eu-west-1").unwrap();
        let keys = AccessKey {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
            session_token: Some(Secret::new("tok+en/=")),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = sign_headers(
            "GetCallerIdentity",
            Service::Sts,
            &target,
            &keys,
            b"Action=GetCallerIdentity&Version=2011-06-15",
            now,
        )
        .unwrap();
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-amz-date"), Some("20231114T221320Z"));
        assert_eq!(get("x-amz-security-token"), Some("tok+en/="));
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20231114/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="),
            "{auth}"
        );
    }
}
