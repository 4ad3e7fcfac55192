//! The KMS wire client: JSON 1.1 bodies in, typed outputs and errors out;
//! signing, sending, retries and skew on the shared transport.

use std::fmt;
use std::time::Duration;

use crossbeam_channel::Receiver;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::credentials::AccessKey;
use crate::endpoint::{self, Endpoint};
use crate::env::Env;
use crate::error::{Error, Result, ServiceError};
use crate::kms::json;
use crate::kms::{DecryptOutput, EncryptOutput, EncryptionContext, KeyMetadata, Kms};
use crate::transport::{Request, Settings, Transport};
use crate::wire;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// KMS refuses plaintexts over 4096 bytes; refuse them before signing.
const MAX_PLAINTEXT: usize = 4096;

/// A blocking KMS client for `Encrypt`, `Decrypt` and `DescribeKey`.
///
/// Cheap to clone (clones share the connection pool and the learnt clock
/// skew). One region: KMS keys live in one.
///
/// ```no_run
/// use stslib::kms::KmsClient;
/// use stslib::{AccessKey, Secret};
/// let kms = KmsClient::builder().region("eu-west-1").build()?;
/// let keys = AccessKey {
///     access_key_id: "AKIAEXAMPLE".into(),
///     secret_access_key: Secret::new("..."),
///     session_token: None,
/// };
/// let meta = kms.describe_key(&keys, "alias/authnz-production")?;
/// println!("{}", meta.arn);
/// # Ok::<(), stslib::Error>(())
/// ```
#[derive(Clone)]
pub struct KmsClient {
    transport: Transport,
    endpoint: Endpoint,
}

impl fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsClient")
            .field("endpoint", &self.endpoint.url)
            .field("region", &self.endpoint.signing_region)
            .field("transport", &self.transport)
            .finish()
    }
}

/// Configures a [`KmsClient`].
#[must_use]
pub struct KmsClientBuilder {
    region: Option<String>,
    endpoint: Option<String>,
    profile_endpoint_url: Option<String>,
    env: Env,
    connect_timeout: Duration,
    timeout: Duration,
    max_attempts: u32,
    clock: Clock,
    share: Option<Transport>,
}

impl fmt::Debug for KmsClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsClientBuilder")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Default for KmsClientBuilder {
    fn default() -> Self {
        KmsClientBuilder {
            region: None,
            endpoint: None,
            profile_endpoint_url: None,
            env: Env::process(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            clock: Clock::system(),
            share: None,
        }
    }
}

impl KmsClientBuilder {
    /// The region of the keys. Defaults to `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`; without any, `build` fails.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The endpoint URL (`https://…`, or `http://` to a loopback host).
    /// Defaults to `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, the
    /// profile's `endpoint_url`, then `https://kms.{region}.{partition
    /// domain}`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The profile's `endpoint_url`, consulted after the environment.
    /// Defaults to none.
    pub fn profile_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.profile_endpoint_url = Some(url.into());
        self
    }

    /// Where `AWS_REGION`, the endpoint variables, `AWS_CA_BUNDLE` and the
    /// proxy variables are read. Defaults to the process environment.
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// TCP/TLS connect timeout. Defaults to 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Timeout of each later phase (send, await, read). Defaults to 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per call, the first included (throttling, 5xx and broken
    /// connections are retried). Defaults to 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The clock for signing and for kmsauth's validity windows; the skew
    /// learnt from KMS is kept in it. Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Use the transport settings of an STS client (timeouts, retries, CA
    /// bundle, proxy variables, clock and the clock skew it learnt), with a
    /// connection pool of its own. Replaces the timeout, attempt, clock and
    /// environment settings of this builder. Defaults to none.
    pub fn transport_of(mut self, sts: &crate::StsClient) -> Self {
        self.share = Some(sts.transport().clone());
        self
    }

    /// Resolves the endpoint and builds the connection pool. No network
    /// call.
    pub fn build(self) -> Result<KmsClient> {
        let region = self
            .region
            .clone()
            .or_else(|| self.env.get("AWS_REGION"))
            .or_else(|| self.env.get("AWS_DEFAULT_REGION"))
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Error::invalid_input(
                    "region",
                    "no region: set one, or AWS_REGION (KMS keys live in one region)",
                )
            })?;
        let endpoint = endpoint::resolve_kms(
            &region,
            self.endpoint.as_deref(),
            self.profile_endpoint_url.as_deref(),
            &self.env,
        )?;
        let transport = match self.share {
            Some(t) => t.for_endpoint(&endpoint)?,
            None => Transport::new(
                Settings {
                    env: self.env,
                    connect_timeout: self.connect_timeout,
                    timeout: self.timeout,
                    max_attempts: self.max_attempts,
                    clock: self.clock,
                },
                &endpoint,
            )?,
        };
        Ok(KmsClient {
            transport,
            endpoint,
        })
    }
}

impl KmsClient {
    /// A builder with the defaults.
    pub fn builder() -> KmsClientBuilder {
        KmsClientBuilder::default()
    }

    /// The endpoint URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint.url
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.endpoint.signing_region
    }

    /// The clock offset learnt from KMS: server time minus local time.
    /// Zero until KMS rejects a request for its time. A client built on an
    /// [`StsClient`](crate::StsClient)'s transport shares its skew.
    pub fn clock_skew(&self) -> time::Duration {
        self.transport.clock_skew()
    }

    /// Now, by the client's clock corrected with the skew learnt from KMS.
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from(self.transport.now())
    }

    /// `Encrypt`: `plaintext` (at most 4096 bytes) under `key_id` (key id,
    /// key ARN, alias name or alias ARN, sent as given), bound to `context`.
    pub fn encrypt(
        &self,
        keys: &AccessKey,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<EncryptOutput> {
        self.encrypt_cancellable(keys, key_id, plaintext, context, None)
    }

    /// [`encrypt`](Self::encrypt), whose retry backoff ends early on a
    /// message on, or disconnection of, `cancel`.
    pub(crate) fn encrypt_cancellable(
        &self,
        keys: &AccessKey,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        cancel: Option<&Receiver<()>>,
    ) -> Result<EncryptOutput> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(Error::invalid_input(
                "Plaintext",
                format!("{} bytes; KMS takes 1 to 4096", plaintext.len()),
            ));
        }
        check_key_id(key_id)?;
        let body = json::object(|o| {
            o.key("KeyId").string(key_id);
            o.key("Plaintext")
                .string(&aws_smithy_types::base64::encode(plaintext));
            json::write_map(o, "EncryptionContext", context);
        });
        let (fields, rid) = self.call("Encrypt", &body, keys, cancel)?;
        Ok(EncryptOutput {
            ciphertext_blob: blob(&fields, "CiphertextBlob", "Encrypt", &rid)?,
            key_id: string(&fields, "KeyId", "Encrypt", &rid)?,
        })
    }

    /// `Decrypt` of `ciphertext_blob` with `context`. No `KeyId` is sent:
    /// KMS finds the key from the blob, and [`DecryptOutput::key_id`] says
    /// which it was.
    pub fn decrypt(
        &self,
        keys: &AccessKey,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<DecryptOutput> {
        if ciphertext_blob.is_empty() || ciphertext_blob.len() > 6144 {
            return Err(Error::invalid_input(
                "CiphertextBlob",
                format!("{} bytes; KMS takes 1 to 6144", ciphertext_blob.len()),
            ));
        }
        let body = json::object(|o| {
            o.key("CiphertextBlob")
                .string(&aws_smithy_types::base64::encode(ciphertext_blob));
            json::write_map(o, "EncryptionContext", context);
        });
        let (fields, rid) = self.call("Decrypt", &body, keys, None)?;
        Ok(DecryptOutput {
            plaintext: blob(&fields, "Plaintext", "Decrypt", &rid)?,
            key_id: string(&fields, "KeyId", "Decrypt", &rid)?,
        })
    }

    /// `DescribeKey` of `key_id`.
    pub fn describe_key(&self, keys: &AccessKey, key_id: &str) -> Result<KeyMetadata> {
        check_key_id(key_id)?;
        let body = json::object(|o| {
            o.key("KeyId").string(key_id);
        });
        let (fields, rid) = self.call("DescribeKey", &body, keys, None)?;
        let meta = fields.obj("KeyMetadata").ok_or_else(|| Error::Response {
            action: "DescribeKey",
            message: "no KeyMetadata object".into(),
            request_id: rid.clone(),
        })?;
        Ok(KeyMetadata {
            arn: string(meta, "Arn", "DescribeKey", &rid)?,
            key_id: string(meta, "KeyId", "DescribeKey", &rid)?,
            account_id: meta.str("AWSAccountId").map(str::to_owned),
            key_state: meta.str("KeyState").map(str::to_owned),
        })
    }

    fn call(
        &self,
        action: &'static str,
        body: &str,
        keys: &AccessKey,
        cancel: Option<&Receiver<()>>,
    ) -> Result<(json::Fields, Option<String>)> {
        let target = format!("TrentService.{action}");
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", target.as_str()),
        ];
        let reply = self.transport.call(
            &Request {
                action,
                target: &self.endpoint,
                signing_name: "kms",
                headers: &headers,
                body: body.as_bytes(),
                parse_error,
            },
            keys,
            cancel,
        )?;
        let fields = json::parse_object(&reply.body).map_err(|e| Error::Response {
            action,
            message: e.to_string(),
            request_id: reply.request_id.clone(),
        })?;
        Ok((fields, reply.request_id))
    }
}

impl Kms for KmsClient {
    fn encrypt(
        &self,
        keys: &AccessKey,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        cancel: Option<&Receiver<()>>,
    ) -> Result<EncryptOutput> {
        self.encrypt_cancellable(keys, key_id, plaintext, context, cancel)
    }

    fn decrypt(
        &self,
        keys: &AccessKey,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<DecryptOutput> {
        KmsClient::decrypt(self, keys, ciphertext_blob, context)
    }

    fn describe_key(&self, keys: &AccessKey, key_id: &str) -> Result<KeyMetadata> {
        KmsClient::describe_key(self, keys, key_id)
    }

    fn now(&self) -> OffsetDateTime {
        KmsClient::now(self)
    }
}

fn check_key_id(key_id: &str) -> Result<()> {
    if key_id.is_empty() || key_id.len() > 2048 || key_id.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            "KeyId",
            "must be 1 to 2048 characters without control characters",
        ));
    }
    Ok(())
}

fn string(
    fields: &json::Fields,
    key: &str,
    action: &'static str,
    rid: &Option<String>,
) -> Result<String> {
    fields
        .str(key)
        .map(str::to_owned)
        .ok_or_else(|| Error::Response {
            action,
            message: format!("no `{key}` string in the answer"),
            request_id: rid.clone(),
        })
}

fn blob(
    fields: &json::Fields,
    key: &str,
    action: &'static str,
    rid: &Option<String>,
) -> Result<Vec<u8>> {
    let text = string(fields, key, action, rid)?;
    aws_smithy_types::base64::decode(&text).map_err(|_| Error::Response {
        action,
        message: format!("`{key}` is not base64"),
        request_id: rid.clone(),
    })
}

/// A KMS error answer: JSON `{"__type": "[namespace#]Code", "message"}`
/// (AWS), else the XML layouts (moto's 403s), else `HttpStatusNNN`.
pub(crate) fn parse_error(
    action: &'static str,
    status: u16,
    body: &[u8],
    header_request_id: Option<&str>,
) -> ServiceError {
    let looks_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if looks_json {
        if let Ok(fields) = json::parse_object(body) {
            let code = fields
                .str("__type")
                .or_else(|| fields.str("code"))
                .map(|t| t.rsplit('#').next().unwrap_or(t))
                .map(|t| t.split(':').next().unwrap_or(t))
                .filter(|t| !t.trim().is_empty());
            if let Some(code) = code {
                let message = fields
                    .str("message")
                    .or_else(|| fields.str("Message"))
                    .unwrap_or_default();
                return ServiceError {
                    action,
                    status,
                    code: wire::sanitize(code, 128),
                    message: wire::sanitize(message, 1024),
                    request_id: header_request_id
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|r| wire::sanitize(r, 128)),
                };
            }
        }
    }
    wire::parse_error(action, status, body, header_request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_strip_namespaces() {
        let e = parse_error(
            "Decrypt",
            400,
            br#"{"__type":"com.amazonaws.kms#InvalidCiphertextException","message":"bad"}"#,
            Some("rid-1"),
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.request_id.as_deref()),
            ("InvalidCiphertextException", "bad", Some("rid-1"))
        );
        let e = parse_error(
            "Decrypt",
            400,
            br#"{"__type":"InvalidCiphertextException"}"#,
            None,
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("InvalidCiphertextException", "")
        );
        let e = parse_error(
            "Encrypt",
            400,
            br#"{"__type": "NotFoundException", "Message": "Alias x is not found."}"#,
            None,
        );
        assert_eq!(e.message, "Alias x is not found.");
    }

    #[test]
    fn xml_and_other_errors() {
        let moto = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message><Type>Sender</Type></Error></Errors></ErrorResponse>";
        let e = parse_error("Decrypt", 403, moto, None);
        assert_eq!(e.code, "InvalidClientTokenId");
        let e = parse_error(
            "Decrypt",
            500,
            b"<html><title>500 Internal</title></html>",
            None,
        );
        assert_eq!(e.code, "HttpStatus500");
        let e = parse_error("Decrypt", 400, b"{\"message\": \"no type\"}", None);
        assert_eq!(e.code, "HttpStatus400");
        let e = parse_error("Decrypt", 400, b"{", None);
        assert_eq!(e.code, "HttpStatus400");
    }
}
