//! The crate's one error type.
//!
//! Every variant carries owned context (file and line, profile and key, STS
//! action, HTTP status, AWS error code, request id) and never a secret.
//!
//! An error prints its whole story once: `Display` embeds the inner error's
//! text and `source()` returns `None`, as ureq's errors do, so a reporter
//! that walks the source chain does not print the cause twice. (The one
//! exception, [`Error::InvalidToken`], must read as python-kmsauth's message
//! word for word: its `Display` leaves the cause out and `source()` returns
//! it.) The inner
//! error itself stays reachable as a field ([`Error::Io`]'s `source`,
//! [`Error::Transport`]'s `source`, [`Error::Service`]'s [`ServiceError`]).

use std::fmt;
use std::path::PathBuf;

/// `Result<T, stslib::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in stslib.
///
/// Match on the variant for the kind of failure; the `Display` text is one
/// line meant for people and never contains a secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    Io {
        /// The file (or directory) involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A profile file is not valid syntax.
    Parse {
        /// The file; `<string>` for text loaded from memory.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The named profile is in neither file.
    ProfileNotFound {
        /// The profile asked for.
        profile: String,
        /// The profiles that do exist, sorted.
        available: Vec<String>,
    },
    /// A profile exists but a key in it is missing or invalid.
    InvalidProfile {
        /// The profile.
        profile: String,
        /// The key at fault, when one is.
        key: Option<String>,
        /// What is wrong (may name the file and line).
        message: String,
    },
    /// `source_profile` references form a loop.
    ProfileLoop {
        /// The profiles visited, in order, ending with the repeated one.
        chain: Vec<String>,
    },
    /// The profile uses a credential kind this crate does not support
    /// (web identity, SSO, `credential_source`, `credential_process`).
    Unsupported {
        /// The profile.
        profile: String,
        /// What it uses.
        feature: String,
    },
    /// An argument or setting was rejected before any network call (and
    /// only that: see [`Signing`](Error::Signing) and
    /// [`CacheFormat`](Error::CacheFormat) for the other local failures).
    InvalidInput {
        /// The parameter (`DurationSeconds`, `RoleSessionName`, ...).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An endpoint would send secrets in clear text (plain `http://` to a
    /// host that is not loopback), or is not a valid URL.
    InvalidEndpoint {
        /// The endpoint as given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A request could not be signed (SigV4) with the keys given.
    Signing {
        /// The API action (`AssumeRole`, ...).
        action: &'static str,
        /// What went wrong (never a key).
        message: String,
    },
    /// Credentials could not be written in the disk cache's entry format.
    CacheFormat {
        /// The entry field at fault.
        field: &'static str,
        /// What is wrong (never the value).
        message: String,
    },
    /// STS (or IAM) answered with an error.
    Service(Box<ServiceError>),
    /// The request did not get an answer: connection refused or reset,
    /// timeout, TLS failure.
    Transport {
        /// The API action (`AssumeRole`, ...).
        action: &'static str,
        /// What happened.
        message: String,
        /// The underlying error.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The service answered 2xx but the body is not the expected shape.
    Response {
        /// The API action.
        action: &'static str,
        /// What is wrong with the body.
        message: String,
        /// The request id, when the body or headers carried one.
        request_id: Option<String>,
    },
    /// The refresher thread could not be started, or it panicked (the
    /// panic message is kept; see [`Session::halt`](crate::Session::halt)).
    Thread {
        /// What happened.
        message: String,
    },
    /// A kmsauth token was refused. `Display` is python-kmsauth's
    /// `TokenValidationError` message, word for word; the KMS error behind
    /// a `General error.` or a connection failure is the `source()`.
    InvalidToken {
        /// Which check refused it.
        reason: TokenRejection,
        /// The error that caused it, when one did.
        source: Option<Box<Error>>,
    },
    /// The application's MFA code provider panicked. A refresher that meets
    /// this stops asking the provider.
    MfaProvider {
        /// The panic message.
        message: String,
    },
    /// No valid credentials: they expired, or were never obtained.
    NoCredentials {
        /// The profile (or session) concerned.
        profile: String,
        /// Why there are none.
        message: String,
    },
}

/// An error answer from STS or IAM: HTTP status, AWS error code, message and
/// request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// The API action (`GetSessionToken`, `AssumeRole`, ...).
    pub action: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// The AWS error code (`AccessDenied`, `ExpiredToken`, ...); for a body
    /// that is not an AWS error document, a code derived from the status
    /// such as `HttpStatus500`.
    pub code: String,
    /// The message STS gave.
    pub message: String,
    /// The request id from the body or the `x-amzn-requestid` header.
    pub request_id: Option<String>,
}

impl Error {
    /// The AWS error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Service(e) => Some(&e.code),
            _ => None,
        }
    }

    /// The service error, when the service answered with one.
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self {
            Error::Service(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn invalid_input(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_profile(
        profile: impl Into<String>,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Error::InvalidProfile {
            profile: profile.into(),
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// How many names a message lists before "and N more".
pub(crate) const MAX_LISTED: usize = 20;
/// How many characters of an input value a message echoes.
pub(crate) const MAX_ECHOED: usize = 120;

/// `value` as echoed in a message: at most [`MAX_ECHOED`] characters, then
/// "... (N bytes)" saying how long it really was.
///
/// Messages stay one readable line whatever the input (a 5 MB `role_arn`).
pub(crate) fn cap(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(MAX_ECHOED) {
        None => std::borrow::Cow::Borrowed(value),
        Some((end, _)) => {
            std::borrow::Cow::Owned(format!("{}... ({} bytes)", &value[..end], value.len()))
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            Error::Parse {
                file,
                line,
                message,
            } => write!(f, "{}:{}: {}", file.display(), line, message),
            Error::ProfileNotFound { profile, available } => {
                write!(f, "profile `{}` not found", cap(profile))?;
                if available.is_empty() {
                    write!(f, "; no profiles are defined")
                } else {
                    let shown = available.len().min(MAX_LISTED);
                    write!(f, "; available profiles: {}", available[..shown].join(", "))?;
                    if available.len() > shown {
                        write!(f, " and {} more", available.len() - shown)?;
                    }
                    Ok(())
                }
            }
            Error::InvalidProfile {
                profile,
                key: Some(key),
                message,
            } => write!(f, "profile `{profile}`, key `{key}`: {message}"),
            Error::InvalidProfile {
                profile,
                key: None,
                message,
            } => write!(f, "profile `{profile}`: {message}"),
            Error::ProfileLoop { chain } => {
                write!(f, "source_profile loop: {}", chain.join(" -> "))
            }
            Error::Unsupported { profile, feature } => write!(
                f,
                "profile `{profile}` uses {feature}, which stslib does not support"
            ),
            Error::InvalidInput { field, message } => write!(f, "invalid {field}: {message}"),
            Error::Signing { action, message } => {
                write!(f, "{action}: cannot sign the request: {message}")
            }
            Error::CacheFormat { field, message } => {
                write!(f, "cache entry field `{field}`: {message}")
            }
            Error::InvalidEndpoint { url, message } => {
                write!(f, "endpoint `{url}` refused: {message}")
            }
            Error::Service(e) => fmt::Display::fmt(e, f),
            Error::Transport {
                action, message, ..
            } => write!(f, "{action}: request failed: {message}"),
            Error::Response {
                action,
                message,
                request_id,
            } => {
                write!(f, "{action}: unexpected response: {message}")?;
                if let Some(id) = request_id {
                    write!(f, " (request id {id})")?;
                }
                Ok(())
            }
            Error::Thread { message } => write!(f, "thread: {message}"),
            Error::InvalidToken { reason, .. } => fmt::Display::fmt(reason, f),
            Error::MfaProvider { message } => write!(f, "the MFA provider panicked: {message}"),
            Error::NoCredentials { profile, message } => {
                write!(f, "no valid credentials for `{profile}`: {message}")
            }
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} (HTTP {}): {}",
            self.action, self.code, self.status, self.message
        )?;
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

/// `source()` is `None` where `Display` already tells the cause (see the
/// module docs); only [`Error::InvalidToken`], whose text is
/// python-kmsauth's word for word, hands its cause over as the source.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidToken {
                source: Some(s), ..
            } => Some(&**s),
            _ => None,
        }
    }
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        Error::Service(Box::new(e))
    }
}

/// Why a token was refused. `Display` prints python-kmsauth's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenRejection {
    /// The username is neither `from` nor `version/user_type/from` with a
    /// numeric version.
    UnsupportedUsernameFormat,
    /// The version is outside the validator's range.
    UnacceptableTokenVersion,
    /// The user type is neither `service` nor `user`.
    UnsupportedUserType,
    /// The key that decrypted is not in the allow-list of the user type.
    WrongKey,
    /// KMS could not be reached.
    ConnectionFailure,
    /// Anything else: not base64, KMS refused the Decrypt (wrong context,
    /// tampered token, no permission), the plaintext is not JSON.
    GeneralError,
    /// The plaintext has no `not_before`/`not_after` in the token format.
    MissingValidity,
    /// `not_after - not_before` exceeds the maximum lifetime.
    LifetimeExceeded,
    /// Now is outside `[not_before, not_after]`.
    InvalidTimeValidity,
}

impl TokenRejection {
    /// python-kmsauth's message, e.g. `Authentication error. General error.`
    pub fn message(self) -> &'static str {
        match self {
            TokenRejection::UnsupportedUsernameFormat => "Unsupported username format.",
            TokenRejection::UnacceptableTokenVersion => "Unacceptable token version.",
            TokenRejection::UnsupportedUserType => "Authentication error. Unsupported user_type.",
            TokenRejection::WrongKey => "Authentication error (wrong KMS key).",
            TokenRejection::ConnectionFailure => {
                "Authentication error. Failure connecting to AWS endpoint."
            }
            TokenRejection::GeneralError => "Authentication error. General error.",
            TokenRejection::MissingValidity => "Authentication error. Missing validity.",
            TokenRejection::LifetimeExceeded => "Authentication error. Token lifetime exceeded.",
            TokenRejection::InvalidTimeValidity => {
                "Authentication error. Invalid time validity for token."
            }
        }
    }
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert!(
            std::mem::size_of::<Error>() <= 80,
            "Error grew to {} bytes; box the large variant",
            std::mem::size_of::<Error>()
        );
    }

    /// Display plus every source, as a chain-walking reporter prints it.
    fn report(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }

    #[test]
    fn a_cause_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no entry for you");
        let cases = [
            Error::Io {
                path: "/x/config".into(),
                source: io(),
            },
            Error::Transport {
                action: "AssumeRole",
                message: "I/O error: no entry for you".into(),
                source: Some(Box::new(io())),
            },
            Error::from(ServiceError {
                action: "AssumeRole",
                status: 403,
                code: "AccessDenied".into(),
                message: "no entry for you".into(),
                request_id: None,
            }),
        ];
        for e in cases {
            let text = report(&e);
            assert_eq!(text.matches("no entry for you").count(), 1, "{text}");
        }
    }

    #[test]
    fn display_names_context() {
        let e = Error::from(ServiceError {
            action: "AssumeRole",
            status: 403,
            code: "AccessDenied".into(),
            message: "not allowed".into(),
            request_id: Some("req-1".into()),
        });
        assert_eq!(
            e.to_string(),
            "AssumeRole failed: AccessDenied (HTTP 403): not allowed (request id req-1)"
        );
        assert_eq!(e.code(), Some("AccessDenied"));

        let e = Error::ProfileNotFound {
            profile: "prod".into(),
            available: vec!["default".into(), "dev".into()],
        };
        assert_eq!(
            e.to_string(),
            "profile `prod` not found; available profiles: default, dev"
        );
    }
}
