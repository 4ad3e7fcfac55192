//! The application's MFA code provider, as the session and its refresher
//! call it.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// A source of MFA codes for a device serial, given to
/// [`SessionBuilder::mfa_provider`](crate::SessionBuilder::mfa_provider).
#[derive(Clone)]
pub(crate) struct MfaProvider(Arc<CodeFn>);

type CodeFn = dyn Fn(&str) -> Result<Secret> + Send + Sync;

impl fmt::Debug for MfaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaProvider")
    }
}

impl MfaProvider {
    pub(crate) fn new(f: impl Fn(&str) -> Result<Secret> + Send + Sync + 'static) -> Self {
        MfaProvider(Arc::new(f))
    }

    /// A code for `serial`. May block for as long as the provider does. A
    /// panic inside the provider is caught and returned as
    /// [`Error::MfaProvider`]: it must not take the refresher thread down
    /// (nor the caller's, from `generate_session_token`).
    pub(crate) fn code(&self, serial: &str) -> Result<Secret> {
        panic::catch_unwind(AssertUnwindSafe(|| (self.0)(serial))).unwrap_or_else(|payload| {
            Err(Error::MfaProvider {
                message: panic_message(&*payload),
            })
        })
    }
}

/// The message of a panic payload (`&str` or `String`), else a placeholder.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_provider_is_an_error_not_a_panic() {
        let p = MfaProvider::new(|serial| panic!("no device {serial}"));
        match p.code("arn:aws:iam::1:mfa/x") {
            Err(Error::MfaProvider { message }) => {
                assert!(message == "no device arn:aws:iam::1:mfa/x", "{message}")
            }
            other => panic!("{other:?}"),
        }
        let p = MfaProvider::new(|_| Ok(Secret::new("123456")));
        assert_eq!(p.code("s").unwrap().expose(), "123456");
    }
}
