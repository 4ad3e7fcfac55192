//! A scripted HTTP/1.1 responder on 127.0.0.1, the one the client tests
//! share for answers the emulator does not give: exact status lines,
//! headers and bodies, hostile bytes, a server that hangs or trickles.
//! Protocol behaviour (signatures, expiry, MFA, faults) is the emulator's
//! job; this only plays back what a test scripts.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the responder does with one request.
pub enum Step {
    /// Answer with this status, extra headers and body.
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        keep_alive: bool,
    },
    /// Read the request, then say nothing for this long and close.
    Hang(Duration),
    /// Read the request, then hand the connection to this function (it
    /// writes what it likes, as slowly as it likes) and close.
    Raw(fn(&mut TcpStream)),
}

/// `status` with an XML `body`, then `Connection: close`.
pub fn reply(status: u16, body: &str) -> Step {
    Step::Reply {
        status,
        headers: vec![("Content-Type", "text/xml".into())],
        body: body.as_bytes().to_vec(),
        keep_alive: false,
    }
}

/// A captured request: the connection it came on, head and body.
#[derive(Debug)]
pub struct Captured {
    pub conn: usize,
    pub head: String,
    pub body: String,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What is left to play: scripted steps, then (if set) one reply forever.
struct Script {
    steps: VecDeque<Step>,
    always: Option<(u16, Vec<u8>)>,
}

impl Script {
    fn next(&mut self) -> Option<Step> {
        self.steps.pop_front().or_else(|| {
            self.always.as_ref().map(|(status, body)| Step::Reply {
                status: *status,
                headers: vec![("Content-Type", "text/xml".into())],
                body: body.clone(),
                keep_alive: false,
            })
        })
    }

    fn done(&self) -> bool {
        self.steps.is_empty() && self.always.is_none()
    }
}

/// The responder. Stops when its script is played out, its patience ends,
/// or it is dropped.
pub struct Responder {
    pub url: String,
    script: Arc<Mutex<Script>>,
    captured: Arc<Mutex<Vec<Captured>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Responder {
    /// Serves `steps` in order, then stops; gives up after 10 s.
    pub fn start(steps: Vec<Step>) -> Self {
        Self::start_for(steps, Duration::from_secs(10))
    }

    /// Serves `steps` in order, then stops; gives up after `patience`
    /// (used to show that a step was *not* asked for).
    pub fn start_for(steps: Vec<Step>, patience: Duration) -> Self {
        Self::spawn(
            Script {
                steps: steps.into(),
                always: None,
            },
            Some(patience),
        )
    }

    /// Answers every request with `status` and `body` (see
    /// [`set`](Self::set)) until dropped.
    pub fn always(status: u16, body: Vec<u8>) -> Self {
        Self::spawn(
            Script {
                steps: VecDeque::new(),
                always: Some((status, body)),
            },
            None,
        )
    }

    /// Changes the answer of an [`always`](Self::always) responder.
    pub fn set(&self, status: u16, body: Vec<u8>) {
        self.script.lock().unwrap().always = Some((status, body));
    }

    fn spawn(script: Script, patience: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let script = Arc::new(Mutex::new(script));
        let captured = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (script, captured, stop) = (script.clone(), captured.clone(), stop.clone());
            thread::spawn(move || {
                let deadline = patience.map(|p| Instant::now() + p);
                let mut conn = 0;
                while !stop.load(Ordering::Relaxed)
                    && !script.lock().unwrap().done()
                    && deadline.is_none_or(|d| Instant::now() < d)
                {
                    let stream = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(_) => {
                            thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                    };
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    serve_connection(stream, conn, &script, &captured);
                    conn += 1;
                }
            })
        };
        Responder {
            url,
            script,
            captured,
            stop,
            handle: Some(handle),
        }
    }

    /// Waits until the script is played out (or patience ends) and
    /// returns the requests received.
    pub fn requests(mut self) -> Vec<Captured> {
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        std::mem::take(&mut *self.captured.lock().unwrap())
    }
}

impl Drop for Responder {
    /// Stops accepting; a connection being served (a long hang) finishes on
    /// its own, unwaited.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_connection(
    mut stream: TcpStream,
    conn: usize,
    script: &Mutex<Script>,
    captured: &Mutex<Vec<Captured>>,
) {
    loop {
        let Some((head, body)) = read_request(&mut stream) else {
            return;
        };
        captured.lock().unwrap().push(Captured { conn, head, body });
        let step = script.lock().unwrap().next();
        match step {
            None => return,
            Some(Step::Hang(d)) => {
                thread::sleep(d);
                return;
            }
            Some(Step::Raw(f)) => {
                f(&mut stream);
                return;
            }
            Some(Step::Reply {
                status,
                headers,
                body,
                keep_alive,
            }) => {
                let mut out = format!(
                    "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                if !keep_alive {
                    out.push_str("Connection: close\r\n");
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&body);
                // The client may hang up early (size limit): ignore errors.
                let _ = stream.write_all(&bytes);
                let _ = stream.flush();
                if !keep_alive {
                    return;
                }
            }
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}
