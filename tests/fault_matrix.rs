//! The STS client against the local emulator, one test per fault kind: the
//! right typed error, or a bounded retry that succeeds, and the request
//! counts that prove which. Then the same faults one level up: a refreshing
//! session rides out one failed refresh round of each kind.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stslib::emulator::{Action, Emulator, Fault};
use stslib::sts::{AssumeRoleRequest, GetSessionTokenRequest};
use stslib::{AccessKey, Error, Event, Secret, Session, StsClient};
use time::OffsetDateTime;

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

#[test]
fn stall_past_the_timeout_is_bounded_and_retried() {
    let started = Instant::now();
    let (r, n) = with_fault(Fault::Stall(Duration::from_secs(3)), 1);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(n, 2);
    let (r, _) = with_fault(Fault::Stall(Duration::from_secs(3)), 5);
    assert!(matches!(r, Err(Error::Transport { .. })), "{r:?}");
    // Three attempts of 0.8 s plus backoff, not three 3-second stalls.
    assert!(started.elapsed() < Duration::from_secs(8));
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
// whose 6-second token renews through an MFA provider. The client tries
// each call twice with a 500 ms timeout, so `times` injected faults make
// exactly one refresh round fail: 2 for retried faults, 1 for the others.
// The retry after it (within 100 ms) succeeds well before the old
// credentials expire, even after a stalled round (about 1.1 s).

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

/// Runs the scenario above for `fault` and checks everything the session
/// promises while it happens.
fn session_rides_out(fault: Fault, times: usize, expect: Expect) {
    common::init_logger();
    let emu = common::renewing_emulator(Duration::from_secs(6), ROLE_LIFETIME);
    let session: Session = common::renewing_session(&emu.endpoint(), &["r1"])
        .timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .max_attempts(2)
        .build()
        .unwrap();
    let events = session.subscribe();
    let outcomes = session.generate_credentials(&["r1"]).unwrap();
    assert!(outcomes.values().all(Result::is_ok), "{outcomes:?}");
    assert!(session.is_refreshing());
    let old = session.valid_credentials_for("r1").unwrap();
    let first = emu.request_count(Action::AssumeRole);
    emu.inject(Action::AssumeRole, fault.clone(), times);

    let stop = AtomicBool::new(false);
    let problems = Mutex::new(Vec::<String>::new());
    // Access key ids readers saw, consecutive repeats folded.
    let keys = Mutex::new(Vec::<String>::new());
    let mut failures = Vec::new();
    let mut refreshed = None;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let before = OffsetDateTime::now_utc();
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
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let (done, seen) = common::wait_event(&events, Duration::from_secs(5), |e| match e {
            Event::RefreshFailed { profile, error } => {
                assert_eq!(profile, "r1");
                // The old credentials are still what readers get.
                let now = OffsetDateTime::now_utc();
                let held = session.valid_credentials_for("r1");
                assert_eq!(
                    held.as_ref().map(|c| c.access_key_id.as_str()),
                    Some(old.access_key_id.as_str()),
                    "{fault:?}: old credentials not held after a failed round"
                );
                assert!(held.is_some_and(|c| c.expiration > now));
                failures.push(error.clone());
                false
            }
            Event::Refreshed { profile, .. } => profile == "r1",
            _ => false,
        });
        stop.store(true, Ordering::Relaxed);
        assert!(done.is_some(), "{fault:?}: no recovery; events {seen:?}");
        refreshed = done;
    });

    let problems = problems.into_inner().unwrap();
    assert!(problems.is_empty(), "{fault:?}: readers saw {problems:#?}");
    assert_eq!(failures.len(), 1, "{fault:?}: failures {failures:?}");
    assert!(
        expect.matches(&failures[0]),
        "{fault:?}: expected {expect:?}, got {:?}",
        failures[0]
    );
    // The recovery: new credentials, announced after readers could see
    // them, and readers moved from the old ones to them once.
    let Some(Event::Refreshed { expiration, .. }) = refreshed else {
        unreachable!()
    };
    let new = session.valid_credentials_for("r1").unwrap();
    assert_ne!(new.access_key_id, old.access_key_id);
    assert_eq!(new.expiration, expiration);
    assert!(new.expiration > old.expiration);
    let keys = keys.into_inner().unwrap();
    assert_eq!(keys.first(), Some(&old.access_key_id), "{keys:?}");
    assert!(keys.len() <= 2, "readers flipped between keys: {keys:?}");
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
/// take no new role once halted. (Before, a round of five roles per worker
/// against a stalling STS kept `halt()` waiting for all five timeouts.)
#[test]
fn halt_mid_round_waits_for_calls_in_flight_only() {
    common::init_logger();
    // One worker (the inline path) and two (scoped threads).
    for parallelism in [1, 2] {
        let names = common::role_names(6 * parallelism);
        let roles: Vec<&str> = names.iter().map(String::as_str).collect();
        let emu = common::renewing_emulator(Duration::from_secs(60), Duration::from_secs(2));
        let session = common::renewing_session(&emu.endpoint(), &roles)
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
        // The first roles due stall their round for 500 ms; meanwhile the
        // others come due and make the next round. Halt once that one is
        // under way: its five calls per worker would take 2.5 s.
        assert!(common::eventually(Duration::from_secs(3), || {
            emu.request_count(Action::AssumeRole) >= first + 2 * parallelism
        }));
        common::halt_promptly(&session, Duration::from_millis(1500));
        let calls = emu.request_count(Action::AssumeRole) - first;
        assert!(calls <= 3 * parallelism, "{calls} calls");
    }
}

/// STS calling the session token expired (before its `Expiration`, e.g.
/// revoked) makes a renewing session get a new token at once, not on its
/// schedule; the role is then refreshed with the new token.
#[test]
fn an_expired_token_answer_renews_the_token_at_once() {
    common::init_logger();
    // A token of one hour: its scheduled renewal is far away.
    let emu = common::renewing_emulator(Duration::from_secs(3600), ROLE_LIFETIME);
    let session: Session = common::renewing_session(&emu.endpoint(), &["r1"])
        .max_attempts(1)
        .build()
        .unwrap();
    let events = session.subscribe();
    session.generate_credentials(&["r1"]).unwrap();
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
    let (renewed, seen) = common::wait_event(&events, Duration::from_secs(6), |e| {
        matches!(e, Event::TokenRenewed { .. })
    });
    assert!(renewed.is_some(), "no early renewal; events {seen:?}");
    assert_eq!(emu.request_count(Action::GetSessionToken), 2);
    let (refreshed, seen) = common::wait_event(&events, Duration::from_secs(6), |e| {
        matches!(e, Event::Refreshed { .. })
    });
    assert!(refreshed.is_some(), "no refresh after renewal; {seen:?}");
    common::halt_promptly(&session, Duration::from_secs(2));
}

/// A halt during the client's retry backoff (here: persistent throttling
/// with many attempts allowed) ends the backoff at once instead of sleeping
/// it out.
#[test]
fn a_halt_cuts_the_retry_backoff_short() {
    common::init_logger();
    let emu = common::renewing_emulator(Duration::from_secs(60), Duration::from_secs(2));
    let session: Session = common::renewing_session(&emu.endpoint(), &["r1"])
        .max_attempts(12)
        .build()
        .unwrap();
    session.generate_credentials(&["r1"]).unwrap();
    let first = emu.request_count(Action::AssumeRole);
    emu.inject(Action::AssumeRole, Fault::throttling(), 1000);
    // Wait until the refresher is a few attempts into its backoff (later
    // backoffs grow to seconds).
    assert!(common::eventually(Duration::from_secs(20), || {
        emu.request_count(Action::AssumeRole) >= first + 5
    }));
    common::halt_promptly(&session, Duration::from_millis(500));
}
