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
//! Shape: one acceptor thread hands connections to a fixed pool of
//! [`WORKERS`] threads through a bounded queue; a full queue gets an
//! immediate `503`. Each connection serves one request, read under a
//! total deadline of [`REQUEST_DEADLINE`] and a [`MAX_HEAD`] byte bound,
//! then is closed. So a slow or silent client holds one worker for at
//! most the deadline, a huge head is refused at the bound, and garbage gets a
//! `400`. [`CredentialServer::stop`] (and drop) wakes the acceptor and joins
//! every thread.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, TrySendError};

use crate::output::json_str;

/// Worker threads serving requests.
pub(crate) const WORKERS: usize = 4;
/// Accepted connections waiting for a worker; beyond this, `503`.
const QUEUE: usize = 32;
/// The longest a client may take to send its request head.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Once a connection has waited in the queue past its deadline, the time
/// still given to read what the client has already sent.
const GRACE: Duration = Duration::from_millis(100);
/// The largest request head (request line and headers) read.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The path served; any other answers `404`.
pub(crate) const PATH: &str = "/stslib/credentials";
/// At most one warning this often about connections refused as busy.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where the credentials come from: the session's slot, read on each
/// request (never a network call). `None` when no valid credentials are
/// held.
pub(crate) type Source = Arc<dyn Fn() -> Option<stslib::Credentials> + Send + Sync>;

/// A running credential endpoint on `127.0.0.1`, an ephemeral port.
pub(crate) struct CredentialServer {
    addr: SocketAddr,
    token: stslib::Secret,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for CredentialServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialServer")
            .field("addr", &self.addr)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl CredentialServer {
    /// Binds `127.0.0.1:0`, draws a 256-bit token and starts the threads.
    pub(crate) fn start(source: Source) -> io::Result<CredentialServer> {
        let token = stslib::Secret::new(random_token()?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded::<(TcpStream, Instant)>(QUEUE);
        let mut threads = Vec::with_capacity(WORKERS + 1);
        let expected = Arc::new(token.clone());
        for i in 0..WORKERS {
            let rx: Receiver<(TcpStream, Instant)> = rx.clone();
            let stop = stop.clone();
            let source = source.clone();
            let expected = expected.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("stslib-srv-{i}"))
                    .spawn(move || {
                        // Ends when the acceptor drops the sender.
                        for (stream, accepted) in rx {
                            if stop.load(Ordering::Acquire) {
                                continue; // stopping: drop queued connections unserved
                            }
                            serve(stream, accepted, &expected, &source);
                        }
                    })?,
            );
        }
        let accept_stop = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("stslib-server".into())
                .spawn(move || accept_loop(&listener, &accept_stop, tx))?,
        );
        log::info!("credential server listening on http://{addr}{PATH}");
        Ok(CredentialServer {
            addr,
            token,
            stop,
            threads,
        })
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

    /// Stops accepting, lets requests in progress finish (each within
    /// [`REQUEST_DEADLINE`]) and joins every thread.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stop.store(true, Ordering::Release);
        // The acceptor is blocked in accept(): a connection wakes it, and
        // it sees the flag before serving anything.
        if let Ok(s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                log::warn!("a credential server thread panicked");
            }
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
/// a warning per refused connection would flood the terminal stslib shares
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

fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    tx: crossbeam_channel::Sender<(TcpStream, Instant)>,
) {
    let mut busy = Throttle::default();
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Acquire) {
            return; // dropping `tx` ends the workers
        }
        match accepted {
            Ok((stream, _)) => match tx.try_send((stream, Instant::now())) {
                Ok(()) => {}
                Err(TrySendError::Full((mut stream, _))) => {
                    match busy.note(Instant::now()) {
                        Some(n) => log::warn!(
                            "credential server busy: {n} connection(s) refused with 503 \
                             (at most one such warning every {}s)",
                            WARN_EVERY.as_secs()
                        ),
                        None => log::debug!("credential server busy: connection refused with 503"),
                    }
                    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                    let _ = respond(
                        &mut stream,
                        503,
                        "Service Unavailable",
                        &error_body("busy"),
                        false,
                    );
                }
                Err(TrySendError::Disconnected(_)) => return,
            },
            Err(e) => {
                // Out of descriptors and the like: do not spin.
                log::warn!("credential server: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
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
        Some(c) => (200, "OK", credentials_json(&c)),
        None => (
            503,
            "Service Unavailable",
            error_body(
                "no valid credentials: the session token has ended or refreshes are failing",
            ),
        ),
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

/// Reads one request head under the deadline and answers it. The deadline
/// runs from the accept, so connections that idled in the queue take a
/// worker only for [`GRACE`].
fn serve(mut stream: TcpStream, accepted: Instant, expected: &stslib::Secret, source: &Source) {
    let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
    let deadline = (accepted + REQUEST_DEADLINE).max(Instant::now() + GRACE);
    let (status, reason, body) = match read_head(&mut stream, deadline) {
        Ok(bytes) => match parse_head(&bytes) {
            Ok(head) => {
                let (status, reason, body) = answer(&head, expected, source);
                log::debug!(
                    "credential server: {} {} -> {status}",
                    head.method,
                    head.path
                );
                (status, reason, body)
            }
            Err(_) => (400, "Bad Request", error_body("malformed request")),
        },
        Err(ReadError::TooLarge) => (
            431,
            "Request Header Fields Too Large",
            error_body("request head too large"),
        ),
        Err(ReadError::TimedOut) => (408, "Request Timeout", error_body("request too slow")),
        Err(ReadError::Closed) => return,
    };
    let _ = respond(&mut stream, status, reason, &body, true);
}

enum ReadError {
    TooLarge,
    TimedOut,
    Closed,
}

/// Bytes through the end of the head (`\r\n\r\n`), at most [`MAX_HEAD`],
/// by `deadline` whatever the client's pace.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::TimedOut);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| ReadError::Closed)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::TimedOut)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadError::Closed),
        };
        // Look for the end only where it can newly appear.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_end(&buf[from..]) {
            buf.truncate(from + end);
            return if buf.len() > MAX_HEAD {
                Err(ReadError::TooLarge)
            } else {
                Ok(buf)
            };
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
    }
}

/// Index just past the first `\r\n\r\n`.
fn find_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Writes the response and closes; `drain` reads (briefly) what the client
/// sent after its head, so that the close does not reset the connection and
/// lose the response (skipped by the acceptor, which must not wait).
fn respond(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    body: &str,
    drain: bool,
) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    if drain {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
        let mut sink = [0u8; 1024];
        let _ = stream.read(&mut sink);
    }
    Ok(())
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
        let full: Source = Arc::new(|| Some(creds()));
        let empty: Source = Arc::new(|| None);
        let req = |method: &str, path: &str, auth: &[&str]| Head {
            method: method.into(),
            path: path.into(),
            authorization: auth.iter().map(|s| s.to_string()).collect(),
        };
        let status = |h: &Head, s: &Source| answer(h, &token, s).0;
        assert_eq!(status(&req("GET", PATH, &["t0k3n"]), &full), 200);
        assert_eq!(status(&req("GET", PATH, &["t0k3n"]), &empty), 503);
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

    fn server_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                    .filter(|n| n.starts_with("stslib-srv") || n.trim() == "stslib-server")
                    .count()
            })
            .unwrap_or(0)
    }

    /// A request in flight, an idle connection, then stop: every thread is
    /// joined and the port is closed.
    #[test]
    fn stop_joins_every_thread() {
        let server = CredentialServer::start(Arc::new(|| Some(creds()))).unwrap();
        let addr = server.addr;
        let idle = TcpStream::connect(addr).unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        let request = format!(
            "GET {PATH} HTTP/1.1\r\nAuthorization: {}\r\n\r\n",
            server.token().expose()
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        if std::path::Path::new("/proc/self/task").is_dir() {
            assert_eq!(server_threads(), WORKERS + 1);
        }
        server.stop();
        drop(idle);
        if std::path::Path::new("/proc/self/task").is_dir() {
            assert_eq!(server_threads(), 0);
        }
        assert!(TcpStream::connect(addr).is_err());
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
