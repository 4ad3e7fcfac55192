//! The emulator's HTTP/1.1 layer: a pure request parser and the response
//! value the connection loop writes.
//!
//! The parser takes the bytes received so far and says "need more", "here is
//! a complete request (and how many bytes it used)" or "this is not a request
//! we accept". It does no I/O, so it is unit-tested directly, including the
//! hostile cases (bad request lines, oversized heads, chunked bodies).

/// Largest request head (request line + headers) accepted.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
pub(crate) const MAX_BODY: usize = 256 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 100;

/// One parsed HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    /// The request target as sent (`/`, `/?a=b`).
    pub target: String,
    /// True for `HTTP/1.0`.
    pub http10: bool,
    /// Header names as sent; look them up with [`Request::header`].
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the headers named `name` (case-insensitive).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after answering this request.
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.header_all("connection")
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.http10 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// More bytes are needed. `expect_continue` is true once the head is
    /// complete and asked for `100 Continue`.
    Incomplete { expect_continue: bool },
    /// A whole request, which used the first `len` bytes.
    Complete(Request, usize),
}

/// Why a request is refused at the HTTP level. The connection is closed
/// after the error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpError {
    /// Malformed request line or header.
    BadRequest(&'static str),
    /// Head larger than [`MAX_HEAD`] or too many headers.
    HeadTooLarge,
    /// Body larger than [`MAX_BODY`].
    BodyTooLarge,
    /// `Transfer-Encoding` (chunked bodies) is not supported.
    NotImplemented,
    /// Not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

impl HttpError {
    /// Status code and reason for the answer.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HttpError::BadRequest(why) => (400, why),
            HttpError::HeadTooLarge => (431, "request head too large"),
            HttpError::BodyTooLarge => (413, "request body too large"),
            HttpError::NotImplemented => (501, "transfer-encoding is not supported"),
            HttpError::VersionNotSupported => (505, "HTTP version not supported"),
        }
    }
}

/// Parses the bytes received so far on a connection.
pub(crate) fn parse_request(buf: &[u8]) -> Result<Parsed, HttpError> {
    // RFC 9112 2.2: ignore empty lines before the request line.
    let mut start = 0;
    while buf[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let buf_from = &buf[start..];
    let Some(head_end) = find(buf_from, b"\r\n\r\n") else {
        if buf_from.len() > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        // A lone '\n' line ending or a NUL byte will never become valid.
        if buf_from.contains(&0) {
            return Err(HttpError::BadRequest("NUL byte in request head"));
        }
        return Ok(Parsed::Incomplete {
            expect_continue: false,
        });
    };
    if head_end > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&buf_from[..head_end])
        .map_err(|_| HttpError::BadRequest("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let (method, target, http10) = parse_request_line(request_line)?;

    let mut headers = Vec::new();
    for line in lines {
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::HeadTooLarge);
        }
        headers.push(parse_header_line(line)?);
    }
    let mut request = Request {
        method,
        target,
        http10,
        headers,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        return Err(HttpError::NotImplemented);
    }
    let mut length: Option<usize> = None;
    for value in request.header_all("content-length") {
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadRequest("invalid content-length"));
        }
        let n = if value.len() > 9 {
            usize::MAX
        } else {
            value.parse().unwrap_or(usize::MAX)
        };
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::BadRequest("conflicting content-length headers"));
        }
        length = Some(n);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY {
        return Err(HttpError::BodyTooLarge);
    }
    let body_start = start + head_end + 4;
    if buf.len() < body_start + length {
        let expect_continue = request
            .header("expect")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
        return Ok(Parsed::Incomplete { expect_continue });
    }
    request.body = buf[body_start..body_start + length].to_vec();
    Ok(Parsed::Complete(request, body_start + length))
}

fn parse_request_line(line: &str) -> Result<(String, String, bool), HttpError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(HttpError::BadRequest("malformed method"));
    }
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(HttpError::BadRequest("malformed request target"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => return Err(HttpError::VersionNotSupported),
        _ => return Err(HttpError::BadRequest("malformed HTTP version")),
    };
    Ok((method.to_owned(), target.to_owned(), http10))
}

fn parse_header_line(line: &str) -> Result<(String, String), HttpError> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(HttpError::BadRequest("header line without colon"));
    };
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        // Also refuses obsolete line folding (a line starting with space).
        return Err(HttpError::BadRequest("malformed header name"));
    }
    if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(HttpError::BadRequest("control character in header value"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The reason phrase for the status codes the emulator sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A response ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (`x-amzn-RequestId`, ...). `Date`, `Content-Length`
    /// and `Connection` are added by [`Response::head`].
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The status line and headers, announcing `content_length` bytes.
    pub fn head(&self, date: &str, content_length: usize, close: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nDate: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            content_length,
            date
        );
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> (Request, usize) {
        match parse_request(raw) {
            Ok(Parsed::Complete(r, n)) => (r, n),
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    #[test]
    fn parses_post_with_body_and_leaves_pipelined_bytes() {
        let raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhelloGET";
        let (r, n) = complete(raw);
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/");
        assert!(!r.http10);
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(r.header("HOST"), Some("x"));
        assert_eq!(r.body, b"hello");
        assert_eq!(&raw[n..], b"GET");
        assert!(r.keep_alive());
    }

    #[test]
    fn incomplete_until_body_arrives() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(
            parse_request(raw),
            Ok(Parsed::Incomplete {
                expect_continue: false
            })
        );
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Le"),
            Ok(Parsed::Incomplete {
                expect_continue: false
            })
        );
        assert_eq!(
            parse_request(b""),
            Ok(Parsed::Incomplete {
                expect_continue: false
            })
        );
        let raw = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            parse_request(raw),
            Ok(Parsed::Incomplete {
                expect_continue: true
            })
        );
    }

    #[test]
    fn connection_header_decides_keep_alive() {
        let (r, _) = complete(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(!r.keep_alive());
        let (r, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(r.http10 && !r.keep_alive());
        let (r, _) = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(r.keep_alive());
        let (r, _) = complete(b"\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!(r.method, "GET");
    }

    #[test]
    fn bad_request_lines_are_refused() {
        for raw in [
            &b"GET /\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b" / HTTP/1.1\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(raw), Err(HttpError::BadRequest(_))),
                "{raw:?}"
            );
        }
        assert_eq!(
            parse_request(b"GET / HTTP/2.0\r\n\r\n"),
            Err(HttpError::VersionNotSupported)
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        for raw in [
            &b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: \x01\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"GET / HTTP/1.1\r\nA: b\0\r\n",
        ] {
            assert!(
                matches!(parse_request(raw), Err(HttpError::BadRequest(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn oversized_and_chunked_requests_are_refused() {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        assert_eq!(parse_request(&raw), Err(HttpError::HeadTooLarge));
        raw.extend_from_slice(b": b\r\n\r\n");
        assert_eq!(parse_request(&raw), Err(HttpError::HeadTooLarge));

        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            raw.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&raw), Err(HttpError::HeadTooLarge));

        let raw = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n";
        assert_eq!(parse_request(raw), Err(HttpError::BodyTooLarge));
        let raw = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(parse_request(raw.as_bytes()), Err(HttpError::BodyTooLarge));
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(parse_request(raw), Err(HttpError::NotImplemented));
    }

    #[test]
    fn never_panics_on_prefixes_of_garbage() {
        let samples: [&[u8]; 4] = [
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"\r\n\r\n\r\n",
            b"\xc3\x28 \xa0\xa1\r\n\r\n",
            b"GET / HTTP/1.1\r\nA:\r\n\r\n",
        ];
        for s in samples {
            for n in 0..=s.len() {
                let _ = parse_request(&s[..n]);
            }
        }
    }

    #[test]
    fn response_head_has_length_date_and_close() {
        let r = Response {
            status: 403,
            content_type: "text/xml",
            headers: vec![("x-amzn-RequestId", "abc".into())],
            body: b"<x/>".to_vec(),
        };
        let head = String::from_utf8(r.head("Mon, 01 Jan 2024 00:00:00 GMT", 4, true)).unwrap();
        assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(head.contains("Content-Length: 4\r\n"));
        assert!(head.contains("Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"));
        assert!(head.contains("x-amzn-RequestId: abc\r\n"));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
    }
}
