//! A string that must not be printed: secret access keys, session tokens,
//! MFA codes.

use std::fmt;

use crate::words::REDACTED;

/// A secret string. `Debug` and `Display` print `**redacted**`; reading the
/// value takes an explicit call to [`Secret::expose`].
///
/// ```
/// use stslib::Secret;
/// let s = Secret::new("wJalrXUtnFEMI/K7MDENG");
/// assert_eq!(format!("{s} {s:?}"), "**redacted** **redacted**");
/// assert_eq!(s.expose(), "wJalrXUtnFEMI/K7MDENG");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Every call site is a place a secret leaves
    /// the type: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}
