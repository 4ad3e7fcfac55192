//! Secrets never leak: secret access keys, session tokens and MFA codes do
//! not appear in anything stslib logs (every level down to TRACE), in the
//! `Debug` or `Display` of any public type or error, or in the binary's
//! output, except where they are asked for (`--show-secrets`,
//! `credential-process`, `export`), which is checked too, so the scan is
//! shown able to fail.
//!
//! One logger captures every record of every target at TRACE. The
//! assertion covers the targets of this crate (`stslib::*`, the emulator
//! included) and ureq's records above TRACE (it redacts headers there).
//! ureq's own TRACE level dumps the raw wire bytes, signed request and
//! response bodies included: `ureq_trace_carries_the_wire_bytes` shows it,
//! which is why the crate docs say never to enable it in production.

mod common;

use common::TempDir;

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, Once};
use std::time::Duration;

use common::{advance_until, fast_policy};
use stslib::cache::Cache;
use stslib::clock::ManualClock;
use stslib::emulator::{Action, Emulator, Fault};
use stslib::profile::ProfileFiles;
use stslib::sts::{AssumeRoleRequest, GetSessionTokenRequest};
use stslib::{AccessKey, Credentials, Env, Error, Event, Secret, Session, StsClient};

// ---- The test secrets -------------------------------------------------------

const USER: &str = "alice";
const USER_KEY: &str = "AKIASECRETSTEST00001";
const CACHE_USER: stslib::cache::CacheUser<'static> = stslib::cache::CacheUser {
    profile: USER,
    access_key_id: USER_KEY,
};
/// Long and random-looking: cannot occur by chance.
const USER_SECRET: &str = "Zq7Lw2Xv9Rt4Bn8Mk3Jh6Gf1Dp5Sa0Uy/leak+Probe=Qe";
/// A wrong secret for the same key (SignatureDoesNotMatch).
const WRONG_SECRET: &str = "Wr0ngSecret/Kx8Pz3Nq6Lm1Tv4Hb7Ys2Gd9Cf5Je0Ri+";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
/// The code the emulator accepts.
const CODE: &str = "918273";
/// A code it refuses.
const WRONG_CODE: &str = "564738";
/// Not six digits: refused before sending, and must not be echoed.
const BAD_CODE: &str = "9182736450";
const DENIED_ROLE: &str = "denied";

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::123456789012:role/{name}")
}

/// Everything that must not leak: long secrets (matched anywhere) and MFA
/// codes (matched as whole words, so `...918273...` inside a random token
/// or request id is no false alarm).
#[derive(Default)]
struct Known {
    secrets: BTreeSet<String>,
    codes: BTreeSet<String>,
}

static KNOWN: Mutex<Known> = Mutex::new(Known {
    secrets: BTreeSet::new(),
    codes: BTreeSet::new(),
});

fn known() -> std::sync::MutexGuard<'static, Known> {
    KNOWN.lock().unwrap_or_else(|e| e.into_inner())
}

fn learn_secret(s: &str) {
    assert!(s.len() >= 16, "too short to scan for: {}", s.len());
    known().secrets.insert(s.to_owned());
}

fn learn(c: &Credentials) {
    learn_secret(c.secret_access_key.expose());
    learn_secret(c.session_token.expose());
}

fn learn_static() {
    learn_secret(USER_SECRET);
    learn_secret(WRONG_SECRET);
    let mut k = known();
    for c in [CODE, WRONG_CODE, BAD_CODE] {
        k.codes.insert(c.to_owned());
    }
}

/// True when `code` occurs in `text` not next to a letter or digit.
fn has_word(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// The known secrets and codes found in `text`.
fn leaks(text: &str) -> Vec<String> {
    let k = known();
    let mut out: Vec<String> = k
        .secrets
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .cloned()
        .collect();
    out.extend(k.codes.iter().filter(|c| has_word(text, c)).cloned());
    out
}

/// Collected `Debug`/`Display` strings and outputs, checked at the end.
#[derive(Default)]
struct Shown(Vec<(String, String)>);

impl Shown {
    fn debug(&mut self, label: &str, v: &dyn Debug) {
        self.0.push((format!("{label} (Debug)"), format!("{v:?}")));
        self.0
            .push((format!("{label} (Debug #)"), format!("{v:#?}")));
    }

    fn both<T: Debug + Display + ?Sized>(&mut self, label: &str, v: &T) {
        self.debug(label, &v);
        self.0.push((format!("{label} (Display)"), v.to_string()));
    }

    fn error(&mut self, label: &str, e: &Error) {
        self.both(label, e);
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            self.0
                .push((format!("{label} (source)"), format!("{s} {s:?}")));
            source = s.source();
        }
    }

    fn assert_clean(&self) {
        assert!(!self.0.is_empty());
        for (label, text) in &self.0 {
            let found = leaks(text);
            assert!(found.is_empty(), "{label} shows {found:?}:\n{text}");
        }
    }
}

// ---- The log capture --------------------------------------------------------

struct Record {
    level: log::Level,
    target: String,
    text: String,
    /// The thread that logged it (ureq logs on the caller's thread).
    thread: std::thread::ThreadId,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let rec = Record {
            level: r.level(),
            target: r.target().to_owned(),
            text: r.args().to_string(),
            thread: std::thread::current().id(),
        };
        RECORDS.lock().unwrap_or_else(|e| e.into_inner()).push(rec);
    }
    fn flush(&self) {}
}

/// Installs the capture (every target, TRACE) once for this binary.
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        static CAPTURE: Capture = Capture;
        log::set_logger(&CAPTURE).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
    learn_static();
}

/// Checks every record of this crate, and ureq's records above TRACE;
/// returns how many stslib records there were.
fn assert_logs_clean() -> usize {
    let records = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    let mut ours = 0;
    for r in records.iter() {
        let checked = r.target.starts_with("stslib")
            || (r.target.starts_with("ureq") && r.level < log::Level::Trace);
        if !checked {
            continue;
        }
        ours += usize::from(r.target.starts_with("stslib"));
        let found = leaks(&r.text);
        assert!(
            found.is_empty(),
            "log record [{} {}] shows {found:?}: {}",
            r.level,
            r.target,
            r.text
        );
    }
    ours
}

/// The printable column of ureq-proto's TRACE hex dump (16 bytes per row,
/// `.` for spaces and control bytes), rows joined in order.
fn ureq_wire_dump() -> String {
    let records = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    // This thread's calls only: other tests' dumps would interleave.
    let me = std::thread::current().id();
    records
        .iter()
        .filter(|r| r.thread == me)
        .filter(|r| r.target.starts_with("ureq_proto") && r.level == log::Level::Trace)
        .filter_map(|r| r.text.get(41..).filter(|a| a.len() == 16))
        .collect()
}

// ---- Fixtures ----------------------------------------------------------------

fn emulator() -> stslib::emulator::EmulatorBuilder {
    Emulator::builder()
        .user(USER, USER_KEY, USER_SECRET)
        .mfa_device(USER, SERIAL, CODE)
        .require_mfa(true)
        .deny_role(role_arn(DENIED_ROLE))
}

const ROLES: [&str; 3] = ["dev", "ops", "prod"];

fn config_text() -> String {
    let mut c = format!("[profile {USER}]\nmfa_serial = {SERIAL}\nregion = us-east-1\n");
    for r in ROLES.iter().chain([&DENIED_ROLE]) {
        c.push_str(&format!(
            "[profile {r}]\nrole_arn = {}\nsource_profile = {USER}\n",
            role_arn(r)
        ));
    }
    c
}

fn credentials_text(secret: &str) -> String {
    format!("[{USER}]\naws_access_key_id = {USER_KEY}\naws_secret_access_key = {secret}\n")
}

fn files(secret: &str) -> ProfileFiles {
    ProfileFiles::from_strings(&config_text(), &credentials_text(secret)).unwrap()
}

fn user_keys(secret: &str) -> AccessKey {
    AccessKey {
        access_key_id: USER_KEY.into(),
        secret_access_key: Secret::new(secret),
        session_token: None,
    }
}

fn client(endpoint: &str) -> stslib::StsClientBuilder {
    StsClient::builder()
        .region("us-east-1")
        .endpoint(endpoint)
        .iam_endpoint(endpoint)
        .env(Env::from_pairs::<&str, &str>([]))
}

fn gst_with(code: &str) -> GetSessionTokenRequest {
    GetSessionTokenRequest::new()
        .duration_seconds(900)
        .serial_number(SERIAL)
        .token_code(code)
}

// ---- The library ---------------------------------------------------------------

/// How far the session tests move their manual clock at a time, and at
/// most while waiting for one event (several credential lifetimes).
const STEP: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(20);

/// A session with MFA, several roles, refresh rounds, failing refreshes,
/// and the disk cache: nothing it logs or shows carries a secret.
#[test]
fn session_flows_leak_nothing() {
    capture_logs();
    let mut shown = Shown::default();
    // The session and the emulator share a manual clock: refresh rounds
    // come when it is moved, not after waiting for real expirations.
    let clock = ManualClock::starting_now();
    let builder = emulator()
        .clock(clock.clock())
        .role_lifetime(Duration::from_secs(2));
    shown.debug("EmulatorBuilder", &builder);
    let emu = builder.start().unwrap();
    let endpoint = emu.endpoint();
    let cache_dir = TempDir::new("secrets-session-cache");
    let cache = Cache::new(&cache_dir.0);

    let files = files(USER_SECRET);
    shown.debug("ProfileFiles", &files);
    let profile = files.profile(USER).unwrap().clone();
    shown.debug("Profile", &profile);
    let creds_files = ProfileFiles::from_strings("", &credentials_text(USER_SECRET)).unwrap();
    for p in creds_files.profile(USER).unwrap().properties() {
        shown.debug("Property", p);
        shown.both("Origin", p.origin());
    }
    for r in ROLES {
        let chain = files.chain(r).unwrap();
        shown.debug("Chain", &chain);
        shown.debug("SourceKeys", &chain.source);
        shown.debug("AccessKey", &chain.source.keys);
        shown.both("Secret", &chain.source.keys.secret_access_key);
        for hop in &chain.roles {
            shown.debug("RoleHop", hop);
        }
    }

    let builder = common::session_builder(&endpoint, files.clone(), USER)
        .clock(clock.clock())
        .refresh_policy(fast_policy())
        .cache(cache.clone())
        .token_lifetime(Duration::from_secs(900));
    shown.debug("SessionBuilder", &builder);
    let session = builder.build().unwrap();
    let events = session.subscribe();
    let token = session
        .generate_session_token(Duration::from_secs(900), Some(CODE))
        .unwrap();
    learn(&token);
    shown.debug("Credentials (token)", &token);
    shown.debug("AccessKey (token)", &token.access_key());

    let mut asked: Vec<&str> = ROLES.to_vec();
    asked.push(DENIED_ROLE);
    let outcomes = session.generate_credentials(&asked).unwrap();
    for (profile, outcome) in &outcomes {
        match outcome {
            Ok(c) => {
                learn(c);
                shown.debug(&format!("Credentials ({profile})"), c);
            }
            Err(e) => shown.error(&format!("generate_credentials ({profile})"), e),
        }
    }
    assert!(outcomes[DENIED_ROLE].is_err());
    assert!(ROLES.iter().all(|r| outcomes[*r].is_ok()));

    // Refresh rounds, learning each new set as it comes.
    let mut rounds = 0;
    while rounds < 4 {
        let (e, seen) = advance_until(&clock, &events, STEP, LIMIT, |e| {
            matches!(e, Event::Refreshed { .. })
        });
        for e in seen.iter().chain(&e) {
            shown.debug("Event", e);
        }
        assert!(e.is_some(), "no refresh: {seen:?}");
        for (_, c) in session.valid_credentials().iter() {
            learn(c);
        }
        rounds += 1;
    }
    // Failing refreshes (5xx, then denied), then recovery.
    emu.inject(Action::AssumeRole, Fault::internal(), 6);
    emu.inject(Action::AssumeRole, Fault::access_denied(), 2);
    let (failed, seen) = advance_until(&clock, &events, STEP, LIMIT, |e| {
        matches!(e, Event::RefreshFailed { .. })
    });
    for e in seen.iter().chain(&failed) {
        shown.debug("Event", e);
    }
    match failed {
        Some(Event::RefreshFailed { error, .. }) => shown.error("RefreshFailed", &error),
        other => panic!("no failed refresh: {other:?}"),
    }
    emu.clear_faults();
    let (e, seen) = advance_until(&clock, &events, STEP, LIMIT, |e| {
        matches!(e, Event::Refreshed { .. })
    });
    assert!(e.is_some(), "no recovery: {seen:?}");
    for (_, c) in session.valid_credentials().iter() {
        learn(c);
    }
    let set = session.valid_credentials();
    shown.debug("CredentialSet", &set);
    shown.debug("Session", &session);
    shown.debug("StsClient", session.client());
    session.halt().unwrap();
    while let Ok(e) = events.try_recv() {
        shown.debug("Event", &e);
    }

    // The disk cache: stores, loads, its lock, and a store that fails.
    let lock = cache.lock().unwrap();
    shown.debug("CacheLock", &lock);
    drop(lock);
    shown.debug("Cache", &cache);
    let loaded = cache
        .load_token(CACHE_USER, Some(SERIAL), Duration::ZERO)
        .expect("the session stored its token");
    shown.debug("Credentials (cached token)", &loaded);
    cache
        .store_role(
            CACHE_USER,
            "dev",
            &role_arn("dev"),
            &set.iter().next().unwrap().1.clone(),
            time::Duration::ZERO,
        )
        .unwrap();
    assert!(cache
        .load_role(CACHE_USER, "dev", &role_arn("dev"), Duration::ZERO)
        .is_some());
    let blocked = Cache::new(cache_dir.0.join("lock").join("sub"));
    let e = blocked
        .store_token(CACHE_USER, None, &token, time::Duration::ZERO)
        .unwrap_err();
    shown.error("Cache::store_token into a file", &e);
    let mut broken = token.clone();
    broken.session_token = Secret::new(format!("{}\n{}", USER_SECRET, "x".repeat(20)));
    let e = cache
        .store_token(CACHE_USER, None, &broken, time::Duration::ZERO)
        .unwrap_err();
    shown.error("Cache::store_token with a line break", &e);

    for r in emu.requests() {
        shown.debug("RequestRecord", &r);
    }
    shown.debug("Emulator", &emu);
    shown.assert_clean();
    assert!(assert_logs_clean() > 0);
}

/// A session whose token lives 3 s renews it in the background through
/// the MFA provider: the code never shows.
#[test]
fn token_renewal_with_mfa_provider_leaks_nothing() {
    capture_logs();
    let mut shown = Shown::default();
    let clock = ManualClock::starting_now();
    let emu = emulator()
        .clock(clock.clock())
        .credential_lifetime(Duration::from_secs(3))
        .start()
        .unwrap();
    let session = common::session_builder(&emu.endpoint(), files(USER_SECRET), USER)
        .clock(clock.clock())
        .mfa_provider(|_serial| Ok(Secret::new(CODE)))
        .token_lifetime(Duration::from_secs(900))
        .build()
        .unwrap();
    let events = session.subscribe();
    let outcomes = session.generate_credentials(&ROLES).unwrap();
    for c in outcomes.values() {
        learn(c.as_ref().unwrap());
    }
    learn(&session.session_token().unwrap());
    let (e, seen) = advance_until(&clock, &events, STEP, LIMIT, |e| {
        matches!(e, Event::TokenRenewed { .. })
    });
    assert!(e.is_some(), "no renewal: {seen:?}");
    learn(&session.session_token().unwrap());
    for (_, c) in session.valid_credentials().iter() {
        learn(c);
    }
    for e in seen.iter().chain(&e) {
        shown.debug("Event", e);
    }
    shown.debug("Session", &session);
    session.halt().unwrap();
    shown.assert_clean();
    assert_logs_clean();
}

/// Every failure of the client: wrong MFA code, wrong secret, a malformed
/// code, an expired token, an unreachable endpoint, and each injected
/// fault. No error shows a secret, in `Display`, `Debug` or its sources.
#[test]
fn client_failures_leak_nothing() {
    capture_logs();
    let mut shown = Shown::default();
    // The emulator's time is a manual clock: credentials expire when it is
    // moved, not after a sleep.
    let clock = ManualClock::starting_now();
    let emu = emulator()
        .clock(clock.clock())
        .credential_lifetime(Duration::from_secs(1))
        .start()
        .unwrap();
    let endpoint = emu.endpoint();
    let builder = client(&endpoint).max_attempts(1);
    shown.debug("StsClientBuilder", &builder);
    let c = builder.build().unwrap();
    shown.debug("StsClient", &c);
    let user = user_keys(USER_SECRET);

    let req = gst_with(WRONG_CODE);
    shown.debug("GetSessionTokenRequest", &req);
    let e = c.get_session_token(&user, &req).unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"), "{e}");
    shown.error("wrong MFA code", &e);
    shown.both("ServiceError", e.service_error().unwrap());

    let e = c
        .get_session_token(&user_keys(WRONG_SECRET), &gst_with(CODE))
        .unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"), "{e}");
    shown.error("wrong secret", &e);

    let e = c.get_session_token(&user, &gst_with(BAD_CODE)).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    shown.error("malformed code", &e);

    // An expired session token (the emulator's credentials live 1 s).
    let token = c.get_session_token(&user, &gst_with(CODE)).unwrap();
    learn(&token);
    let ar = AssumeRoleRequest::new(role_arn("dev"), "secrets-test")
        .serial_number(SERIAL)
        .token_code(CODE);
    shown.debug("AssumeRoleRequest", &ar);
    let role = c.assume_role(&token.access_key(), &ar).unwrap();
    learn(&role.credentials);
    shown.debug("AssumedRole", &role);
    let who = c
        .get_caller_identity(&role.credentials.access_key())
        .unwrap();
    shown.debug("CallerIdentity", &who);
    // Past the 1 s lifetime (2 s ahead of the client is far within the
    // 5-minute skew STS allows).
    clock.advance(Duration::from_secs(2));
    let e = c.assume_role(&token.access_key(), &ar).unwrap_err();
    assert_eq!(e.code(), Some("ExpiredToken"), "{e}");
    shown.error("expired token", &e);
    let e = c
        .get_caller_identity(&role.credentials.access_key())
        .unwrap_err();
    shown.error("expired role credentials", &e);
    // A token for an unknown key (forged or from another emulator).
    let mut forged = token.access_key();
    forged.access_key_id = "ASIAUNKNOWNKEY000001".into();
    let e = c.get_caller_identity(&forged).unwrap_err();
    shown.error("unknown temporary key", &e);

    // Unreachable: connection refused, with and without retries.
    for attempts in [1, 2] {
        let dead = client("http://127.0.0.1:1")
            .max_attempts(attempts)
            .build()
            .unwrap();
        let e = dead.get_session_token(&user, &gst_with(CODE)).unwrap_err();
        assert!(matches!(e, Error::Transport { .. }), "{e}");
        shown.error("unreachable", &e);
    }

    // Injected faults, each once, retries off.
    let quick = client(&endpoint)
        .max_attempts(1)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let faults = [
        Fault::throttling(),
        Fault::internal(),
        Fault::unavailable(),
        Fault::access_denied(),
        Fault::Stall(Duration::from_secs(2)),
        Fault::DropConnection,
        Fault::ResetConnection,
        Fault::TruncatedBody,
        Fault::MalformedXml,
        Fault::HtmlError(502),
        Fault::WrongShape,
        Fault::AuthErrorLayout {
            code: "InvalidClientTokenId".into(),
            message: "The security token included in the request is invalid.".into(),
        },
    ];
    for fault in faults {
        shown.debug("Fault", &fault);
        emu.inject(Action::GetSessionToken, fault.clone(), 1);
        let e = quick.get_session_token(&user, &gst_with(CODE)).unwrap_err();
        shown.error(&format!("fault {fault:?}"), &e);
        emu.clear_faults();
    }
    // With retries: the last error after several attempts.
    let retrying = client(&endpoint).max_attempts(3).build().unwrap();
    emu.inject(Action::GetSessionToken, Fault::unavailable(), 3);
    let e = retrying
        .get_session_token(&user, &gst_with(CODE))
        .unwrap_err();
    shown.error("retried 503", &e);

    for r in emu.requests() {
        shown.debug("RequestRecord", &r);
    }
    shown.debug("Emulator", &emu);
    shown.assert_clean();
    assert_logs_clean();
}

/// Session-level failures: a wrong secret in the profile, a wrong code,
/// no code at all, an unreachable endpoint.
#[test]
fn session_failures_leak_nothing() {
    capture_logs();
    let mut shown = Shown::default();
    let emu = emulator().start().unwrap();
    let endpoint = emu.endpoint();
    let lifetime = Duration::from_secs(900);

    let session = common::session_builder(&endpoint, files(WRONG_SECRET), USER)
        .build()
        .unwrap();
    let e = session
        .generate_session_token(lifetime, Some(CODE))
        .unwrap_err();
    shown.error("session, wrong secret", &e);

    let session = common::session_builder(&endpoint, files(USER_SECRET), USER)
        .build()
        .unwrap();
    for code in [Some(WRONG_CODE), Some(BAD_CODE), None] {
        let e = session.generate_session_token(lifetime, code).unwrap_err();
        shown.error(&format!("session, code {:?}", code.map(|_| "…")), &e);
    }
    let e = session.generate_credentials(&ROLES).unwrap_err();
    shown.error("roles without a token", &e);
    let e = session.generate_credentials(&["nope"]).unwrap_err();
    shown.error("unknown role profile", &e);
    shown.debug("Session", &session);

    let dead = Session::builder()
        .files(files(USER_SECRET))
        .profile(USER)
        .endpoint("http://127.0.0.1:1")
        .iam_endpoint("http://127.0.0.1:1")
        .env(Env::from_pairs::<&str, &str>([]))
        .max_attempts(1)
        .build()
        .unwrap();
    let e = dead
        .generate_session_token(lifetime, Some(CODE))
        .unwrap_err();
    shown.error("session, unreachable", &e);

    // Profile errors that sit next to secrets in the files.
    let cases = [
        (
            "",
            format!("[{USER}]\naws_secret_access_key = {USER_SECRET}\n"),
        ),
        (
            "",
            format!("[{USER}]\naws_secret_access_key : {USER_SECRET}\n"),
        ),
        ("", format!("aws_secret_access_key = {USER_SECRET}\n")),
        (
            "",
            format!("[{USER}]\naws_access_key_id = A\n  aws_secret_access_key = {USER_SECRET}\n"),
        ),
        (
            "",
            format!("[{USER}\naws_secret_access_key = {USER_SECRET}\n"),
        ),
        (
            "",
            format!("[{USER}]\naws_secret_access_key = {USER_SECRET}\\x12\n"),
        ),
        (
            "",
            format!("[{USER}]\ns3 =\n  AWS_Secret_Access_Key = {USER_SECRET}\n"),
        ),
        (
            "",
            format!("[{USER}]\nregion = x\n\taws_session_token = {USER_SECRET}\n"),
        ),
    ];
    for (config, credentials) in &cases {
        match ProfileFiles::from_strings(config, credentials) {
            Ok(f) => {
                shown.debug("ProfileFiles (odd)", &f);
                if let Err(e) = f.chain(USER) {
                    shown.error("chain", &e);
                }
            }
            Err(e) => shown.error("parse", &e),
        }
    }
    shown.assert_clean();
    assert_logs_clean();
}

/// ureq's TRACE level dumps the raw bytes on the wire, 16 per record:
/// request heads (with `x-amz-security-token`, the session token) and
/// response bodies (with secret keys and tokens). This is the documented
/// reason never to enable it in production, and it shows the scan finds
/// secrets where they are. (ureq 3.5 does not dump request bodies, so the
/// MFA code in a `GetSessionToken` form is not there.)
#[test]
fn ureq_trace_carries_the_wire_bytes() {
    capture_logs();
    let emu = emulator().start().unwrap();
    let c = client(&emu.endpoint()).build().unwrap();
    let token = c
        .get_session_token(&user_keys(USER_SECRET), &gst_with(CODE))
        .unwrap();
    learn(&token);
    let role = c
        .assume_role(
            &token.access_key(),
            &AssumeRoleRequest::new(role_arn("dev"), "wire-dump"),
        )
        .unwrap();
    learn(&role.credentials);
    let dump = ureq_wire_dump();
    let stale = "ureq's TRACE output changed: update this test and the crate docs";
    assert!(
        dump.contains(&format!(
            "<SecretAccessKey>{}<",
            token.secret_access_key.expose()
        )),
        "{stale}"
    );
    assert!(
        dump.contains(role.credentials.session_token.expose()),
        "{stale}"
    );
    assert!(
        dump.contains(&format!(
            "x-amz-security-token:.{}",
            token.session_token.expose()
        )),
        "{stale}"
    );
    assert!(!leaks(&dump).is_empty());
}

/// The scanner itself: whole-word codes, substrings for secrets.
#[test]
fn the_scan_finds_what_it_should() {
    capture_logs();
    assert!(has_word("code 918273.", CODE));
    assert!(has_word("TokenCode=918273&x", CODE));
    assert!(!has_word("a918273b 19182730", CODE));
    assert!(!leaks(&format!("x{USER_SECRET}y")).is_empty());
    assert!(leaks("nothing to see").is_empty());
}

// ---- The binary ------------------------------------------------------------------

/// A HOME with the AWS files, for the binary.
struct Home {
    dir: TempDir,
}

impl Home {
    fn new(name: &str, secret: &str) -> Home {
        let dir = TempDir::new(&format!("secrets-home-{name}"));
        std::fs::create_dir_all(dir.0.join(".aws")).unwrap();
        std::fs::write(dir.0.join(".aws/config"), config_text()).unwrap();
        std::fs::write(dir.0.join(".aws/credentials"), credentials_text(secret)).unwrap();
        Home { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_stslib"))
            .args(args)
            .env_clear()
            .env("HOME", &self.dir.0)
            .output()
            .expect("run stslib")
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.0.join(".stslib/cache")
    }

    /// Learns every secret in the cache files (what the runs obtained).
    fn learn_cache(&self) {
        let Ok(dir) = std::fs::read_dir(self.cache_dir()) else {
            return;
        };
        for e in dir {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
            for line in text.lines() {
                for field in ["secret_access_key=", "session_token="] {
                    if let Some(v) = line.strip_prefix(field) {
                        learn_secret(v);
                    }
                }
            }
        }
    }

    fn token_file(&self) -> PathBuf {
        Cache::new(self.cache_dir()).token_path(CACHE_USER, Some(SERIAL))
    }
}

fn output(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// 64-bit FNV-1a, the cache entry checksum (see src/cache.rs).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Rewrites a cache entry's expiration and reseals its checksum.
fn extend_entry(path: &Path, expiration: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut head: String = text
        .lines()
        .filter(|l| !l.starts_with("checksum="))
        .map(|l| {
            if l.starts_with("expiration=") {
                format!("expiration={expiration}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let sum = fnv1a64(head.as_bytes());
    head.push_str(&format!("checksum={sum:016x}\n"));
    std::fs::write(path, head).unwrap();
}

/// Runs of the binary, kept for the final scan.
#[derive(Default)]
struct Runs(Vec<(String, Output)>);

impl Runs {
    /// Runs `args` (with `--endpoint` when given) in `home`.
    fn run(&mut self, home: &Home, endpoint: Option<&str>, args: &[&str]) -> Output {
        let mut argv: Vec<&str> = args.to_vec();
        if let Some(e) = endpoint {
            argv.extend(["--endpoint", e]);
        }
        let o = home.run(&argv);
        self.0.push((argv.join(" "), o.clone()));
        o
    }
}

/// The binary across its success and failure paths: no secret in its
/// output unless asked for; where asked for, the secrets are there.
#[test]
fn binary_output_leaks_nothing_unless_asked() {
    capture_logs();
    let emu = emulator().start().unwrap();
    let ep = emu.endpoint();
    let ep = Some(ep.as_str());
    let home = Home::new("main", USER_SECRET);
    let mut runs = Runs::default();
    let fails = |o: &Output, what: &str| {
        assert_eq!(o.status.code(), Some(1), "{}", output(o));
        assert!(output(o).contains(what), "{what}: {}", output(o));
    };
    let succeeds = |o: &Output| assert_eq!(o.status.code(), Some(0), "{}", output(o));

    // Failures first, before any token is cached.
    let o = runs.run(
        &home,
        ep,
        &["credentials", "--profile", "dev", "--mfa-code", WRONG_CODE],
    );
    fails(&o, "AccessDenied");
    let o = runs.run(
        &home,
        ep,
        &[
            "credential-process",
            "--profile",
            "dev",
            "--mfa-code",
            BAD_CODE,
        ],
    );
    fails(&o, "6 digits");
    let o = runs.run(&home, ep, &["export", "--profile", "dev"]);
    fails(&o, "--mfa-code");
    let o = runs.run(
        &home,
        Some("http://127.0.0.1:1"),
        &["credentials", "--profile", "dev", "--mfa-code", CODE],
    );
    fails(&o, "request failed");
    emu.inject(Action::GetSessionToken, Fault::internal(), 3);
    let o = runs.run(
        &home,
        ep,
        &["session", "--profile", USER, "--mfa-code", CODE],
    );
    fails(&o, "InternalFailure");
    emu.clear_faults();
    let wrong = Home::new("wrong-secret", WRONG_SECRET);
    let o = runs.run(
        &wrong,
        ep,
        &["credentials", "--profile", "dev", "--mfa-code", CODE],
    );
    fails(&o, "SignatureDoesNotMatch");
    let o = runs.run(&wrong, ep, &["whoami", "--profile", "prod"]);
    fails(&o, "SignatureDoesNotMatch");
    succeeds(&runs.run(&wrong, None, &["profiles", "--json"]));

    // Successes without --show-secrets.
    let o = runs.run(
        &home,
        ep,
        &["session", "--profile", USER, "--mfa-code", CODE],
    );
    succeeds(&o);
    for format in ["vault", "json", "boto"] {
        let o = runs.run(
            &home,
            ep,
            &[
                "credentials",
                "--profile",
                "dev",
                "--profile",
                "ops",
                "--profile",
                DENIED_ROLE,
                "--format",
                format,
            ],
        );
        fails(&o, "AccessDenied");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("ops"),
            "{}",
            output(&o)
        );
    }
    succeeds(&runs.run(&home, ep, &["whoami", "--profile", "prod"]));
    succeeds(&runs.run(&home, None, &["profiles"]));
    succeeds(&runs.run(&home, None, &["profiles", "--json"]));
    home.learn_cache();

    // Asked for: the secrets are there, so the scan can fail.
    let mut asked = Runs::default();
    for args in [
        &[
            "credentials",
            "--profile",
            "dev",
            "--format",
            "json",
            "--show-secrets",
        ][..],
        &["credentials", "--profile", "dev", "--show-secrets"][..],
        &["credential-process", "--profile", "ops"][..],
        &["export", "--profile", "prod"][..],
    ] {
        succeeds(&asked.run(&home, ep, args));
    }
    home.learn_cache();
    for (label, o) in &asked.0 {
        let found = leaks(&output(o));
        assert!(found.len() >= 2, "{label} shows no secret: {}", output(o));
    }

    // An expired token the cache still trusts: STS answers ExpiredToken.
    let short_clock = ManualClock::starting_now();
    let short = emulator()
        .clock(short_clock.clock())
        .credential_lifetime(Duration::from_secs(1))
        .start()
        .unwrap();
    let sep = short.endpoint();
    let sep = Some(sep.as_str());
    let expired = Home::new("expired", USER_SECRET);
    succeeds(&runs.run(
        &expired,
        sep,
        &["session", "--profile", USER, "--mfa-code", CODE],
    ));
    expired.learn_cache();
    extend_entry(&expired.token_file(), "2999-01-01T00:00:00Z");
    short_clock.advance(Duration::from_secs(2));
    // The first run is told STS rejected the token (and drops it); the
    // next ones find no session. Each is told how to make one.
    for (i, cmd) in ["credential-process", "export", "credentials"]
        .iter()
        .enumerate()
    {
        let o = runs.run(&expired, sep, &[cmd, "--profile", "dev"]);
        fails(&o, "run `stslib session --profile alice`");
        if i == 0 {
            fails(&o, "ExpiredToken");
        }
    }

    for (label, o) in &runs.0 {
        let found = leaks(&output(o));
        assert!(
            found.is_empty(),
            "`stslib {label}` shows {found:?}:\n{}",
            output(o)
        );
    }
    assert_logs_clean();
}
