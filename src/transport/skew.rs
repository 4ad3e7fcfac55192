//! Clock skew: recognising a request refused for its signing time, and the
//! server's time from the answer's `Date` header.

use time::OffsetDateTime;

use crate::error::ServiceError;

/// True for the errors AWS gives a request signed at the wrong time (the
/// AWS SDKs' list; KMS says `InvalidSignatureException`).
pub(crate) fn is_skew_error(e: &ServiceError) -> bool {
    match e.code.as_str() {
        "RequestExpired"
        | "RequestTimeTooSkewed"
        | "RequestInTheFuture"
        | "InvalidSignatureException" => true,
        "SignatureDoesNotMatch" => {
            let m = e.message.to_ascii_lowercase();
            m.contains("signature expired") || m.contains("not yet current")
        }
        _ => false,
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's preferred
/// form).
pub(crate) fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 784_111_777);
        assert!(parse_http_date("06 Nov 1994").is_none());
        assert!(parse_http_date("").is_none());
    }

    #[test]
    fn skew_errors_are_recognised_by_code_and_message() {
        let e = |code: &str, message: &str| ServiceError {
            action: "AssumeRole",
            status: 403,
            code: code.into(),
            message: message.into(),
            request_id: None,
        };
        assert!(is_skew_error(&e("RequestExpired", "")));
        assert!(is_skew_error(&e("InvalidSignatureException", "")));
        assert!(is_skew_error(&e(
            "SignatureDoesNotMatch",
            "Signature expired: 20260101T000000Z is now earlier than ..."
        )));
        assert!(is_skew_error(&e(
            "SignatureDoesNotMatch",
            "Signature not yet current: ..."
        )));
        assert!(!is_skew_error(&e(
            "SignatureDoesNotMatch",
            "does not match"
        )));
        assert!(!is_skew_error(&e("AccessDenied", "expired")));
    }
}
