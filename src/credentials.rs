//! The credentials value: keys, secret, session token, start and expiration.

use crate::secret::Secret;

/// Long-lived or temporary access keys used to sign a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id (`AKIA...` or `ASIA...`); not a secret.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token, for temporary keys.
    pub session_token: Option<Secret>,
}
