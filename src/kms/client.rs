//! TEMPORARY stub until the shared transport lands.
use crate::credentials::AccessKey;
use crate::error::{Error, Result};
use crate::kms::{DecryptOutput, EncryptOutput, EncryptionContext, KeyMetadata, Kms};

/// stub
#[derive(Debug, Clone)]
pub struct KmsClient;
/// stub
#[derive(Debug, Default)]
pub struct KmsClientBuilder;
impl KmsClientBuilder {
    /// stub
    pub fn build(self) -> Result<KmsClient> {
        Err(Error::invalid_input("kms", "stub"))
    }
}
impl KmsClient {
    /// stub
    pub fn builder() -> KmsClientBuilder {
        KmsClientBuilder
    }
}
impl Kms for KmsClient {
    fn encrypt(
        &self,
        _: &AccessKey,
        _: &str,
        _: &[u8],
        _: &EncryptionContext,
    ) -> Result<EncryptOutput> {
        unimplemented!()
    }
    fn decrypt(&self, _: &AccessKey, _: &[u8], _: &EncryptionContext) -> Result<DecryptOutput> {
        unimplemented!()
    }
    fn describe_key(&self, _: &AccessKey, _: &str) -> Result<KeyMetadata> {
        unimplemented!()
    }
}
