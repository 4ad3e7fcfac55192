//! The application's MFA code provider, as the session and its refresher
//! call it.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
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

    /// A code for `serial`. May block for as long as the provider does.
    pub(crate) fn code(&self, serial: &str) -> Result<Secret> {
        (self.0)(serial)
    }
}
