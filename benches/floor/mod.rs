//! The floor every bench compares stslib with: the STS Query client a
//! person would write by hand from the same libraries, **with their
//! defaults**, sharing nothing with stslib or with `tests/common`:
//!
//! - transport: one `ureq::Agent::new_with_defaults()` per floor client
//!   (ureq's defaults: no timeout of any kind, its default pool, its own
//!   user agent, proxy from the process environment, 4xx/5xx as errors);
//! - signing: `aws-sigv4` with `SigningSettings::default()` over `host`,
//!   `content-type` and the SigV4 headers;
//! - parsing: one `roxmltree` parse, the expiration through `time`'s
//!   RFC 3339 parser;
//! - no retries, no validation, no error parsing (the benches only see 2xx).
//!
//! It panics on anything but a 2xx answer: a bench that fails must stop.

#![allow(dead_code)]

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Keys to sign with.
#[derive(Clone, Debug)]
pub struct Keys {
    pub access_key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

/// Temporary credentials from GetSessionToken or AssumeRole.
#[derive(Clone, Debug)]
pub struct Creds {
    pub keys: Keys,
    pub expiration: OffsetDateTime,
}

/// A hand-written STS client on one default agent.
pub struct Floor {
    agent: ureq::Agent,
    url: String,
    host: String,
    region: String,
}

impl Floor {
    /// A client for `endpoint` (`http://127.0.0.1:PORT`), signing for
    /// `us-east-1`.
    pub fn new(endpoint: &str) -> Floor {
        let host = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, rest)| rest)
            .trim_end_matches('/')
            .to_owned();
        Floor {
            agent: ureq::Agent::new_with_defaults(),
            url: format!("{}/", endpoint.trim_end_matches('/')),
            host,
            region: "us-east-1".to_owned(),
        }
    }

    /// One signed STS call; the 2xx body.
    pub fn call(&self, keys: &Keys, action: &str, params: &[(&str, &str)]) -> String {
        let mut body = format!("Action={action}&Version=2011-06-15");
        for (k, v) in params {
            body.push('&');
            body.push_str(&encode(k));
            body.push('=');
            body.push_str(&encode(v));
        }
        let identity = aws_credential_types::Credentials::new(
            &keys.access_key_id,
            &keys.secret,
            keys.token.clone(),
            None,
            "floor",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing params")
            .into();
        let signable = SignableRequest::new(
            "POST",
            &self.url,
            [("host", self.host.as_str()), ("content-type", CONTENT_TYPE)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut req = self
            .agent
            .post(&self.url)
            .header("content-type", CONTENT_TYPE);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let mut resp = req.send(body.as_bytes()).expect("floor call");
        resp.body_mut().read_to_string().expect("floor body")
    }

    /// GetSessionToken with no parameters.
    pub fn get_session_token(&self, keys: &Keys) -> Creds {
        parse(&self.call(keys, "GetSessionToken", &[]))
    }

    /// AssumeRole for an hour.
    pub fn assume_role(&self, keys: &Keys, role_arn: &str, session_name: &str) -> Creds {
        parse(&self.call(
            keys,
            "AssumeRole",
            &[
                ("RoleArn", role_arn),
                ("RoleSessionName", session_name),
                ("DurationSeconds", "3600"),
            ],
        ))
    }
}

/// The credentials in a GetSessionToken/AssumeRole answer, one parse.
pub fn parse(xml: &str) -> Creds {
    let doc = roxmltree::Document::parse(xml).expect("xml");
    let text = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .expect(name)
            .to_owned()
    };
    Creds {
        keys: Keys {
            access_key_id: text("AccessKeyId"),
            secret: text("SecretAccessKey"),
            token: Some(text("SessionToken")),
        },
        expiration: OffsetDateTime::parse(&text("Expiration"), &Rfc3339).expect("expiration"),
    }
}

/// `application/x-www-form-urlencoded` as Python's `quote_plus` writes it.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
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
