//! The signed-POST transport every AWS client in the crate shares (STS and
//! IAM over the Query protocol, KMS over JSON 1.1): one connection pool, one
//! call loop with retries, timeouts, proxy/CA handling and clock-skew
//! correction. It knows nothing of any protocol's body or error format;
//! the caller passes those in a [`Request`].
//!
//! # Use
//!
//! ```ignore
//! let transport = Transport::new(settings, &endpoint)?; // once per client
//! let reply = transport.call(
//!     &Request {
//!         action: "Encrypt",                 // logs and errors
//!         target: &endpoint,                 // URL, Host header, signing region
//!         signing_name: "kms",               // SigV4 service name
//!         headers: &[                        // sent AND signed, besides host
//!             ("content-type", "application/x-amz-json-1.1"),
//!             ("x-amz-target", "TrentService.Encrypt"),
//!         ],
//!         body: json.as_bytes(),             // payload hash = SHA-256 of these bytes
//!         parse_error: kms_error,            // fn(action, status, body, header request id) -> ServiceError
//!     },
//!     &keys,
//!     None,                                  // or Some(&halt_receiver)
//! )?;
//! // reply.body: the 2xx body (at most wire::MAX_RESPONSE_BYTES);
//! // reply.request_id: `x-amzn-requestid`; reply.start_time: the signing time.
//! ```
//!
//! Another endpoint on the same settings, sharing the clock, the learnt
//! skew and the CA bundle (its own pool, its own proxy decision):
//! `transport.for_endpoint(&kms_endpoint)?`; an [`StsClient`]'s transport is
//! `client.transport()`.
//!
//! # Behaviour
//!
//! - **Agent:** `user-agent: stslib/VERSION` (never signed), no redirects,
//!   4xx/5xx read as answers, up to 64 idle keep-alive connections.
//!   `AWS_CA_BUNDLE` (from the [`Env`] seam) replaces the trusted roots;
//!   `HTTPS_PROXY`/`ALL_PROXY` with `NO_PROXY` (from the same seam, never
//!   ureq's own reading of the process environment); a loopback host is
//!   never proxied; plain `http://` only reaches loopback (checked when the
//!   [`Endpoint`] is parsed) and `https://` needs the `tls` feature.
//! - **Timeouts, per operation and per phase, no overall one:** connect
//!   (TCP, TLS, proxy handshake) gets `connect_timeout`. After that, each
//!   socket read or write waits at most `timeout`, and each phase (sending
//!   the request head, sending the body, awaiting the response head,
//!   reading the response body) takes at most `2 × timeout` in all. A
//!   server that goes silent fails the attempt after `timeout`; one that
//!   trickles bytes, after `2 × timeout` in that phase; the worst case for
//!   one attempt is `connect_timeout + 8 × timeout`. The per-operation value
//!   is what ureq sets on the socket, once per connection (the remaining
//!   phase time would differ at every read and cost a `setsockopt` each).
//!   There is no overall, per-call or resolve timeout on purpose: with any
//!   of them set, ureq 3 resolves the host in a new thread on *every*
//!   request, even on a kept-alive connection
//!   (`unversioned/resolver.rs`, `resolve_async`). The host lookup is the
//!   system resolver's, synchronous and bounded by its own settings (glibc:
//!   `timeout:5 attempts:2` per nameserver); an IP literal is parsed, not
//!   looked up.
//! - **Call loop:** sign at the skew-corrected time → send → read the body
//!   (capped) → a 2xx is returned; anything else becomes a
//!   [`ServiceError`] through `parse_error`. Throttling and transient codes,
//!   429, 5xx, refused/reset/timed-out connections are retried, up to
//!   `max_attempts` attempts in all, after a full-jitter backoff (base
//!   100 ms, cap 2 s) that a message on, or disconnection of, `cancel` ends
//!   early (the last error is returned then). Each failure is classified
//!   where it is created; nothing downcasts an error's source.
//! - **Skew:** a refusal for the signing time (`RequestExpired`,
//!   `SignatureDoesNotMatch: Signature expired`, ...) with a `Date` header
//!   more than 1 s from the local clock sets the skew (shared by every
//!   transport of the same settings) and the request is signed again once,
//!   without counting as an attempt.
//!
//! Logging: `debug` lines name the action, endpoint, attempt, status and
//! request id; never a key, token, MFA code or body.
//!
//! [`StsClient`]: crate::StsClient

mod retry;
mod skew;

use crate::clock::Clock;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{select_biased, Receiver};
use time::OffsetDateTime;

use crate::credentials::AccessKey;
use crate::endpoint::{self, Endpoint};
use crate::env::Env;
use crate::error::{Error, Result, ServiceError};
use crate::sign::{self, Signable};
use crate::wire::MAX_RESPONSE_BYTES;

const USER_AGENT: &str = concat!("stslib/", env!("CARGO_PKG_VERSION"));

/// Idle keep-alive connections an agent keeps (per host and in all): as
/// many as a session's default fan-out.
const IDLE_CONNECTIONS: usize = 64;

/// Turns a non-2xx answer into the service's error: `(action, status, body,
/// x-amzn-requestid header)`. Must not fail: a body that is not the
/// protocol's error document still yields a `ServiceError` (the STS one
/// uses the code `HttpStatusNNN`).
pub(crate) type ErrorParser = fn(&'static str, u16, &[u8], Option<&str>) -> ServiceError;

/// What every transport built from it shares.
#[derive(Clone)]
pub(crate) struct Settings {
    /// `AWS_CA_BUNDLE`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY` come from here.
    pub env: Env,
    /// Connect phase: TCP, TLS and a proxy's handshake.
    pub connect_timeout: Duration,
    /// Each socket read or write after connecting; each later phase (send
    /// head, send body, await head, read body) gets twice this.
    pub timeout: Duration,
    /// Attempts per call, the first one included.
    pub max_attempts: u32,
    /// Signing time source; the skew learnt from the server is stored in
    /// it, so every clone of the clock (the session's refresher, readers,
    /// cache checks) sees the corrected time.
    pub clock: Clock,
}

/// One call's protocol-specific parts. See the module docs.
#[derive(Clone, Copy)]
pub(crate) struct Request<'a> {
    /// The API action, for logs and errors.
    pub action: &'static str,
    /// Where to POST (its URL, `Host` and signing region).
    pub target: &'a Endpoint,
    /// The SigV4 service name: `sts`, `iam`, `kms`.
    pub signing_name: &'static str,
    /// Headers sent and signed besides `host` (lower-case names).
    pub headers: &'a [(&'static str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
    /// The protocol's error document parser.
    pub parse_error: ErrorParser,
}

/// A 2xx answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The body, at most [`MAX_RESPONSE_BYTES`].
    pub body: Vec<u8>,
    /// The `x-amzn-requestid` header.
    pub request_id: Option<String>,
    /// The (skew-corrected) time the successful attempt was signed at.
    pub start_time: OffsetDateTime,
}

/// A connection pool plus the call loop. Cheap to clone (clones share the
/// pool and the learnt skew).
#[derive(Clone)]
pub(crate) struct Transport {
    agent: ureq::Agent,
    settings: Arc<Settings>,
    ca: CaRoots,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("connect_timeout", &self.settings.connect_timeout)
            .field("timeout", &self.settings.timeout)
            .field("max_attempts", &self.settings.max_attempts)
            .field("clock", &self.settings.clock)
            .finish_non_exhaustive()
    }
}

/// A failed attempt, classified where it was made.
struct Failure {
    error: Error,
    retryable: bool,
    /// Refused for its signing time, and the skew is now corrected: sign
    /// again.
    skew_corrected: bool,
}

impl Failure {
    fn fatal(error: Error) -> Failure {
        Failure {
            error,
            retryable: false,
            skew_corrected: false,
        }
    }
}

impl Transport {
    /// Checks the settings, reads `AWS_CA_BUNDLE` and builds the pool, its
    /// proxy decided for `target`. No network call.
    pub(crate) fn new(settings: Settings, target: &Endpoint) -> Result<Transport> {
        if settings.max_attempts == 0 {
            return Err(Error::invalid_input("max_attempts", "must be at least 1"));
        }
        if settings.timeout.is_zero() || settings.connect_timeout.is_zero() {
            return Err(Error::invalid_input(
                "timeout",
                "timeouts must be greater than zero",
            ));
        }
        check_tls(&target.url)?;
        let ca = load_ca(&settings.env)?;
        Ok(Transport {
            agent: new_agent(&settings, &ca, target)?,
            settings: Arc::new(settings),
            ca,
        })
    }

    /// A transport for another endpoint with the same settings, CA bundle
    /// and learnt skew; its own pool, its proxy decided for `target`.
    pub(crate) fn for_endpoint(&self, target: &Endpoint) -> Result<Transport> {
        check_tls(&target.url)?;
        Ok(Transport {
            agent: new_agent(&self.settings, &self.ca, target)?,
            ..self.clone()
        })
    }

    /// The skew learnt so far: server time minus local time.
    pub(crate) fn clock_skew(&self) -> time::Duration {
        self.settings.clock.skew()
    }

    /// The clock's time corrected by the learnt skew.
    pub(crate) fn now(&self) -> SystemTime {
        self.settings.clock.now().into()
    }

    /// Sends `req` signed with `keys`, retrying as the module docs say;
    /// returns the 2xx answer or the last attempt's error. `cancel` (a
    /// message or disconnection) ends a backoff wait early.
    pub(crate) fn call(
        &self,
        req: &Request<'_>,
        keys: &AccessKey,
        cancel: Option<&Receiver<()>>,
    ) -> Result<Reply> {
        check_tls(&req.target.url)?;
        let action = req.action;
        let max = self.settings.max_attempts;
        let mut attempt = 1;
        let mut resigned = false;
        loop {
            let failure = match self.attempt(req, keys) {
                Ok(reply) => return Ok(reply),
                Err(f) => f,
            };
            // Signed at a time the server refused, and its Date header told
            // us its clock: sign again, once, at the corrected time.
            if failure.skew_corrected && !resigned {
                resigned = true;
                continue;
            }
            if !failure.retryable || attempt >= max {
                return Err(failure.error);
            }
            let delay = retry::backoff(attempt);
            log::debug!(
                "{action}: attempt {attempt} of {max} failed ({}); retrying in {} ms",
                short_reason(&failure.error),
                delay.as_millis()
            );
            let wait = crossbeam_channel::after(delay);
            match cancel {
                Some(cancel) => select_biased! {
                    recv(cancel) -> _ => return Err(failure.error),
                    recv(wait) -> _ => {}
                },
                None => {
                    let _ = wait.recv();
                }
            }
            attempt += 1;
        }
    }

    /// One signed POST.
    fn attempt(&self, req: &Request<'_>, keys: &AccessKey) -> std::result::Result<Reply, Failure> {
        let action = req.action;
        let target = req.target;
        let now = self.now();
        let auth = sign::sign_post(
            &Signable {
                action,
                url: &target.url,
                host: &target.host,
                region: &target.signing_region,
                service: req.signing_name,
                headers: req.headers,
                body: req.body,
            },
            keys,
            now,
        )
        .map_err(Failure::fatal)?;

        let mut builder = ureq::http::Request::builder()
            .method("POST")
            .uri(&target.url)
            .header("host", &target.host);
        for (name, value) in req.headers {
            builder = builder.header(*name, *value);
        }
        for (name, value) in &auth {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder.body(req.body).map_err(|e| {
            Failure::fatal(Error::Transport {
                action,
                message: format!("cannot build the request: {e}"),
                source: Some(Box::new(e)),
            })
        })?;

        let mut response = self
            .agent
            .run(request)
            .map_err(|e| transport_failure(action, e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let header_rid = header("x-amzn-requestid");
        let date = header("date");
        log::debug!(
            "{action}: POST {} -> HTTP {status}, request id {}",
            target.url,
            header_rid.as_deref().unwrap_or("-")
        );
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => Failure::fatal(Error::Response {
                    action,
                    message: format!("response body larger than {MAX_RESPONSE_BYTES} bytes"),
                    request_id: header_rid.clone(),
                }),
                e => transport_failure(action, e),
            })?;
        if (200..300).contains(&status) {
            return Ok(Reply {
                body,
                request_id: header_rid,
                start_time: OffsetDateTime::from(now),
            });
        }
        let service = (req.parse_error)(action, status, &body, header_rid.as_deref());
        let retryable = retry::service_retryable(&service);
        let skew_corrected = skew::is_skew_error(&service)
            && date
                .as_deref()
                .and_then(skew::parse_http_date)
                .is_some_and(|server| self.learn_skew(action, server));
        Err(Failure {
            error: service.into(),
            retryable,
            skew_corrected,
        })
    }

    /// Takes the server's time as the skew; false when the local clock
    /// already agrees within a second (then something else is wrong).
    fn learn_skew(&self, action: &str, server: OffsetDateTime) -> bool {
        let local = self.settings.clock.local();
        let skew = server - local;
        if (skew - self.clock_skew()).abs() < time::Duration::seconds(1) {
            return false;
        }
        log::warn!(
            "{action}: the server rejected the request time; local clock is off by {} s, \
             signing with the corrected time",
            skew.whole_seconds()
        );
        self.settings.clock.set_skew(skew);
        true
    }
}

type AgentConfig = ureq::config::ConfigBuilder<ureq::typestate::AgentScope>;

/// The pool for `target`: see the module docs for every setting.
fn new_agent(settings: &Settings, ca: &CaRoots, target: &Endpoint) -> Result<ureq::Agent> {
    let phase = settings.timeout.saturating_mul(2);
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(USER_AGENT)
        // Per read/write and per phase; no global, per-call or resolve
        // timeout (see the module docs: any of them costs a thread per
        // request). The phase budget is twice the per-operation one so that
        // the socket timeout ureq sets is the constant per-operation value
        // (set once per connection) rather than the phase's remaining time,
        // which differs at every read and costs a setsockopt each time.
        .timeout_connect(Some(settings.connect_timeout))
        .timeout_per_read(Some(settings.timeout))
        .timeout_per_write(Some(settings.timeout))
        .timeout_send_request(Some(phase))
        .timeout_send_body(Some(phase))
        .timeout_recv_response(Some(phase))
        .timeout_recv_body(Some(phase))
        // A fan-out of many calls keeps its connections for the next round
        // instead of reopening all but three.
        .max_idle_connections(IDLE_CONNECTIONS)
        .max_idle_connections_per_host(IDLE_CONNECTIONS);
    let proxy = match endpoint::proxy_for(&settings.env, target) {
        Some(url) => Some(ureq::Proxy::new(&url).map_err(|e| {
            // The URL may hold a password: it is not repeated here.
            Error::invalid_input("HTTPS_PROXY", format!("not a usable proxy URL ({e})"))
        })?),
        None => None,
    };
    let config = with_ca(config.proxy(proxy), ca);
    Ok(config.build().new_agent())
}

/// A ureq failure as the crate's error, with its retry verdict.
fn transport_failure(action: &'static str, e: ureq::Error) -> Failure {
    let retryable = retry::io_retryable(&e);
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
    Failure {
        error: Error::Transport {
            action,
            message,
            source: Some(Box::new(e)),
        },
        retryable,
        skew_corrected: false,
    }
}

fn short_reason(e: &Error) -> String {
    match e {
        Error::Service(s) => format!("HTTP {} {}", s.status, s.code),
        Error::Transport { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Refuses `https://` when stslib was built without the `tls` feature.
pub(crate) fn check_tls(url: &str) -> Result<()> {
    if cfg!(not(feature = "tls")) && url.starts_with("https:") {
        return Err(Error::InvalidEndpoint {
            url: url.to_owned(),
            message: "stslib was built without the `tls` feature; only http:// on loopback"
                .to_owned(),
        });
    }
    Ok(())
}

/// The trusted roots when `AWS_CA_BUNDLE` replaces the defaults.
#[cfg(feature = "tls")]
type CaRoots = Option<ureq::tls::TlsConfig>;
/// Without TLS there is nothing to trust.
#[cfg(not(feature = "tls"))]
type CaRoots = ();

#[cfg(feature = "tls")]
fn load_ca(env: &Env) -> Result<CaRoots> {
    env.get("AWS_CA_BUNDLE").map(|p| ca_bundle(&p)).transpose()
}

#[cfg(not(feature = "tls"))]
fn load_ca(_env: &Env) -> Result<CaRoots> {
    Ok(())
}

#[cfg(feature = "tls")]
fn with_ca(config: AgentConfig, ca: &CaRoots) -> AgentConfig {
    match ca {
        Some(tls) => config.tls_config(tls.clone()),
        None => config,
    }
}

#[cfg(not(feature = "tls"))]
fn with_ca(config: AgentConfig, _ca: &CaRoots) -> AgentConfig {
    config
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
