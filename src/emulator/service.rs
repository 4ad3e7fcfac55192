//! What the emulator answers: authentication like STS (access key, session
//! token, signature, clock skew, expiry), then GetSessionToken, AssumeRole,
//! GetCallerIdentity and IAM ListMFADevices with AWS's XML shapes and error
//! codes.
//!
//! Everything here works on values: a parsed request, the emulator's
//! configuration and mutable state, and the time `now` on the emulator's
//! clock. No I/O, no clock reads.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use time::macros::format_description;
use time::OffsetDateTime;

use super::http::{Request, Response};
use super::sigv4;
use super::Action;
use crate::Secret;

/// STS's XML namespace and API version.
pub(crate) const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const STS_VERSION: &str = "2011-06-15";
/// IAM's XML namespace and API version.
pub(crate) const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const IAM_VERSION: &str = "2010-05-08";

/// How far a request's `X-Amz-Date` may be from the emulator's clock.
const MAX_SKEW: time::Duration = time::Duration::minutes(5);

/// An IAM user known to the emulator.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// The bare name (`alice` for `ops/alice`).
    pub name: String,
    pub arn: String,
    pub user_id: String,
    pub access_key_id: String,
    pub secret: Secret,
    pub devices: Vec<Device>,
}

/// A virtual MFA device.
#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub serial: String,
    pub code: Secret,
    pub enable_date: OffsetDateTime,
}

/// Settings fixed when the emulator starts.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub account_id: String,
    pub users: Vec<User>,
    pub require_mfa: bool,
    pub lifetime: Option<Duration>,
    pub role_lifetime: Option<Duration>,
    pub denied_roles: Vec<String>,
    pub kms_keys: Vec<super::kms::Key>,
}

/// Credentials the emulator issued, by access key id.
#[derive(Debug, Default)]
pub(crate) struct State {
    temps: HashMap<String, Temp>,
    role_ids: HashMap<String, String>,
}

#[derive(Debug)]
struct Temp {
    secret: Secret,
    token: Secret,
    expires: OffsetDateTime,
    kind: TempKind,
}

#[derive(Debug, Clone)]
pub(crate) enum TempKind {
    /// From GetSessionToken: acts as the user.
    Session { user: usize },
    /// From AssumeRole.
    Role {
        account: String,
        arn: String,
        role_id: String,
    },
}

/// Who signed the request.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    User(usize),
    Temp(TempKind),
}

impl Caller {
    fn user(&self) -> Option<usize> {
        match self {
            Caller::User(u) | Caller::Temp(TempKind::Session { user: u }) => Some(*u),
            Caller::Temp(TempKind::Role { .. }) => None,
        }
    }
}

/// The answer to one request, and the AWS error code when it is an error.
#[derive(Debug)]
pub(crate) struct Answer {
    pub response: Response,
    pub code: Option<String>,
}

/// An error answer before it is rendered.
pub(crate) struct Fail {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

pub(crate) fn fail(status: u16, code: &'static str, message: impl Into<String>) -> Fail {
    Fail {
        status,
        code,
        message: message.into(),
    }
}

fn validation(message: impl Into<String>) -> Fail {
    fail(
        400,
        "ValidationError",
        format!("1 validation error detected: {}", message.into()),
    )
}

const MFA_FAILED: &str = "MultiFactorAuthentication failed with invalid MFA one time pass code.";
const BAD_TOKEN: &str = "The security token included in the request is invalid.";

/// A decoded `application/x-www-form-urlencoded` body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Form(pub Vec<(String, String)>);

impl Form {
    /// Decodes a form body; undecodable escapes are kept as written.
    pub fn parse(body: &[u8]) -> Form {
        let text = String::from_utf8_lossy(body);
        Form(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) if hex.bytes().all(|c| c.is_ascii_hexdigit()) => {
                        out.push(b);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which action a request names, given the service in its credential scope.
pub(crate) fn action_of(service: &str, name: &str) -> Option<Action> {
    match (service, name) {
        ("sts", "GetSessionToken") => Some(Action::GetSessionToken),
        ("sts", "AssumeRole") => Some(Action::AssumeRole),
        ("sts", "GetCallerIdentity") => Some(Action::GetCallerIdentity),
        ("iam", "ListMFADevices") => Some(Action::ListMFADevices),
        _ => None,
    }
}

/// The service a request is for: from its credential scope, else `sts`.
pub(crate) fn service_of(req: &Request) -> String {
    req.header("authorization")
        .and_then(|v| sigv4::parse_authorization(v).ok())
        .map(|a| a.service)
        .filter(|s| s == "iam")
        .unwrap_or_else(|| "sts".to_owned())
}

/// Answers one request.
pub(crate) fn handle(
    cfg: &Config,
    st: &mut State,
    req: &Request,
    form: &Form,
    now: OffsetDateTime,
    request_id: &str,
) -> Answer {
    let service = service_of(req);
    let ns = if service == "iam" { IAM_NS } else { STS_NS };
    match dispatch(cfg, st, req, form, now, request_id, &service) {
        Ok(body) => Answer {
            response: xml_response(200, body, request_id),
            code: None,
        },
        Err(f) => Answer {
            response: error_response(ns, f.status, f.code, &f.message, request_id),
            code: Some(f.code.to_owned()),
        },
    }
}

fn dispatch(
    cfg: &Config,
    st: &mut State,
    req: &Request,
    form: &Form,
    now: OffsetDateTime,
    request_id: &str,
    service: &str,
) -> Result<String, Fail> {
    if req.method != "POST" {
        return Err(fail(
            405,
            "MethodNotAllowed",
            format!(
                "The emulator accepts only POST, not {}",
                req.method.replace(|c: char| !c.is_ascii_alphanumeric(), "")
            ),
        ));
    }
    if let Some(ct) = req.header("content-type") {
        if !ct
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            return Err(fail(
                415,
                "UnsupportedMediaType",
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
    }
    let caller = authenticate(cfg, st, req, now)?;

    let Some(name) = form.get("Action") else {
        return Err(fail(400, "MissingAction", "Missing Action"));
    };
    let version = form.get("Version").unwrap_or("NO_VERSION_SPECIFIED");
    let want = if service == "iam" {
        IAM_VERSION
    } else {
        STS_VERSION
    };
    let action = action_of(service, name).filter(|_| version == want);
    let Some(action) = action else {
        return Err(fail(
            400,
            "InvalidAction",
            format!(
                "Could not find operation {} for version {}",
                xml_escape(name),
                xml_escape(version)
            ),
        ));
    };
    match action {
        Action::GetSessionToken => get_session_token(cfg, st, &caller, form, now, request_id),
        Action::AssumeRole => assume_role(cfg, st, &caller, form, now, request_id),
        Action::GetCallerIdentity => Ok(get_caller_identity(cfg, &caller, request_id)),
        Action::ListMFADevices => list_mfa_devices(cfg, &caller, form, request_id),
        Action::Encrypt | Action::Decrypt | Action::DescribeKey | Action::Any => {
            Err(fail(400, "InvalidAction", "Could not find operation"))
        }
    }
}

pub(crate) fn authenticate(
    cfg: &Config,
    st: &State,
    req: &Request,
    now: OffsetDateTime,
) -> Result<Caller, Fail> {
    let Some(value) = req.header("authorization") else {
        return Err(fail(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    };
    let auth =
        sigv4::parse_authorization(value).map_err(|m| fail(400, "IncompleteSignature", m))?;
    if !["sts", "iam", "kms"].contains(&auth.service.as_str()) {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            "Credential should be scoped to correct service: 'sts'.",
        ));
    }
    let Some(raw_date) = req.header("x-amz-date") else {
        return Err(fail(
            400,
            "IncompleteSignature",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let Some(signed_at) = sigv4::parse_amz_date(raw_date) else {
        return Err(fail(
            400,
            "IncompleteSignature",
            "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'",
        ));
    };
    let amz_date = sigv4::format_amz_date(signed_at);
    if !amz_date.starts_with(&auth.date) {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                auth.date,
                &amz_date[..8],
                amz_date
            ),
        ));
    }

    let token = req.header("x-amz-security-token");
    let (caller, secret, temp_expiry) = if let Some(i) = cfg
        .users
        .iter()
        .position(|u| u.access_key_id == auth.access_key_id)
    {
        if token.is_some() {
            return Err(fail(403, "InvalidClientTokenId", BAD_TOKEN));
        }
        (Caller::User(i), &cfg.users[i].secret, None)
    } else if let Some(t) = st.temps.get(&auth.access_key_id) {
        if token != Some(t.token.expose()) {
            return Err(fail(403, "InvalidClientTokenId", BAD_TOKEN));
        }
        (Caller::Temp(t.kind.clone()), &t.secret, Some(t.expires))
    } else {
        return Err(fail(403, "InvalidClientTokenId", BAD_TOKEN));
    };

    if !sigv4::verify(req, &auth, secret.expose(), token, signed_at) {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. \
             Consult the service documentation for details.",
        ));
    }
    let now_s = sigv4::format_amz_date(now);
    if signed_at < now - MAX_SKEW {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                amz_date,
                sigv4::format_amz_date(now - MAX_SKEW),
                now_s
            ),
        ));
    }
    if signed_at > now + MAX_SKEW {
        return Err(fail(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                amz_date,
                sigv4::format_amz_date(now + MAX_SKEW),
                now_s
            ),
        ));
    }
    if temp_expiry.is_some_and(|e| e <= now) {
        return Err(fail(
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        ));
    }
    Ok(caller)
}

/// Parses and range-checks `DurationSeconds`.
fn duration_param(form: &Form, default: u32, max: u32) -> Result<u32, Fail> {
    let Some(raw) = form.get("DurationSeconds") else {
        return Ok(default);
    };
    let Ok(v) = raw.trim().parse::<i64>() else {
        return Err(validation(format!(
            "Value '{}' at 'durationSeconds' failed to satisfy constraint: Member must be a number",
            xml_escape(raw)
        )));
    };
    if v < 900 {
        return Err(validation(format!(
            "Value '{v}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        )));
    }
    if v > i64::from(max) {
        return Err(validation(format!(
            "Value '{v}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to {max}"
        )));
    }
    Ok(v as u32)
}

/// Checks `SerialNumber`/`TokenCode` when given. Returns whether MFA was used.
fn check_mfa(cfg: &Config, caller: &Caller, form: &Form) -> Result<bool, Fail> {
    let serial = form.get("SerialNumber");
    let code = form.get("TokenCode");
    if let Some(code) = code {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            // Never echo the code: it is a secret.
            return Err(validation(
                "Value at 'tokenCode' failed to satisfy constraint: Member must have length 6 and satisfy regular expression pattern: [\\d]*",
            ));
        }
    }
    let Some(serial) = serial else {
        if code.is_some() {
            return Err(fail(
                400,
                "ValidationError",
                "TokenCode was given without SerialNumber",
            ));
        }
        return Ok(false);
    };
    if serial.len() < 9 || serial.len() > 256 {
        return Err(validation(format!(
            "Value '{}' at 'serialNumber' failed to satisfy constraint: Member must have length between 9 and 256",
            xml_escape(serial)
        )));
    }
    let candidates: Vec<&User> = match caller.user() {
        Some(u) => vec![&cfg.users[u]],
        None => cfg.users.iter().collect(),
    };
    let device = candidates
        .iter()
        .flat_map(|u| u.devices.iter())
        .find(|d| d.serial == serial);
    match (device, code) {
        (Some(d), Some(c)) if d.code.expose() == c => Ok(true),
        _ => Err(fail(403, "AccessDenied", MFA_FAILED)),
    }
}

fn get_session_token(
    cfg: &Config,
    st: &mut State,
    caller: &Caller,
    form: &Form,
    now: OffsetDateTime,
    request_id: &str,
) -> Result<String, Fail> {
    let Caller::User(user) = *caller else {
        return Err(fail(
            403,
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        ));
    };
    let duration = duration_param(form, 43_200, 129_600)?;
    let mfa = check_mfa(cfg, caller, form)?;
    let u = &cfg.users[user];
    if cfg.require_mfa && !mfa && !u.devices.is_empty() {
        return Err(fail(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:GetSessionToken without MFA \
                 (this emulator requires SerialNumber and TokenCode)",
                u.arn
            ),
        ));
    }
    let creds = issue(cfg, st, TempKind::Session { user }, duration, now);
    Ok(format!(
        "<GetSessionTokenResponse xmlns=\"{STS_NS}\">\n  <GetSessionTokenResult>\n{creds}  </GetSessionTokenResult>\n{}</GetSessionTokenResponse>\n",
        metadata(request_id)
    ))
}

fn assume_role(
    cfg: &Config,
    st: &mut State,
    caller: &Caller,
    form: &Form,
    now: OffsetDateTime,
    request_id: &str,
) -> Result<String, Fail> {
    let not_null = |field: &str| {
        validation(format!(
            "Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    };
    let role_arn = form.get("RoleArn").ok_or_else(|| not_null("roleArn"))?;
    let session = form
        .get("RoleSessionName")
        .ok_or_else(|| not_null("roleSessionName"))?;
    let Some((partition, account, role_path)) = parse_role_arn(role_arn) else {
        return Err(fail(
            400,
            "ValidationError",
            format!("{} is invalid", xml_escape(role_arn)),
        ));
    };
    if session.len() < 2
        || session.len() > 64
        || !session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
    {
        return Err(validation(format!(
            "Value '{}' at 'roleSessionName' failed to satisfy constraint: Member must have length between 2 and 64 and satisfy regular expression pattern: [\\w+=,.@-]*",
            xml_escape(session)
        )));
    }
    if let Some(ext) = form.get("ExternalId") {
        if ext.len() < 2 || ext.len() > 1224 {
            return Err(validation(
                "Value at 'externalId' failed to satisfy constraint: Member must have length between 2 and 1224",
            ));
        }
    }
    let chained = matches!(caller, Caller::Temp(_));
    let duration = duration_param(form, 3600, 43_200)?;
    if chained && duration > 3600 {
        return Err(fail(
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    check_mfa(cfg, caller, form)?;
    if cfg.denied_roles.iter().any(|r| r == role_arn) {
        return Err(fail(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                caller_arn(cfg, caller),
                xml_escape(role_arn)
            ),
        ));
    }
    let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
    let role_id = st
        .role_ids
        .entry(role_arn.to_owned())
        .or_insert_with(|| format!("AROA{}", random_string(UPPER_ALNUM, 17)))
        .clone();
    let assumed_arn = format!("arn:{partition}:sts::{account}:assumed-role/{role_name}/{session}");
    let assumed_id = format!("{role_id}:{session}");
    let kind = TempKind::Role {
        account: account.to_owned(),
        arn: assumed_arn.clone(),
        role_id: assumed_id.clone(),
    };
    let creds = issue(cfg, st, kind, duration, now);
    let policy_size = form
        .get("Policy")
        .map_or(0, |p| (p.len() * 100 / 2048).max(1));
    Ok(format!(
        "<AssumeRoleResponse xmlns=\"{STS_NS}\">\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n{creds}    <PackedPolicySize>{policy_size}</PackedPolicySize>\n  </AssumeRoleResult>\n{}</AssumeRoleResponse>\n",
        xml_escape(&assumed_id),
        xml_escape(&assumed_arn),
        metadata(request_id)
    ))
}

/// Splits `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
fn parse_role_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("iam::")?;
    let (account, rest) = rest.split_once(':')?;
    let role = rest.strip_prefix("role/")?;
    let ok_partition = partition.starts_with("aws")
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
    let ok_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let ok_role = !role.is_empty()
        && role.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
        });
    (ok_partition && ok_account && ok_role).then_some((partition, account, role))
}

fn caller_arn(cfg: &Config, caller: &Caller) -> String {
    match caller {
        Caller::Temp(TempKind::Role { arn, .. }) => arn.clone(),
        _ => caller
            .user()
            .map(|u| cfg.users[u].arn.clone())
            .unwrap_or_default(),
    }
}

fn get_caller_identity(cfg: &Config, caller: &Caller, request_id: &str) -> String {
    let (user_id, account, arn) = match caller {
        Caller::Temp(TempKind::Role {
            account,
            arn,
            role_id,
        }) => (role_id.clone(), account.clone(), arn.clone()),
        _ => {
            let u = &cfg.users[caller.user().unwrap_or(0)];
            (u.user_id.clone(), cfg.account_id.clone(), u.arn.clone())
        }
    };
    format!(
        "<GetCallerIdentityResponse xmlns=\"{STS_NS}\">\n  <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  </GetCallerIdentityResult>\n{}</GetCallerIdentityResponse>\n",
        xml_escape(&arn),
        xml_escape(&user_id),
        xml_escape(&account),
        metadata(request_id)
    )
}

fn list_mfa_devices(
    cfg: &Config,
    caller: &Caller,
    form: &Form,
    request_id: &str,
) -> Result<String, Fail> {
    let user = match (form.get("UserName"), caller.user()) {
        (Some(name), _) => cfg.users.iter().find(|u| u.name == name).ok_or_else(|| {
            fail(
                404,
                "NoSuchEntity",
                format!("The user with name {} cannot be found.", xml_escape(name)),
            )
        })?,
        (None, Some(u)) => &cfg.users[u],
        (None, None) => {
            return Err(fail(
                400,
                "ValidationError",
                "Must specify userName when calling with non-User credentials",
            ))
        }
    };
    let mut members = String::new();
    for d in &user.devices {
        let _ = write!(
            members,
            "      <member>\n        <UserName>{}</UserName>\n        <SerialNumber>{}</SerialNumber>\n        <EnableDate>{}</EnableDate>\n      </member>\n",
            xml_escape(&user.name),
            xml_escape(&d.serial),
            format_timestamp(d.enable_date)
        );
    }
    Ok(format!(
        "<ListMFADevicesResponse xmlns=\"{IAM_NS}\">\n  <ListMFADevicesResult>\n    <MFADevices>\n{members}    </MFADevices>\n    <IsTruncated>false</IsTruncated>\n  </ListMFADevicesResult>\n{}</ListMFADevicesResponse>\n",
        metadata(request_id)
    ))
}

/// Issues temporary credentials and returns their `<Credentials>` element.
fn issue(
    cfg: &Config,
    st: &mut State,
    kind: TempKind,
    duration_secs: u32,
    now: OffsetDateTime,
) -> String {
    let mut lifetime = Duration::from_secs(u64::from(duration_secs));
    if let Some(cap) = cfg.lifetime {
        lifetime = lifetime.min(cap);
    }
    if let (Some(cap), TempKind::Role { .. }) = (cfg.role_lifetime, &kind) {
        lifetime = lifetime.min(cap);
    }
    let expires = now + lifetime;
    let akid = loop {
        let k = format!("ASIA{}", random_string(KEY_ALPHABET, 16));
        if !st.temps.contains_key(&k) {
            break k;
        }
    };
    let secret = Secret::new(random_string(SECRET_ALPHABET, 40));
    let token = Secret::new(format!(
        "IQoJb3JpZ2luX2VjE{}",
        random_string(SECRET_ALPHABET, 300)
    ));
    let element = format!(
        "    <Credentials>\n      <AccessKeyId>{akid}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n",
        xml_escape(secret.expose()),
        xml_escape(token.expose()),
        format_timestamp(expires)
    );
    log::debug!(
        "emulator: issued {akid}, expires {}",
        format_timestamp(expires)
    );
    st.temps.insert(
        akid,
        Temp {
            secret,
            token,
            expires,
            kind,
        },
    );
    element
}

fn metadata(request_id: &str) -> String {
    format!(
        "  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n"
    )
}

/// A 200 (or other) XML answer with the request id header.
pub(crate) fn xml_response(status: u16, body: String, request_id: &str) -> Response {
    Response {
        status,
        content_type: "text/xml",
        headers: vec![("x-amzn-RequestId", request_id.to_owned())],
        body: body.into_bytes(),
    }
}

/// An error in AWS's Query layout.
pub(crate) fn error_response(
    ns: &str,
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{ns}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        xml_escape(code),
        xml_escape(message)
    );
    xml_response(status, body, request_id)
}

/// `2026-11-23T12:00:00Z`, as AWS writes `Expiration`.
pub(crate) fn format_timestamp(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

/// `Mon, 23 Nov 2026 12:00:00 GMT` for the `Date` header.
pub(crate) fn format_http_date(t: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

/// Escapes text for an XML element.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

pub(crate) const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `len` characters drawn from `alphabet`.
pub(crate) fn random_string(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[crate::rand::below(alphabet.len() as u64) as usize]))
        .collect()
}

/// A fresh uuid-shaped request id.
pub(crate) fn request_id() -> String {
    let (a, b) = (crate::rand::u64(), crate::rand::u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = Form::parse(b"Action=AssumeRole&RoleSessionName=a+b%2Fc&X=%zz&Empty=&Flag");
        assert_eq!(f.get("Action"), Some("AssumeRole"));
        assert_eq!(f.get("RoleSessionName"), Some("a b/c"));
        assert_eq!(f.get("X"), Some("%zz"));
        assert_eq!(f.get("Empty"), Some(""));
        assert_eq!(f.get("Flag"), Some(""));
        assert_eq!(Form::parse(b"a=%4").get("a"), Some("%4"));
        assert_eq!(Form::parse(b"a=%").get("a"), Some("%"));
        assert_eq!(Form::parse(b"a=%C3%A9").get("a"), Some("é"));
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/ops/admin"),
            Some(("aws", "123456789012", "ops/admin"))
        );
        for bad in [
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a//b",
            "role/x",
        ] {
            assert_eq!(parse_role_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_and_ids() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_435_200).unwrap();
        assert_eq!(format_timestamp(t), "2026-11-23T12:00:00Z");
        assert_eq!(format_http_date(t), "Mon, 23 Nov 2026 12:00:00 GMT");
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, request_id());
        assert_eq!(xml_escape("a<&>'\"\u{1}"), "a&lt;&amp;&gt;&apos;&quot;");
    }
}
