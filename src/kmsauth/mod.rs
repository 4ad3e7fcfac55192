//! kmsauth: short-lived service-to-service authentication tokens, KMS
//! ciphertexts of a validity window bound by an encryption context to who
//! sent them (`from`, `user_type`) and to whom (`to`); byte-compatible with
//! python-kmsauth 0.6.3 in both directions.
//!
//! - [`TokenGenerator`] makes `(username, token)` pairs (version 1 or 2),
//!   caching the token while python-kmsauth would reuse it; optionally
//!   renewed ahead of time on the session's refresher thread
//!   ([`refresh_in_background`](TokenGeneratorBuilder::refresh_in_background)),
//!   so `token()` does not wait on KMS.
//! - [`TokenValidator`] checks them: username, version range, Decrypt with
//!   the context, the decrypting key against the allow-lists, the validity
//!   window; with an LRU of validated tokens. One validator serves many
//!   threads (`&self`).
//!
//! Both sign their KMS calls with a [`Session`]'s role
//! credentials (kept fresh by its refresher) or with any [`AccessKey`].
//!
//! Each refusal is an [`Error::InvalidToken`] whose `Display` is
//! python-kmsauth's `TokenValidationError` message, word for word; the
//! [`TokenRejection`] says which. The README's kmsauth section lists the
//! deliberate divergences from python-kmsauth's quirks.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use stslib::kmsauth::{TokenGenerator, TokenValidator, UserType};
//! use stslib::kms::KmsClient;
//! use stslib::Session;
//!
//! let session = Session::builder().profile("alice").build()?;
//! session.generate_session_token(Duration::from_secs(12 * 3600), Some("123456"))?;
//! session.generate_credentials(&["svc-a", "confidant"])?;
//!
//! // Sender: one generator per key/from/to/context; `token()` reuses its token
//! // while python-kmsauth would (until 3 minutes before not_after).
//! let generator = TokenGenerator::builder("alias/authnz-production", "svc-a", "confidant-production")
//!     .user_type(UserType::Service)   // v2 username `2/service/svc-a`
//!     .lifetime(Duration::from_secs(10 * 60))
//!     .context("env", "production")   // extra pairs agreed with the validator
//!     .client(KmsClient::builder().region("us-east-1").build()?)
//!     .session_role(&session, "svc-a")
//!     .build()?;
//! let t = generator.token()?;
//! // send t.username and t.token.expose() (e.g. as basic-auth user and password)
//!
//! // Receiver: one validator for every thread (`&self`), LRU of 4096 tokens.
//! let validator = TokenValidator::builder("confidant-production")
//!     .service_key("alias/authnz-production")
//!     .user_key("alias/authnz-users")
//!     .scoped_key("arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab", "sandbox")
//!     .context("env", "production")
//!     .client(KmsClient::builder().region("us-east-1").build()?)
//!     .session_role(&session, "confidant")
//!     .build()?;
//! match validator.validate(&t.username, t.token.expose()) {
//!     Ok(ok) => println!("{} ({}) with {}", ok.from, ok.user_type, ok.key_alias),
//!     // python-kmsauth's message, e.g. "Authentication error. General error."
//!     Err(e @ stslib::Error::InvalidToken { .. }) => eprintln!("refused: {e}"),
//!     Err(e) => return Err(e),
//! }
//! # Ok::<(), stslib::Error>(())
//! ```

mod generator;
mod lru;
mod token;
mod validator;

use std::fmt;

use crate::credentials::AccessKey;
use crate::error::{Error, Result};
use crate::session::{RoleReader, Session};

pub use generator::{Token, TokenGenerator, TokenGeneratorBuilder};
pub use token::UserType;
pub use validator::{TokenValidator, TokenValidatorBuilder, ValidatedToken};

/// Why a token was refused (defined beside [`Error::InvalidToken`], which
/// carries it).
pub use crate::error::TokenRejection;

fn reject(reason: TokenRejection) -> Error {
    Error::InvalidToken {
        reason,
        source: None,
    }
}

fn reject_because(reason: TokenRejection, cause: Error) -> Error {
    Error::InvalidToken {
        reason,
        source: Some(Box::new(cause)),
    }
}

/// The keys KMS calls are signed with.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// Not set yet: `build` refuses.
    Unset,
    /// Fixed keys (long-term or temporary).
    Static(AccessKey),
    /// A session's role credentials, read fresh for each call.
    Role(RoleReader),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Unset => f.write_str("Unset"),
            KeySource::Static(k) => write!(f, "Static({})", k.access_key_id),
            KeySource::Role(r) => write!(f, "Role({})", r.profile()),
        }
    }
}

impl KeySource {
    fn role(session: &Session, profile: &str) -> KeySource {
        KeySource::Role(session.role_reader(profile))
    }

    fn keys(&self) -> Result<AccessKey> {
        match self {
            KeySource::Unset => Err(Error::invalid_input(
                "credentials",
                "no credentials: give an access key or a session role",
            )),
            KeySource::Static(k) => Ok(k.clone()),
            KeySource::Role(r) => {
                r.get()
                    .map(|c| c.access_key())
                    .ok_or_else(|| Error::NoCredentials {
                        profile: r.profile().to_owned(),
                        message: "the session holds no valid credentials for this role".into(),
                    })
            }
        }
    }

    fn check(&self) -> Result<()> {
        match self {
            KeySource::Unset => self.keys().map(drop),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory KMS for the unit tests: ciphertext = key ARN, context
    //! and plaintext joined; Decrypt checks the context exactly.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::kms::{DecryptOutput, EncryptOutput, EncryptionContext, KeyMetadata, Kms};
    use crate::ServiceError;

    pub(crate) const ARN_A: &str = "arn:aws:kms:us-east-1:123456789012:key/aaaaaaaa-0000";
    pub(crate) const ARN_B: &str = "arn:aws:kms:us-east-1:123456789012:key/bbbbbbbb-0000";

    #[derive(Default)]
    pub(crate) struct FakeKms {
        /// Unix seconds returned by `now`.
        pub now: std::sync::atomic::AtomicI64,
        pub calls: Mutex<Vec<String>>,
        pub decrypts: AtomicUsize,
        /// The next calls fail with these errors.
        pub fail_next: Mutex<Vec<Error>>,
        /// Decrypt returns this plaintext instead of the real one.
        pub plaintext_override: Mutex<Option<Vec<u8>>>,
    }

    pub(crate) fn service_error(action: &'static str, code: &str) -> Error {
        Error::from(ServiceError {
            action,
            status: 400,
            code: code.into(),
            message: String::new(),
            request_id: None,
        })
    }

    fn arn_of(key: &str) -> Option<&'static str> {
        match key {
            "alias/a" | "aaaaaaaa-0000" | ARN_A => Some(ARN_A),
            "alias/b" | "bbbbbbbb-0000" | ARN_B => Some(ARN_B),
            _ => None,
        }
    }

    fn encode_ctx(ctx: &EncryptionContext) -> String {
        ctx.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    impl FakeKms {
        fn take_failure(&self) -> Option<Error> {
            let mut f = self.fail_next.lock().unwrap();
            if f.is_empty() {
                None
            } else {
                Some(f.remove(0))
            }
        }
    }

    impl Kms for FakeKms {
        fn encrypt(
            &self,
            _keys: &AccessKey,
            key_id: &str,
            plaintext: &[u8],
            context: &EncryptionContext,
            _cancel: Option<&crossbeam_channel::Receiver<()>>,
        ) -> Result<EncryptOutput> {
            self.calls.lock().unwrap().push(format!("Encrypt {key_id}"));
            if let Some(e) = self.take_failure() {
                return Err(e);
            }
            let arn =
                arn_of(key_id).ok_or_else(|| service_error("Encrypt", "NotFoundException"))?;
            let blob = format!(
                "{arn}|{}|{}",
                encode_ctx(context),
                String::from_utf8_lossy(plaintext)
            );
            Ok(EncryptOutput {
                ciphertext_blob: blob.into_bytes(),
                key_id: arn.to_owned(),
            })
        }

        fn decrypt(
            &self,
            _keys: &AccessKey,
            blob: &[u8],
            context: &EncryptionContext,
        ) -> Result<DecryptOutput> {
            self.calls.lock().unwrap().push("Decrypt".into());
            self.decrypts.fetch_add(1, Ordering::SeqCst);
            if let Some(e) = self.take_failure() {
                return Err(e);
            }
            let text = String::from_utf8_lossy(blob);
            let mut parts = text.splitn(3, '|');
            let (Some(arn), Some(ctx), Some(plain)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(service_error("Decrypt", "InvalidCiphertextException"));
            };
            if ctx != encode_ctx(context) {
                return Err(service_error("Decrypt", "InvalidCiphertextException"));
            }
            let plaintext = self
                .plaintext_override
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| plain.as_bytes().to_vec());
            Ok(DecryptOutput {
                plaintext,
                key_id: arn.to_owned(),
            })
        }

        fn describe_key(&self, _keys: &AccessKey, key_id: &str) -> Result<KeyMetadata> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("DescribeKey {key_id}"));
            if let Some(e) = self.take_failure() {
                return Err(e);
            }
            let arn =
                arn_of(key_id).ok_or_else(|| service_error("DescribeKey", "NotFoundException"))?;
            Ok(KeyMetadata {
                arn: arn.to_owned(),
                key_id: arn.rsplit('/').next().unwrap_or_default().to_owned(),
                account_id: Some("123456789012".into()),
                key_state: Some("Enabled".into()),
            })
        }

        fn now(&self) -> time::OffsetDateTime {
            time::OffsetDateTime::from_unix_timestamp(self.now.load(Ordering::SeqCst))
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        }
    }

    impl FakeKms {
        pub(crate) fn at(unix: i64) -> FakeKms {
            let f = FakeKms::default();
            f.now.store(unix, Ordering::SeqCst);
            f
        }
    }

    pub(crate) fn keys() -> AccessKey {
        AccessKey {
            access_key_id: "AKIAFAKE".into(),
            secret_access_key: crate::Secret::new("s"),
            session_token: None,
        }
    }
}
