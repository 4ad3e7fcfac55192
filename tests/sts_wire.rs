//! The STS client on the wire: request shape, signing headers, error
//! layouts, retries, timeouts and limits, against a tiny scripted HTTP
//! responder on 127.0.0.1.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::responder::{reply, Responder, Step};

use stslib::clock::ManualClock;
use stslib::sts::{AssumeRoleRequest, GetSessionTokenRequest};
use stslib::{AccessKey, Error, Secret, StsClient};

fn user_keys() -> AccessKey {
    AccessKey {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        session_token: None,
    }
}

fn temp_keys() -> AccessKey {
    AccessKey {
        access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new("tempSECRETkeyVALUE"),
        session_token: Some(Secret::new("FwoGZXIvYXdzEXAMPLE+TOKEN/==")),
    }
}

fn client(url: &str) -> stslib::StsClientBuilder {
    StsClient::builder()
        .region("eu-west-1")
        .endpoint(url)
        .iam_endpoint(url)
        .env(stslib::Env::from_pairs::<&str, &str>([]))
}

const CALLER: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/Admin/alice</Arn>
    <UserId>AROAEXAMPLE:alice</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>rid-ok</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;

const SESSION: &str = r#"<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetSessionTokenResult>
    <Credentials>
      <AccessKeyId>ASIANEWKEY</AccessKeyId>
      <SecretAccessKey>newSecret</SecretAccessKey>
      <SessionToken>newToken</SessionToken>
      <Expiration>2026-11-23T00:58:15.619057Z</Expiration>
    </Credentials>
  </GetSessionTokenResult>
  <ResponseMetadata><RequestId>rid-gst</RequestId></ResponseMetadata>
</GetSessionTokenResponse>"#;

const ASSUMED: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAROLEKEY</AccessKeyId>
      <SecretAccessKey>roleSecret</SecretAccessKey>
      <SessionToken>roleToken</SessionToken>
      <Expiration>2026-11-22T13:58:15Z</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROAEXAMPLE:a=b,c@d</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/Admin/a=b,c@d</Arn>
    </AssumedRoleUser>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>rid-ar</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;

#[test]
fn request_shape_with_temporary_keys() {
    let server = Responder::start(vec![reply(200, CALLER)]);
    let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let c = client(&server.url)
        .clock(ManualClock::new(fixed.into()).clock())
        .build()
        .unwrap();
    let id = c.get_caller_identity(&temp_keys()).unwrap();
    assert_eq!(id.account, "123456789012");
    assert_eq!(id.role_name(), Some("Admin"));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert!(r.head.starts_with("POST / HTTP/1.1\r\n"), "{}", r.head);
    assert_eq!(r.body, "Action=GetCallerIdentity&Version=2011-06-15");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded; charset=utf-8")
    );
    assert_eq!(r.header("host"), Some(server_host(&c).as_str()));
    assert_eq!(r.header("x-amz-date"), Some("20231114T221320Z"));
    assert_eq!(
        r.header("x-amz-security-token"),
        Some("FwoGZXIvYXdzEXAMPLE+TOKEN/==")
    );
    assert_eq!(r.header("content-length"), Some("43"));
    let ua = r.header("user-agent").unwrap();
    assert!(ua.starts_with("stslib/"), "{ua}");
    let auth = r.header("authorization").unwrap();
    let prefix =
        "AWS4-HMAC-SHA256 Credential=ASIAIOSFODNN7EXAMPLE/20231114/eu-west-1/sts/aws4_request, \
                  SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=";
    assert!(auth.starts_with(prefix), "{auth}");
    let sig = &auth[prefix.len()..];
    assert_eq!(sig.len(), 64);
    assert!(sig
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert!(!auth.contains("user-agent"));
}

fn server_host(c: &StsClient) -> String {
    c.endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

#[test]
fn long_term_keys_send_no_token() {
    let server = Responder::start(vec![reply(200, CALLER)]);
    client(&server.url)
        .build()
        .unwrap()
        .get_caller_identity(&user_keys())
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.header("x-amz-security-token"), None);
    assert!(r
        .header("authorization")
        .unwrap()
        .contains("SignedHeaders=content-type;host;x-amz-date, "));
}

#[test]
fn get_session_token_with_mfa() {
    let server = Responder::start(vec![reply(200, SESSION)]);
    let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let c = client(&server.url)
        .clock(ManualClock::new(fixed.into()).clock())
        .build()
        .unwrap();
    let req = GetSessionTokenRequest::new()
        .duration_seconds(3600)
        .serial_number("arn:aws:iam::123456789012:mfa/ops/alice")
        .token_code("012345");
    let creds = c.get_session_token(&user_keys(), &req).unwrap();
    assert_eq!(creds.access_key_id, "ASIANEWKEY");
    assert_eq!(creds.session_token.expose(), "newToken");
    assert_eq!(creds.start_time.unix_timestamp(), 1_700_000_000);
    assert_eq!(creds.expiration_iso(), "2026-11-23T00:58:15.619057Z");
    assert!(!format!("{creds:?}").contains("newSecret"));
    let r = &server.requests()[0];
    assert_eq!(
        r.body,
        "Action=GetSessionToken&Version=2011-06-15&DurationSeconds=3600\
         &SerialNumber=arn%3Aaws%3Aiam%3A%3A123456789012%3Amfa%2Fops%2Falice&TokenCode=012345"
    );
}

#[test]
fn assume_role_body_encoding() {
    let server = Responder::start(vec![reply(200, ASSUMED)]);
    let c = client(&server.url).build().unwrap();
    let req = AssumeRoleRequest::new("arn:aws:iam::123456789012:role/team/Admin", "a=b,c@d")
        .external_id("ext:1/x")
        .duration_seconds(900);
    let role = c.assume_role(&temp_keys(), &req).unwrap();
    assert_eq!(role.assumed_role_id, "AROAEXAMPLE:a=b,c@d");
    assert_eq!(
        role.credentials
            .access_key()
            .session_token
            .unwrap()
            .expose(),
        "roleToken"
    );
    assert_eq!(
        server.requests()[0].body,
        "Action=AssumeRole&Version=2011-06-15\
         &RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fteam%2FAdmin\
         &RoleSessionName=a%3Db%2Cc%40d&DurationSeconds=900&ExternalId=ext%3A1%2Fx"
    );
}

#[test]
fn invalid_input_sends_nothing() {
    // Nothing listens here; a network attempt would be a Transport error.
    let c = client("http://127.0.0.1:9").build().unwrap();
    let e = c
        .assume_role(
            &user_keys(),
            &AssumeRoleRequest::new("arn:aws:iam::123456789012:role/R", "x"),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "RoleSessionName",
                ..
            }
        ),
        "{e}"
    );
    let req = GetSessionTokenRequest::new()
        .serial_number("GAHT12345678")
        .token_code("12345");
    let e = c.get_session_token(&user_keys(), &req).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                field: "TokenCode",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn action_error_layout_is_typed_and_not_retried() {
    let body = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error>
  <RequestId>rid-denied</RequestId>
</ErrorResponse>"#;
    let server = Responder::start_for(
        vec![reply(403, body), reply(200, ASSUMED)],
        Duration::from_secs(1),
    );
    let c = client(&server.url).max_attempts(3).build().unwrap();
    let e = c
        .assume_role(
            &user_keys(),
            &AssumeRoleRequest::new("arn:aws:iam::123456789012:role/R", "s1"),
        )
        .unwrap_err();
    let s = e.service_error().expect("service error");
    assert_eq!(
        (s.action, s.status, s.code.as_str()),
        ("AssumeRole", 403, "AccessDenied")
    );
    assert_eq!(s.message, "not authorized to perform sts:AssumeRole");
    assert_eq!(s.request_id.as_deref(), Some("rid-denied"));
    drop(c);
    // Only the first step was used: one request, no retry.
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn auth_error_layout_takes_request_id_from_header() {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;
    let server = Responder::start(vec![Step::Reply {
        status: 403,
        headers: vec![
            ("Content-Type", "text/html".into()),
            ("x-amzn-RequestId", "hdr-rid".into()),
        ],
        body: body.as_bytes().to_vec(),
        keep_alive: false,
    }]);
    let e = client(&server.url)
        .build()
        .unwrap()
        .get_caller_identity(&user_keys())
        .unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    assert_eq!(
        e.service_error().unwrap().request_id.as_deref(),
        Some("hdr-rid")
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn html_500_becomes_status_code_error() {
    let html = "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n";
    let server = Responder::start(vec![Step::Reply {
        status: 500,
        headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
        body: html.as_bytes().to_vec(),
        keep_alive: false,
    }]);
    let e = client(&server.url)
        .max_attempts(1)
        .build()
        .unwrap()
        .get_caller_identity(&user_keys())
        .unwrap_err();
    let s = e.service_error().unwrap();
    assert_eq!((s.status, s.code.as_str()), (500, "HttpStatus500"));
    assert!(
        s.message.contains("500 Internal Server Error"),
        "{}",
        s.message
    );
    assert_eq!(s.request_id, None);
}

#[test]
fn retries_503_then_succeeds() {
    let server = Responder::start(vec![
        reply(503, ""),
        reply(503, "<html/>"),
        reply(200, CALLER),
    ]);
    let id = client(&server.url)
        .max_attempts(3)
        .build()
        .unwrap()
        .get_caller_identity(&user_keys())
        .unwrap();
    assert_eq!(id.arn, "arn:aws:sts::123456789012:assumed-role/Admin/alice");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    // Each attempt is signed afresh with the same body.
    assert!(reqs
        .iter()
        .all(|r| r.body == "Action=GetCallerIdentity&Version=2011-06-15"));
}

#[test]
fn retries_throttling_then_gives_up() {
    let throttled = r#"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
    let server = Responder::start(vec![reply(400, throttled), reply(400, throttled)]);
    let e = client(&server.url)
        .max_attempts(2)
        .build()
        .unwrap()
        .get_caller_identity(&user_keys())
        .unwrap_err();
    assert_eq!(e.code(), Some("Throttling"));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn timeout_is_a_transport_error() {
    let server = Responder::start(vec![Step::Hang(Duration::from_millis(1500))]);
    let c = client(&server.url)
        .timeout(Duration::from_millis(300))
        .max_attempts(1)
        .build()
        .unwrap();
    let e = c.get_caller_identity(&user_keys()).unwrap_err();
    match &e {
        Error::Transport {
            action, message, ..
        } => {
            assert_eq!(*action, "GetCallerIdentity");
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("expected Transport, got {other}"),
    }
    // The cause is told once, by Display; ureq's error stays in the field.
    assert!(std::error::Error::source(&e).is_none());
    assert!(matches!(
        &e,
        Error::Transport {
            source: Some(_),
            ..
        }
    ));
    server.requests();
}

#[test]
fn connection_refused_is_a_transport_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(&format!("http://127.0.0.1:{port}"))
        .max_attempts(2)
        .build()
        .unwrap();
    let e = c.get_caller_identity(&user_keys()).unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(!e.to_string().contains("wJalr"));
}

#[test]
fn oversize_response_refused() {
    let big = format!(
        "<GetCallerIdentityResponse>{}</GetCallerIdentityResponse>",
        " ".repeat(2 << 20)
    );
    let server = Responder::start(vec![reply(200, &big)]);
    let e = client(&server.url)
        .build()
        .unwrap()
        .get_caller_identity(&user_keys())
        .unwrap_err();
    match &e {
        Error::Response { message, .. } => assert!(message.contains("larger than"), "{message}"),
        other => panic!("expected Response, got {other}"),
    }
    server.requests();
}

#[test]
fn connections_are_reused() {
    let keep = |body: &str| Step::Reply {
        status: 200,
        headers: vec![],
        body: body.as_bytes().to_vec(),
        keep_alive: true,
    };
    let server = Responder::start(vec![keep(CALLER), keep(CALLER)]);
    let c = client(&server.url).build().unwrap();
    c.get_caller_identity(&user_keys()).unwrap();
    c.clone().get_caller_identity(&temp_keys()).unwrap();
    drop(c);
    let reqs = server.requests();
    assert_eq!(reqs.iter().map(|r| r.conn).collect::<Vec<_>>(), [0, 0]);
}

#[test]
fn list_mfa_devices_pages_and_signs_for_iam() {
    let page = |truncated: bool, serial: &str| {
        format!(
            r#"<ListMFADevicesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListMFADevicesResult>
<MFADevices><member><UserName>alice</UserName><SerialNumber>{serial}</SerialNumber><EnableDate>2026-01-01T00:00:00Z</EnableDate></member></MFADevices>
<IsTruncated>{truncated}</IsTruncated>{}</ListMFADevicesResult></ListMFADevicesResponse>"#,
            if truncated {
                "<Marker>next+page/1</Marker>"
            } else {
                ""
            }
        )
    };
    let server = Responder::start(vec![
        reply(200, &page(true, "arn:aws:iam::123456789012:mfa/alice")),
        reply(200, &page(false, "GAHT12345678")),
    ]);
    let c = client(&server.url).build().unwrap();
    let serials = c.list_mfa_devices(&user_keys(), Some("alice")).unwrap();
    assert_eq!(
        serials,
        ["arn:aws:iam::123456789012:mfa/alice", "GAHT12345678"]
    );
    let reqs = server.requests();
    assert_eq!(
        reqs[0].body,
        "Action=ListMFADevices&Version=2010-05-08&UserName=alice"
    );
    assert_eq!(
        reqs[1].body,
        "Action=ListMFADevices&Version=2010-05-08&UserName=alice&Marker=next%2Bpage%2F1"
    );
    let auth = reqs[0].header("authorization").unwrap();
    assert!(auth.contains("/us-east-1/iam/aws4_request"), "{auth}");
}

#[test]
fn logs_never_carry_secrets() {
    struct Capture(Arc<Mutex<Vec<String>>>);
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, r: &log::Record<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", r.target(), r.args()));
        }
        fn flush(&self) {}
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    // Only this test installs a logger; other tests in this binary may add
    // lines too, which are checked the same way.
    let logger: &'static Capture = Box::leak(Box::new(Capture(lines.clone())));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    let server = Responder::start(vec![reply(503, ""), reply(200, SESSION)]);
    let c = client(&server.url).build().unwrap();
    let req = GetSessionTokenRequest::new()
        .serial_number("arn:aws:iam::123456789012:mfa/alice")
        .token_code("424242");
    c.get_session_token(&temp_keys(), &req).unwrap();
    server.requests();
    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("GetSessionToken")),
        "{lines:?}"
    );
    // Every line at debug, ureq's included (it redacts headers below trace).
    for l in lines.iter() {
        for secret in [
            "tempSECRETkeyVALUE",
            "FwoGZXIvYXdz",
            "424242",
            "newSecret",
            "newToken",
        ] {
            assert!(!l.contains(secret), "{l}");
        }
    }
}
