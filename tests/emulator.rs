//! The STS emulator, driven by the hand-built "floor" client (no stslib
//! client code): action shapes, authentication failures, STS rules, faults,
//! keep-alive, request records and shutdown.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant, SystemTime};

use common::{
    agent, agent_with_timeout, floor_call, floor_send, parse_creds, raw_call, xml_text, Call,
};
use stslib::emulator::{
    Action, Emulator, Fault, DEFAULT_ACCESS_KEY_ID as AKID, DEFAULT_SECRET_ACCESS_KEY as SECRET,
    DEFAULT_USER,
};

const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const ROLE: &str = "arn:aws:iam::123456789012:role/admin";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";

/// Tests hold this shared; the thread-leak test holds it exclusively so no
/// other test's emulator threads exist while it looks.
static GATE: RwLock<()> = RwLock::new(());

fn gate() -> RwLockReadGuard<'static, ()> {
    common::init_logger();
    GATE.read().unwrap_or_else(|e| e.into_inner())
}

fn alice() -> Emulator {
    Emulator::builder()
        .user("ops/alice", "AKIAALICE00000000001", "alice-secret")
        .mfa_device("ops/alice", SERIAL, "123456")
        .start()
        .unwrap()
}

fn alice_call<'a>(action: &'a str, params: &'a [(&'a str, &'a str)]) -> Call<'a> {
    Call::sts(action, params, "AKIAALICE00000000001", "alice-secret", None)
}

fn doc(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    n.children()
        .find(|c| c.has_tag_name(name))
        .unwrap_or_else(|| panic!("no <{name}> in <{}>", n.tag_name().name()))
}

fn text<'a>(n: roxmltree::Node<'a, '_>, path: &[&str]) -> &'a str {
    let mut n = n;
    for p in path {
        n = child(n, p);
    }
    n.text().unwrap_or("")
}

/// Asserts AWS's Query error layout and returns (code, message).
fn aws_error(status: u16, body: &str, want_status: u16, want_code: &str) -> String {
    assert_eq!(status, want_status, "{body}");
    let d = doc(body);
    let root = d.root_element();
    assert_eq!(root.tag_name().name(), "ErrorResponse");
    let ns = root.tag_name().namespace();
    assert!(ns == Some(STS_NS) || ns == Some(IAM_NS), "{body}");
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    assert_eq!(text(root, &["Error", "Type"]), kind);
    assert_eq!(text(root, &["Error", "Code"]), want_code, "{body}");
    assert!(!text(root, &["RequestId"]).is_empty());
    text(root, &["Error", "Message"]).to_owned()
}

fn expiration_secs(exp: &str) -> i64 {
    let t =
        time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339).unwrap();
    t.unix_timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()
}

#[test]
fn get_caller_identity_for_a_user() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    let r = floor_send(
        &agent(),
        &emu.endpoint(),
        &Call::sts("GetCallerIdentity", &[], AKID, SECRET, None),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type.as_deref(), Some("text/xml"));
    assert!(r.date.as_deref().is_some_and(|d| d.ends_with(" GMT")));
    let d = doc(&r.body);
    let root = d.root_element();
    assert_eq!(root.tag_name().name(), "GetCallerIdentityResponse");
    assert_eq!(root.tag_name().namespace(), Some(STS_NS));
    let result = child(root, "GetCallerIdentityResult");
    assert_eq!(
        text(result, &["Arn"]),
        format!("arn:aws:iam::123456789012:user/{DEFAULT_USER}")
    );
    assert_eq!(text(result, &["Account"]), "123456789012");
    let user_id = text(result, &["UserId"]);
    assert!(
        user_id.starts_with("AIDA") && user_id.len() == 21,
        "{user_id}"
    );
    let rid = text(root, &["ResponseMetadata", "RequestId"]);
    assert_eq!(r.request_id.as_deref(), Some(rid));
    assert_eq!(rid.len(), 36);
}

#[test]
fn session_token_then_assume_role_then_identities() {
    let _g = gate();
    let emu = alice();
    let ep = emu.endpoint();
    let (status, body) = floor_call(
        &ep,
        "GetSessionToken",
        &[
            ("DurationSeconds", "7200"),
            ("SerialNumber", SERIAL),
            ("TokenCode", "123456"),
        ],
        "AKIAALICE00000000001",
        "alice-secret",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let d = doc(&body);
    let root = d.root_element();
    assert_eq!(root.tag_name().name(), "GetSessionTokenResponse");
    assert_eq!(root.tag_name().namespace(), Some(STS_NS));
    let c = child(child(root, "GetSessionTokenResult"), "Credentials");
    let session = parse_creds(&body);
    assert!(session.access_key_id.starts_with("ASIA") && session.access_key_id.len() == 20);
    assert_eq!(session.secret.len(), 40);
    assert!(!session.token.is_empty());
    assert_eq!(text(c, &["AccessKeyId"]), session.access_key_id);
    assert!(session.expiration.ends_with('Z') && session.expiration.len() == 20);
    assert!((7195..=7205).contains(&expiration_secs(&session.expiration)));

    // Session credentials act as the user.
    let (status, body) = floor_call(
        &ep,
        "GetCallerIdentity",
        &[],
        &session.access_key_id,
        &session.secret,
        Some(&session.token),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        xml_text(&body, "Arn").unwrap(),
        "arn:aws:iam::123456789012:user/ops/alice"
    );

    let (status, body) = floor_call(
        &ep,
        "AssumeRole",
        &[
            ("RoleArn", "arn:aws:iam::210987654321:role/team/deploy"),
            ("RoleSessionName", "ci-run"),
            ("ExternalId", "ext-1"),
        ],
        &session.access_key_id,
        &session.secret,
        Some(&session.token),
    );
    assert_eq!(status, 200, "{body}");
    let d = doc(&body);
    let result = child(d.root_element(), "AssumeRoleResult");
    assert_eq!(d.root_element().tag_name().name(), "AssumeRoleResponse");
    let role_id = text(result, &["AssumedRoleUser", "AssumedRoleId"]);
    assert!(
        role_id.starts_with("AROA") && role_id.ends_with(":ci-run"),
        "{role_id}"
    );
    assert_eq!(
        text(result, &["AssumedRoleUser", "Arn"]),
        "arn:aws:sts::210987654321:assumed-role/deploy/ci-run"
    );
    assert_eq!(text(result, &["PackedPolicySize"]), "0");
    let role = parse_creds(&body);
    assert!((3595..=3605).contains(&expiration_secs(&role.expiration)));

    let (status, body) = floor_call(
        &ep,
        "GetCallerIdentity",
        &[],
        &role.access_key_id,
        &role.secret,
        Some(&role.token),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        xml_text(&body, "Arn").unwrap(),
        "arn:aws:sts::210987654321:assumed-role/deploy/ci-run"
    );
    assert_eq!(xml_text(&body, "Account").unwrap(), "210987654321");
    assert_eq!(xml_text(&body, "UserId").unwrap(), role_id);

    // Chained AssumeRole works within the 1 hour cap.
    let (status, body) = floor_call(
        &ep,
        "AssumeRole",
        &[
            ("RoleArn", ROLE),
            ("RoleSessionName", "chained"),
            ("DurationSeconds", "3600"),
        ],
        &role.access_key_id,
        &role.secret,
        Some(&role.token),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn list_mfa_devices_is_iam_shaped() {
    let _g = gate();
    let emu = alice();
    let call = Call::iam(
        "ListMFADevices",
        &[],
        "AKIAALICE00000000001",
        "alice-secret",
        None,
    );
    let r = floor_send(&agent(), &emu.endpoint(), &call).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let d = doc(&r.body);
    let root = d.root_element();
    assert_eq!(root.tag_name().name(), "ListMFADevicesResponse");
    assert_eq!(root.tag_name().namespace(), Some(IAM_NS));
    let result = child(root, "ListMFADevicesResult");
    assert_eq!(text(result, &["IsTruncated"]), "false");
    let member = child(child(result, "MFADevices"), "member");
    assert_eq!(text(member, &["UserName"]), "alice");
    assert_eq!(text(member, &["SerialNumber"]), SERIAL);
    assert!(text(member, &["EnableDate"]).ends_with('Z'));

    let params = [("UserName", "nobody")];
    let call = Call::iam(
        "ListMFADevices",
        &params,
        "AKIAALICE00000000001",
        "alice-secret",
        None,
    );
    let r = floor_send(&agent(), &emu.endpoint(), &call).unwrap();
    aws_error(r.status, &r.body, 404, "NoSuchEntity");

    // ListMFADevices is IAM's: signed for sts it is an unknown action.
    let r = floor_send(
        &agent(),
        &emu.endpoint(),
        &alice_call("ListMFADevices", &[]),
    )
    .unwrap();
    aws_error(r.status, &r.body, 400, "InvalidAction");
}

#[test]
fn authentication_failures() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    let ep = emu.endpoint();
    let (s, b) = floor_call(
        &ep,
        "GetCallerIdentity",
        &[],
        "AKIAUNKNOWN000000000",
        SECRET,
        None,
    );
    aws_error(s, &b, 403, "InvalidClientTokenId");
    let (s, b) = floor_call(&ep, "GetCallerIdentity", &[], AKID, "wrong-secret", None);
    let msg = aws_error(s, &b, 403, "SignatureDoesNotMatch");
    assert!(
        msg.contains("signature we calculated does not match"),
        "{msg}"
    );
    // A long-term key with a session token.
    let (s, b) = floor_call(&ep, "GetCallerIdentity", &[], AKID, SECRET, Some("tok"));
    aws_error(s, &b, 403, "InvalidClientTokenId");

    let (s, b) = floor_call(&ep, "GetSessionToken", &[], AKID, SECRET, None);
    assert_eq!(s, 200, "{b}");
    let c = parse_creds(&b);
    let (s, b) = floor_call(
        &ep,
        "GetCallerIdentity",
        &[],
        &c.access_key_id,
        &c.secret,
        None,
    );
    let msg = aws_error(s, &b, 403, "InvalidClientTokenId");
    assert_eq!(
        msg,
        "The security token included in the request is invalid."
    );
    let wrong = format!("{}x", c.token);
    let (s, b) = floor_call(
        &ep,
        "GetCallerIdentity",
        &[],
        &c.access_key_id,
        &c.secret,
        Some(&wrong),
    );
    aws_error(s, &b, 403, "InvalidClientTokenId");
    let (s, b) = floor_call(
        &ep,
        "GetCallerIdentity",
        &[],
        &c.access_key_id,
        "bad",
        Some(&c.token),
    );
    aws_error(s, &b, 403, "SignatureDoesNotMatch");

    // Session credentials cannot get another session token.
    let (s, b) = floor_call(
        &ep,
        "GetSessionToken",
        &[],
        &c.access_key_id,
        &c.secret,
        Some(&c.token),
    );
    let msg = aws_error(s, &b, 403, "AccessDenied");
    assert_eq!(msg, "Cannot call GetSessionToken with session credentials");

    // Unsigned request.
    let r = agent()
        .post(format!("{ep}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send("Action=GetCallerIdentity&Version=2011-06-15")
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert_eq!(
        xml_text(&r, "Code").as_deref(),
        Some("MissingAuthenticationToken")
    );
}

#[test]
fn expired_temporary_credentials() {
    let _g = gate();
    // The emulator's time is a manual clock: expiry is reached by moving it,
    // not by sleeping (2 s ahead of the signer stays well within the 5-minute
    // skew STS allows).
    let clock = stslib::clock::ManualClock::starting_now();
    let emu = Emulator::builder()
        .clock(clock.clock())
        .credential_lifetime(Duration::from_secs(1))
        .start()
        .unwrap();
    let ep = emu.endpoint();
    let (s, b) = floor_call(
        &ep,
        "AssumeRole",
        &[("RoleArn", ROLE), ("RoleSessionName", "s1")],
        AKID,
        SECRET,
        None,
    );
    assert_eq!(s, 200, "{b}");
    let c = parse_creds(&b);
    assert!(expiration_secs(&c.expiration) <= 1);
    // Still valid until the clock moves.
    let (s, b) = floor_call(
        &ep,
        "GetCallerIdentity",
        &[],
        &c.access_key_id,
        &c.secret,
        Some(&c.token),
    );
    assert_eq!(s, 200, "{b}");
    clock.advance(Duration::from_secs(2));
    let (s, b) = floor_call(
        &ep,
        "GetCallerIdentity",
        &[],
        &c.access_key_id,
        &c.secret,
        Some(&c.token),
    );
    let msg = aws_error(s, &b, 403, "ExpiredToken");
    assert_eq!(msg, "The security token included in the request is expired");
}

#[test]
fn mfa_is_checked() {
    let _g = gate();
    let emu = alice();
    let ep = emu.endpoint();
    let f = |params: &[(&str, &str)]| {
        let r = floor_send(&agent(), &ep, &alice_call("GetSessionToken", params)).unwrap();
        (r.status, r.body)
    };
    let (s, b) = f(&[("SerialNumber", SERIAL), ("TokenCode", "654321")]);
    let msg = aws_error(s, &b, 403, "AccessDenied");
    assert_eq!(
        msg,
        "MultiFactorAuthentication failed with invalid MFA one time pass code."
    );
    let (s, b) = f(&[
        ("SerialNumber", "arn:aws:iam::123456789012:mfa/other"),
        ("TokenCode", "123456"),
    ]);
    aws_error(s, &b, 403, "AccessDenied");
    let (s, b) = f(&[("SerialNumber", SERIAL), ("TokenCode", "12ab56")]);
    let msg = aws_error(s, &b, 400, "ValidationError");
    assert!(
        !msg.contains("12ab56"),
        "the code must not be echoed: {msg}"
    );
    // AssumeRole with a wrong code too.
    let params = [
        ("RoleArn", ROLE),
        ("RoleSessionName", "sess"),
        ("SerialNumber", SERIAL),
        ("TokenCode", "000000"),
    ];
    let r = floor_send(&agent(), &ep, &alice_call("AssumeRole", &params)).unwrap();
    aws_error(r.status, &r.body, 403, "AccessDenied");
    let params = [
        ("RoleArn", ROLE),
        ("RoleSessionName", "sess"),
        ("SerialNumber", SERIAL),
        ("TokenCode", "123456"),
    ];
    let r = floor_send(&agent(), &ep, &alice_call("AssumeRole", &params)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // Without require_mfa, no MFA is fine.
    assert_eq!(f(&[]).0, 200);

    let strict = Emulator::builder()
        .user("ops/alice", "AKIAALICE00000000001", "alice-secret")
        .mfa_device("alice", SERIAL, "123456")
        .require_mfa(true)
        .start()
        .unwrap();
    let r = floor_send(
        &agent(),
        &strict.endpoint(),
        &alice_call("GetSessionToken", &[]),
    )
    .unwrap();
    aws_error(r.status, &r.body, 403, "AccessDenied");
    let params = [("SerialNumber", SERIAL), ("TokenCode", "123456")];
    let r = floor_send(
        &agent(),
        &strict.endpoint(),
        &alice_call("GetSessionToken", &params),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn sts_validation_rules() {
    let _g = gate();
    let emu = Emulator::builder()
        .deny_role("arn:aws:iam::123456789012:role/forbidden")
        .start()
        .unwrap();
    let ep = emu.endpoint();
    let call =
        |action: &str, params: &[(&str, &str)]| floor_call(&ep, action, params, AKID, SECRET, None);

    for d in ["899", "129601", "soon"] {
        let (s, b) = call("GetSessionToken", &[("DurationSeconds", d)]);
        aws_error(s, &b, 400, "ValidationError");
    }
    let (s, b) = call("GetSessionToken", &[("DurationSeconds", "129600")]);
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        emu.requests().last().unwrap().duration_seconds,
        Some(129600)
    );
    let session = parse_creds(&b);

    for d in ["899", "43201"] {
        let (s, b) = call(
            "AssumeRole",
            &[
                ("RoleArn", ROLE),
                ("RoleSessionName", "sess"),
                ("DurationSeconds", d),
            ],
        );
        aws_error(s, &b, 400, "ValidationError");
    }
    let (s, b) = call(
        "AssumeRole",
        &[
            ("RoleArn", ROLE),
            ("RoleSessionName", "sess"),
            ("DurationSeconds", "43200"),
        ],
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = call("AssumeRole", &[("RoleSessionName", "sess")]);
    let msg = aws_error(s, &b, 400, "ValidationError");
    assert!(msg.contains("roleArn"), "{msg}");
    let (s, b) = call("AssumeRole", &[("RoleArn", ROLE)]);
    aws_error(s, &b, 400, "ValidationError");
    let (s, b) = call(
        "AssumeRole",
        &[("RoleArn", ROLE), ("RoleSessionName", "bad name!")],
    );
    aws_error(s, &b, 400, "ValidationError");
    let (s, b) = call(
        "AssumeRole",
        &[
            ("RoleArn", "arn:aws:iam::123:role/x"),
            ("RoleSessionName", "sess"),
        ],
    );
    aws_error(s, &b, 400, "ValidationError");

    // The 1 hour cap with session credentials.
    let params = [
        ("RoleArn", ROLE),
        ("RoleSessionName", "sess"),
        ("DurationSeconds", "3601"),
    ];
    let (s, b) = floor_call(
        &ep,
        "AssumeRole",
        &params,
        &session.access_key_id,
        &session.secret,
        Some(&session.token),
    );
    let msg = aws_error(s, &b, 400, "ValidationError");
    assert!(msg.contains("1 hour session limit"), "{msg}");

    let (s, b) = call(
        "AssumeRole",
        &[
            ("RoleArn", "arn:aws:iam::123456789012:role/forbidden"),
            ("RoleSessionName", "sess"),
        ],
    );
    let msg = aws_error(s, &b, 403, "AccessDenied");
    assert!(
        msg.contains("sts:AssumeRole on resource: arn:aws:iam::123456789012:role/forbidden"),
        "{msg}"
    );

    let (s, b) = call("GetFederationToken", &[]);
    let msg = aws_error(s, &b, 400, "InvalidAction");
    assert_eq!(
        msg,
        "Could not find operation GetFederationToken for version 2011-06-15"
    );
    let no_version = Call {
        version: None,
        ..Call::sts("GetCallerIdentity", &[], AKID, SECRET, None)
    };
    let r = floor_send(&agent(), &ep, &no_version).unwrap();
    aws_error(r.status, &r.body, 400, "InvalidAction");
}

#[test]
fn clock_skew_is_refused_and_date_tells_the_time() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    let ep = emu.endpoint();
    let late = Call {
        time: SystemTime::now() - Duration::from_secs(600),
        ..Call::sts("GetCallerIdentity", &[], AKID, SECRET, None)
    };
    let r = floor_send(&agent(), &ep, &late).unwrap();
    let msg = aws_error(r.status, &r.body, 403, "SignatureDoesNotMatch");
    assert!(
        msg.starts_with("Signature expired: ") && msg.contains("is now earlier than"),
        "{msg}"
    );
    let early = Call {
        time: SystemTime::now() + Duration::from_secs(600),
        ..late.clone()
    };
    let r = floor_send(&agent(), &ep, &early).unwrap();
    let msg = aws_error(r.status, &r.body, 403, "SignatureDoesNotMatch");
    assert!(msg.starts_with("Signature not yet current: "), "{msg}");

    // Within 5 minutes is fine.
    let ok = Call {
        time: SystemTime::now() - Duration::from_secs(200),
        ..late.clone()
    };
    assert_eq!(floor_send(&agent(), &ep, &ok).unwrap().status, 200);

    // The emulator's clock runs an hour ahead: a correct client is skewed,
    // and the Date header says so.
    emu.set_clock_offset(time::Duration::hours(1));
    let now = Call::sts("GetCallerIdentity", &[], AKID, SECRET, None);
    let r = floor_send(&agent(), &ep, &now).unwrap();
    aws_error(r.status, &r.body, 403, "SignatureDoesNotMatch");
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = time::PrimitiveDateTime::parse(r.date.as_deref().unwrap(), fmt)
        .unwrap()
        .assume_utc();
    let ahead = date.unix_timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((3590..=3610).contains(&ahead), "{ahead}");
    let corrected = Call {
        time: SystemTime::now() + Duration::from_secs(3600),
        ..now
    };
    assert_eq!(floor_send(&agent(), &ep, &corrected).unwrap().status, 200);
}

#[test]
fn error_faults_are_used_up_in_order() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    let ep = emu.endpoint();
    let gci = || floor_call(&ep, "GetCallerIdentity", &[], AKID, SECRET, None);
    emu.inject(Action::GetCallerIdentity, Fault::throttling(), 2);
    emu.inject(Action::Any, Fault::internal(), 1);
    emu.inject(Action::AssumeRole, Fault::unavailable(), 1);
    let (s, b) = gci();
    assert_eq!(aws_error(s, &b, 400, "Throttling"), "Rate exceeded");
    let (s, b) = gci();
    aws_error(s, &b, 400, "Throttling");
    let (s, b) = gci();
    aws_error(s, &b, 500, "InternalFailure");
    assert_eq!(gci().0, 200);
    let (s, b) = floor_call(
        &ep,
        "AssumeRole",
        &[("RoleArn", ROLE), ("RoleSessionName", "sess")],
        AKID,
        SECRET,
        None,
    );
    aws_error(s, &b, 503, "ServiceUnavailable");

    emu.inject(Action::Any, Fault::access_denied(), 5);
    emu.clear_faults();
    assert_eq!(gci().0, 200);

    assert_eq!(emu.request_count(Action::GetCallerIdentity), 5);
    assert_eq!(emu.request_count(Action::AssumeRole), 1);
    assert_eq!(emu.request_count(Action::Any), 6);
    let recs = emu.requests();
    assert_eq!(recs[0].fault, Some(Fault::throttling()));
    assert_eq!(recs[0].code.as_deref(), Some("Throttling"));
    assert_eq!(recs[3].fault, None);
    assert_eq!(recs[3].status, Some(200));
    assert_eq!(recs[4].role_arn.as_deref(), Some(ROLE));
    assert_eq!(recs[4].role_session_name.as_deref(), Some("sess"));
    assert_eq!(recs[4].access_key_id.as_deref(), Some(AKID));
}

#[test]
fn delay_and_stall_faults() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    let ep = emu.endpoint();
    let call = Call::sts("GetCallerIdentity", &[], AKID, SECRET, None);

    emu.inject(
        Action::GetCallerIdentity,
        Fault::Delay(Duration::from_millis(300)),
        1,
    );
    let t = Instant::now();
    assert_eq!(floor_send(&agent(), &ep, &call).unwrap().status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    emu.inject(
        Action::GetCallerIdentity,
        Fault::Stall(Duration::from_secs(3)),
        1,
    );
    let t = Instant::now();
    let err = floor_send(&agent_with_timeout(Duration::from_millis(400)), &ep, &call).unwrap_err();
    assert!(matches!(err, ureq::Error::Timeout(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(emu.requests()[1].status, None);

    // A stall without a client timeout ends with the connection closed.
    emu.inject(Action::Any, Fault::Stall(Duration::from_millis(200)), 1);
    let got = raw_call(emu.addr(), &call).unwrap();
    assert!(got.is_empty());
}

#[test]
fn connection_faults() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    let call = Call::sts("GetCallerIdentity", &[], AKID, SECRET, None);

    emu.inject(Action::Any, Fault::DropConnection, 1);
    assert_eq!(
        raw_call(emu.addr(), &call).unwrap(),
        b"",
        "closed, nothing sent"
    );

    emu.inject(Action::Any, Fault::ResetConnection, 1);
    let err = raw_call(emu.addr(), &call).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");

    emu.inject(Action::Any, Fault::TruncatedBody, 1);
    let got = raw_call(emu.addr(), &call).unwrap();
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let declared: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    assert!(body.len() < declared, "{} < {declared}", body.len());
    emu.inject(Action::Any, Fault::TruncatedBody, 1);
    assert!(floor_send(&agent(), &emu.endpoint(), &call).is_err());

    // The emulator still answers normally afterwards, also with ureq.
    assert_eq!(
        floor_send(&agent(), &emu.endpoint(), &call).unwrap().status,
        200
    );
    let recs = emu.requests();
    assert_eq!(recs[0].fault, Some(Fault::DropConnection));
    assert_eq!(recs[0].status, None);
    assert_eq!(recs[1].fault, Some(Fault::ResetConnection));
}

#[test]
fn body_faults() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    let ep = emu.endpoint();
    let gst = Call::sts("GetSessionToken", &[], AKID, SECRET, None);
    let send = |call: &Call<'_>| floor_send(&agent(), &ep, call).unwrap();

    emu.inject(Action::GetSessionToken, Fault::MalformedXml, 1);
    let r = send(&gst);
    assert_eq!(r.status, 200);
    assert!(roxmltree::Document::parse(&r.body).is_err(), "{}", r.body);

    emu.inject(Action::GetSessionToken, Fault::HtmlError(500), 1);
    let r = send(&gst);
    assert_eq!(r.status, 500);
    assert!(r.content_type.unwrap().starts_with("text/html"));
    assert!(r.body.starts_with("<!doctype html>"), "{}", r.body);
    assert!(r.body.contains("<title>500 Internal Server Error</title>"));

    emu.inject(Action::GetSessionToken, Fault::WrongShape, 1);
    let r = send(&gst);
    assert_eq!(r.status, 200);
    let d = doc(&r.body);
    assert_eq!(
        d.root_element().tag_name().name(),
        "GetCallerIdentityResponse"
    );
    emu.inject(Action::GetCallerIdentity, Fault::WrongShape, 1);
    let r = send(&Call::sts("GetCallerIdentity", &[], AKID, SECRET, None));
    assert_ne!(
        doc(&r.body).root_element().tag_name().name(),
        "GetCallerIdentityResponse"
    );

    emu.inject(Action::GetSessionToken, Fault::Oversized(300_000), 1);
    let r = send(&gst);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 300_000);
    emu.inject(Action::GetSessionToken, Fault::Oversized(5), 1);
    assert_eq!(send(&gst).body.len(), 5);

    emu.inject(
        Action::GetSessionToken,
        Fault::AuthErrorLayout {
            code: "InvalidClientTokenId".into(),
            message: "The security token included in the request is invalid.".into(),
        },
        1,
    );
    let r = send(&gst);
    assert_eq!(r.status, 403);
    assert!(r.content_type.unwrap().starts_with("text/html"));
    assert!(r.request_id.is_none());
    let d = doc(&r.body);
    let root = d.root_element();
    assert_eq!(root.tag_name().name(), "ErrorResponse");
    assert_eq!(root.tag_name().namespace(), None);
    assert_eq!(
        text(root, &["Errors", "Error", "Code"]),
        "InvalidClientTokenId"
    );
    assert_eq!(text(root, &["Errors", "Error", "Type"]), "Sender");
    assert!(!r.body.contains("RequestId"));

    // Each fault was used once: now normal again.
    assert_eq!(send(&gst).status, 200);
}

#[test]
fn keep_alive_and_connection_close() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    let a = agent();
    let call = Call::sts("GetCallerIdentity", &[], AKID, SECRET, None);
    for _ in 0..3 {
        assert_eq!(floor_send(&a, &emu.endpoint(), &call).unwrap().status, 200);
    }
    assert_eq!(emu.connection_count(), 1);
    assert!(emu.requests().iter().all(|r| r.connection == 1));

    // Two requests written back to back on one socket, the second with
    // `Connection: close`.
    let host = emu.addr().to_string();
    let mut s = TcpStream::connect(emu.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut wire = String::new();
    for close in [false, true] {
        let (headers, body) = common::signed_request(&call, &host);
        wire.push_str("POST / HTTP/1.1\r\n");
        for (n, v) in headers {
            wire.push_str(&format!("{n}: {v}\r\n"));
        }
        if close {
            wire.push_str("Connection: close\r\n");
        }
        wire.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    }
    s.write_all(wire.as_bytes()).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap(); // ends: the server closed
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 2, "{got}");
    assert_eq!(got.matches("Connection: close").count(), 1);
    assert_eq!(emu.connection_count(), 2);
}

#[test]
fn http_garbage_gets_a_clean_refusal() {
    let _g = gate();
    let emu = Emulator::start().unwrap();
    for raw in [
        &b"NONSENSE\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(emu.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw).unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        assert!(
            got.starts_with("HTTP/1.1 4") || got.starts_with("HTTP/1.1 5"),
            "{got}"
        );
        assert!(got.contains("Connection: close"));
    }
    let mut s = TcpStream::connect(emu.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 40_000));
    let _ = s.write_all(&big);
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    // A GET gets an AWS-style refusal.
    let r = agent()
        .get(format!("{}/?Action=GetCallerIdentity", emu.endpoint()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // Still serving.
    let (s, _) = floor_call(
        &emu.endpoint(),
        "GetCallerIdentity",
        &[],
        AKID,
        SECRET,
        None,
    );
    assert_eq!(s, 200);
}

#[test]
fn records_never_hold_secrets() {
    let _g = gate();
    let emu = alice();
    let params = [("SerialNumber", SERIAL), ("TokenCode", "123456")];
    let r = floor_send(
        &agent(),
        &emu.endpoint(),
        &alice_call("GetSessionToken", &params),
    )
    .unwrap();
    let c = parse_creds(&r.body);
    let (s, _) = floor_call(
        &emu.endpoint(),
        "GetCallerIdentity",
        &[],
        &c.access_key_id,
        &c.secret,
        Some(&c.token),
    );
    assert_eq!(s, 200);
    let dump = format!("{:?} {:?}", emu.requests(), emu);
    for secret in ["alice-secret", "123456\"", &c.secret, &c.token] {
        assert!(!dump.contains(secret), "{secret} leaked");
    }
    let recs = emu.requests();
    assert_eq!(recs[0].serial_number.as_deref(), Some(SERIAL));
    assert_eq!(
        recs[1].access_key_id.as_deref(),
        Some(c.access_key_id.as_str())
    );
    assert_eq!(recs[1].action, Some(Action::GetCallerIdentity));
}

#[test]
fn builder_rejects_bad_settings() {
    let _g = gate();
    assert!(Emulator::builder().account_id("12").start().is_err());
    assert!(Emulator::builder()
        .user("bad name", "AKIAALICE00000000001", "s")
        .start()
        .is_err());
    assert!(Emulator::builder()
        .mfa_device("nobody", SERIAL, "123456")
        .start()
        .is_err());
    assert!(Emulator::builder()
        .credential_lifetime(Duration::from_millis(10))
        .start()
        .is_err());
    let taken = Emulator::start().unwrap();
    assert!(Emulator::builder()
        .port(taken.addr().port())
        .start()
        .is_err());
}

#[test]
fn stop_is_bounded_and_leaves_no_thread() {
    common::init_logger();
    let _g = GATE.write().unwrap_or_else(|e| e.into_inner());
    let emu = Emulator::start().unwrap();
    // An idle keep-alive connection, one stalled request, one half-sent request.
    let idle = agent();
    let call = Call::sts("GetCallerIdentity", &[], AKID, SECRET, None);
    assert_eq!(
        floor_send(&idle, &emu.endpoint(), &call).unwrap().status,
        200
    );
    emu.inject(Action::Any, Fault::Stall(Duration::from_secs(60)), 1);
    let addr = emu.addr();
    let staller = std::thread::spawn(move || {
        let call = Call::sts("GetCallerIdentity", &[], AKID, SECRET, None);
        raw_call(addr, &call)
    });
    let mut half = TcpStream::connect(emu.addr()).unwrap();
    half.write_all(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nAct")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while emu.request_count(Action::Any) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(common::thread_names()
        .iter()
        .any(|n| n.starts_with("stslib-emu")));

    let t = Instant::now();
    emu.stop();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    let leftover: Vec<String> = common::thread_names()
        .into_iter()
        .filter(|n| n.starts_with("stslib-emu"))
        .collect();
    assert!(leftover.is_empty(), "{leftover:?}");
    assert!(staller.join().unwrap().unwrap().is_empty());
}
