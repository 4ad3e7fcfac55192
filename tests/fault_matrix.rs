//! The STS client against the local emulator, one test per fault kind: the
//! right typed error, or a bounded retry that succeeds, and the request
//! counts that prove which.

use std::time::{Duration, Instant};

use stslib::emulator::{Action, Emulator, Fault};
use stslib::{AccessKey, AssumeRoleRequest, Error, GetSessionTokenRequest, Secret, StsClient};

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

fn assume(emu: &Emulator) -> stslib::Result<stslib::AssumedRole> {
    client(emu).assume_role(&user(), &AssumeRoleRequest::new(ROLE, "matrix-test"))
}

fn service_code(r: &stslib::Result<stslib::AssumedRole>) -> (u16, String) {
    match r {
        Err(Error::Service(e)) => (e.status, e.code.clone()),
        other => panic!("expected a service error, got {other:?}"),
    }
}

/// `fault` on the first `times` AssumeRole calls; returns the outcome and
/// how many AssumeRole requests the emulator saw.
fn with_fault(fault: Fault, times: usize) -> (stslib::Result<stslib::AssumedRole>, usize) {
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
    let emu = Emulator::builder()
        .user("matrix", KEY, SECRET)
        .credential_lifetime(Duration::from_secs(1))
        .start()
        .unwrap();
    let c = client(&emu);
    let token = c
        .get_session_token(&user(), &GetSessionTokenRequest::new())
        .unwrap();
    assert!(c.get_caller_identity(&token.access_key()).is_ok());
    std::thread::sleep(Duration::from_millis(1300));
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
