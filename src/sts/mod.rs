//! The blocking STS (and IAM) client, its request types and its answers:
//! the public API over the crate's shared transport.
//!
//! Protocol: AWS Query over `POST`, a form body encoded as botocore does
//! (see `wire.rs`), signed for `sts` (or `iam`) over `host`, `content-type`
//! and the SigV4 headers; errors are the XML error documents `wire.rs`
//! parses. Retries, timeouts, proxy, CA bundle and clock-skew correction
//! are the transport's. Request types and their validation live in
//! `request.rs`.

mod request;

use std::fmt;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::clock::Clock;
use crate::credentials::{AccessKey, Credentials};
use crate::endpoint::{self, Endpoint, ProfileEndpoints, StsEndpointConfig};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::transport::{Reply, Request, Settings, Transport};
use crate::wire;

pub use crate::credentials::{AssumedRole, CallerIdentity};
use request::check_user_name;
pub use request::{AssumeRoleRequest, GetSessionTokenRequest};

const STS_VERSION: &str = "2011-06-15";
const IAM_VERSION: &str = "2010-05-08";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// More `ListMFADevices` pages than any user has devices is a loop.
const MAX_PAGES: usize = 100;

/// A blocking client for STS (`GetSessionToken`, `AssumeRole`,
/// `GetCallerIdentity`) and IAM `ListMFADevices`.
///
/// Cheap to clone (the connection pool is shared). Each call takes the keys
/// to sign with, so one client serves a whole profile chain.
///
/// ```no_run
/// use stslib::sts::GetSessionTokenRequest;
/// use stslib::{AccessKey, Secret, StsClient};
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
    /// The pool, retries, timeouts and learnt clock skew (shared by clones).
    transport: Transport,
    sts: Endpoint,
    iam: Endpoint,
}

impl fmt::Debug for StsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsClient")
            .field("sts", &self.sts.url)
            .field("sts_signing_region", &self.sts.signing_region)
            .field("iam", &self.iam.url)
            .field("transport", &self.transport)
            .finish()
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
    profile_sts_endpoint_url: Option<String>,
    profile_iam_endpoint_url: Option<String>,
    ignore_configured_endpoint_urls: bool,
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
            .field("profile_sts_endpoint_url", &self.profile_sts_endpoint_url)
            .field("profile_iam_endpoint_url", &self.profile_iam_endpoint_url)
            .field(
                "ignore_configured_endpoint_urls",
                &self.ignore_configured_endpoint_urls,
            )
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
            profile_sts_endpoint_url: None,
            profile_iam_endpoint_url: None,
            ignore_configured_endpoint_urls: false,
            legacy_global_endpoint: false,
            env: Env::process(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            clock: Clock::system(),
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

    /// Takes the profile's `region`, `endpoint_url`, the `sts` and `iam`
    /// endpoints of the `[services NAME]` section it names
    /// ([`Profile::service_endpoint_url`](crate::profile::Profile::service_endpoint_url)),
    /// `ignore_configured_endpoint_urls` and `sts_regional_endpoints =
    /// legacy` as the defaults they are in the AWS CLI; explicit
    /// [`region`](Self::region) and [`endpoint`](Self::endpoint) settings and
    /// the environment's endpoint variables still win. Defaults to no
    /// profile.
    pub fn profile(mut self, profile: &crate::profile::Profile) -> Self {
        self.profile_region = profile.get("region").map(str::to_owned);
        self.profile_endpoint_url = profile.get("endpoint_url").map(str::to_owned);
        self.profile_sts_endpoint_url = profile.service_endpoint_url("sts").map(str::to_owned);
        self.profile_iam_endpoint_url = profile.service_endpoint_url("iam").map(str::to_owned);
        self.ignore_configured_endpoint_urls = profile
            .get("ignore_configured_endpoint_urls")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        self.legacy_global_endpoint = profile
            .get("sts_regional_endpoints")
            .is_some_and(|v| v.eq_ignore_ascii_case("legacy"));
        self
    }

    /// An explicit STS endpoint URL for `GetSessionToken`, `AssumeRole` and
    /// `GetCallerIdentity` (not IAM: see
    /// [`iam_endpoint`](Self::iam_endpoint)), winning over every other
    /// source, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` included. Plain
    /// `http://` is accepted only for loopback hosts. Defaults to none:
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the profile's
    /// services section, else its `endpoint_url`, else the regional
    /// endpoint, as the AWS SDKs resolve it.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// An explicit IAM endpoint URL (for `ListMFADevices`). Defaults to
    /// none: `AWS_ENDPOINT_URL_IAM`, `AWS_ENDPOINT_URL`, the profile's
    /// services section, its `endpoint_url`, then the partition's global
    /// IAM endpoint. `AWS_ENDPOINT_URL_STS` does not apply to IAM.
    pub fn iam_endpoint(mut self, url: impl Into<String>) -> Self {
        self.iam_endpoint = Some(url.into());
        self
    }

    /// Where `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_IAM` and
    /// `AWS_ENDPOINT_URL` are read from. Defaults to the process
    /// environment.
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// Time allowed to connect (TCP, TLS, a proxy's handshake). The host
    /// lookup before it is the system resolver's, bounded by its own
    /// settings. Defaults to 3 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an attempt waits for the server after connecting: each
    /// socket read or write waits at most this long, and each phase
    /// (sending the request, awaiting the response head, reading the body)
    /// at most twice this in all. A server that goes silent fails the
    /// attempt after `timeout`; one that trickles bytes, after `2 × timeout`
    /// in a phase. There is no overall timeout on purpose: ureq would then
    /// resolve the host in a new thread on every request. Defaults to 10
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
    /// [`Credentials::start_time`]; the skew the client learns from STS is
    /// kept in it (shared by its clones). Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Resolves the endpoints and creates the connection pool. Fails on an
    /// invalid region, a refused endpoint, `max_attempts == 0` or a zero
    /// timeout; no network call is made.
    pub fn build(self) -> Result<StsClient> {
        let region = self
            .region
            .clone()
            .or_else(|| self.profile_region.clone())
            .or_else(|| self.env.get("AWS_REGION"))
            .or_else(|| self.env.get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let profile = ProfileEndpoints {
            endpoint_url: self.profile_endpoint_url.as_deref(),
            service_endpoint_url: None,
            ignore_configured: self.ignore_configured_endpoint_urls,
        };
        let sts = endpoint::resolve_sts(
            &StsEndpointConfig {
                region: &region,
                explicit: self.endpoint.as_deref(),
                profile: ProfileEndpoints {
                    service_endpoint_url: self.profile_sts_endpoint_url.as_deref(),
                    ..profile
                },
                legacy_global: self.legacy_global_endpoint,
            },
            &self.env,
        )?;
        let iam = endpoint::resolve_iam(
            &region,
            self.iam_endpoint.as_deref(),
            &ProfileEndpoints {
                service_endpoint_url: self.profile_iam_endpoint_url.as_deref(),
                ..profile
            },
            &self.env,
        )?;
        // The IAM endpoint is only needed to look up MFA devices: it is
        // checked when used, so a loopback-only build works without it. The
        // proxy is decided for the STS endpoint.
        let transport = Transport::new(
            Settings {
                env: self.env,
                connect_timeout: self.connect_timeout,
                timeout: self.timeout,
                max_attempts: self.max_attempts,
                clock: self.clock,
            },
            &sts,
        )?;
        Ok(StsClient {
            transport,
            sts,
            iam,
        })
    }
}

impl StsClient {
    /// A builder with the defaults: `us-east-1`, regional endpoint, 3 s to
    /// connect, 10 s of server silence per attempt, 3 attempts.
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

    /// `AssumeRole` for each request in turn, the first signed with `keys`
    /// and each next with the credentials of the one before: a profile's
    /// chain (see
    /// [`Chain::assume_role_requests`](crate::profile::Chain::assume_role_requests)).
    /// Returns the last role's answer; an empty chain is
    /// [`Error::InvalidInput`].
    pub fn assume_role_chain(
        &self,
        keys: &AccessKey,
        hops: &[AssumeRoleRequest],
    ) -> Result<AssumedRole> {
        self.assume_role_chain_cancellable(keys, hops, None)
    }

    /// [`assume_role_chain`](Self::assume_role_chain), each call's retry
    /// backoff ending early on `cancel` (see
    /// [`assume_role_cancellable`](Self::assume_role_cancellable)).
    pub(crate) fn assume_role_chain_cancellable(
        &self,
        keys: &AccessKey,
        hops: &[AssumeRoleRequest],
        cancel: Option<&Receiver<()>>,
    ) -> Result<AssumedRole> {
        let (first, rest) = hops
            .split_first()
            .ok_or_else(|| Error::invalid_input("RoleArn", "a chain needs at least one role"))?;
        let mut assumed = self.assume_role_cancellable(keys, first, cancel)?;
        for hop in rest {
            let keys = assumed.credentials.access_key();
            assumed = self.assume_role_cancellable(&keys, hop, cancel)?;
        }
        Ok(assumed)
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

    /// Sends one action through the transport; returns the 2xx answer.
    fn call(
        &self,
        action: &'static str,
        service: Service,
        keys: &AccessKey,
        params: &[(&'static str, String)],
        cancel: Option<&Receiver<()>>,
    ) -> Result<Reply> {
        let (target, version, signing_name) = match service {
            Service::Sts => (&self.sts, STS_VERSION, "sts"),
            Service::Iam => (&self.iam, IAM_VERSION, "iam"),
        };
        let body = wire::form_encode(
            [("Action", action), ("Version", version)]
                .into_iter()
                .chain(params.iter().map(|(k, v)| (*k, v.as_str()))),
        );
        self.transport.call(
            &Request {
                action,
                target,
                signing_name,
                headers: &[("content-type", CONTENT_TYPE)],
                body: body.as_bytes(),
                parse_error: wire::parse_error,
            },
            keys,
            cancel,
        )
    }

    /// The clock offset learnt from STS: server time minus local time.
    /// Zero until STS rejects a request for its time (then the SDKs' rule
    /// applies: the `Date` header of the rejection sets it).
    pub fn clock_skew(&self) -> time::Duration {
        self.transport.clock_skew()
    }

    /// The transport under this client, for other services' clients (KMS)
    /// to share its settings, CA bundle and learnt skew.
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Sts,
    Iam,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
