//! The STS/IAM Query wire format (pure): form-encoding request bodies and
//! parsing XML responses and error bodies into typed values.
//!
//! Parsing matches elements by local name (namespaces are ignored) and looks
//! children up by name, so element order does not matter. Limits: a body
//! larger than [`MAX_RESPONSE_BYTES`] (1 MiB; real STS answers are a few
//! KiB) is refused before parsing, as is XML nested deeper than
//! [`MAX_XML_DEPTH`], with more than [`MAX_XML_NODES`] nodes, or with more
//! than [`MAX_XML_ATTRIBUTES`] attributes on one element; all of these
//! become [`Error::Response`], never a panic.

use roxmltree::{Document, Node, ParsingOptions};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::credentials::{AssumedRole, CallerIdentity, Credentials};
use crate::error::{Error, Result, ServiceError};
use crate::secret::Secret;

/// The largest response body read, in bytes (1 MiB).
pub(crate) const MAX_RESPONSE_BYTES: u64 = 1 << 20;
/// The deepest element nesting accepted (real answers nest 5 deep).
pub(crate) const MAX_XML_DEPTH: usize = 32;
/// The most XML nodes accepted.
pub(crate) const MAX_XML_NODES: u32 = 20_000;
/// The most attributes (namespace declarations included) accepted on one
/// element (real answers have one `xmlns`). roxmltree checks duplicate
/// attributes pairwise, so one element with 100 000 attributes (1 MiB)
/// would take minutes to parse.
pub(crate) const MAX_XML_ATTRIBUTES: usize = 32;

/// Encodes form parameters exactly as Python's `urllib.parse.urlencode`
/// (and so botocore) does: `quote_plus` on names and values (`A-Z a-z 0-9 _
/// . - ~` literal, space as `+`, every other byte of the UTF-8 as uppercase
/// `%XX`), joined by `&` in the order given.
pub(crate) fn form_encode<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        quote_plus(k, &mut out);
        out.push('=');
        quote_plus(v, &mut out);
    }
    out
}

fn quote_plus(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

/// One page of `ListMFADevices`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MfaDevicePage {
    pub devices: Vec<MfaDevice>,
    /// `Marker` to ask for the next page, when `IsTruncated` is true.
    pub next_marker: Option<String>,
}

/// One MFA device of an IAM user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MfaDevice {
    pub user_name: Option<String>,
    pub serial_number: String,
    pub enable_date: Option<OffsetDateTime>,
}

/// Parses a `GetSessionToken` answer. `start_time` is the client's clock
/// read before the request was sent.
pub(crate) fn parse_get_session_token(
    body: &[u8],
    start_time: OffsetDateTime,
) -> Result<Credentials> {
    let action = "GetSessionToken";
    with_result(action, body, |result, rid| {
        credentials(
            action,
            required(action, result, "Credentials", rid)?,
            start_time,
            rid,
        )
    })
}

/// Parses an `AssumeRole` answer.
pub(crate) fn parse_assume_role(body: &[u8], start_time: OffsetDateTime) -> Result<AssumedRole> {
    let action = "AssumeRole";
    with_result(action, body, |result, rid| {
        let creds = credentials(
            action,
            required(action, result, "Credentials", rid)?,
            start_time,
            rid,
        )?;
        let user = required(action, result, "AssumedRoleUser", rid)?;
        let packed_policy_size = match child(result, "PackedPolicySize") {
            None => None,
            Some(n) => Some(
                text(n)
                    .parse::<u32>()
                    .map_err(|_| response(action, "PackedPolicySize is not a number", rid))?,
            ),
        };
        Ok(AssumedRole {
            credentials: creds,
            assumed_role_arn: required_text(action, user, "Arn", rid)?,
            assumed_role_id: required_text(action, user, "AssumedRoleId", rid)?,
            packed_policy_size,
        })
    })
}

/// Parses a `GetCallerIdentity` answer.
pub(crate) fn parse_caller_identity(body: &[u8]) -> Result<CallerIdentity> {
    let action = "GetCallerIdentity";
    with_result(action, body, |result, rid| {
        Ok(CallerIdentity {
            account: required_text(action, result, "Account", rid)?,
            arn: required_text(action, result, "Arn", rid)?,
            user_id: required_text(action, result, "UserId", rid)?,
        })
    })
}

/// Parses an IAM `ListMFADevices` answer.
pub(crate) fn parse_list_mfa_devices(body: &[u8]) -> Result<MfaDevicePage> {
    let action = "ListMFADevices";
    with_result(action, body, |result, rid| {
        let mut devices = Vec::new();
        if let Some(list) = child(result, "MFADevices") {
            for member in children(list, "member") {
                let enable_date = match child(member, "EnableDate") {
                    None => None,
                    Some(n) => Some(parse_time(text(n)).ok_or_else(|| {
                        response(action, "EnableDate is not an RFC 3339 time", rid)
                    })?),
                };
                devices.push(MfaDevice {
                    user_name: child(member, "UserName").map(|n| text(n).to_owned()),
                    serial_number: required_text(action, member, "SerialNumber", rid)?,
                    enable_date,
                });
            }
        }
        let truncated = child(result, "IsTruncated").is_some_and(|n| text(n) == "true");
        let next_marker = child(result, "Marker")
            .map(|n| text(n).to_owned())
            .filter(|m| truncated && !m.is_empty());
        Ok(MfaDevicePage {
            devices,
            next_marker,
        })
    })
}

/// Turns a non-2xx answer into a [`ServiceError`]. Understands both AWS
/// layouts (`ErrorResponse/Error/Code` with a `RequestId`, and
/// `ErrorResponse/Errors/Error/Code` without one) and anything else that has
/// an `Error` element with a `Code`; any other body (HTML, empty, truncated)
/// gives the code `HttpStatusNNN` and a short description, never the body.
pub(crate) fn parse_error(
    action: &'static str,
    status: u16,
    body: &[u8],
    header_request_id: Option<&str>,
) -> ServiceError {
    let parsed = std::str::from_utf8(body)
        .ok()
        .and_then(|s| parse_doc(s).ok())
        .and_then(|doc| {
            let root = doc.root_element();
            let err = root
                .descendants()
                .find(|n| is(n, "Error") && child(*n, "Code").is_some())?;
            let code = text(child(err, "Code")?).to_owned();
            let message = child(err, "Message").map(|n| text(n).to_owned());
            let rid = root
                .descendants()
                .find(|n| is(n, "RequestId") || is(n, "RequestID"))
                .map(|n| text(n).to_owned())
                .filter(|s| !s.is_empty());
            Some((code, message, rid))
        });
    let header_rid = header_request_id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    match parsed {
        Some((code, message, rid)) if !code.is_empty() => ServiceError {
            action,
            status,
            code: sanitize(&code, 128),
            message: sanitize(&message.unwrap_or_default(), 1024),
            request_id: rid.or(header_rid).map(|r| sanitize(&r, 128)),
        },
        _ => ServiceError {
            action,
            status,
            code: format!("HttpStatus{status}"),
            message: describe_non_xml(body),
            request_id: header_rid.map(|r| sanitize(&r, 128)),
        },
    }
}

/// A short, safe description of a body that is not an AWS error document.
fn describe_non_xml(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty response body".to_owned();
    }
    let s = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let lower = s.to_ascii_lowercase();
    if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>")) {
        if a + 7 <= b {
            let title = sanitize(&s[a + 7..b], 120);
            if !title.is_empty() {
                return format!("non-XML response ({} bytes): {title}", body.len());
            }
        }
    }
    format!(
        "response body is not an AWS error document ({} bytes)",
        body.len()
    )
}

/// Collapses whitespace, drops control characters and caps the length.
pub(crate) fn sanitize(s: &str, max_chars: usize) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    let joined = words.join(" ");
    let mut out: String = joined
        .chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect();
    if joined.chars().count() > max_chars {
        out.push('…');
    }
    out
}

fn parse_doc(s: &str) -> std::result::Result<Document<'_>, String> {
    // roxmltree parses nested elements by recursion, and compares each
    // element's attributes pairwise: bound depth and attributes first.
    match scan_limits(s.as_bytes(), MAX_XML_DEPTH, MAX_XML_ATTRIBUTES) {
        Some(Limit::Depth) => {
            return Err(format!("XML nested deeper than {MAX_XML_DEPTH} elements"))
        }
        Some(Limit::Attributes) => {
            return Err(format!(
                "an XML element has more than {MAX_XML_ATTRIBUTES} attributes"
            ))
        }
        None => {}
    }
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
    };
    Document::parse_with_options(s, opts).map_err(|e| e.to_string())
}

/// A limit [`scan_limits`] found exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Depth,
    Attributes,
}

/// True when the elements of `s` nest deeper than `max` (see
/// [`scan_limits`]).
#[cfg(test)]
fn nesting_exceeds(s: &[u8], max: usize) -> bool {
    scan_limits(s, max, usize::MAX) == Some(Limit::Depth)
}

/// A conservative linear scan of element nesting and attribute counts,
/// without recursion: every `<` that starts a tag which is not `</`, `<!`,
/// `<?` or self-closing counts as one level (as it does for the parser);
/// every `=` outside quotes in a start tag counts as one attribute;
/// comments, CDATA and processing instructions are skipped. Over-counting
/// on malformed input is harmless: such input fails to parse anyway.
fn scan_limits(s: &[u8], max_depth: usize, max_attributes: usize) -> Option<Limit> {
    let find = |from: usize, pat: &[u8]| {
        s.get(from..)
            .and_then(|rest| rest.windows(pat.len()).position(|w| w == pat))
            .map(|p| from + p + pat.len())
    };
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(off) = s
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'<'))
    {
        let at = i + off;
        let next = match s.get(at + 1) {
            Some(&b) => b,
            None => break,
        };
        let resume = match next {
            b'/' => {
                depth = depth.saturating_sub(1);
                Some(at + 2)
            }
            b'!' if s[at..].starts_with(b"<!--") => find(at + 4, b"-->"),
            b'!' if s[at..].starts_with(b"<![CDATA[") => find(at + 9, b"]]>"),
            b'!' => find(at + 2, b">"),
            b'?' => find(at + 2, b"?>"),
            _ => {
                // A start tag: its end is the first `>` outside quotes.
                let mut quote = None;
                let mut attributes = 0usize;
                let mut j = at + 1;
                while let Some(&c) = s.get(j) {
                    match quote {
                        Some(q) if c == q => quote = None,
                        Some(_) => {}
                        None if c == b'"' || c == b'\'' => quote = Some(c),
                        None if c == b'>' => break,
                        None if c == b'=' => {
                            attributes += 1;
                            if attributes > max_attributes {
                                return Some(Limit::Attributes);
                            }
                        }
                        None => {}
                    }
                    j += 1;
                }
                if s.get(j.wrapping_sub(1)) != Some(&b'/') {
                    depth += 1;
                    if depth > max_depth {
                        return Some(Limit::Depth);
                    }
                }
                Some(j + 1)
            }
        };
        match resume {
            Some(r) => i = r,
            None => break,
        }
    }
    None
}

/// Parses `body`, checks the root is `{action}Response`, and hands the
/// `{action}Result` element and the request id to `f`.
fn with_result<T>(
    action: &'static str,
    body: &[u8],
    f: impl for<'a, 'i> FnOnce(Node<'a, 'i>, Option<&str>) -> Result<T>,
) -> Result<T> {
    if body.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(response(action, "response body larger than 1 MiB", None));
    }
    let s = std::str::from_utf8(body)
        .map_err(|_| response(action, "response body is not UTF-8", None))?;
    let doc = parse_doc(s).map_err(|e| response(action, &format!("invalid XML: {e}"), None))?;
    let root = doc.root_element();
    let rid = child(root, "ResponseMetadata")
        .and_then(|m| child(m, "RequestId"))
        .map(text)
        .filter(|s| !s.is_empty());
    let want = format!("{action}Response");
    if root.tag_name().name() != want {
        return Err(response(
            action,
            &format!(
                "expected <{want}>, got <{}>",
                sanitize(root.tag_name().name(), 64)
            ),
            rid,
        ));
    }
    let result = required(action, root, &format!("{action}Result"), rid)?;
    f(result, rid)
}

fn credentials(
    action: &'static str,
    node: Node<'_, '_>,
    start_time: OffsetDateTime,
    rid: Option<&str>,
) -> Result<Credentials> {
    let expiration = required_text(action, node, "Expiration", rid)?;
    let expiration = parse_time(&expiration)
        .ok_or_else(|| response(action, "Expiration is not an RFC 3339 time", rid))?;
    Ok(Credentials {
        access_key_id: required_text(action, node, "AccessKeyId", rid)?,
        secret_access_key: Secret::new(required_text(action, node, "SecretAccessKey", rid)?),
        session_token: Secret::new(required_text(action, node, "SessionToken", rid)?),
        start_time,
        expiration,
    })
}

/// RFC 3339 with 0 to 9 fractional digits, converted to UTC.
pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .map(|t| t.to_offset(UtcOffset::UTC))
}

fn is(n: &Node<'_, '_>, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| is(n, name))
}

fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |n| is(n, name))
}

/// The trimmed text of an element (roxmltree merges text and CDATA).
fn text<'a>(node: Node<'a, '_>) -> &'a str {
    node.text().unwrap_or("").trim()
}

fn required<'a, 'i>(
    action: &'static str,
    node: Node<'a, 'i>,
    name: &str,
    rid: Option<&str>,
) -> Result<Node<'a, 'i>> {
    child(node, name).ok_or_else(|| response(action, &format!("missing <{name}>"), rid))
}

fn required_text(
    action: &'static str,
    node: Node<'_, '_>,
    name: &str,
    rid: Option<&str>,
) -> Result<String> {
    let t = text(required(action, node, name, rid)?);
    if t.is_empty() {
        return Err(response(action, &format!("empty <{name}>"), rid));
    }
    Ok(t.to_owned())
}

fn response(action: &'static str, message: &str, rid: Option<&str>) -> Error {
    Error::Response {
        action,
        message: message.to_owned(),
        request_id: rid.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2026-11-22 12:58:15 UTC);

    #[test]
    fn form_encoding_matches_urlencode() {
        assert_eq!(
            form_encode([("Action", "GetSessionToken"), ("Version", "2011-06-15")]),
            "Action=GetSessionToken&Version=2011-06-15"
        );
        // urllib.parse.urlencode({'a': 'x y*~/:+=&é_.-'}) == 'a=x+y%2A~%2F%3A%2B%3D%26%C3%A9_.-'
        assert_eq!(
            form_encode([("a", "x y*~/:+=&é_.-")]),
            "a=x+y%2A~%2F%3A%2B%3D%26%C3%A9_.-"
        );
        assert_eq!(
            form_encode([
                ("RoleArn", "arn:aws:iam::123456789012:role/a b"),
                ("Z", ""),
                ("A", "!")
            ]),
            "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fa+b&Z=&A=%21"
        );
        assert_eq!(form_encode(std::iter::empty()), "");
    }

    const GST: &str = r#"<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetSessionTokenResult>
    <Credentials>
      <SessionToken>AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2+cTQtpZ3CYWFXG8C5zqx37wnOE49mRl/+OtkIKGO7fAE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2026-11-23T00:58:15.619057Z</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </GetSessionTokenResult>
  <ResponseMetadata>
    <RequestId>58c5dbae-abef-11e0-8cfe-09039844ac7d</RequestId>
  </ResponseMetadata>
</GetSessionTokenResponse>"#;

    #[test]
    fn get_session_token_with_micros_any_order() {
        let c = parse_get_session_token(GST.as_bytes(), START).unwrap();
        assert_eq!(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.secret_access_key.expose(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert!(c.session_token.expose().starts_with("AQoEXAMPLEH4"));
        assert_eq!(c.expiration, datetime!(2026-11-23 00:58:15.619057 UTC));
        assert_eq!(c.start_time, START);
    }

    #[test]
    fn expiration_fraction_digits() {
        for (s, want) in [
            ("2026-11-23T00:58:15Z", datetime!(2026-11-23 00:58:15 UTC)),
            (
                "2026-11-23T00:58:15.6Z",
                datetime!(2026-11-23 00:58:15.6 UTC),
            ),
            (
                "2026-11-23T00:58:15.123Z",
                datetime!(2026-11-23 00:58:15.123 UTC),
            ),
            (
                "2026-11-23T00:58:15.123456789Z",
                datetime!(2026-11-23 00:58:15.123456789 UTC),
            ),
            (
                "2026-11-23T01:58:15+01:00",
                datetime!(2026-11-23 00:58:15 UTC),
            ),
        ] {
            assert_eq!(parse_time(s), Some(want), "{s}");
            assert_eq!(parse_time(s).unwrap().offset(), UtcOffset::UTC);
        }
        for bad in ["2026-11-23", "2026-11-23T00:58:15", "tomorrow", ""] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    const AR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>DevUser123</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/John</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:John</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken><![CDATA[IQoJb3JpZ2luX2VjEOz]]></SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>"#;

    #[test]
    fn assume_role() {
        let r = parse_assume_role(AR.as_bytes(), START).unwrap();
        assert_eq!(
            r.assumed_role_arn,
            "arn:aws:sts::123456789012:assumed-role/demo/John"
        );
        assert_eq!(r.assumed_role_id, "ARO123EXAMPLE123:John");
        assert_eq!(r.packed_policy_size, Some(6));
        assert_eq!(r.credentials.session_token.expose(), "IQoJb3JpZ2luX2VjEOz");
        assert_eq!(r.credentials.expiration, datetime!(2019-11-09 13:34:41 UTC));
        // Without a namespace and without PackedPolicySize (as moto may send).
        let bare = AR
            .replace(r#" xmlns="https://sts.amazonaws.com/doc/2011-06-15/""#, "")
            .replace("<PackedPolicySize>6</PackedPolicySize>", "");
        assert_eq!(
            parse_assume_role(bare.as_bytes(), START)
                .unwrap()
                .packed_policy_size,
            None
        );
        // A prefixed namespace.
        let prefixed = r#"<s:AssumeRoleResponse xmlns:s="https://sts.amazonaws.com/doc/2011-06-15/"><s:AssumeRoleResult>
<s:Credentials><s:AccessKeyId>ASIA1</s:AccessKeyId><s:SecretAccessKey>k</s:SecretAccessKey>
<s:SessionToken>t</s:SessionToken><s:Expiration>2019-11-09T13:34:41.1Z</s:Expiration></s:Credentials>
<s:AssumedRoleUser><s:AssumedRoleId>AROA1:x</s:AssumedRoleId><s:Arn>arn:aws:sts::1:assumed-role/r/x</s:Arn></s:AssumedRoleUser>
</s:AssumeRoleResult></s:AssumeRoleResponse>"#;
        assert_eq!(
            parse_assume_role(prefixed.as_bytes(), START)
                .unwrap()
                .assumed_role_id,
            "AROA1:x"
        );
    }

    #[test]
    fn caller_identity() {
        let xml = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
   <Arn>arn:aws:iam::123456789012:user/ops/Alice</Arn>
    <UserId>AIDACKCEVSQ6C2EXAMPLE</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>"#;
        let id = parse_caller_identity(xml.as_bytes()).unwrap();
        assert_eq!(id.account, "123456789012");
        assert_eq!(id.user_id, "AIDACKCEVSQ6C2EXAMPLE");
        assert_eq!(id.user_name(), Some("Alice"));
    }

    #[test]
    fn list_mfa_devices() {
        let xml = r#"<ListMFADevicesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ListMFADevicesResult>
    <IsTruncated>true</IsTruncated>
    <Marker>page2</Marker>
    <MFADevices>
      <member>
        <UserName>Bob</UserName>
        <SerialNumber>arn:aws:iam::123456789012:mfa/Bob</SerialNumber>
        <EnableDate>2026-01-01T00:00:00.123456Z</EnableDate>
      </member>
      <member>
        <SerialNumber>GAHT12345678</SerialNumber>
        <UserName>Bob</UserName>
      </member>
    </MFADevices>
  </ListMFADevicesResult>
  <ResponseMetadata><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId></ResponseMetadata>
</ListMFADevicesResponse>"#;
        let page = parse_list_mfa_devices(xml.as_bytes()).unwrap();
        assert_eq!(page.next_marker.as_deref(), Some("page2"));
        let serials: Vec<_> = page
            .devices
            .iter()
            .map(|d| d.serial_number.as_str())
            .collect();
        assert_eq!(
            serials,
            ["arn:aws:iam::123456789012:mfa/Bob", "GAHT12345678"]
        );
        assert_eq!(
            page.devices[0].enable_date,
            Some(datetime!(2026-01-01 00:00:00.123456 UTC))
        );
        assert_eq!(page.devices[1].user_name.as_deref(), Some("Bob"));
        let last = xml.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(
            parse_list_mfa_devices(last.as_bytes()).unwrap().next_marker,
            None
        );
        let empty = r#"<ListMFADevicesResponse><ListMFADevicesResult><MFADevices/><IsTruncated>false</IsTruncated></ListMFADevicesResult></ListMFADevicesResponse>"#;
        assert!(parse_list_mfa_devices(empty.as_bytes())
            .unwrap()
            .devices
            .is_empty());
    }

    #[test]
    fn malformed_success_bodies_are_response_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"<html><body>oops</body></html>",
            b"<GetSessionTokenResponse><GetSessionTokenResult/></GetSessionTokenResponse>",
            b"<GetSessionTokenResponse><GetSessionTokenResult><Credentials><AccessKeyId>A</AccessKeyId></Credentials></GetSessionTokenResult></GetSessionTokenResponse>",
            b"<GetSessionTokenResponse",
            b"\xff\xfe",
            b"<!DOCTYPE x [<!ENTITY a 'b'>]><GetSessionTokenResponse/>",
        ];
        for body in cases {
            let e = parse_get_session_token(body, START).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Response {
                        action: "GetSessionToken",
                        ..
                    }
                ),
                "{e}"
            );
        }
        let bad_exp = GST.replace("2026-11-23T00:58:15.619057Z", "soon");
        let e = parse_get_session_token(bad_exp.as_bytes(), START).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GetSessionToken: unexpected response: Expiration is not an RFC 3339 time (request id 58c5dbae-abef-11e0-8cfe-09039844ac7d)"
        );
        // The missing-field message names the field, never a secret value.
        let no_token = GST
            .replace("<SessionToken>", "<X>")
            .replace("</SessionToken>", "</X>");
        let e = parse_get_session_token(no_token.as_bytes(), START)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing <SessionToken>") && !e.contains("wJalr"),
            "{e}"
        );
    }

    #[test]
    fn attribute_count_refused() {
        let attrs = |n: usize| -> String { (0..n).map(|i| format!(" a{i}='='")).collect() };
        let doc = |n: usize| {
            format!(
                "<GetCallerIdentityResponse{}><GetCallerIdentityResult><Account>1</Account>\
                 <Arn>a</Arn><UserId>u</UserId></GetCallerIdentityResult></GetCallerIdentityResponse>",
                attrs(n)
            )
        };
        assert!(parse_caller_identity(doc(MAX_XML_ATTRIBUTES).as_bytes()).is_ok());
        let e = parse_caller_identity(doc(MAX_XML_ATTRIBUTES + 1).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("more than 32 attributes"), "{e}");
        // `=` inside quoted values, text, comments and end tags is no attribute.
        let text = format!(
            "<GetCallerIdentityResponse a='{0}' b=\"{0}\"><!-- {0} --><GetCallerIdentityResult>\
             <Account>{0}</Account><Arn>a</Arn><UserId>u</UserId></GetCallerIdentityResult>\
             </GetCallerIdentityResponse>",
            "=".repeat(100)
        );
        assert!(parse_caller_identity(text.as_bytes()).is_ok());
    }

    #[test]
    fn nesting_scan() {
        assert!(!nesting_exceeds(GST.as_bytes(), 4));
        assert!(nesting_exceeds(GST.as_bytes(), 3));
        let tricky =
            r#"<a x='>' y="<"><!-- <b><c><d> --><![CDATA[<e><f>]]><?pi <g> ?><h/><i></i></a>"#;
        assert!(!nesting_exceeds(tricky.as_bytes(), 2));
        assert!(nesting_exceeds(tricky.as_bytes(), 1));
        assert!(nesting_exceeds(b"<a><b><c", 2));
        assert!(!nesting_exceeds(b"<", 0));
    }

    #[test]
    fn deep_nesting_and_oversize_refused() {
        let deep = format!(
            "<GetCallerIdentityResponse>{}{}</GetCallerIdentityResponse>",
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        let e = parse_caller_identity(deep.as_bytes()).unwrap_err();
        assert!(matches!(e, Error::Response { .. }), "{e}");
        let big = vec![b' '; MAX_RESPONSE_BYTES as usize + 1];
        let e = parse_caller_identity(&big).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        // An error body nested deeply degrades to the status code.
        let e = parse_error("AssumeRole", 400, deep.as_bytes(), None);
        assert_eq!(e.code, "HttpStatus400");
    }

    #[test]
    fn error_layout_action_errors() {
        let xml = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::123456789012:user/alice is not authorized to perform: sts:AssumeRole</Message>
  </Error>
  <RequestId>4f6a2b7c-1d2e-4c5b-9a8f-0123456789ab</RequestId>
</ErrorResponse>"#;
        let e = parse_error("AssumeRole", 403, xml.as_bytes(), Some("header-id"));
        assert_eq!(e.code, "AccessDenied");
        assert_eq!(e.status, 403);
        assert!(e
            .message
            .starts_with("User: arn:aws:iam::123456789012:user/alice is not"));
        assert_eq!(
            e.request_id.as_deref(),
            Some("4f6a2b7c-1d2e-4c5b-9a8f-0123456789ab")
        );
    }

    #[test]
    fn error_layout_auth_errors() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse>
  <Errors>
    <Error>
      <Code>SignatureDoesNotMatch</Code>
      <Message>The request signature we calculated does not match the signature you provided.</Message>
      <Type>Sender</Type>
    </Error>
  </Errors>
</ErrorResponse>"#;
        let e = parse_error("GetCallerIdentity", 403, xml.as_bytes(), Some("hdr-1"));
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert_eq!(e.request_id.as_deref(), Some("hdr-1"));
        let e = parse_error("GetCallerIdentity", 403, xml.as_bytes(), None);
        assert_eq!(e.request_id, None);
        // EC2-style `Response/Errors/Error` with `RequestID`.
        let ec2 = "<Response><Errors><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></Errors><RequestID>r-9</RequestID></Response>";
        let e = parse_error("AssumeRole", 400, ec2.as_bytes(), None);
        assert_eq!(
            (e.code.as_str(), e.request_id.as_deref()),
            ("Throttling", Some("r-9"))
        );
    }

    #[test]
    fn error_non_xml_bodies() {
        let html = b"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>\n";
        let e = parse_error("AssumeRole", 500, html, Some("rid-5"));
        assert_eq!(e.code, "HttpStatus500");
        assert_eq!(
            e.message,
            format!(
                "non-XML response ({} bytes): 500 Internal Server Error",
                html.len()
            )
        );
        assert_eq!(e.request_id.as_deref(), Some("rid-5"));
        let e = parse_error("AssumeRole", 502, b"", None);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("HttpStatus502", "empty response body")
        );
        let e = parse_error("AssumeRole", 503, b"Service Unavailable \x00\xff", None);
        assert_eq!(e.code, "HttpStatus503");
        assert!(e.message.contains("not an AWS error document"));
        // An `Error` element without a `Code` is not an AWS error.
        let e = parse_error(
            "AssumeRole",
            400,
            b"<Error><Message>m</Message></Error>",
            None,
        );
        assert_eq!(e.code, "HttpStatus400");
    }
}

/// Hostile input: no parser panics, overflows its stack or runs for long on
/// any body (the parsers are crate-private, so they are tested here).
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2026-11-22 12:58:15 UTC);

    /// Every parser, on one body. Only the absence of a panic is checked;
    /// success bodies that fail must fail as `Error::Response`.
    fn parse_all(body: &[u8]) {
        for r in [
            parse_get_session_token(body, START).map(drop),
            parse_assume_role(body, START).map(drop),
            parse_caller_identity(body).map(drop),
            parse_list_mfa_devices(body).map(drop),
        ] {
            if let Err(e) = r {
                assert!(matches!(e, Error::Response { .. }), "{e:?}");
            }
        }
        for status in [400, 403, 500] {
            let e = parse_error("AssumeRole", status, body, Some("hdr"));
            assert!(!e.code.is_empty());
            assert!(e.code.chars().count() <= 129 && e.message.chars().count() <= 1025);
        }
        let _ = nesting_exceeds(body, MAX_XML_DEPTH);
    }

    /// Pieces that XML parsers (and the nesting scan) treat specially.
    fn xml_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("<".to_owned()),
            Just(">".to_owned()),
            Just("</".to_owned()),
            Just("/>".to_owned()),
            Just("<!--".to_owned()),
            Just("-->".to_owned()),
            Just("<![CDATA[".to_owned()),
            Just("]]>".to_owned()),
            Just("<?xml version=\"1.0\"?>".to_owned()),
            Just("<!DOCTYPE a [<!ENTITY e \"x\">]>".to_owned()),
            Just("&amp;".to_owned()),
            Just("&e;".to_owned()),
            Just("&#x0;".to_owned()),
            Just("\"".to_owned()),
            Just("'".to_owned()),
            Just(" xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"".to_owned()),
            Just(" xmlns:s=\"x\"".to_owned()),
            prop::sample::select(vec![
                "GetSessionTokenResponse",
                "GetSessionTokenResult",
                "AssumeRoleResponse",
                "AssumeRoleResult",
                "GetCallerIdentityResponse",
                "GetCallerIdentityResult",
                "ListMFADevicesResponse",
                "ListMFADevicesResult",
                "MFADevices",
                "member",
                "Credentials",
                "AccessKeyId",
                "SecretAccessKey",
                "SessionToken",
                "Expiration",
                "AssumedRoleUser",
                "Arn",
                "AssumedRoleId",
                "PackedPolicySize",
                "Account",
                "UserId",
                "SerialNumber",
                "EnableDate",
                "IsTruncated",
                "Marker",
                "ResponseMetadata",
                "RequestId",
                "ErrorResponse",
                "Errors",
                "Error",
                "Code",
                "Message",
                "s:Error",
            ])
            .prop_map(str::to_owned),
            "[ -~]{0,12}",
            Just("2026-11-23T00:58:15.619057Z".to_owned()),
            Just("9999-12-31T23:59:60.999999999+23:59".to_owned()),
            Just("4294967296".to_owned()),
            Just("true".to_owned()),
        ]
    }

    /// A well-formed document of the given element names, nested by the
    /// shape `depth` (each name opens inside the previous one when the bit
    /// is set, else beside it).
    fn tree() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            "[A-Za-z0-9/+=]{0,20}".prop_map(|t| t),
            Just("2026-11-23T00:58:15Z".to_owned()),
        ];
        let name = prop::sample::select(vec![
            "Credentials",
            "AccessKeyId",
            "SecretAccessKey",
            "SessionToken",
            "Expiration",
            "AssumedRoleUser",
            "Arn",
            "AssumedRoleId",
            "PackedPolicySize",
            "Account",
            "UserId",
            "MFADevices",
            "member",
            "SerialNumber",
            "EnableDate",
            "IsTruncated",
            "Marker",
            "Error",
            "Code",
            "Message",
            "RequestId",
        ]);
        leaf.prop_recursive(6, 64, 6, move |inner| {
            (name.clone(), prop::collection::vec(inner, 0..6))
                .prop_map(|(n, kids)| format!("<{n}>{}</{n}>", kids.concat()))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
            parse_all(&body);
        }

        #[test]
        fn xml_like_soup_never_panics(pieces in prop::collection::vec(xml_piece(), 0..64)) {
            parse_all(pieces.concat().as_bytes());
        }

        #[test]
        fn generated_documents_never_panic(
            root in prop::sample::select(vec![
                "GetSessionToken", "AssumeRole", "GetCallerIdentity", "ListMFADevices",
            ]),
            body in prop::collection::vec(tree(), 0..4),
            rid in prop::option::of("[a-f0-9-]{0,36}"),
        ) {
            let meta = rid
                .map(|r| format!("<ResponseMetadata><RequestId>{r}</RequestId></ResponseMetadata>"))
                .unwrap_or_default();
            let doc = format!(
                "<{root}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <{root}Result>{}</{root}Result>{meta}</{root}Response>",
                body.concat()
            );
            parse_all(doc.as_bytes());
            let err = format!("<ErrorResponse><Error>{}</Error>{meta}</ErrorResponse>", body.concat());
            parse_all(err.as_bytes());
        }

        #[test]
        fn mutated_real_answers_never_panic(
            which in 0usize..2,
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, xml_piece()), 1..6),
        ) {
            let mut doc = [tests_data::GST, tests_data::AR][which].as_bytes().to_vec();
            for (at, len, piece) in edits {
                let at = at.index(doc.len() + 1);
                let end = (at + len).min(doc.len());
                doc.splice(at..end, piece.into_bytes());
            }
            parse_all(&doc);
        }

        #[test]
        fn nesting_scan_never_under_counts(depth in 0usize..80, self_closing in any::<bool>()) {
            // `depth` real levels (plus an optional self-closing leaf, which
            // is no level) exceed MAX_XML_DEPTH exactly when depth does.
            let leaf = if self_closing { "<x a='>'/>" } else { "" };
            let doc = format!("{}{leaf}{}", "<a>".repeat(depth), "</a>".repeat(depth));
            prop_assert_eq!(nesting_exceeds(doc.as_bytes(), MAX_XML_DEPTH), depth > MAX_XML_DEPTH);
        }
    }

    /// Real answers, for mutation.
    mod tests_data {
        pub(super) const GST: &str = r#"<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetSessionTokenResult><Credentials><SessionToken>AQoEXAMPLEH4aoAH0gNCAPy</SessionToken><SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey><Expiration>2026-11-23T00:58:15.619057Z</Expiration><AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId></Credentials></GetSessionTokenResult><ResponseMetadata><RequestId>58c5dbae</RequestId></ResponseMetadata></GetSessionTokenResponse>"#;
        pub(super) const AR: &str = r#"<?xml version="1.0" encoding="UTF-8"?><AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/John</Arn><AssumedRoleId>ARO123EXAMPLE123:John</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId><SecretAccessKey>wJalrXUtnFEMI</SecretAccessKey><SessionToken><![CDATA[IQoJb3JpZ2luX2VjEOz]]></SessionToken><Expiration>2019-11-09T13:34:41Z</Expiration></Credentials><PackedPolicySize>6</PackedPolicySize></AssumeRoleResult></AssumeRoleResponse>"#;
    }

    /// Bodies at the size cap built to be slow or deep for a parser: each
    /// is refused (or parsed) without a stack overflow. Timing is not
    /// asserted; a quadratic parse shows up as a hung test.
    #[test]
    fn hostile_bodies_at_the_cap() {
        let cap = MAX_RESPONSE_BYTES as usize;
        let wrap = |inner: &str| {
            format!("<GetCallerIdentityResponse><GetCallerIdentityResult>{inner}</GetCallerIdentityResult></GetCallerIdentityResponse>")
        };
        let fill = |unit: &str| unit.repeat((cap - 200) / unit.len());
        let cases = [
            // Deep: 10 000 and 200 000 levels, opened and never closed too.
            wrap(&format!(
                "{}{}",
                "<a>".repeat(10_000),
                "</a>".repeat(10_000)
            )),
            wrap(&"<a>".repeat(200_000)),
            "<a x='".repeat(100_000),
            // Many nodes.
            wrap(&fill("<a/>")),
            wrap(&fill("x<!---->")),
            // Many attributes on one element (duplicate checks are
            // quadratic in some parsers).
            {
                let attrs: String = (0..100_000).map(|i| format!(" a{i}=''")).collect();
                wrap(&format!("<Account{attrs}/>"))
            },
            // Many namespace declarations.
            {
                let attrs: String = (0..60_000).map(|i| format!(" xmlns:n{i}='u'")).collect();
                wrap(&format!("<Account{attrs}/>"))
            },
            // The most attributes allowed, on as many elements as fit.
            {
                let attrs: String = (0..MAX_XML_ATTRIBUTES)
                    .map(|i| format!(" a{i}=''"))
                    .collect();
                wrap(&fill(&format!("<Account{attrs}/>")))
            },
            // Namespace declarations at every level, inherited by many
            // leaves.
            {
                let decls: String = (0..MAX_XML_ATTRIBUTES)
                    .map(|i| format!(" xmlns:n{i}='u{i}'"))
                    .collect();
                let open = format!("<a{decls}>").repeat(MAX_XML_DEPTH - 3);
                let close = "</a>".repeat(MAX_XML_DEPTH - 3);
                let room = cap - 300 - open.len() - close.len();
                wrap(&format!("{open}{}{close}", "<n0:b/>".repeat(room / 7)))
            },
            // Unterminated comment, CDATA, PI at the start.
            format!("<!--{}", "-".repeat(cap - 10)),
            format!("<![CDATA[{}", "]".repeat(cap - 20)),
            format!("<?{}", "?".repeat(cap - 10)),
            // Entity expansion is off (no DTD), but try anyway.
            format!(
                "<!DOCTYPE a [<!ENTITY e \"{}\">]><a>&e;&e;&e;</a>",
                "x".repeat(1000)
            ),
        ];
        for body in &cases {
            assert!(body.len() <= cap, "case of {} bytes", body.len());
            let started = std::time::Instant::now();
            let e = parse_caller_identity(body.as_bytes()).unwrap_err();
            assert!(matches!(e, Error::Response { .. }), "{e:?}");
            let _ = parse_error("GetCallerIdentity", 400, body.as_bytes(), None);
            eprintln!(
                "{:>8} bytes, starts {:?}: {:?} ({e})",
                body.len(),
                &body[..body.len().min(30)],
                started.elapsed()
            );
        }
    }
}
