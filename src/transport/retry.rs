//! Retry policy: which failures are worth another attempt, and how long to
//! wait before it (exponential backoff with full jitter).
//!
//! Each failure is classified once, where it is created (an HTTP answer in
//! [`service_retryable`], a transport failure in [`io_retryable`]); the call
//! loop only reads the verdict.

use std::time::Duration;

use crate::error::ServiceError;

const BACKOFF_BASE_MS: u64 = 100;
const BACKOFF_CAP_MS: u64 = 2_000;

/// AWS error codes that mean "slow down" or "try again" (botocore's
/// throttling and transient lists, plus STS's `IDPCommunicationError`).
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
];

/// Throttling and transient codes, HTTP 429 and 5xx.
pub(crate) fn service_retryable(e: &ServiceError) -> bool {
    RETRYABLE_CODES.contains(&e.code.as_str()) || e.status == 429 || (500..600).contains(&e.status)
}

/// Refused, reset or timed-out connections; not a refused certificate
/// (it would be refused again) nor a request ureq could not form.
pub(crate) fn io_retryable(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => true,
        _ => false,
    }
}

/// The wait before attempt `failed + 1`: full jitter, uniform in
/// `0..=min(2 s, 100 ms * 2^(failed-1))`.
pub(crate) fn backoff(failed: u32) -> Duration {
    let ceiling = BACKOFF_BASE_MS
        .saturating_mul(1u64 << failed.saturating_sub(1).min(20))
        .min(BACKOFF_CAP_MS);
    Duration::from_millis(crate::rand::below(ceiling + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(status: u16, code: &str) -> ServiceError {
        ServiceError {
            action: "AssumeRole",
            status,
            code: code.into(),
            message: String::new(),
            request_id: None,
        }
    }

    #[test]
    fn service_classification() {
        for (status, code) in [
            (400, "Throttling"),
            (400, "ThrottlingException"),
            (503, "RequestLimitExceeded"),
            (400, "TooManyRequestsException"),
            (400, "IDPCommunicationError"),
            (400, "LimitExceededException"),
            (500, "HttpStatus500"),
            (503, "ServiceUnavailable"),
            (429, "HttpStatus429"),
        ] {
            assert!(service_retryable(&svc(status, code)), "{code}");
        }
        for (status, code) in [
            (403, "AccessDenied"),
            (400, "ValidationError"),
            (400, "ExpiredToken"),
            (403, "InvalidClientTokenId"),
            (403, "SignatureDoesNotMatch"),
            (404, "HttpStatus404"),
        ] {
            assert!(!service_retryable(&svc(status, code)), "{code}");
        }
    }

    #[test]
    fn io_classification() {
        use std::io::{Error as IoError, ErrorKind};
        assert!(io_retryable(&ureq::Error::ConnectionFailed));
        assert!(io_retryable(&ureq::Error::Io(IoError::from(
            ErrorKind::ConnectionReset
        ))));
        assert!(io_retryable(&ureq::Error::Timeout(
            ureq::Timeout::RecvResponse
        )));
        assert!(!io_retryable(&ureq::Error::Io(IoError::from(
            ErrorKind::InvalidData
        ))));
        assert!(!io_retryable(&ureq::Error::BadUri("x".into())));
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        for failed in 1..40 {
            let ceiling = (100u64 << (failed - 1).min(20)).min(2_000);
            for _ in 0..20 {
                assert!(backoff(failed).as_millis() as u64 <= ceiling);
            }
        }
    }
}
