//! The local STS emulator (feature `emulator`, on by default).
//!
//! A real HTTP/1.1 server on `127.0.0.1` that speaks STS's Query/XML wire
//! format (GetSessionToken, AssumeRole, GetCallerIdentity) and IAM's
//! ListMFADevices, for tests, examples and benchmarks that must run offline.
//! It checks requests like STS does: known access key, matching session
//! token, a SigV4 signature recomputed with the known secret, the request
//! time within 5 minutes of its clock, and the expiry of the temporary
//! credentials it issued. Faults (throttling, 5xx, stalls, dropped or reset
//! connections, broken bodies) can be injected per action.
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

mod http;
mod service;
mod sigv4;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use self::http::{HttpError, Parsed, Request, Response};
use self::service::{Form, IAM_NS, STS_NS};
use crate::{Error, Result, Secret};

/// Name of the user [`Emulator::start`] seeds (ARN
/// `arn:aws:iam::123456789012:user/emulator-user`).
pub const DEFAULT_USER: &str = "emulator-user";
/// Access key id of the user [`Emulator::start`] seeds.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIAEMULATOR00000001";
/// Secret access key of the user [`Emulator::start`] seeds.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "emulator/Secret/Access/Key/0000000000000";

/// How often blocked connection threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(120);
/// A client that reads nothing of an answer for this long is dropped.
const WRITE_STALL: Duration = Duration::from_secs(30);

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
            Action::Any => "*",
        }
    }
}

/// A misbehaviour injected with [`Emulator::inject`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// An error answer in AWS's Query layout, with this status, code and
    /// message, without looking at the request.
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
    /// A 200 answer whose body is not well-formed XML.
    MalformedXml,
    /// An HTML error page with this status, like Werkzeug's (moto's server).
    HtmlError(u16),
    /// A 200 answer of well-formed XML in another action's shape.
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
    denied_roles: Vec<String>,
    clock_offset: time::Duration,
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
            denied_roles: Vec::new(),
            clock_offset: time::Duration::ZERO,
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
            records: Mutex::new(Vec::new()),
            offset_ns: AtomicI64::new(clamp_nanos(self.clock_offset)),
            connections: AtomicUsize::new(0),
        });
        let workers = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let shared = Arc::clone(&shared);
            let workers = Arc::clone(&workers);
            thread::Builder::new()
                .name("stslib-emu".into())
                .spawn(move || accept_loop(&listener, &shared, &workers))
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
        let enable_date = OffsetDateTime::now_utc() + self.clock_offset;
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
        if self.lifetime.is_some_and(|l| l < Duration::from_secs(1)) {
            return Err(Error::invalid_input(
                "credential_lifetime",
                "must be at least 1 second",
            ));
        }
        Ok(service::Config {
            account_id: account.clone(),
            users,
            require_mfa: self.require_mfa,
            lifetime: self.lifetime,
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
    records: Mutex<Vec<RequestRecord>>,
    offset_ns: AtomicI64,
    connections: AtomicUsize,
}

#[derive(Debug)]
struct Armed {
    action: Action,
    fault: Fault,
    remaining: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            + time::Duration::nanoseconds(self.offset_ns.load(Ordering::Relaxed))
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Takes one use of the first fault armed for `action` (or for Any).
    fn take_fault(&self, action: Option<Action>) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let i = faults
            .iter()
            .position(|a| a.action == Action::Any || Some(a.action) == action)?;
        let fault = faults[i].fault.clone();
        faults[i].remaining -= 1;
        if faults[i].remaining == 0 {
            faults.remove(i);
        }
        Some(fault)
    }

    fn reset_armed(&self) -> bool {
        lock(&self.faults)
            .iter()
            .any(|a| a.fault == Fault::ResetConnection)
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

    /// Removes all injected faults not yet used.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many requests of `action` were received ([`Action::Any`]: all).
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

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, workers: &Mutex<Vec<JoinHandle<()>>>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::debug!("emulator: accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let worker_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("stslib-emu-conn".into())
            .spawn(move || serve(&worker_shared, stream, id));
        let mut list = lock(workers);
        list.retain(|h| !h.is_finished());
        match spawned {
            Ok(h) => list.push(h),
            Err(e) => log::warn!("emulator: cannot start a connection thread: {e}"),
        }
    }
}

/// What came in on a connection.
enum Incoming {
    /// A request; `used` bytes of the stream (buffered, or still in the
    /// socket when peeked) belong to it.
    Request(Request, usize),
    Bad(HttpError),
    Closed,
}

/// What to do with the connection after a request.
enum Outcome {
    Send { response: Response, close: bool },
    Truncated(Response),
    Oversized { response: Response, size: usize },
    Drop,
    Reset,
    Stall(Duration),
}

fn serve(shared: &Shared, mut stream: TcpStream, conn: usize) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(POLL));
    let mut buf = Vec::new();
    loop {
        // To reset a connection the request must stay unread in the socket,
        // so while a ResetConnection fault is armed requests are peeked.
        let peek = buf.is_empty() && shared.reset_armed();
        let (req, used) = match read_request(shared, &mut stream, &mut buf, peek) {
            Incoming::Request(r, used) => (r, used),
            Incoming::Closed => return,
            Incoming::Bad(e) => {
                let (status, why) = e.status();
                let response = Response {
                    status,
                    content_type: "text/plain; charset=utf-8",
                    headers: Vec::new(),
                    body: format!("{why}\n").into_bytes(),
                };
                let _ = send(shared, &mut stream, &response, true);
                return;
            }
        };
        let outcome = respond(shared, conn, &req);
        if peek {
            if matches!(outcome, Outcome::Reset) {
                return; // dropped with unread data: the kernel sends RST
            }
            if !consume(shared, &mut stream, used) {
                return;
            }
        } else {
            buf.drain(..used);
        }
        match outcome {
            Outcome::Send { response, close } => {
                if !send(shared, &mut stream, &response, close) || close {
                    return;
                }
            }
            Outcome::Truncated(response) => {
                let declared = response.body.len() + 64;
                let head = response.head(&date(shared), declared, true);
                let half = &response.body[..response.body.len() / 2];
                let _ =
                    write_all(shared, &mut stream, &head) && write_all(shared, &mut stream, half);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Outcome::Oversized { response, size } => {
                if !send_oversized(shared, &mut stream, &response, size) {
                    return;
                }
            }
            Outcome::Drop | Outcome::Reset => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Outcome::Stall(d) => {
                shared.sleep(d);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

fn read_request(
    shared: &Shared,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    peek: bool,
) -> Incoming {
    if peek {
        return peek_request(shared, stream);
    }
    let mut scratch = [0u8; 8192];
    let mut sent_continue = false;
    let mut idle_since = Instant::now();
    loop {
        if !buf.is_empty() {
            match http::parse_request(buf) {
                Ok(Parsed::Complete(req, used)) => return Incoming::Request(req, used),
                Ok(Parsed::Incomplete { expect_continue }) => {
                    if expect_continue && !sent_continue {
                        sent_continue = true;
                        if !write_all(shared, stream, CONTINUE) {
                            return Incoming::Closed;
                        }
                    }
                }
                Err(e) => return Incoming::Bad(e),
            }
        }
        if shared.stopping() || idle_since.elapsed() > IDLE {
            return Incoming::Closed;
        }
        match stream.read(&mut scratch) {
            Ok(0) => return Incoming::Closed,
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                idle_since = Instant::now();
            }
            Err(e) if is_transient(&e) => {}
            Err(_) => return Incoming::Closed,
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Like [`read_request`], but leaves the request in the socket.
fn peek_request(shared: &Shared, stream: &mut TcpStream) -> Incoming {
    let mut window = vec![0u8; http::MAX_HEAD + http::MAX_BODY + 8];
    let mut sent_continue = false;
    let since = Instant::now();
    loop {
        if shared.stopping() || since.elapsed() > IDLE {
            return Incoming::Closed;
        }
        match stream.peek(&mut window) {
            Ok(0) => return Incoming::Closed,
            Ok(n) => match http::parse_request(&window[..n]) {
                Ok(Parsed::Complete(req, used)) => return Incoming::Request(req, used),
                Ok(Parsed::Incomplete { expect_continue }) => {
                    if n == window.len() {
                        return Incoming::Bad(HttpError::HeadTooLarge);
                    }
                    if expect_continue && !sent_continue {
                        sent_continue = true;
                        if !write_all(shared, stream, CONTINUE) {
                            return Incoming::Closed;
                        }
                    }
                    // Part of the request is in: peek again shortly.
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Incoming::Bad(e),
            },
            Err(e) if is_transient(&e) => {}
            Err(_) => return Incoming::Closed,
        }
    }
}

/// Reads and discards `n` bytes that were peeked.
fn consume(shared: &Shared, stream: &mut TcpStream, mut n: usize) -> bool {
    let mut scratch = [0u8; 8192];
    while n > 0 {
        match stream.read(&mut scratch[..n.min(8192)]) {
            Ok(0) => return false,
            Ok(k) => n -= k,
            Err(e) if is_transient(&e) => {
                if shared.stopping() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

fn date(shared: &Shared) -> String {
    service::format_http_date(shared.now())
}

fn send(shared: &Shared, stream: &mut TcpStream, response: &Response, close: bool) -> bool {
    let mut bytes = response.head(&date(shared), response.body.len(), close);
    bytes.extend_from_slice(&response.body);
    write_all(shared, stream, &bytes)
}

/// Writes `response`'s head announcing `size` bytes, then `size` bytes:
/// its body as a prefix, padding in an XML comment, a closing suffix.
fn send_oversized(
    shared: &Shared,
    stream: &mut TcpStream,
    response: &Response,
    size: usize,
) -> bool {
    let head = response.head(&date(shared), size, false);
    if !write_all(shared, stream, &head) {
        return false;
    }
    let (prefix, suffix) = (&b"<Oversized><!--"[..], &b"--></Oversized>"[..]);
    let framed = size >= prefix.len() + suffix.len();
    let mut left = size;
    if framed {
        if !write_all(shared, stream, prefix) {
            return false;
        }
        left -= prefix.len() + suffix.len();
    }
    let chunk = vec![b'x'; 64 * 1024];
    while left > 0 {
        let n = left.min(chunk.len());
        if !write_all(shared, stream, &chunk[..n]) {
            return false;
        }
        left -= n;
    }
    !framed || write_all(shared, stream, suffix)
}

/// Writes all of `bytes`, giving up when stopping or when the peer reads
/// nothing for [`WRITE_STALL`].
fn write_all(shared: &Shared, stream: &mut TcpStream, mut bytes: &[u8]) -> bool {
    let mut progress = Instant::now();
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return false,
            Ok(n) => {
                bytes = &bytes[n..];
                progress = Instant::now();
            }
            Err(e) if is_transient(&e) => {
                if shared.stopping() || progress.elapsed() > WRITE_STALL {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Decides the answer to one request, applying any injected fault, and
/// records it.
fn respond(shared: &Shared, conn: usize, req: &Request) -> Outcome {
    let form = Form::parse(&req.body);
    let service = service::service_of(req);
    let ns = if service == "iam" { IAM_NS } else { STS_NS };
    let action_name = form.get("Action").map(str::to_owned);
    let action = action_name
        .as_deref()
        .and_then(|n| service::action_of(&service, n));
    let fault = shared.take_fault(action);
    let request_id = service::request_id();
    let close = !req.keep_alive() || shared.stopping();

    let mut code = None;
    let outcome = match &fault {
        None | Some(Fault::Delay(_)) => {
            if let Some(Fault::Delay(d)) = fault {
                if !shared.sleep(d) {
                    return Outcome::Drop;
                }
            }
            let answer = {
                let mut state = lock(&shared.state);
                service::handle(
                    &shared.cfg,
                    &mut state,
                    req,
                    &form,
                    shared.now(),
                    &request_id,
                )
            };
            code = answer.code;
            Outcome::Send {
                response: answer.response,
                close,
            }
        }
        Some(Fault::Error {
            status,
            code: c,
            message,
        }) => {
            code = Some(c.clone());
            Outcome::Send {
                response: service::error_response(ns, *status, c, message, &request_id),
                close,
            }
        }
        Some(Fault::Stall(d)) => Outcome::Stall(*d),
        Some(Fault::DropConnection) => Outcome::Drop,
        Some(Fault::ResetConnection) => Outcome::Reset,
        Some(Fault::TruncatedBody) => Outcome::Truncated(service::xml_response(
            200,
            canned_body(action, ns, &request_id, false),
            &request_id,
        )),
        Some(Fault::MalformedXml) => {
            let name = action.unwrap_or(Action::GetCallerIdentity).name();
            let body = format!(
                "<{name}Response xmlns=\"{ns}\"><{name}Result><Credentials><AccessKeyId>ASIA</Credentials>&bogus;</{name}Result"
            );
            Outcome::Send {
                response: service::xml_response(200, body, &request_id),
                close,
            }
        }
        Some(Fault::HtmlError(status)) => Outcome::Send {
            response: html_error(*status),
            close,
        },
        Some(Fault::WrongShape) => Outcome::Send {
            response: service::xml_response(
                200,
                canned_body(action, ns, &request_id, true),
                &request_id,
            ),
            close,
        },
        Some(Fault::Oversized(size)) => Outcome::Oversized {
            response: service::xml_response(200, String::new(), &request_id),
            size: *size,
        },
        Some(Fault::AuthErrorLayout { code: c, message }) => {
            code = Some(c.clone());
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse>\n  <Errors>\n    <Error>\n      <Code>{}</Code>\n      <Message>{}</Message>\n      <Type>Sender</Type>\n    </Error>\n  </Errors>\n</ErrorResponse>\n",
                service::xml_escape(c),
                service::xml_escape(message)
            );
            Outcome::Send {
                response: Response {
                    status: 403,
                    content_type: "text/html; charset=utf-8",
                    headers: Vec::new(),
                    body: body.into_bytes(),
                },
                close,
            }
        }
    };

    let status = match &outcome {
        Outcome::Send { response, .. }
        | Outcome::Truncated(response)
        | Outcome::Oversized { response, .. } => Some(response.status),
        _ => None,
    };
    let auth = req
        .header("authorization")
        .and_then(|v| sigv4::parse_authorization(v).ok());
    let record = RequestRecord {
        connection: conn,
        action,
        action_name,
        access_key_id: auth.map(|a| a.access_key_id),
        status,
        code,
        fault,
        duration_seconds: form.get("DurationSeconds").and_then(|d| d.parse().ok()),
        role_arn: form.get("RoleArn").map(str::to_owned),
        role_session_name: form.get("RoleSessionName").map(str::to_owned),
        serial_number: form.get("SerialNumber").map(str::to_owned),
        external_id: form.get("ExternalId").map(str::to_owned),
    };
    log::debug!(
        "emulator: conn {} {} key {} -> {} {}{}",
        conn,
        record.action_name.as_deref().unwrap_or("-"),
        record.access_key_id.as_deref().unwrap_or("-"),
        status.map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
        record.code.as_deref().unwrap_or(""),
        if record.fault.is_some() {
            " (fault)"
        } else {
            ""
        },
    );
    lock(&shared.records).push(record);
    outcome
}

/// A well-formed success document: for `wrong_shape`, of another action
/// than `action`; else of `action` itself, with placeholder values.
fn canned_body(action: Option<Action>, ns: &str, request_id: &str, wrong_shape: bool) -> String {
    let own = action.unwrap_or(Action::GetCallerIdentity);
    let shape = match (wrong_shape, own) {
        (true, Action::GetCallerIdentity) => Action::GetSessionToken,
        (true, _) => Action::GetCallerIdentity,
        (false, a) => a,
    };
    let meta = format!("<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>");
    let creds = "<Credentials><AccessKeyId>ASIAPLACEHOLDER00000</AccessKeyId><SecretAccessKey>placeholder</SecretAccessKey><SessionToken>placeholder</SessionToken><Expiration>2000-01-01T00:00:00Z</Expiration></Credentials>";
    match shape {
        Action::GetSessionToken => format!(
            "<GetSessionTokenResponse xmlns=\"{STS_NS}\"><GetSessionTokenResult>{creds}</GetSessionTokenResult>{meta}</GetSessionTokenResponse>"
        ),
        Action::AssumeRole => format!(
            "<AssumeRoleResponse xmlns=\"{STS_NS}\"><AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROAPLACEHOLDER:s</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/placeholder/s</Arn></AssumedRoleUser>{creds}<PackedPolicySize>0</PackedPolicySize></AssumeRoleResult>{meta}</AssumeRoleResponse>"
        ),
        Action::ListMFADevices => format!(
            "<ListMFADevicesResponse xmlns=\"{ns}\"><ListMFADevicesResult><MFADevices/><IsTruncated>false</IsTruncated></ListMFADevicesResult>{meta}</ListMFADevicesResponse>"
        ),
        _ => format!(
            "<GetCallerIdentityResponse xmlns=\"{STS_NS}\"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/placeholder</Arn><UserId>AIDAPLACEHOLDER</UserId><Account>123456789012</Account></GetCallerIdentityResult>{meta}</GetCallerIdentityResponse>"
        ),
    }
}

/// An HTML error page in the style of Werkzeug (moto's server).
fn html_error(status: u16) -> Response {
    let reason = http::reason(status);
    let text = if status == 500 {
        "The server encountered an internal error and was unable to complete your request. \
         Either the server is overloaded or there is an error in the application."
    } else {
        "The server could not handle the request."
    };
    let body = format!(
        "<!doctype html>\n<html lang=en>\n<title>{status} {reason}</title>\n<h1>{reason}</h1>\n<p>{text}</p>\n"
    );
    Response {
        status,
        content_type: "text/html; charset=utf-8",
        headers: Vec::new(),
        body: body.into_bytes(),
    }
}
