//! SigV4 request signing with `aws-sigv4`: the headers to add to a `POST`
//! whose body and signed headers are known.
//!
//! What is signed: `host`, the caller's extra headers (for STS
//! `content-type`; for KMS also `x-amz-target`), `x-amz-date` and, with
//! temporary keys, `x-amz-security-token`; the payload hash is the SHA-256
//! of the exact body bytes. `user-agent` and `expect` are never signed
//! (botocore leaves them out when it recomputes a signature).
//!
//! The signing key is derived anew per request: `aws-sigv4` offers no hook
//! to pass a cached key to `http_request::sign`, and the derivation is four
//! HMAC-SHA256 operations, negligible next to a network round trip.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::credentials::AccessKey;
use crate::error::{Error, Result};

/// What a signature covers besides the keys and the time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signable<'a> {
    /// The API action, for error messages.
    pub action: &'static str,
    /// The full URL the request is sent to.
    pub url: &'a str,
    /// The `Host` header value.
    pub host: &'a str,
    /// The SigV4 region.
    pub region: &'a str,
    /// The SigV4 service name (`sts`, `iam`, `kms`).
    pub service: &'static str,
    /// Headers sent and signed besides `host` (lower-case names).
    pub headers: &'a [(&'static str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// The SigV4 headers to add (`x-amz-date`, `authorization` and, with
/// temporary keys, `x-amz-security-token`) to a `POST` of `req` signed with
/// `keys` at `now`.
pub(crate) fn sign_post(
    req: &Signable<'_>,
    keys: &AccessKey,
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>> {
    let failed = |message: String| Error::Signing {
        action: req.action,
        message,
    };
    let identity = aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose(),
        keys.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "stslib",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings
        .excluded_headers
        .get_or_insert_with(Vec::new)
        .extend(["user-agent".into(), "expect".into()]);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(req.region)
        .name(req.service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| failed(e.to_string()))?
        .into();
    let headers = std::iter::once(("host", req.host)).chain(req.headers.iter().copied());
    let signable = SignableRequest::new("POST", req.url, headers, SignableBody::Bytes(req.body))
        .map_err(|e| failed(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| failed(e.to_string()))?
        .into_parts();
    let (added, _query) = instructions.into_parts();
    Ok(added
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::secret::Secret;

    fn keys() -> AccessKey {
        AccessKey {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
            session_token: Some(Secret::new("tok+en/=")),
        }
    }

    fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    const NOW: Duration = Duration::from_secs(1_700_000_000);

    #[test]
    fn sts_query_signature_shape() {
        let h = sign_post(
            &Signable {
                action: "GetCallerIdentity",
                url: "http://127.0.0.1:5123/",
                host: "127.0.0.1:5123",
                region: "eu-west-1",
                service: "sts",
                headers: &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                body: b"Action=GetCallerIdentity&Version=2011-06-15",
            },
            &keys(),
            SystemTime::UNIX_EPOCH + NOW,
        )
        .unwrap();
        assert_eq!(header(&h, "x-amz-date"), Some("20231114T221320Z"));
        assert_eq!(header(&h, "x-amz-security-token"), Some("tok+en/="));
        let auth = header(&h, "authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20231114/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="),
            "{auth}"
        );
    }

    #[test]
    fn json_target_header_is_signed_and_body_bytes_matter() {
        let sign_body = |body: &[u8]| {
            sign_post(
                &Signable {
                    action: "Encrypt",
                    url: "https://kms.eu-west-1.amazonaws.com/",
                    host: "kms.eu-west-1.amazonaws.com",
                    region: "eu-west-1",
                    service: "kms",
                    headers: &[
                        ("content-type", "application/x-amz-json-1.1"),
                        ("x-amz-target", "TrentService.Encrypt"),
                    ],
                    body,
                },
                &keys(),
                SystemTime::UNIX_EPOCH + NOW,
            )
            .unwrap()
        };
        let a = sign_body(br#"{"KeyId":"alias/x"}"#);
        let auth = header(&a, "authorization").unwrap();
        assert!(
            auth.contains("/eu-west-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="),
            "{auth}"
        );
        let b = sign_body(br#"{"KeyId": "alias/x"}"#);
        assert_ne!(auth, header(&b, "authorization").unwrap());
    }
}
