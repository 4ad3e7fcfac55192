//! A blocking KMS client: `Encrypt`, `Decrypt` and `DescribeKey` over the
//! AWS JSON 1.1 protocol (`X-Amz-Target: TrentService.*`, SigV4 service
//! `kms`), on the transport the STS client uses (agent, TLS, proxy,
//! timeouts, retries, clock-skew learning).
//!
//! Only what kmsauth needs: [`crate::kmsauth`] builds on a crate-private
//! `Kms` trait, which [`KmsClient`] implements and unit tests fake.

pub(crate) mod client;
pub(crate) mod json;

use std::collections::BTreeMap;
use std::fmt;

use crate::credentials::AccessKey;
use crate::error::Result;

pub use client::{KmsClient, KmsClientBuilder};

/// An encryption context: string pairs bound to a ciphertext. KMS compares
/// the whole map, in any order, on Decrypt.
pub type EncryptionContext = BTreeMap<String, String>;

/// What `Encrypt` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncryptOutput {
    /// The ciphertext blob (opaque bytes; its layout differs between KMS
    /// and emulators).
    pub ciphertext_blob: Vec<u8>,
    /// The ARN of the key that encrypted.
    pub key_id: String,
}

/// What `Decrypt` returns. `Debug` leaves the plaintext out.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecryptOutput {
    /// The plaintext bytes.
    pub plaintext: Vec<u8>,
    /// The ARN of the key that decrypted.
    pub key_id: String,
}

impl fmt::Debug for DecryptOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptOutput")
            .field(
                "plaintext",
                &format_args!("<{} bytes>", self.plaintext.len()),
            )
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// What `DescribeKey` returns (the fields kmsauth uses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyMetadata {
    /// The key ARN, `arn:aws:kms:REGION:ACCOUNT:key/ID`.
    pub arn: String,
    /// The key id (a UUID, or `mrk-…`).
    pub key_id: String,
    /// The owning account, when given.
    pub account_id: Option<String>,
    /// `Enabled`, `Disabled`, `PendingDeletion`, …, when given.
    pub key_state: Option<String>,
}

/// The three KMS operations kmsauth uses, so generator and validator logic
/// is tested without a network.
pub(crate) trait Kms: Send + Sync {
    /// `cancel` (a message or disconnection) ends a retry backoff early:
    /// a session's refresher passes its halt channel.
    fn encrypt(
        &self,
        keys: &AccessKey,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        cancel: Option<&crossbeam_channel::Receiver<()>>,
    ) -> Result<EncryptOutput>;

    fn decrypt(
        &self,
        keys: &AccessKey,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<DecryptOutput>;

    fn describe_key(&self, keys: &AccessKey, key_id: &str) -> Result<KeyMetadata>;

    /// Now, by the client's (skew-corrected) clock: generators date tokens
    /// and validators check windows by it.
    fn now(&self) -> time::OffsetDateTime;
}
