//! The STS client against the local emulator, one test per fault kind: the
//! right typed error, or a bounded retry that succeeds, and the request
//! counts that prove which. Then the same faults one level up: a refreshing
//! session rides out one failed refresh round of each kind.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stslib::clock::ManualClock;
use stslib::emulator::{Action, Emulator, Fault};
use stslib::sts::{AssumeRoleRequest, GetSessionTokenRequest};
use stslib::{AccessKey, Error, Event, Secret, Session, StsClient};

const KEY: &str = "AKIAFAULTMATRIX00001";
const SECRET: &str = "fault/matrix/secret/0000000000000000000000";
const ROLE: &str = "arn:aws:iam::123456789012:role/matrix";

fn emulator() -> Emulator {
    Emulator::builder()
        .user("matrix", KEY, SECRET)
        .deny_role("arn:aws:iam::123456789012:role/denied")
        .start()
        .unwrap()
}

fn user() -> AccessKey {
    AccessKey {
        access_key_id: KEY.into(),
        secret_access_key: Secret::new(SECRET),
        session_token: None,
    }
}

fn client(emu: &Emulator) -> StsClient {
    StsClient::builder()
        .endpoint(emu.endpoint())
        .timeout(Duration::from_millis(800))
        .connect_timeout(Duration::from_millis(500))
        .max_attempts(3)
        .build()
        .unwrap()
}

fn assume(emu: &Emulator) -> stslib::Result<stslib::sts::AssumedRole> {
    client(emu).assume_role(&user(), &AssumeRoleRequest::new(ROLE, "matrix-test"))
}

fn service_code(r: &stslib::Result<stslib::sts::AssumedRole>) -> (u16, String) {
    match r {
        Err(Error::Service(e)) => (e.status, e.code.clone()),
        other => panic!("expected a service error, got {other:?}"),
    }
}

/// `fault` on the first `times` AssumeRole calls; returns the outcome and
/// how many AssumeRole requests the emulator saw.
fn with_fault(fault: Fault, times: usize) -> (stslib::Result<stslib::sts::AssumedRole>, usize) {
    let emu = emulator();
    emu.inject(Action::AssumeRole, fault, times);
    let r = assume(&emu);
    (r, emu.request_count(Action::AssumeRole))
}

#[test]
fn throttling_is_retried_then_succeeds() {
    let (r, n) = with_fault(Fault::throttling(), 1);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(n, 2);
}

#[test]
fn persistent_throttling_gives_up_after_max_attempts_with_typed_error() {
    let (r, n) = with_fault(Fault::throttling(), 10);
    assert_eq!(service_code(&r), (400, "Throttling".into()));
    assert_eq!(n, 3);
}

#[test]
fn http_500_and_503_are_retried() {
    let (r, n) = with_fault(Fault::internal(), 1);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(n, 2);
    let (r, n) = with_fault(Fault::unavailable(), 2);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(n, 3);
    let (r, n) = with_fault(Fault::unavailable(), 5);
    assert_eq!(service_code(&r), (503, "ServiceUnavailable".into()));
    assert_eq!(n, 3);
}

#[test]
fn connection_reset_and_drop_are_retried() {
    let (r, n) = with_fault(Fault::ResetConnection, 1);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(n, 2);
    let (r, n) = with_fault(Fault::DropConnection, 1);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(n, 2);
    let (r, _) = with_fault(Fault::DropConnection, 5);
    assert!(
        matches!(
            r,
            Err(Error::Transport {
                action: "AssumeRole",
                ..
            })
        ),
        "{r:?}"
    );
}

/// Real time on purpose: a peer that stops answering is cut off by the
/// client's socket timeouts, which run on the OS clock. Kept short: a
/// 300 ms timeout against 3-second stalls.
#[test]
fn stall_past_the_timeout_is_bounded_and_retried() {
    let stalled = |times| {
        let emu = emulator();
        emu.inject(
            Action::AssumeRole,
            Fault::Stall(Duration::from_secs(3)),
            times,
        );
        let client = StsClient::builder()
            .endpoint(emu.endpoint())
            .timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(500))
            .max_attempts(3)
            .build()
            .unwrap();
        let started = Instant::now();
        let r = client.assume_role(&user(), &AssumeRoleRequest::new(ROLE, "matrix-test"));
        (r, emu.request_count(Action::AssumeRole), started.elapsed())
    };
    let (r, n, _) = stalled(1);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(n, 2);
    let (r, n, took) = stalled(5);
    assert!(matches!(r, Err(Error::Transport { .. })), "{r:?}");
    assert_eq!(n, 3);
    // Three attempts of 0.3 s plus at most 0.3 s of backoff, not even one
    // 3-second stall sat out.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn truncated_body_is_retried_as_an_io_error() {
    let (r, n) = with_fault(Fault::TruncatedBody, 1);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(n, 2);
}

#[test]
fn malformed_xml_wrong_shape_and_oversized_are_response_errors_not_retried() {
    for fault in [
        Fault::MalformedXml,
        Fault::WrongShape,
        Fault::Oversized(2 << 20),
    ] {
        let label = format!("{fault:?}");
        let (r, n) = with_fault(fault, 1);
        assert!(
            matches!(
                r,
                Err(Error::Response {
                    action: "AssumeRole",
                    ..
                })
            ),
            "{label}: {r:?}"
        );
        assert_eq!(n, 1, "{label}");
    }
}

#[test]
fn html_error_page_becomes_a_status_error() {
    let (r, n) = with_fault(Fault::HtmlError(500), 5);
    assert_eq!(service_code(&r), (500, "HttpStatus500".into()));
    assert_eq!(n, 3);
    let (r, n) = with_fault(Fault::HtmlError(400), 5);
    assert_eq!(service_code(&r).0, 400);
    assert_eq!(n, 1);
}

#[test]
fn auth_error_layout_is_parsed_and_not_retried() {
    let (r, n) = with_fault(
        Fault::AuthErrorLayout {
            code: "SignatureDoesNotMatch".into(),
            message: "The request signature we calculated does not match".into(),
        },
        1,
    );
    assert_eq!(service_code(&r).1, "SignatureDoesNotMatch");
    assert_eq!(n, 1);
}

#[test]
fn access_denied_is_typed_with_request_id_and_not_retried() {
    let emu = emulator();
    let r = client(&emu).assume_role(
        &user(),
        &AssumeRoleRequest::new("arn:aws:iam::123456789012:role/denied", "matrix-test"),
    );
    match &r {
        Err(Error::Service(e)) => {
            assert_eq!((e.status, e.code.as_str()), (403, "AccessDenied"));
            assert!(e.request_id.as_deref().is_some_and(|id| !id.is_empty()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.request_count(Action::AssumeRole), 1);
}

#[test]
fn unknown_key_and_wrong_secret_are_typed_and_not_retried() {
    let emu = emulator();
    let c = client(&emu);
    let mut unknown = user();
    unknown.access_key_id = "AKIAUNKNOWN000000000".into();
    let e = c.get_caller_identity(&unknown).unwrap_err();
    assert_eq!(e.code(), Some("InvalidClientTokenId"));
    let mut wrong = user();
    wrong.secret_access_key = Secret::new("not-the-secret");
    let e = c.get_caller_identity(&wrong).unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    assert_eq!(emu.request_count(Action::GetCallerIdentity), 2);
    assert!(!e.to_string().contains("not-the-secret"));
}

#[test]
fn expired_temporary_credentials_give_expired_token() {
    // Expiry is reached by moving the emulator's manual clock, not by
    // sleeping (2 s ahead of the client is far within STS's 5-minute skew).
    let clock = stslib::clock::ManualClock::starting_now();
    let emu = Emulator::builder()
        .clock(clock.clock())
        .user("matrix", KEY, SECRET)
        .credential_lifetime(Duration::from_secs(1))
        .start()
        .unwrap();
    let c = client(&emu);
    let token = c
        .get_session_token(&user(), &GetSessionTokenRequest::new())
        .unwrap();
    assert!(c.get_caller_identity(&token.access_key()).is_ok());
    clock.advance(Duration::from_secs(2));
    let e = c.get_caller_identity(&token.access_key()).unwrap_err();
    assert_eq!(e.code(), Some("ExpiredToken"));
    assert_eq!(emu.request_count(Action::GetCallerIdentity), 2);
}

#[test]
fn delay_within_the_timeout_just_succeeds() {
    let (r, n) = with_fault(Fault::Delay(Duration::from_millis(200)), 1);
    let role = r.unwrap();
    assert!(role
        .assumed_role_arn
        .ends_with(":assumed-role/matrix/matrix-test"));
    assert_eq!(n, 1);
}

// ---- Session level ------------------------------------------------------
//
// One role with 4-second credentials (refreshed at about 2 s) on a session
// whose 6-second token renews through an MFA provider, the session and the
// emulator sharing one manual clock that the test moves 50 ms at a time.
// The client tries each call twice with a 500 ms timeout, so `times`
// injected faults make exactly one refresh round fail: 2 for retried
// faults, 1 for the others. The retry after it (within 100 ms of clock
// time) succeeds long before the old credentials expire. Real time passes
// only for the calls themselves, the client's backoff between its two
// attempts (at most 100 ms, on the OS clock) and, for a stall, the two
// attempts' 500 ms socket timeouts: a silent peer is cut off by the OS
// clock, which no manual clock can move.

/// The error a failed refresh round must report.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A service error with this status and code.
    Code(u16, &'static str),
    /// `Error::Transport` (no answer: reset, timeout, cut body).
    Transport,
    /// `Error::Response` (a 2xx answer of the wrong form).
    Response,
}

impl Expect {
    fn matches(self, e: &Error) -> bool {
        match (self, e) {
            (Expect::Code(status, code), Error::Service(s)) => {
                s.status == status && s.code == code && s.action == "AssumeRole"
            }
            (Expect::Transport, Error::Transport { action, .. })
            | (Expect::Response, Error::Response { action, .. }) => *action == "AssumeRole",
            _ => false,
        }
    }
}

const ROLE_LIFETIME: Duration = Duration::from_secs(4);

/// Waits until the reader's poll count reaches `n` (within 5 s of real
/// time; a poll takes microseconds).
fn wait_for_polls(polls: &AtomicUsize, n: usize) {
    let end = Instant::now() + Duration::from_secs(5);
    while polls.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < end, "the reader stopped polling");
        std::thread::yield_now();
    }
}

/// Runs the scenario above for `fault` and checks everything the session
/// promises while it happens.
fn session_rides_out(fault: Fault, times: usize, expect: Expect) {
    common::init_logger();
    let t = ManualClock::starting_now();
    let emu = common::renewing_emulator_on(Duration::from_secs(6), ROLE_LIFETIME, &t);
    let session: Session = common::renewing_session(&emu.endpoint(), &["r1"])
        .clock(t.clock())
        .timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .max_attempts(2)
        .build()
        .unwrap();
    let events = session.subscribe();
    let outcomes = session.generate_credentials(["r1"]).unwrap();
    assert!(outcomes.values().all(Result::is_ok), "{outcomes:?}");
    assert!(session.is_refreshing());
    let old = session.valid_credentials_for("r1").unwrap();
    let first = emu.request_count(Action::AssumeRole);
    emu.inject(Action::AssumeRole, fault.clone(), times);

    let stop = AtomicBool::new(false);
    let polls = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::<String>::new());
    // Access key ids the reader saw, consecutive repeats folded.
    let keys = Mutex::new(Vec::<String>::new());
    let mut failures = Vec::new();
    let mut refreshed = None;
    let mut seen = Vec::new();
    std::thread::scope(|s| {
        // A reader polling while the clock moves and the refresher fails
        // and recovers: always r1, never expired.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let before = session.clock().now();
                let set = session.valid_credentials();
                match set.get("r1") {
                    Some(c) => {
                        if c.expiration <= before {
                            problems
                                .lock()
                                .unwrap()
                                .push(format!("expired credentials at {before}: {}", c.expiration));
                        }
                        let mut keys = keys.lock().unwrap();
                        if keys.last() != Some(&c.access_key_id) {
                            keys.push(c.access_key_id.clone());
                        }
                    }
                    None if before < old.expiration => problems.lock().unwrap().push(format!(
                        "no credentials at {before} while the old ones were valid"
                    )),
                    None => {}
                }
                polls.fetch_add(1, Ordering::Relaxed);
                // Not a spin: parallel tests share two cores.
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        let _stop = common::SetOnDrop(&stop);
        let step = Duration::from_millis(50);
        while refreshed.is_none() {
            assert!(
                t.now() < old.expiration,
                "{fault:?}: no recovery while the old credentials lasted; events {seen:?}"
            );
            let polled = polls.load(Ordering::Relaxed);
            // The round runs inside the settle: the clock stands still
            // until every event of it has been sent.
            t.advance_and_settle(step);
            for e in events.try_iter() {
                match &e {
                    Event::RefreshFailed { profile, error } => {
                        assert_eq!(profile, "r1");
                        // The old credentials are still what readers get.
                        let held = session.valid_credentials_for("r1");
                        assert_eq!(
                            held.map(|c| c.access_key_id),
                            Some(old.access_key_id.clone()),
                            "{fault:?}: old credentials not held after a failed round"
                        );
                        failures.push(error.clone());
                    }
                    Event::Refreshed { profile, .. } if profile == "r1" => {
                        refreshed = Some(e.clone());
                    }
                    _ => {}
                }
                seen.push(e);
            }
            wait_for_polls(&polls, polled + 1);
        }
        // Recovered with the old credentials still valid (the clock has
        // stood still since the round).
        assert!(t.now() < old.expiration, "{fault:?}: recovered too late");
        // Two more polls: the second began after the new credentials were
        // in (they were published before the event was sent).
        wait_for_polls(&polls, polls.load(Ordering::Relaxed) + 2);
    });

    let problems = problems.into_inner().unwrap();
    assert!(
        problems.is_empty(),
        "{fault:?}: the reader saw {problems:#?}"
    );
    assert_eq!(failures.len(), 1, "{fault:?}: failures {failures:?}");
    assert!(
        expect.matches(&failures[0]),
        "{fault:?}: expected {expect:?}, got {:?}",
        failures[0]
    );
    // The recovery: new credentials, announced after readers could see
    // them, and the reader moved from the old ones to them once.
    let Some(Event::Refreshed { expiration, .. }) = refreshed else {
        unreachable!()
    };
    let new = session.valid_credentials_for("r1").unwrap();
    assert_ne!(new.access_key_id, old.access_key_id);
    assert_eq!(new.expiration, expiration);
    assert!(new.expiration > old.expiration);
    let keys = keys.into_inner().unwrap();
    assert_eq!(
        keys,
        [old.access_key_id.clone(), new.access_key_id.clone()],
        "{fault:?}"
    );
    // One failed round used up the faults; one more call succeeded.
    assert_eq!(emu.request_count(Action::AssumeRole), first + times + 1);
    common::halt_promptly(&session, Duration::from_secs(2));
}

#[test]
fn session_rides_out_throttling() {
    session_rides_out(Fault::throttling(), 2, Expect::Code(400, "Throttling"));
}

#[test]
fn session_rides_out_http_500() {
    session_rides_out(Fault::internal(), 2, Expect::Code(500, "InternalFailure"));
}

#[test]
fn session_rides_out_http_503() {
    session_rides_out(
        Fault::unavailable(),
        2,
        Expect::Code(503, "ServiceUnavailable"),
    );
}

#[test]
fn session_rides_out_connection_reset() {
    session_rides_out(Fault::ResetConnection, 2, Expect::Transport);
}

#[test]
fn session_rides_out_a_stall_past_the_timeout() {
    session_rides_out(Fault::Stall(Duration::from_secs(3)), 2, Expect::Transport);
}

#[test]
fn session_rides_out_a_truncated_body() {
    session_rides_out(Fault::TruncatedBody, 2, Expect::Transport);
}

#[test]
fn session_rides_out_malformed_xml() {
    session_rides_out(Fault::MalformedXml, 1, Expect::Response);
}

#[test]
fn session_rides_out_an_html_error_page() {
    session_rides_out(Fault::HtmlError(502), 2, Expect::Code(502, "HttpStatus502"));
}

#[test]
fn session_rides_out_xml_of_the_wrong_shape() {
    session_rides_out(Fault::WrongShape, 1, Expect::Response);
}

#[test]
fn session_rides_out_an_expired_token_error() {
    let fault = Fault::Error {
        status: 403,
        code: "ExpiredToken".into(),
        message: "The security token included in the request is expired".into(),
    };
    session_rides_out(fault, 1, Expect::Code(403, "ExpiredToken"));
}

#[test]
fn session_rides_out_access_denied() {
    session_rides_out(Fault::access_denied(), 1, Expect::Code(403, "AccessDenied"));
}

#[test]
fn session_rides_out_an_invalid_client_token_id() {
    let fault = Fault::Error {
        status: 403,
        code: "InvalidClientTokenId".into(),
        message: "The security token included in the request is invalid.".into(),
    };
    session_rides_out(fault, 1, Expect::Code(403, "InvalidClientTokenId"));
}

#[test]
fn session_rides_out_an_oversized_response() {
    session_rides_out(Fault::Oversized(2 << 20), 1, Expect::Response);
}

/// A halt in the middle of a refresh round of more roles than run at once
/// waits for the calls in flight, not for the rest of the round: workers
/// take no new role once halted. (Before, a round of six roles per worker
/// against a stalling STS kept `halt()` waiting for all six timeouts.)
#[test]
fn halt_mid_round_waits_for_calls_in_flight_only() {
    common::init_logger();
    // One worker (the inline path) and two (scoped threads).
    for parallelism in [1, 2] {
        let t = ManualClock::starting_now();
        let names = common::role_names(6 * parallelism);
        let roles: Vec<&str> = names.iter().map(String::as_str).collect();
        let emu = common::renewing_emulator_on(Duration::from_secs(60), Duration::from_secs(2), &t);
        let session = common::renewing_session(&emu.endpoint(), &roles)
            .clock(t.clock())
            .timeout(Duration::from_millis(500))
            .max_attempts(1)
            .parallelism(parallelism)
            .refresh_policy(common::fast_policy().jitter(0.0))
            .build()
            .unwrap();
        let outcomes = session.generate_credentials(&roles).unwrap();
        assert!(outcomes.values().all(Result::is_ok), "{outcomes:?}");
        let first = emu.request_count(Action::AssumeRole);
        emu.inject(
            Action::AssumeRole,
            Fault::Stall(Duration::from_secs(5)),
            100,
        );
        // Issued at one clock time, every role comes due at 1 s, in one
        // round of six per worker, each call stalled until the client's
        // 500 ms socket timeout (real time: a silent peer). Move the clock
        // there without settling (the round would take 3 s) and halt once
        // every worker is in its first call.
        t.advance(Duration::from_secs(1));
        assert!(common::eventually(Duration::from_secs(3), || {
            emu.request_count(Action::AssumeRole) >= first + parallelism
        }));
        common::halt_promptly(&session, Duration::from_millis(1500));
        let calls = emu.request_count(Action::AssumeRole) - first;
        assert!(calls <= 2 * parallelism, "{calls} calls");
    }
}

/// STS calling the session token expired (before its `Expiration`, e.g.
/// revoked) makes a renewing session get a new token at once, not on its
/// schedule; the role is then refreshed with the new token.
#[test]
fn an_expired_token_answer_renews_the_token_at_once() {
    common::init_logger();
    let t = ManualClock::starting_now();
    // A token of one hour: its scheduled renewal is half an hour away.
    let emu = common::renewing_emulator_on(Duration::from_secs(3600), ROLE_LIFETIME, &t);
    let session: Session = common::renewing_session(&emu.endpoint(), &["r1"])
        .clock(t.clock())
        .max_attempts(1)
        .build()
        .unwrap();
    let events = session.subscribe();
    session.generate_credentials(["r1"]).unwrap();
    let old = session.valid_credentials_for("r1").unwrap();
    let token = session.session_token().unwrap();
    assert_eq!(emu.request_count(Action::GetSessionToken), 1);
    emu.inject(
        Action::AssumeRole,
        Fault::Error {
            status: 403,
            code: "ExpiredToken".into(),
            message: "The security token included in the request is expired".into(),
        },
        1,
    );
    let step = Duration::from_millis(100);
    let (rejected, seen) = common::advance_until(
        &t,
        &events,
        step,
        ROLE_LIFETIME,
        |e| matches!(e, Event::RefreshFailed { error, .. } if error.code() == Some("ExpiredToken")),
    );
    assert!(rejected.is_some(), "no rejected refresh; events {seen:?}");
    // Renewed in the same pass as the rejection, with no further move of
    // the clock (a deadline of "now" is not left waiting for one), and with
    // the old role credentials still valid: not half an hour later.
    let next = events.try_recv();
    assert!(
        matches!(next, Ok(Event::TokenRenewed { .. })),
        "not renewed at once: {next:?}"
    );
    assert!(t.now() < old.expiration);
    assert_eq!(emu.request_count(Action::GetSessionToken), 2);
    let renewed = session.session_token().unwrap();
    assert_ne!(renewed.access_key_id, token.access_key_id);
    let (refreshed, seen) = common::advance_until(&t, &events, step, ROLE_LIFETIME, |e| {
        matches!(e, Event::Refreshed { .. })
    });
    assert!(refreshed.is_some(), "no refresh after renewal; {seen:?}");
    assert!(t.now() < old.expiration, "refreshed after the role expired");
    // ... signed with the new token.
    let last = emu.requests().into_iter().last().unwrap();
    assert_eq!(last.action, Some(Action::AssumeRole));
    assert_eq!(last.access_key_id, Some(renewed.access_key_id));
    common::halt_promptly(&session, Duration::from_secs(2));
}

/// A halt during the client's retry backoff (here: persistent throttling
/// with many attempts allowed) ends the backoff at once instead of sleeping
/// it out.
#[test]
fn a_halt_cuts_the_retry_backoff_short() {
    common::init_logger();
    let t = ManualClock::starting_now();
    let emu = common::renewing_emulator_on(Duration::from_secs(60), Duration::from_secs(2), &t);
    let session: Session = common::renewing_session(&emu.endpoint(), &["r1"])
        .clock(t.clock())
        .max_attempts(12)
        .build()
        .unwrap();
    session.generate_credentials(["r1"]).unwrap();
    let first = emu.request_count(Action::AssumeRole);
    emu.inject(Action::AssumeRole, Fault::throttling(), 1000);
    // The role comes due by 1 s of clock time: move there without settling
    // (the round would retry for seconds). The client's backoff runs on the
    // OS clock, and that real wait is what a halt must cut short: wait
    // until the refresher is a few attempts in (later backoffs grow to
    // seconds).
    t.advance(Duration::from_secs(1));
    assert!(common::eventually(Duration::from_secs(20), || {
        emu.request_count(Action::AssumeRole) >= first + 5
    }));
    common::halt_promptly(&session, Duration::from_millis(500));
}
