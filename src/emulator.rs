//! The local STS emulator (feature `emulator`, off by default; this crate's
//! own tests, examples and benches turn it on).
//!
//! A real HTTP/1.1 server on `127.0.0.1` that speaks STS's Query/XML wire
//! format (GetSessionToken, AssumeRole, GetCallerIdentity) and IAM's
//! ListMFADevices, and KMS's JSON 1.1 (Encrypt, Decrypt, DescribeKey, with
//! aliases and a strictly bound encryption context; see
//! [`EmulatorBuilder::kms_key`]), for tests, examples and benchmarks that
//! must run offline.
//! It checks requests like STS does: known access key, matching session
//! token, a SigV4 signature recomputed with the known secret, the request
//! time within 5 minutes of its clock, and the expiry of the temporary
//! credentials it issued. Faults (throttling, 5xx, stalls, dropped or reset
//! connections, broken bodies) can be injected per action, for a number of
//! requests or at random.
//!
//! ```no_run
//! use stslib::emulator::{Action, Emulator, Fault};
//! use std::time::Duration;
//!
//! let emu = Emulator::builder()
//!     .user("ops/alice", "AKIAALICEEXAMPLE0001", "alice-secret")
//!     .mfa_device("ops/alice", "arn:aws:iam::123456789012:mfa/alice", "123456")
//!     .credential_lifetime(Duration::from_secs(5))
//!     .start()?;
//! println!("STS at {}", emu.endpoint());
//! emu.inject(Action::AssumeRole, Fault::throttling(), 1);
//! // ... point the code under test at emu.endpoint() ...
//! assert_eq!(emu.request_count(Action::AssumeRole), 0);
//! emu.stop();
//! # Ok::<(), stslib::Error>(())
//! ```
//!
//! Threads: one acceptor (`stslib-emu`) and one thread per connection
//! (`stslib-emu-conn`). [`Emulator::stop`] and `Drop` stop and join all of
//! them, within about a second even with connections open. Logging is at
//! `debug` level through `log` and never includes secrets.

mod faults;
mod http;
mod kms;
mod server;
mod service;
mod sigv4;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::{Error, Result, Secret};

/// Name of the user [`Emulator::start`] seeds (ARN
/// `arn:aws:iam::123456789012:user/emulator-user`).
pub const DEFAULT_USER: &str = "emulator-user";
/// Access key id of the user [`Emulator::start`] seeds.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIAEMULATOR00000001";
/// Secret access key of the user [`Emulator::start`] seeds.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "emulator/Secret/Access/Key/0000000000000";

/// An API action, for fault injection and request counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// STS GetSessionToken.
    GetSessionToken,
    /// STS AssumeRole.
    AssumeRole,
    /// STS GetCallerIdentity.
    GetCallerIdentity,
    /// IAM ListMFADevices.
    ListMFADevices,
    /// KMS Encrypt.
    Encrypt,
    /// KMS Decrypt.
    Decrypt,
    /// KMS DescribeKey.
    DescribeKey,
    /// Every request, including ones naming no known action.
    Any,
}

impl Action {
    /// The wire name (`"AssumeRole"`); `"*"` for [`Action::Any`].
    pub fn name(self) -> &'static str {
        match self {
            Action::GetSessionToken => "GetSessionToken",
            Action::AssumeRole => "AssumeRole",
            Action::GetCallerIdentity => "GetCallerIdentity",
            Action::ListMFADevices => "ListMFADevices",
            Action::Encrypt => "Encrypt",
            Action::Decrypt => "Decrypt",
            Action::DescribeKey => "DescribeKey",
            Action::Any => "*",
        }
    }
}

/// A misbehaviour injected with [`Emulator::inject`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// An error answer in AWS's Query layout (KMS: its JSON layout), with
    /// this status, code and message, without looking at the request.
    Error {
        /// HTTP status.
        status: u16,
        /// AWS error code.
        code: String,
        /// Error message.
        message: String,
    },
    /// Answer normally, after this delay.
    Delay(Duration),
    /// Read the request, answer nothing for this long, then close the
    /// connection (for client timeout tests).
    Stall(Duration),
    /// Read the request and close the connection without answering.
    DropConnection,
    /// Close the connection with a TCP reset: the request is left unread in
    /// the socket, which makes the kernel send RST on close.
    ResetConnection,
    /// Send a 200 head announcing more body than is sent, then close.
    TruncatedBody,
    /// A 200 answer whose body is not well-formed XML (KMS: not
    /// well-formed JSON).
    MalformedXml,
    /// An HTML error page with this status, like Werkzeug's (moto's server).
    HtmlError(u16),
    /// A 200 answer of well-formed XML (KMS: JSON) in another action's
    /// shape.
    WrongShape,
    /// A 200 answer whose body is this many bytes.
    Oversized(usize),
    /// moto's second error layout (`<ErrorResponse><Errors><Error>...`,
    /// no namespace, no request id, `Content-Type: text/html`), status 403.
    AuthErrorLayout {
        /// AWS error code.
        code: String,
        /// Error message.
        message: String,
    },
}

impl Fault {
    /// 400 `Throttling` "Rate exceeded".
    pub fn throttling() -> Fault {
        Fault::error(400, "Throttling", "Rate exceeded")
    }

    /// 500 `InternalFailure`.
    pub fn internal() -> Fault {
        Fault::error(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// 503 `ServiceUnavailable`.
    pub fn unavailable() -> Fault {
        Fault::error(503, "ServiceUnavailable", "Service is unavailable")
    }

    /// 403 `AccessDenied`.
    pub fn access_denied() -> Fault {
        Fault::error(
            403,
            "AccessDenied",
            "User is not authorized to perform this action (injected)",
        )
    }

    fn error(status: u16, code: &str, message: &str) -> Fault {
        Fault::Error {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// What the emulator saw and answered for one request. Never holds secret
/// values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// 1-based number of the connection it came on.
    pub connection: usize,
    /// The action, when it named a known one.
    pub action: Option<Action>,
    /// The `Action` parameter as sent.
    pub action_name: Option<String>,
    /// The access key id from the `Authorization` header.
    pub access_key_id: Option<String>,
    /// The HTTP status answered; `None` when no status line was sent.
    pub status: Option<u16>,
    /// The AWS error code answered, for errors.
    pub code: Option<String>,
    /// The injected fault that applied, if any.
    pub fault: Option<Fault>,
    /// `DurationSeconds`, when given and numeric.
    pub duration_seconds: Option<u64>,
    /// `RoleArn`, when given.
    pub role_arn: Option<String>,
    /// `RoleSessionName`, when given.
    pub role_session_name: Option<String>,
    /// `SerialNumber` (MFA device), when given.
    pub serial_number: Option<String>,
    /// `ExternalId`, when given.
    pub external_id: Option<String>,
    /// KMS: the `KeyId` of the JSON body, when given.
    pub kms_key_id: Option<String>,
}

/// Configures and starts an [`Emulator`].
#[derive(Debug, Clone)]
#[must_use]
pub struct EmulatorBuilder {
    port: u16,
    account_id: String,
    users: Vec<(String, String, Secret)>,
    devices: Vec<(String, String, Secret)>,
    require_mfa: bool,
    lifetime: Option<Duration>,
    role_lifetime: Option<Duration>,
    denied_roles: Vec<String>,
    clock_offset: time::Duration,
    kms_keys: Vec<(String, Vec<String>)>,
    clock: crate::clock::Clock,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            port: 0,
            account_id: "123456789012".to_owned(),
            users: Vec::new(),
            devices: Vec::new(),
            require_mfa: false,
            lifetime: None,
            role_lifetime: None,
            denied_roles: Vec::new(),
            clock_offset: time::Duration::ZERO,
            kms_keys: Vec::new(),
            clock: crate::clock::Clock::system(),
        }
    }
}

impl EmulatorBuilder {
    /// The TCP port on 127.0.0.1. Defaults to 0 (any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The account of the users (12 digits). Roles of any account can be
    /// assumed. Defaults to `123456789012`.
    pub fn account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = account_id.into();
        self
    }

    /// Adds an IAM user `arn:aws:iam::ACCOUNT:user/NAME` with a long-term
    /// access key. `name` may carry a path (`ops/alice`: path `/ops/`, user
    /// name `alice`). Defaults to one user, [`DEFAULT_USER`] with
    /// [`DEFAULT_ACCESS_KEY_ID`] / [`DEFAULT_SECRET_ACCESS_KEY`], seeded only
    /// when no user is added.
    pub fn user(
        mut self,
        name: impl Into<String>,
        access_key_id: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Self {
        self.users
            .push((name.into(), access_key_id.into(), secret.into()));
        self
    }

    /// Gives `user` (as passed to [`user`](Self::user), or its bare name) a
    /// virtual MFA device. A request naming `serial` as `SerialNumber` must
    /// give `code` (6 digits) as `TokenCode`, else it gets 403
    /// `AccessDenied`. ListMFADevices lists it. Defaults to no devices.
    pub fn mfa_device(
        mut self,
        user: impl Into<String>,
        serial: impl Into<String>,
        code: impl Into<Secret>,
    ) -> Self {
        self.devices.push((user.into(), serial.into(), code.into()));
        self
    }

    /// Refuse GetSessionToken without MFA for users that have a device.
    /// Defaults to `false`.
    pub fn require_mfa(mut self, require: bool) -> Self {
        self.require_mfa = require;
        self
    }

    /// Caps the lifetime of every credential issued (at least 1 s), so
    /// expiry and refresh can be tested in seconds. Defaults to none: the
    /// `DurationSeconds` asked, else 3600 s for AssumeRole and 43200 s for
    /// GetSessionToken.
    pub fn credential_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// Caps the lifetime of role credentials (AssumeRole) only, at least
    /// 1 s: a long session token with second-scale roles shows refresh
    /// rounds. Defaults to none (see
    /// [`credential_lifetime`](Self::credential_lifetime)).
    pub fn role_lifetime(mut self, lifetime: Duration) -> Self {
        self.role_lifetime = Some(lifetime);
        self
    }

    /// AssumeRole of this role ARN is refused with 403 `AccessDenied`.
    /// Defaults to no denied roles.
    pub fn deny_role(mut self, role_arn: impl Into<String>) -> Self {
        self.denied_roles.push(role_arn.into());
        self
    }

    /// How far the emulator's clock runs ahead of (positive) or behind
    /// (negative) the system clock. Defaults to zero.
    pub fn clock_offset(mut self, offset: time::Duration) -> Self {
        self.clock_offset = offset;
        self
    }

    /// Adds a KMS key (random material and UUID) in `region` of the
    /// emulator's account, named by the aliases given (`alias/…`, may be
    /// empty). Any authenticated caller may use it; its ARN is
    /// [`Emulator::kms_key_arn`]. Defaults to no keys.
    pub fn kms_key<S: Into<String>>(
        mut self,
        region: impl Into<String>,
        aliases: impl IntoIterator<Item = S>,
    ) -> Self {
        self.kms_keys
            .push((region.into(), aliases.into_iter().map(Into::into).collect()));
        self
    }

    /// The clock the emulator's time is read from (before
    /// [`clock_offset`](Self::clock_offset) is added): give it the
    /// [`ManualClock`](crate::clock::ManualClock) a session under test uses,
    /// and moving that clock moves STS's time too (issue times, expiry,
    /// signature skew, the `Date` header). Defaults to the system clock.
    pub fn clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the settings, binds 127.0.0.1 and starts serving.
    pub fn start(self) -> Result<Emulator> {
        let cfg = self.config()?;
        let listener = TcpListener::bind(("127.0.0.1", self.port)).map_err(|e| transport(&e))?;
        let addr = listener.local_addr().map_err(|e| transport(&e))?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            cfg,
            state: Mutex::new(service::State::default()),
            faults: Mutex::new(Vec::new()),
            random: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
            offset_ns: AtomicI64::new(clamp_nanos(self.clock_offset)),
            clock: self.clock.clone(),
            connections: AtomicUsize::new(0),
        });
        let workers = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let shared = Arc::clone(&shared);
            let workers = Arc::clone(&workers);
            thread::Builder::new()
                .name("stslib-emu".into())
                .spawn(move || server::accept_loop(&listener, &shared, &workers))
                .map_err(|e| transport(&e))?
        };
        log::debug!("emulator: listening on {addr}");
        Ok(Emulator {
            shared,
            addr,
            acceptor: Some(acceptor),
            workers,
        })
    }

    fn config(&self) -> Result<service::Config> {
        let account = &self.account_id;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid_input(
                "account_id",
                format!("`{account}` is not 12 digits"),
            ));
        }
        let mut users = Vec::new();
        let defaults;
        let given = if self.users.is_empty() {
            defaults = [(
                DEFAULT_USER.to_owned(),
                DEFAULT_ACCESS_KEY_ID.to_owned(),
                Secret::new(DEFAULT_SECRET_ACCESS_KEY),
            )];
            &defaults[..]
        } else {
            &self.users[..]
        };
        for (full, akid, secret) in given {
            let ok_name = full.split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
            });
            if !ok_name {
                return Err(Error::invalid_input(
                    "user",
                    format!("`{full}` is not a valid IAM user name or path/name"),
                ));
            }
            if akid.len() < 16 || !akid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Error::invalid_input(
                    "user",
                    format!("access key id `{akid}` must be 16 or more letters and digits"),
                ));
            }
            if secret.is_empty()
                || users
                    .iter()
                    .any(|u: &service::User| &u.access_key_id == akid)
            {
                return Err(Error::invalid_input(
                    "user",
                    format!("access key `{akid}` has an empty secret or is given twice"),
                ));
            }
            users.push(service::User {
                name: full.rsplit('/').next().unwrap_or(full).to_owned(),
                arn: format!("arn:aws:iam::{account}:user/{full}"),
                user_id: format!("AIDA{}", service::random_string(service::UPPER_ALNUM, 17)),
                access_key_id: akid.clone(),
                secret: secret.clone(),
                devices: Vec::new(),
            });
        }
        let enable_date = self.clock.local() + self.clock_offset;
        for (user, serial, code) in &self.devices {
            let taken = users
                .iter()
                .any(|u| u.devices.iter().any(|d| &d.serial == serial));
            if serial.len() < 9 || serial.len() > 256 || taken {
                return Err(Error::invalid_input(
                    "mfa_device",
                    format!("serial `{serial}` must be 9 to 256 characters and unique"),
                ));
            }
            let owner = users
                .iter()
                .position(|u| u.arn.ends_with(&format!("/{user}")) || &u.name == user);
            let Some(owner) = owner else {
                return Err(Error::invalid_input(
                    "mfa_device",
                    format!("no user `{user}`"),
                ));
            };
            users[owner].devices.push(service::Device {
                serial: serial.clone(),
                code: code.clone(),
                enable_date,
            });
        }
        if [self.lifetime, self.role_lifetime]
            .iter()
            .flatten()
            .any(|l| *l < Duration::from_secs(1))
        {
            return Err(Error::invalid_input(
                "credential_lifetime",
                "must be at least 1 second",
            ));
        }
        let mut kms_keys: Vec<kms::Key> = Vec::new();
        for (region, aliases) in &self.kms_keys {
            crate::endpoint::validate_region(region)?;
            for alias in aliases {
                let ok = alias.len() > 6
                    && alias.starts_with("alias/")
                    && !alias.starts_with("alias/aws/")
                    && alias[6..]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
                let taken = kms_keys
                    .iter()
                    .any(|k| &k.region == region && k.aliases.contains(alias));
                if !ok || taken {
                    return Err(Error::invalid_input(
                        "kms_key",
                        format!("`{alias}` is not a valid, unused alias (alias/[A-Za-z0-9/_-]+)"),
                    ));
                }
            }
            kms_keys.push(kms::Key::new(region, aliases.clone(), enable_date));
        }
        Ok(service::Config {
            kms_keys,
            account_id: account.clone(),
            users,
            require_mfa: self.require_mfa,
            lifetime: self.lifetime,
            role_lifetime: self.role_lifetime,
            denied_roles: self.denied_roles.clone(),
        })
    }
}

fn transport(e: &std::io::Error) -> Error {
    Error::Transport {
        action: "Emulator::start",
        message: format!("cannot serve on 127.0.0.1: {e}"),
        source: None,
    }
}

fn clamp_nanos(d: time::Duration) -> i64 {
    d.whole_nanoseconds()
        .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A running emulator. Dropping it (or calling [`stop`](Emulator::stop))
/// stops it and joins all its threads.
#[derive(Debug)]
#[must_use = "the emulator stops when dropped"]
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    cfg: service::Config,
    state: Mutex<service::State>,
    faults: Mutex<Vec<Armed>>,
    random: Mutex<Vec<RandomFaults>>,
    records: Mutex<Vec<RequestRecord>>,
    offset_ns: AtomicI64,
    clock: crate::clock::Clock,
    connections: AtomicUsize,
}

#[derive(Debug)]
struct Armed {
    action: Action,
    fault: Fault,
    remaining: usize,
}

/// Faults given at random to a share of the requests of one action.
#[derive(Debug)]
struct RandomFaults {
    action: Action,
    faults: Vec<Fault>,
    /// The chance of a fault, as a threshold on a random `u64`.
    threshold: u64,
}

impl RandomFaults {
    fn new(action: Action, faults: Vec<Fault>, probability: f64) -> Self {
        let p = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        // `p * 2^64`, saturating at u64::MAX (p == 1 is "always").
        let threshold = if p >= 1.0 {
            u64::MAX
        } else {
            (p * 18_446_744_073_709_551_616.0) as u64
        };
        RandomFaults {
            action,
            faults,
            threshold,
        }
    }

    /// One roll: a fault from the list with the set chance, else `None`.
    fn roll(&self) -> Option<Fault> {
        let hit = self.threshold == u64::MAX || crate::rand::u64() < self.threshold;
        if !hit {
            return None;
        }
        let i = crate::rand::below(self.faults.len() as u64) as usize;
        self.faults.get(i).cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn now(&self) -> OffsetDateTime {
        self.clock.local() + time::Duration::nanoseconds(self.offset_ns.load(Ordering::Relaxed))
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Takes one use of the first fault armed for `action` (or for Any);
    /// without one, rolls the random faults for it in the order injected.
    fn take_fault(&self, action: Option<Action>) -> Option<Fault> {
        let applies = |a: Action| a == Action::Any || Some(a) == action;
        {
            let mut faults = lock(&self.faults);
            if let Some(i) = faults.iter().position(|a| applies(a.action)) {
                let fault = faults[i].fault.clone();
                faults[i].remaining -= 1;
                if faults[i].remaining == 0 {
                    faults.remove(i);
                }
                return Some(fault);
            }
        }
        lock(&self.random)
            .iter()
            .filter(|r| applies(r.action))
            .find_map(RandomFaults::roll)
    }

    fn reset_armed(&self) -> bool {
        lock(&self.faults)
            .iter()
            .any(|a| a.fault == Fault::ResetConnection)
            || lock(&self.random)
                .iter()
                .any(|r| r.faults.contains(&Fault::ResetConnection))
    }

    /// Sleeps `d` in short slices; false when the emulator is stopping.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stopping() {
                return false;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

impl Emulator {
    /// A builder with the defaults.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// Starts an emulator with the defaults: any free port, account
    /// `123456789012`, one user ([`DEFAULT_USER`]).
    pub fn start() -> Result<Emulator> {
        Emulator::builder().start()
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next `times` requests of `action` ([`Action::Any`]: any request)
    /// get `fault`. Faults are used in the order injected.
    pub fn inject(&self, action: Action, fault: Fault, times: usize) {
        if times > 0 {
            lock(&self.shared.faults).push(Armed {
                action,
                fault,
                remaining: times,
            });
        }
    }

    /// From now on, each request of `action` ([`Action::Any`]: any
    /// request) gets, with chance `probability` (clamped to `0.0..=1.0`),
    /// one of `faults` picked uniformly at random; until
    /// [`clear_faults`](Self::clear_faults). Faults injected with
    /// [`inject`](Self::inject) are used first; several random injections
    /// are rolled in the order given, the first hit applying. An empty
    /// `faults` injects nothing. For soak tests:
    ///
    /// ```no_run
    /// use stslib::emulator::{Action, Emulator, Fault};
    /// let emu = Emulator::start()?;
    /// // About one AssumeRole in five is throttled or reset.
    /// emu.inject_random(
    ///     Action::AssumeRole,
    ///     vec![Fault::throttling(), Fault::ResetConnection],
    ///     0.2,
    /// );
    /// # Ok::<(), stslib::Error>(())
    /// ```
    pub fn inject_random(&self, action: Action, faults: Vec<Fault>, probability: f64) {
        if !faults.is_empty() {
            lock(&self.shared.random).push(RandomFaults::new(action, faults, probability));
        }
    }

    /// Removes all injected faults not yet used, and the random ones.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
        lock(&self.shared.random).clear();
    }

    /// How many requests of `action` were received ([`Action::Any`]: all).
    /// Requests refused at the HTTP level (malformed, oversized) are not
    /// counted or recorded.
    pub fn request_count(&self, action: Action) -> usize {
        lock(&self.shared.records)
            .iter()
            .filter(|r| action == Action::Any || r.action == Some(action))
            .count()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.records).clone()
    }

    /// How many TCP connections were accepted so far.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Sets how far the emulator's clock runs ahead of (positive) or behind
    /// (negative) the system clock. It decides signature skew, expiry and
    /// the `Date` header.
    pub fn set_clock_offset(&self, offset: time::Duration) {
        self.shared
            .offset_ns
            .store(clamp_nanos(offset), Ordering::Relaxed);
    }

    /// The ARN of the KMS key `alias` (`alias/…`) names in `region`.
    pub fn kms_key_arn(&self, region: &str, alias: &str) -> Option<String> {
        self.shared
            .cfg
            .kms_keys
            .iter()
            .find(|k| k.region == region && k.aliases.iter().any(|a| a == alias))
            .map(|k| k.arn(&self.shared.cfg.account_id))
    }

    /// Stops serving and joins every thread (bounded: about a second).
    pub fn stop(self) {
        drop(self);
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // Wake the blocking accept() with a connection of our own.
            match TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) {
                Ok(_) => {
                    let _ = acceptor.join();
                }
                Err(e) => log::warn!("emulator: cannot wake the acceptor ({e}); leaving it"),
            }
        }
        let workers = std::mem::take(&mut *lock(&self.workers));
        for w in workers {
            let _ = w.join();
        }
        log::debug!("emulator: stopped {}", self.addr);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(emu: &Emulator, action: Action, n: usize) -> Vec<Option<Fault>> {
        (0..n)
            .map(|_| emu.shared.take_fault(Some(action)))
            .collect()
    }

    #[test]
    fn random_faults_hit_about_their_share_of_matching_requests() {
        let emu = Emulator::start().unwrap();
        let faults = vec![
            Fault::throttling(),
            Fault::unavailable(),
            Fault::MalformedXml,
        ];
        emu.inject_random(Action::AssumeRole, faults.clone(), 0.25);
        let got = draws(&emu, Action::AssumeRole, 4000);
        let hits: Vec<&Fault> = got.iter().flatten().collect();
        // Binomial(4000, 0.25): mean 1000, sd about 27.
        assert!((850..1150).contains(&hits.len()), "{} hits", hits.len());
        assert!(hits.iter().all(|f| faults.contains(f)));
        for f in &faults {
            assert!(hits.iter().filter(|h| **h == f).count() > 200, "{f:?}");
        }
        // Other actions are untouched.
        assert!(draws(&emu, Action::GetSessionToken, 500)
            .iter()
            .all(Option::is_none));
        emu.clear_faults();
        assert!(draws(&emu, Action::AssumeRole, 500)
            .iter()
            .all(Option::is_none));
    }

    #[test]
    fn random_fault_edges_and_precedence_of_counted_faults() {
        let emu = Emulator::start().unwrap();
        emu.inject_random(Action::Any, vec![Fault::DropConnection], 1.0);
        emu.inject(Action::AssumeRole, Fault::throttling(), 2);
        let got = draws(&emu, Action::AssumeRole, 4);
        assert_eq!(
            got,
            [
                Some(Fault::throttling()),
                Some(Fault::throttling()),
                Some(Fault::DropConnection),
                Some(Fault::DropConnection)
            ]
        );
        assert_eq!(
            emu.shared.take_fault(None),
            Some(Fault::DropConnection),
            "Any matches requests naming no action"
        );
        assert!(!emu.shared.reset_armed());
        emu.clear_faults();
        for p in [0.0, -3.0, f64::NAN] {
            emu.inject_random(Action::AssumeRole, vec![Fault::ResetConnection], p);
        }
        emu.inject_random(Action::AssumeRole, Vec::new(), 1.0);
        assert!(draws(&emu, Action::AssumeRole, 1000)
            .iter()
            .all(Option::is_none));
        // The server peeks requests while a reset may be drawn.
        assert!(emu.shared.reset_armed());
    }
}
