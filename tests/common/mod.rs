//! Helpers shared by the integration tests (and the benches' baseline).
//!
//! The "floor" client is a minimal signed STS/IAM Query request built by
//! hand with ureq + aws-sigv4 + roxmltree and no stslib code, so the
//! emulator can be checked independently of the crate's own client.

#![allow(dead_code)]

pub mod responder;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Once;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// Routes `log` records from stslib to stderr when `STSLIB_TEST_LOG` is set
/// (`debug` or `trace`), each line stamped with the UTC time of day. Safe
/// to call many times.
pub fn init_logger() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.target().starts_with("stslib")
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                let t = time::OffsetDateTime::now_utc().time();
                eprintln!(
                    "{:02}:{:02}:{:02}.{:03} [{} {}] {}",
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.millisecond(),
                    r.level(),
                    r.target(),
                    r.args()
                );
            }
        }
        fn flush(&self) {}
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let level = match std::env::var("STSLIB_TEST_LOG").as_deref() {
            Ok("trace") => log::LevelFilter::Trace,
            Ok(_) => log::LevelFilter::Debug,
            Err(_) => return,
        };
        static LOGGER: Stderr = Stderr;
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level);
        }
    });
}

/// One signed Query call.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// `sts` or `iam` (the credential scope's service).
    pub service: &'a str,
    /// `Version`; `None` leaves it out.
    pub version: Option<&'a str>,
    pub action: &'a str,
    pub params: &'a [(&'a str, &'a str)],
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub session_token: Option<&'a str>,
    /// Signing time (for clock-skew tests).
    pub time: SystemTime,
}

impl<'a> Call<'a> {
    /// An STS call signed now.
    pub fn sts(
        action: &'a str,
        params: &'a [(&'a str, &'a str)],
        access_key_id: &'a str,
        secret: &'a str,
        session_token: Option<&'a str>,
    ) -> Self {
        Call {
            service: "sts",
            version: Some("2011-06-15"),
            action,
            params,
            access_key_id,
            secret,
            session_token,
            time: SystemTime::now(),
        }
    }

    /// An IAM call signed now.
    pub fn iam(
        action: &'a str,
        params: &'a [(&'a str, &'a str)],
        access_key_id: &'a str,
        secret: &'a str,
        session_token: Option<&'a str>,
    ) -> Self {
        Call {
            service: "iam",
            version: Some("2010-05-08"),
            ..Call::sts(action, params, access_key_id, secret, session_token)
        }
    }
}

/// Encodes a form value like Python's `quote_plus` (what botocore sends).
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The form body and the signed headers (including `host`) for `call`
/// sent to `host` (`127.0.0.1:PORT`).
pub fn signed_request(call: &Call<'_>, host: &str) -> (Vec<(String, String)>, String) {
    let mut pairs = vec![("Action", call.action)];
    if let Some(v) = call.version {
        pairs.push(("Version", v));
    }
    pairs.extend_from_slice(call.params);
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let identity = aws_credential_types::Credentials::new(
        call.access_key_id,
        call.secret,
        call.session_token.map(str::to_owned),
        None,
        "floor",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(call.service)
        .time(call.time)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        "POST",
        "/",
        [("host", host), ("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("sign").into_parts();
    let mut headers = vec![
        ("host".to_owned(), host.to_owned()),
        ("content-type".to_owned(), content_type.to_owned()),
    ];
    for (name, value) in instructions.headers() {
        headers.push((name.to_owned(), value.to_owned()));
    }
    (headers, body)
}

/// What came back.
#[derive(Debug, Clone)]
pub struct FloorResponse {
    pub status: u16,
    pub body: String,
    pub content_type: Option<String>,
    pub date: Option<String>,
    pub request_id: Option<String>,
}

/// An agent that returns 4xx/5xx as responses, with a 10 s timeout.
pub fn agent() -> ureq::Agent {
    agent_with_timeout(Duration::from_secs(10))
}

/// Like [`agent`] with another overall timeout.
pub fn agent_with_timeout(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Sends `call` to `endpoint` (`http://127.0.0.1:PORT`) with `agent`.
pub fn floor_send(
    agent: &ureq::Agent,
    endpoint: &str,
    call: &Call<'_>,
) -> Result<FloorResponse, ureq::Error> {
    let host = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let (headers, body) = signed_request(call, host);
    let mut req = agent.post(format!("http://{host}/"));
    for (name, value) in &headers {
        if name != "host" {
            req = req.header(name, value);
        }
    }
    let mut resp = req.send(body.as_bytes())?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, date, request_id) = (
        header("content-type"),
        header("date"),
        header("x-amzn-requestid"),
    );
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string()?;
    Ok(FloorResponse {
        status,
        body,
        content_type,
        date,
        request_id,
    })
}

/// One signed STS call on a fresh agent; panics on transport errors.
/// Returns the status and body.
pub fn floor_call(
    endpoint: &str,
    action: &str,
    params: &[(&str, &str)],
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
) -> (u16, String) {
    let call = Call::sts(action, params, access_key_id, secret, session_token);
    let r = floor_send(&agent(), endpoint, &call).expect("transport error");
    (r.status, r.body)
}

/// Sends `call` over a raw TCP connection and returns what the read gave:
/// the bytes received until EOF, or the error.
pub fn raw_call(addr: std::net::SocketAddr, call: &Call<'_>) -> std::io::Result<Vec<u8>> {
    let host = addr.to_string();
    let (headers, body) = signed_request(call, &host);
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = String::from("POST / HTTP/1.1\r\n");
    for (name, value) in &headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// The text of the first element named `name` anywhere in `xml`.
pub fn xml_text(xml: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .map(str::to_owned)
}

/// Temporary credentials parsed from a GetSessionToken/AssumeRole body.
#[derive(Debug, Clone)]
pub struct TempCreds {
    pub access_key_id: String,
    pub secret: String,
    pub token: String,
    pub expiration: String,
}

/// Parses `<Credentials>` from a body; panics if absent.
pub fn parse_creds(xml: &str) -> TempCreds {
    TempCreds {
        access_key_id: xml_text(xml, "AccessKeyId").expect("AccessKeyId"),
        secret: xml_text(xml, "SecretAccessKey").expect("SecretAccessKey"),
        token: xml_text(xml, "SessionToken").expect("SessionToken"),
        expiration: xml_text(xml, "Expiration").expect("Expiration"),
    }
}

/// The names of this process's threads (Linux `/proc/self/task/*/comm`).
pub fn thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect()
}

// ---- Sessions on the emulator -------------------------------------------

/// alice's long-term key, as given to the emulator and the profile files.
pub const ALICE_KEY: &str = "AKIAALICEEXAMPLE0001";
/// alice's secret access key.
pub const ALICE_SECRET: &str = "alice-secret-key";
/// alice's virtual MFA device.
pub const ALICE_MFA: &str = "arn:aws:iam::123456789012:mfa/alice";
/// The code alice's device accepts.
pub const ALICE_CODE: &str = "123456";

/// An emulator builder with alice (and no device) and this credential
/// lifetime cap.
pub fn emulator_with_alice(lifetime: Duration) -> stslib::emulator::EmulatorBuilder {
    stslib::emulator::Emulator::builder()
        .user("alice", ALICE_KEY, ALICE_SECRET)
        .credential_lifetime(lifetime)
}

/// The role ARN of role profile `name`.
pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::123456789012:role/{name}")
}

/// `[profile NAME]` sections for role profiles sourced from `source`
/// (`extra` lines are added to each).
pub fn role_profiles(names: &[&str], source: &str, extra: &str) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "[profile {n}]\nrole_arn = {}\nsource_profile = {source}\n{extra}\n",
                role_arn(n)
            )
        })
        .collect()
}

/// `r1` .. `rN`.
pub fn role_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("r{i}")).collect()
}

/// Profile files: alice's keys (in the credentials file), `[profile alice]`
/// with `alice_config` lines, and `config` appended as is.
pub fn alice_files(alice_config: &str, config: &str) -> stslib::profile::ProfileFiles {
    let config = format!("[profile alice]\n{alice_config}\n{config}");
    let credentials = format!(
        "[alice]\naws_access_key_id = {ALICE_KEY}\naws_secret_access_key = {ALICE_SECRET}\n"
    );
    stslib::profile::ProfileFiles::from_strings(&config, &credentials).expect("profile files parse")
}

/// A refresh policy for second-scale lifetimes: refresh at half life,
/// retries from 100 ms.
pub fn fast_policy() -> stslib::RefreshPolicy {
    stslib::RefreshPolicy::default()
        .fraction(0.5)
        .retry_base(Duration::from_millis(100))
        .retry_max(Duration::from_millis(500))
}

/// A session builder for `profile` on the emulator at `endpoint`, IAM
/// included, with an environment of nothing else (hermetic).
pub fn session_builder(
    endpoint: &str,
    files: stslib::profile::ProfileFiles,
    profile: &str,
) -> stslib::SessionBuilder {
    stslib::Session::builder()
        .files(files)
        .profile(profile)
        .endpoint(endpoint)
        .env(stslib::Env::from_pairs([(
            "AWS_ENDPOINT_URL_IAM",
            endpoint,
        )]))
        .refresh_policy(fast_policy())
}

/// The session-token lifetime tests ask for (the emulator caps it).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Receives events until `pred` accepts one or `timeout` passes; returns
/// the accepted event and everything received before it.
pub fn wait_event(
    rx: &crossbeam_channel::Receiver<stslib::Event>,
    timeout: Duration,
    mut pred: impl FnMut(&stslib::Event) -> bool,
) -> (Option<stslib::Event>, Vec<stslib::Event>) {
    let end = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if pred(&e) => return (Some(e), seen),
            Ok(e) => seen.push(e),
            Err(_) => return (None, seen),
        }
    }
}

/// How many `stslib-refresh` threads this process has.
pub fn refresh_threads() -> usize {
    thread_names()
        .iter()
        .filter(|n| n.as_str() == "stslib-refresh")
        .count()
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- Renewing sessions (fault matrix, soak) ------------------------------

/// An emulator with alice and her MFA device (required for session
/// tokens), session tokens capped at `token` and role credentials at
/// `role`.
pub fn renewing_emulator(token: Duration, role: Duration) -> stslib::emulator::Emulator {
    renewing_emulator_builder(token, role)
        .start()
        .expect("emulator starts")
}

/// [`renewing_emulator`] reading `clock` (give the session the same one).
pub fn renewing_emulator_on(
    token: Duration,
    role: Duration,
    clock: &stslib::clock::ManualClock,
) -> stslib::emulator::Emulator {
    renewing_emulator_builder(token, role)
        .clock(clock.clock())
        .start()
        .expect("emulator starts")
}

fn renewing_emulator_builder(token: Duration, role: Duration) -> stslib::emulator::EmulatorBuilder {
    emulator_with_alice(token)
        .role_lifetime(role)
        .mfa_device("alice", ALICE_MFA, ALICE_CODE)
        .require_mfa(true)
}

/// A session for alice on the emulator at `endpoint`, with role profiles
/// `roles`, her device as `mfa_serial` and an MFA provider that always
/// gives the right code: the session gets and renews its token by itself.
/// [`fast_policy`] refreshes at half life.
pub fn renewing_session(endpoint: &str, roles: &[&str]) -> stslib::SessionBuilder {
    let files = alice_files(
        &format!("mfa_serial = {ALICE_MFA}"),
        &role_profiles(roles, "alice", ""),
    );
    session_builder(endpoint, files, "alice")
        .mfa_provider(|_| Ok(stslib::Secret::new(ALICE_CODE)))
        .token_lifetime(TOKEN_LIFETIME)
}

/// Halts `session`, asserting it succeeds within `bound` and leaves no
/// refresher running; returns how long it took.
pub fn halt_promptly(session: &stslib::Session, bound: Duration) -> Duration {
    let started = std::time::Instant::now();
    let r = session.halt();
    let took = started.elapsed();
    assert!(r.is_ok(), "halt failed: {r:?}");
    assert!(took < bound, "halt took {took:?}");
    assert!(
        !session.is_refreshing(),
        "refresher still running after halt"
    );
    took
}

/// A fresh directory under the system temp dir, `stslib-PID-NAME`, removed
/// on drop. Names must differ within one test binary.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("stslib-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // 0700 whatever the umask: the cache refuses a directory others
        // can write to.
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- Virtual time ------------------------------------------------------

/// Sets its flag when dropped, a panic unwinding included. A reader thread
/// in a `thread::scope` loops until the flag is set; holding one of these
/// in the scope's main closure makes a failed assertion there fail the test
/// instead of hanging it in the scope's join.
pub struct SetOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Moves `clock` forward `step` at a time, letting the session settle after
/// each step, until `pred` accepts an event from `rx` or `limit` of clock
/// time has passed; returns the accepted event and everything received
/// before it. No real time is waited for beyond the work each step causes.
pub fn advance_until(
    clock: &stslib::clock::ManualClock,
    rx: &crossbeam_channel::Receiver<stslib::Event>,
    step: Duration,
    limit: Duration,
    mut pred: impl FnMut(&stslib::Event) -> bool,
) -> (Option<stslib::Event>, Vec<stslib::Event>) {
    let mut seen = Vec::new();
    let mut moved = Duration::ZERO;
    loop {
        while let Ok(e) = rx.try_recv() {
            if pred(&e) {
                return (Some(e), seen);
            }
            seen.push(e);
        }
        if moved >= limit {
            return (None, seen);
        }
        clock.advance_and_settle(step);
        moved += step;
    }
}
