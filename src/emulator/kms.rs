//! The emulator's KMS: `Encrypt`, `Decrypt` and `DescribeKey` over AWS
//! JSON 1.1 (`X-Amz-Target: TrentService.*`, SigV4 service `kms`), with
//! aliases, per-region keys and AWS's error codes.
//!
//! Unlike moto it binds the encryption context strictly: the ciphertext's
//! tag covers every pair, length-prefixed, so `to=svc-buser_typeservice`
//! and `{to=svc-b, user_type=service}` differ. The ciphertext is a test
//! construction, not a secure one: `key id (36 bytes) | nonce (12) |
//! plaintext XOR HMAC-SHA256 keystream | HMAC-SHA256 tag (32)`, keyed by 32
//! random bytes per key. Everything here works on values (no I/O, no clock
//! reads).

use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use super::http::{Request, Response};
use super::service::{self, fail, Answer, Caller, Config, Fail, State};
use super::Action;
use crate::kms::json::{self, Fields};

type HmacSha256 = hmac::Hmac<Sha256>;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const KEY_ID_LEN: usize = 36;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 32;

/// A KMS key the emulator holds.
#[derive(Clone)]
pub(crate) struct Key {
    /// A UUID.
    pub id: String,
    pub region: String,
    /// Alias names (`alias/…`) pointing at it.
    pub aliases: Vec<String>,
    material: [u8; 32],
    creation: f64,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("region", &self.region)
            .field("aliases", &self.aliases)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// A new key with random material and a random UUID.
    pub(crate) fn new(region: &str, aliases: Vec<String>, now: OffsetDateTime) -> Key {
        let mut material = [0u8; 32];
        for chunk in material.chunks_mut(8) {
            chunk.copy_from_slice(&crate::rand::u64().to_le_bytes());
        }
        let (a, b) = (crate::rand::u64(), crate::rand::u64());
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        );
        Key {
            id,
            region: region.to_owned(),
            aliases,
            material,
            creation: now.unix_timestamp() as f64,
        }
    }

    pub(crate) fn arn(&self, account: &str) -> String {
        format!("arn:aws:kms:{}:{account}:key/{}", self.region, self.id)
    }

    fn mac(&self, label: &[u8]) -> HmacSha256 {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.material)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(label);
        let derived = m.finalize().into_bytes();
        <HmacSha256 as KeyInit>::new_from_slice(&derived)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    fn keystream_xor(&self, nonce: &[u8], data: &mut [u8]) {
        let base = self.mac(b"stslib-emulator-kms enc");
        for (i, chunk) in data.chunks_mut(32).enumerate() {
            let mut m = base.clone();
            m.update(nonce);
            m.update(&(i as u32).to_be_bytes());
            let block = m.finalize().into_bytes();
            for (d, k) in chunk.iter_mut().zip(block.iter()) {
                *d ^= k;
            }
        }
    }

    fn tag(&self, nonce: &[u8], context: &BTreeMap<String, String>, ciphertext: &[u8]) -> Vec<u8> {
        let mut m = self.mac(b"stslib-emulator-kms tag");
        m.update(self.id.as_bytes());
        m.update(nonce);
        m.update(&(context.len() as u32).to_be_bytes());
        for (k, v) in context {
            m.update(&(k.len() as u32).to_be_bytes());
            m.update(k.as_bytes());
            m.update(&(v.len() as u32).to_be_bytes());
            m.update(v.as_bytes());
        }
        m.update(ciphertext);
        m.finalize().into_bytes().to_vec()
    }

    fn seal(&self, plaintext: &[u8], context: &BTreeMap<String, String>) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&crate::rand::u64().to_le_bytes());
        nonce[8..].copy_from_slice(&crate::rand::u64().to_le_bytes()[..4]);
        let mut body = plaintext.to_vec();
        self.keystream_xor(&nonce, &mut body);
        let tag = self.tag(&nonce, context, &body);
        let mut blob = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + body.len() + TAG_LEN);
        blob.extend_from_slice(self.id.as_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&body);
        blob.extend_from_slice(&tag);
        blob
    }

    fn open(&self, blob: &[u8], context: &BTreeMap<String, String>) -> Option<Vec<u8>> {
        let rest = blob.get(KEY_ID_LEN..)?;
        if rest.len() < NONCE_LEN + TAG_LEN + 1 {
            return None;
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let want = self.tag(nonce, context, body);
        if !constant_time_eq(&want, tag) {
            return None;
        }
        let mut plain = body.to_vec();
        self.keystream_xor(nonce, &mut plain);
        Some(plain)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True when the request is for KMS: a `TrentService.` target, or a
/// credential scope naming `kms`.
pub(crate) fn is_kms(req: &Request) -> bool {
    req.header("x-amz-target")
        .is_some_and(|t| t.starts_with("TrentService."))
        || req
            .header("authorization")
            .and_then(|v| super::sigv4::parse_authorization(v).ok())
            .is_some_and(|a| a.service == "kms")
}

/// The operation name from `X-Amz-Target`.
pub(crate) fn operation(req: &Request) -> Option<String> {
    req.header("x-amz-target")
        .and_then(|t| t.strip_prefix("TrentService."))
        .map(str::to_owned)
}

pub(crate) fn action_of(name: &str) -> Option<Action> {
    match name {
        "Encrypt" => Some(Action::Encrypt),
        "Decrypt" => Some(Action::Decrypt),
        "DescribeKey" => Some(Action::DescribeKey),
        _ => None,
    }
}

/// The `KeyId` of a request body, for the request record.
pub(crate) fn key_id_of(body: &[u8]) -> Option<String> {
    json::parse_object(body)
        .ok()
        .and_then(|f| f.str("KeyId").map(str::to_owned))
}

/// A JSON 1.1 answer with the request id header.
pub(crate) fn json_response(status: u16, body: String, request_id: &str) -> Response {
    Response {
        status,
        content_type: CONTENT_TYPE,
        headers: vec![("x-amzn-RequestId", request_id.to_owned())],
        body: body.into_bytes(),
    }
}

/// An error in AWS's JSON layout.
pub(crate) fn error_response(status: u16, code: &str, message: &str, request_id: &str) -> Response {
    let body = json::object(|o| {
        o.key("__type").string(code);
        o.key("message").string(message);
    });
    let mut r = json_response(status, body, request_id);
    r.headers.push(("x-amzn-ErrorType", code.to_owned()));
    r
}

/// A well-formed 200 body: of `action`'s shape, or (`wrong_shape`) another.
pub(crate) fn canned_body(action: Option<Action>, account: &str, wrong_shape: bool) -> String {
    let arn = format!("arn:aws:kms:us-east-1:{account}:key/00000000-0000-4000-8000-000000000000");
    let describe = matches!(action, Some(Action::DescribeKey));
    if describe != wrong_shape {
        json::object(|o| {
            let mut m = o.key("KeyMetadata").start_object();
            m.key("Arn").string(&arn);
            m.key("KeyId")
                .string("00000000-0000-4000-8000-000000000000");
            m.finish();
        })
    } else {
        json::object(|o| {
            o.key("KeyId").string(&arn);
            o.key("CiphertextBlob").string("AAAA");
            o.key("Plaintext").string("AAAA");
        })
    }
}

/// Answers one KMS request.
pub(crate) fn handle(
    cfg: &Config,
    st: &mut State,
    req: &Request,
    now: OffsetDateTime,
    request_id: &str,
) -> Answer {
    match dispatch(cfg, st, req, now) {
        Ok(body) => Answer {
            response: json_response(200, body, request_id),
            code: None,
        },
        Err(f) => Answer {
            response: error_response(f.status, f.code, &f.message, request_id),
            code: Some(f.code.to_owned()),
        },
    }
}

/// STS's authentication failures under KMS's JSON names (all 400, as KMS
/// answers them).
fn kms_auth_failure(f: Fail) -> Fail {
    let code = match f.code {
        "MissingAuthenticationToken" => "MissingAuthenticationTokenException",
        "IncompleteSignature" => "IncompleteSignatureException",
        "InvalidClientTokenId" => "UnrecognizedClientException",
        "SignatureDoesNotMatch" => "InvalidSignatureException",
        "ExpiredToken" => "ExpiredTokenException",
        other => other,
    };
    Fail {
        status: if f.status == 403 { 400 } else { f.status },
        code,
        message: f.message,
    }
}

fn dispatch(
    cfg: &Config,
    st: &mut State,
    req: &Request,
    now: OffsetDateTime,
) -> Result<String, Fail> {
    if req.method != "POST" {
        return Err(fail(405, "MethodNotAllowed", "KMS accepts only POST"));
    }
    let caller = service::authenticate(cfg, st, req, now).map_err(kms_auth_failure)?;
    let auth = req
        .header("authorization")
        .and_then(|v| super::sigv4::parse_authorization(v).ok())
        .ok_or_else(|| fail(400, "IncompleteSignatureException", "bad Authorization"))?;
    if auth.service != "kms" {
        return Err(fail(
            400,
            "InvalidSignatureException",
            "Credential should be scoped to correct service: 'kms'.",
        ));
    }
    let Some(op) = operation(req) else {
        return Err(fail(
            400,
            "UnknownOperationException",
            "X-Amz-Target must name a TrentService operation",
        ));
    };
    let fields = json::parse_object(&req.body)
        .map_err(|e| fail(400, "SerializationException", e.to_string()))?;
    let ctx = match fields.0.get("EncryptionContext") {
        None => BTreeMap::new(),
        Some(json::Value::Obj(o)) => o.string_map().ok_or_else(|| {
            fail(
                400,
                "SerializationException",
                "EncryptionContext values must be strings",
            )
        })?,
        Some(_) => {
            return Err(fail(
                400,
                "SerializationException",
                "EncryptionContext must be an object",
            ))
        }
    };
    let region = auth.region.as_str();
    match action_of(&op) {
        Some(Action::Encrypt) => encrypt(cfg, &caller, region, &fields, &ctx),
        Some(Action::Decrypt) => decrypt(cfg, region, &fields, &ctx),
        Some(Action::DescribeKey) => describe_key(cfg, region, &fields),
        _ => Err(fail(
            400,
            "UnknownOperationException",
            format!("The emulator's KMS does not implement {}", sanitize(&op)),
        )),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(64)
        .collect()
}

/// The key `key_id` names in `region`: key id, key ARN, alias name or
/// alias ARN.
fn find_key<'a>(cfg: &'a Config, region: &str, key_id: &str) -> Result<&'a Key, Fail> {
    let account = &cfg.account_id;
    let in_region = |k: &&Key| k.region == region;
    let arn_prefix = format!("arn:aws:kms:{region}:{account}:");
    let (alias, id) = if let Some(rest) = key_id.strip_prefix(&arn_prefix) {
        match rest.strip_prefix("key/") {
            Some(id) => (None, Some(id)),
            None => (Some(rest), None),
        }
    } else if key_id.starts_with("arn:") {
        return Err(fail(
            400,
            "NotFoundException",
            format!("Key '{}' does not exist", sanitize_arn(key_id)),
        ));
    } else if key_id.starts_with("alias/") {
        (Some(key_id), None)
    } else {
        (None, Some(key_id))
    };
    let found = match (alias, id) {
        (Some(alias), _) => cfg
            .kms_keys
            .iter()
            .filter(in_region)
            .find(|k| k.aliases.iter().any(|a| a == alias)),
        (None, Some(id)) => cfg.kms_keys.iter().filter(in_region).find(|k| k.id == id),
        _ => None,
    };
    found.ok_or_else(|| match alias {
        Some(alias) => fail(
            400,
            "NotFoundException",
            format!(
                "Alias arn:aws:kms:{region}:{account}:{} is not found.",
                sanitize_arn(alias)
            ),
        ),
        None => fail(
            400,
            "NotFoundException",
            format!(
                "Key 'arn:aws:kms:{region}:{account}:key/{}' does not exist",
                sanitize_arn(id.unwrap_or_default())
            ),
        ),
    })
}

fn sanitize_arn(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\'))
        .take(256)
        .collect()
}

fn required<'a>(fields: &'a Fields, key: &str) -> Result<&'a str, Fail> {
    fields.str(key).ok_or_else(|| {
        fail(
            400,
            "ValidationException",
            format!("1 validation error detected: Value null at '{key}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

fn encrypt(
    cfg: &Config,
    _caller: &Caller,
    region: &str,
    fields: &Fields,
    ctx: &BTreeMap<String, String>,
) -> Result<String, Fail> {
    let key = find_key(cfg, region, required(fields, "KeyId")?)?;
    let plaintext = aws_smithy_types::base64::decode(required(fields, "Plaintext")?)
        .map_err(|_| fail(400, "SerializationException", "Plaintext is not base64"))?;
    if plaintext.is_empty() || plaintext.len() > 4096 {
        return Err(fail(
            400,
            "ValidationException",
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096",
        ));
    }
    let blob = key.seal(&plaintext, ctx);
    let arn = key.arn(&cfg.account_id);
    Ok(json::object(|o| {
        o.key("CiphertextBlob")
            .string(&aws_smithy_types::base64::encode(&blob));
        o.key("KeyId").string(&arn);
        o.key("EncryptionAlgorithm").string("SYMMETRIC_DEFAULT");
    }))
}

fn decrypt(
    cfg: &Config,
    region: &str,
    fields: &Fields,
    ctx: &BTreeMap<String, String>,
) -> Result<String, Fail> {
    let invalid = || fail(400, "InvalidCiphertextException", "");
    let blob = aws_smithy_types::base64::decode(required(fields, "CiphertextBlob")?)
        .map_err(|_| invalid())?;
    let id = blob
        .get(..KEY_ID_LEN)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let key = cfg
        .kms_keys
        .iter()
        .find(|k| k.id == id && k.region == region)
        .ok_or_else(invalid)?;
    if let Some(named) = fields.str("KeyId") {
        let named = find_key(cfg, region, named)?;
        if named.id != key.id {
            return Err(fail(
                400,
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ));
        }
    }
    let plain = key.open(&blob, ctx).ok_or_else(invalid)?;
    let arn = key.arn(&cfg.account_id);
    Ok(json::object(|o| {
        o.key("KeyId").string(&arn);
        o.key("Plaintext")
            .string(&aws_smithy_types::base64::encode(&plain));
        o.key("EncryptionAlgorithm").string("SYMMETRIC_DEFAULT");
    }))
}

fn describe_key(cfg: &Config, region: &str, fields: &Fields) -> Result<String, Fail> {
    let key = find_key(cfg, region, required(fields, "KeyId")?)?;
    let arn = key.arn(&cfg.account_id);
    Ok(json::object(|o| {
        let mut m = o.key("KeyMetadata").start_object();
        m.key("AWSAccountId").string(&cfg.account_id);
        m.key("Arn").string(&arn);
        m.key("CreationDate")
            .number(aws_smithy_types::Number::Float(key.creation));
        m.key("Description").string("");
        m.key("Enabled").boolean(true);
        m.key("KeyId").string(&key.id);
        m.key("KeyManager").string("CUSTOMER");
        m.key("KeySpec").string("SYMMETRIC_DEFAULT");
        m.key("KeyState").string("Enabled");
        m.key("KeyUsage").string("ENCRYPT_DECRYPT");
        m.key("Origin").string("AWS_KMS");
        m.finish();
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn context_binding_is_strict() {
        let key = Key::new("us-east-1", vec![], OffsetDateTime::UNIX_EPOCH);
        let v2 = ctx(&[("to", "svc-b"), ("from", "svc-a"), ("user_type", "service")]);
        let blob = key.seal(b"payload", &v2);
        assert_eq!(key.open(&blob, &v2).as_deref(), Some(&b"payload"[..]));
        // moto's concatenation would let these through.
        for other in [
            ctx(&[("to", "svc-buser_typeservice"), ("from", "svc-a")]),
            ctx(&[("to", "svc-b"), ("from", "svc-a")]),
            ctx(&[("to", "svc-b"), ("from", "svc-a"), ("user_type", "user")]),
            ctx(&[
                ("to", "svc-b"),
                ("from", "svc-a"),
                ("user_type", "service"),
                ("x", ""),
            ]),
        ] {
            assert_eq!(key.open(&blob, &other), None, "{other:?}");
        }
        let mut tampered = blob.clone();
        let n = tampered.len();
        tampered[n - 40] ^= 1;
        assert_eq!(key.open(&tampered, &v2), None);
        let other_key = Key {
            id: key.id.clone(),
            ..Key::new("us-east-1", vec![], OffsetDateTime::UNIX_EPOCH)
        };
        assert_eq!(other_key.open(&blob, &v2), None);
        assert_eq!(key.open(&blob[..60], &v2), None);
    }
}
