//! Checking SigV4 signatures the way STS does: parse the `Authorization`
//! header, then recompute the signature over the received request with the
//! known secret and compare.
//!
//! Recomputing uses `aws-sigv4` itself, fed only the headers the client
//! listed in `SignedHeaders`, so the canonical request is built from exactly
//! what the client said it signed.

use std::borrow::Cow;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::http::Request;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthHeader {
    pub access_key_id: String,
    /// `YYYYMMDD` from the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, as listed.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses an `Authorization` header value. The error is the message for an
/// `IncompleteSignature` answer.
pub(crate) fn parse_authorization(value: &str) -> Result<AuthHeader, String> {
    let value = value.trim();
    let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256") else {
        return Err("Unsupported AWS 'algorithm': only AWS4-HMAC-SHA256 is accepted".into());
    };
    if !rest.starts_with(' ') {
        return Err("Unsupported AWS 'algorithm': only AWS4-HMAC-SHA256 is accepted".into());
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return Err(format!(
                "Authorization component is not key=value: '{}'",
                part.trim()
            ));
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let missing = |what: &str| format!("Authorization header requires '{what}' parameter.");
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = scope[..] else {
        return Err(format!(
            "Credential should have 5 slash-separated parts, not {}",
            scope.len()
        ));
    };
    if akid.is_empty() || region.is_empty() || service.is_empty() || terminator != "aws4_request" {
        return Err("Credential scope is malformed".into());
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Credential date is malformed".into());
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err("SignedHeaders is malformed".into());
    }
    if signature.is_empty() || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("Signature is malformed".into());
    }
    Ok(AuthHeader {
        access_key_id: akid.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Parses an `X-Amz-Date` value (`20240101T000000Z`).
pub(crate) fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value.trim(), fmt)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Formats a time as an `X-Amz-Date` value.
pub(crate) fn format_amz_date(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(fmt).unwrap_or_default()
}

/// Whether `auth.signature` is the SigV4 signature of `req` made with
/// `secret` (and `session_token`, when the client signed one) at `time`.
pub(crate) fn verify(
    req: &Request,
    auth: &AuthHeader,
    secret: &str,
    session_token: Option<&str>,
    time: OffsetDateTime,
) -> bool {
    let signed = |name: &str| auth.signed_headers.iter().any(|h| h == name);
    if !signed("x-amz-date") {
        return false;
    }
    // aws-sigv4 adds these itself; give it every other signed header.
    const ADDED: [&str; 3] = ["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"];
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for name in &auth.signed_headers {
        if ADDED.contains(&name.as_str()) {
            continue;
        }
        let before = headers.len();
        headers.extend(req.header_all(name).map(|v| (name.as_str(), v)));
        if headers.len() == before {
            return false; // signed a header that was not sent
        }
    }
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::<Cow<'static, str>>::new());
    settings.session_token_mode = if signed("x-amz-security-token") {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    if signed("x-amz-content-sha256") {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity = aws_credential_types::Credentials::new(
        auth.access_key_id.clone(),
        secret.to_owned(),
        session_token.map(str::to_owned),
        None,
        "stslib-emulator",
    )
    .into();
    let Ok(params) = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(SystemTime::from(time))
        .settings(settings)
        .build()
    else {
        return false;
    };
    let Ok(signable) = SignableRequest::new(
        &req.method,
        req.target.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&req.body),
    ) else {
        return false;
    };
    match sign(signable, &params.into()) {
        Ok(out) => constant_time_eq(out.signature().as_bytes(), auth.signature.as_bytes()),
        Err(_) => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5D672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    #[test]
    fn parses_authorization_header() {
        let a = parse_authorization(AUTH).unwrap();
        assert_eq!(a.access_key_id, "AKIDEXAMPLE");
        assert_eq!(a.date, "20150830");
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.service, "sts");
        assert_eq!(a.signed_headers, ["content-type", "host", "x-amz-date"]);
        assert!(a.signature.starts_with("5d672d79"));
    }

    #[test]
    fn rejects_incomplete_authorization_headers() {
        for bad in [
            "",
            "AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request",
            "AWS4-HMAC-SHA256Credential=x",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sts/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sts, SignedHeaders=host, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AKID/2015/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sts/aws4_request, SignedHeaders=host;;x, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=zz",
            "AWS4-HMAC-SHA256 garbage",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amz_date_round_trips() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1440938160);
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        assert!(parse_amz_date("2015-08-30T12:36:00Z").is_none());
    }

    #[test]
    fn verify_accepts_own_signature_and_rejects_changes() {
        let time = parse_amz_date("20150830T123600Z").unwrap();
        let body = b"Action=GetCallerIdentity&Version=2011-06-15".to_vec();
        let mut req = Request {
            method: "POST".into(),
            target: "/".into(),
            http10: false,
            headers: vec![
                ("Host".into(), "127.0.0.1:1".into()),
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("X-Amz-Date".into(), "20150830T123600Z".into()),
            ],
            body,
        };
        let mut auth = AuthHeader {
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "sts".into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
            signature: String::new(),
        };
        // Sign with the same machinery a client uses, then check.
        let identity =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("sts")
            .time(SystemTime::from(time))
            .settings(SigningSettings::default())
            .build()
            .unwrap();
        let signable = SignableRequest::new(
            "POST",
            "/",
            [
                ("host", "127.0.0.1:1"),
                ("content-type", "application/x-www-form-urlencoded"),
            ]
            .into_iter(),
            SignableBody::Bytes(&req.body),
        )
        .unwrap();
        auth.signature = sign(signable, &params.into())
            .unwrap()
            .signature()
            .to_owned();

        assert!(verify(&req, &auth, "secret", None, time));
        assert!(!verify(&req, &auth, "wrong", None, time));
        assert!(!verify(
            &req,
            &auth,
            "secret",
            None,
            time + time::Duration::seconds(1)
        ));
        let mut other = auth.clone();
        other.signed_headers.push("x-missing".into());
        assert!(!verify(&req, &other, "secret", None, time));
        req.body.push(b'x');
        assert!(!verify(&req, &auth, "secret", None, time));
    }
}
