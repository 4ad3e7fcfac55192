//! The environment seam: where stslib reads environment variables from.
//!
//! Library code never calls `std::env::var` directly; it asks an [`Env`], so
//! tests can hand it a map and never touch the real `$HOME` or `$AWS_*`.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Environment variables, from the process or from a map.
///
/// ```
/// use stslib::Env;
/// let env = Env::from_pairs([("AWS_PROFILE", "dev")]);
/// assert_eq!(env.get("AWS_PROFILE").as_deref(), Some("dev"));
/// assert_eq!(env.get("HOME"), None);
/// assert_eq!(format!("{env:?}"), r#"Env(["AWS_PROFILE"])"#);
/// ```
#[derive(Clone, Default)]
pub struct Env {
    // None: the process environment.
    map: Option<Arc<BTreeMap<String, String>>>,
}

/// Prints the variable names only: an environment may hold secrets
/// (`AWS_SECRET_ACCESS_KEY`, a proxy password).
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.map {
            None => f.write_str("Env(process)"),
            Some(m) => f
                .debug_tuple("Env")
                .field(&m.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl Env {
    /// The real process environment (read at each lookup).
    pub fn process() -> Self {
        Env { map: None }
    }

    /// A fixed set of variables; nothing else is visible.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            map: Some(Arc::new(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            )),
        }
    }

    /// The value of `key`, if set and valid Unicode. An empty value counts
    /// as unset, as the AWS SDKs treat it.
    pub fn get(&self, key: &str) -> Option<String> {
        let v = match &self.map {
            Some(m) => m.get(key).cloned(),
            None => std::env::var(key).ok(),
        };
        v.filter(|v| !v.is_empty())
    }
}
