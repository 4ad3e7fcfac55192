//! Generating tokens: python-kmsauth's `KMSTokenGenerator.get_token`, with
//! its cache held in memory.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::token::{self, UserType, MAX_VERSION, MIN_VERSION};
use super::KeySource;
use crate::credentials::AccessKey;
use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, Kms, KmsClient};
use crate::secret::Secret;
use crate::session::Session;

/// The default token lifetime, 10 minutes.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How far tokens are back-dated, and how long before `not_after` a cached
/// token stops being reused: python-kmsauth's `TOKEN_SKEW`, 3 minutes.
pub const TOKEN_SKEW: Duration = Duration::from_secs(3 * 60);

/// A generated token and the username to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Token {
    /// `from` (v1) or `2/<user_type>/<from>` (v2).
    pub username: String,
    /// The token: standard base64 of the KMS ciphertext. A bearer
    /// credential while valid, so `Debug` redacts it.
    pub token: Secret,
    /// Start of validity: generation time minus 3 minutes (UTC, whole
    /// seconds).
    pub not_before: OffsetDateTime,
    /// End of validity: generation time plus lifetime minus 3 minutes.
    pub not_after: OffsetDateTime,
}

/// Generates kmsauth tokens for one key, sender, receiver and context.
/// Thread-safe; concurrent callers share one KMS call.
///
/// ```no_run
/// use stslib::kmsauth::{TokenGenerator, UserType};
/// use stslib::kms::KmsClient;
/// use stslib::Session;
///
/// let session = Session::builder().profile("alice").build()?;
/// session.generate_credentials(&["svc-a-role"])?;
/// let generator = TokenGenerator::builder("alias/authnz-production", "svc-a", "confidant-production")
///     .user_type(UserType::Service)
///     .client(KmsClient::builder().region("us-east-1").build()?)
///     .session_role(&session, "svc-a-role")
///     .build()?;
/// let t = generator.token()?; // cached while python-kmsauth would reuse it
/// println!("{} {}", t.username, t.token.expose());
/// # Ok::<(), stslib::Error>(())
/// ```
pub struct TokenGenerator {
    kms: Arc<dyn Kms>,
    keys: KeySource,
    key: String,
    lifetime: Duration,
    context: EncryptionContext,
    username: String,
    cache: Option<Mutex<Option<Token>>>,
}

impl fmt::Debug for TokenGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGenerator")
            .field("key", &self.key)
            .field("username", &self.username)
            .field("context", &self.context)
            .field("lifetime", &self.lifetime)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Configures a [`TokenGenerator`].
#[must_use]
pub struct TokenGeneratorBuilder {
    kms: Option<Arc<dyn Kms>>,
    keys: KeySource,
    key: String,
    from: String,
    to: String,
    user_type: UserType,
    version: u32,
    lifetime: Duration,
    extra: EncryptionContext,
    cache: bool,
}

impl fmt::Debug for TokenGeneratorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGeneratorBuilder")
            .field("key", &self.key)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl TokenGenerator {
    /// A builder for tokens encrypted with KMS key `key` (alias name, alias
    /// ARN, key id or key ARN, sent verbatim), from `from` to `to`.
    pub fn builder(
        key: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
    ) -> TokenGeneratorBuilder {
        TokenGeneratorBuilder {
            kms: None,
            keys: KeySource::Unset,
            key: key.into(),
            from: from.into(),
            to: to.into(),
            user_type: UserType::Service,
            version: MAX_VERSION,
            lifetime: DEFAULT_LIFETIME,
            extra: EncryptionContext::new(),
            cache: true,
        }
    }
}

impl TokenGeneratorBuilder {
    /// Replaces the KMS key. Defaults to the one given to
    /// [`TokenGenerator::builder`].
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// The sender's type. Version 1 tokens are always `service`. Defaults
    /// to `service`.
    pub fn user_type(mut self, user_type: UserType) -> Self {
        self.user_type = user_type;
        self
    }

    /// The token version, 1 or 2. Defaults to 2.
    pub fn token_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// How long a token lives, counted from 3 minutes before it is made;
    /// more than 3 minutes. Defaults to 10 minutes.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Adds a pair to the encryption context (agreed with the validator).
    /// `to`, `from` and `user_type` cannot be set this way. Defaults to
    /// none.
    pub fn context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// Reuse a token while `now <= not_after - 3 min`, as python-kmsauth's
    /// cache file does. Defaults to `true`.
    pub fn cache(mut self, cache: bool) -> Self {
        self.cache = cache;
        self
    }

    /// The KMS client (also the clock tokens are dated by). Defaults to
    /// `KmsClient::builder().build()`.
    pub fn client(mut self, client: KmsClient) -> Self {
        self.kms = Some(Arc::new(client));
        self
    }

    /// Sign Encrypt with these keys. Defaults to unset (one of this and
    /// [`session_role`](Self::session_role) is required).
    pub fn access_key(mut self, keys: AccessKey) -> Self {
        self.keys = KeySource::Static(keys);
        self
    }

    /// Sign Encrypt with the credentials `session` holds for the role
    /// profile `profile`, read afresh for each call. Defaults to unset.
    pub fn session_role(mut self, session: &Session, profile: &str) -> Self {
        self.keys = KeySource::role(session, profile);
        self
    }

    #[cfg(test)]
    pub(crate) fn kms(mut self, kms: Arc<dyn Kms>) -> Self {
        self.kms = Some(kms);
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<TokenGenerator> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&self.version) {
            return Err(Error::invalid_input(
                "token_version",
                format!("{} is not 1 or 2", self.version),
            ));
        }
        if self.version == 1 && self.user_type != UserType::Service {
            return Err(Error::invalid_input(
                "user_type",
                "version 1 tokens are always `service`; use version 2 for `user`",
            ));
        }
        for (field, value) in [("from", &self.from), ("to", &self.to)] {
            if value.is_empty() || value.contains('/') {
                return Err(Error::invalid_input(
                    field,
                    format!("`{value}` must be a non-empty name without `/`"),
                ));
            }
        }
        if self.key.trim().is_empty() {
            return Err(Error::invalid_input("key", "empty KMS key"));
        }
        if self.lifetime <= TOKEN_SKEW {
            return Err(Error::invalid_input(
                "lifetime",
                "must be more than 3 minutes: tokens are back-dated 3 minutes, \
                 so a shorter one would be born expired",
            ));
        }
        if let Some(k) = ["to", "from", "user_type"]
            .iter()
            .find(|k| self.extra.contains_key(**k))
        {
            return Err(Error::invalid_input(
                "context",
                format!("`{k}` is set by the generator itself"),
            ));
        }
        self.keys.check()?;
        let context = token::context(
            &self.extra,
            self.version,
            &self.to,
            &self.from,
            self.user_type.as_str(),
        );
        let kms = match self.kms {
            Some(k) => k,
            None => Arc::new(KmsClient::builder().build()?),
        };
        Ok(TokenGenerator {
            kms,
            keys: self.keys,
            username: token::format_username(self.version, self.user_type, &self.from),
            key: self.key,
            lifetime: self.lifetime,
            context,
            cache: self.cache.then(|| Mutex::new(None)),
        })
    }
}

impl TokenGenerator {
    /// The username to send with the tokens.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The encryption context of the tokens.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.context
    }

    /// A token: the cached one while `now <= not_after - 3 min`, else a new
    /// one from KMS Encrypt.
    pub fn token(&self) -> Result<Token> {
        let Some(cache) = &self.cache else {
            return self.generate();
        };
        // Held across the KMS call: concurrent callers wait for one token
        // rather than each asking KMS.
        let mut slot = cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.now();
        if let Some(t) = slot.as_ref() {
            if now <= t.not_after - TOKEN_SKEW {
                return Ok(t.clone());
            }
        }
        let fresh = self.generate()?;
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// A new token from KMS, bypassing (and not filling) the cache.
    pub fn generate(&self) -> Result<Token> {
        let now = self.now();
        let skew = time::Duration::try_from(TOKEN_SKEW).unwrap_or(time::Duration::ZERO);
        let lifetime = time::Duration::try_from(self.lifetime).unwrap_or(time::Duration::MAX);
        let nb = token::format_time(now - skew);
        let na = token::format_time(now.saturating_add(lifetime - skew));
        let (Some(not_before), Some(not_after)) = (token::parse_time(&nb), token::parse_time(&na))
        else {
            return Err(Error::invalid_input(
                "lifetime",
                "the validity window does not fit the token time format",
            ));
        };
        let plaintext = token::format_plaintext(&nb, &na);
        let keys = self.keys.keys()?;
        let out = self
            .kms
            .encrypt(&keys, &self.key, plaintext.as_bytes(), &self.context)?;
        log::debug!(
            "kmsauth: token for {} with {} valid {nb}..{na}",
            self.username,
            self.key
        );
        Ok(Token {
            username: self.username.clone(),
            token: Secret::new(token::encode_token(&out.ciphertext_blob)),
            not_before,
            not_after,
        })
    }

    fn now(&self) -> OffsetDateTime {
        self.kms.now()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::fake::{keys, FakeKms};
    use super::*;

    fn rig() -> (Arc<FakeKms>, TokenGeneratorBuilder) {
        let kms = Arc::new(FakeKms::at(1_796_282_167));
        let b = TokenGenerator::builder("alias/a", "svc-a", "svc-b")
            .kms(kms.clone())
            .access_key(keys());
        (kms, b)
    }

    fn encrypts(kms: &FakeKms) -> usize {
        kms.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("Encrypt"))
            .count()
    }

    #[test]
    fn plaintext_context_and_window_match_python() {
        let (kms, b) = rig();
        let g = b.context("env", "prod").build().unwrap();
        let t = g.token().unwrap();
        assert_eq!(t.username, "2/service/svc-a");
        let blob = aws_smithy_types::base64::decode(t.token.expose()).unwrap();
        let text = String::from_utf8(blob).unwrap();
        // 2026-12-03T07:16:07Z minus 3 min, plus 7 min.
        assert!(
            text.ends_with(r#"|env=prod&from=svc-a&to=svc-b&user_type=service|{"not_before": "20261203T071307Z", "not_after": "20261203T072307Z"}"#),
            "{text}"
        );
        assert_eq!(encrypts(&kms), 1);
        assert!(!format!("{t:?}").contains(t.token.expose()));
    }

    #[test]
    fn v1_has_no_user_type_in_context() {
        let (_, b) = rig();
        let g = b.token_version(1).build().unwrap();
        assert_eq!(g.username(), "svc-a");
        assert_eq!(
            g.encryption_context().keys().collect::<Vec<_>>(),
            ["from", "to"]
        );
    }

    #[test]
    fn cache_reused_until_three_minutes_before_not_after() {
        let (kms, b) = rig();
        let g = b.build().unwrap();
        let first = g.token().unwrap();
        let reuse_until = (first.not_after - TOKEN_SKEW).unix_timestamp();
        kms.now.store(reuse_until, Ordering::SeqCst);
        assert_eq!(g.token().unwrap(), first);
        assert_eq!(encrypts(&kms), 1);
        kms.now.store(reuse_until + 1, Ordering::SeqCst);
        let second = g.token().unwrap();
        assert_ne!(second.not_after, first.not_after);
        assert_eq!(encrypts(&kms), 2);
        // generate() always asks KMS.
        g.generate().unwrap();
        assert_eq!(encrypts(&kms), 3);
    }

    #[test]
    fn no_cache_when_off() {
        let (kms, b) = rig();
        let g = b.cache(false).build().unwrap();
        g.token().unwrap();
        g.token().unwrap();
        assert_eq!(encrypts(&kms), 2);
    }

    #[test]
    fn configuration_errors() {
        let field = |b: TokenGeneratorBuilder| match b.build() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(rig().1.token_version(3)), "token_version");
        assert_eq!(
            field(rig().1.token_version(1).user_type(UserType::User)),
            "user_type"
        );
        assert_eq!(field(rig().1.lifetime(TOKEN_SKEW)), "lifetime");
        assert_eq!(field(rig().1.context("to", "x")), "context");
        assert_eq!(field(rig().1.key(" ")), "key");
        let kms = Arc::new(FakeKms::default());
        let b = TokenGenerator::builder("k", "a/b", "c")
            .kms(kms.clone())
            .access_key(keys());
        assert_eq!(field(b), "from");
        let b = TokenGenerator::builder("k", "a", "c").kms(kms);
        assert_eq!(field(b), "credentials");
    }

    #[test]
    fn encrypt_errors_keep_their_type() {
        let (kms, b) = rig();
        let g = b.key("alias/nope").build().unwrap();
        let e = g.token().unwrap_err();
        assert_eq!(e.code(), Some("NotFoundException"));
        assert_eq!(encrypts(&kms), 1);
    }
}
