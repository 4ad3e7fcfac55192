//! The emulator's connections: the accept loop, one thread per connection
//! reading requests (keep-alive, `Connection: close`, `100 Continue`) and
//! writing answers, all checking the stop flag often enough that
//! [`Emulator::stop`](super::Emulator::stop) joins within about a second.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::faults::respond;
use super::http::{self, HttpError, Parsed, Request, Response};
use super::{lock, service, Shared};

/// How often blocked connection threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(120);
/// A client that reads nothing of an answer for this long is dropped.
const WRITE_STALL: Duration = Duration::from_secs(30);

pub(super) fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    workers: &Mutex<Vec<JoinHandle<()>>>,
) {
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
pub(super) enum Outcome {
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
