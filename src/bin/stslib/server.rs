//! The loopback credential endpoint of `stslib exec --server`: the container
//! credentials protocol that botocore, the AWS CLI, every AWS SDK and
//! aws-config read from `AWS_CONTAINER_CREDENTIALS_FULL_URI` with the
//! `Authorization` header set to `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
//!
//! Hand-written on `std::net` rather than on `tiny_http` 0.12, which reads a
//! header line with no length bound (a line without CRLF grows until memory
//! runs out), sets no read timeout, gives each connection a pool thread with
//! no cap, and never joins its threads. What is needed here is small: one
//! `GET`, one header compared in constant time, one JSON body.
//!
//! Shape: one thread runs a `poll(2)` loop over the non-blocking listener,
//! a wake-up socket and every open connection. No connection ever owns a
//! thread, so connections that send nothing cost a descriptor and a slot,
//! not a worker. Each connection serves one request: its head is read as
//! bytes arrive, at most [`MAX_HEAD`] bytes, and the whole exchange (head,
//! response, close) has [`REQUEST_DEADLINE`] from the accept. Answering is
//! cheap (parse the head, compare the token, read the session's slot,
//! format a small JSON), so the loop answers itself; the response is
//! written without blocking, the rest of it when the socket takes more.
//! At most [`MAX_CONNECTIONS`] are open (fewer under a low `ulimit -n`,
//! see [`connection_cap`]): the next accept closes the oldest
//! one, never refuses the newest, so a flood of idle connections cannot
//! lock out a client that connects and sends its request at once.
//! [`CredentialServer::stop`] (and drop) closes the wake-up socket; the loop
//! sees it, closes every connection and ends, and the thread is joined.
//! Elsewhere than Unix (no `poll(2)` through nix) `--server` is refused.
#![cfg_attr(not(unix), allow(dead_code))]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::output::json_str;

/// Connections open at once; at the cap, a new one closes the oldest.
/// Lower under a low descriptor limit: see [`connection_cap`].
pub(crate) const MAX_CONNECTIONS: usize = 128;
/// The fewest connections the cap allows, whatever the descriptor limit.
const MIN_CONNECTIONS: usize = 4;
/// Descriptors left to the rest of the process before the server takes
/// its share: the refresher's STS connections, the cache's files and lock,
/// the child's standard streams, logging.
const RESERVED_FDS: u64 = 32;
/// Connections accepted between two looks at those already open, so that a
/// request that has arrived is read before a burst of accepts can push its
/// connection out: each survives at least `MAX_CONNECTIONS / ACCEPT_BATCH`
/// polls.
const ACCEPT_BATCH: usize = 16;
/// The longest a connection may stay open: to send its head, take the
/// response and close.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// The largest request head (request line and headers) read.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The path served; any other answers `404`.
pub(crate) const PATH: &str = "/stslib/credentials";
/// At most one warning this often about connections closed to make room.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long accepting pauses when accept fails with nothing to close
/// (out of descriptors): the pending connection keeps the listener
/// readable, and retrying at once would spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Where the credentials come from: the session's slot, read on each
/// request (never a network call). Without valid credentials, why not: the
/// message of the `503` (the SDKs show it).
pub(crate) type Source = Arc<dyn Fn() -> Result<stslib::Credentials, String> + Send + Sync>;

/// A running credential endpoint on `127.0.0.1`, an ephemeral port.
pub(crate) struct CredentialServer {
    addr: SocketAddr,
    token: stslib::Secret,
    /// Closing it wakes the loop, which then ends.
    #[cfg(unix)]
    waker: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CredentialServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialServer")
            .field("addr", &self.addr)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The connection cap for this process: [`MAX_CONNECTIONS`], or under a
/// low descriptor limit (`ulimit -n`) half of what the limit leaves after
/// [`RESERVED_FDS`], so that a flood of connections cannot take the
/// descriptors the refresher and the cache need; never below
/// [`MIN_CONNECTIONS`].
#[cfg(unix)]
fn connection_cap() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => cap_for_limit(soft),
        Err(_) => MAX_CONNECTIONS,
    }
}

#[cfg(not(unix))]
fn connection_cap() -> usize {
    MAX_CONNECTIONS
}

/// [`connection_cap`] for a soft descriptor limit of `limit`.
fn cap_for_limit(limit: u64) -> usize {
    let share = limit.saturating_sub(RESERVED_FDS) / 2;
    usize::try_from(share)
        .unwrap_or(usize::MAX)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

impl CredentialServer {
    /// Binds `127.0.0.1:0`, draws a 256-bit token and starts the thread.
    #[cfg(unix)]
    pub(crate) fn start(source: Source) -> io::Result<CredentialServer> {
        let token = stslib::Secret::new(random_token()?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (waker, woken) = UnixStream::pair()?;
        let server = EventLoop {
            listener,
            woken,
            expected: token.clone(),
            source,
            cap: connection_cap(),
            conns: VecDeque::with_capacity(MAX_CONNECTIONS),
            accept_paused_until: None,
            evicted: Throttle::default(),
            accept_failed: Throttle::default(),
        };
        let thread = std::thread::Builder::new()
            .name("stslib-server".into())
            .spawn(move || server.run())?;
        log::info!("credential server listening on http://{addr}{PATH}");
        Ok(CredentialServer {
            addr,
            token,
            waker: Some(waker),
            thread: Some(thread),
        })
    }

    /// The server needs `poll(2)`: Unix only.
    #[cfg(not(unix))]
    pub(crate) fn start(_source: Source) -> io::Result<CredentialServer> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the credential server (--server) is only built for Unix",
        ))
    }

    /// `http://127.0.0.1:PORT/stslib/credentials`, for
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// The value for `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    pub(crate) fn token(&self) -> &stslib::Secret {
        &self.token
    }

    /// Stops accepting, closes every connection (the child it served has
    /// ended) and joins the thread; returns as soon as the loop sees the
    /// wake-up, whatever its connections are doing.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        #[cfg(unix)]
        drop(self.waker.take());
        if thread.join().is_err() {
            log::warn!("the credential server thread panicked");
        }
        log::info!("credential server on {} stopped", self.addr);
    }
}

impl Drop for CredentialServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Counts events and says when one warning about them is due: at most one
/// per [`WARN_EVERY`]. Any local user can open connections to the port, and
/// a warning per closed connection would flood the terminal stslib shares
/// with the child.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// Notes one event at `now`; when a warning is due, how many events it
    /// covers (this one and those held back since the last warning).
    pub(crate) fn note(&mut self, now: Instant) -> Option<u64> {
        self.held += 1;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < WARN_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

/// What a request head asked for, as far as this server cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Every `Authorization` value, trimmed.
    pub(crate) authorization: Vec<String>,
}

/// A request head that is not HTTP/1.x or has malformed lines: `400`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Parses a complete request head (through the blank line). Pure.
pub(crate) fn parse_head(bytes: &[u8]) -> Result<Head, Malformed> {
    let text = std::str::from_utf8(bytes).map_err(|_| Malformed)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(Malformed)?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(Malformed),
    };
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if method.is_empty()
        || !method.bytes().all(token_char)
        || !target.starts_with('/')
        || !target.bytes().all(|b| b.is_ascii_graphic())
        || !matches!(version, "HTTP/1.1" | "HTTP/1.0")
    {
        return Err(Malformed);
    }
    let path = target.split('?').next().unwrap_or(target);
    let mut authorization = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or(Malformed)?;
        if name.is_empty() || !name.bytes().all(token_char) {
            return Err(Malformed);
        }
        if name.eq_ignore_ascii_case("authorization") {
            authorization.push(value.trim_matches([' ', '\t']).to_owned());
        }
    }
    Ok(Head {
        method: method.to_owned(),
        path: path.to_owned(),
        authorization,
    })
}

/// Equal lengths and equal bytes, in time that depends only on the
/// lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The status, reason and body for a parsed request. Pure but for the
/// `source` read.
pub(crate) fn answer(
    head: &Head,
    expected: &stslib::Secret,
    source: &Source,
) -> (u16, &'static str, String) {
    if head.method != "GET" {
        return (405, "Method Not Allowed", error_body("only GET is served"));
    }
    let authorized = matches!(head.authorization.as_slice(),
        [one] if constant_time_eq(one.as_bytes(), expected.expose().as_bytes()));
    if !authorized {
        return (
            403,
            "Forbidden",
            error_body("missing or wrong authorization token"),
        );
    }
    if head.path != PATH {
        return (404, "Not Found", error_body("no such path"));
    }
    match source() {
        Ok(c) => (200, "OK", credentials_json(&c)),
        Err(why) => (503, "Service Unavailable", error_body(&why)),
    }
}

/// The container credentials document.
pub(crate) fn credentials_json(c: &stslib::Credentials) -> String {
    format!(
        "{{\"AccessKeyId\":{},\"SecretAccessKey\":{},\"Token\":{},\"Expiration\":{}}}",
        json_str(&c.access_key_id),
        json_str(c.secret_access_key.expose()),
        json_str(c.session_token.expose()),
        json_str(&c.expiration_iso()),
    )
}

fn error_body(message: &str) -> String {
    format!("{{\"message\":{}}}", json_str(message))
}

/// The response to a complete head.
fn respond_to(head: &[u8], expected: &stslib::Secret, source: &Source) -> Vec<u8> {
    let (status, reason, body) = match parse_head(head) {
        Ok(head) => {
            let (status, reason, body) = answer(&head, expected, source);
            log::debug!(
                "credential server: {} {} -> {status}",
                head.method,
                head.path
            );
            (status, reason, body)
        }
        Err(Malformed) => (400, "Bad Request", error_body("malformed request")),
    };
    response(status, reason, &body)
}

/// The response to a head not read whole.
fn refusal(why: ReadError) -> Vec<u8> {
    match why {
        ReadError::TooLarge => response(
            431,
            "Request Header Fields Too Large",
            &error_body("request head too large"),
        ),
        ReadError::TimedOut => response(408, "Request Timeout", &error_body("request too slow")),
        ReadError::Busy => response(
            503,
            "Service Unavailable",
            &error_body("too many open connections"),
        ),
    }
}

fn response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Why no complete head was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadError {
    /// Over [`MAX_HEAD`]: `431`.
    TooLarge,
    /// Not complete by the deadline: `408`, best effort.
    TimedOut,
    /// Closed to make room for a newer connection: `503`, best effort.
    Busy,
}

/// Where one connection is.
#[derive(Debug)]
enum State {
    /// Reading the head: the bytes so far.
    Reading(Vec<u8>),
    /// Writing the response: all of it, and how much is written.
    Writing(Vec<u8>, usize),
    /// Response written and our side shut: reading and dropping what the
    /// client still sends until it closes, so that our close does not
    /// reset the connection and lose the response at the client.
    Draining(usize),
}

/// One accepted connection, non-blocking.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// Accept plus [`REQUEST_DEADLINE`]: then it is closed, whatever its
    /// state.
    deadline: Instant,
    state: State,
}

/// Whether a connection stays open after some I/O.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Wait,
    Close,
}

impl Conn {
    fn new(stream: TcpStream, now: Instant) -> Conn {
        Conn {
            stream,
            deadline: now + REQUEST_DEADLINE,
            state: State::Reading(Vec::new()),
        }
    }

    /// Does what the socket allows now without blocking: reads the head,
    /// answers it, writes, drains.
    fn advance(&mut self, expected: &stslib::Secret, source: &Source) -> Next {
        let mut chunk = [0u8; 4096];
        loop {
            match &mut self.state {
                State::Reading(buf) => {
                    let n = match self.stream.read(&mut chunk) {
                        Ok(0) => return Next::Close, // gone before a complete head
                        Ok(n) => n,
                        Err(e) => return on_error(&e),
                    };
                    // Look for the end only where it can newly appear.
                    let from = buf.len().saturating_sub(3);
                    buf.extend_from_slice(&chunk[..n]);
                    let response = match find_end(&buf[from..]) {
                        Some(end) if from + end <= MAX_HEAD => {
                            respond_to(&buf[..from + end], expected, source)
                        }
                        Some(_) => refusal(ReadError::TooLarge),
                        None if buf.len() > MAX_HEAD => refusal(ReadError::TooLarge),
                        None => continue,
                    };
                    self.state = State::Writing(response, 0);
                }
                State::Writing(response, written) => {
                    match self.stream.write(&response[*written..]) {
                        Ok(0) => return Next::Close,
                        Ok(n) => *written += n,
                        Err(e) => return on_error(&e),
                    }
                    if *written == response.len() {
                        let _ = self.stream.shutdown(Shutdown::Write);
                        self.state = State::Draining(0);
                    }
                }
                State::Draining(drained) => {
                    match self.stream.read(&mut chunk) {
                        Ok(0) => return Next::Close,
                        Ok(n) => *drained += n,
                        Err(e) => return on_error(&e),
                    }
                    if *drained > MAX_HEAD {
                        return Next::Close; // a stream, not a straggler
                    }
                }
            }
        }
    }

    /// Closes it, first telling a client still sending its head why, if the
    /// socket takes the short answer at once.
    fn close(mut self, why: ReadError) {
        if matches!(self.state, State::Reading(_)) {
            let _ = self.stream.write(&refusal(why));
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }

    #[cfg(unix)]
    fn interest(&self) -> nix::poll::PollFlags {
        use nix::poll::PollFlags;
        match self.state {
            State::Writing(..) => PollFlags::POLLOUT,
            State::Reading(_) | State::Draining(_) => PollFlags::POLLIN,
        }
    }
}

/// `Wait` when the socket has nothing more for now; `Close` on a real error.
fn on_error(e: &io::Error) -> Next {
    match e.kind() {
        io::ErrorKind::WouldBlock => Next::Wait,
        // `advance` loops again only on progress; an interrupted call
        // leaves the socket ready, so the next poll returns at once.
        io::ErrorKind::Interrupted => Next::Wait,
        _ => Next::Close,
    }
}

/// Index just past the first `\r\n\r\n`.
fn find_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The server thread's state.
#[cfg(unix)]
struct EventLoop {
    listener: TcpListener,
    /// Readable (its peer closed) when the server is to stop.
    woken: UnixStream,
    expected: stslib::Secret,
    source: Source,
    /// Open connections in accept order, so also in deadline order: the
    /// front is the oldest, the first to expire and the first to close
    /// when a new one needs room.
    conns: VecDeque<Conn>,
    /// At most this many in `conns`.
    cap: usize,
    accept_paused_until: Option<Instant>,
    evicted: Throttle,
    accept_failed: Throttle,
}

#[cfg(unix)]
impl EventLoop {
    fn run(mut self) {
        use nix::errno::Errno;
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;

        loop {
            let now = Instant::now();
            while self.conns.front().is_some_and(|c| c.deadline <= now) {
                if let Some(c) = self.conns.pop_front() {
                    c.close(ReadError::TimedOut);
                }
            }
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
            }
            let wake_at = self
                .conns
                .front()
                .map(|c| c.deadline)
                .into_iter()
                .chain(self.accept_paused_until)
                .min();
            let timeout = wake_at.map_or(PollTimeout::NONE, |t| {
                // Rounded up: rounded down to 0 ms it would spin until then.
                let ms = t
                    .saturating_duration_since(now)
                    .as_nanos()
                    .div_ceil(1_000_000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            });
            let listen = if self.accept_paused_until.is_none() {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            };
            let (woken, acceptable, ready) = {
                let mut fds = Vec::with_capacity(self.conns.len() + 2);
                fds.push(PollFd::new(self.woken.as_fd(), PollFlags::POLLIN));
                fds.push(PollFd::new(self.listener.as_fd(), listen));
                fds.extend(
                    self.conns
                        .iter()
                        .map(|c| PollFd::new(c.stream.as_fd(), c.interest())),
                );
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        log::error!("credential server stopped: poll failed: {e}");
                        return;
                    }
                }
                // Any event counts: an error or hang-up is seen by the read
                // or write it makes fail.
                let any = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                let ready: Vec<bool> = fds[2..].iter().map(any).collect();
                (any(&fds[0]), any(&fds[1]), ready)
            };
            if woken {
                return; // dropping the connections closes them
            }
            // Connections first, then new ones: a request that has arrived
            // is answered before any accept can push its connection out.
            let mut ready = ready.into_iter();
            let (expected, source) = (&self.expected, &self.source);
            self.conns.retain_mut(|c| {
                !ready.next().unwrap_or(false) || c.advance(expected, source) == Next::Wait
            });
            if acceptable {
                self.accept_some();
            }
        }
    }

    /// Accepts up to [`ACCEPT_BATCH`] connections, each answered at once
    /// if its request is already there.
    fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    if self.conns.len() >= self.cap {
                        self.evict_oldest();
                    }
                    let mut conn = Conn::new(stream, Instant::now());
                    if conn.advance(&self.expected, &self.source) == Next::Wait {
                        self.conns.push_back(conn);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of descriptors and the like. The connection stays
                    // queued: free a descriptor and retry, or pause.
                    if let Some(n) = self.accept_failed.note(Instant::now()) {
                        log::warn!(
                            "credential server: accept failed {n} time(s): {e} \
                             (at most one such warning every {}s)",
                            WARN_EVERY.as_secs()
                        );
                    }
                    if self.conns.is_empty() {
                        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                        return;
                    }
                    self.evict_oldest();
                }
            }
        }
    }

    /// Closes the oldest connection to make room: under a flood, the one
    /// most likely to be an attacker's idle one, and a client that sends
    /// its request at once has been answered long before it is oldest.
    fn evict_oldest(&mut self) {
        let Some(oldest) = self.conns.pop_front() else {
            return;
        };
        oldest.close(ReadError::Busy);
        match self.evicted.note(Instant::now()) {
            Some(n) => log::warn!(
                "credential server: {n} connection(s) closed to make room, \
                 oldest first ({} open at most; at most one such warning \
                 every {}s)",
                self.cap,
                WARN_EVERY.as_secs()
            ),
            None => log::debug!("credential server: oldest connection closed to make room"),
        }
    }
}

/// 256 random bits from the operating system, hex-encoded.
fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, Malformed> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn parses_the_sdk_request() {
        let h = head(&format!(
            "GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:1\r\nauthorization:  tok \r\nAccept: */*\r\n\r\n"
        ))
        .unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, PATH);
        assert_eq!(h.authorization, vec!["tok".to_owned()]);
        let h = head("GET /x?y=1 HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((h.path.as_str(), h.authorization.len()), ("/x", 0));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "\r\n\r\n",
            "GET\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.1 extra\r\n\r\n",
            "GET noslash HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
            // Control characters in the target (logged at debug): a bare
            // LF would forge a log line, ESC drive the user's terminal,
            // from anyone who can connect, token or not.
            "GET /a\nstslib: forged HTTP/1.1\r\n\r\n",
            "GET /\x1b[2J HTTP/1.1\r\n\r\n",
            "GET /\x7f HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(head(bad), Err(Malformed), "{bad:?}");
        }
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n"),
            Err(Malformed)
        );
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn busy_warnings_are_throttled() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        assert_eq!(t.note(t0), Some(1));
        let held: Vec<_> = (1..1000)
            .map(|i| t.note(t0 + Duration::from_millis(i)))
            .collect();
        assert!(held.iter().all(Option::is_none), "one warning per period");
        assert_eq!(t.note(t0 + WARN_EVERY), Some(1000), "the held ones counted");
        assert_eq!(t.note(t0 + WARN_EVERY + Duration::from_secs(1)), None);
    }

    fn creds() -> stslib::Credentials {
        let now = time::OffsetDateTime::now_utc();
        stslib::Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: stslib::Secret::new("se\"cret"),
            session_token: stslib::Secret::new("tok/en+=="),
            start_time: now,
            expiration: now + Duration::from_secs(3600),
        }
    }

    #[test]
    fn answers_by_method_token_path_and_slot() {
        let token = stslib::Secret::new("t0k3n");
        let full: Source = Arc::new(|| Ok(creds()));
        let empty: Source = Arc::new(|| Err("the session token has ended".into()));
        let req = |method: &str, path: &str, auth: &[&str]| Head {
            method: method.into(),
            path: path.into(),
            authorization: auth.iter().map(|s| s.to_string()).collect(),
        };
        let status = |h: &Head, s: &Source| answer(h, &token, s).0;
        assert_eq!(status(&req("GET", PATH, &["t0k3n"]), &full), 200);
        assert_eq!(status(&req("GET", PATH, &["t0k3n"]), &empty), 503);
        let body = answer(&req("GET", PATH, &["t0k3n"]), &token, &empty).2;
        assert_eq!(body, r#"{"message":"the session token has ended"}"#);
        assert_eq!(status(&req("GET", PATH, &[]), &full), 403);
        assert_eq!(status(&req("GET", PATH, &["t0k3"]), &full), 403);
        assert_eq!(status(&req("GET", PATH, &["Bearer t0k3n"]), &full), 403);
        assert_eq!(status(&req("GET", PATH, &["t0k3n", "t0k3n"]), &full), 403);
        assert_eq!(status(&req("GET", "/other", &["t0k3n"]), &full), 404);
        assert_eq!(status(&req("GET", "/other", &[]), &full), 403);
        assert_eq!(status(&req("POST", PATH, &["t0k3n"]), &full), 405);
        let body = answer(&req("GET", PATH, &["t0k3n"]), &token, &full).2;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["AccessKeyId"], "ASIAEXAMPLE");
        assert_eq!(v["SecretAccessKey"], "se\"cret");
        assert_eq!(v["Token"], "tok/en+==");
        assert!(v["Expiration"].as_str().unwrap().ends_with('Z'));
    }

    /// Tests that start a server run one at a time: they count the
    /// process's server threads.
    static ONE_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn server_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                    .filter(|n| n.trim() == "stslib-server")
                    .count()
            })
            .unwrap_or(0)
    }

    fn request(server: &CredentialServer) -> String {
        format!(
            "GET {PATH} HTTP/1.1\r\nAuthorization: {}\r\n\r\n",
            server.token().expose()
        )
    }

    /// Sends `request` on `s` and reads the response through the close.
    fn exchange(s: &mut TcpStream, request: &str) -> String {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    }

    /// Many idle and half-sent connections, one request answered, then
    /// stop: it returns without waiting for their deadline, the one thread
    /// is joined and the port is closed.
    #[cfg(unix)]
    #[test]
    fn stop_joins_the_thread_with_connections_open() {
        let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let server = CredentialServer::start(Arc::new(|| Ok(creds()))).unwrap();
        let addr = server.addr;
        let idle: Vec<TcpStream> = (0..connection_cap() + 40)
            .map(|i| {
                let mut c = TcpStream::connect(addr).unwrap();
                if i % 2 == 0 {
                    c.write_all(b"GET / HT").unwrap();
                }
                c
            })
            .collect();
        let text = exchange(&mut TcpStream::connect(addr).unwrap(), &request(&server));
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        if std::path::Path::new("/proc/self/task").is_dir() {
            assert_eq!(server_threads(), 1);
        }
        let asked = Instant::now();
        server.stop();
        // Behaviour, not speed: stop does not wait for the connections'
        // deadline (2 s), let alone for them to close.
        assert!(asked.elapsed() < REQUEST_DEADLINE, "{:?}", asked.elapsed());
        if std::path::Path::new("/proc/self/task").is_dir() {
            assert_eq!(server_threads(), 0);
        }
        assert!(TcpStream::connect(addr).is_err());
        // Every connection was closed by the server, none left hanging.
        for mut c in idle {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut rest = Vec::new();
            if let Err(e) = c.read_to_end(&mut rest) {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
            }
        }
    }

    /// At the cap, one more connection closes exactly the oldest (with a
    /// `503` when it takes it): the second oldest and the newest are still
    /// open and answered.
    #[cfg(unix)]
    #[test]
    fn a_new_connection_at_the_cap_closes_the_oldest() {
        let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let server = CredentialServer::start(Arc::new(|| Ok(creds()))).unwrap();
        let mut open: Vec<TcpStream> = (0..connection_cap())
            .map(|_| TcpStream::connect(server.addr).unwrap())
            .collect();
        let mut newest = TcpStream::connect(server.addr).unwrap();
        let mut oldest = open.remove(0);
        oldest
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        oldest.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 "), "{text:?}");
        let text = exchange(&mut newest, &request(&server));
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        let text = exchange(&mut open[0], &request(&server));
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n"),
            "second oldest: {text}"
        );
        server.stop();
    }

    /// The cap follows the descriptor limit: the full cap under the usual
    /// limits (1024 and up), half of what is left after the reserve under a
    /// low one, never fewer than the minimum.
    #[test]
    fn the_cap_leaves_descriptors_to_the_rest_of_the_process() {
        assert_eq!(cap_for_limit(1024), MAX_CONNECTIONS);
        assert_eq!(cap_for_limit(u64::MAX), MAX_CONNECTIONS);
        assert_eq!(cap_for_limit(256), 112);
        assert_eq!(cap_for_limit(64), 16);
        assert_eq!(cap_for_limit(24), MIN_CONNECTIONS);
        assert_eq!(cap_for_limit(0), MIN_CONNECTIONS);
    }

    /// A head split across many writes is put together; one over the
    /// bound gets `431`; a client that sends its request and never closes
    /// holds nobody else up.
    #[cfg(unix)]
    #[test]
    fn heads_are_read_as_they_come_and_bounded() {
        let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let server = CredentialServer::start(Arc::new(|| Ok(creds()))).unwrap();
        let req = request(&server);
        let mut never_closes = TcpStream::connect(server.addr).unwrap();
        never_closes.write_all(req.as_bytes()).unwrap();
        let mut split = TcpStream::connect(server.addr).unwrap();
        split.set_nodelay(true).unwrap();
        for b in req.as_bytes() {
            split.write_all(std::slice::from_ref(b)).unwrap();
        }
        let mut text = String::new();
        split.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        let mut big = format!("GET {PATH} HTTP/1.1\r\nX: ").into_bytes();
        big.resize(MAX_HEAD, b'a');
        big.extend_from_slice(b"\r\n\r\n");
        let mut c = TcpStream::connect(server.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(&big).unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text:?}");
        let mut text = String::new();
        never_closes.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        server.stop();
    }

    #[test]
    fn tokens_are_256_bits_and_differ() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
